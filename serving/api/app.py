"""The app factory: ``create_app(settings)`` wires settings, the shared predictor, routers, errors, metrics.

Why a factory: tests build apps with their own ``Settings`` (no environment needed), and uvicorn builds
one per worker (``uvicorn --factory serving.api.app:create_app``, which is what ``frontline serve`` runs).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from serving.api import errors, shadow
from serving.api.deps import admin_keys, inference_keys
from serving.api.metrics import ServiceMetrics
from serving.api.middleware import ObserveRequests
from serving.api.predictor import SharedPredictor
from serving.api.ratelimit import KeyRateLimits
from serving.api.routes import admin, classify, feedback, health, metrics, model
from serving.api.schemas import install_openapi
from serving.api.settings import Settings

log = logging.getLogger("frontline.serving")

DESCRIPTION = """Triage of customer complaint posts: urgency, issue type and the channels the customer already tried.

Every error has the same JSON shape: `{"error": {"type", "message", "details": [{"field", "index", "problem"}]}}`.
`/v1/*` needs an API key in the `X-API-Key` header (when keys are configured); health probes and `/metrics` do not.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service_metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not inference_keys(settings):
            log.warning("AUTHENTICATION IS DISABLED: no FRONTLINE_API_KEYS configured, /v1/classify is open to anyone "
                        "who can reach this port")
        if not admin_keys(settings):
            log.warning("AUTHENTICATION IS DISABLED for /v1/admin/*: anyone who can reach this port can reload the model")
        predictor = SharedPredictor(settings, service_metrics)
        app.state.predictor = predictor
        await predictor.start()
        try:
            yield
        finally:
            await predictor.stop()

    app = FastAPI(title="frontline", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = service_metrics
    app.state.rate_limits = (KeyRateLimits(settings.rate_limit, settings.rate_limit_storage, service_metrics)
                             if settings.rate_limit else None)
    errors.install(app)
    for r in (classify.router, model.router, admin.router, health.router, metrics.router, feedback.router,
              shadow.router()):
        app.include_router(r)
    app.add_middleware(ObserveRequests, metrics=service_metrics, max_body_bytes=settings.max_body_bytes)
    install_openapi(app, settings)  # the document carries this server's limits (max_posts, max_text_chars)
    return app
