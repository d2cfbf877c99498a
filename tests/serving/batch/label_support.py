"""Helpers for the batch-labelling and report tests: small input files in each format, reading outputs back."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data" / "train.jsonl"


def sample_posts(n: int, offset: int = 0) -> list[dict]:
    """n posts from the shipped data (id, text, company, created_at, source), ids made unique per offset."""
    out = []
    with open(DATA, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i < offset:
                continue
            obj = json.loads(line)
            out.append({"id": f"p{i:05d}", "text": obj["text"], "company": obj["company"],
                        "created_at": obj["created_at"], "source": obj["source"]})
            if len(out) >= n:
                break
    return out


def write_rows(path: Path, rows: list[dict], fmt: str | None = None) -> Path:
    """Write dict rows as CSV (csv module), JSONL or Parquet (all columns strings)."""
    fmt = fmt or path.suffix.lstrip(".")
    cols = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
    elif fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        pq.write_table(pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in cols}), path)
    return path


def read_output(path: Path) -> list[dict]:
    """A labelled file back as dict rows; prior_channels always a list, booleans always bool."""
    fmt = path.suffix.lstrip(".")
    if fmt == "parquet":
        rows = pq.read_table(path).to_pylist()
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            r["prior_channels"] = [c for c in r["prior_channels"].split("|") if c]
            for k in ("tried_other_channel", "needs_review", "contains_personal_data"):
                r[k] = r[k] == "true"
            for k in list(r):
                if k.endswith("_score") or "__" in k:
                    r[k] = float(r[k])
    return rows


def read_rejects(output: Path) -> list[dict]:
    p = output.with_name(output.name + ".rejects.jsonl")
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_summary(output: Path) -> dict:
    return json.loads(output.with_name(output.name + ".summary.json").read_text())


TWCS_COLUMNS = ["tweet_id", "author_id", "inbound", "created_at", "text", "response_tweet_id", "in_response_to_tweet_id"]


def make_twcs_csv(path: Path, n_inbound: int = 12) -> tuple[Path, list[str], list[str]]:
    """A small file in the Customer Support on Twitter layout: customer posts (inbound) and company replies.
    Returns (path, inbound tweet ids, reply tweet ids)."""
    texts = [p["text"] for p in sample_posts(n_inbound)]
    brands = ["AppleSupport", "AmazonHelp", "Delta", "SpotifyCares"]
    t0 = datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)
    rows, inbound, replies = [], [], []
    tid = 1000
    for i, text in enumerate(texts):
        brand = brands[i % len(brands)]
        customer = str(115712 + i)
        tid += 1
        own, reply = str(tid), str(tid + 1)
        # customers' handles are anonymised to numbers; the first non-numeric handle is the company
        body = f"@{brand} " + text.split(" ", 1)[-1] if i % 2 else f"@{customer}0 @{brand} {text}"
        rows.append({"tweet_id": own, "author_id": customer, "inbound": "True",
                     "created_at": (t0 + timedelta(hours=7 * i)).strftime("%a %b %d %H:%M:%S +0000 %Y"),
                     "text": body, "response_tweet_id": reply, "in_response_to_tweet_id": ""})
        rows.append({"tweet_id": reply, "author_id": brand, "inbound": "False",
                     "created_at": (t0 + timedelta(hours=7 * i, minutes=5)).strftime("%a %b %d %H:%M:%S +0000 %Y"),
                     "text": f"@{customer} Sorry to hear that, please DM us.", "response_tweet_id": "",
                     "in_response_to_tweet_id": own})
        inbound.append(own)
        replies.append(reply)
        tid += 1
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=TWCS_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path, inbound, replies

