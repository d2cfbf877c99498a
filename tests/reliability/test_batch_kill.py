"""Batch labelling SIGKILLed at 5 random points and resumed each time: every input row ends up labelled or
rejected exactly once, in input order, and no reader ever sees a half-written output.

The kill points are drawn at random (seed in the failure message; ``FRONTLINE_KILL_SEED`` replays one): after
a random number of finished chunks, plus a random fraction of a chunk's time, so kills land while a part is
being written, between a part and its manifest entry, or while the first chunk is labelled.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from serving.batch.labelling import THROTTLE_ENV, LabelOptions, run_label, side_paths
from tests.serving.batch.label_support import ROOT, read_output, read_rejects, read_summary, sample_posts

pytestmark = pytest.mark.reliability

KILLS = 5
CHUNK_ROWS = 20
THROTTLE_S = 0.15


def _export(tmp_path, n=300):
    """A CSV export with rejects (empty texts) and exact duplicates spread over the chunks."""
    posts = sample_posts(n)
    lines = ["id,text,created_at"]
    for i, p in enumerate(posts):
        text = p["text"]
        if i % 41 == 7:
            text = ""
        elif i % 29 == 3:
            text = posts[0]["text"]  # a copy-pasted complaint: labelled once, fanned out
        lines.append(f'{p["id"]},"{text.replace(chr(34), chr(34) * 2)}",{p["created_at"]}')
    src = tmp_path / "export.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src, [p["id"] for p in posts], {p["id"] for i, p in enumerate(posts) if i % 41 == 7}


def _chunks_done(parts) -> int:
    try:
        return len(json.loads((parts / "manifest.json").read_text())["chunks"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def test_five_random_sigkills_then_resume_every_row_exactly_once(tmp_path, tiny_model, tiny_predictor):
    seed = int(os.environ.get("FRONTLINE_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    src, ids, empty = _export(tmp_path)
    n_chunks = -(-len(ids) // CHUNK_ROWS)
    out = tmp_path / "labelled.parquet"
    parts = side_paths(out)["parts"]
    env = {**os.environ, THROTTLE_ENV: str(THROTTLE_S), "PYTHONPATH": str(ROOT)}
    model = str(tiny_model.bundle_dir)
    # the labelling run itself (run_label: chunks, manifest, assembly), without the CLI's start-up cost; the CLI
    # path is killed and resumed in tests/serving/batch/test_resume.py
    code = ("import sys; from pathlib import Path; from training.predict import Predictor; "
            "from serving.batch.labelling import LabelOptions, run_label; "
            "run_label(LabelOptions(input=Path(sys.argv[1]), output=Path(sys.argv[2]), chunk_rows=int(sys.argv[3]), "
            "resume=sys.argv[5] == 'resume'), predictor=Predictor(sys.argv[4]), model_info={'uri': sys.argv[4]}, "
            "progress=False)")
    cmd = [sys.executable, "-c", code, str(src), str(out), str(CHUNK_ROWS), model]
    # kill once k chunks are finished (0: once the run has started its parts), k increasing over the kills, after
    # a further random part of a chunk's time; at least two chunks remain, so the run cannot finish first (a kill
    # during assembly leaves temporary files: tests/serving/batch/test_resume.py covers that state)
    points = sorted(rng.sample(range(0, n_chunks - 1), KILLS))
    log = []
    for i, k in enumerate(points):
        proc = subprocess.Popen(cmd + ["resume" if i else "fresh"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline and \
                    (not (parts / "manifest.json").exists() if k == 0 else _chunks_done(parts) < k):
                time.sleep(0.01)
            time.sleep(rng.uniform(0, THROTTLE_S))
            assert proc.poll() is None, (f"seed {seed}: run {i} ended before kill point {k}: "
                                         f"{proc.stderr.read().decode()[-1500:]}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert not out.exists(), f"seed {seed}: a killed run left an output behind"  # only ever whole
        log.append((k, _chunks_done(parts)))

    s = run_label(LabelOptions(input=src, output=out, chunk_rows=CHUNK_ROWS, resume=True), predictor=tiny_predictor,
                  model_info={"uri": model}, progress=False)
    assert s == read_summary(out)
    labelled = [r["id"] for r in read_output(out)]
    rejected = [r["id"] for r in read_rejects(out)]
    where = f"seed {seed}, kill points (chunks asked, chunks done) {log}"
    assert sorted(labelled + rejected) == sorted(ids), where  # every row exactly once: none lost, none doubled
    assert labelled == [i for i in ids if i not in empty], where  # and in input order
    assert set(rejected) == empty and s["reject_reasons"] == {"empty text": len(empty)}, where
    assert s["rows_read"] == len(ids) and s["labelled"] == len(labelled) and s["resumed"] is True, where
    assert [c for _, c in log] == sorted(c for _, c in log), where  # progress was kept across kills
    assert not parts.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], where  # no temp files left
