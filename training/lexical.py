"""TF-IDF + logistic regression: the baseline, and the lexical half of frontline's model.

Customers say which channel failed them in plain words ("called three times", "no reply to my DM"),
and a bag of n-grams reads those words reliably even where a small fine-tuned encoder has seen too few
examples (chat: 34 posts). The same class serves two roles: alone, it is the baseline every run is
compared with; fitted on the same training split, its probabilities are blended with the encoder's
(weights chosen on out-of-fold predictions, see ``training.tune``).

Inference does not go through sklearn: its ``transform``/``predict_proba`` cost ~10 ms for one post on a
busy 2-core machine (input validation, joblib dispatch, nine separate matrix products), and importing
``sklearn.linear_model`` alone adds ~130 MB to a process. ``CompiledLexical`` is the same function as
plain arrays: the vocabularies, idf and every regression's coefficients stacked into one (features ×
outputs) matrix, with the two analysers (word 1-2-grams, char_wb n-grams) written out as sklearn defines
them. ``save_bundle`` writes it next to the pickle (``lexical.npz``, no pickle inside), and the predictor
loads that without importing sklearn; the tests check it against sklearn's own ``predict_proba``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import json
import re
from pathlib import Path

import numpy as np

from training.normalise import NormaliserConfig, normalise
from training.schema import SCHEMA, TRIED, LabelSchema

if TYPE_CHECKING:  # inference imports neither the data stack (datasets) nor sklearn (+130 MB resident)
    from sklearn.linear_model import LogisticRegression

    from training.data import Targets


class LexicalModel:
    """One shared TF-IDF featuriser (word 1-2-grams + char 2-5-grams) and a logistic regression per head."""

    def __init__(self, schema: LabelSchema = SCHEMA, normaliser: NormaliserConfig = NormaliserConfig(), C: float = 4.0):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        self.schema, self.normaliser, self.C = schema, normaliser, C
        self.features = FeatureUnion(
            [
                ("word", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)),
                ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True)),
            ]
        )
        self.urgency = self._lr()
        self.issue_type = self._lr()
        self.channels: list["LogisticRegression | None"] = []
        self.tried: "LogisticRegression | None" = None  # any channel: the tried-another-channel output

    def _lr(self) -> "LogisticRegression":
        from sklearn.linear_model import LogisticRegression

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
    def _full(model: "LogisticRegression", x, n_classes: int) -> np.ndarray:
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


WHITE_SPACES = re.compile(r"\\s\\s+")  # sklearn's _VectorizerMixin._white_spaces


def word_ngrams(text: str, pattern: re.Pattern, ngram_range: tuple[int, int]) -> list[str]:
    """sklearn's ``analyzer="word"`` (no stop words): tokens by ``token_pattern``, then n-grams joined by a space."""
    tokens = pattern.findall(text)
    lo, hi = ngram_range
    out = list(tokens) if lo == 1 else []
    for n in range(max(lo, 2), min(hi, len(tokens)) + 1):
        out += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return out


def char_wb_ngrams(text: str, ngram_range: tuple[int, int]) -> list[str]:
    """sklearn's ``analyzer="char_wb"``: character n-grams inside space-padded words; a word shorter than n
    gives itself once."""
    lo, hi = ngram_range
    out: list[str] = []
    for w in WHITE_SPACES.sub(" ", text).split():
        w = f" {w} "
        for n in range(lo, hi + 1):
            if len(w) <= n:
                out.append(w)
                break
            out += [w[i : i + n] for i in range(len(w) - n + 1)]
    return out


