"""MLflow: where runs, models and the champion alias live.

The embedded default is a SQLite store with artifacts under the models directory (``training.paths``:
``FRONTLINE_MODELS_DIR``, else ``models/`` of the checkout, else ``./models`` of an installed package);
``MLFLOW_TRACKING_URI`` points everything at a real tracking server instead. Models are registered as
``frontline`` and served by alias (``models:/frontline@champion``); ``promote`` moves the alias only to a
version at least as good as the current champion (cross-validated mean when both have one, else the
validation score), unless forced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from training import paths  # noqa: E402

MODEL_NAME = "frontline"
CHAMPION = "champion"
EXPERIMENT = "frontline"
PYFUNC_FILE = Path(__file__).resolve().parent / "pyfunc_model.py"


def default_tracking_uri(models_dir: Path | None = None) -> str:
    return f"sqlite:///{((models_dir or paths.models_dir()) / 'mlflow.db').resolve()}"


def configure(tracking_uri: str | None = None, models_dir: Path | None = None, read_only: bool = False) -> str:
    """Point MLflow at the given URI, else ``MLFLOW_TRACKING_URI``, else the local store (``paths.models_dir``).

    ``read_only`` only sets the URIs: a serving replica reading a model needs no write access to the
    tracking server, so it must not create experiments there.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(models_dir)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if read_only:
        return uri
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifacts = None
        if uri.startswith("sqlite:///"):
            artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(EXPERIMENT)
    return uri


# What the logged pyfunc imports to predict, per network runtime (``training.predict.bundle_runtime``):
# the ONNX bundle runs on onnxruntime + tokenizers and never imports torch; a torch-only bundle needs the
# training stack. The lexical half (a scikit-learn pickle) adds scikit-learn and joblib when the bundle has it.
RUNTIME_PACKAGES = {
    "onnx": ("onnxruntime", "tokenizers"),
    "torch": ("torch", "transformers", "safetensors", "tokenizers"),
}
COMMON_PACKAGES = ("numpy", "pandas")
LEXICAL_PACKAGES = ("scikit-learn", "joblib")


def pip_requirements(bundle_dir: Path) -> list[str]:
    """The serving environment the logged model needs, pinned to this environment's versions.

    Derived from what the bundle carries, so ``mlflow models serve`` (any env manager), ``build-docker`` or
    an MLflow model server install exactly the runtime the pyfunc loads: no torch for an ONNX bundle.
    """
    from importlib.metadata import PackageNotFoundError, version

    from training.predict import LEXICAL_FILE, bundle_runtime

    bundle_dir = Path(bundle_dir)
    pkgs = [*RUNTIME_PACKAGES[bundle_runtime(bundle_dir)], *COMMON_PACKAGES]
    if (bundle_dir / LEXICAL_FILE).exists():
        pkgs += LEXICAL_PACKAGES
    reqs = [f"mlflow=={mlflow.__version__}"]  # the full mlflow, also where only mlflow-skinny is installed
    for p in dict.fromkeys(pkgs):
        try:
            reqs.append(f"{p}=={version(p).split('+')[0]}")  # "2.13.0+cpu" -> "2.13.0": any index's build
        except PackageNotFoundError as exc:
            raise RuntimeError(f"cannot log a model that needs {p}: it is not installed here") from exc
    return reqs


def log_model(bundle_dir: Path, register: bool = True) -> str | None:
    """Log the bundle as a models-from-code pyfunc in the active run; register it; return the version."""
    import pandas as pd

    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PYFUNC_FILE),
        artifacts={"bundle": str(bundle_dir)},
        code_paths=[str(Path(__file__).resolve().parent)],
        pip_requirements=pip_requirements(bundle_dir),
        input_example=pd.DataFrame({"text": ["@airline on hold for 2 hours and still no answer, flight cancelled"]}),
        registered_model_name=MODEL_NAME if register else None,
    )
    return str(info.registered_model_version) if register else None


