"""``frontline label --engine spark``: the same model over Spark, through ``mlflow.pyfunc.spark_udf``.

For exports too big for one machine (or already on a cluster). Spark reads the file; the *column rules* are
not re-written in Spark SQL but run on the executors as the very functions the local engine calls
(:func:`prepare_batches` → ``serving.batch.columns.check_row``, ``serving.batch.formats.parse_json_line``), so
a row is labelled, rejected or skipped for the same reason, and ``@Café_help`` is the same company, in both.

How each format reaches the rules: JSONL is read as raw lines (``spark.read.text`` cast to bytes) and parsed by
the local parser, so JSON types survive (a number is not a text); CSV by Spark's multi-line reader with every
column as a string and malformed rows in ``_corrupt_record`` (undecodable bytes arrive as U+FFFD and are
rejected as undecodable); Parquet with its own types.

The differences are Spark's: the output (and ``OUTPUT.rejects``) is a *directory* of part files, a run is
retried by Spark rather than resumed from a manifest, rejects carry no row number, and without an id column
the output id is empty (the local engine uses the row number).

    frontline label export.csv --out labelled.parquet --engine spark --spark-master local[8]
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pyarrow as pa

from serving.batch.chunked import ExportOptions
from serving.batch.columns import Columns, Undecodable, check_row, output_schema, reason_key
from serving.batch.errors import LabelError
from serving.batch.formats import CHANNEL_SEP, EXCERPT_CHARS, Record, Source, detect_format, multiline_fields, \
    parse_json_line
from serving.batch.manifest import _atomic_write_text, side_paths
from training.predict import flat_column_kinds
from training.schema import SCHEMA

log = logging.getLogger("frontline.batch")
CORRUPT = "_corrupt_record"


@dataclass
class SparkOptions(ExportOptions):
    master: str = "local[*]"


def prepared_schema(cols: Columns) -> pa.Schema:
    """What :func:`prepare_batches` yields: the rule's verdict per row and the output fields of good rows."""
    names = ["_status", "_reason", "_reason_key", "_excerpt", "id", "text", "created_at", "company"]
    names += [c for c in cols.carry_out if c not in names]  # a carried `text` is the post's own text column
    return pa.schema([pa.field(n, pa.string()) for n in names] + [pa.field("_multiline", pa.int32())])


def prepare_batches(batches: Iterator[pa.RecordBatch], *, cols: Columns, kind: str) -> Iterator[pa.RecordBatch]:
    """Runs on the executors (``mapInArrow``): each Spark row → a :class:`Record` → ``check_row``'s verdict.

    ``kind``: ``jsonl`` (a ``line`` bytes column), ``csv`` (string columns + ``_corrupt_record``) or
    ``parquet`` (typed columns). A blank JSONL line gets status ``blank`` (not a row, as locally).
    """
    schema = prepared_schema(cols)
    needed = cols.needed()
    for batch in batches:
        out: dict[str, list] = {n: [] for n in schema.names}
        if kind == "jsonl":
            lines = batch.column("line").to_pylist()
            recs = [None if not line or not line.strip() else parse_json_line(line, None, needed) for line in lines]
            spans = [0] * len(lines)
        else:
            data = {n: batch.column(n).to_pylist() for n in needed}
            corrupt = batch.column(CORRUPT).to_pylist() if CORRUPT in batch.schema.names else [None] * batch.num_rows
            spans = (multiline_fields(batch.drop_columns([CORRUPT]) if CORRUPT in batch.schema.names else batch)
                     if kind == "csv" else [0] * batch.num_rows)  # only a CSV field can span lines unseen
            recs = []
            for i in range(batch.num_rows):
                if corrupt[i] is not None:
                    recs.append(Record(0, error="malformed CSV row: wrong number of fields",
                                       excerpt=corrupt[i][:EXCERPT_CHARS]))
                    continue
                vals = {n: data[n][i] for n in needed}
                if kind == "csv":  # Spark decoded the bytes already: a replacement character marks bad ones
                    vals = {n: Undecodable(v) if isinstance(v, str) and "\ufffd" in v else v for n, v in vals.items()}
                recs.append(Record(0, vals))
        for rec, span in zip(recs, spans):
            if rec is None:
                row = {"_status": "blank"}
            else:
                o = check_row(rec, cols)
                row = {"_status": o.status, "_reason": o.reason, "_excerpt": o.excerpt,
                       "_reason_key": reason_key(o.reason) if o.reason else None, "id": o.id, **(o.fields or {})}
            row["_multiline"] = span
            for n in schema.names:
                out[n].append(row.get(n))
        yield pa.RecordBatch.from_pydict(out, schema=schema)


def result_type():
    """The pyfunc's output (``flat_columns``) as a Spark struct."""
    from pyspark.sql import types as T

    spark = {"label": T.StringType(), "labels": T.ArrayType(T.StringType()), "flag": T.BooleanType(),
             "score": T.DoubleType()}
    fields = [T.StructField(name, spark[kind]) for name, kind in flat_column_kinds(SCHEMA)]
    return T.StructType(fields)


def _pii_flag(text):  # runs on the executors
    from serving.pii import contains_personal_data

    return bool(contains_personal_data(text)) if text is not None else False


def _language(text, needs_review, review_reasons):  # runs on the executors: serving.language.apply, as the service
    from serving.language import apply, detect

    r = apply({"needs_review": needs_review, "review_reasons": list(review_reasons or [])}, detect(text or ""))
    return r["language"], r["needs_review"], r["review_reasons"]


def get_spark(master: str = "local[*]"):
    import os
    import sys

    from pyspark.sql import SparkSession

    # executors' Python workers must be this interpreter (this venv), not whatever `python3` is on PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (SparkSession.builder.master(master).appName("frontline-label")
            .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())


