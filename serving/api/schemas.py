"""Request and response models of the HTTP API, built from ``training.schema`` so no label is spelt here.

Why generated: the label enums and the per-label ``scores`` objects in the OpenAPI document are the
contract a helpdesk integration codes against; deriving them from the one schema keeps the docs, the
validation and the model in step when a label is added.

Why strict: the OpenAPI document says exactly what the server accepts, no more (schemathesis checks
both directions in ``tests/reliability``). Request models validate strictly (``"force": 0`` or
``"0.9"`` for a number are refused, as the schema says), the top level refuses unknown fields (a
misspelt option must not be silently ignored), the two request forms are a ``oneOf``, and the limits
that come from settings (``max_posts``, ``max_text_chars``) are written into the document by
``document_limits``.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from serving.api.explain import Explanation
from serving.pii import KINDS
from training.schema import HEADS, REVIEW_REASONS, SCHEMA


def _enum(name: str, values: tuple[str, ...]) -> type[Enum]:
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


def _scores(name: str, labels: tuple[str, ...], what: str) -> type[BaseModel]:
    return create_model(name, __doc__=what,
                        **{label: (float, Field(..., ge=0.0, le=1.0)) for label in labels})  # type: ignore[call-overload]


UrgencyLabel = _enum("UrgencyLabel", SCHEMA.urgency)
IssueTypeLabel = _enum("IssueTypeLabel", SCHEMA.issue_type)
Channel = _enum("Channel", SCHEMA.prior_channels)
PersonalDataKind = _enum("PersonalDataKind", KINDS)
ReviewReason = _enum("ReviewReason", REVIEW_REASONS)
UrgencyScores = _scores("UrgencyScores", SCHEMA.urgency, "Probability of each urgency level (they sum to 1).")
IssueTypeScores = _scores("IssueTypeScores", SCHEMA.issue_type, "Probability of each issue type (they sum to 1).")
ChannelScores = _scores("ChannelScores", SCHEMA.prior_channels,
                        "Independent probability that the customer already tried each channel.")

EXAMPLE_TEXT = "@Delta on hold 2 hours, flight cancelled, stuck at ATL"

# "Not only whitespace", spelt so that Python, JSON Schema (ECMA-262) and Rust regexes agree: the union of
# what Python's str.isspace and ECMA's \s call space, as explicit code points (the two \s differ).
BLANK_CHARS = r"\t\n\u000b\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK = f"[^{BLANK_CHARS}]"
_NOT_BLANK = re.compile(NOT_BLANK)
# True unless the client asks otherwise: what every call did before the option existed (see README).
DEFAULT_TRUNCATE = True
_LIMIT = "x-frontline-limit"  # marks a schema node whose bound comes from settings (see document_limits)


def is_blank(text: str) -> bool:
    """The server's side of the ``NOT_BLANK`` pattern the OpenAPI document gives for post texts."""
    return _NOT_BLANK.search(text) is None


def _post_text(description: str, **kw: Any) -> Any:
    """A post text field. Its bounds are documented here and checked by the route (``classify.problems``),
    which lists every bad post of a call with a plain message instead of pydantic's pattern errors."""
    return Field(description=description, json_schema_extra={"minLength": 1, "pattern": NOT_BLANK,
                                                              _LIMIT: "max_text_chars"}, **kw)


# ---- request -----------------------------------------------------------------------------------------
class Post(BaseModel):
    """One post to classify. Unknown fields are ignored, so you may send your own metadata along."""

    model_config = ConfigDict(strict=True)

    id: str = Field(..., min_length=1, max_length=256, description="Your id for the post (a string; echoed back, in order).",
                    examples=["t1"])
    text: str = _post_text("The post text, as posted (1 to max_text_chars characters, not only whitespace).",
                           examples=[EXAMPLE_TEXT])


class ReviewOptions(BaseModel):
    """This call's own review trade-off, read off the model's out-of-fold curves (``GET /v1/model``).
    Omitted fields keep the model's default operating point."""

    model_config = ConfigDict(extra="forbid", strict=True)

    target_accuracy: float | None = Field(
        None, ge=0.5, le=0.999, description="Per head, flag posts under the confidence at which the posts kept were "
                                            "right this often out-of-fold (higher: fewer errors pass, more review).")
    critical_recall: float | None = Field(
        None, ge=0.5, le=1.0, description="Set the critical safety net to catch this share of critical posts "
                                          "(predicted critical or flagged `possible_critical`).")