@dataclass
class Version:
    version: str
    run_id: str
    scores: dict = field(default_factory=dict)  # yardstick → value, best yardstick first

    @property
    def score(self) -> float | None:
        """The version's score on its best yardstick (what the CLI prints)."""
        return next(iter(self.scores.values()), None)

    def compare(self, other: "Version") -> tuple[str, float, float] | None:
        """(yardstick, mine, theirs) on the best yardstick both versions have; None if they share none."""
        for k in YARDSTICKS:
            if k in self.scores and k in other.scores:
                return k, self.scores[k], other.scores[k]
        return None


# Yardsticks promotion compares, best first: the cross-validated mean (runs whose policy came from
# out-of-fold predictions carry it) and the validation split's score (single-split runs).
YARDSTICKS = ("cv_selection_score_mean", "val_selection_score")


def _version(client: MlflowClient, version: str) -> Version:
    mv = client.get_model_version(MODEL_NAME, version)
    metrics = client.get_run(mv.run_id).data.metrics
    return Version(str(mv.version), mv.run_id, {k: metrics[k] for k in YARDSTICKS if k in metrics})


def champion(client: MlflowClient | None = None) -> Version | None:
    client = client or MlflowClient()
    try:
        mv = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException:
        return None
    return _version(client, mv.version)


class PromotionRefused(RuntimeError):
    pass


# Shadow scoring (serving.api.shadow) writes its counts as tags on the challenger's model version, so
# `frontline promote --min-shadow-posts` can read them from the registry alone (no running service needed).
SHADOW_TAG = "frontline.shadow."


def shadow_stats(version: str, client: MlflowClient | None = None) -> dict:
    """The shadow counts stored on ``version``: ``posts``, ``champion_version``, ``agree`` per head, ``updated_at``."""
    client = client or MlflowClient()
    tags = client.get_model_version(MODEL_NAME, str(version)).tags or {}
    got = {k.removeprefix(SHADOW_TAG): v for k, v in tags.items() if k.startswith(SHADOW_TAG)}
    if not got:
        return {"posts": 0, "champion_version": None, "agree": {}, "updated_at": None}
    return {"posts": int(got.get("posts", 0)), "champion_version": got.get("champion_version"),
            "agree": {k.removeprefix("agree."): int(v) for k, v in got.items() if k.startswith("agree.")},
            "updated_at": got.get("updated_at")}


def write_shadow_stats(version: str, stats: dict, client: MlflowClient | None = None) -> None:
    """Store ``stats`` (as ``shadow_stats`` returns them) as tags on ``version``."""
    client = client or MlflowClient()
    tags = {"posts": stats["posts"], "champion_version": stats["champion_version"] or "",
            "updated_at": stats.get("updated_at") or ""}
    tags.update({f"agree.{h}": n for h, n in stats["agree"].items()})
    for k, v in tags.items():
        client.set_model_version_tag(MODEL_NAME, str(version), SHADOW_TAG + k, str(v))


def check_shadow(candidate: str, current: "Version | None", min_posts: int, client: MlflowClient) -> dict:
    """Refuse unless ``candidate`` was scored in shadow on at least ``min_posts`` posts against ``current``."""
    stats = shadow_stats(candidate, client)
    against = current.version if current else None
    if against is not None and stats["posts"] and stats["champion_version"] != against:
        raise PromotionRefused(f"version {candidate}'s shadow sample ({stats['posts']} posts) was scored against "
                               f"version {stats['champion_version']}, not the champion (version {against}); "
                               "serve it in shadow of the current champion first")
    if stats["posts"] < min_posts:
        raise PromotionRefused(f"version {candidate} was scored in shadow on {stats['posts']} posts, fewer than the "
                               f"{min_posts} required; serve it with FRONTLINE_SHADOW_URI until it has them")
    return stats


