"""The decision policy: the tried output, review reasons, the critical safety net, operating points."""

import numpy as np
import pytest

from training.data import Targets
from training.evaluate import compute_metrics
from training.policy import (
    CRITICAL,
    Policy,
    threshold_for_accuracy,
    threshold_for_recall,
)
from training.schema import POLICY_REVIEW_REASONS, TRIED
from training.tune import tune_policy


def _probs(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return {"urgency": rng.dirichlet(np.ones(4), n).astype(np.float32),
            "issue_type": rng.dirichlet(np.ones(10), n).astype(np.float32),
            "prior_channels": rng.random((n, 6)).astype(np.float32) * 0.4,
            TRIED: rng.random(n).astype(np.float32)}


def test_tried_output_decides_and_channels_follow_it():
    p = _probs(50)
    d = Policy(tried_threshold=0.5).decide(p)
    tried = p[TRIED] >= 0.5
    assert (d["prior_channels"].any(1) == tried).all()  # tried ⇔ at least one channel listed
    # channel probabilities are all under 0.5 here: each "tried" post gets its most likely channel
    top = p["prior_channels"].argmax(1)
    assert all(d["prior_channels"][i, top[i]] for i in np.flatnonzero(tried))
    assert np.allclose(d["confidence"]["prior_channels"], np.where(tried, p[TRIED], 1 - p[TRIED]))


def test_without_tried_threshold_the_channels_decide_as_before():
    p = _probs(50)
    d = Policy().decide(p)
    assert (d["prior_channels"] == (p["prior_channels"] >= 0.5)).all()


def test_possible_critical_flags_posts_another_urgency_won():
    p = _probs(3)
    p["urgency"] = np.array([[0.1, 0.2, 0.45, 0.25], [0.1, 0.1, 0.2, 0.6], [0.7, 0.2, 0.05, 0.05]], np.float32)
    d = Policy(critical_threshold=0.2).decide(p)
    assert d["review_reasons"]["possible_critical"].tolist() == [True, False, False]  # 2nd is critical already
    assert d["needs_review"][0]
    assert set(d["review_reasons"]) == set(POLICY_REVIEW_REASONS)


def test_needs_review_is_any_reason():
    p = _probs(200, seed=2)
    d = Policy(review_thresholds={"urgency": 0.5, "issue_type": 0.3, "prior_channels": 0.0}, critical_threshold=0.4).decide(p)
    any_reason = np.zeros(200, bool)
    for flags in d["review_reasons"].values():
        any_reason |= flags
    assert (d["needs_review"] == any_reason).all()
    assert 0 < d["needs_review"].mean() < 1


def test_operating_point_lookups():
    curve = [[0.0, 0.70, 1.0], [0.3, 0.80, 0.9], [0.5, 0.86, 0.7], [0.8, 0.95, 0.3]]
    assert threshold_for_accuracy(curve, 0.85) == 0.5
    assert threshold_for_accuracy(curve, 0.99) > 1.0  # unreachable: everything is reviewed
    crit = [[0.0, 1.0, 0.02, 1.0], [0.1, 0.95, 0.2, 0.1], [0.3, 0.85, 0.4, 0.04], [0.6, 0.6, 0.6, 0.01]]
    assert threshold_for_recall(crit, 0.9) == 0.1  # the highest threshold that still catches 90%
    with pytest.raises(ValueError, match="operating points"):
        Policy().for_targets(0.9)


def _labelled(n=3000, seed=5):
    """Probabilities that are right more often when confident: a selective-prediction problem."""
    rng = np.random.default_rng(seed)
    u = rng.choice(4, n, p=[0.35, 0.35, 0.25, 0.05])
    i = rng.integers(0, 10, n)
    ch = (rng.random((n, 6)) < 0.04).astype(np.float32)
    def noisy(y, k, sharp):
        logits = rng.normal(0, 1, (n, k))
        logits[np.arange(n), y] += sharp
        e = np.exp(logits)
        return (e / e.sum(1, keepdims=True)).astype(np.float32)
    sharp = rng.uniform(0, 4, n)[:, None]
    probs = {"urgency": noisy(u, 4, sharp[:, 0]), "issue_type": noisy(i, 10, sharp[:, 0] + 1),
             "prior_channels": np.clip(ch * 0.6 + rng.random((n, 6)) * 0.4, 0, 1).astype(np.float32),
             TRIED: np.clip(ch.any(1) * 0.6 + rng.random(n) * 0.4, 0, 1).astype(np.float32)}
    return Targets(u, i, ch), probs


def test_tuned_review_meets_its_accuracy_and_the_critical_net_its_recall():
    y, probs = _labelled()
    policy = tune_policy(y, probs, None, review_accuracy=0.85, critical_recall=0.9)
    m = compute_metrics(y, probs, policy)
    d = policy.decide(probs)
    for head in ("urgency", "issue_type"):
        kept = d["confidence"][head] >= policy.review_thresholds[head]
        assert (d[head] == getattr(y, head))[kept].mean() >= 0.85
    assert m["possible_critical_recall"] >= 0.9
    assert m["kept_urgency_accuracy"] >= 0.85 and m["kept_issue_type_accuracy"] >= 0.85
    assert 0.0 < m["needs_review_rate"] < 1.0
    # a stricter caller gets more posts flagged, a laxer one fewer
    strict = compute_metrics(y, probs, policy.for_targets(0.95))["needs_review_rate"]
    lax = compute_metrics(y, probs, policy.for_targets(0.75))["needs_review_rate"]
    assert lax < m["needs_review_rate"] < strict
    assert policy.tried_threshold is not None


def test_policy_round_trips_and_old_policies_load():
    y, probs = _labelled(500)
    p = tune_policy(y, probs, None)
    assert Policy.from_dict(p.to_dict()) == p
    old = {"lexical_weight": {"urgency": 0.0}, "class_offsets": {}, "channel_thresholds": [0.5] * 6,
           "review_thresholds": {"urgency": 0.9}}
    loaded = Policy.from_dict(old)
    assert loaded.tried_threshold is None and loaded.critical_threshold is None
    assert CRITICAL == 3
