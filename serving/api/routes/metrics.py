"""``GET /metrics``: Prometheus text format (no API key; keep it on the internal network)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.api.deps import PredictorDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition format.",
                             "content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(predictor: PredictorDep) -> Response:
    return Response(generate_latest(predictor.metrics.registry), media_type=CONTENT_TYPE_LATEST)