def _read(spark, path: str, fmt: str, header: list[str], cols: Columns):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if fmt == "jsonl":
        return spark.read.text(path).select(F.col("value").cast("binary").alias("line")), "jsonl"
    if fmt == "csv":
        schema = T.StructType([T.StructField(h, T.StringType()) for h in header]
                              + [T.StructField(CORRUPT, T.StringType())])
        df = (spark.read.schema(schema).option("header", True).option("multiLine", True).option("escape", '"')
              .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT).csv(path))
        return df, "csv"
    return spark.read.parquet(path).select(*[F.col(f"`{c}`") for c in cols.needed()]), "parquet"


def run_spark_label(opts: SparkOptions, spark=None) -> dict:
    """Label with Spark; writes OUTPUT/ (Spark part files), OUTPUT.rejects/ and OUTPUT.summary.json."""
    try:
        import mlflow.pyfunc
        from pyspark.sql import functions as F
        from pyspark.sql import types as T
    except ImportError as e:
        raise LabelError(f"the Spark engine needs pyspark: pip install 'frontline[spark]' ({e})") from e
    started = time.monotonic()
    in_fmt = detect_format(opts.input, opts.in_format)
    out_fmt = detect_format(opts.output, opts.out_format)
    source = Source(opts.input, in_fmt)  # the header, read on the driver exactly as the local engine reads it
    header = source.header or ["text"]  # an empty file: an empty output, as the local engine writes
    cols = opts.columns(header)
    spark = spark or get_spark(opts.master)
    df, kind = _read(spark, str(opts.input.resolve()), in_fmt, header, cols)
    from pyspark.sql.pandas.types import from_arrow_schema

    prepared = df.mapInArrow(partial(prepare_batches, cols=cols, kind=kind),
                             from_arrow_schema(prepared_schema(cols))).cache()
    stats = prepared.groupBy("_status", "_reason_key").agg(F.count(F.lit(1)).alias("n"),
                                                           F.sum("_multiline").alias("ml")).collect()
    count = {}
    reject_counts: dict[str, int] = {}
    for r in stats:
        count[r["_status"]] = count.get(r["_status"], 0) + r["n"]
        if r["_status"] == "reject":
            reject_counts[r["_reason_key"]] = r["n"]
    multiline = sum(r["ml"] or 0 for r in stats)

    udf = mlflow.pyfunc.spark_udf(spark, opts.model, result_type=result_type(), env_manager="local")
    pii = F.udf(_pii_flag, T.BooleanType())
    good = prepared.filter(F.col("_status") == "ok")
    extra = [F.col(f"`{n}`") for n in cols.output_extra()]
    pred = good.select(*extra, F.col("text").alias("_text")).withColumn(
        "_p", udf(F.struct(F.col("_text").alias("text"))))
    pred = pred.withColumn("contains_personal_data", pii(F.col("_text")))
    lang = F.udf(_language, T.StructType([T.StructField("language", T.StringType()),
                                          T.StructField("needs_review", T.BooleanType()),
                                          T.StructField("review_reasons", T.ArrayType(T.StringType()))]))
    pred = pred.withColumn("_lang", lang(F.col("_text"), F.col("_p.needs_review"), F.col("_p.review_reasons")))
    by_language = {n: F.col(f"_lang.{n}") for n in ("language", "needs_review", "review_reasons")}
    names = output_schema(cols).names
    out = pred.select(*[F.col(f"`{n}`") if n in cols.output_extra() or n == "contains_personal_data"
                        else by_language.get(n, F.col(f"_p.{n}")).alias(n) for n in names])
    if out_fmt == "csv":  # lists (prior_channels, review_reasons) as names joined by '|'
        for name, k in flat_column_kinds():
            if k == "labels":
                out = out.withColumn(name, F.concat_ws(CHANNEL_SEP, name))
    target = str(opts.output.resolve())
    writer = out.write.mode("overwrite")
    if out_fmt == "parquet":
        writer.parquet(target)
    elif out_fmt == "csv":
        writer.option("header", True).csv(target)
    else:
        writer.json(target)
    rejects_dir = opts.output.with_name(opts.output.name + ".rejects")
    (prepared.filter(F.col("_status") == "reject")
     .select("id", F.col("_reason").alias("reason"), F.col("_excerpt").alias("excerpt"))
     .write.mode("overwrite").json(str(rejects_dir.resolve())))
    prepared.unpersist()
    rejected = count.get("reject", 0)
    skipped = count.get("skip", 0)
    labelled = count.get("ok", 0)
    seconds = time.monotonic() - started
    summary = {"engine": "spark", "master": spark.sparkContext.master, "input": str(opts.input),
               "output": str(opts.output), "rejects_dir": str(rejects_dir), "in_format": in_fmt, "out_format": out_fmt,
               "rows_read": labelled + rejected + skipped, "labelled": labelled, "rejected": rejected,
               "skipped_not_inbound": skipped, "blank_lines": count.get("blank", 0), "reject_reasons": reject_counts,
               "multiline_fields": multiline, "seconds": round(seconds, 3),
               "posts_per_second": round(labelled / max(seconds, 1e-9), 1), "model": {"uri": opts.model},
               "columns": cols.describe()}
    _atomic_write_text(side_paths(opts.output)["summary"], json.dumps(summary, indent=2))
    if multiline:
        log.warning("%d quoted field(s) span lines: standard CSV, but an unterminated quote swallows the rows "
                    "after it into one field", multiline)
    log.info("labelled %s with Spark: %d rows read, %d labelled, %d rejected %s, %d skipped (not inbound)",
             opts.input.name, summary["rows_read"], labelled, rejected, reject_counts, skipped)
    return summary
