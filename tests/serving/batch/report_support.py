"""Synthetic labelled exports for the report tests: steady traffic plus one outage day."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pandas as pd

from training.schema import SCHEMA

COMPANIES = ["AcmeAir", "ShopCo", "TelcoHelp", "<script>x</script>"]
OUTAGE_COMPANY = "TelcoHelp"
# personal data the examples must never show (the masker must catch each)
SECRETS = ["jo.doe@example.com", "555-123-4567", "4111 1111 1111 1111", "AB12345"]


def labelled_rows(n_days=28, spike_day=21, seed=7, start=date(2017, 10, 1), outage=90, text=True):
    """Rows as `frontline label` writes them. On ``spike_day`` ``outage`` extra critical service_disruption posts
    reach TelcoHelp between 10:00 and 19:59 UTC; their urgency_score rises with their index and their text
    carries personal data."""
    rng = random.Random(seed)
    rows, k = [], 0
    for d in range(n_days):
        day = start + timedelta(days=d)
        n = 40 + rng.randint(-5, 5)
        extra = outage if d == spike_day else 0
        for j in range(n + extra):
            spike = j >= n
            chans = rng.sample(SCHEMA.prior_channels, rng.choice([0, 0, 0, 1, 2]))
            hour = rng.randint(10, 19) if spike else rng.randint(0, 23)
            row = {"id": f"r{k}", "created_at": f"{day.isoformat()}T{hour:02d}:{rng.randint(0, 59):02d}:00Z",
                   "company": OUTAGE_COMPANY if spike else rng.choice(COMPANIES),
                   "urgency": "critical" if spike else rng.choice(SCHEMA.urgency),
                   "urgency_score": round(0.5 + 0.4 * (j - n) / max(extra, 1), 4) if spike else 0.7,
                   "issue_type": "service_disruption" if spike else rng.choice(SCHEMA.issue_type),
                   "issue_type_score": 0.6, "prior_channels": chans, "tried_other_channel": bool(chans),
                   "prior_channels_score": 0.8, "needs_review": rng.random() < 0.1,
                   "contains_personal_data": rng.random() < 0.05}
            if text:
                row["text"] = (f"@TelcoHelp outage #{j - n}: no signal since noon, call me on {SECRETS[1]} or "
                               f"{SECRETS[0]}, card {SECRETS[2]} was charged, order number {SECRETS[3]}. " + "x" * 300
                               if spike else f"@{row['company']} just a \"normal\" post, number {k}")
            rows.append(row)
            k += 1
    return rows, start + timedelta(days=spike_day)


def write_labelled(path, rows, spark_csv=False):
    """As `frontline label` writes ``path`` (``spark_csv``: in Spark's CSV dialect, quotes escaped as \\")."""
    df = pd.DataFrame(rows)
    if path.suffix == ".csv":
        df = df.assign(prior_channels=df["prior_channels"].map("|".join))
        df.to_csv(path, index=False, **({"escapechar": "\\", "doublequote": False} if spark_csv else {}))
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    return path
