"""The ``frontline`` console command: training commands plus the serving ones."""

from __future__ import annotations

from training.cli import app
from serving.label_cli import register as _register_label
_register_label(app)
from serving.serve_cli import register as _register_serve
_register_serve(app)

__all__ = ["app"]
