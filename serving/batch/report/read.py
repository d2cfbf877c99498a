"""Reading a labelled export for the report: one file written by ``frontline label`` or a directory of part
files written by the Spark engine (``--engine spark`` writes ``OUTPUT/part-*.{parquet,csv,json}`` plus Spark's
``_SUCCESS`` and ``.crc`` side files). Only the columns the report needs are read, in batches, so memory stays
flat whatever the size; timestamps become calendar days in the chosen time zone."""

from __future__ import annotations

import gzip
import json
import zoneinfo
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from serving.batch.labelling import LabelError, detect_format

#: the columns the aggregation reads; the example pass adds :data:`EXAMPLE_COLS`
REPORT_COLS = ("urgency", "issue_type", "prior_channels", "tried_other_channel", "needs_review",
               "contains_personal_data", "company", "created_at")
#: where the post text can be: carried as ``text`` (``frontline label --carry text``), or ``input_text`` when a
#: labeller renames a carried column that collides with one of its own
TEXT_COLS = ("text", "input_text")
EXAMPLE_COLS = ("id", *TEXT_COLS, "urgency", "urgency_score", "issue_type", "company", "created_at")
REQUIRED = frozenset({"urgency", "issue_type", "prior_channels", "tried_other_channel"})
_BOOL_COLS = ("tried_other_channel", "needs_review", "contains_personal_data")
_LIST_COLS = ("prior_channels",)
_TWCS_TIME = "%a %b %d %H:%M:%S %z %Y"


def resolve_tz(name: str | None) -> zoneinfo.ZoneInfo | None:
    """An IANA zone name (``Europe/Paris``) as a ZoneInfo; None/''/'UTC' keep UTC days. Unknown names are a
    :class:`LabelError` that says what to pass."""
    if not name or name.upper() == "UTC":
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise LabelError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris or "
                         f"America/New_York ({e})") from None


def parse_days(s: pd.Series, tz: zoneinfo.ZoneInfo | str | None = None) -> pd.Series:
    """Timestamps in the formats exports use (ISO 8601, TWCS 'Tue Oct 31 22:10:47 +0000 2017', '2015-02-17
    14:03:13 -0800') as calendar days (naive midnight) in ``tz`` (default UTC); unparseable or empty values
    become NaT. A timestamp without an offset is taken as UTC. The day is the local wall-clock date, so DST
    changes never make a day ambiguous."""
    s = s.astype("string").str.strip().replace("", pd.NA)
    out = pd.to_datetime(s, utc=True, format="ISO8601", errors="coerce")
    todo = out.isna() & s.notna()
    if todo.any():
        out[todo] = pd.to_datetime(s[todo], utc=True, format=_TWCS_TIME, errors="coerce")
        todo = out.isna() & s.notna()
        if todo.any():
            out[todo] = pd.to_datetime(s[todo], utc=True, format="mixed", errors="coerce")
    if tz is not None:
        out = out.dt.tz_convert(tz)
    return out.dt.tz_localize(None).dt.floor("D")


def part_files(path: Path) -> list[Path]:
    """The data files behind ``path``: itself, or a Spark output directory's part files in name order
    (skipping ``_SUCCESS``, ``.crc`` and other hidden or marker files, and empty parts)."""
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir()
                   if p.is_file() and not p.name.startswith((".", "_")) and p.suffix != ".crc" and p.stat().st_size)
    if not files and not (path / "_SUCCESS").exists():
        raise LabelError(f"{path} is a directory without part files: not a `frontline label` (Spark engine) output")
    return files


def source_format(path: Path, override: str | None = None) -> str:
    """The format of a labelled file or Spark directory: ``override``, else the name's extension, else (for a
    directory named without one) the extension of its part files."""
    try:
        return detect_format(path, override)
    except LabelError:
        if override or not path.is_dir():
            raise
        parts = part_files(path)
        if not parts:
            raise
        return detect_format(parts[0])


def batches(path: Path, fmt: str, columns: Sequence[str] = REPORT_COLS, rows: int = 50_000) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``rows`` rows holding those of ``columns`` the file has; booleans as bool and
    ``prior_channels`` as lists whatever the format (CSV writes them as 'true'/'false' and 'a|b')."""
    parse = _parse_options(spark=path.is_dir())
    for part in part_files(path):
        yield from _file_batches(part, fmt, columns, rows, parse)


def _parse_options(spark: bool) -> pacsv.ParseOptions:
    """CSV dialect: RFC 4180 (quotes doubled) for the local engine's file; Spark's CSV writer escapes a quote
    inside a quoted field as ``\\"`` by default, so its part files are read with that escape too (doubled quotes
    still work)."""
    return pacsv.ParseOptions(newlines_in_values=True, escape_char="\\" if spark else False)


def _file_batches(path: Path, fmt: str, columns: Sequence[str], rows: int,
                  parse: pacsv.ParseOptions) -> Iterator[pd.DataFrame]:
    if fmt == "parquet":
        pf = pq.ParquetFile(path)
        cols = [c for c in columns if c in pf.schema_arrow.names]
        for b in pf.iter_batches(batch_size=rows, columns=cols):
            yield b.to_pandas()
    elif fmt == "csv":
        yield from _csv_batches(path, columns, parse)
    else:
        opener = gzip.open if path.suffix.lower() == ".gz" else open
        buf = []
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LabelError(f"{path}: line {n} is not JSON ({e.msg}); not a `frontline label` output") from None
                buf.append({c: obj.get(c) for c in columns if c in obj})
                if len(buf) >= rows:
                    yield pd.DataFrame(buf)
                    buf = []
        if buf:
            yield pd.DataFrame(buf)


def _csv_batches(path: Path, columns: Sequence[str], parse: pacsv.ParseOptions) -> Iterator[pd.DataFrame]:
    if not path.stat().st_size:
        return
    first = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16), parse_options=parse)
    header = first.schema.names
    cols = [c for c in columns if c in header]
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=8 << 20), parse_options=parse,
                            convert_options=pacsv.ConvertOptions(
                                include_columns=cols, column_types={c: pa.string() for c in cols}))
    for b in reader:
        df = b.to_pandas()
        for c in _LIST_COLS:
            if c in df:
                df[c] = df[c].fillna("").map(lambda s: [x for x in s.split("|") if x])
        for c in _BOOL_COLS:
            if c in df:
                df[c] = df[c].fillna("").str.lower().isin(["true", "1"])
        if "urgency_score" in df:
            df["urgency_score"] = pd.to_numeric(df["urgency_score"], errors="coerce")
        yield df


def columns_of(path: Path, fmt: str) -> set[str]:
    """The column names of the first part (the header, the Parquet schema, or the first JSON line's keys)."""
    for part in part_files(path):
        if fmt == "parquet":
            return set(pq.ParquetFile(part).schema_arrow.names)
        if fmt == "csv":
            if not part.stat().st_size:
                return set()
            return set(pacsv.open_csv(part, read_options=pacsv.ReadOptions(block_size=1 << 16),
                                      parse_options=_parse_options(spark=path.is_dir())).schema.names)
        opener = gzip.open if part.suffix.lower() == ".gz" else open
        with opener(part, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError:
                        return set()
                    return set(obj) if isinstance(obj, dict) else set()
    return set()


def check_columns(df: pd.DataFrame, path: Path) -> None:
    missing = REQUIRED - set(df.columns)
    if missing:
        raise LabelError(f"{path} is not a `frontline label` output: missing columns {sorted(missing)}")
