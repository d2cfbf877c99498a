"""No post text in any batch log line, at any level: every post carries a canary word, the run logs at DEBUG for
every logger (in-process, and the CLI in a subprocess with the root logger at DEBUG), and the canary must not
appear in any record or in the command's output, over good rows and every kind of rejected row. The rejects
file is the one place an excerpt of a rejected row may go; it is a data file, not a log.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys

import pytest

from serving.batch.labelling import LabelOptions, run_label
from tests.serving.batch.label_support import ROOT, sample_posts

pytestmark = pytest.mark.reliability

CANARY = "zqxcanary"


def _corpus(tmp_path) -> list:
    posts = sample_posts(30, offset=300)
    texts = [f"{p['text'].replace(chr(34), chr(39))} {CANARY}{i}" for i, p in enumerate(posts)]
    csv_rows = [f'p{i},"{t}"'.encode() for i, t in enumerate(texts)]
    csv_rows[3] = f'p3,"{CANARY} caf'.encode() + b"\xe9 bad bytes" + b'"'
    csv_rows[5] = f'p5,"{CANARY} unterminated quote'.encode()  # swallows rows until the next quote
    csv_rows[9] = f'p9,"{CANARY} too",many,fields'.encode()
    csv_rows[12] = f'p12,"{texts[0]}"'.encode()  # a duplicate
    csv = tmp_path / "export.csv"
    csv.write_bytes(b"id,text\n" + b"\n".join(csv_rows) + b"\n")
    lines = [json.dumps({"id": f"j{i}", "text": t}).encode() for i, t in enumerate(texts)]
    lines[2] = json.dumps({"id": "j2", "text": {"body": CANARY}}).encode()
    lines[4] = f'{{"id": "j4", "text": "{CANARY} broken'.encode()
    lines[6] = f'{{"id": "j6", "text": "{CANARY} '.encode() + b'\xff"}'
    jsonl = tmp_path / "export.jsonl"
    jsonl.write_bytes(b"\n".join(lines) + b"\n")
    raw = b"\n".join(lines) + b"\n"
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) // 2])
    return [csv, jsonl, cut]


def test_no_post_text_in_any_log_record(tmp_path, tiny_predictor, caplog):
    with caplog.at_level(logging.DEBUG):  # the root logger at DEBUG: every library's records are captured
        for src in _corpus(tmp_path):
            s = run_label(LabelOptions(input=src, output=tmp_path / f"{src.name}.out.jsonl", chunk_rows=7),
                          predictor=tiny_predictor, model_info={"uri": "tiny"}, progress=False)
            assert s["rejected"] > 0
            rejects = (tmp_path / f"{src.name}.out.jsonl.rejects.jsonl").read_text(encoding="utf-8")
            assert CANARY in rejects  # the canary is really in the rows the run saw
    batch = [r for r in caplog.records if r.name.startswith("frontline")]
    assert len(batch) >= 6 and {r.levelno for r in batch} >= {logging.INFO, logging.WARNING, logging.DEBUG}
    for r in caplog.records:
        line = f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}"
        assert CANARY not in line, f"post text in a log record: {line[:300]}"


def test_no_post_text_in_the_cli_output_at_debug(tmp_path, tiny_model):
    src = _corpus(tmp_path)[0]
    code = ("import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
            "from serving.cli import app; app(prog_name='frontline')")
    res = subprocess.run([sys.executable, "-c", code, "label", str(src), "--out", str(tmp_path / "out.csv"),
                          "--model", str(tiny_model.bundle_dir), "--no-progress"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "DEBUG" in res.stderr and "frontline.batch" in res.stderr and "span lines" in res.stderr
    assert CANARY not in res.stderr and CANARY not in res.stdout
