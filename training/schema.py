"""The one place where frontline's label names live.

Training, evaluation, the MLflow model, the HTTP service, the export format and the docs all read
these tuples; nothing else spells a label. Order matters: it is the order of the model's output units,
so it is written into every saved model (``LabelSchema.to_dict``) and checked again on load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

URGENCY: tuple[str, ...] = ("low", "medium", "high", "critical")  # ordinal, low < critical
ISSUE_TYPE: tuple[str, ...] = (
    "billing",
    "delivery",
    "service_disruption",
    "account_access",
    "product_defect",
    "support_experience",
    "order_change",
    "information_request",
    "feedback",
    "other",
)
PRIOR_CHANNELS: tuple[str, ...] = ("phone", "email", "chat", "in_person", "web_or_app", "direct_message")

# Head names, as they appear in the API, the export columns and the metrics.
SINGLE_LABEL_HEADS: tuple[str, ...] = ("urgency", "issue_type")
MULTI_LABEL_HEADS: tuple[str, ...] = ("prior_channels",)
HEADS: tuple[str, ...] = SINGLE_LABEL_HEADS + MULTI_LABEL_HEADS
# The model's extra output: probability that the customer tried at least one other channel (any of them).
# It is not a head of the API (the API's prior_channels.tried_other_channel is decided from it).
TRIED = "tried_other_channel"
OUTPUTS: tuple[str, ...] = HEADS + (TRIED,)
# Why a post needs review. The model's decision policy raises the first four: a head whose confidence is
# under its threshold, or the critical safety net (the critical probability is high enough to matter
# although another urgency won). ``language`` is raised by the serving layer (serving.language) for a
# post written in a language the model was not trained for (anything but MODEL_LANGUAGES).
POLICY_REVIEW_REASONS: tuple[str, ...] = HEADS + ("possible_critical",)
REVIEW_REASONS: tuple[str, ...] = POLICY_REVIEW_REASONS + ("language",)
# ISO 639-1 codes of the languages the model was trained on (data/DATA_CARD.md: English posts).
MODEL_LANGUAGES: tuple[str, ...] = ("en",)


@dataclass(frozen=True)
class LabelSchema:
    """Label names per head; a model saves the schema it was trained with."""

    urgency: tuple[str, ...] = URGENCY
    issue_type: tuple[str, ...] = ISSUE_TYPE
    prior_channels: tuple[str, ...] = PRIOR_CHANNELS
    version: int = field(default=1)

    def labels(self, head: str) -> tuple[str, ...]:
        if head not in HEADS:
            raise KeyError(f"unknown head {head!r}; heads are {HEADS}")
        return getattr(self, head)

    def to_dict(self) -> dict:
        return {"version": self.version, **{h: list(self.labels(h)) for h in HEADS}}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSchema":
        return cls(**{h: tuple(d[h]) for h in HEADS}, version=int(d.get("version", 1)))


SCHEMA = LabelSchema()
