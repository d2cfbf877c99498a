"""Request and response models of the HTTP API, built from ``training.schema`` so no label is spelt here.

Why generated: the label enums and the per-label ``scores`` objects in the OpenAPI document are the
contract a helpdesk integration codes against; deriving them from the one schema keeps the docs, the
validation and the model in step when a label is added.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

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


# ---- request -----------------------------------------------------------------------------------------
class Post(BaseModel):
    """One post to classify. Unknown fields are ignored, so you may send your own metadata along."""

    id: str = Field(..., min_length=1, max_length=256, description="Your id for the post (a string; echoed back, in order).",
                    examples=["t1"])
    text: str = Field(..., description="The post text, as posted (1 to max_text_chars characters, not only whitespace).",
                      examples=[EXAMPLE_TEXT])


class ReviewOptions(BaseModel):
    """This call's own review trade-off, read off the model's out-of-fold curves (``GET /v1/model``).
    Omitted fields keep the model's default operating point."""

    model_config = ConfigDict(extra="forbid")

    target_accuracy: float | None = Field(
        None, ge=0.5, le=0.999, description="Per head, flag posts under the confidence at which the posts kept were "
                                            "right this often out-of-fold (higher: fewer errors pass, more review).")
    critical_recall: float | None = Field(
        None, ge=0.5, le=1.0, description="Set the critical safety net to catch this share of critical posts "
                                          "(predicted critical or flagged `possible_critical`).")


class ClassifyRequest(BaseModel):
    """Either ``posts`` (a batch, up to max_posts) or ``text`` (one post, convenience). Give exactly one."""

    posts: list[Post] | None = Field(None, min_length=1, description="The posts to classify, 1 to max_posts.")
    text: str | None = Field(None, description="A single post text; its result has `id: null`.")
    review: ReviewOptions | None = Field(None, description="Optional: this call's review trade-off.")

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
                         "`prior_channels`), and `possible_critical` when the critical probability clears the "
                         "safety-net threshold although another urgency won.")
    contains_personal_data: bool = Field(..., description="The text holds an e-mail, phone, card or account/order number.")
    personal_data: list[PersonalDataKind] = Field(..., description="Which kinds were found.")  # type: ignore[valid-type]


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: ModelRef
    results: list[Result] = Field(..., description="One result per post, in the order sent.")


class Limits(BaseModel):
    max_posts: int
    max_text_chars: int


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


class ReloadRequest(BaseModel):
    uri: str | None = Field(None, description="Model URI or bundle directory to load; default: the one being served "
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
