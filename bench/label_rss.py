"""Memory of ``frontline label`` over a large export: is RSS flat as the rows go by?

Generates an export of ``--rows`` rows (the shipped posts cycled, each text made unique with a suffix so that
duplicate reuse does not shortcut the model), labels it with ``python -m serving.cli label`` in a subprocess,
and samples that process's RSS (``/proc/PID/status``) against the rows finished (the run's manifest). Prints
RSS at each tenth of the run and the peak; "flat" means the last tenth's RSS is within a few percent of the
first's. Not a timed test: run it by hand.

    python bench/label_rss.py --rows 1000000 --model models:/frontline@champion
    python bench/label_rss.py --rows 1000000 --model /path/to/tiny/bundle --dir /tmp/rss

Measured once (tiny model, 2 shared and busy cores, 2026-12-02): 1,000,000 rows in 1,203 s; RSS ~500 MiB
after loading, 533-559 MiB from 10,000 to 900,000 rows, falling to ~420 MiB while the parts are assembled; peak
(VmHWM) 581 MiB. Flat: nothing grows with the number of rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_export(path: Path, rows: int) -> None:
    posts = [json.loads(line) for line in (ROOT / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "created_at", "company"])
        for i in range(rows):
            p = posts[i % len(posts)]
            w.writerow([f"r{i}", f"{p['text']} #{i}", p["created_at"], p["company"]])


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) // 1024  # MiB
    except FileNotFoundError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--model", default="models:/frontline@champion")
    ap.add_argument("--chunk-rows", type=int, default=2000)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="label-rss-"))
    work.mkdir(parents=True, exist_ok=True)
    export = work / "export.csv"
    if not export.exists():
        t0 = time.monotonic()
        make_export(export, args.rows)
        print(f"built {args.rows:,} rows ({export.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - t0:.0f} s",
              flush=True)
    out = work / "labelled.parquet"
    manifest = work / "labelled.parquet.parts" / "manifest.json"
    shutil.rmtree(manifest.parent, ignore_errors=True)  # an earlier run's parts would read as progress
    cmd = [sys.executable, "-m", "serving.cli", "label", str(export), "--out", str(out), "--model", args.model,
           "--chunk-rows", str(args.chunk_rows), "--no-progress", "--restart"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    log = open(work / "label.log", "w+b")  # a file, not a pipe: an undrained pipe would stall the run
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    samples: list[tuple[int, int]] = []  # (rows done, RSS MB)
    done = peak = 0
    while proc.poll() is None:
        st = _status(proc.pid)
        try:
            done = max(done, len(json.loads(manifest.read_text())["chunks"]) * args.chunk_rows)
        except (FileNotFoundError, ValueError, KeyError):
            pass  # not started yet, or finished and cleaned up: keep the last count
        if "VmRSS" in st:
            samples.append((min(done, args.rows), st["VmRSS"]))
            peak = st.get("VmHWM", peak)
        time.sleep(0.5)
    log.seek(0)
    err = log.read().decode(errors="replace")
    if proc.returncode:
        sys.exit(f"label failed ({proc.returncode}): {err[-2000:]}")
    seconds = time.monotonic() - t0
    summary = json.loads((work / "labelled.parquet.summary.json").read_text())
    print(f"labelled {summary['labelled']:,} of {summary['rows_read']:,} rows in {seconds:.0f} s "
          f"({summary['posts_per_second']:,.0f} posts/s); peak RSS (VmHWM) {peak} MiB")
    print("| rows done | RSS MiB |\n|---:|---:|")
    for tenth in range(1, 11):
        target = args.rows * tenth // 10
        at = [rss for done, rss in samples if done <= target]
        if at:
            print(f"| {target:,} | {at[-1]} |")
    first = [rss for done, rss in samples if args.rows // 10 <= done <= args.rows * 2 // 10]
    last = [rss for done, rss in samples if done >= args.rows * 9 // 10]
    if first and last:
        print(f"RSS at 10-20% of the rows: {max(first)} MB; at 90-100%: {max(last)} MB "
              f"({100 * (max(last) - max(first)) / max(first):+.1f}%)")


if __name__ == "__main__":
    main()
