"""`frontline label --engine spark`: the same model through mlflow.pyfunc.spark_udf on local[2] gives the same
labels as the local streaming path, and the same column rules: the same rows rejected for the same reasons (a
number as text, an object as text, broken JSON, bad bytes, malformed and multi-line CSV rows) and the same company
from a Unicode @handle."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pyarrow.parquet as pq
import pytest

from serving.batch.labelling import LabelOptions, run_label
from tests.serving.batch.label_support import (
    read_output,
    read_rejects,
    sample_posts,
)

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark not installed "
                       "(pip install 'frontline[spark]'); Spark engine test skipped"),
    pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime on PATH; Spark engine test skipped"),
]


def test_spark_engine_matches_local_labels(tmp_path, tiny_model, tiny_predictor):
    from serving.batch.spark import SparkOptions, get_spark, run_spark_label

    posts = sample_posts(50)
    posts[7]["text"] = ""  # rejected by both engines
    posts[3].update(text="@Café_help my card was charged twice and nobody answers", company="")
    posts[5]["text"] = 42
    posts[6]["text"] = {"body": "an object is not a post"}
    lines = [json.dumps(p, ensure_ascii=False).encode() for p in posts]
    lines[10:10] = [b'{"id": "broken", "text": "unterminated', b'{"id": "bytes", "text": "caf\xe9 au lait"}', b""]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    bad = {posts[5]["id"], posts[6]["id"], posts[7]["id"], "bytes", None}
    local_out = tmp_path / "local.parquet"
    # the local path over the bundle that was registered as the champion the Spark UDF loads
    run_label(LabelOptions(input=src, output=local_out, chunk_rows=100), predictor=tiny_predictor,
              model_info={"uri": str(tiny_model.bundle_dir)}, progress=False)
    spark = get_spark("local[2]")
    try:
        spark_out = tmp_path / "spark.parquet"
        s = run_spark_label(SparkOptions(input=src, output=spark_out, model=tiny_model.uri), spark=spark)
        csv_local, csv_spark = _csv_both(tmp_path, tiny_model, tiny_predictor, spark)
    finally:
        spark.stop()
    local_s = json.loads((tmp_path / "local.parquet.summary.json").read_text())
    for k in ("rows_read", "labelled", "rejected", "reject_reasons", "blank_lines", "skipped_not_inbound"):
        assert s[k] == local_s[k], k
    assert s["rows_read"] == 52 and s["labelled"] == 47 and s["blank_lines"] == 1
    assert s["reject_reasons"] == {"empty text": 1, "wrong type": 2, "broken JSON": 1, "undecodable bytes": 1}
    local = {r["id"]: r for r in read_output(local_out)}
    got = {r["id"]: r for r in pq.read_table(spark_out).to_pylist()}  # a directory of Spark part files
    assert set(got) == set(local) and len(got) == 47 and not set(got) & bad
    assert got[posts[3]["id"]]["company"] == local[posts[3]["id"]]["company"] == "Café_help"
    for k in ("rows_read", "labelled", "rejected", "reject_reasons", "multiline_fields"):
        assert csv_spark[k] == csv_local[k], (k, csv_spark[k], csv_local[k])
    for pid, r in local.items():
        g = got[pid]
        assert list(g) == list(r)  # same output columns, same order
        for k in ("urgency", "issue_type", "prior_channels", "tried_other_channel", "company", "created_at",
                  "contains_personal_data"):
            assert g[k] == r[k], (pid, k)
        # scores agree to int8/batching noise (Spark batches differently)
        assert g["urgency_score"] == pytest.approx(r["urgency_score"], abs=2e-3)
        assert g["issue_type__billing"] == pytest.approx(r["issue_type__billing"], abs=2e-3)
    local_rejects = sorted((r["id"] or "", r["reason"]) for r in read_rejects(local_out))
    rejects = [r for f in (tmp_path / "spark.parquet.rejects").glob("*.json") for r in
               json.loads("[" + ",".join(f.read_text().splitlines()) + "]")]
    spark_rejects = sorted((r.get("id") or "", r["reason"]) for r in rejects)
    assert spark_rejects == local_rejects  # same rows, same reasons, word for word


def _csv_both(tmp_path, tiny_model, tiny_predictor, spark):
    """A CSV with a quoted field spanning lines, a row with too many fields and bad bytes, through both engines."""
    from serving.batch.spark import SparkOptions, run_spark_label

    posts = sample_posts(12, offset=60)
    rows = [b"id,text,company"]
    for i, p in enumerate(posts):
        text = p["text"].replace('"', '""').encode()
        if i == 2:
            text = b"first line\nsecond line of the same post"
        if i == 4:
            text = b"caf\xe9 latte cold"
        rows.append(b'%s,"%s",Acme' % (p["id"].encode(), text))
    rows.insert(8, b'x1,"a row with",too,many,fields')
    src = tmp_path / "in.csv"
    src.write_bytes(b"\n".join(rows) + b"\n")
    local = run_label(LabelOptions(input=src, output=tmp_path / "csv_local.jsonl"), predictor=tiny_predictor,
                      model_info={"uri": "tiny"}, progress=False)
    assert local["multiline_fields"] == 1 and local["rejected"] == 2
    got = run_spark_label(SparkOptions(input=src, output=tmp_path / "csv_spark.jsonl", model=tiny_model.uri),
                          spark=spark)
    return local, got
