"""Languages: every result says its language; a post the model was not trained for is sent to review
(service and local batch labelling), while short English posts are not."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from serving import language
from serving.api.app import create_app
from tests.serving.api.app_support import AUTH, metric_value, settings
from training.predict import flat_columns, flatten
from training.schema import REVIEW_REASONS

NON_ENGLISH = {
    "es": "@Iberia llevo dos horas esperando y nadie me atiende, el vuelo está cancelado",
    "de": "@DB_Bahn ich habe dreimal angerufen und niemand hilft mir, der Zug fällt schon wieder aus",
    "fr": "colis jamais reçu, j'ai appelé trois fois et toujours rien, remboursez-moi",
    "pt": "@AmazonHelp meu pedido não chegou ainda e ninguém responde",
}
# Short English posts from data/train.jsonl that language identifiers take for other languages on the raw text
SHORT_ENGLISH = ["@AmazonHelp Yes", "@comcastcares Will do", "@TMobileHelp Nah y’all dm", "@Uber_Support DM sent",
                 "@AskAmex Done", "@SouthwestAir thanks!", "@VerizonSupport Cell", "@Ask_Spectrum #keepviacom",
                 "@115714 scamming", "I called three times"]


@pytest.mark.parametrize("code", sorted(NON_ENGLISH))
def test_other_languages_are_detected_and_unsupported(code):
    got = language.detect(NON_ENGLISH[code])
    assert got.code == code and got.unsupported


@pytest.mark.parametrize("text", SHORT_ENGLISH)
def test_short_english_posts_are_not_flagged(text):
    assert not language.detect(text).unsupported


def test_a_post_without_letters_has_no_language_and_is_not_flagged():
    for text in ("@Delta 😡😡😡", "@BofA_Help  https://t.co/iEhHPYxbUa", "@Ask_Spectrum 704-654-1648"):
        got = language.detect(text)
        assert got.code is None and not got.unsupported


def test_apply_adds_the_reason_in_schema_order_and_sets_needs_review():
    r = {"needs_review": True, "review_reasons": ["possible_critical", "urgency"]}
    language.apply(r, language.Language("es", 0.99))
    assert r["language"] == "es" and r["needs_review"] is True
    assert r["review_reasons"] == [x for x in REVIEW_REASONS if x in {"urgency", "possible_critical", "language"}]
    quiet = language.apply({"needs_review": False, "review_reasons": []}, language.Language("en", 0.99))
    assert quiet == {"needs_review": False, "review_reasons": [], "language": "en"}
    unsure = language.apply({"needs_review": False, "review_reasons": []}, language.Language("it", 0.3))
    assert unsure["review_reasons"] == [] and unsure["language"] == "it"


def test_the_export_format_has_a_language_column(tiny_predictor):
    assert "language" in flat_columns()
    texts = [NON_ENGLISH["es"], "my card was charged twice"]
    rows = [flatten(r) for r in language.annotate(texts, tiny_predictor.classify(texts))]
    assert [r["language"] for r in rows] == ["es", "en"]
    assert "language" in rows[0]["review_reasons"] and rows[0]["needs_review"] is True
    assert "language" not in rows[1]["review_reasons"]


def test_the_service_flags_a_post_in_another_language(tiny_model):
    with TestClient(create_app(settings(tiny_model.uri))) as c:
        posts = [{"id": "es", "text": NON_ENGLISH["es"]}, {"id": "en", "text": "@Delta thanks, all sorted!"}]
        r = c.post("/v1/classify", json={"posts": posts}, headers=AUTH)
        assert r.status_code == 200, r.text
        es, en = r.json()["results"]
        assert es["language"] == "es" and "language" in es["review_reasons"] and es["needs_review"] is True
        assert en["language"] == "en" and "language" not in en["review_reasons"]
        assert "explanation" not in es  # only with explain: true
        assert metric_value(c.get("/metrics").text, "frontline_review_reasons_total", reason="language") == 1.0
        spec = c.get("/openapi.json").json()["components"]["schemas"]
        assert "language" in spec["ReviewReason"]["enum"] and "language" in spec["Result"]["properties"]


def test_batch_labelling_writes_language_and_the_review_reason(tiny_model, tmp_path):
    from serving.batch.labelling import LabelOptions, run_label

    src = tmp_path / "posts.jsonl"
    src.write_text("".join(json.dumps({"id": k, "text": t}) + "\n"
                           for k, t in [("es", NON_ENGLISH["es"]), ("en", "where is my parcel? ordered a week ago")]))
    out = tmp_path / "out.jsonl"
    run_label(LabelOptions(input=src, output=out, model=str(tiny_model.bundle_dir)), progress=False)
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["es"]["language"] == "es" and "language" in rows["es"]["review_reasons"] and rows["es"]["needs_review"]
    assert rows["en"]["language"] == "en" and "language" not in rows["en"]["review_reasons"]


@pytest.mark.spark
def test_the_spark_engine_applies_the_same_language_rule(tiny_model, tmp_path):
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None or shutil.which("java") is None:
        pytest.skip("needs pyspark and Java (pip install 'frontline[spark]')")
    import pyarrow.parquet as pq

    from serving.batch.labelling import LabelOptions, run_label
    from serving.batch.spark import SparkOptions, get_spark, run_spark_label

    src = tmp_path / "posts.jsonl"
    src.write_text("".join(json.dumps({"id": k, "text": t}) + "\n" for k, t in
                           [("es", NON_ENGLISH["es"]), ("de", NON_ENGLISH["de"]), ("en", "where is my parcel?"),
                            ("none", "@Delta 😡😡😡")]))
    run_label(LabelOptions(input=src, output=tmp_path / "local.parquet", model=str(tiny_model.bundle_dir)),
              progress=False)
    spark = get_spark("local[2]")
    try:
        run_spark_label(SparkOptions(input=src, output=tmp_path / "spark.parquet", model=tiny_model.uri), spark=spark)
    finally:
        spark.stop()
    local = {r["id"]: r for r in pq.read_table(tmp_path / "local.parquet").to_pylist()}
    got = {r["id"]: r for r in pq.read_table(tmp_path / "spark.parquet").to_pylist()}
    assert {k: v["language"] for k, v in got.items()} == {"es": "es", "de": "de", "en": "en", "none": None}
    for pid, r in local.items():
        for k in ("language", "review_reasons", "needs_review"):
            assert got[pid][k] == r[k], (pid, k)
    assert "language" in got["es"]["review_reasons"] and got["es"]["needs_review"] is True
