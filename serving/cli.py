"""The ``frontline`` console command: training commands plus the serving ones."""

from __future__ import annotations

from serving.batch.cli import register as _register_label
from training.cli import app

_register_label(app)
from serving.api.cli import register as _register_serve

_register_serve(app)

__all__ = ["app"]
