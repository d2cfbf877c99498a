"""The tracked run end to end on the tiny encoder: metrics, bundle, MLflow model, registry, promotion."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from tests.conftest import DATA
from training import tracking
from training.predict import BUNDLE_FILE, Predictor, flat_columns
from training.schema import HEADS, SCHEMA


def test_run_logs_every_metric_and_the_baseline(tiny_model):
    m = tiny_model.summary["metrics"]
    for prefix in ("val", "test", "test_baseline", "test_encoder_only"):
        for k in ("urgency_macro_f1", "urgency_qwk", "urgency_within_one_accuracy", "urgency_critical_recall",
                  "issue_type_macro_f1", "tried_other_channel_f1", "prior_channels_micro_f1", "urgency_ece"):
            assert 0.0 <= m[f"{prefix}_{k}"] <= 1.0 or k == "urgency_qwk"
    run = MlflowClient().get_run(tiny_model.summary["run_id"])
    assert len(run.data.params["data_sha256"]) == 64
    assert run.data.params["base"] == "tiny"
    arts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert {"plots/confusion_urgency.png", "plots/confusion_issue_type.png", "plots/calibration.png"} <= arts


def test_bundle_carries_schema_normaliser_and_thresholds(tiny_model):
    meta = json.loads((tiny_model.bundle_dir / BUNDLE_FILE).read_text())
    assert meta["schema"] == SCHEMA.to_dict()
    assert meta["normaliser"]["mention_token"] == "@user"
    assert set(meta["policy"]["review_thresholds"]) == set(HEADS)
    assert len(meta["policy"]["channel_thresholds"]) == len(SCHEMA.prior_channels)
    assert (tiny_model.bundle_dir / "tokenizer" / "tokenizer.json").exists()


def test_predictor_result_shape_and_normaliser_invariance(tiny_predictor):
    a, b, c = tiny_predictor.classify([
        "@Delta on hold for 2 hours, flight cancelled https://t.co/x1",
        "@united on hold for 2 hours, flight cancelled http://bit.ly/zz",
        "love the new app, thanks!",
    ])
    assert a == b  # handles and links do not change the answer
    for r in (a, c):
        assert r["urgency"]["label"] in SCHEMA.urgency
        assert r["issue_type"]["label"] in SCHEMA.issue_type
        assert abs(sum(r["urgency"]["scores"].values()) - 1) < 1e-4
        assert r["prior_channels"]["tried_other_channel"] == bool(r["prior_channels"]["channels"])
        assert r["urgency"]["score"] == max(r["urgency"]["scores"].values()) or r["urgency"]["score"] in r["urgency"]["scores"].values()
    assert tiny_predictor.classify([]) == []


def test_registered_champion_is_a_self_contained_pyfunc(tiny_model):
    client = MlflowClient()
    mv = client.get_model_version_by_alias("frontline", "champion")
    assert str(mv.version) == tiny_model.summary["version"]
    model = mlflow.pyfunc.load_model("models:/frontline@champion")
    texts = ["my card was charged twice", "where is my parcel?"]
    out = model.predict(pd.DataFrame({"text": texts}))
    assert list(out.columns) == flat_columns()
    assert len(out) == 2
    # same texts in the same batch (int8 dynamic quantisation scales activations per batch)
    direct = Predictor(tiny_model.bundle_dir).classify(texts)[0]
    assert out.loc[0, "urgency"] == direct["urgency"]["label"]
    assert np.isclose(out.loc[0, "urgency_score"], direct["urgency"]["score"], atol=1e-5)
    local = mlflow.artifacts.download_artifacts(f"models:/frontline/{mv.version}")
    text = open(f"{local}/requirements.txt").read()
    # explicit pip requirements, those of the runtime the bundle carries (ONNX here: no torch)
    assert "mlflow==" in text and "onnxruntime==" in text and "torch" not in text


def test_load_resolves_alias_to_a_pinned_version(tiny_model):
    loaded = tracking.load("models:/frontline@champion")
    assert (loaded.name, loaded.alias, loaded.version) == ("frontline", "champion", tiny_model.summary["version"])
    assert loaded.uri == f"models:/frontline/{loaded.version}"
    assert loaded.run_id == tiny_model.summary["run_id"]


def _register_with_score(tiny_model, score: float) -> str:
    """A new version of the same model whose run scored `score` on validation."""
    client = MlflowClient()
    champion = client.get_model_version_by_alias("frontline", "champion")
    with mlflow.start_run() as run:
        mlflow.log_metric("val_selection_score", score)
    return str(client.create_model_version("frontline", champion.source, run_id=run.info.run_id).version)


def test_promote_refuses_a_worse_version_unless_forced(tiny_model):
    champion = tracking.champion()
    worse = _register_with_score(tiny_model, champion.score - 0.1)
    with pytest.raises(tracking.PromotionRefused, match="below champion"):
        tracking.promote(worse)
    assert tracking.champion().version == champion.version
    new, old = tracking.promote(worse, force=True)
    assert tracking.champion().version == worse and old.version == champion.version
    better = _register_with_score(tiny_model, champion.score + 0.1)
    tracking.promote(better)
    assert tracking.champion().version == better
    tracking.promote(champion.version, force=True)  # restore for the other tests


def test_cli_evaluate_writes_metrics_and_plots(tiny_model, tmp_path):
    from serving.cli import app

    data = tmp_path / "sample.jsonl"
    data.write_text("".join(open(DATA).readlines()[:120]))
    res = CliRunner().invoke(app, ["evaluate", "--model", str(tiny_model.bundle_dir), "--data", str(data),
                                   "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    assert f"scored: every row of {data} (120 posts)" in res.output.replace("\n", "")
    record = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert record["scored"]["split"] == "all" and record["scored"]["n"] == 120
    assert 0 <= record["metrics"]["urgency_macro_f1"] <= 1
    assert (tmp_path / "eval" / "confusion_urgency.png").stat().st_size > 1000


def test_cli_evaluate_defaults_to_the_held_out_test_split(tiny_model, tmp_path):
    from serving.cli import app
    from training.data import load_splits

    res = CliRunner().invoke(app, ["evaluate", "--model", str(tiny_model.bundle_dir), "--out", str(tmp_path / "e")],
                             env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    n_test = len(load_splits(DATA)["test"])
    assert f"the test split of {DATA} ({n_test} of 10275 posts, seed 13)" in res.output
    record = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert record["scored"] == {"data": str(DATA), "split": "test", "n": n_test,
                                "description": f"the test split of {DATA} ({n_test} of 10275 posts, seed 13)"}
    bad = CliRunner().invoke(app, ["evaluate", "--model", str(tiny_model.bundle_dir), "--split", "dev"])
    assert bad.exit_code == 2 and "unknown split 'dev'" in bad.output


def test_every_registered_version_carries_its_model_card(tiny_model):
    from training.model_card import CARD_NAME

    card = (tiny_model.bundle_dir / CARD_NAME).read_text()
    meta = json.loads((tiny_model.bundle_dir / BUNDLE_FILE).read_text())
    assert meta["data"]["version"] == "2" and meta["data"]["file"] == "data/train.jsonl"
    for needle in (meta["data"]["sha256"], meta["data"]["split_sha256"], "version 2", "Test split",
                   "risk–coverage operating point", "Known weaknesses", "CC BY-NC-SA 4.0",
                   f"MLflow run {tiny_model.summary['run_id']}", "| 0.85 (default) |"):
        assert needle in card, needle
    client = MlflowClient()
    mv = client.get_model_version("frontline", tiny_model.summary["version"])
    assert mv.tags["data_sha256"] == meta["data"]["split_sha256"] and mv.tags["n_extra_used"] == "0"
    stored = tracking.load(f"models:/frontline/{mv.version}").predictor.path / CARD_NAME
    assert stored.read_text() == card and "models/frontline" not in str(stored)  # inside the version's artifact


def test_cli_promote_reports_refusal(tiny_model):
    from serving.cli import app

    worse = _register_with_score(tiny_model, -1.0)
    res = CliRunner().invoke(app, ["promote", worse])
    assert res.exit_code == 1 and "refused" in res.output
