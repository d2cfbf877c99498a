"""The shipped release: packaged without torch weights, registered as champion only into an empty store."""

import json

from mlflow import MlflowClient

from training import release, tracking
from training.predict import BUNDLE_FILE, ONNX_FILE, WEIGHTS_FILE, Predictor


def test_release_has_no_torch_weights_and_a_card(tiny_model, tmp_path):
    out = release.make_release(tiny_model.bundle_dir, tmp_path / "release", source="test")
    assert not (out / WEIGHTS_FILE).exists()
    assert (out / ONNX_FILE).exists() and (out / "tokenizer" / "tokenizer.json").exists()
    card = (out / release.CARD_NAME).read_text()
    assert "TF-IDF" in card and "CC BY-NC-SA 4.0" in card and "urgency macro-F1" in card
    p = Predictor(out)
    assert p.runtime == "onnx"
    assert p.classify(["my parcel never arrived"])[0]["issue_type"]["label"]


def test_ensure_champion_registers_only_into_an_empty_store(tiny_model, tmp_path, monkeypatch):
    out = release.make_release(tiny_model.bundle_dir, tmp_path / "release", source="test")
    empty = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty)
    try:
        version = release.ensure_champion(out)
        assert version == "1"
        client = MlflowClient(tracking_uri=empty, registry_uri=empty)
        assert str(client.get_model_version_by_alias("frontline", "champion").version) == "1"
        meta = json.loads((out / BUNDLE_FILE).read_text())
        assert tracking.champion().score == meta["metrics"]["val_selection_score"]
        assert release.ensure_champion(out) is None  # a champion exists: nothing is registered again
        assert len(client.search_model_versions("name='frontline'")) == 1
        loaded = tracking.load("models:/frontline@champion")
        assert loaded.version == "1" and loaded.predictor.runtime == "onnx"
    finally:
        tracking.configure(tiny_model.tracking_uri)  # back to the session store for the other tests
