"""``POST /v1/classify``: the helpdesk's entry point.

Bad-post policy (also in the OpenAPI description and the README): a call is all or nothing. If any
post is invalid (empty or whitespace-only text, text over max_text_chars, missing id...), the whole
call is answered 422 and ``error.details`` lists EVERY bad post with its index and field, so the
client can fix or drop exactly those and resend; no post is classified, none is silently dropped,
and a 200 always has exactly one result per post sent, in order. Why: positional results never need
to be matched against a mixed list of results and errors, and a client bug (which is what an invalid
post almost always is) surfaces at once instead of turning into quietly missing labels.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends

from serving.api.deps import (
    PredictorDep,
    SettingsDep,
    ShedFirstRoute,
    enforce_rate_limit,
    require_api_key,
    require_json,
)
from serving.api.errors import ErrorDetail, PostsInvalid, TooManyPosts, responses
from serving.api.predictor import model_ref
from serving.api.schemas import CLASSIFY_EXAMPLES, ClassifyRequest, ClassifyResponse
from serving.pii import personal_data_kinds

log = logging.getLogger("frontline.serving")

router = APIRouter(prefix="/v1", tags=["classify"], route_class=ShedFirstRoute)  # overload: 429 before parsing

DESCRIPTION = """Label posts with urgency, issue type and the channels the customer already tried.

Send `{"posts": [{"id": ..., "text": ...}, ...]}` (1 to max_posts posts) or `{"text": ...}` (one post);
both return `results`, one per post, in the order sent.

**One bad post fails the call (422), listing every bad post.** If any post is invalid (empty or
whitespace-only text, text longer than max_text_chars, missing or non-string id), nothing is
classified and `error.details` names each bad post (`field: "posts[2].text"`, `index: 2`) with the
problem, all in one response, so you can fix or drop exactly those posts and resend.
More than max_posts posts is a 413.

**Fast answer or fast refusal (429).** A call whose expected wait for an answer exceeds the service's
queue deadline is refused at once with `overloaded`, and a call over its API key's rate limit with
`rate_limited`; both carry `Retry-After` (seconds).

**Review.** `needs_review` is true when `review_reasons` is not empty: a head whose confidence is under
the threshold at which, out-of-fold, the posts kept were right `review_accuracy` of the time (see
`GET /v1/model`), or `possible_critical`: the critical safety net. Send `"review": {"target_accuracy":
0.9, "critical_recall": 0.95}` to use another trade-off for this call.
"""


@router.post("/classify", response_model=ClassifyResponse, summary="Classify posts",
             description=DESCRIPTION, dependencies=[Depends(require_api_key), Depends(require_json),
                                                     Depends(enforce_rate_limit)],
             responses=responses(401, 413, 415, 422, 429, 500, 503))
async def classify(body: Annotated[ClassifyRequest, Body(openapi_examples=CLASSIFY_EXAMPLES)],
                   predictor: PredictorDep, settings: SettingsDep) -> dict:
    posts = body.as_posts()
    if len(posts) > settings.max_posts:
        raise TooManyPosts(f"{len(posts)} posts in one call; the limit is {settings.max_posts}. Split the batch.",
                           [ErrorDetail(field="posts", problem=f"{len(posts)} posts, at most {settings.max_posts}")])
    problems = []
    for i, (_id, text, field) in enumerate(posts):
        index = i if field.startswith("posts") else None
        if not text.strip():
            problems.append(ErrorDetail(field=field, index=index, problem="text is empty or only whitespace"))
        elif len(text) > settings.max_text_chars:
            problems.append(ErrorDetail(field=field, index=index,
                                        problem=f"text has {len(text)} characters; the limit is {settings.max_text_chars}"))
    if problems:
        raise PostsInvalid(f"{len(problems)} of {len(posts)} post(s) are invalid; nothing was classified. "
                           "Fix or drop the posts listed in details and resend.", problems)

    texts = [t for _, t, _ in posts]
    started = time.perf_counter()
    model, results = await predictor.classify(texts, body.review)
    out = []
    for (pid, text, _), r in zip(posts, results):
        kinds = personal_data_kinds(text)
        for k in kinds:
            predictor.metrics.personal_data.labels(k).inc()
        out.append({"id": pid, **r, "contains_personal_data": bool(kinds), "personal_data": kinds})
    log.info("classified %d post(s) in %.1f ms with %s v%s; %d need review", len(out),
             (time.perf_counter() - started) * 1000, model.name, model.version, sum(r["needs_review"] for r in out))
    if settings.log_texts:
        for (pid, text, _), r in zip(posts, out):
            log.info("post %s: %r -> urgency=%s issue_type=%s channels=%s", pid, text, r["urgency"]["label"],
                     r["issue_type"]["label"], r["prior_channels"]["channels"])
    return {"model": model_ref(model), "results": out}
