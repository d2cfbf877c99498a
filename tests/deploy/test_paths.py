"""Where the store and the release are: the checkout's ``models/`` as before, ``./models`` once installed, or
wherever ``FRONTLINE_MODELS_DIR`` / ``FRONTLINE_RELEASE_DIR`` say."""

from pathlib import Path

import mlflow
import pytest

from training import paths, release, tracking
from training.predict import BUNDLE_FILE


@pytest.fixture
def restore_mlflow():
    """These tests point MLflow elsewhere; put the session's store back after each."""
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_a_checkout_keeps_its_models_directory(monkeypatch):
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    monkeypatch.delenv(paths.RELEASE_ENV, raising=False)
    assert paths.from_checkout()
    assert paths.models_dir() == paths.CHECKOUT / "models"
    assert paths.release_dir() == paths.CHECKOUT / "models" / "release"
    assert (paths.release_dir() / BUNDLE_FILE).is_file()
    assert tracking.default_tracking_uri() == f"sqlite:///{paths.CHECKOUT / 'models' / 'mlflow.db'}"


def test_an_installed_package_keeps_its_store_in_the_working_directory(monkeypatch, tmp_path):
    site = tmp_path / "site-packages"  # what CHECKOUT is after a non-editable install: no pyproject.toml
    (site / "training").mkdir(parents=True)
    monkeypatch.setattr(paths, "CHECKOUT", site)
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert not paths.from_checkout()
    assert paths.models_dir() == work / "models"
    assert tracking.default_tracking_uri() == f"sqlite:///{work / 'models' / 'mlflow.db'}"
    assert not str(paths.models_dir()).startswith(str(site))


def test_the_environment_overrides_both(monkeypatch, tmp_path, restore_mlflow):
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path / "store"))
    monkeypatch.setenv(paths.RELEASE_ENV, str(tmp_path / "rel"))
    assert paths.models_dir() == tmp_path / "store"
    assert paths.release_dir() == tmp_path / "rel"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.configure(read_only=True)
    assert uri == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert (tmp_path / "store").is_dir()  # created for the SQLite file


def test_ensure_champion_with_no_release_anywhere_registers_nothing(monkeypatch, tmp_path, restore_mlflow):
    monkeypatch.setenv(paths.RELEASE_ENV, str(tmp_path / "missing"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'fresh.db'}")
    assert release.ensure_champion() is None
    assert tracking.champion() is None


def test_the_wheel_carries_the_release_files():
    """pyproject's data-files globs cover every file of the shipped release (a new file kind would be left out)."""
    import tomllib

    cfg = tomllib.loads((paths.CHECKOUT / "pyproject.toml").read_text())
    globs = [g for targets in cfg["tool"]["setuptools"]["data-files"].values() for g in targets]
    shipped = {p for p in (paths.CHECKOUT / "models" / "release").rglob("*") if p.is_file()}
    covered = {p for g in globs for p in paths.CHECKOUT.glob(g) if p.is_file()}
    assert shipped and shipped == covered, sorted(str(p) for p in shipped ^ covered)
    for target, targets in cfg["tool"]["setuptools"]["data-files"].items():
        assert Path(target).parts[:3] == paths.INSTALLED_RELEASE
