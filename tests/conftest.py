"""Session fixtures: offline environment, a tiny trained model and a temporary MLflow store.

The tiny model (random 2-layer encoder, 400 training posts, 1 epoch) is trained and registered once per
session, in a temporary MLflow store, so every test that needs "a registered champion" gets a real one in
seconds without touching ``models/``.
"""

from __future__ import annotations

import os

for _k, _v in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "MLFLOW_DISABLE_TELEMETRY": "true", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ[_k] = _v

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "train.jsonl"


@dataclass
class TinyModel:
    tracking_uri: str
    bundle_dir: Path
    summary: dict
    uri: str = "models:/frontline@champion"


@pytest.fixture(scope="session", autouse=True)
def feedback_db(tmp_path_factory) -> str:
    """Every app a test starts stores corrections in a temporary SQLite file, never in models/feedback.db."""
    url = f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'feedback.db'}"
    os.environ["FRONTLINE_FEEDBACK_URL"] = url
    return url


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> str:
    """A temporary SQLite MLflow store, made the active tracking URI for the whole session."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from training import tracking

    tracking.configure(uri)
    return uri


@pytest.fixture(scope="session")
def tiny_model(mlflow_store, tmp_path_factory) -> TinyModel:
    """A tiny model trained on 400 posts, registered as 'frontline' and promoted to champion."""
    from training.experiment import run
    from training.train import TrainConfig

    bundle = tmp_path_factory.mktemp("bundle") / "frontline"
    summary = run(TrainConfig(base="tiny", epochs=1, limit=400, batch_size=32), out_dir=bundle, progress=False)
    return TinyModel(mlflow_store, bundle, summary)


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model):
    from training.predict import Predictor

    return Predictor(tiny_model.bundle_dir)
