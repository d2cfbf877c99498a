"""Batch labelling of exports: CSV / JSONL / Parquet in, the flat export format out (``frontline label``).

The analyst's path, in four modules; this one is the stable import point for callers (the CLI, the report,
tests, scripts) so they do not depend on how the pieces are split:

* ``serving.batch.formats``: streaming readers (CSV as raw bytes, JSONL line by line, Parquet in batches), the
  tolerant ``.gz`` stream, the writers of each output format.
* ``serving.batch.columns``: the column rules both engines apply (detection, text must be a string, company
  from the first @handle, inbound filter): :func:`check_row` says what one record becomes.
* ``serving.batch.chunked``: the local run: chunks, labelling (duplicates once), counts, the summary.
* ``serving.batch.manifest``: parts, the ``manifest.json`` checkpoint, resume, the atomic final assembly.

The Spark engine (``serving.batch.spark``) reads with Spark and applies the same column rules.
"""

from __future__ import annotations

from serving.batch.chunked import (
    THROTTLE_ENV,
    ChunkResult,
    ExportOptions,
    LabelCache,
    LabelOptions,
    label_columns,
    prepare_chunk,
    run_label,
)
from serving.batch.columns import (
    COMPANY_CANDIDATES,
    ID_CANDIDATES,
    INBOUND_CANDIDATES,
    TEXT_CANDIDATES,
    TIME_CANDIDATES,
    Columns,
    check_row,
    company_from_text,
    detect_columns,
    output_schema,
)
from serving.batch.errors import LabelError
from serving.batch.formats import CHANNEL_SEP, EXCERPT_CHARS, FORMATS, Record, Source, detect_format, write_table
from serving.batch.manifest import MANIFEST, MANIFEST_VERSION, _atomic_write_text, side_paths

__all__ = [
    "CHANNEL_SEP", "COMPANY_CANDIDATES", "EXCERPT_CHARS", "FORMATS", "ID_CANDIDATES", "INBOUND_CANDIDATES",
    "MANIFEST", "MANIFEST_VERSION", "TEXT_CANDIDATES", "THROTTLE_ENV", "TIME_CANDIDATES", "ChunkResult", "Columns",
    "ExportOptions", "LabelCache", "LabelError", "LabelOptions", "Record", "Source", "_atomic_write_text",
    "check_row", "company_from_text", "detect_columns", "detect_format", "label_columns", "output_schema",
    "prepare_chunk", "run_label", "side_paths", "write_table",
]
