"""``POST /v1/admin/reload``: hot-swap the model without a restart.

Why: after ``frontline promote`` moves the champion alias, each replica re-resolves it here (or by
itself every ``reload_poll_seconds``). The new version is loaded fully while the old one serves; the
swap is atomic, so no request fails during it. If loading fails, the old model keeps serving.

Whose fault a failed reload is decides its status: a URI that names nothing (no such registered model,
version or alias, no such directory, not a frontline model, labels that differ from the service's) is
the caller's mistake, a 404 ``model_not_found``; anything else (the store unreachable, a broken
file) is the server's, a 500 ``reload_failed``.
"""

from __future__ import annotations

import errno
from typing import Annotated

from fastapi import APIRouter, Body, Depends

from serving.api.deps import PredictorDep, require_admin_key
from serving.api.errors import ModelNotFound, ReloadFailed, responses
from serving.api.schemas import ReloadRequest, ReloadResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"])

# MLflow's error codes for "that does not exist" / "that is not a valid name" (mlflow.protos.databricks_pb2)
_MLFLOW_CALLER_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "BAD_REQUEST", "ENDPOINT_NOT_FOUND"}


def callers_mistake(exc: BaseException | None) -> bool:
    """True when a load failed because the URI names no loadable frontline model."""
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError, KeyError)):
        return True  # ValueError: a malformed URI, a NUL byte, or labels that differ from the service's
    if isinstance(exc, OSError) and exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.EACCES):
        return True  # a path no model can be at (or one this process may not read)
    return getattr(exc, "error_code", None) in _MLFLOW_CALLER_CODES  # an MlflowException


@router.post("/reload", response_model=ReloadResponse, summary="Reload the model (re-resolve the alias)",
             dependencies=[Depends(require_admin_key)], responses=responses(400, 401, 404, 413, 422, 500))
async def reload(predictor: PredictorDep, body: Annotated[ReloadRequest | None, Body()] = None) -> dict:
    body = body or ReloadRequest()
    try:
        return await predictor.reload(body.uri, force=body.force)
    except ReloadFailed as exc:
        if callers_mistake(exc.__cause__):
            raise ModelNotFound(exc.message) from exc
        raise
