"""``POST /v1/admin/reload``: hot-swap the model without a restart.

Why: after ``frontline promote`` moves the champion alias, each replica re-resolves it here (or by
itself every ``reload_poll_seconds``). The new version is loaded fully while the old one serves; the
swap is atomic, so no request fails during it. If loading fails, the old model keeps serving.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from serving.api.deps import PredictorDep, require_admin_key
from serving.api.errors import responses
from serving.api.schemas import ReloadRequest, ReloadResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/reload", response_model=ReloadResponse, summary="Reload the model (re-resolve the alias)",
             dependencies=[Depends(require_admin_key)], responses=responses(401, 422, 500))
async def reload(predictor: PredictorDep, body: Annotated[ReloadRequest | None, Body()] = None) -> dict:
    body = body or ReloadRequest()
    return await predictor.reload(body.uri, force=body.force)
