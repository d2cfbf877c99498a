"""Why this label: the words that moved each decision most, by occlusion on the served runtime.

Method: each word of the post (a run of non-space characters) is dropped in turn and the shortened posts
are scored **in one batch** with the same predictor (onnxruntime or torch, TF-IDF blend included) and the
same policy that labelled the post. A word's weight is how much the probability behind the decision falls
without it: positive = the word supports the label, negative = it pushed against it. Nothing here needs
gradients or torch, so it explains exactly the model that answered, quantised network and blend included.

Cost: one forward pass over (words + 1) short texts: for a 30-word post about as much as labelling 31
posts in one batch (the README states the measured milliseconds). Long posts are cut into at most
``max_units`` runs of consecutive words, so the cost stays bounded; a unit's ``word`` is then a phrase.

What is explained, per head: the decided label's probability for ``urgency`` and ``issue_type``; for
``prior_channels`` the tried-another-channel decision (the probability of "tried" or of "not tried",
whichever was decided) and, for each channel listed, that channel's probability.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.schema import SINGLE_LABEL_HEADS

WORD = re.compile(r"\S+")
_STRIP = string.punctuation + "…“”‘’«»¡¿"
METHOD = "occlusion"


@dataclass(frozen=True)
class Plan:
    """A post cut into units (character spans of words or runs of words) and its occluded variants."""

    text: str
    spans: list[tuple[int, int]]

    @classmethod
    def of(cls, text: str, max_units: int = 64) -> "Plan":
        words = [m.span() for m in WORD.finditer(text)]
        if len(words) > max_units:  # runs of consecutive words, so a long post costs at most max_units variants
            size = math.ceil(len(words) / max_units)
            words = [(words[i][0], words[min(i + size, len(words)) - 1][1]) for i in range(0, len(words), size)]
        return cls(text, words)

    def variants(self) -> list[str]:
        """The post once per unit, with that unit (and the space after it) removed."""
        out = []
        for start, end in self.spans:
            while end < len(self.text) and self.text[end].isspace():
                end += 1
            out.append(self.text[:start] + self.text[end:])
        return out

    def word(self, i: int) -> str:
        raw = self.text[self.spans[i][0] : self.spans[i][1]]
        return raw.strip(_STRIP) or raw


def _top(plan: Plan, weights: np.ndarray, top_k: int) -> list[dict]:
    """The ``top_k`` units with the largest |weight|, largest first; units that changed nothing are left out."""
    order = np.argsort(-np.abs(weights), kind="stable")[:top_k]
    return [{"word": plan.word(int(i)), "weight": round(float(weights[i]), 6),
             "start": plan.spans[int(i)][0], "end": plan.spans[int(i)][1]}
            for i in order if abs(float(weights[i])) > 1e-6]


def explain_rows(plan: Plan, full: dict[str, np.ndarray], occluded: dict[str, np.ndarray], policy, schema,
                 top_k: int = 5) -> dict:
    """One post's explanation from its probabilities (``full``: one row per output) and those of its
    variants (``occluded``: one row per unit), decided with ``policy`` as the post itself was."""
    decided = policy.decide({k: v[None] for k, v in full.items()})
    out: dict = {"method": METHOD}
    for head in SINGLE_LABEL_HEADS:
        label = int(decided[head][0])
        weights = full[head][label] - occluded[head][:, label] if plan.spans else np.zeros(0)
        out[head] = {"label": schema.labels(head)[label], "words": _top(plan, weights, top_k)}
    tried_full = policy.tried_probability({k: v[None] for k, v in full.items()})[0]
    tried_occ = policy.tried_probability(occluded) if plan.spans else np.zeros(0)
    chans = decided["prior_channels"][0]
    tried = bool(chans.any())
    weights = (tried_full - tried_occ) if tried else (tried_occ - tried_full)
    out["prior_channels"] = {
        "tried_other_channel": tried, "words": _top(plan, np.asarray(weights), top_k),
        "channels": {c: _top(plan, full["prior_channels"][j] - occluded["prior_channels"][:, j], top_k)
                     for j, c in enumerate(schema.prior_channels) if chans[j] and plan.spans}}
    for c in schema.prior_channels:  # a listed channel of a post with no words still gets its (empty) list
        if chans[schema.prior_channels.index(c)]:
            out["prior_channels"]["channels"].setdefault(c, [])
    return out


def batch_texts(plans: Sequence[Plan]) -> list[str]:
    """What to score for ``plans``: the posts themselves first, then every post's variants in order."""
    return [p.text for p in plans] + [v for p in plans for v in p.variants()]


def explain_batch(plans: Sequence[Plan], probs: dict[str, np.ndarray], policy, schema, top_k: int = 5) -> list[dict]:
    """Explanations from the probabilities of ``batch_texts(plans)`` (same order)."""
    out, at = [], len(plans)
    for i, plan in enumerate(plans):
        n = len(plan.spans)
        full = {k: v[i] for k, v in probs.items()}
        occ = {k: v[at : at + n] for k, v in probs.items()}
        out.append(explain_rows(plan, full, occ, policy, schema, top_k))
        at += n
    return out


def explain(predictor, texts: Sequence[str], policy=None, top_k: int = 5, max_units: int = 64) -> list[dict]:
    """Explain ``texts`` with a ``training.predict.Predictor`` in one batch (not thread-safe, like it)."""
    plans = [Plan.of(t, max_units) for t in texts]
    probs = predictor.probabilities(batch_texts(plans))
    return explain_batch(plans, probs, policy or predictor.policy, predictor.schema, top_k)
