"""Label review: the posts whose given labels the cross-validated model most doubts (confident learning).

``frontline label-review`` reads the out-of-fold probabilities of ``frontline cv`` (``data/cv/multitask/oof.npz``)
blended as the decision policy blends them, asks cleanlab which labels look wrong (per head: its
confident-learning filter for urgency and issue type, its multi-label filter for the channels), ranks the
flagged posts by cleanlab's label-quality score (lowest = most suspicious) and writes the top ones to
``data/label_review.csv`` for the data owners. It never edits ``data/train.jsonl``: relabelling is theirs.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from training.crossval import CV_DIR, OutOfFold
from training.data import DEFAULT_DATA, Targets, read_labelled
from training.schema import SCHEMA

REVIEW_FILE = DEFAULT_DATA.parent / "label_review.csv"
COLUMNS = ("rank", "id", "text", "urgency", "issue_type", "prior_channels", "suggested_urgency",
           "suggested_issue_type", "suggested_prior_channels", "doubted", "score")


def _quality(head: str, y: Targets, probs: dict) -> tuple[np.ndarray, np.ndarray]:
    """(flagged by cleanlab, label-quality score in [0, 1]) per post for one head."""
    if head == "prior_channels":
        from cleanlab.multilabel_classification import get_label_quality_scores
        from cleanlab.multilabel_classification.filter import find_label_issues

        labels = [list(np.flatnonzero(row)) for row in y.prior_channels]
        p = np.clip(probs[head], 1e-6, 1 - 1e-6)
        return find_label_issues(labels, p), get_label_quality_scores(labels, p)
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = getattr(y, head)
    p = probs[head] / probs[head].sum(1, keepdims=True)
    return find_label_issues(labels, p), get_label_quality_scores(labels, p)


def review(data: Path = DEFAULT_DATA, oof_path: Path = CV_DIR / "oof.npz", top: int = 300,
           out: Path = REVIEW_FILE) -> dict:
    """Write the ``top`` most suspicious labels to ``out``; return counts per head."""
    ds = read_labelled(data).sort("id")
    y = Targets.of(ds)
    probs = OutOfFold(oof_path).blended(ds)
    flagged, score, doubted = np.zeros(len(ds), bool), np.ones(len(ds)), [[] for _ in range(len(ds))]
    counts = {}
    for head in ("urgency", "issue_type", "prior_channels"):
        issues, quality = _quality(head, y, probs)
        counts[head] = int(issues.sum())
        flagged |= issues
        score = np.where(issues, np.minimum(score, quality), score)
        for i in np.flatnonzero(issues):
            doubted[i].append(head)
    order = [i for i in np.argsort(score, kind="stable") if flagged[i]][:top]
    s = SCHEMA
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for rank, i in enumerate(order, 1):
            given = "|".join(s.prior_channels[c] for c in np.flatnonzero(y.prior_channels[i]))
            suggested = "|".join(c for c, p in zip(s.prior_channels, probs["prior_channels"][i]) if p >= 0.5)
            w.writerow([rank, ds[int(i)]["id"], ds[int(i)]["text"], s.urgency[y.urgency[i]], s.issue_type[y.issue_type[i]],
                        given, s.urgency[int(probs["urgency"][i].argmax())],
                        s.issue_type[int(probs["issue_type"][i].argmax())], suggested, "|".join(doubted[i]),
                        f"{score[i]:.4f}"])
    return {"posts": len(ds), "flagged": int(flagged.sum()), "written": len(order), "per_head": counts}
