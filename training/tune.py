"""Choosing the decision policy (``training.policy``) on out-of-fold predictions.

Argmax over probabilities trained on imbalanced data under-predicts rare classes, 0.5 is an arbitrary cut
for sigmoid outputs, and a review flag is only useful at a stated accuracy. Each choice below is a small
search over labelled predictions the model did not train on: the ~10,000 out-of-fold predictions of
cross-validation (``training.crossval``), or the validation split of a single-split run. 631 validation
posts with 3-5 positives per rare channel gave thresholds that did not transfer; 10,000 are the fix.

1. ``lexical_weight``: per output, the blend of encoder and TF-IDF probabilities, on a grid.
2. ``class_offsets``: per-class log-offsets for urgency and issue type, by coordinate ascent on macro-F1;
   then, if critical recall is under ``critical_label_recall``, the critical offset is raised until it is
   reached (or critical precision would fall under ``critical_label_precision``).
3. ``channel_thresholds`` and ``tried_threshold``: per channel, and for the tried output, the F1-best cut.
4. ``review_thresholds``: per head, the lowest confidence at which the posts at or above it are right at
   least ``review_accuracy`` of the time (selective prediction); ``operating_points`` keeps the whole
   curve so a caller can pick another accuracy.
5. ``critical_threshold``: the highest critical probability that still flags ``critical_recall`` of the
   critical posts (those predicted critical count as caught).
"""

from __future__ import annotations

import numpy as np

from training.data import Targets
from training.policy import CRITICAL, Policy
from training.schema import HEADS, OUTPUTS, TRIED

WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)
OFFSET_GRID = np.linspace(-1.5, 1.5, 13)
THRESHOLD_GRID = np.round(np.arange(0.04, 0.97, 0.02), 2)
CURVE_GRID = np.round(np.arange(0.0, 1.0001, 0.01), 2)
MIN_KEPT = 20  # an operating point needs at least this many posts kept to be trusted


