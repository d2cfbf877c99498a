"""The logged MLflow model names the runtime it carries, and the serving path never needs the training stack.

An ONNX bundle's pyfunc lists onnxruntime + tokenizers (+ scikit-learn for the lexical half) and no torch, and
loads and predicts in a process where torch, transformers and datasets cannot be imported. A torch-only bundle
lists torch. Every serving module imports without the training stack.
"""

from __future__ import annotations

import json
import shutil

import mlflow

from tests.deploy.support import ROOT, TRAINING_ONLY, run_without_training_stack
from training import paths, tracking
from training.predict import ONNX_FILE, WEIGHTS_FILE


def _names(reqs: list[str]) -> set[str]:
    return {r.split("==")[0].lower() for r in reqs}


def test_an_onnx_bundle_requires_onnxruntime_not_torch(tiny_model):
    assert (tiny_model.bundle_dir / ONNX_FILE).exists() and (tiny_model.bundle_dir / WEIGHTS_FILE).exists()
    names = _names(tracking.pip_requirements(tiny_model.bundle_dir))
    assert {"mlflow", "onnxruntime", "tokenizers", "numpy", "pandas", "scikit-learn", "joblib"} <= names
    assert not names & {"torch", "transformers", "safetensors", "datasets"}
    release = _names(tracking.pip_requirements(paths.release_dir()))
    assert "onnxruntime" in release and "torch" not in release


def test_a_torch_only_bundle_requires_torch(tiny_model, tmp_path):
    bundle = shutil.copytree(tiny_model.bundle_dir, tmp_path / "torch-only")
    (bundle / ONNX_FILE).unlink()
    reqs = tracking.pip_requirements(bundle)
    assert {"torch", "transformers", "safetensors", "tokenizers"} <= _names(reqs)
    assert "onnxruntime" not in _names(reqs)
    torch_pin = next(r for r in reqs if r.startswith("torch=="))
    assert "+" not in torch_pin  # "2.13.0", installable from any index, not the local "+cpu" label


def test_the_logged_model_loads_and_predicts_without_torch(tiny_model):
    version = tiny_model.summary["version"]
    uri = f"models:/frontline/{version}"
    logged = (open(mlflow.pyfunc.get_model_dependencies(uri)).read()).split()
    assert "onnxruntime" in _names(logged) and not _names(logged) & {"torch", "transformers"}
    done = run_without_training_stack(f"""
        import json, mlflow, pandas as pd
        model = mlflow.pyfunc.load_model({uri!r})
        out = model.predict(pd.DataFrame({{"text": ["flight cancelled, on hold for two hours", "love the new app"]}}))
        blocked = [m for m in {sorted(TRAINING_ONLY.values())!r} if m in sys.modules]
        print(json.dumps({{"rows": out.to_dict("records"), "blocked_loaded": blocked}}))
    """, MLFLOW_TRACKING_URI=tiny_model.tracking_uri)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["blocked_loaded"] == []
    assert len(result["rows"]) == 2
    from training.schema import SCHEMA

    for row in result["rows"]:
        assert row["urgency"] in SCHEMA.urgency and row["issue_type"] in SCHEMA.issue_type
        assert abs(sum(row[f"urgency__{u}"] for u in SCHEMA.urgency) - 1) < 1e-3


def test_serving_modules_import_and_predict_without_the_training_stack():
    """Every module under serving/ (the HTTP app, batch labelling, the report, the CLI) plus the training modules the
    serving path uses import with torch & co. absent, and the shipped release classifies on onnxruntime."""
    done = run_without_training_stack("""
        import importlib, json, pkgutil
        import serving
        imported = []
        for info in pkgutil.walk_packages(serving.__path__, "serving."):
            importlib.import_module(info.name)
            imported.append(info.name)
        for name in ("training.paths", "training.predict", "training.release", "training.tracking",
                     "training.pyfunc_model", "training.cli"):
            importlib.import_module(name)
            imported.append(name)
        from serving.api.app import create_app
        create_app()
        from training.paths import release_dir
        from training.predict import Predictor
        p = Predictor(release_dir())
        label = p.classify(["my order never arrived and nobody answers the phone"])[0]["issue_type"]["label"]
        blocked = [m for m in _Absent.blocked if m in sys.modules]
        print(json.dumps({"imported": imported, "runtime": p.runtime, "label": label, "blocked_loaded": blocked}))
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["runtime"] == "onnx" and result["label"] and result["blocked_loaded"] == []
    assert {"serving.api.app", "serving.batch.labelling", "serving.cli"} <= set(result["imported"])
    assert (ROOT / "serving" / "api" / "app.py").exists()
