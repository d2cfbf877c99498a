"""The local engine's run: read the export in chunks, label each, write it as a part, assemble at the end.

Chunking is by input record count, so chunk *k* is the same rows on every run; that is what makes
``--resume`` exact (``serving.batch.manifest``). Each chunk is split by the column rules
(``serving.batch.columns.check_row``) into posts to label, rejects and skipped rows, and every input record ends
up in exactly one of the three: ``rows_read = labelled + rejected + skipped_not_inbound`` always holds.

Exact-duplicate texts (retweets, copy-pasted complaints) are labelled once and the result fanned out: a bounded
LRU keyed by a hash of the text spans the chunks of a run; ``duplicates_reused`` counts the posts it answered.

Logging (logger ``frontline.batch``) says what happened to which *row numbers*; it never carries a post's text,
an excerpt or an id at any level (tests/reliability/test_batch_logs.py holds it to that). Excerpts of rejected
rows go to the rejects file only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from serving.batch.columns import Columns, check_row, detect_columns, output_schema, reason_key
from serving.batch.errors import LabelError
from serving.batch.formats import Record, Source, detect_format, write_table
from serving.batch.manifest import Manifest, _atomic_write_text, remove_stale_temp_files, side_paths
from serving.language import annotate as annotate_languages
from training.predict import flatten

log = logging.getLogger("frontline.batch")
THROTTLE_ENV = "FRONTLINE_LABEL_THROTTLE_S"  # test hook: sleep this long after each chunk
DEDUP_ENTRIES = 20_000  # distinct texts remembered for duplicate reuse (~1 KB each): retweets cluster in time
MULTILINE_ROWS_KEPT = 20  # row numbers of multi-line fields listed per chunk in the manifest


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

    def columns(self, header: list[str], schema=None) -> Columns:
        kw = {"schema": schema} if schema is not None else {}
        return detect_columns(header, id_col=self.id_col, text_col=self.text_col, time_col=self.time_col,
                              company_col=self.company_col, inbound_col=self.inbound_col, carry=self.carry, **kw)


@dataclass
class LabelOptions(ExportOptions):
    """The local streaming engine's options."""

    batch_size: int = 64
    chunk_rows: int = 2000
    resume: bool = False
    restart: bool = False
    keep_parts: bool = False
    threads: int | None = None
    dedup: bool = True


@dataclass
class ChunkResult:
    rows: int = 0
    labelled: int = 0
    rejected: int = 0
    skipped_not_inbound: int = 0
    truncated: int = 0  # posts longer than the model's window (its `truncated` column, when the model has one)
    reasons: dict[str, int] = field(default_factory=dict)
    multiline_fields: int = 0
    multiline_rows: list[int] = field(default_factory=list)  # the first few, for the warning
    duplicates_reused: int = 0
    seconds: float = 0.0


def prepare_chunk(records: list[Record], cols: Columns) -> tuple[dict[str, list], list[dict], ChunkResult]:
    """Split a chunk into posts to label (column lists), rejects and counts."""
    res = ChunkResult(rows=len(records))
    good: dict[str, list] = {k: [] for k in ("id", "text", "created_at", "company", *cols.carry_out)}
    rejects: list[dict] = []
    reasons: Counter = Counter()
    for rec in records:
        if rec.multiline:
            res.multiline_fields += rec.multiline
            if len(res.multiline_rows) < MULTILINE_ROWS_KEPT:
                res.multiline_rows.append(rec.row)
        o = check_row(rec, cols)
        if o.status == "skip":
            res.skipped_not_inbound += 1
        elif o.status == "reject":
            r = {"row": rec.row, "id": o.id, "reason": o.reason, "excerpt": o.excerpt}
            if rec.line is not None:
                r["line"] = rec.line
            rejects.append(r)
            reasons[reason_key(o.reason)] += 1
        else:
            for k in good:
                good[k].append(o.fields.get(k))
    res.labelled = len(good["id"])
    res.rejected = len(rejects)
    res.reasons = dict(reasons)
    return good, rejects, res


class LabelCache:
    """Labels of recently seen texts (bounded LRU keyed by a 16-byte hash), so a duplicate is labelled once.

    A label is kept as a tuple of the flat values (the column names once, not per entry) to keep memory flat."""

    def __init__(self, entries: int = DEDUP_ENTRIES):
        self.entries = entries
        self._d: OrderedDict[bytes, tuple] = OrderedDict()
        self._names: tuple[str, ...] | None = None

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, key: bytes) -> tuple[dict, bool] | None:
        hit = self._d.get(key)
        if hit is None:
            return None
        self._d.move_to_end(key)
        *values, has_pii = hit
        return dict(zip(self._names, values)), has_pii

    def put(self, key: bytes, value: tuple[dict, bool]) -> None:
        flat, has_pii = value
        if self._names is None:
            self._names = tuple(flat)
        self._d[key] = (*(flat[n] for n in self._names), has_pii)
        if len(self._d) > self.entries:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


