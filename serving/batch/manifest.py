"""The local run's checkpoint: part files, ``manifest.json``, and the atomic assembly of the final files.

Why it is safe to SIGKILL a run at any instant:

* A chunk's part (``part-NNNNNN.<fmt>``) and its rejects part are written to temporary names and moved in with
  ``os.replace``; only then is the chunk recorded in ``manifest.json``, itself replaced atomically. A chunk
  the manifest does not list (or whose part is missing) is labelled again on resume and overwrites whatever a
  killed attempt left, so a row can never be counted twice.
* The manifest pins the input (path, size, mtime), the formats, columns, chunking and the model: resuming
  with a changed input or other options is refused instead of mixing two runs' parts.
* The final output, rejects file and summary are assembled into temporary files next to them and moved in with
  ``os.replace``: a reader never sees a half-written output. Temporary files a killed run left are removed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from serving.batch.errors import LabelError

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def side_paths(output: Path) -> dict[str, Path]:
    """Where a run keeps its parts, rejects and summary, next to OUTPUT."""
    return {"parts": output.with_name(output.name + ".parts"),
            "rejects": output.with_name(output.name + ".rejects.jsonl"),
            "summary": output.with_name(output.name + ".summary.json")}


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


atomic_write_text = _atomic_write_text


def fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def part_name(index: int, fmt: str) -> str:
    return f"part-{index:06d}.{fmt}"


def rejects_part_name(index: int) -> str:
    return f"part-{index:06d}.rejects.jsonl"


def remove_stale_temp_files(output: Path) -> list[str]:
    """Temporary files a killed assembly left next to the output (``.NAME.tmp-PID``); returns their names."""
    names = [output.name, side_paths(output)["rejects"].name, side_paths(output)["summary"].name]
    gone = []
    for name in names:
        for p in output.parent.glob(f".{name}.tmp-*"):
            p.unlink(missing_ok=True)
            gone.append(p.name)
    return gone


class Manifest:
    """The checkpoint of one run: which chunks are finished, with their counts, and what the run was."""

    def __init__(self, parts_dir: Path, data: dict, resumed: bool):
        self.parts_dir, self.data, self.resumed = parts_dir, data, resumed

    @property
    def path(self) -> Path:
        return self.parts_dir / MANIFEST

    @property
    def chunks(self) -> dict[str, dict]:
        return self.data["chunks"]

    @property
    def chunk_rows(self) -> int:
        return self.data["settings"]["chunk_rows"]

    @classmethod
    def open(cls, parts_dir: Path, *, input: Path, settings: dict, model_info: dict, resume: bool,
             restart: bool) -> Manifest:
        """Continue the run in ``parts_dir`` (``resume``), or start a new one; refuse to silently discard one."""
        path = parts_dir / MANIFEST
        if parts_dir.exists() and path.exists() and resume:
            try:
                data = json.loads(path.read_text())
            except ValueError as e:
                raise LabelError(f"{path} is unreadable ({e}); pass --restart to start over") from e
            if data.get("input") != fingerprint(input):
                raise LabelError(f"{parts_dir} belongs to a run over a different or changed input "
                                 f"({data.get('input', {}).get('path')}); pass --restart to start over")
            old = data.get("settings", {})
            settings = {**settings, "chunk_rows": old.get("chunk_rows", settings["chunk_rows"])}  # chunk k: same rows
            if old != settings:
                raise LabelError(f"{parts_dir} was made with other formats/columns/label schema than this run; "
                                 f"rerun with the same options or pass --restart")
            was = data.get("model", {})
            if was.get("version") != model_info.get("version") or \
                    (model_info.get("version") is None and was.get("uri") != model_info.get("uri")):
                raise LabelError(f"{parts_dir} was labelled with model {was}, not {model_info}; "
                                 f"pass --model with that version to resume, or --restart")
            return cls(parts_dir, data, True)
        if parts_dir.exists() and path.exists() and not restart and not resume:
            raise LabelError(f"{parts_dir} holds an unfinished run: pass --resume to continue it or --restart to "
                             f"start over")
        if parts_dir.exists():
            shutil.rmtree(parts_dir)
        parts_dir.mkdir(parents=True)
        m = cls(parts_dir, {"format_version": MANIFEST_VERSION, "input": fingerprint(input), "settings": settings,
                            "model": model_info, "chunks": {}}, False)
        m.save()
        return m

    def save(self) -> None:
        _atomic_write_text(self.path, json.dumps(self.data, indent=1))

    def is_done(self, index: int, fmt: str, rows: int) -> bool:
        c = self.chunks.get(str(index))
        return (c is not None and c["rows"] == rows and (self.parts_dir / part_name(index, fmt)).exists()
                and (self.parts_dir / rejects_part_name(index)).exists())

    def write_chunk(self, index: int, fmt: str, write_part, rejects: list[dict], counts: dict) -> None:
        """Write chunk ``index``'s part (``write_part(tmp_path)``) and rejects, then record it: in that order."""
        part = self.parts_dir / part_name(index, fmt)
        tmp = part.with_name(f".{part.name}.tmp")
        write_part(tmp)
        os.replace(tmp, part)
        rej = self.parts_dir / rejects_part_name(index)
        tmp = rej.with_name(f".{rej.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects)
        os.replace(tmp, rej)
        self.chunks[str(index)] = counts
        self.save()

    def check_complete(self, n_chunks: int) -> None:
        missing = [i for i in range(n_chunks) if str(i) not in self.chunks]
        if missing:  # cannot happen unless parts were deleted mid-run; never assemble an incomplete file
            raise LabelError(f"chunks {missing[:5]} have no finished part; rerun with --resume")
        if [k for k in self.chunks if int(k) >= n_chunks]:
            raise LabelError(f"{self.parts_dir} has parts beyond the end of the input; pass --restart")

    def assemble(self, n_chunks: int, fmt: str, schema: pa.Schema, output: Path, rejects: Path) -> None:
        """Concatenate the parts, one at a time, into temp files next to the outputs; then move them in."""
        parts_dir = self.parts_dir
        tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
        rtmp = rejects.with_name(f".{rejects.name}.tmp-{os.getpid()}")
        parts = [parts_dir / part_name(i, fmt) for i in range(n_chunks)]
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
            with open(rtmp, "wb") as out:
                for i in range(n_chunks):
                    with open(parts_dir / rejects_part_name(i), "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 20)
        except BaseException:
            tmp.unlink(missing_ok=True)
            rtmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, output)
        os.replace(rtmp, rejects)
