"""Cross-validation: folds, out-of-fold predictions, resume, the policy from them, label review, distillation."""

import csv
import json

import numpy as np
import pytest
from mlflow import MlflowClient

from tests.conftest import DATA
from training.crossval import ROWS, OutOfFold, run_cv
from training.data import Targets, cv_folds, duplicate_key, read_labelled
from training.train import TrainConfig

K = 3


class Killed(Exception):
    pass


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """300 shipped posts plus two re-posts of one of them (another handle, case, link and punctuation)."""
    lines = open(DATA).readlines()[:300]
    first = {**json.loads(lines[0]), "text": "@GoDaddy is my site down? https://t.co/x1 no answer"}
    copies = [json.dumps({**first, "id": f"dup{i}", "text": t}) + "\n" for i, t in
              enumerate(["@GoDaddyHelp IS MY SITE DOWN?? http://bit.ly/q no answer", "@godaddy is my site down https://x.co/1 no answer!"])]
    lines[0] = json.dumps(first) + "\n"
    path = tmp_path_factory.mktemp("cvdata") / "posts.jsonl"
    path.write_text("".join(lines + copies))
    return path


@pytest.fixture(scope="session")
def cv_run(small_data, mlflow_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv")
    cfg = TrainConfig(data=str(small_data), base="tiny", epochs=1, batch_size=32)
    return cfg, out, run_cv(cfg, k=K, out_dir=out, progress=False)


def test_folds_keep_duplicates_together_and_are_balanced(small_data):
    ds = read_labelled(small_data).sort("id")
    folds = cv_folds(ds, K, seed=13)
    by_key = {}
    for key, f in zip((duplicate_key(t) for t in ds["text"]), folds):
        by_key.setdefault(key, set()).add(f)
    assert all(len(v) == 1 for v in by_key.values())
    first = duplicate_key("@GoDaddy is my site down? https://t.co/x1 no answer")
    assert sum(duplicate_key(t) == first for t in ds["text"]) == 3  # the copies really are duplicates
    sizes = np.bincount(folds, minlength=K)
    assert sizes.min() >= 0.8 * len(ds) / K
    assert (folds == cv_folds(ds.shuffle(seed=2).sort("id"), K, seed=13)).all()  # deterministic


def test_every_post_gets_exactly_one_out_of_fold_prediction(cv_run, small_data):
    cfg, out, summary = cv_run
    oof = OutOfFold(out / "oof.npz")
    ds = read_labelled(small_data).sort("id")
    assert oof.ids.tolist() == ds["id"] and sorted(set(oof.folds.tolist())) == list(range(K))
    enc, lex = oof.aligned(ds["id"])
    assert np.allclose(enc["urgency"].sum(1), 1, atol=1e-4) and np.allclose(lex["issue_type"].sum(1), 1, atol=1e-4)
    assert enc["tried_other_channel"].shape == (len(ds),)
    assert set(summary["rows"]) == {r[0] for r in ROWS}
    m = summary["rows"]["frontline"]["urgency_macro_f1"]
    assert 0 <= m["mean"] <= 1 and m["sd"] >= 0
    assert not list(out.glob("fold-*.npz"))  # folds are folded into oof.npz
    rates = [r["needs_review_rate"] for r in summary["risk_coverage"]]
    assert rates == sorted(rates)  # asking for more accuracy never flags fewer posts
    assert (out / "risk_coverage.png").stat().st_size > 1000 and (out / "risk_coverage.csv").exists()
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("frontline").experiment_id],
                                      "tags.kind = 'cross-validation'")
    assert runs and "cv_selection_score_mean" in runs[0].data.metrics


def test_a_killed_run_resumes_from_its_finished_folds(small_data, tmp_path, monkeypatch):
    import training.train as train_mod

    cfg = TrainConfig(data=str(small_data), base="tiny", epochs=1)
    real_fit, calls, killed = train_mod.fit, [], []

    def dying_fit(*a, **kw):
        calls.append(kw["label"])
        if len(calls) == 2 and not killed:
            killed.append(True)
            raise Killed("killed while training fold 2")
        return real_fit(*a, **kw)

    monkeypatch.setattr(train_mod, "fit", dying_fit)
    with pytest.raises(Killed):
        run_cv(cfg, k=K, out_dir=tmp_path, progress=False, log_mlflow=False)
    assert [p.name for p in tmp_path.glob("fold-*.npz")] == ["fold-0.npz"]
    calls.clear()
    run_cv(cfg, k=K, out_dir=tmp_path, progress=False, log_mlflow=False)
    assert calls == ["fold 2/3 ", "fold 3/3 "]  # fold 1 was not trained again


def test_train_tunes_its_policy_on_matching_out_of_fold_predictions(cv_run, tmp_path):
    from training.experiment import matching_oof, run

    cfg, out, _ = cv_run
    assert matching_oof(cfg, out / "oof.npz") is not None
    other = TrainConfig(data=cfg.data, base="tiny", epochs=2, batch_size=32)
    assert matching_oof(other, out / "oof.npz") is None  # another recipe: its predictions do not apply
    summary = run(TrainConfig(data=cfg.data, base="tiny", epochs=1, batch_size=32, export_onnx=False),
                  register=False, out_dir=tmp_path / "bundle", progress=False, oof_path=out / "oof.npz")
    assert summary["policy_source"] == "cv_out_of_fold"
    assert "cv_selection_score_mean" in summary["metrics"] and "val_selection_score" not in summary["metrics"]
    assert summary["policy"]["tried_threshold"] is not None
    assert set(summary["policy"]["operating_points"]["review"]) == {"urgency", "issue_type", "prior_channels"}


def test_label_review_lists_the_most_doubted_labels(cv_run, small_data, tmp_path):
    from training.label_review import COLUMNS, review

    _, out, _ = cv_run
    before = small_data.read_bytes()
    counts = review(small_data, out / "oof.npz", top=25, out=tmp_path / "review.csv")
    rows = list(csv.DictReader(open(tmp_path / "review.csv")))
    assert tuple(rows[0]) == COLUMNS
    assert 0 < len(rows) == counts["written"] <= 25
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)  # most suspicious first
    assert all(r["doubted"] for r in rows)
    assert small_data.read_bytes() == before  # the labelled data is never edited


def test_distillation_uses_the_teachers_blended_out_of_fold_probabilities(cv_run, small_data, tmp_path):
    from training.train import recipe, soft_loss, teacher_targets

    cfg, out, _ = cv_run
    student = TrainConfig(data=str(small_data), base="tiny", epochs=1, soft_targets=str(out / "oof.npz"), distill_alpha=0.5)
    ds = read_labelled(small_data).sort("id")
    soft = teacher_targets(student, ds["id"][:10])
    assert soft["urgency"].shape == (10, 4) and np.allclose(soft["urgency"].sum(1), 1, atol=1e-4)
    assert recipe(student)["soft_targets"] != recipe(cfg)["soft_targets"]  # a distilled recipe is another recipe
    import torch

    logits = (torch.zeros(2, 4), torch.zeros(2, 10), torch.zeros(2, 6), torch.zeros(2, 1))
    sharp = [torch.eye(4)[:2], torch.eye(10)[:2], torch.zeros(2, 6), torch.zeros(2, 1)]
    assert soft_loss(logits, sharp) > soft_loss((logits[0] + 5 * torch.eye(4)[:2], *logits[1:]), sharp)
    summary = run_cv(student, k=K, out_dir=tmp_path, progress=False, log_mlflow=False)
    assert summary["recipe"]["distill_alpha"] == 0.5
    assert Targets.of(ds).urgency.shape == (len(ds),)
