"""``frontline serve``: run the HTTP service under uvicorn.

Why the environment: uvicorn builds the app with ``create_app()`` in each worker process
(``factory=True``), so options given here travel as ``FRONTLINE_*`` variables and every worker reads
the same ``Settings``.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
        workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads the model; prefer replicas).")] = 1,
        model: Annotated[str | None, typer.Option(
            help="Model URI or bundle directory [default: FRONTLINE_MODEL_URI or models:/frontline@champion].")] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    ):
        """Serve POST /v1/classify, health probes, /v1/model, /metrics (settings: FRONTLINE_* env / .env)."""
        import logging

        import uvicorn

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        if model:
            os.environ["FRONTLINE_MODEL_URI"] = model
        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from training.release import ensure_champion_for

        shipped = ensure_champion_for(os.environ.get("FRONTLINE_MODEL_URI", "models:/frontline@champion"))
        if shipped:
            logging.getLogger("frontline").info("registered the shipped release as frontline version %s (champion)", shipped)
        uvicorn.run("serving.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level)
