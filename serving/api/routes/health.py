"""Liveness and readiness probes (no API key: load balancers and Kubernetes call them).

Why two: ``live`` says the process answers (restart it if not); ``ready`` says a model is loaded (send
traffic only then). A failed model load keeps the process alive and not ready, with the reason, so a
reload can fix it without a restart loop.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serving.api.deps import PredictorDep
from serving.api.predictor import model_ref
from serving.api.schemas import Live, Ready

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Live, summary="The process is up",
            responses={200: {"description": "Always, while the process answers."}})
async def live() -> Live:
    return Live(status="ok")


@router.get("/ready", response_model=Ready, summary="A model is loaded and serving",
            responses={200: {"description": "A model is loaded."},
                       503: {"model": Ready, "description": "No model yet: loading, or loading failed (see error)."}})
async def ready(predictor: PredictorDep):
    if predictor.ready:
        return Ready(status="ready", model=model_ref(predictor.current))
    body = Ready(status="loading" if predictor.loading else "failed", error=predictor.load_error)
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