def binary_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """F1 of boolean predictions (0 when there is nothing to find and nothing predicted): the searches
    below score thousands of cuts, and sklearn's f1_score costs ~1 ms of checks per call."""
    y, pred = y.astype(bool), pred.astype(bool)
    tp = np.count_nonzero(y & pred)
    denom = np.count_nonzero(y) + np.count_nonzero(pred)
    return 2.0 * tp / denom if denom else 0.0


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over all ``n_classes`` (a class never true nor predicted scores 0, as sklearn's with
    ``labels=range(n)`` and ``zero_division=0``)."""
    cm = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    return float(np.mean(np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)))


def _macro_f1(y: np.ndarray, probs: np.ndarray, offsets: np.ndarray) -> float:
    pred = np.argmax(np.log(np.clip(probs, 1e-9, 1)) + offsets, axis=1)
    return macro_f1(np.asarray(y), pred, probs.shape[1])


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


def raise_critical(y: np.ndarray, probs: np.ndarray, offsets: list[float], recall: float, min_precision: float) -> list[float]:
    """Raise the critical offset in small steps until critical recall reaches ``recall``, never past the
    point where critical precision drops under ``min_precision``."""
    offsets = list(offsets)
    logp = np.log(np.clip(probs, 1e-9, 1))
    is_crit = y == CRITICAL
    if not is_crit.any():
        return offsets
    for v in np.arange(offsets[CRITICAL], offsets[CRITICAL] + 3.0001, 0.1):
        trial = np.array(offsets)
        trial[CRITICAL] = v
        pred = np.argmax(logp + trial, axis=1) == CRITICAL
        if pred[is_crit].mean() >= recall:
            if pred.any() and is_crit[pred].mean() >= min_precision:
                offsets[CRITICAL] = round(float(v), 3)
            break
    return offsets


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    if y.sum() == 0:
        return 0.5
    scores = [binary_f1(y, p >= t) for t in THRESHOLD_GRID]
    return float(THRESHOLD_GRID[int(np.argmax(scores))])


def _output_score(name: str, y: Targets, probs: np.ndarray) -> float:
    """How good one output is on its own, at its best cut: what the blend weight is chosen on."""
    tried = y.prior_channels.astype(bool).any(1)
    if name == TRIED:
        return binary_f1(tried, probs >= best_threshold(tried, probs))
    if name == "prior_channels":
        return float(np.mean([binary_f1(y.prior_channels[:, c], probs[:, c] >= best_threshold(y.prior_channels[:, c], probs[:, c]))
                              for c in range(probs.shape[1])]))
    return _macro_f1(getattr(y, name), probs, np.zeros(probs.shape[1]))


def tune_lexical_weight(y: Targets, enc: dict, lex: dict) -> dict[str, float]:
    out = {}
    for name in OUTPUTS:
        if name in enc and name in lex:
            scores = [_output_score(name, y, (1 - w) * enc[name] + w * lex[name]) for w in WEIGHT_GRID]
            out[name] = float(WEIGHT_GRID[int(np.argmax(scores))])
    return out


def accuracy_curve(confidence: np.ndarray, correct: np.ndarray) -> list[list[float]]:
    """(threshold, accuracy of posts with confidence ≥ threshold, their share) on a 0.01 grid."""
    rows = []
    for t in CURVE_GRID:
        kept = confidence >= t
        if kept.sum() < MIN_KEPT:
            break
        rows.append([float(t), round(float(correct[kept].mean()), 4), round(float(kept.mean()), 4)])
    return rows


def critical_curve(p_critical: np.ndarray, predicted_critical: np.ndarray, is_critical: np.ndarray) -> list[list[float]]:
    """(threshold, recall, precision, share flagged or predicted) of "critical probability ≥ threshold, or
    predicted critical" on a 0.01 grid."""
    rows = []
    if not is_critical.any():
        return rows
    for t in CURVE_GRID:
        caught = (p_critical >= t) | predicted_critical
        prec = float(is_critical[caught].mean()) if caught.any() else 0.0
        rows.append([float(t), round(float(caught[is_critical].mean()), 4), round(prec, 4), round(float(caught.mean()), 4)])
    return rows


def correctness(y: Targets, d: dict) -> dict[str, np.ndarray]:
    return {"urgency": d["urgency"] == y.urgency, "issue_type": d["issue_type"] == y.issue_type,
            "prior_channels": d["prior_channels"].any(1) == y.prior_channels.astype(bool).any(1)}


def tune_policy(y: Targets, enc: dict, lex: dict | None, review_accuracy: float = 0.85, critical_recall: float = 0.90,
                critical_label_recall: float = 0.75, critical_label_precision: float = 0.40) -> Policy:
    """The whole policy from labelled out-of-sample probabilities (``enc``/``lex``: output → array)."""
    policy = Policy()
    if lex is not None:
        policy.lexical_weight = tune_lexical_weight(y, enc, lex)
    probs = policy.fuse(enc, lex)
    policy.class_offsets = {h: tune_offsets(getattr(y, h), probs[h]) for h in ("urgency", "issue_type")}
    policy.class_offsets["urgency"] = raise_critical(y.urgency, probs["urgency"], policy.class_offsets["urgency"],
                                                     critical_label_recall, critical_label_precision)
    policy.channel_thresholds = [best_threshold(y.prior_channels[:, c], probs["prior_channels"][:, c])
                                 for c in range(y.prior_channels.shape[1])]
    if TRIED in probs:
        policy.tried_threshold = best_threshold(y.prior_channels.any(1), probs[TRIED])
    d = policy.decide(probs)
    correct = correctness(y, d)
    curves = {h: accuracy_curve(d["confidence"][h], correct[h]) for h in HEADS}
    crit = critical_curve(probs["urgency"][:, CRITICAL], d["urgency"] == CRITICAL, y.urgency == CRITICAL)
    policy.operating_points = {"review": curves, "critical": crit, "review_accuracy": review_accuracy,
                               "critical_recall": critical_recall}
    return policy.for_targets(review_accuracy, critical_recall if crit else None)
