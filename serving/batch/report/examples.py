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
    best: dict[Spike, pd.DataFrame] = {}
    for df in batches(path, fmt, columns=EXAMPLE_COLS):
        text_col = next((c for c in TEXT_COLS if c in df), None)
        if text_col is None or "created_at" not in df:
            return {}
        df = df.rename(columns={text_col: "_text"})
        day = parse_days(df["created_at"], tz).astype("datetime64[ns]")
        on = day.isin(days)
        if not on.any():
            continue
        df = df[on].assign(_day=day[on], _company=_company(df[on]), _rank=df.loc[on, "urgency"].map(rank).fillna(-1),
                           _score=pd.to_numeric(df.loc[on, "urgency_score"], errors="coerce").fillna(0.0)
                           if "urgency_score" in df else 0.0)
        if company:
            df = df[df["_company"] == company]
        if issue:
            df = df[df["issue_type"] == issue]
        for s in spikes:
            col = "_company" if s.by == "company" else "issue_type"
            hit = df[(df["_day"] == pd.Timestamp(s.day)) & (df[col] == s.series) & df["_text"].notna()]
            if len(hit):
                both = pd.concat([best[s], hit]) if s in best else hit
                best[s] = both.sort_values(["_rank", "_score"], ascending=False, kind="stable").head(k)
    return {s: [Example(id=str(r.get("id")) if pd.notna(r.get("id")) else "", text=excerpt(r["_text"]),
                        urgency=str(r["urgency"]), score=float(r["_score"]), company=str(r["_company"]),
                        issue_type=str(r["issue_type"])) for _, r in top.iterrows()]
            for s, top in best.items()}
