"""The decision policy: how a model's probabilities become labels and a review flag.

Everything here is a number chosen on cross-validated out-of-fold predictions (``training.tune``) and
saved with the model, so training, the service, batch labelling and the export all decide alike:

- ``lexical_weight``: per output, how much the TF-IDF half weighs in the blend with the encoder;
- ``class_offsets``: per-class log-offsets for urgency and issue type, so rare classes get predicted;
- ``channel_thresholds``: per channel, the probability above which it is listed;
- ``tried_threshold``: the cut on the dedicated tried-another-channel output. When the model has that
  output it decides ``tried_other_channel``, and the channel list follows it: no channel when "not
  tried", and at least the most likely one when "tried";
- ``review_thresholds``: per head, the confidence under which the head is *unsure*;
- ``critical_threshold``: the critical safety net: a post whose critical probability reaches it is
  flagged ``possible_critical`` even when another urgency wins;
- ``operating_points``: the out-of-fold curves (threshold → accuracy of the posts kept, coverage; and
  threshold → critical recall/precision) from which a caller's own trade-off is read
  (``Policy.for_targets``).

``needs_review`` is "any review reason". A policy saved before these fields existed loads with them off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from training.schema import HEADS, POLICY_REVIEW_REASONS, SCHEMA, TRIED

CRITICAL = SCHEMA.urgency.index("critical")


@dataclass
class Policy:
    """How probabilities become labels. Defaults are the untuned ones: argmax, 0.5, no review."""

    lexical_weight: dict[str, float] = field(default_factory=lambda: {h: 0.0 for h in HEADS})
    class_offsets: dict[str, list[float]] = field(default_factory=dict)  # urgency / issue_type
    channel_thresholds: list[float] = field(default_factory=lambda: [0.5] * len(SCHEMA.prior_channels))
    tried_threshold: float | None = None
    review_thresholds: dict[str, float] = field(default_factory=lambda: {h: 0.0 for h in HEADS})
    critical_threshold: float | None = None
    operating_points: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Policy":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def fuse(self, encoder: dict[str, np.ndarray], lexical: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Blend per output present in both; an output only the encoder has passes through."""
        if lexical is None:
            return encoder
        out = {}
        for k, p in encoder.items():
            w = self.lexical_weight.get(k, 0.0) if k in lexical else 0.0
            out[k] = p if w == 0.0 else (1 - w) * p + w * lexical[k]
        return out

    def single_label(self, head: str, probs: np.ndarray) -> np.ndarray:
        offsets = np.asarray(self.class_offsets.get(head, np.zeros(probs.shape[1])), dtype=np.float64)
        return np.argmax(np.log(np.clip(probs, 1e-9, 1.0)) + offsets, axis=1)

    def tried_probability(self, probs: dict[str, np.ndarray]) -> np.ndarray:
        """P(tried another channel): the dedicated output when the model has one, else the top channel's."""
        return probs[TRIED] if TRIED in probs else probs["prior_channels"].max(axis=1)

    def channels(self, probs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(channel matrix, tried decision, confidence in that decision)."""
        pc = probs["prior_channels"]
        chans = pc >= np.asarray(self.channel_thresholds)[None, :]
        if self.tried_threshold is None or TRIED not in probs:
            tried = chans.any(axis=1)
            top = pc.max(axis=1)
            return chans, tried, np.where(tried, top, 1.0 - top)
        p = probs[TRIED]
        tried = p >= self.tried_threshold
        chans &= tried[:, None]
        empty = np.flatnonzero(tried & ~chans.any(axis=1))
        chans[empty, pc[empty].argmax(axis=1)] = True
        return chans, tried, np.where(tried, p, 1.0 - p)

    def decide(self, probs: dict[str, np.ndarray]) -> dict:
        """Label indices / channel matrix, per-head confidence, review reasons and needs_review for a batch."""
        urg = self.single_label("urgency", probs["urgency"])
        iss = self.single_label("issue_type", probs["issue_type"])
        chans, _tried, tried_conf = self.channels(probs)
        rows = np.arange(len(urg))
        conf = {"urgency": probs["urgency"][rows, urg], "issue_type": probs["issue_type"][rows, iss],
                "prior_channels": tried_conf}
        reasons = {h: conf[h] < self.review_thresholds.get(h, 0.0) for h in HEADS}
        if self.critical_threshold is None:
            reasons["possible_critical"] = np.zeros(len(urg), dtype=bool)
        else:
            reasons["possible_critical"] = (probs["urgency"][:, CRITICAL] >= self.critical_threshold) & (urg != CRITICAL)
        review = np.zeros(len(urg), dtype=bool)
        for r in POLICY_REVIEW_REASONS:
            review |= reasons[r]
        return {"urgency": urg, "issue_type": iss, "prior_channels": chans, "confidence": conf,
                "review_reasons": reasons, "needs_review": review}

    def for_targets(self, target_accuracy: float | None = None, critical_recall: float | None = None) -> "Policy":
        """This policy at another operating point, read off the stored out-of-fold curves: per head, the
        lowest review threshold at which the posts kept reached ``target_accuracy``; the critical net at
        the highest threshold that still caught ``critical_recall`` of critical posts."""
        if not self.operating_points:
            raise ValueError("this model has no stored operating points (trained before they existed)")
        new = replace(self, review_thresholds=dict(self.review_thresholds))
        if target_accuracy is not None:
            for h in HEADS:
                new.review_thresholds[h] = threshold_for_accuracy(self.operating_points["review"][h], target_accuracy)
        if critical_recall is not None:
            new.critical_threshold = threshold_for_recall(self.operating_points["critical"], critical_recall)
        return new


def threshold_for_accuracy(curve: list[list[float]], target: float) -> float:
    """``curve`` rows are (threshold, accuracy of posts at or above it, coverage), thresholds ascending."""
    for t, acc, _cov in curve:
        if acc >= target:
            return float(t)
    return 1.01  # unreachable: review every post


def threshold_for_recall(curve: list[list[float]], target: float) -> float:
    """``curve`` rows are (threshold, recall, precision, flagged share), thresholds ascending."""
    best = 0.0
    for t, rec, _prec, _share in curve:
        if rec >= target:
            best = float(t)
    return best
