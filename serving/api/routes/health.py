"""Liveness and readiness probes (no API key: load balancers and Kubernetes call them).

Why two: ``live`` says the process answers (restart it if not); ``ready`` says a model is loaded (send
traffic only then). A failed model load keeps the process alive and not ready, with the reason, the
attempts made and when the next comes (the first load is retried with backoff, ``first_load.py``), so a
store that answers late or a reload fixes it without a restart loop.
"""

from __future__ import annotations

import math

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
                       503: {"model": Ready, "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                             "description": "No model yet: `loading` (an attempt is running), `retrying` (an attempt "
                                            "failed, see `reason`; the next comes in `next_retry_in_s`) or `failed` "
                                            "(the attempts are spent; a reload can still load it)."}})
async def ready(predictor: PredictorDep):
    if predictor.ready:
        return Ready(status="ready", model=model_ref(predictor.current))
    state = predictor.first_load.readiness()
    body = Ready(**state)
    wait = state["next_retry_in_s"]
    return JSONResponse(body.model_dump(), status_code=503,
                        headers={"Retry-After": str(max(1, math.ceil(wait)) if wait is not None else 5)})
