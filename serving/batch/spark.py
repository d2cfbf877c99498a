"""``frontline label --engine spark``: the same model over Spark, through ``mlflow.pyfunc.spark_udf``.

For exports too big for one machine (or already on a cluster). Same column detection, same output columns as
the local engine; the differences are Spark's: the output (and ``OUTPUT.rejects``) is a *directory* of part
files written by Spark, a run is retried by Spark rather than resumed from a manifest, and a CSV's undecodable
bytes arrive as U+FFFD replacement characters (such rows are rejected as undecodable, as locally).

    frontline label export.csv --out labelled.parquet --engine spark --spark-master local[8]
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from serving.batch.labelling import (
    _TRUE,
    CHANNEL_SEP,
    ExportOptions,
    LabelError,
    _atomic_write_text,
    detect_columns,
    detect_format,
    output_schema,
    side_paths,
)
from training.predict import flat_column_kinds
from training.schema import SCHEMA

# first @handle that is not all digits (TWCS anonymises customers to numbers): same rule as company_from_text
_HANDLE_RE = r"@(\d*[A-Za-z_][A-Za-z0-9_]*)"


@dataclass
class SparkOptions(ExportOptions):
    master: str = "local[*]"


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


def _language(text):  # runs on the executors: (ISO 639-1 code, unsupported?) by the service's rule
    from serving.language import detect

    lang = detect(text or "")
    return lang.code, lang.unsupported


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
    spark = spark or get_spark(opts.master)
    path = str(opts.input.resolve())
    if in_fmt == "csv":
        df = (spark.read.option("header", True).option("multiLine", True).option("escape", '"')
              .option("mode", "PERMISSIVE").csv(path))
    elif in_fmt == "jsonl":
        df = (spark.read.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", "_corrupt_record")
              .json(path))
    else:
        df = spark.read.parquet(path)
    corrupt = "_corrupt_record" in df.columns
    if corrupt:
        df = df.cache()  # Spark refuses queries on the corrupt-record column alone without a cache
    header = [c for c in df.columns if c != "_corrupt_record"]
    cols = detect_columns(header, id_col=opts.id_col, text_col=opts.text_col, time_col=opts.time_col,
                          company_col=opts.company_col, inbound_col=opts.inbound_col, carry=opts.carry)
    rows_read = df.count()

    def s(c):
        return F.col(f"`{c}`").cast("string")

    text = s(cols.text)
    ident = s(cols.id) if cols.id else F.lit(None).cast("string")
    reason = F.when(F.lit(False), F.lit(None))
    if corrupt:
        reason = F.when(F.col("_corrupt_record").isNotNull(), F.lit("broken JSON"))
    reason = (reason.when(text.isNull() | (F.trim(text) == ""), F.lit("empty text"))
              .when(text.contains("\ufffd"), F.lit("undecodable bytes (not UTF-8)")))
    inbound_ok = F.lit(True)
    if cols.inbound:
        inbound_ok = F.lower(F.trim(s(cols.inbound))).isin(list(_TRUE)) & F.col(f"`{cols.inbound}`").isNotNull()
    df = df.withColumn("_reason", reason).withColumn("_inbound", inbound_ok)
    if corrupt:  # a broken line is a reject whatever its (absent) inbound flag says
        df = df.withColumn("_inbound", F.col("_inbound") | F.col("_corrupt_record").isNotNull())
    skipped = df.filter(~F.col("_inbound")).count()
    kept = df.filter(F.col("_inbound"))
    rejects = kept.filter(F.col("_reason").isNotNull()).select(
        ident.alias("id"), F.col("_reason").alias("reason"),
        F.substring(F.coalesce(F.col("_corrupt_record") if corrupt else text, F.lit("")), 1, 300).alias("excerpt"))
    good = kept.filter(F.col("_reason").isNull())

    udf = mlflow.pyfunc.spark_udf(spark, opts.model, result_type=result_type(), env_manager="local")
    pii = F.udf(_pii_flag, T.BooleanType())
    extra = [ident.alias("id")]
    if cols.time:
        extra.append(s(cols.time).alias("created_at"))
    if cols.company:
        extra.append(F.coalesce(F.when(F.trim(s(cols.company)) != "", s(cols.company)),
                                F.when(F.regexp_extract(text, _HANDLE_RE, 1) != "",
                                       F.regexp_extract(text, _HANDLE_RE, 1))).alias("company"))
    elif cols.company_from_text:
        extra.append(F.when(F.regexp_extract(text, _HANDLE_RE, 1) != "",
                            F.regexp_extract(text, _HANDLE_RE, 1)).alias("company"))
    extra += [s(c).alias(o) for c, o in zip(cols.carry, cols.carry_out)]
    pred = good.select(*extra, text.alias("_text")).withColumn("_p", udf(F.struct(F.col("_text").alias("text"))))
    pred = pred.withColumn("contains_personal_data", pii(F.col("_text")))
    lang = F.udf(_language, T.StructType([T.StructField("code", T.StringType()),
                                          T.StructField("unsupported", T.BooleanType())]))
    pred = pred.withColumn("_lang", lang(F.col("_text")))
    other = F.col("_lang.unsupported")  # serving.language: `language` is the last review reason
    by_language = {"language": F.col("_lang.code"), "needs_review": F.col("_p.needs_review") | other,
                   "review_reasons": F.when(other, F.concat(F.col("_p.review_reasons"), F.array(F.lit("language"))))
                   .otherwise(F.col("_p.review_reasons"))}
    names = output_schema(cols).names
    out = pred.select(*[F.col(n) if n in cols.output_extra() or n == "contains_personal_data"
                        else by_language.get(n, F.col(f"_p.{n}")).alias(n) for n in names])
    if out_fmt == "csv":  # lists (prior_channels, review_reasons) as names joined by '|'
        for name, kind in flat_column_kinds():
            if kind == "labels":
                out = out.withColumn(name, F.concat_ws(CHANNEL_SEP, name))
    target = str(opts.output.resolve())
    writer = out.write.mode("overwrite")
    if out_fmt == "parquet":
        writer.parquet(target)
    elif out_fmt == "csv":
        writer.option("header", True).csv(target)
    else:
        writer.json(target)
    paths = side_paths(opts.output)
    rejects_dir = opts.output.with_name(opts.output.name + ".rejects")
    rejects.write.mode("overwrite").json(str(rejects_dir.resolve()))
    reject_counts = {r["reason"]: r["count"] for r in rejects.groupBy("reason").count().collect()}
    rejected = sum(reject_counts.values())
    labelled = rows_read - skipped - rejected
    seconds = time.monotonic() - started
    summary = {"engine": "spark", "master": spark.sparkContext.master, "input": str(opts.input),
               "output": str(opts.output), "rejects_dir": str(rejects_dir), "in_format": in_fmt, "out_format": out_fmt,
               "rows_read": rows_read, "labelled": labelled, "rejected": rejected, "skipped_not_inbound": skipped,
               "reject_reasons": reject_counts, "seconds": round(seconds, 3),
               "posts_per_second": round(labelled / max(seconds, 1e-9), 1), "model": {"uri": opts.model},
               "columns": {"id": cols.id, "text": cols.text, "time": cols.time, "company": cols.company or
                           ("first @handle in the text" if cols.company_from_text else None),
                           "inbound": cols.inbound, "carry": dict(zip(cols.carry, cols.carry_out))}}
    _atomic_write_text(paths["summary"], json.dumps(summary, indent=2))
    return summary