def _exactly_one_form(schema: dict[str, Any]) -> None:
    """OpenAPI: ``posts`` and ``text`` are each optional, but exactly one of them must be there (``oneOf``);
    neither takes ``null``."""
    schema["oneOf"] = [{"required": ["posts"]}, {"required": ["text"]}]
    for name in ("posts", "text"):
        schema["properties"][name].pop("default", None)


class ClassifyRequest(BaseModel):
    """Either ``posts`` (a batch, up to max_posts) or ``text`` (one post, convenience): exactly one of them.
    Unknown top-level fields are refused (a misspelt option would otherwise be silently ignored)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_exactly_one_form)

    # no ``| None``: absent is allowed, an explicit null is not (and the schema says so)
    posts: list[Post] = Field(None, min_length=1, description="The posts to classify, 1 to max_posts.",  # type: ignore[assignment]
                              json_schema_extra={_LIMIT: "max_posts"})
    text: str = _post_text("A single post text; its result has `id: null`.", default=None)
    review: ReviewOptions | None = Field(None, description="Optional: this call's review trade-off.")
    truncate: bool = Field(
        DEFAULT_TRUNCATE,
        description="A post longer than the model's window (`limits.max_tokens` in `GET /v1/model`, tokens of the "
                    "normalised text) is classified on its first max_tokens tokens (`true`, the default; the result "
                    "says `truncated: true`) or refused with a per-post 422 (`false`).")
    explain: bool = Field(False, description="Also return, per post and head, the words that moved the decision most "
                                             "(`explanation`; occlusion, costs about words + 1 posts of inference; "
                                             "at most explain_max_posts posts per call).")

    @model_validator(mode="after")
    def _one_of(self) -> ClassifyRequest:
        if (self.posts is None) == (self.text is None):
            raise ValueError("give either 'posts' (a list of {id, text}) or 'text' (one post), not both and not neither")
        return self

    def as_posts(self) -> list[tuple[str | None, str, str]]:
        """(id, text, field path) per post, for both request forms."""
        if self.text is not None:
            return [(None, self.text, "text")]
        return [(p.id, p.text, f"posts[{i}].text") for i, p in enumerate(self.posts or [])]


CLASSIFY_EXAMPLES: dict[str, dict[str, Any]] = {
    "batch": {"summary": "A batch of posts",
              "value": {"posts": [{"id": "t1", "text": EXAMPLE_TEXT},
                                  {"id": "t2", "text": "@AcmeBank love the new app, thanks!"}]}},
    "single": {"summary": "One text (convenience form)", "value": {"text": EXAMPLE_TEXT}},
}


# ---- response ----------------------------------------------------------------------------------------
class ModelRef(BaseModel):
    """The registered model version that produced the answer."""

    name: str | None = Field(None, examples=["frontline"])
    version: str | None = Field(None, examples=["3"])
    alias: str | None = Field(None, examples=["champion"])


class UrgencyPrediction(BaseModel):
    label: UrgencyLabel  # type: ignore[valid-type]
    score: float = Field(..., ge=0, le=1, description="Confidence in the label.")
    scores: UrgencyScores  # type: ignore[valid-type]


class IssueTypePrediction(BaseModel):
    label: IssueTypeLabel  # type: ignore[valid-type]
    score: float = Field(..., ge=0, le=1, description="Confidence in the label.")
    scores: IssueTypeScores  # type: ignore[valid-type]


class PriorChannelsPrediction(BaseModel):
    tried_other_channel: bool = Field(..., description="The customer already tried at least one other channel.")
    channels: list[Channel] = Field(..., description="The channels they tried (empty when none).")  # type: ignore[valid-type]
    score: float = Field(..., ge=0, le=1, description="Confidence in tried_other_channel.")
    scores: ChannelScores  # type: ignore[valid-type]


class Result(BaseModel):
    id: str | None = Field(..., description="The post's id (null for the single-`text` form).", examples=["t1"])
    urgency: UrgencyPrediction
    issue_type: IssueTypePrediction
    prior_channels: PriorChannelsPrediction
    needs_review: bool = Field(..., description="Have a person look: true when review_reasons is not empty.")
    review_reasons: list[ReviewReason] = Field(  # type: ignore[valid-type]
        ..., description="Why: each head whose confidence is under its review threshold (`urgency`, `issue_type`, "
                         "`prior_channels`), `possible_critical` when the critical probability clears the "
                         "safety-net threshold although another urgency won, and `language` when the post is in a "
                         "language the model was not trained for (see `language`).")
    contains_personal_data: bool = Field(..., description="The text holds an e-mail, phone, card or account/order number.")
    personal_data: list[PersonalDataKind] = Field(..., description="Which kinds were found.")  # type: ignore[valid-type]
    truncated: bool = Field(..., description="The post was longer than the model's window and the network read only "
                                             "its first `tokens` tokens (the word-level half still reads the whole text).")
    tokens: int = Field(..., ge=1, description="Tokens of the normalised post the network read, special tokens "
                                               "included (at most `limits.max_tokens`).", examples=[23])
    language: str | None = Field(..., description="ISO 639-1 code of the post's language (null: no letters to judge). "
                                                  "A language the model was not trained for adds review reason `language`.",
                                 examples=["en"])
    explanation: Explanation | None = Field(None, description="Only with `explain: true`: the words behind each label.")


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: ModelRef
    results: list[Result] = Field(..., description="One result per post, in the order sent.")


class Limits(BaseModel):
    max_posts: int = Field(..., description="Most posts in one call; more is a 413.")
    max_text_chars: int = Field(..., description="Longest post text in characters; longer is a 422 (a payload guard).")
    max_tokens: int = Field(..., description="The model's window: tokens of the normalised post it reads, special "
                                             "tokens included. A longer post is truncated or refused (`truncate`).")


class ModelInfo(BaseModel):
    name: str | None
    version: str | None
    alias: str | None
    uri: str = Field(..., description="What was loaded (alias URIs are pinned to the version they resolved to).")
    run_id: str | None
    loaded_at: str | None = Field(None, description="When this version started serving (UTC, ISO 8601).")
    labels: dict[str, list[str]] = Field(..., description="Label names per head, in model output order.",
                                         examples=[{h: list(SCHEMA.labels(h)) for h in HEADS}])
    validation_metrics: dict[str, float] = Field(..., description="The served model's validation metrics (`val_*`; the baseline's `val_baseline_*` are left out).")
    review_thresholds: dict[str, float] = Field(..., description="Per-head confidence under which needs_review is set.")
    critical_threshold: float | None = Field(None, description="Critical probability at which `possible_critical` is raised.")
    operating_point: dict[str, float] = Field(
        default_factory=dict, description="The default trade-off: `review_accuracy` (accuracy of unflagged posts per head) "
                                          "and `critical_recall` it was tuned for, out-of-fold.")
    cv_metrics: dict[str, float] = Field(default_factory=dict, description="Cross-validated means (`cv_*_mean`) of the recipe.")
    limits: Limits
    model_card: str | None = Field(
        None, description="The served version's model card (Markdown, stored in its bundle at registration): data hash "
                          "and version, CV and test figures, risk–coverage operating point, known weaknesses, data "
                          "licence. null for a version registered without one.")


class ReloadRequest(BaseModel):
    """Optional body of ``POST /v1/admin/reload``; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    uri: str | None = Field(None, min_length=1, max_length=2048,
                            description="Model URI or bundle directory to load; default: the one being served "
                                        "(an alias URI is re-resolved, e.g. to the new champion).",
                            examples=["models:/frontline@champion"])
    force: bool = Field(False, description="Reload even if the alias still points at the served version.")


