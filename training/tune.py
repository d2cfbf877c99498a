"""Choosing the decision policy on the validation split.

Argmax over probabilities trained on imbalanced data under-predicts rare classes (a plain fine-tune never
says ``critical``), and 0.5 is an arbitrary cut for six sigmoid channels. Each choice below is a small
search scored on validation only; the test split is never looked at here.

1. ``lexical_weight``: blend of encoder and TF-IDF probabilities per head, on a grid.
2. ``class_offsets``: per-class log-offsets for urgency and issue type, by coordinate ascent on macro-F1.
3. ``channel_thresholds``: per channel, the cut that maximises that channel's F1.
4. ``review_thresholds``: per head, the lowest confidence above which validation accuracy reaches
   ``review_precision``; posts under it are flagged ``needs_review``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from training.data import Targets
from training.predict import Policy
from training.schema import HEADS

WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)
OFFSET_GRID = np.linspace(-1.5, 1.5, 13)
THRESHOLD_GRID = np.round(np.linspace(0.05, 0.95, 19), 2)


def _macro_f1(y: np.ndarray, probs: np.ndarray, offsets: np.ndarray) -> float:
    pred = np.argmax(np.log(np.clip(probs, 1e-9, 1)) + offsets, axis=1)
    return f1_score(y, pred, average="macro", labels=range(probs.shape[1]), zero_division=0)


def tune_offsets(y: np.ndarray, probs: np.ndarray, rounds: int = 3) -> list[float]:
    offsets = np.zeros(probs.shape[1])
    best = _macro_f1(y, probs, offsets)
    for _ in range(rounds):
        improved = False
        for c in range(probs.shape[1]):
            for v in OFFSET_GRID:
                trial = offsets.copy()
                trial[c] = v
                score = _macro_f1(y, probs, trial)
                if score > best + 1e-6:
                    best, offsets, improved = score, trial, True
        if not improved:
            break
    return offsets.round(3).tolist()


def tune_channel_thresholds(y: np.ndarray, probs: np.ndarray) -> list[float]:
    out = []
    for c in range(probs.shape[1]):
        if y[:, c].sum() == 0:
            out.append(0.5)
            continue
        scores = [f1_score(y[:, c], probs[:, c] >= t, zero_division=0) for t in THRESHOLD_GRID]
        out.append(float(THRESHOLD_GRID[int(np.argmax(scores))]))
    return out


def _head_score(head: str, y: Targets, probs: np.ndarray) -> float:
    if head == "prior_channels":
        return f1_score(y.prior_channels.astype(bool).any(1), (probs >= 0.5).any(1), zero_division=0)
    return _macro_f1(getattr(y, head), probs, np.zeros(probs.shape[1]))


def tune_lexical_weight(y: Targets, enc: dict, lex: dict) -> dict[str, float]:
    out = {}
    for h in HEADS:
        scores = [_head_score(h, y, (1 - w) * enc[h] + w * lex[h]) for w in WEIGHT_GRID]
        out[h] = float(WEIGHT_GRID[int(np.argmax(scores))])
    return out


def review_threshold(confidence: np.ndarray, correct: np.ndarray, precision: float) -> float:
    for t in np.round(np.linspace(0.0, 0.95, 20), 2):
        sel = confidence >= t
        if sel.sum() >= 10 and correct[sel].mean() >= precision:
            return float(t)
    return 0.95


def tune_policy(y: Targets, enc: dict, lex: dict | None, review_precision: float = 0.8) -> Policy:
    policy = Policy()
    if lex is not None:
        policy.lexical_weight = tune_lexical_weight(y, enc, lex)
    probs = policy.fuse(enc, lex)
    policy.class_offsets = {h: tune_offsets(getattr(y, h), probs[h]) for h in ("urgency", "issue_type")}
    policy.channel_thresholds = tune_channel_thresholds(y.prior_channels, probs["prior_channels"])
    d = policy.decide(probs)
    correct = {
        "urgency": d["urgency"] == y.urgency,
        "issue_type": d["issue_type"] == y.issue_type,
        "prior_channels": d["prior_channels"].any(1) == y.prior_channels.astype(bool).any(1),
    }
    policy.review_thresholds = {h: review_threshold(d["confidence"][h], correct[h], review_precision) for h in HEADS}
    return policy
