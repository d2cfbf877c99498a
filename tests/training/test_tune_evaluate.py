import numpy as np

from training.data import Targets
from training.evaluate import compute_metrics, selection_score
from training.policy import Policy
from training.tune import best_threshold, tune_offsets, tune_policy


def one_hot(idx, n):
    out = np.full((len(idx), n), 0.01, dtype=np.float32)
    out[np.arange(len(idx)), idx] = 0.97
    return out / out.sum(1, keepdims=True)


def targets(n=200, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 4, n)
    i = rng.integers(0, 10, n)
    ch = (rng.random((n, 6)) < 0.15).astype(np.float32)
    return Targets(u, i, ch)


def test_perfect_predictions_score_one():
    y = targets()
    probs = {"urgency": one_hot(y.urgency, 4), "issue_type": one_hot(y.issue_type, 10),
             "prior_channels": np.where(y.prior_channels > 0, 0.9, 0.1)}
    m = compute_metrics(y, probs, Policy())
    for k in ("urgency_macro_f1", "urgency_qwk", "urgency_critical_recall", "issue_type_macro_f1",
              "tried_other_channel_f1", "prior_channels_micro_f1", "urgency_within_one_accuracy"):
        assert m[k] == 1.0, k
    assert selection_score(m) == 1.0


def test_off_by_one_urgency_counts_within_one_but_not_accuracy():
    y = targets()
    shifted = np.minimum(y.urgency + 1, 3)
    probs = {"urgency": one_hot(shifted, 4), "issue_type": one_hot(y.issue_type, 10),
             "prior_channels": np.where(y.prior_channels > 0, 0.9, 0.1)}
    m = compute_metrics(y, probs, Policy())
    assert m["urgency_within_one_accuracy"] == 1.0
    assert m["urgency_accuracy"] < 0.5


def test_offsets_recover_a_rare_class_that_argmax_never_predicts():
    rng = np.random.default_rng(1)
    y = np.array([0] * 180 + [1] * 20)
    p1 = np.where(y == 1, rng.uniform(0.3, 0.45, 200), rng.uniform(0.0, 0.2, 200))
    probs = np.stack([1 - p1, p1], 1)
    assert (probs.argmax(1) == 1).sum() == 0  # argmax misses the rare class entirely
    offsets = tune_offsets(y, probs)
    pred = np.argmax(np.log(probs) + np.array(offsets), 1)
    assert (pred[y == 1] == 1).mean() > 0.9


def test_channel_thresholds_move_below_half_when_scores_are_low():
    y = np.zeros((100, 1))
    y[:10] = 1
    probs = np.where(y > 0, 0.3, 0.05)
    assert best_threshold(y[:, 0], probs[:, 0]) < 0.3


def test_tune_policy_does_not_lose_to_untuned_on_the_data_it_saw():
    y = targets(seed=3)
    rng = np.random.default_rng(3)
    noisy = {"urgency": rng.dirichlet(np.ones(4), len(y.urgency)) * 0.5 + one_hot(y.urgency, 4) * 0.5,
             "issue_type": rng.dirichlet(np.ones(10), len(y.urgency)),
             "prior_channels": rng.random((len(y.urgency), 6)) * 0.6}
    lex = {"urgency": rng.dirichlet(np.ones(4), len(y.urgency)), "issue_type": one_hot(y.issue_type, 10),
           "prior_channels": np.where(y.prior_channels > 0, 0.7, 0.2)}
    policy = tune_policy(y, noisy, lex)
    tuned = compute_metrics(y, policy.fuse(noisy, lex), policy)
    untuned = compute_metrics(y, noisy, Policy())
    assert tuned["selection_score"] > untuned["selection_score"]
    assert policy.lexical_weight["issue_type"] > 0.0  # the lexical half is the informative one here
    assert tuned["issue_type_macro_f1"] > 0.95 > untuned["issue_type_macro_f1"]


def test_fast_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    from training.tune import binary_f1, macro_f1

    rng = np.random.default_rng(7)
    y, pred = rng.integers(0, 10, 500), rng.integers(0, 9, 500)  # class 9 never predicted
    assert np.isclose(macro_f1(y, pred, 10), f1_score(y, pred, average="macro", labels=range(10), zero_division=0))
    yb, pb = rng.random(500) < 0.1, rng.random(500) < 0.2
    assert np.isclose(binary_f1(yb, pb), f1_score(yb, pb, zero_division=0))
    assert binary_f1(np.zeros(5, bool), np.zeros(5, bool)) == 0.0
