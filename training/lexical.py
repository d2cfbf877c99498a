"""TF-IDF + logistic regression: the baseline, and the lexical half of frontline's model.

Customers say which channel failed them in plain words ("called three times", "no reply to my DM"),
and a bag of n-grams reads those words reliably even where a small fine-tuned encoder has seen too few
examples (chat: 34 posts). The same class serves two roles: alone, it is the baseline every run is
compared with; fitted on the same training split, its probabilities are blended with the encoder's
(weights chosen on out-of-fold predictions, see ``training.tune``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from training.normalise import NormaliserConfig, normalise
from training.schema import SCHEMA, TRIED, LabelSchema

if TYPE_CHECKING:  # inference must not import the data stack (datasets)
    from training.data import Targets


class LexicalModel:
    """One shared TF-IDF featuriser (word 1-2-grams + char 2-5-grams) and a logistic regression per head."""

    def __init__(self, schema: LabelSchema = SCHEMA, normaliser: NormaliserConfig = NormaliserConfig(), C: float = 4.0):
        self.schema, self.normaliser, self.C = schema, normaliser, C
        self.features = FeatureUnion(
            [
                ("word", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)),
                ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True)),
            ]
        )
        self.urgency = self._lr()
        self.issue_type = self._lr()
        self.channels: list[LogisticRegression | None] = []
        self.tried: LogisticRegression | None = None  # any channel: the tried-another-channel output

    def _lr(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)

    def _x(self, texts, fit: bool = False):
        norm = [normalise(t, self.normaliser) for t in texts]
        return self.features.fit_transform(norm) if fit else self.features.transform(norm)

    def fit(self, texts: list[str], y: "Targets") -> "LexicalModel":
        x = self._x(texts, fit=True)
        self.urgency.fit(x, y.urgency)
        self.issue_type.fit(x, y.issue_type)
        self.channels = []
        for c in range(len(self.schema.prior_channels)):
            col = y.prior_channels[:, c]
            self.channels.append(self._lr().fit(x, col) if 0 < col.sum() < len(col) else None)
        tried = y.prior_channels.any(1)
        self.tried = self._lr().fit(x, tried) if 0 < tried.sum() < len(tried) else None
        return self

    @staticmethod
    def _full(model: LogisticRegression, x, n_classes: int) -> np.ndarray:
        """Probabilities over every class, even ones absent from a (small) training set."""
        out = np.zeros((x.shape[0], n_classes), dtype=np.float32)
        out[:, model.classes_] = model.predict_proba(x)
        return out

    def predict_proba(self, texts: list[str]) -> dict[str, np.ndarray]:
        x = self._x(texts)
        channels = np.zeros((x.shape[0], len(self.schema.prior_channels)), dtype=np.float32)
        for c, model in enumerate(self.channels):
            if model is not None:
                channels[:, c] = model.predict_proba(x)[:, 1]
        out = {
            "urgency": self._full(self.urgency, x, len(self.schema.urgency)),
            "issue_type": self._full(self.issue_type, x, len(self.schema.issue_type)),
            "prior_channels": channels,
        }
        if getattr(self, "tried", None) is not None:  # pickles saved before the tried output lack it
            out[TRIED] = self.tried.predict_proba(x)[:, 1].astype(np.float32)
        return out
