"""`frontline report` reads the Spark engine's own output: a directory of part files, in each format, gives the
same page numbers as the local engine's single file."""

from __future__ import annotations

import importlib.util
import re
import shutil

import pytest

from serving.batch.labelling import LabelOptions, run_label
from serving.batch.report import Report, write_report
from tests.serving.batch.label_support import sample_posts, write_rows

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark not installed "
                       "(pip install 'frontline[spark]'); Spark report test skipped"),
    pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime on PATH; Spark report test skipped"),
]


def _numbers(page: str) -> list[str]:
    """The headline numbers and every bar's tooltip: what the page says, without its source path or time."""
    kpis = re.search(r'<div class="kpis" id="kpis">.*?</div></div>', page).group(0)
    return [kpis, *re.findall(r"<title>([^<]*)</title>", page)]


def test_report_reads_spark_output_directories(tmp_path, tiny_model, tiny_predictor):
    from serving.batch.spark import SparkOptions, get_spark, run_spark_label

    posts = sample_posts(80)
    src = write_rows(tmp_path / "in.jsonl", posts)
    local = tmp_path / "local.parquet"
    run_label(LabelOptions(input=src, output=local), predictor=tiny_predictor,
              model_info={"uri": str(tiny_model.bundle_dir)}, progress=False)
    ref = write_report(local, tmp_path / "local.html")
    ref_numbers = _numbers((tmp_path / "local.html").read_text())
    spark = get_spark("local[2]")
    try:
        for fmt in ("parquet", "csv", "jsonl"):
            out = tmp_path / f"spark.{fmt}"
            run_spark_label(SparkOptions(input=src, output=out, model=tiny_model.uri, carry=["text"]), spark=spark)
            assert out.is_dir() and list(out.glob("part-*"))  # Spark's layout, not one file
            got = write_report(out, tmp_path / f"spark-{fmt}.html")
            assert got["posts"] == ref["posts"] == 80, fmt
            page = (tmp_path / f"spark-{fmt}.html").read_text()
            # labels agree between engines (test_spark.py), so every count on the page agrees too
            assert _numbers(page) == ref_numbers, fmt
            assert Report(out).cube.has_text, fmt  # the carried text is found: spikes get example posts
    finally:
        spark.stop()
