"""`frontline label --engine spark`: the same model through mlflow.pyfunc.spark_udf on local[2] gives the same
labels as the local streaming path."""

from __future__ import annotations

import importlib.util
import shutil

import pyarrow.parquet as pq
import pytest

from serving.batch.labelling import LabelOptions, run_label
from tests.serving.batch.label_support import (
    read_output,
    read_rejects,
    sample_posts,
    write_rows,
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
    src = write_rows(tmp_path / "in.jsonl", posts)
    local_out = tmp_path / "local.parquet"
    # the local path over the bundle that was registered as the champion the Spark UDF loads
    run_label(LabelOptions(input=src, output=local_out, chunk_rows=100), predictor=tiny_predictor,
              model_info={"uri": str(tiny_model.bundle_dir)}, progress=False)
    spark = get_spark("local[2]")
    try:
        spark_out = tmp_path / "spark.parquet"
        s = run_spark_label(SparkOptions(input=src, output=spark_out, model=tiny_model.uri), spark=spark)
    finally:
        spark.stop()
    assert s["rows_read"] == 50 and s["labelled"] == 49 and s["rejected"] == 1
    assert s["reject_reasons"] == {"empty text": 1}
    local = {r["id"]: r for r in read_output(local_out)}
    got = {r["id"]: r for r in pq.read_table(spark_out).to_pylist()}  # a directory of Spark part files
    assert set(got) == set(local) and len(got) == 49
    for pid, r in local.items():
        g = got[pid]
        assert list(g) == list(r)  # same output columns, same order
        for k in ("urgency", "issue_type", "prior_channels", "tried_other_channel", "company", "created_at",
                  "contains_personal_data"):
            assert g[k] == r[k], (pid, k)
        # scores agree to int8/batching noise (Spark batches differently)
        assert g["urgency_score"] == pytest.approx(r["urgency_score"], abs=2e-3)
        assert g["issue_type__billing"] == pytest.approx(r["issue_type__billing"], abs=2e-3)
    assert [r["id"] for r in read_rejects(local_out)] == [posts[7]["id"]]
    rejects = [r for f in (tmp_path / "spark.parquet.rejects").glob("*.json") for r in
               __import__("json").loads("[" + ",".join(f.read_text().splitlines()) + "]")]
    assert [(r["id"], r["reason"]) for r in rejects] == [(posts[7]["id"], "empty text")]
