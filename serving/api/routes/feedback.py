"""``POST /v1/feedback``: an agent's corrected labels, stored for retraining and for the agreement metric.

Why the answer travels with the correction: agreement ("how often did agents keep what version N said?")
needs what version N said. The client sends it (``predicted``, copied from the classify response), or,
when the corrected version is the one serving, the service recomputes it from the text; otherwise the
correction is stored (it still trains the next model) but not counted. Nothing is inferred for a version
that is not loaded. Database trouble answers 503 on this route only: classification never depends on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Request, Response
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from serving.api import deps
from serving.api.deps import PredictorDep, SettingsDep, require_json
from serving.api.errors import ApiError, ErrorDetail, ErrorResponse, PostsInvalid
from serving.feedback.schemas import FEEDBACK_EXAMPLES, FeedbackRequest, FeedbackSaved
from serving.feedback.store import FeedbackStore, FeedbackStoreError

log = logging.getLogger("frontline.feedback")


class FeedbackUnavailable(ApiError):
    status_code, type = 503, "feedback_unavailable"


class AgreementCollector:
    """``frontline_feedback_agreement{version,head}`` and ``frontline_feedback_corrections{version}``, read from
    the database at scrape time (cached ``ttl`` seconds), so every replica reports the same shared figures."""

    def __init__(self, store: FeedbackStore, ttl: float = 10.0):
        self.store, self.ttl = store, ttl
        self._cached: tuple[float, list] = (0.0, [])

    def describe(self):  # no database query when the collector is registered
        return [GaugeMetricFamily("frontline_feedback_agreement", "", labels=["version", "head"]),
                GaugeMetricFamily("frontline_feedback_corrections", "", labels=["version"])]

    def collect(self):
        now = time.monotonic()
        if now - self._cached[0] > self.ttl:
            try:
                self._cached = (now, self.store.agreement())
            except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database is down
                log.warning("feedback agreement not available: %s", exc)
                self._cached = (now, [])
        agree = GaugeMetricFamily("frontline_feedback_agreement", "Share of agents' corrections that kept the model "
                                  "version's label, per head (corrections whose answer is known).",
                                  labels=["version", "head"])
        count = GaugeMetricFamily("frontline_feedback_corrections", "Corrections stored per model version.",
                                  labels=["version"])
        for a in self._cached[1]:
            version = a.model_version or "unknown"
            count.add_metric([version], a.corrections)
            for head, share in a.agreement.items():
                if share is not None:
                    agree.add_metric([version, head], share)
        yield agree
        yield count


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Open the store (running its migrations) at startup; a failure is logged and retried on first use."""
    store = FeedbackStore(app.state.settings.feedback_url)
    app.state.feedback_store = store
    registry = app.state.metrics.registry
    collector = AgreementCollector(store)
    received = Counter("frontline_feedback_received", "Corrections received by this process, by outcome.",
                       ["outcome"], registry=registry)
    app.state.feedback_received, app.state.feedback_collector = received, collector
    registry.register(collector)
    try:
        await asyncio.to_thread(store.open)
    except FeedbackStoreError as exc:
        log.error("feedback database unavailable at startup (POST /v1/feedback answers 503 until it is): %s", exc)
    try:
        yield
    finally:
        registry.unregister(collector)
        registry.unregister(received)
        await asyncio.to_thread(store.close)


router = APIRouter(prefix="/v1", tags=["feedback"], lifespan=lifespan)


def require_feedback_key(request: Request, settings: SettingsDep,
                         _doc: Annotated[str | None, Depends(deps.api_key_scheme)] = None) -> str | None:
    """Inference, admin or feedback-only keys (``FRONTLINE_FEEDBACK_API_KEYS``) are accepted here."""
    keys = [*deps.inference_keys(settings), *settings.feedback_api_keys]
    return deps._check(request, settings, keys, "feedback")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": FeedbackSaved, "description": "Replaced this agent's earlier correction of the post (same id)."},
    401: _error("Missing or invalid API key."),
    413: _error("Body far larger than any valid correction."),
    415: _error("Content-Type is not application/json."),
    422: _error("Malformed JSON, an unknown field, a label not in the schema, or an empty or over-long text."),
    503: _error("The corrections database is unreachable (`feedback_unavailable`); retry later. "
                "Classification is not affected."),
}

DESCRIPTION = """Store an agent's corrected labels for a post, for the next training run and the agreement metric.

Labels are validated against the schema (`GET /v1/model` `labels`); unknown fields are refused. Send the
`model` block of the classify response and, ideally, the labels it answered in `predicted`.

**Idempotent per (`post_id`, `agent`)**: the first correction is created (201); a later one from the same agent
for the same post replaces it (200, same `id`), so a retried call never counts twice. Different agents
correcting one post are kept side by side (`frontline feedback export` keeps the latest per post).

The text is stored (a retrained model learns from it): it may hold personal data; see the README.
"""


async def _answer_of(predictor: Any, body: FeedbackRequest) -> tuple[dict | None, str | None]:
    """The labels the corrected version answered: sent by the client, else recomputed when it is serving."""
    if body.predicted is not None:
        return body.predicted.plain(), "client"
    try:
        current = predictor.current
    except ApiError:
        return None, None
    if body.model.version is None or (current.version, current.name) != (body.model.version, body.model.name):
        return None, None
    try:
        model, rows = await predictor.batcher.classify([body.text])  # no classify metrics: this is not traffic
    except ApiError:
        return None, None
    if model.version != body.model.version:  # swapped while we waited
        return None, None
    r = model.predictor.results(rows.probs, policy=predictor.policy(model))[0]
    return {"urgency": r["urgency"]["label"], "issue_type": r["issue_type"]["label"],
            "prior_channels": list(r["prior_channels"]["channels"])}, "recomputed"


@router.post("/feedback", response_model=FeedbackSaved, status_code=201, summary="Correct the model's labels",
             description=DESCRIPTION, dependencies=[Depends(require_feedback_key), Depends(require_json)],
             responses=RESPONSES)
async def feedback(body: Annotated[FeedbackRequest, Body(openapi_examples=FEEDBACK_EXAMPLES)], request: Request,
                   response: Response, predictor: PredictorDep, settings: SettingsDep) -> FeedbackSaved:
    if len(body.text) > settings.max_text_chars:
        raise PostsInvalid("The correction is not valid; nothing was stored.",
                           [ErrorDetail(field="text", problem=f"text has {len(body.text)} characters; the limit is "
                                                              f"{settings.max_text_chars}")])
    store: FeedbackStore = request.app.state.feedback_store
    predicted, source = await _answer_of(predictor, body)
    try:
        saved = await asyncio.to_thread(
            store.save, post_id=body.post_id, text=body.text, labels=body.labels.plain(), model_name=body.model.name,
            model_version=body.model.version, predicted=predicted, predicted_source=source, agent=body.agent,
            queue=body.queue)
    except Exception as exc:
        log.error("could not store a correction in %s: %s", store.safe_url, type(exc).__name__)  # no SQL, no text
        raise FeedbackUnavailable("The corrections database is unavailable; nothing was stored. Retry later.",
                                  headers={"Retry-After": "30"}) from exc
    request.app.state.feedback_received.labels("created" if saved.created else "replaced").inc()
    response.status_code = 201 if saved.created else 200
    log.info("correction %d of post %s for model %s v%s (%s)", saved.id, body.post_id, body.model.name,
             body.model.version, "new" if saved.created else "replaced")
    return FeedbackSaved(id=saved.id, post_id=body.post_id, created=saved.created, agreement_counted=predicted is not None,
                         predicted_source=source, received_at=saved.received_at.isoformat())

