"""Resume: a run killed with SIGKILL continues with --resume, and every input row ends up labelled or rejected
exactly once; the output file only ever appears complete (atomic)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from serving.batch.labelling import (
    THROTTLE_ENV,
    LabelError,
    LabelOptions,
    run_label,
    side_paths,
)
from tests.serving.batch.label_support import (
    ROOT,
    read_output,
    read_rejects,
    read_summary,
    sample_posts,
)


def _input(tmp_path, n=240):
    posts = sample_posts(n)
    lines = ["id,text,created_at"]
    for i, p in enumerate(posts):
        text = "" if i % 37 == 5 else p["text"].replace('"', '""')  # some rejects spread across chunks
        lines.append(f'{p["id"]},"{text}",{p["created_at"]}')
    src = tmp_path / "export.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src, [p["id"] for p in posts]


def test_resume_after_sigkill_labels_every_row_exactly_once(tmp_path, tiny_model):
    src, ids = _input(tmp_path)
    out = tmp_path / "labelled.parquet"
    parts = side_paths(out)["parts"]
    env = {**os.environ, THROTTLE_ENV: "0.4"}  # slow the run down so the kill lands mid-way
    cmd = [sys.executable, "-c", "from serving.cli import app; app(prog_name='frontline')", "label", str(src),
           "--out", str(out), "--model", str(tiny_model.bundle_dir), "--chunk-rows", "20", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done = len(json.loads((parts / "manifest.json").read_text())["chunks"])
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                done = 0
            if done >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # no half-written output
    killed_at = len(json.loads((parts / "manifest.json").read_text())["chunks"])
    assert 3 <= killed_at < 12

    # without --resume the unfinished run is not thrown away
    with pytest.raises(LabelError, match="--resume"):
        run_label(LabelOptions(input=src, output=out, model=str(tiny_model.bundle_dir)), progress=False)

    s = run_label(LabelOptions(input=src, output=out, model=str(tiny_model.bundle_dir), chunk_rows=999, resume=True),
                  progress=False)
    assert s["resumed"] and s["chunk_rows"] == 20  # the manifest's chunking wins: chunk k is the same rows
    assert s["rows_read"] == len(ids) and s["labelled_this_run"] < s["labelled"]
    labelled = [r["id"] for r in read_output(out)]
    rejected = [r["id"] for r in read_rejects(out)]
    assert len(labelled) + len(rejected) == len(ids)
    assert sorted(labelled + rejected) == sorted(ids)  # every row exactly once, none lost, none doubled
    assert len(rejected) == s["rejected"] == sum(1 for i in range(len(ids)) if i % 37 == 5)
    assert labelled == [i for k, i in enumerate(ids) if k % 37 != 5]  # and in input order
    assert read_summary(out)["resumed"] is True
    assert not parts.exists()


def test_resume_refuses_a_changed_input(tmp_path, tiny_predictor):
    src, _ = _input(tmp_path, n=30)
    out = tmp_path / "labelled.jsonl"
    opts = dict(input=src, output=out, chunk_rows=10, keep_parts=True)
    run_label(LabelOptions(**opts), predictor=tiny_predictor, model_info={"uri": "tiny"}, progress=False)
    manifest = side_paths(out)["parts"] / "manifest.json"
    assert len(json.loads(manifest.read_text())["chunks"]) == 3
    # a finished run resumed again re-assembles the same result without labelling anything
    s = run_label(LabelOptions(**opts, resume=True), predictor=tiny_predictor, model_info={"uri": "tiny"},
                  progress=False)
    assert s["labelled_this_run"] == 0 and s["labelled"] == 29 and s["rejected"] == 1
    with open(src, "a", encoding="utf-8") as f:
        f.write('extra,"one more post about my bill",\n')
    with pytest.raises(LabelError, match="different or changed input"):
        run_label(LabelOptions(**opts, resume=True), predictor=tiny_predictor, model_info={"uri": "tiny"},
                  progress=False)


def test_a_run_killed_during_assembly_resumes_cleanly(tmp_path, tiny_predictor):
    """SIGKILL during assembly leaves the parts, the manifest and temporary files next to the output: a resume
    removes the temporary files and assembles again, without labelling anything."""
    src, ids = _input(tmp_path, n=30)
    out = tmp_path / "labelled.csv"
    opts = dict(input=src, output=out, chunk_rows=10, keep_parts=True)
    run_label(LabelOptions(**opts), predictor=tiny_predictor, model_info={"uri": "tiny"}, progress=False)
    first = out.read_bytes()
    out.unlink()  # as if the kill came before the output was moved in
    side_paths(out)["summary"].unlink()
    stale = [tmp_path / ".labelled.csv.tmp-99999", tmp_path / ".labelled.csv.rejects.jsonl.tmp-99999"]
    for p in stale:
        p.write_bytes(first[: len(first) // 2])  # half-written
    s = run_label(LabelOptions(**opts, resume=True), predictor=tiny_predictor, model_info={"uri": "tiny"},
                  progress=False)
    assert s["labelled_this_run"] == 0 and s["rows_read"] == 30 and out.read_bytes() == first
    assert not any(p.exists() for p in stale)
