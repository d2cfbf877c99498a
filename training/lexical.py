"""TF-IDF + logistic regression: the baseline, and the lexical half of frontline's model.

Customers say which channel failed them in plain words ("called three times", "no reply to my DM"),
and a bag of n-grams reads those words reliably even where a small fine-tuned encoder has seen too few
examples (chat: 34 posts). The same class serves two roles: alone, it is the baseline every run is
compared with; fitted on the same training split, its probabilities are blended with the encoder's
(weights chosen on out-of-fold predictions, see ``training.tune``).

Inference does not go through sklearn's ``transform``/``predict_proba``: for one post they cost ~3 ms in
input validation, joblib dispatch and nine separate matrix products. ``CompiledLexical`` computes the same
function from the fitted objects (sklearn's own analysers and vocabularies, then sublinear tf × idf, l2 per
featuriser, and ONE sparse × dense product for every output), so a fitted model's probabilities, and so its
decisions, are unchanged (checked to 1e-9 in the tests) while a single post costs a fraction of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
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

    def __getstate__(self) -> dict:  # the compiled form is rebuilt on load, never pickled
        return {k: v for k, v in self.__dict__.items() if k != "_compiled"}

    def compiled(self) -> "CompiledLexical | None":
        """The fast inference form (built once, on first use); None when this model's featuriser is not the
        plain TF-IDF union it knows how to compute (then sklearn's path is used)."""
        if "_compiled" not in self.__dict__:
            self._compiled = CompiledLexical.of(self)
        return self._compiled

    def predict_proba(self, texts: list[str]) -> dict[str, np.ndarray]:
        fast = self.compiled()
        if fast is not None:
            return fast.predict_proba(texts)
        return self.sklearn_predict_proba(texts)

    def sklearn_predict_proba(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The reference path, through sklearn's own transform and predict_proba."""
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


class CompiledLexical:
    """``LexicalModel.predict_proba`` as one featurising pass and one matrix product.

    Every logistic regression's coefficients are stacked into one dense (features × outputs) matrix, so all
    outputs of a batch come from a single ``X @ W``; softmax for urgency and issue type (multinomial, as
    sklearn's lbfgs fits them), the logistic function for each binary output.
    """

    def __init__(self, model: LexicalModel, parts: list[tuple], offsets: list[int]):
        self.normaliser = model.normaliser
        self.parts, self.offsets = parts, offsets
        n_features = offsets[-1]
        blocks, self.outputs = [], []  # outputs: (name, kind, first column, n columns, classes, width)
        col = 0
        schema = model.schema
        specs = [("urgency", model.urgency, len(schema.urgency)), ("issue_type", model.issue_type, len(schema.issue_type))]
        specs += [(("prior_channels", c), m, 1) for c, m in enumerate(model.channels) if m is not None]
        if getattr(model, "tried", None) is not None:
            specs.append((TRIED, model.tried, 1))
        for name, lr, width in specs:
            coef = np.asarray(lr.coef_, dtype=np.float64)
            blocks.append((coef, np.asarray(lr.intercept_, dtype=np.float64)))
            kind = "softmax" if coef.shape[0] > 1 else "sigmoid"
            self.outputs.append((name, kind, col, coef.shape[0], np.asarray(lr.classes_).astype(int), width))
            col += coef.shape[0]
        self.weights = np.zeros((n_features, col), dtype=np.float64)
        self.bias = np.zeros(col, dtype=np.float64)
        c = 0
        for coef, b in blocks:
            self.weights[:, c : c + coef.shape[0]] = coef.T
            self.bias[c : c + coef.shape[0]] = b
            c += coef.shape[0]
        self.n_channels = len(schema.prior_channels)

    @classmethod
    def of(cls, model: LexicalModel) -> "CompiledLexical | None":
        feats = getattr(model, "features", None)
        if not isinstance(feats, FeatureUnion) or feats.transformer_weights is not None:
            return None
        parts, offsets = [], [0]
        for _, vec in feats.transformer_list:
            if type(vec) is not TfidfVectorizer or vec.norm != "l2" or not vec.use_idf or vec.binary:
                return None
            parts.append((vec.build_analyzer(), vec.vocabulary_, np.asarray(vec.idf_, dtype=np.float64),
                          bool(vec.sublinear_tf)))
            offsets.append(offsets[-1] + len(vec.vocabulary_))
        return cls(model, parts, offsets)

    def features(self, texts: list[str]) -> sp.csr_matrix:
        """The TF-IDF matrix sklearn's ``FeatureUnion.transform`` gives, built directly."""
        docs = [normalise(t, self.normaliser) for t in texts]
        indices: list[int] = []
        values: list[float] = []
        indptr = [0]
        for doc in docs:
            for (analyse, vocab, idf, sublinear), offset in zip(self.parts, self.offsets):
                counts: dict[int, int] = {}
                for gram in analyse(doc):
                    j = vocab.get(gram)
                    if j is not None:
                        counts[j] = counts.get(j, 0) + 1
                if not counts:
                    continue
                j = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
                if sublinear:
                    tf = np.log(tf) + 1.0
                tf *= idf[j]
                tf /= np.sqrt(np.dot(tf, tf))
                indices.extend((j + offset).tolist())
                values.extend(tf.tolist())
            indptr.append(len(indices))
        return sp.csr_matrix((np.asarray(values, dtype=np.float64), np.asarray(indices, dtype=np.int64),
                              np.asarray(indptr, dtype=np.int64)), shape=(len(docs), self.offsets[-1]))

    def predict_proba(self, texts: list[str]) -> dict[str, np.ndarray]:
        scores = np.asarray(self.features(texts) @ self.weights) + self.bias
        n = scores.shape[0]
        out = {"prior_channels": np.zeros((n, self.n_channels), dtype=np.float32)}
        for name, kind, col, k, classes, width in self.outputs:
            z = scores[:, col : col + k]
            if kind == "softmax":
                z = np.exp(z - z.max(axis=1, keepdims=True))
                full = np.zeros((n, width), dtype=np.float32)
                full[:, classes] = z / z.sum(axis=1, keepdims=True)
                out[name] = full
            else:
                p = (1.0 / (1.0 + np.exp(-z[:, 0]))).astype(np.float32)
                if isinstance(name, tuple):
                    out[name[0]][:, name[1]] = p
                else:
                    out[name] = p
        return out
