"""The ``frontline`` console command: training commands plus the serving ones."""

from __future__ import annotations

from training.cli import app
from serving.label_cli import register as _register_label
_register_label(app)

__all__ = ["app"]
