"""Batch labelling of exports: CSV / JSONL / Parquet in, the flat export format out.

The analyst's path (``frontline label``). Design points:

* **Streaming.** Input is read in chunks (``pyarrow.csv.open_csv``, ``ParquetFile.iter_batches``, JSONL line by
  line); each chunk of ``chunk_rows`` input records is labelled and written as one numbered part file, so memory
  stays flat whatever the file size.
* **Nothing lost.** Every input record ends up in exactly one place: labelled in the output, rejected (no text,
  undecodable bytes, broken JSON, malformed CSV row) in ``OUTPUT.rejects.jsonl`` with its row number, id when
  known, the reason and a raw excerpt, or counted as skipped (TWCS rows that are not inbound customer posts).
  CSV columns are read as bytes and decoded per row, so one row with bad bytes never kills the file.
* **Resumable, atomic.** Parts live in ``OUTPUT.parts/`` with a ``manifest.json`` checkpoint (chunk index → counts)
  replaced atomically after each part. ``--resume`` re-reads the input, skips finished chunks and labels the rest;
  chunking is by input record count, so chunk *k* is the same rows on every run. The final file, the rejects file
  and the summary are assembled into temporary files in the output directory and moved in with ``os.replace``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from serving.language import annotate as annotate_languages
from training.predict import flat_column_kinds, flat_columns, flatten
from training.schema import SCHEMA, LabelSchema

FORMATS = ("csv", "jsonl", "parquet")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
               ".pq": "parquet"}
CHANNEL_SEP = "|"  # prior_channels in CSV output: channel names joined by this (names never contain it)

# Column detection: first match, case-insensitive, in this order.
ID_CANDIDATES = ("id", "tweet_id", "post_id", "message_id", "status_id")
TEXT_CANDIDATES = ("text", "full_text", "body", "message", "content", "post", "tweet")
TIME_CANDIDATES = ("created_at", "timestamp", "time", "date", "created", "posted_at")
COMPANY_CANDIDATES = ("company", "brand", "company_handle", "account")
INBOUND_CANDIDATES = ("inbound",)
_TRUE = {"true", "1", "yes", "y", "t"}
_HANDLE = re.compile(r"@(\w{1,50})")
EXCERPT_CHARS = 300
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
THROTTLE_ENV = "FRONTLINE_LABEL_THROTTLE_S"  # test hook: sleep this long after each chunk


class LabelError(ValueError):
    """A problem the analyst can fix (bad option, missing column, mismatched resume); printed, not traced."""


def detect_format(path: Path, override: str | None = None) -> str:
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


# --------------------------------------------------------------------------------------------- columns


@dataclass
class Columns:
    """Which input columns play which role (input names), and the output names of the extra columns."""

    text: str
    id: str | None = None
    time: str | None = None
    company: str | None = None
    company_from_text: bool = False
    inbound: str | None = None
    carry: list[str] = field(default_factory=list)
    carry_out: list[str] = field(default_factory=list)  # output names of carried columns (prefixed on collision)

    def needed(self) -> list[str]:
        names = [self.text, self.id, self.time, self.company, self.inbound, *self.carry]
        return list(dict.fromkeys(n for n in names if n))

    def output_extra(self) -> list[str]:
        out = ["id"]
        if self.time:
            out.append("created_at")
        if self.company or self.company_from_text:
            out.append("company")
        return out + self.carry_out


def _find(header: list[str], wanted: str | None, candidates: tuple[str, ...], role: str, required: bool) -> str | None:
    lower = {h.lower(): h for h in reversed(header)}
    if wanted:
        if wanted in header:
            return wanted
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise LabelError(f"{role} column {wanted!r} not in the input; columns are: {', '.join(header)}")
    for c in candidates:
        if c in lower:
            return lower[c]
    if required:
        raise LabelError(f"no {role} column found (looked for {', '.join(candidates)}); pass --{role}-col. "
                         f"Columns are: {', '.join(header)}")
    return None


def detect_columns(header: list[str], *, id_col: str | None = None, text_col: str | None = None,
                   time_col: str | None = None, company_col: str | None = None, inbound_col: str | None = None,
                   carry: list[str] | None = None, schema: LabelSchema = SCHEMA) -> Columns:
    """Map roles to input columns. ``inbound_col``: None = detect, '' or 'none' = no inbound filter."""
    text = _find(header, text_col, TEXT_CANDIDATES, "text", True)
    ident = _find(header, id_col, ID_CANDIDATES, "id", False)
    tcol = _find(header, time_col, TIME_CANDIDATES, "time", False)
    comp = _find(header, company_col, COMPANY_CANDIDATES, "company", False)
    if inbound_col is not None and inbound_col.lower() in ("", "none"):
        inbound = None
    else:
        inbound = _find(header, inbound_col, INBOUND_CANDIDATES, "inbound", False)
    cols = Columns(text=text, id=ident, time=tcol, company=comp, company_from_text=comp is None, inbound=inbound)
    taken = set(cols.output_extra()) | set(flat_columns(schema)) | {"contains_personal_data"}
    for c in carry or []:
        name = _find(header, c, (), "carried", True)
        if name in cols.carry:
            continue
        out = name
        while out in taken:  # e.g. a gold 'urgency' column carried next to the predicted one
            out = f"input_{out}"
        cols.carry.append(name)
        cols.carry_out.append(out)
        taken.add(out)
    return cols


def company_from_text(text: str) -> str | None:
    """The first @handle the post addresses that is not an anonymised customer handle (all digits)."""
    for m in _HANDLE.finditer(text):
        if not m.group(1).isdigit():
            return m.group(1)
    return None


def output_schema(cols: Columns, schema: LabelSchema = SCHEMA) -> pa.Schema:
    fields = [pa.field(n, pa.string()) for n in cols.output_extra()]
    arrow = {"label": pa.string(), "labels": pa.list_(pa.string()), "flag": pa.bool_(), "score": pa.float64()}
    for name, kind in flat_column_kinds(schema):
        fields.append(pa.field(name, arrow[kind]))
        if name == "needs_review":
            fields.append(pa.field("contains_personal_data", pa.bool_()))
    return pa.schema(fields)


# --------------------------------------------------------------------------------------------- readers


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


def _open_binary(path: Path) -> tuple[Any, _Counting]:
    raw = _Counting(path)
    buffered = io.BufferedReader(raw, 1 << 20)
    if path.suffix.lower() == ".gz":
        return gzip.GzipFile(fileobj=buffered), raw
    return buffered, raw


@dataclass
class Record:
    """One input record: its values (raw: bytes / str / python) or why it could not be read at all."""

    row: int
    values: dict | None = None
    error: str | None = None
    excerpt: str | None = None
    line: int | None = None  # exact physical line, for malformed CSV rows


class Source:
    """A streaming reader over one input file: ``header``, ``records()``, ``position``/``total`` for progress."""

    def __init__(self, path: Path, fmt: str, block_rows: int = 5000):
        self.path, self.fmt, self.block_rows = path, fmt, block_rows
        self.blank_lines = 0
        self._counter: _Counting | None = None
        self._parquet = pq.ParquetFile(path) if fmt == "parquet" else None
        self.header = self._read_header()
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
        f, _ = _open_binary(self.path)
        try:
            if self.fmt == "csv":
                first = f.readline().decode("utf-8-sig", errors="replace")
                if not first.strip():
                    raise LabelError(f"{self.path} is empty or has no header row")
                return next(csv.reader([first]))
            keys: dict[str, None] = {}
            for i, line in enumerate(f):  # union of the keys of the first objects
                if i >= 1000:
                    break
                try:
                    obj = json.loads(line)
                except (ValueError, UnicodeDecodeError):
                    continue
                if isinstance(obj, dict):
                    keys.update(dict.fromkeys(obj))
            return list(keys)
        finally:
            f.close()

    def records(self, needed: list[str]) -> Iterator[Record]:
        yield from {"csv": self._csv, "jsonl": self._jsonl, "parquet": self._parquet_records}[self.fmt](needed)

    def _csv(self, needed: list[str]) -> Iterator[Record]:
        invalid: list[Record] = []

        def on_invalid(row) -> str:
            line = row.number if row.number is not None and row.number >= 0 else None
            where = f" (line {line})" if line else ""
            invalid.append(Record(0, error=f"malformed CSV row{where}: expected {row.expected_columns} fields, "
                                           f"found {row.actual_columns}", excerpt=(row.text or "")[:EXCERPT_CHARS],
                                  line=line))
            return "skip"

        f, self._counter = _open_binary(self.path)
        reader = pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(column_names=self.header, skip_rows=1, use_threads=False,
                                           block_size=4 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            # every column as raw bytes: decoding happens per row, so bad bytes are isolated to their row
            convert_options=pacsv.ConvertOptions(column_types={h: pa.binary() for h in self.header},
                                                 include_columns=needed, strings_can_be_null=False),
        )
        row = 0
        try:
            for batch in reader:
                # A malformed row is reported while its block is parsed, without its position among the block's
                # good rows: it is counted after them, and its reject carries its exact physical `line`.
                pending = list(invalid)
                invalid.clear()
                cols = {n: batch.column(n).to_pylist() for n in needed}
                for i in range(batch.num_rows):
                    row += 1
                    yield Record(row, {n: cols[n][i] for n in needed})
                for rec in pending:
                    row += 1
                    rec.row = row
                    yield rec
            for rec in invalid:
                row += 1
                rec.row = row
                yield rec
        finally:
            f.close()

    def _jsonl(self, needed: list[str]) -> Iterator[Record]:
        f, self._counter = _open_binary(self.path)
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    self.blank_lines += 1
                    continue
                excerpt = line[:EXCERPT_CHARS].decode("utf-8", errors="backslashreplace").rstrip("\r\n")
                try:
                    s = line.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield Record(lineno, error=f"undecodable bytes (not UTF-8) at byte {e.start}", excerpt=excerpt)
                    continue
                try:
                    obj = json.loads(s)
                except json.JSONDecodeError as e:
                    yield Record(lineno, error=f"broken JSON: {e.msg} (column {e.colno})", excerpt=excerpt)
                    continue
                if not isinstance(obj, dict):
                    yield Record(lineno, error=f"JSON line is a {type(obj).__name__}, not an object", excerpt=excerpt)
                    continue
                yield Record(lineno, {n: obj.get(n) for n in needed})
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


def _as_str(v: Any) -> str | None:
    """A cell as text; raises UnicodeDecodeError for bytes that are not UTF-8."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8")
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


