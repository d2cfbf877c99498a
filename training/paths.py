"""Where the MLflow store and the shipped release are on disk, for a checkout and for an installed package.

Why this module: the store used to be ``<package>/../models``, which after a non-editable ``pip install``
is inside site-packages (read-only for a service user, and shared by every project in that environment).
So the location depends on how frontline runs:

- ``FRONTLINE_MODELS_DIR`` set: that directory, always (a container's mounted volume, a shared disk);
- running from a checkout (the package sits next to ``pyproject.toml``: ``make run``, an editable
  install): ``models/`` in the checkout, exactly as before;
- installed: ``./models`` under the current working directory (``/app/models`` in the image).

``MLFLOW_TRACKING_URI`` still overrides the store as a whole (``training.tracking.configure``).

The shipped release (``models/release`` in the repository) is installed as data files under
``<prefix>/share/frontline/release`` (``pyproject.toml``), so an installed package serves it on a fresh store
with nothing mounted; ``FRONTLINE_RELEASE_DIR`` points at another one.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.predict import BUNDLE_FILE

CHECKOUT = Path(__file__).resolve().parent.parent
MODELS_ENV = "FRONTLINE_MODELS_DIR"
RELEASE_ENV = "FRONTLINE_RELEASE_DIR"
# where pyproject.toml's [tool.setuptools.data-files] puts the release, relative to the install prefix
INSTALLED_RELEASE = ("share", "frontline", "release")
DISTRIBUTION = "frontline"


def from_checkout() -> bool:
    """True when the code runs from the repository (source tree or editable install), not from site-packages."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "training").is_dir()


def models_dir() -> Path:
    """The local MLflow store's directory (SQLite database + artifacts), resolved now (the cwd may change)."""
    configured = os.environ.get(MODELS_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    if from_checkout():
        return CHECKOUT / "models"
    return (Path.cwd() / "models").resolve()


def _installed_release() -> Path | None:
    """The release installed with the distribution's data files, found through its RECORD (works for
    venvs, ``--user`` and ``--prefix`` installs alike, where ``sys.prefix`` alone would not)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError:
        return None
    marker = "/".join((*INSTALLED_RELEASE, BUNDLE_FILE))
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith(marker):
            return Path(dist.locate_file(f)).resolve().parent
    return None


def release_dir() -> Path:
    """The shipped release bundle: ``FRONTLINE_RELEASE_DIR``, else the checkout's ``models/release``, else the
    installed copy. When none exists the checkout path is returned (callers check for its bundle file)."""
    configured = os.environ.get(RELEASE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    checkout = CHECKOUT / "models" / "release"
    if from_checkout() and (checkout / BUNDLE_FILE).is_file():
        return checkout
    return _installed_release() or checkout
