"""The ``POST /v1/feedback`` contract, with its labels validated against the one schema (``training.schema``).

Unknown fields are refused (``extra="forbid"``): a correction that says ``"issue": "billing"`` instead of
``"issue_type"`` must fail loudly, not be stored without the label the agent meant to give.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.api.schemas import Channel, IssueTypeLabel, UrgencyLabel
from training.schema import SCHEMA


class FeedbackLabels(BaseModel):
    """Labels for one post, one per head, spelt as in ``GET /v1/model`` ``labels``."""

    model_config = ConfigDict(extra="forbid")

    urgency: UrgencyLabel  # type: ignore[valid-type]
    issue_type: IssueTypeLabel  # type: ignore[valid-type]
    prior_channels: list[Channel] = Field(  # type: ignore[valid-type]
        ..., description="The channels the customer had already tried (empty: none).")

    @field_validator("prior_channels")
    @classmethod
    def _in_schema_order(cls, value: list) -> list:
        names = {c.value if hasattr(c, "value") else c for c in value}
        return [c for c in SCHEMA.prior_channels if c in names]

    def plain(self) -> dict[str, Any]:
        return {"urgency": self.urgency.value, "issue_type": self.issue_type.value,
                "prior_channels": list(self.prior_channels)}


class AnsweringModel(BaseModel):
    """The model version whose answer the agent corrected: copy ``model`` from the classify response."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str | None = Field("frontline", max_length=128, examples=["frontline"])
    version: str | None = Field(..., max_length=64, description="The answer's `model.version` (null if it had none).",
                                examples=["3"])
    alias: str | None = Field(None, max_length=64, description="Accepted and ignored (the version is what counts).")


class FeedbackRequest(BaseModel):
    """An agent's corrected labels for one post."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    post_id: str = Field(..., min_length=1, max_length=256, description="Your id of the post (as sent to classify).",
                         examples=["t1"])
    text: str = Field(..., min_length=1, description="The post text (1 to max_text_chars characters). Stored: it is "
                                                     "what a retrained model learns from.")
    labels: FeedbackLabels = Field(..., description="The correct labels, as the agent decided them.")
    model: AnsweringModel = Field(..., description="The model version that answered (`model` of the classify response).")
    predicted: FeedbackLabels | None = Field(
        None, description="The labels that version answered (`urgency.label`, `issue_type.label`, "
                          "`prior_channels.channels`). Omitted: the service recomputes them when that version is the "
                          "one serving; otherwise the correction is stored but not counted in the agreement.")
    agent: str | None = Field(None, max_length=256, description="Who corrected it. One correction per (post_id, agent) "
                                                                "is kept: the latest.", examples=["agent-17"])
    queue: str | None = Field(None, max_length=256, description="The helpdesk queue it was handled in.",
                              examples=["billing"])

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty or only whitespace")
        return value


class FeedbackSaved(BaseModel):
    id: int = Field(..., description="The stored correction's id (the same on a repeated call for this post and agent).")
    post_id: str
    created: bool = Field(..., description="true: a new correction (201); false: it replaced this agent's earlier "
                                           "correction of the post (200).")
    agreement_counted: bool = Field(..., description="Whether it counts in the per-version agreement (the model's "
                                                     "answer is known).")
    predicted_source: str | None = Field(None, description="`client` (sent in `predicted`), `recomputed` (by the "
                                                           "serving version) or null (unknown).")
    received_at: str = Field(..., description="When it was stored (UTC, ISO 8601).")


FEEDBACK_EXAMPLES: dict[str, dict[str, Any]] = {
    "with_answer": {
        "summary": "A correction carrying the model's answer",
        "value": {"post_id": "t1", "text": "@Delta on hold 2 hours, flight cancelled, stuck at ATL",
                  "labels": {"urgency": "critical", "issue_type": "service_disruption", "prior_channels": ["phone"]},
                  "model": {"name": "frontline", "version": "3"},
                  "predicted": {"urgency": "high", "issue_type": "service_disruption", "prior_channels": ["phone"]},
                  "agent": "agent-17", "queue": "airlines"}},
    "minimal": {
        "summary": "Labels only (the serving version's answer is recomputed)",
        "value": {"post_id": "t2", "text": "card charged twice for one order",
                  "labels": {"urgency": "medium", "issue_type": "billing", "prior_channels": []},
                  "model": {"version": "3"}}},
}