class CompiledLexical:
    """``LexicalModel.predict_proba`` from plain arrays: one featurising pass, one matrix product.

    Softmax for urgency and issue type (multinomial, as sklearn's lbfgs fits them), the logistic function
    for each binary output. ``of`` builds it from a fitted model (None when the featuriser is not the plain
    TF-IDF union written out here); ``save``/``load`` keep it as an ``.npz`` without pickles.
    """

    def __init__(self, spec: dict, vocabs: list[list[str]], idf: list[np.ndarray], weights: np.ndarray,
                 bias: np.ndarray):
        self.spec, self.weights, self.bias = spec, weights, bias
        self.normaliser = NormaliserConfig.from_dict(spec["normaliser"])
        self.parts = []  # (analyse, vocabulary, idf, sublinear, column offset)
        offset = 0
        for part, vocab, part_idf in zip(spec["parts"], vocabs, idf):
            rng = tuple(part["ngram_range"])
            if part["analyzer"] == "word":
                pattern = re.compile(part["token_pattern"])
                analyse = (lambda t, p=pattern, r=rng: word_ngrams(t, p, r))
            else:
                analyse = (lambda t, r=rng: char_wb_ngrams(t, r))
            lower = part["lowercase"]
            self.parts.append(((lambda t, a=analyse, low=lower: a(t.lower() if low else t)),
                               {g: j for j, g in enumerate(vocab)}, part_idf, part["sublinear_tf"], offset))
            offset += len(vocab)

    @classmethod
    def of(cls, model: LexicalModel) -> "CompiledLexical | None":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        feats = getattr(model, "features", None)
        if not isinstance(feats, FeatureUnion) or feats.transformer_weights is not None:
            return None
        parts, vocabs, idf = [], [], []
        for _, vec in feats.transformer_list:
            plain = (type(vec) is TfidfVectorizer and vec.analyzer in ("word", "char_wb") and vec.norm == "l2"
                     and vec.use_idf and not vec.binary and vec.input == "content" and vec.preprocessor is None
                     and vec.tokenizer is None and vec.stop_words is None and not vec.strip_accents)
            if not plain:
                return None
            parts.append({"analyzer": vec.analyzer, "ngram_range": list(vec.ngram_range), "lowercase": vec.lowercase,
                          "token_pattern": vec.token_pattern, "sublinear_tf": bool(vec.sublinear_tf)})
            vocab = [""] * len(vec.vocabulary_)
            for gram, j in vec.vocabulary_.items():
                vocab[j] = gram
            vocabs.append(vocab)
            idf.append(np.asarray(vec.idf_, dtype=np.float64))
        schema = model.schema
        specs = [("urgency", model.urgency), ("issue_type", model.issue_type)]
        specs += [(f"prior_channels:{c}", m) for c, m in enumerate(model.channels) if m is not None]
        if getattr(model, "tried", None) is not None:
            specs.append((TRIED, model.tried))
        outputs, coefs, biases, col = [], [], [], 0
        for name, lr in specs:
            coef = np.asarray(lr.coef_, dtype=np.float64)
            outputs.append({"name": name, "column": col, "width": coef.shape[0],
                            "classes": np.asarray(lr.classes_).astype(int).tolist()})
            coefs.append(coef.T)
            biases.append(np.asarray(lr.intercept_, dtype=np.float64))
            col += coef.shape[0]
        spec = {"format": 1, "normaliser": model.normaliser.to_dict(), "parts": parts, "outputs": outputs,
                "n_classes": {"urgency": len(schema.urgency), "issue_type": len(schema.issue_type),
                              "prior_channels": len(schema.prior_channels)}}
        return cls(spec, vocabs, idf, np.hstack(coefs), np.concatenate(biases))

    def save(self, path: Path) -> Path:
        arrays = {"spec": np.array(json.dumps(self.spec)), "weights": self.weights, "bias": self.bias}
        for i, (_, vocab, idf, _, _) in enumerate(self.parts):
            arrays[f"vocab_{i}"] = np.array(sorted(vocab, key=vocab.get))
            arrays[f"idf_{i}"] = idf
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "CompiledLexical":
        with np.load(path, allow_pickle=False) as z:
            spec = json.loads(str(z["spec"]))
            n = len(spec["parts"])
            return cls(spec, [z[f"vocab_{i}"].tolist() for i in range(n)], [z[f"idf_{i}"] for i in range(n)],
                       z["weights"], z["bias"])

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and values of one post's TF-IDF row (sklearn's ``FeatureUnion.transform``)."""
        idx, vals = [], []
        for analyse, vocab, idf, sublinear, offset in self.parts:
            counts: dict[int, int] = {}
            for gram in analyse(text):
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
            idx.append(j + offset)
            vals.append(tf / np.sqrt(np.dot(tf, tf)))
        if not idx:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(idx), np.concatenate(vals)

    def scores(self, texts: list[str]) -> np.ndarray:
        """Every output's decision function for a batch: (n, outputs), one gathered product per post."""
        out = np.empty((len(texts), len(self.bias)), dtype=np.float64)
        for r, t in enumerate(texts):
            j, v = self.features(normalise(t, self.normaliser))
            out[r] = v @ self.weights[j] + self.bias
        return out

    def predict_proba(self, texts: list[str]) -> dict[str, np.ndarray]:
        scores = self.scores(texts)
        n = len(texts)
        nc = self.spec["n_classes"]
        out = {"prior_channels": np.zeros((n, nc["prior_channels"]), dtype=np.float32)}
        for o in self.spec["outputs"]:
            z = scores[:, o["column"] : o["column"] + o["width"]]
            name = o["name"]
            if o["width"] > 1:
                z = np.exp(z - z.max(axis=1, keepdims=True))
                full = np.zeros((n, nc[name]), dtype=np.float32)
                full[:, o["classes"]] = z / z.sum(axis=1, keepdims=True)
                out[name] = full
                continue
            p = (1.0 / (1.0 + np.exp(-z[:, 0]))).astype(np.float32)
            if name.startswith("prior_channels:"):
                out["prior_channels"][:, int(name.split(":")[1])] = p
            else:
                out[name] = p
        return out
