"""``explain: true`` on ``POST /v1/classify``: the words behind each label, and their response models.

The method is ``training.explain`` (occlusion on the served runtime). Here: the variants of the posts go
through the service's micro-batcher like any other posts (the model is not thread-safe, and the batcher
is what serialises it), as one job that also holds the posts themselves, so the explanation is decided by
the same model and the same policy (the call's operating point) in one pass. Explaining costs a forward
pass over (words + 1) texts per post, so a call may ask it for at most ``explain_max_posts`` posts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from serving.api.errors import ErrorDetail, PostsInvalid
from training.explain import METHOD, Plan, batch_texts, explain_batch


class WordWeight(BaseModel):
    word: str = Field(..., description="The word as written, surrounding punctuation stripped (a phrase for long posts).",
                      examples=["called"])
    weight: float = Field(..., description="How much the probability behind the decision falls without this word: "
                                           "positive supports the label, negative pushed against it.", examples=[0.86])
    start: int = Field(..., description="Character offset of the word in the post text (for highlighting).", examples=[2])
    end: int = Field(..., description="Character offset just after the word.", examples=[8])


class LabelExplanation(BaseModel):
    label: str = Field(..., description="The label explained (the one the result gives).")
    words: list[WordWeight] = Field(..., description="The words that moved it most, largest |weight| first.")


class ChannelsExplanation(BaseModel):
    tried_other_channel: bool = Field(..., description="The decision explained by `words`.")
    words: list[WordWeight] = Field(..., description="Words behind tried_other_channel, largest |weight| first.")
    channels: dict[str, list[WordWeight]] = Field(
        ..., description="For each channel listed in the result, the words behind that channel's probability.",
        examples=[{"phone": [{"word": "called", "weight": 0.89, "start": 2, "end": 8}]}])


class Explanation(BaseModel):
    """Why this label: per head, the few words whose removal changes the decided label's probability most."""

    method: str = Field(METHOD, description="`occlusion`: each word dropped in turn, re-scored in one batch.")
    urgency: LabelExplanation
    issue_type: LabelExplanation
    prior_channels: ChannelsExplanation


def check(n_posts: int, max_posts: int) -> None:
    """422 when a call asks explanations for more posts than allowed (nothing is classified)."""
    if n_posts > max_posts:
        raise PostsInvalid(f"explain is limited to {max_posts} posts per call ({n_posts} sent): explaining a post costs "
                           "a forward pass per word. Send the posts you need explained in smaller calls.",
                           [ErrorDetail(field="explain", problem=f"{n_posts} posts with explain, at most {max_posts}")])


async def explain_posts(predictor: Any, texts: list[str], review: Any, max_words: int, top_k: int) -> list[dict]:
    """Explanations for ``texts`` (one per text, in order), scored through the shared micro-batcher."""
    plans = [Plan.of(t, max_words) for t in texts]
    model, rows = await predictor.batcher.classify(batch_texts(plans))
    policy = predictor.policy(model, review)
    return explain_batch(plans, rows.probs, policy, model.predictor.schema, top_k)