def _excerpt(values: dict) -> str:
    parts = []
    for v in values.values():
        if isinstance(v, (bytes, bytearray)):
            parts.append(bytes(v).decode("utf-8", errors="backslashreplace"))
        else:
            parts.append("" if v is None else str(v))
    return ",".join(parts)[:EXCERPT_CHARS]


def _is_inbound(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    try:
        s = _as_str(v)
    except UnicodeDecodeError:
        return False
    return (s or "").strip().lower() in _TRUE


# --------------------------------------------------------------------------------------------- chunks


@dataclass
class ChunkResult:
    rows: int = 0
    labelled: int = 0
    rejected: int = 0
    skipped_not_inbound: int = 0
    truncated: int = 0  # labelled posts longer than the model's window (training.predict.Window)
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _reason_key(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0]


def prepare_chunk(records: list[Record], cols: Columns) -> tuple[dict[str, list], list[dict], ChunkResult]:
    """Split a chunk into posts to label (column lists), rejects and counts."""
    res = ChunkResult(rows=len(records))
    good: dict[str, list] = {k: [] for k in ("id", "text", "created_at", "company", *cols.carry_out)}
    rejects: list[dict] = []
    reasons: Counter = Counter()

    def reject(rec: Record, reason: str, ident: str | None, excerpt: str | None) -> None:
        r = {"row": rec.row, "id": ident, "reason": reason, "excerpt": excerpt}
        if rec.line is not None:
            r["line"] = rec.line
        rejects.append(r)
        reasons[_reason_key(reason)] += 1

    for rec in records:
        if rec.error is not None:
            reject(rec, rec.error, None, rec.excerpt)
            continue
        vals = rec.values
        if cols.inbound and not _is_inbound(vals.get(cols.inbound)):
            res.skipped_not_inbound += 1
            continue
        ident = None
        if cols.id:
            try:
                ident = _as_str(vals.get(cols.id))
            except UnicodeDecodeError:
                ident = None
        try:
            decoded = {n: _as_str(vals.get(n)) for n in cols.needed()}
        except UnicodeDecodeError as e:
            bad = next(n for n in cols.needed() if isinstance(vals.get(n), (bytes, bytearray))
                       and _undecodable(vals.get(n)))
            reject(rec, f"undecodable bytes (not UTF-8) in column {bad!r} at byte {e.start}", ident, _excerpt(vals))
            continue
        text = decoded[cols.text]
        if text is None or not text.strip():
            reject(rec, "empty text", ident, _excerpt(vals))
            continue
        good["id"].append(ident if cols.id else str(rec.row))
        good["text"].append(text)
        good["created_at"].append(decoded[cols.time] if cols.time else None)
        company = decoded[cols.company] if cols.company else None
        if company is None or not company.strip():  # no company column, or an empty cell: whom the post addresses
            company = company_from_text(text)
        good["company"].append(company)
        for name, out in zip(cols.carry, cols.carry_out):
            good[out].append(decoded[name])
    res.labelled = len(good["id"])
    res.rejected = len(rejects)
    res.reasons = dict(reasons)
    return good, rejects, res


def _undecodable(b: bytes) -> bool:
    try:
        bytes(b).decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def label_columns(good: dict[str, list], cols: Columns, predictor, pii: Callable[[str], bool]) -> dict[str, list]:
    """Label the posts of one chunk; return output columns in ``output_schema`` order."""
    schema = predictor.schema
    names = output_schema(cols, schema).names
    out: dict[str, list] = {n: [] for n in names}
    for n in cols.output_extra():
        out[n] = good[n]
    results = predictor.classify(good["text"]) if good["text"] else []
    annotate_languages(good["text"], results)  # `language`, and review reason `language` (serving.language)
    for text, r in zip(good["text"], results):
        flat = flatten(r)
        for k, v in flat.items():
            out[k].append(v)
        out["contains_personal_data"].append(bool(pii(text)))
    return out


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


# --------------------------------------------------------------------------------------------- the run


@dataclass
class ExportOptions:
    """What to read, where to write, which columns mean what, which model: shared by both engines."""

    input: Path
    output: Path
    in_format: str | None = None
    out_format: str | None = None
    id_col: str | None = None
    text_col: str | None = None
    time_col: str | None = None
    company_col: str | None = None
    inbound_col: str | None = None
    carry: list[str] = field(default_factory=list)
    model: str = "models:/frontline@champion"


@dataclass
class LabelOptions(ExportOptions):
    """The local streaming engine's options."""

    batch_size: int = 64
    chunk_rows: int = 2000
    resume: bool = False
    restart: bool = False
    keep_parts: bool = False
    threads: int | None = None


def side_paths(output: Path) -> dict[str, Path]:
    return {"parts": output.with_name(output.name + ".parts"),
            "rejects": output.with_name(output.name + ".rejects.jsonl"),
            "summary": output.with_name(output.name + ".summary.json")}


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _part_name(index: int, fmt: str) -> str:
    return f"part-{index:06d}.{fmt}"


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    """Groups of ``size`` records; always at least one (possibly empty) group, so an empty input still gets a file."""
    buf: list[Record] = []
    any_yielded = False
    for rec in records:
        buf.append(rec)
        if len(buf) >= size:
            yield buf
            any_yielded = True
            buf = []
    if buf or not any_yielded:
        yield buf


def _default_pii() -> Callable[[str], bool]:
    try:
        from serving.pii import contains_personal_data
    except ImportError as e:  # pragma: no cover - the service package ships it
        raise LabelError(f"serving.pii is missing ({e}); cannot flag personal data") from e
    return contains_personal_data


def run_label(opts: LabelOptions, *, predictor=None, model_info: dict | None = None, progress: bool = True,
              console=None, pii: Callable[[str], bool] | None = None) -> dict:
    """Label ``opts.input`` into ``opts.output``; return the summary (also written as OUTPUT.summary.json)."""
    started = time.monotonic()
    if not opts.input.exists():
        raise LabelError(f"input {opts.input} does not exist")
    if opts.chunk_rows < 1 or opts.batch_size < 1:
        raise LabelError("--chunk-rows and --batch-size must be at least 1")
    in_fmt = detect_format(opts.input, opts.in_format)
    out_fmt = detect_format(opts.output, opts.out_format)
    if opts.output.resolve() == opts.input.resolve():
        raise LabelError("the output would overwrite the input; choose another --out")
    paths = side_paths(opts.output)
    parts_dir = paths["parts"]
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    source = Source(opts.input, in_fmt, block_rows=opts.chunk_rows)
    pii = pii or _default_pii()

    if predictor is None:
        from training.tracking import load

        loaded = load(opts.model, batch_size=opts.batch_size, num_threads=opts.threads)
        predictor = loaded.predictor
        model_info = {"uri": loaded.uri, "name": loaded.name, "version": loaded.version, "alias": loaded.alias,
                      "run_id": loaded.run_id}
    model_info = model_info or {"uri": opts.model}
    predictor.batch_size = opts.batch_size
    schema = predictor.schema
    cols = detect_columns(source.header, id_col=opts.id_col, text_col=opts.text_col, time_col=opts.time_col,
                          company_col=opts.company_col, inbound_col=opts.inbound_col, carry=opts.carry, schema=schema)
    out_schema = output_schema(cols, schema)
    settings = {"in_format": in_fmt, "out_format": out_fmt, "chunk_rows": opts.chunk_rows,
                "columns": asdict(cols), "schema": schema.to_dict()}

    manifest_path = parts_dir / MANIFEST
    resumed = False
    if parts_dir.exists() and manifest_path.exists() and opts.resume:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("input") != _fingerprint(opts.input):
            raise LabelError(f"{parts_dir} belongs to a run over a different or changed input "
                             f"({manifest.get('input', {}).get('path')}); pass --restart to start over")
        old = manifest.get("settings", {})
        settings["chunk_rows"] = old.get("chunk_rows", opts.chunk_rows)  # chunk k must be the same rows
        if {k: v for k, v in old.items() if k != "chunk_rows"} != {k: v for k, v in settings.items() if k != "chunk_rows"}:
            raise LabelError(f"{parts_dir} was made with other formats/columns/label schema than this run; "
                             f"rerun with the same options or pass --restart")
        if manifest.get("model", {}).get("version") != model_info.get("version") or \
                (model_info.get("version") is None and manifest.get("model", {}).get("uri") != model_info.get("uri")):
            raise LabelError(f"{parts_dir} was labelled with model {manifest.get('model')}, not {model_info}; "
                             f"pass --model with that version to resume, or --restart")
        resumed = True
    elif parts_dir.exists() and not opts.restart and not opts.resume and manifest_path.exists():
        raise LabelError(f"{parts_dir} holds an unfinished run: pass --resume to continue it or --restart to "
                         f"start over")
    else:
        if parts_dir.exists():
            shutil.rmtree(parts_dir)
        parts_dir.mkdir(parents=True)
        manifest = {"format_version": MANIFEST_VERSION, "input": _fingerprint(opts.input), "settings": settings,
                    "model": model_info, "chunks": {}}
        _atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    chunk_rows = settings["chunk_rows"]
    done: dict[str, dict] = manifest["chunks"]

    throttle = float(os.environ.get(THROTTLE_ENV, "0") or 0)
    labelled_now = 0
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = console or Console(stderr=True)
    bar = Progress(TextColumn("[bold]labelling[/] {task.fields[name]}"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[posts]:,} posts"), TextColumn("{task.fields[rate]:,.0f} posts/s"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                   disable=not progress, transient=False)
    t_label = time.monotonic()
    with bar:
        task = bar.add_task("label", total=source.total, name=opts.input.name, posts=0, rate=0.0)
        index = -1
        posts_so_far = 0
        for index, records in enumerate(_chunks(source.records(cols.needed()), chunk_rows)):
            key = str(index)
            part = parts_dir / _part_name(index, out_fmt)
            rej_part = parts_dir / f"part-{index:06d}.rejects.jsonl"
            if key in done and part.exists() and rej_part.exists() and done[key]["rows"] == len(records):
                posts_so_far += done[key]["labelled"]
                bar.update(task, completed=source.position, posts=posts_so_far)
                continue
            t0 = time.monotonic()
            good, rejects, res = prepare_chunk(records, cols)
            out = label_columns(good, cols, predictor, pii)
            res.truncated = sum(out["truncated"])
            table = pa.Table.from_pydict(out, schema=out_schema)
            tmp = part.with_name(f".{part.name}.tmp")
            write_table(table, tmp, out_fmt)
            os.replace(tmp, part)
            tmp = rej_part.with_name(f".{rej_part.name}.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects)
            os.replace(tmp, rej_part)
            res.seconds = round(time.monotonic() - t0, 3)
            done[key] = asdict(res)
            _atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
            labelled_now += res.labelled
            posts_so_far += res.labelled
            elapsed = max(time.monotonic() - t_label, 1e-9)
            bar.update(task, completed=source.position, posts=posts_so_far, rate=labelled_now / elapsed)
            if throttle:
                time.sleep(throttle)
        bar.update(task, completed=source.total)
    n_chunks = index + 1
    missing = [i for i in range(n_chunks) if str(i) not in done]
    if missing:  # cannot happen unless parts were deleted mid-run; never assemble an incomplete file
        raise LabelError(f"chunks {missing[:5]} have no finished part; rerun with --resume")
    stale = [k for k in done if int(k) >= n_chunks]
    if stale:
        raise LabelError(f"{parts_dir} has parts beyond the end of the input; pass --restart")

    _assemble(parts_dir, n_chunks, out_fmt, out_schema, opts.output, paths["rejects"])
    totals = Counter()
    reasons: Counter = Counter()
    for c in done.values():
        for k in ("rows", "labelled", "rejected", "skipped_not_inbound", "truncated"):
            totals[k] += c.get(k, 0)
        reasons.update(c.get("reasons", {}))
    seconds = time.monotonic() - started
    summary = {
        "input": str(opts.input), "output": str(opts.output), "rejects_file": str(paths["rejects"]),
        "in_format": in_fmt, "out_format": out_fmt,
        "rows_read": totals["rows"], "labelled": totals["labelled"], "rejected": totals["rejected"],
        "skipped_not_inbound": totals["skipped_not_inbound"], "blank_lines": source.blank_lines,
        "truncated": totals["truncated"], "reject_reasons": dict(reasons),
        "seconds": round(seconds, 3), "labelled_this_run": labelled_now,
        "posts_per_second": round(labelled_now / max(time.monotonic() - t_label, 1e-9), 1),
        "chunks": n_chunks, "chunk_rows": chunk_rows, "resumed": resumed,
        "columns": {"id": cols.id, "text": cols.text, "time": cols.time, "company": cols.company or
                    ("first @handle in the text" if cols.company_from_text else None), "inbound": cols.inbound,
                    "carry": dict(zip(cols.carry, cols.carry_out))},
        "model": model_info,
        "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    assert summary["rows_read"] == summary["labelled"] + summary["rejected"] + summary["skipped_not_inbound"]
    _atomic_write_text(paths["summary"], json.dumps(summary, indent=2))
    if not opts.keep_parts:
        shutil.rmtree(parts_dir)
    return summary


def _assemble(parts_dir: Path, n_chunks: int, fmt: str, schema: pa.Schema, output: Path, rejects: Path) -> None:
    """Concatenate the parts, one at a time, into temp files next to the outputs; then move them in."""
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    parts = [parts_dir / _part_name(i, fmt) for i in range(n_chunks)]
    try:
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, schema) as w:
                for p in parts:
                    t = pq.read_table(p, schema=schema)
                    if t.num_rows:
                        w.write_table(t)
        elif fmt == "csv":
            with open(tmp, "wb") as out:
                for i, p in enumerate(parts):
                    with open(p, "rb") as f:
                        header = f.readline()
                        if i == 0:
                            out.write(header)
                        shutil.copyfileobj(f, out, 1 << 20)
        else:
            with open(tmp, "wb") as out:
                for p in parts:
                    with open(p, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 20)
        rtmp = rejects.with_name(f".{rejects.name}.tmp-{os.getpid()}")
        with open(rtmp, "wb") as out:
            for i in range(n_chunks):
                with open(parts_dir / f"part-{i:06d}.rejects.jsonl", "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, output)
    os.replace(rtmp, rejects)
