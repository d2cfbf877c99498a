"""``POST /v1/classify``: the helpdesk's entry point.

Bad-post policy (also in the OpenAPI description and the README): a call is all or nothing. If any
post is invalid (empty or whitespace-only text, text over max_text_chars, over the model's token
window with ``truncate: false``, missing id...), the whole call is answered 422 and ``error.details``
lists EVERY bad post with its index and field, so the client can fix or drop exactly those and
resend; no post is classified, none is silently dropped, and a 200 always has exactly one result per
post sent, in order. Why: positional results never need to be matched against a mixed list of
results and errors, and a client bug (which is what an invalid post almost always is) surfaces at
once instead of turning into quietly missing labels.

Long posts: the network reads a window of tokens (``training.predict.Window``, the rule batch
labelling records too). ``truncate: true`` (the default) classifies a longer post on its first
window and says so in the result (``truncated``, ``tokens``); ``false`` refuses it, as above.

The response is serialised once, with orjson, straight from the predictor's dicts: ``response_model``
documents it, and schemathesis and the tests check the output against it instead of pydantic
re-validating every response.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response

from serving.api import explain
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
from serving.api.schemas import CLASSIFY_EXAMPLES, ClassifyRequest, ClassifyResponse, is_blank
from serving.language import annotate as annotate_languages
from serving.pii import personal_data_kinds

log = logging.getLogger("frontline.serving")

router = APIRouter(prefix="/v1", tags=["classify"], route_class=ShedFirstRoute)  # overload: 429 before parsing

DESCRIPTION = """Label posts with urgency, issue type and the channels the customer already tried.

Send `{"posts": [{"id": ..., "text": ...}, ...]}` (1 to max_posts posts) or `{"text": ...}` (one post);
both return `results`, one per post, in the order sent. Give exactly one of `posts` and `text`; unknown
top-level fields are refused (fields of your own inside each post are ignored).

