"""Exact-duplicate texts are labelled once per run and fanned out: same rows out as without reuse, counted in
the summary, and the memory that makes it possible is bounded."""

from __future__ import annotations

import pytest

from serving.batch.labelling import LabelCache, LabelOptions, run_label
from tests.serving.batch.label_support import read_output, sample_posts, write_rows
from training.predict import flat_columns
from training.schema import SCHEMA


def test_duplicates_are_labelled_once_and_fanned_out(tmp_path, tiny_predictor):
    posts = sample_posts(30)
    for i in (4, 11, 17, 25):  # copies of post 0, within its chunk and in later chunks
        posts[i]["text"] = posts[0]["text"]
    posts[26]["text"] = posts[20]["text"]
    src = write_rows(tmp_path / "in.jsonl", posts)
    calls = []
    orig = tiny_predictor.classify

    def counting(texts, *a, **kw):
        calls.append(len(texts))
        return orig(texts, *a, **kw)

    tiny_predictor.classify = counting
    try:
        s = run_label(LabelOptions(input=src, output=tmp_path / "dedup.parquet", chunk_rows=10),
                      predictor=tiny_predictor, model_info={"uri": "tiny"}, progress=False)
        calls_dedup = sum(calls)
        plain = run_label(LabelOptions(input=src, output=tmp_path / "plain.parquet", chunk_rows=10, dedup=False),
                          predictor=tiny_predictor, model_info={"uri": "tiny"}, progress=False)
    finally:
        del tiny_predictor.classify
    assert s["duplicates_reused"] == 5 and plain["duplicates_reused"] == 0
    assert calls_dedup == 25  # 30 posts, 5 of them copies: the model read 25 texts
    got, want = read_output(tmp_path / "dedup.parquet"), read_output(tmp_path / "plain.parquet")
    assert [r["id"] for r in got] == [p["id"] for p in posts]
    for g, w in zip(got, want):
        for k, v in w.items():
            if isinstance(v, float):
                assert g[k] == pytest.approx(v, abs=2e-3), k  # batch composition moves int8 scores a hair
            else:
                assert g[k] == v, k
    labels = [*flat_columns(SCHEMA), "contains_personal_data"]
    for i in (4, 11, 17, 25):  # a fanned-out copy has its original's labels, and its own id, time and company
        assert {k: got[i][k] for k in labels} == {k: got[0][k] for k in labels}
        assert got[i]["id"] == posts[i]["id"] and got[i]["created_at"] == posts[i]["created_at"]


def test_the_cache_is_bounded():
    cache = LabelCache(entries=2)
    for t in ("a", "b", "c"):
        cache.put(LabelCache.key(t), ({"urgency": t, "urgency_score": 0.5}, False))
    assert len(cache) == 2 and cache.get(LabelCache.key("a")) is None
    assert cache.get(LabelCache.key("c")) == ({"urgency": "c", "urgency_score": 0.5}, False)