def label_columns(good: dict[str, list], cols: Columns, predictor, pii: Callable[[str], bool],
                  cache: LabelCache | None = None) -> tuple[dict[str, list], int]:
    """Label the posts of one chunk; return output columns in ``output_schema`` order and how many posts were
    answered from an identical text (earlier in the chunk, or in the cache) instead of the model."""
    names = output_schema(cols, predictor.schema).names
    out: dict[str, list] = {n: [] for n in names}
    for n in cols.output_extra():
        out[n] = good[n]
    texts = good["text"]
    keys = [LabelCache.key(t) for t in texts] if cache is not None else list(range(len(texts)))
    known: dict = {}
    todo: dict = {}  # key -> text, first occurrence of each text the model must read
    for k, t in zip(keys, texts):
        if k in known or k in todo:
            continue
        hit = cache.get(k) if cache is not None else None
        if hit is not None:
            known[k] = hit
        else:
            todo[k] = t
    if todo:
        fresh = list(todo.values())
        results = annotate_languages(fresh, predictor.classify(fresh))  # `language` + its review reason, as the service
        for (k, t), r in zip(todo.items(), results):
            known[k] = (flatten(r), bool(pii(t)))
            if cache is not None:
                cache.put(k, known[k])
    for k in keys:
        flat, has_pii = known[k]
        for name, v in flat.items():
            out[name].append(v)
        out["contains_personal_data"].append(has_pii)
    return out, len(texts) - len(todo)


def _warn_multiline(index: int, res: ChunkResult, warned: bool) -> bool:
    level = logging.DEBUG if warned else logging.WARNING
    log.log(level, "chunk %d: %d quoted field(s) span lines (rows %s): standard CSV, but an unterminated quote "
            "swallows the rows after it into one field; check those rows%s", index, res.multiline_fields,
            ", ".join(map(str, res.multiline_rows)), "" if warned else " (further chunks at DEBUG; totals in the "
            "summary)")
    return True


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


def _load_model(opts: LabelOptions):
    from training.tracking import load

    loaded = load(opts.model, batch_size=opts.batch_size, num_threads=opts.threads)
    return loaded.predictor, {"uri": loaded.uri, "name": loaded.name, "version": loaded.version,
                              "alias": loaded.alias, "run_id": loaded.run_id}