**One bad post fails the call (422), listing every bad post.** If any post is invalid (empty or
whitespace-only text, text longer than max_text_chars, missing or non-string id, or longer than the
model's window with `"truncate": false`), nothing is classified and `error.details` names each bad post
(`field: "posts[2].text"`, `index: 2`) with the problem, all in one response, so you can fix or drop
exactly those posts and resend. More than max_posts posts is a 413.

**Long posts.** The model reads at most `limits.max_tokens` tokens of a post (`GET /v1/model`; about 500
characters of English). With `"truncate": true` (the default) a longer post is classified on its first
max_tokens tokens and its result says `"truncated": true`; with `"truncate": false` it is refused (422).
Every result gives `tokens`, how many tokens the model read.

**Fast answer or fast refusal (429).** A call whose expected wait for an answer exceeds the service's
queue deadline is refused at once with `overloaded`, and a call over its API key's rate limit with
`rate_limited`; both carry `Retry-After` (seconds).

**Review.** `needs_review` is true when `review_reasons` is not empty: a head whose confidence is under
the threshold at which, out-of-fold, the posts kept were right `review_accuracy` of the time (see
`GET /v1/model`), or `possible_critical`: the critical safety net. Send `"review": {"target_accuracy":
0.9, "critical_recall": 0.95}` to use another trade-off for this call.

**Language.** Every result has `language` (ISO 639-1). The model was trained on English posts: a post
confidently in another language gets review reason `language` instead of passing as a confident answer.

**Explain.** Send `"explain": true` (at most explain_max_posts posts) to get, per post, `explanation`: per
head, the words whose removal lowers the decided label's probability most (occlusion on the served model).
"""


# JSON's "\ud800" escape decodes to a lone surrogate: not text (no encoder takes it). pydantic refuses one
# in an id (a constrained string); texts are checked here.
_SURROGATE = re.compile("[\ud800-\udfff]")


def problems(posts: list[tuple[str | None, str, str]], max_text_chars: int) -> list[ErrorDetail]:
    """Every post's problems that need no model: blank, over max_text_chars, not valid Unicode."""
    found = []
    for i, (_id, text, field) in enumerate(posts):
        index = i if field.startswith("posts") else None
        if is_blank(text):
            found.append(ErrorDetail(field=field, index=index, problem="text is empty or only whitespace"))
        elif len(text) > max_text_chars:
            found.append(ErrorDetail(field=field, index=index,
                                     problem=f"text has {len(text)} characters; the limit is {max_text_chars}"))
        if _SURROGATE.search(text):
            found.append(ErrorDetail(field=field, index=index, problem="text is not valid Unicode (a lone surrogate)"))
    return found


def too_long(posts: list[tuple[str | None, str, str]], predictor, skip: set[str]) -> list[ErrorDetail]:
    """The posts longer than the served model's window (``truncate: false``), but those in ``skip`` (by
    field: they already have a problem, and may not even be tokenisable)."""
    keep = [(i, field, text) for i, (_, text, field) in enumerate(posts) if field not in skip]
    windows = predictor.current.predictor.windows([text for _, _, text in keep])
    return [ErrorDetail(field=field, index=i if field.startswith("posts") else None,
                        problem=f"text is {w.total} tokens long; the model reads at most {w.limit} "
                                f"(send \"truncate\": true to classify its first {w.limit})")
            for (i, field, _), w in zip(keep, windows) if w.truncated]


def _invalid(found: list[ErrorDetail], n: int) -> PostsInvalid:
    bad = len({(d.field if d.index is None else d.index) for d in found})
    return PostsInvalid(f"{bad} of {n} post(s) are invalid; nothing was classified. "
                        "Fix or drop the posts listed in details and resend.", found)


@router.post("/classify", response_model=ClassifyResponse, summary="Classify posts",
             description=DESCRIPTION, dependencies=[Depends(require_api_key), Depends(require_json),
                                                     Depends(enforce_rate_limit)],
             responses=responses(400, 401, 413, 415, 422, 429, 500, 503))
async def classify(body: Annotated[ClassifyRequest, Body(openapi_examples=CLASSIFY_EXAMPLES)],
                   predictor: PredictorDep, settings: SettingsDep, response: Response) -> Response:
    posts = body.as_posts()
    if len(posts) > settings.max_posts:
        raise TooManyPosts(f"{len(posts)} posts in one call; the limit is {settings.max_posts}. Split the batch.",
                           [ErrorDetail(field="posts", problem=f"{len(posts)} posts, at most {settings.max_posts}")])
    found = problems(posts, settings.max_text_chars)
    if not body.truncate and len(found) < len(posts):  # tokenising is CPU work: off the event loop (thread-safe)
        found += await asyncio.to_thread(too_long, posts, predictor, {d.field for d in found})
        found.sort(key=lambda d: d.index or 0)  # every bad post, in order (stable: a post's own problems stay together)
    if found:
        raise _invalid(found, len(posts))

    if body.explain:
        explain.check(len(posts), settings.explain_max_posts)

    texts = [t for _, t, _ in posts]
    started = time.perf_counter()
    model, results = await predictor.classify(texts, body.review)
    if not body.truncate and any(r["truncated"] for r in results):  # a reload to a shorter window in between
        raise _invalid([ErrorDetail(field=f, index=i if f.startswith("posts") else None,
                                    problem="text is longer than the model's window")
                        for i, ((_, _, f), r) in enumerate(zip(posts, results)) if r["truncated"]], len(posts))
    for r in annotate_languages(texts, results):  # `language`; review reason `language` (serving.language)
        if "language" in r["review_reasons"]:
            predictor.metrics.review_reasons.labels("language").inc()
            if r["review_reasons"] == ["language"]:
                predictor.metrics.needs_review.inc()  # flagged for its language alone
    if body.explain:
        for r, e in zip(results, await explain.explain_posts(predictor, texts, body.review, settings.explain_max_words,
                                                             settings.explain_top_k)):
            r["explanation"] = e
    out = []
    for (pid, text, _), r in zip(posts, results):
        kinds = personal_data_kinds(text)
        for k in kinds:
            predictor.metrics.personal_data.labels(k).inc()
        out.append({"id": pid, **r, "contains_personal_data": bool(kinds), "personal_data": kinds})
    log.info("classified %d post(s) in %.1f ms with %s v%s; %d need review, %d truncated", len(out),
             (time.perf_counter() - started) * 1000, model.name, model.version, sum(r["needs_review"] for r in out),
             sum(r["truncated"] for r in out))
    if settings.log_texts:
        for (pid, text, _), r in zip(posts, out):
            log.info("post %s: %r -> urgency=%s issue_type=%s channels=%s", pid, text, r["urgency"]["label"],
                     r["issue_type"]["label"], r["prior_channels"]["channels"])
    # headers the dependencies set (RateLimit-*) live on `response`; the body is serialised once, here
    extra = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(orjson.dumps({"model": model_ref(model), "results": out}), media_type="application/json",
                    headers=extra)
