"""The released model shipped in the repository, so a fresh clone serves without training first.

A release is a bundle without the torch weights: the ONNX network (int8 where it keeps parity), the tokenizer, the lexical half,
``frontline.json`` (schema, normaliser settings, policy, metrics) and a model card. ``ensure_champion``
registers it into the MLflow store as a version of ``frontline`` and makes it champion, but only when the
store has no champion yet: a model trained here always wins over the shipped one once promoted.

``frontline release`` writes ``models/release`` of the checkout; an installed package carries a copy as data
files, which is what ``ensure_champion`` registers there (``training.paths.release_dir``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from training import paths
from training.model_card import CARD_NAME, HEADLINE, model_card  # noqa: F401 - the card lives there; re-exported
from training.predict import BUNDLE_FILE, LEXICAL_ARRAYS_FILE, LEXICAL_FILE, ONNX_FILE

RELEASE_DIR = paths.CHECKOUT / "models" / "release"  # where `frontline release` writes in a checkout


def make_release(bundle_dir: Path, out_dir: Path = RELEASE_DIR, source: str = "", run_metrics: dict | None = None) -> Path:
    """Copy the inference-only parts of a bundle (it must have its ONNX network) and write its card.
    ``run_metrics`` (the source run's MLflow metrics) fill in figures the bundle lacks, e.g. the CV means
    of bundles saved before they were copied into ``frontline.json``."""
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / ONNX_FILE).exists():
        raise FileNotFoundError(f"{bundle_dir} has no {ONNX_FILE}: train with --export-onnx")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for name in (BUNDLE_FILE, ONNX_FILE, LEXICAL_FILE, LEXICAL_ARRAYS_FILE):
        if (bundle_dir / name).exists():
            shutil.copy2(bundle_dir / name, out_dir / name)
    shutil.copytree(bundle_dir / "tokenizer", out_dir / "tokenizer")
    meta = json.loads((bundle_dir / BUNDLE_FILE).read_text())
    if run_metrics:
        extra = {k: v for k, v in run_metrics.items() if k.startswith("cv_") and "__" not in k and k not in meta["metrics"]}
        meta["metrics"].update(extra)
        (out_dir / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    (out_dir / CARD_NAME).write_text(model_card(meta, source))
    return out_dir


def ensure_champion(release_dir: Path | None = None) -> str | None:
    """Register the shipped release (default: ``paths.release_dir()``) and make it champion if the store has
    no champion; return its version."""
    import mlflow

    from training import tracking

    release_dir = Path(release_dir) if release_dir is not None else paths.release_dir()
    tracking.configure()
    if tracking.champion() is not None or not (release_dir / BUNDLE_FILE).exists():
        return None
    meta = json.loads((release_dir / BUNDLE_FILE).read_text())
    with mlflow.start_run(run_name="shipped-release"):
        mlflow.set_tags({"source": "shipped release", "base": meta.get("base", "")})
        mlflow.log_metrics({k: float(v) for k, v in meta.get("metrics", {}).items()})
        if (release_dir / CARD_NAME).exists():
            mlflow.log_artifact(str(release_dir / CARD_NAME))
        version = tracking.log_model(release_dir)
    tracking.promote(version, force=True)
    return version


def ensure_champion_for(uri: str) -> str | None:
    """``ensure_champion`` when ``uri`` is the default champion alias (a fresh clone's first start)."""
    from training.tracking import CHAMPION, MODEL_NAME

    return ensure_champion() if uri == f"models:/{MODEL_NAME}@{CHAMPION}" else None
