"""The lexical half's inference form: the same probabilities as sklearn's, without sklearn."""

import subprocess
import sys

import numpy as np
import pytest

from training.data import Targets, read_labelled
from training.lexical import CompiledLexical, LexicalModel, char_wb_ngrams, word_ngrams

ODD = ["", "!!!", "a", "ab cd", "x " * 300, "Ünïcödé  \t tabs\n\nnew  lines ÉCOLE", "@Delta called 3x, DM'd, emailed",
       "my card was charged twice, emailed twice", "where is my parcel??  http"]


@pytest.fixture(scope="module")
def fitted():
    ds = read_labelled().select(range(600))
    texts = list(ds["text"])
    return LexicalModel().fit(texts, Targets.of(ds)), texts


def test_analysers_match_sklearn(fitted):
    model, texts = fitted
    word, char = (v for _, v in model.features.transformer_list)
    wa, ca = word.build_analyzer(), char.build_analyzer()
    import re

    pattern = re.compile(word.token_pattern)
    for t in texts[:200] + ODD:
        assert sorted(word_ngrams(t.lower(), pattern, word.ngram_range)) == sorted(wa(t))
        assert sorted(char_wb_ngrams(t.lower(), char.ngram_range)) == sorted(ca(t))


def test_compiled_probabilities_equal_sklearn_after_a_save_and_load(fitted, tmp_path):
    model, texts = fitted
    compiled = CompiledLexical.load(CompiledLexical.of(model).save(tmp_path / "lexical.npz"))
    sample = texts[:300] + ODD
    ref, got = model.sklearn_predict_proba(sample), compiled.predict_proba(sample)
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].shape == ref[k].shape and got[k].dtype == ref[k].dtype
        np.testing.assert_allclose(got[k], ref[k], atol=1e-6)
    assert model.predict_proba(sample)["urgency"].tolist() == got["urgency"].tolist()  # the model uses it too


def test_unknown_featuriser_falls_back_to_sklearn(fitted):
    model, _ = fitted
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.pipeline import FeatureUnion

    import copy

    odd = copy.deepcopy(model)
    odd.__dict__.pop("_compiled", None)
    odd.features = FeatureUnion([("bag", CountVectorizer())])
    assert odd.compiled() is None


def test_predictor_loads_the_arrays_without_sklearn(tiny_model):
    from training.predict import LEXICAL_ARRAYS_FILE

    if not (tiny_model.bundle_dir / LEXICAL_ARRAYS_FILE).exists():
        pytest.skip("the tiny model was trained without the lexical half")
    code = (f"import sys; from training.predict import Predictor; p = Predictor({str(tiny_model.bundle_dir)!r}); "
            "p.classify(['called twice, no answer']); print(type(p.lexical).__name__, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["CompiledLexical", "False"]
