"""The ``frontline`` console command: training commands plus the serving ones."""

from __future__ import annotations

from training.cli import app

__all__ = ["app"]