class ReloadResponse(BaseModel):
    changed: bool
    previous: ModelRef | None
    current: ModelRef
    seconds: float


class Live(BaseModel):
    status: str = Field("ok", examples=["ok"])


class Ready(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    status: str = Field(..., description="`ready`, `loading`, `retrying` or `failed`.", examples=["ready"])
    model: ModelRef | None = None
    error: str | None = Field(None, description="The last load error (class and message), while not ready.")
    reason: str | None = Field(None, description="Why not ready: `loading`, or `load_failed: <error>`.",
                               examples=["load_failed: MlflowException: ..."])
    attempts: int | None = Field(None, description="Load attempts made so far, while not ready.")
    next_retry_in_s: float | None = Field(None, description="Seconds until the next load attempt, while waiting for it.")


# ---- the OpenAPI document ----------------------------------------------------------------------------
def document_limits(openapi: dict[str, Any], *, max_posts: int, max_text_chars: int) -> dict[str, Any]:
    """Write this server's limits into its OpenAPI document (in place): ``maxItems`` on ``posts`` and
    ``maxLength`` on every post text, so that a request the document calls valid is one the server takes."""
    bounds = {"max_posts": ("maxItems", max_posts), "max_text_chars": ("maxLength", max_text_chars)}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get(_LIMIT) in bounds:
                key, value = bounds[node.pop(_LIMIT)]
                node[key] = value
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(openapi)
    return openapi


def install_openapi(app: Any, settings: Any) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) carry ``settings``' limits."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_limits(generate(), max_posts=settings.max_posts,
                                                 max_text_chars=settings.max_text_chars)
        return app.openapi_schema

    app.openapi = openapi