def _progress_bar(console, enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]labelling[/] {task.fields[name]}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[posts]:,} posts"), TextColumn("{task.fields[rate]:,.0f} posts/s"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console or Console(stderr=True), disable=not enabled, transient=False)


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
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(opts.output)
    source = Source(opts.input, in_fmt, block_rows=opts.chunk_rows)
    pii = pii or _default_pii()
    if predictor is None:
        predictor, model_info = _load_model(opts)
    model_info = model_info or {"uri": opts.model}
    predictor.batch_size = opts.batch_size
    schema = predictor.schema
    if source.empty:  # 0 bytes or blank lines only: a valid empty output, as if it had a 'text' column
        log.warning("input %s is empty: writing an empty output", opts.input.name)
        cols = detect_columns(["text"], schema=schema)
    elif not source.header:
        raise LabelError(f"{opts.input.name} has no JSON object in its first lines, so no columns to read: "
                         f"is it JSONL?")
    else:
        cols = opts.columns(source.header, schema)
    out_schema = output_schema(cols, schema)
    settings = {"in_format": in_fmt, "out_format": out_fmt, "chunk_rows": opts.chunk_rows,
                "columns": asdict(cols), "schema": schema.to_dict()}
    manifest = Manifest.open(paths["parts"], input=opts.input, settings=settings, model_info=model_info,
                             resume=opts.resume, restart=opts.restart)
    chunk_rows = manifest.chunk_rows
    log.info("labelling %s (%s -> %s) in chunks of %d rows%s; columns: text=%s id=%s time=%s company=%s "
             "inbound=%s", opts.input.name, in_fmt, out_fmt, chunk_rows,
             f", resuming after {len(manifest.chunks)} finished chunk(s)" if manifest.resumed else "",
             cols.text, cols.id, cols.time, cols.company or ("@handle" if cols.company_from_text else None),
             cols.inbound)

    throttle = float(os.environ.get(THROTTLE_ENV, "0") or 0)
    cache = LabelCache() if opts.dedup else None
    labelled_now = 0
    multiline_warned = False
    bar = _progress_bar(console, progress)
    t_label = time.monotonic()
    with bar:
        task = bar.add_task("label", total=source.total, name=opts.input.name, posts=0, rate=0.0)
        index = -1
        posts_so_far = 0
        for index, records in enumerate(_chunks(source.records(cols.needed()), chunk_rows)):
            if manifest.is_done(index, out_fmt, len(records)):
                posts_so_far += manifest.chunks[str(index)]["labelled"]
                bar.update(task, completed=source.position, posts=posts_so_far)
                continue
            t0 = time.monotonic()
            good, rejects, res = prepare_chunk(records, cols)
            out, res.duplicates_reused = label_columns(good, cols, predictor, pii, cache)
            res.truncated = sum(bool(v) for v in out.get("truncated", ()))
            table = pa.Table.from_pydict(out, schema=out_schema)
            res.seconds = round(time.monotonic() - t0, 3)
            manifest.write_chunk(index, out_fmt, lambda p: write_table(table, p, out_fmt), rejects, asdict(res))
            log.debug("chunk %d: %d rows, %d labelled, %d rejected, %d skipped, %d duplicates reused, %.2f s",
                      index, res.rows, res.labelled, res.rejected, res.skipped_not_inbound, res.duplicates_reused,
                      res.seconds)
            if res.multiline_fields:  # warned once per run (then at DEBUG): a real export can have many
                multiline_warned = _warn_multiline(index, res, multiline_warned)
            labelled_now += res.labelled
            posts_so_far += res.labelled
            elapsed = max(time.monotonic() - t_label, 1e-9)
            bar.update(task, completed=source.position, posts=posts_so_far, rate=labelled_now / elapsed)
            if throttle:
                time.sleep(throttle)
        bar.update(task, completed=source.total)
    n_chunks = index + 1
    manifest.check_complete(n_chunks)
    manifest.assemble(n_chunks, out_fmt, out_schema, opts.output, paths["rejects"])
    summary = _summary(opts, source, manifest, cols, model_info, in_fmt, out_fmt, n_chunks,
                       labelled_now=labelled_now, seconds=time.monotonic() - started,
                       label_seconds=time.monotonic() - t_label)
    _atomic_write_text(paths["summary"], json.dumps(summary, indent=2))
    if not opts.keep_parts:
        shutil.rmtree(paths["parts"])
    log.info("labelled %s: %d rows read, %d labelled, %d rejected %s, %d skipped (not inbound), %d duplicates "
             "reused, %d quoted field(s) spanning lines", opts.input.name, summary["rows_read"], summary["labelled"],
             summary["rejected"], summary["reject_reasons"], summary["skipped_not_inbound"],
             summary["duplicates_reused"], summary["multiline_fields"])
    if summary["multiline_fields"]:
        log.warning("%s: %d quoted field(s) span lines in all, first at rows %s", opts.input.name,
                    summary["multiline_fields"], ", ".join(map(str, summary["multiline_rows"])))
    if source.damage:
        log.warning("%s ends early or is corrupt (%s): rows after row %d could not be read", opts.input.name,
                    source.damage, summary["rows_read"] - 1)
    return summary


def _summary(opts, source: Source, manifest: Manifest, cols: Columns, model_info: dict, in_fmt: str, out_fmt: str,
             n_chunks: int, *, labelled_now: int, seconds: float, label_seconds: float) -> dict:
    totals: Counter = Counter()
    reasons: Counter = Counter()
    multiline_rows: list[int] = []
    for _, c in sorted(manifest.chunks.items(), key=lambda kv: int(kv[0])):
        for k in ("rows", "labelled", "rejected", "skipped_not_inbound", "truncated", "multiline_fields",
                  "duplicates_reused"):
            totals[k] += c.get(k, 0)
        reasons.update(c.get("reasons", {}))
        multiline_rows += c.get("multiline_rows", [])
    paths = side_paths(opts.output)
    summary = {
        "input": str(opts.input), "output": str(opts.output), "rejects_file": str(paths["rejects"]),
        "in_format": in_fmt, "out_format": out_fmt,
        "rows_read": totals["rows"], "labelled": totals["labelled"], "rejected": totals["rejected"],
        "skipped_not_inbound": totals["skipped_not_inbound"], "blank_lines": source.blank_lines,
        "truncated": totals["truncated"], "reject_reasons": dict(reasons),
        "multiline_fields": totals["multiline_fields"], "multiline_rows": multiline_rows[:MULTILINE_ROWS_KEPT],
        "duplicates_reused": totals["duplicates_reused"], "input_damaged": source.damage,
        "seconds": round(seconds, 3), "labelled_this_run": labelled_now,
        "posts_per_second": round(labelled_now / max(label_seconds, 1e-9), 1),
        "chunks": n_chunks, "chunk_rows": manifest.chunk_rows, "resumed": manifest.resumed,
        "columns": cols.describe(), "model": model_info,
        "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if summary["rows_read"] != summary["labelled"] + summary["rejected"] + summary["skipped_not_inbound"]:
        raise LabelError(f"internal accounting error: {totals}")  # never silently lose a row
    return summary
