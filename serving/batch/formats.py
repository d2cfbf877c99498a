"""Export formats: reading CSV / JSONL / Parquet as a stream of records, and writing the flat export format.

Why it reads the way it does:

* **Streaming** (``pyarrow.csv.open_csv``, ``ParquetFile.iter_batches``, JSONL line by line), so memory stays
  flat whatever the file size.
* **Bad bytes stay in their row.** CSV columns are read as raw bytes and decoded per row by the column rules
  (``serving.batch.columns``); a JSONL line is decoded on its own. One bad row never kills the file.
* **A damaged file loses only what is damaged.** A truncated or corrupt ``.gz`` ends the stream where the damage
  starts: everything before it is read normally, and one final record says the input ended early.
* **Facts the column rules need travel with the record**: a CSV row whose quoted field spans lines is marked
  (``multiline``), because an unterminated quote makes standard CSV swallow the rows after it into one field.

:func:`parse_json_line` and :func:`multiline_fields` are also what the Spark engine runs on its executors, so a
JSONL line or a multi-line CSV field means the same thing in both engines.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from serving.batch.errors import LabelError
from training.predict import flat_column_kinds

FORMATS = ("csv", "jsonl", "parquet")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
               ".pq": "parquet"}
CHANNEL_SEP = "|"  # prior_channels in CSV output: channel names joined by this (names never contain it)
EXCERPT_CHARS = 300
BOM = b"\xef\xbb\xbf"
TRUNCATED = "truncated input"  # the reason key of the record that ends a damaged compressed stream


def detect_format(path: Path, override: str | None = None) -> str:
    """``csv`` / ``jsonl`` / ``parquet`` from ``--*-format`` or the extension (``.gz`` looked through)."""
    if override:
        fmt = override.lower().lstrip(".")
        fmt = {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise LabelError(f"unknown format {override!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _EXTENSIONS:
        return _EXTENSIONS[suffixes[-1]]
    raise LabelError(f"cannot tell the format of {path.name!r} from its extension; pass --in-format/--out-format "
                     f"({', '.join(FORMATS)})")


@dataclass
class Record:
    """One input record: its values (raw: bytes / str / python) or why it could not be read at all."""

    row: int
    values: dict | None = None
    error: str | None = None
    excerpt: str | None = None
    line: int | None = None  # exact physical line, for malformed CSV rows
    multiline: int = 0  # CSV: how many of the row's fields span lines (quoted newlines)


# --------------------------------------------------------------------------------------------- byte streams


class _Counting(io.RawIOBase):
    """A raw binary reader that counts bytes read (compressed bytes for .gz): progress and ETA."""

    def __init__(self, path: Path):
        self._f = open(path, "rb")
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        self.pos += n or 0
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


class _TolerantGzip(io.RawIOBase):
    """Decompressed bytes of a .gz that end, instead of raising, where the stream is truncated or corrupt.

    ``damage`` says what went wrong (None while the stream is whole); the reader turns it into one final reject,
    so the rows before the damage are still labelled.
    """

    def __init__(self, fileobj):
        self._gz = gzip.GzipFile(fileobj=fileobj)
        self.damage: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.damage:
            return 0
        try:  # read1: at most one raw read, so data decompressed before the damage is returned, not dropped
            data = self._gz.read1(min(len(b), 1 << 16))
            b[: len(data)] = data
            return len(data)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
            self.damage = f"{type(e).__name__}: {e}"
            return 0

    def close(self) -> None:
        self._gz.close()
        super().close()


def _open_binary(path: Path) -> tuple[Any, _Counting, _TolerantGzip | None]:
    raw = _Counting(path)
    buffered = io.BufferedReader(raw, 1 << 20)
    if path.suffix.lower() == ".gz":
        gz = _TolerantGzip(buffered)
        return io.BufferedReader(gz, 1 << 20), raw, gz
    return buffered, raw, None


# --------------------------------------------------------------------------------------------- shared parsers


def parse_json_line(line: bytes, row: int | None, needed: list[str]) -> Record:
    """One JSONL line as a record of the ``needed`` keys, or an error record saying why it is not one.

    Values keep their JSON types: the column rules, not this parser, decide that a number is not a text.
    """
    line = line.rstrip(b"\r\n")  # as Spark's line reader hands lines over: the same JSON error messages
    if row in (1, None) and line.startswith(BOM):  # a BOM is an encoding mark; None: Spark cannot number lines
        line = line[len(BOM):]
    excerpt = line[:EXCERPT_CHARS].decode("utf-8", errors="backslashreplace")
    try:
        s = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return Record(row or 0, error=f"undecodable bytes (not UTF-8) at byte {e.start}", excerpt=excerpt)
    try:
        obj = json.loads(s)
    except json.JSONDecodeError as e:
        return Record(row or 0, error=f"broken JSON: {e.msg} (column {e.colno})", excerpt=excerpt)
    if not isinstance(obj, dict):
        return Record(row or 0, error=f"not a JSON object: the line is a {type(obj).__name__}", excerpt=excerpt)
    return Record(row or 0, {n: obj.get(n) for n in needed})


def multiline_fields(batch: pa.RecordBatch) -> list[int]:
    """Per row, how many string/binary fields hold a line break (a quoted field that spans lines in CSV)."""
    counts = None
    for col in batch.columns:
        if not (pa.types.is_binary(col.type) or pa.types.is_string(col.type)
                or pa.types.is_large_binary(col.type) or pa.types.is_large_string(col.type)):
            continue
        hit = pc.fill_null(pc.match_substring_regex(col, r"[\r\n]"), False).cast(pa.int32())
        counts = hit if counts is None else pc.add(counts, hit)
    return counts.to_pylist() if counts is not None else [0] * batch.num_rows


# --------------------------------------------------------------------------------------------- the reader


class Source:
    """A streaming reader over one input file: ``header``, ``records()``, ``position``/``total`` for progress.

    ``empty`` is True for a file with no header and no data (0 bytes, or only blank lines).
    """

    def __init__(self, path: Path, fmt: str, block_rows: int = 5000):
        self.path, self.fmt, self.block_rows = path, fmt, block_rows
        self.blank_lines = 0
        self.damage: str | None = None
        self._counter: _Counting | None = None
        self._parquet = None
        if fmt == "parquet":
            try:
                self._parquet = pq.ParquetFile(path)
            except (pa.ArrowException, OSError) as e:
                raise LabelError(f"{path} is not a readable Parquet file ({e})") from e
        self._has_data = True
        self.header = self._read_header()
        self.empty = not self._has_data  # 0 bytes or blank lines only (a JSONL of broken lines is not empty)
        self.unit = "rows" if fmt == "parquet" else "bytes"
        self.total = self._parquet.metadata.num_rows if self._parquet else path.stat().st_size
        self._rows_seen = 0

    @property
    def position(self) -> int:
        if self._parquet:
            return self._rows_seen
        return self._counter.pos if self._counter else 0

    def _read_header(self) -> list[str]:
        if self._parquet:
            return list(self._parquet.schema_arrow.names)
        f, _, gz = _open_binary(self.path)
        try:
            if self.fmt == "csv":
                first = f.readline().decode("utf-8-sig", errors="replace")
                header = next(csv.reader([first])) if first.strip() else []
                self._has_data = bool(header)
                self._unreadable(gz, header)
                return header
            keys: dict[str, None] = {}
            self._has_data = False
            for i, line in enumerate(f, 1):  # union of the keys of the first objects
                if i > 1000:
                    break
                self._has_data = self._has_data or bool(line.strip())
                try:
                    obj = json.loads(line.removeprefix(BOM) if i == 1 else line)
                except (ValueError, UnicodeDecodeError):
                    continue
                if isinstance(obj, dict):
                    keys.update(dict.fromkeys(obj))
            self._unreadable(gz, list(keys))
            return list(keys)
        finally:
            f.close()

    def _unreadable(self, gz: _TolerantGzip | None, header: list[str]) -> None:
        if gz is not None and gz.damage and not header:
            raise LabelError(f"{self.path} ends early or is corrupt before its first row ({gz.damage}): "
                             f"nothing in it can be read")

    def records(self, needed: list[str]) -> Iterator[Record]:
        if self.empty:
            return
        yield from {"csv": self._csv, "jsonl": self._jsonl, "parquet": self._parquet_records}[self.fmt](needed)

    def _damaged(self, gz: _TolerantGzip | None, row: int) -> Iterator[Record]:
        if gz is not None and gz.damage:
            self.damage = gz.damage
            yield Record(row + 1, error=f"{TRUNCATED}: the compressed file ends early or is corrupt ({gz.damage}); "
                                        f"nothing after row {row} could be read, and that row may be cut short")

    def _csv(self, needed: list[str]) -> Iterator[Record]:
        invalid: list[Record] = []

        def on_invalid(row) -> str:
            line = row.number if row.number is not None and row.number >= 0 else None
            where = f" (line {line})" if line else ""
            invalid.append(Record(0, error=f"malformed CSV row{where}: expected {row.expected_columns} fields, "
                                           f"found {row.actual_columns}", excerpt=(row.text or "")[:EXCERPT_CHARS],
                                  line=line))
            return "skip"

        f, self._counter, gz = _open_binary(self.path)
        row = 0
        try:
            reader = pacsv.open_csv(
                f,
                read_options=pacsv.ReadOptions(column_names=self.header, skip_rows=1, use_threads=False,
                                               block_size=4 << 20),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
                # every column as raw bytes: decoding happens per row, so bad bytes are isolated to their row
                convert_options=pacsv.ConvertOptions(column_types={h: pa.binary() for h in self.header},
                                                     strings_can_be_null=False),
            )
            for batch in reader:
                # A malformed row is reported while its block is parsed, without its position among the block's
                # good rows: it is counted after them, and its reject carries its exact physical `line`.
                pending = list(invalid)
                invalid.clear()
                cols = {n: batch.column(n).to_pylist() for n in needed}
                spans = multiline_fields(batch)
                for i in range(batch.num_rows):
                    row += 1
                    yield Record(row, {n: cols[n][i] for n in needed}, multiline=spans[i])
                for rec in pending:
                    row += 1
                    rec.row = row
                    yield rec
            for rec in invalid:
                row += 1
                rec.row = row
                yield rec
            yield from self._damaged(gz, row)
        except pa.ArrowInvalid as e:  # a block pyarrow cannot parse at all (e.g. one row larger than 4 MB)
            if row == 0 and "skip initial" in str(e):  # a header with no line break after it: no rows
                return
            self.damage = f"unreadable CSV after row {row}: {e}"
            yield Record(row + 1, error=f"{TRUNCATED}: unreadable CSV after row {row} ({e}); nothing after it "
                                        f"could be read")
        finally:
            f.close()

    def _jsonl(self, needed: list[str]) -> Iterator[Record]:
        f, self._counter, gz = _open_binary(self.path)
        lineno = 0
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    self.blank_lines += 1
                    continue
                yield parse_json_line(line, lineno, needed)
            yield from self._damaged(gz, lineno)
        finally:
            f.close()

    def _parquet_records(self, needed: list[str]) -> Iterator[Record]:
        row = 0
        for batch in self._parquet.iter_batches(batch_size=self.block_rows, columns=needed, use_threads=False):
            cols = {n: batch.column(n).to_pylist() for n in needed}
            for i in range(batch.num_rows):
                row += 1
                yield Record(row, {n: cols[n][i] for n in needed})
            self._rows_seen = row


# --------------------------------------------------------------------------------------------- writing


def write_table(table: pa.Table, path: Path, fmt: str) -> None:
    """Write one table in the export format (CSV: channels joined by '|', booleans true/false)."""
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        for name, kind in flat_column_kinds():
            idx = table.schema.get_field_index(name)
            if kind == "labels" and idx >= 0:  # lists (prior_channels, review_reasons) as names joined by '|'
                joined = [CHANNEL_SEP.join(c or []) for c in table.column(idx).to_pylist()]
                table = table.set_column(idx, name, pa.array(joined, pa.string()))
        pacsv.write_csv(table, path)
    else:
        with open(path, "w", encoding="utf-8") as f:
            for row in table.to_pylist():
                f.write(json.dumps(row, ensure_ascii=False))
                f.write("\n")