def promote(version: str | None = None, force: bool = False, min_shadow_posts: int = 0) -> tuple[Version, Version | None]:
    """Set ``champion`` on ``version`` (default: the newest); refuse a worse one unless ``force``.

    ``min_shadow_posts`` > 0 also requires that many posts scored in shadow against the current champion
    (``shadow_stats``); ``force`` does not lift that requirement, which the caller asked for explicitly.
    """
    client = MlflowClient()
    if version is None:
        versions = client.search_model_versions(f"name='{MODEL_NAME}'")
        if not versions:
            raise PromotionRefused(f"no registered versions of {MODEL_NAME!r}: run `frontline train` first")
        version = str(max(int(v.version) for v in versions))
    candidate = _version(client, str(version))
    current = champion(client)
    if current and current.version == candidate.version:
        return candidate, current
    if min_shadow_posts > 0:
        check_shadow(candidate.version, current, min_shadow_posts, client)
    if current and not force and current.score is not None:
        shared = candidate.compare(current)
        if candidate.score is None or (shared is not None and shared[1] < shared[2]):
            mine, theirs = (shared[1], shared[2]) if shared else (candidate.score, current.score)
            raise PromotionRefused(
                f"version {candidate.version} scores {mine} ({shared[0] if shared else 'no score'}), below champion "
                f"version {current.version} ({theirs:.4f}); use --force to promote anyway"
            )
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, candidate.version)
    return candidate, current


@dataclass
class LoadedModel:
    """A predictor plus where it came from (for /v1/model and the logs)."""

    predictor: object
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None


def load(uri: str, **predictor_kwargs) -> LoadedModel:
    """Load a predictor from a bundle directory or an MLflow model URI (``models:/frontline@champion``).

    Registry URIs are resolved to a pinned version (a later alias move must not change what was loaded),
    and the logged bundle is read straight from the artifact store (a local store without copying), so
    loading costs what the predictor costs, not a pyfunc environment. ``predictor_kwargs`` go to
    ``Predictor`` (batch_size, num_threads, runtime).
    """
    from training.predict import BUNDLE_FILE, Predictor

    def bundle_in(path: Path) -> Path | None:
        """The bundle itself, or the one an MLflow model directory names as its ``bundle`` artifact."""
        if (path / BUNDLE_FILE).exists():
            return path
        if (path / "MLmodel").exists():
            import yaml

            flavor = yaml.safe_load((path / "MLmodel").read_text())["flavors"].get("python_function", {})
            rel = flavor.get("artifacts", {}).get("bundle", {}).get("path")
            if rel and (path / rel / BUNDLE_FILE).exists():
                return path / rel
        return None

    local = bundle_in(Path(uri))
    if local is not None:
        return LoadedModel(Predictor(local, **predictor_kwargs), str(uri))
    configure(read_only=True)
    name = version = alias = run_id = None
    client = MlflowClient()
    if uri.startswith("models:/"):
        ref = uri.removeprefix("models:/")
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, version = ref.split("/", 1)
            mv = client.get_model_version(name, version)
        version, run_id = str(mv.version), mv.run_id
        uri = f"models:/{name}/{version}"
        source = client.get_model_version_download_uri(name, version)
    else:
        source = uri
    if source.startswith("file://"):
        from urllib.parse import unquote, urlparse

        root = Path(unquote(urlparse(source).path))
    else:
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=source))
    bundle = bundle_in(root)
    if bundle is None:
        raise FileNotFoundError(f"{uri} is not a frontline model: no {BUNDLE_FILE} under {root}")
    return LoadedModel(Predictor(bundle, **predictor_kwargs), uri, name, version, alias, run_id)


def tag_version(version: str, tags: dict[str, str], name: str = MODEL_NAME) -> None:
    """Tag a registered version (the model card's provenance: data hash and version, corrections used,
    headline scores), so the registry answers "what is version N" without opening its artifacts."""
    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, str(version), k, str(v))
