"""The ``frontline`` console command: training commands plus the serving ones.

``python -m serving.cli`` runs the same command (useful from a checkout that is not the installed one).
"""

from __future__ import annotations

from serving.api.cli import register as _register_serve
from serving.batch.cli import register as _register_label
from serving.feedback.cli import register as _register_feedback
from training.cli import app

_register_label(app)
_register_serve(app)
_register_feedback(app)

__all__ = ["app"]

if __name__ == "__main__":
    app()
