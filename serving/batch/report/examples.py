"""Example posts for each spike: the most urgent few posts of that series on that day, text truncated and
personal data masked (``serving.pii.mask_personal_data``).

Spikes are only known once every row has been counted, so this is a second streaming pass over the labelled
file that reads only the rows of the spike days and keeps a top-``k`` per spike: memory stays flat. It needs
the post text in the labelled file (``frontline label … --carry text``); without it the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from serving.batch.report.cube import _company
from serving.batch.report.read import EXAMPLE_COLS, TEXT_COLS, batches, parse_days
from serving.batch.report.spikes import Spike
from serving.pii import mask_personal_data
from training.schema import SCHEMA, LabelSchema

MAX_CHARS = 200


@dataclass(frozen=True)
class Example:
    id: str
    text: str  # masked, then truncated
    urgency: str
    score: float
    company: str
    issue_type: str


def excerpt(text: str, limit: int = MAX_CHARS) -> str:
    """Masked first, then cut at a word boundary, so a truncation can never leave half a phone number."""
    text = " ".join(mask_personal_data(str(text)).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip() + "…"


def find_examples(path: Path, fmt: str, spikes: list[Spike], *, k: int = 3, tz=None, company: str | None = None,
                  issue: str | None = None, schema: LabelSchema = SCHEMA) -> dict[Spike, list[Example]]:
    """{spike: its ``k`` most urgent posts} (highest urgency level first, then the model's score), restricted to
    ``company`` / ``issue`` when the view is filtered."""
    if not spikes or k <= 0:
        return {}
    rank = {u: i for i, u in enumerate(schema.urgency)}
    days = {pd.Timestamp(s.day) for s in spikes}
    wanted = {(s.by, pd.Timestamp(s.day), s.series): s for s in spikes}
    keep = ["_by", "_day", "_series", "_rank", "_score", "_text", "_company", "issue_type", "urgency", "id"]
    pool: pd.DataFrame | None = None  # the best k so far per spike, whatever the number of spikes
    for df in batches(path, fmt, columns=EXAMPLE_COLS):
        text_col = next((c for c in TEXT_COLS if c in df), None)
        if text_col is None or "created_at" not in df:
            return {}
        day = parse_days(df["created_at"], tz).astype("datetime64[ns]")
        on = day.isin(days) & df[text_col].notna()
        if company:
            on &= _company(df) == company
        if issue:
            on &= df["issue_type"] == issue
        if not on.any():
            continue
        sub = df[on].rename(columns={text_col: "_text"})
        sub = sub.assign(_day=day[on], _company=_company(sub), _rank=sub["urgency"].map(rank).fillna(-1),
                         _score=pd.to_numeric(sub["urgency_score"], errors="coerce").fillna(0.0)
                         if "urgency_score" in sub else 0.0, id=sub["id"] if "id" in sub else None)
        hits = [pool] if pool is not None else []
        for by, col in (("issue_type", "issue_type"), ("company", "_company")):
            key = list(zip([by] * len(sub), sub["_day"], sub[col]))
            m = pd.Series([k in wanted for k in key], index=sub.index)
            if m.any():
                hits.append(sub[m].assign(_by=by, _series=sub.loc[m, col])[keep])
        if hits:
            both = pd.concat(hits, ignore_index=True)
            pool = (both.sort_values(["_rank", "_score"], ascending=False, kind="stable")
                    .groupby(["_by", "_day", "_series"], sort=False).head(k))
    if pool is None:
        return {}
    out: dict[Spike, list[Example]] = {}
    for _, r in pool.iterrows():
        out.setdefault(wanted[(r["_by"], r["_day"], r["_series"])], []).append(Example(
            id=str(r["id"]) if pd.notna(r["id"]) else "", text=excerpt(r["_text"]), urgency=str(r["urgency"]),
            score=float(r["_score"]), company=str(r["_company"]), issue_type=str(r["issue_type"])))
    return out
