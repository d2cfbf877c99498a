"""Service benchmark: frontline's service vs ``mlflow models serve`` on the same registered model.

Both servers are started here, one after the other, on loopback, with one worker each, and measured with the
same client in the same run: startup-to-ready, single-post latency p50/p99 at concurrency 1 and 8,
throughput with 64-post calls, and resident memory (the server's whole process tree) after the load.
Prints the figures and writes the "Service" section of bench/RESULTS.md.

    .venv/bin/python bench/serve.py [--model models:/frontline@champion] [--requests 400]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, percentile, tree_rss_mb, write_section  # noqa: E402

API_KEY = "bench-key"


def texts(n: int, seed: int = 0) -> list[str]:
    rows = [json.loads(line)["text"] for line in open(ROOT / "data" / "train.jsonl")]
    rng = random.Random(seed)
    return [rng.choice(rows) for _ in range(n)]


class Peer:
    """A server under test: how to start it, how to ask it, what 'ready' means."""

    def __init__(self, name: str, cmd: list[str], port: int, ready_path: str, env: dict):
        self.name, self.cmd, self.port, self.ready_path, self.env = name, cmd, port, ready_path, env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> float:
        t0 = time.perf_counter()
        # logs go to a file: an unread pipe fills up and blocks the server mid-benchmark
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.name} exited: {self.log.read().decode()[-2000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", self.ready_path)
                if c.getresponse().status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)

    def body(self, batch: list[str]) -> tuple[str, bytes, dict]:
        raise NotImplementedError


class Frontline(Peer):
    def body(self, batch):
        payload = {"posts": [{"id": str(i), "text": t} for i, t in enumerate(batch)]}
        return "/v1/classify", json.dumps(payload).encode(), {"Content-Type": "application/json", "X-API-Key": API_KEY}


class MlflowServe(Peer):
    def body(self, batch):
        payload = {"dataframe_split": {"columns": ["text"], "data": [[t] for t in batch]}}
        return "/invocations", json.dumps(payload).encode(), {"Content-Type": "application/json"}


def load(peer: Peer, batches: list[list[str]], concurrency: int) -> tuple[list[float], float]:
    """Send every batch, ``concurrency`` keep-alive clients at a time; per-call latencies and wall time."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    queue = list(batches)

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=60)
        while True:
            with lock:
                if not queue:
                    return
                batch = queue.pop()
            path, body, headers = peer.body(batch)
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:  # a timeout or reset is a failed call, never a silently dead client
                with lock:
                    errors.append(repr(exc))
                conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=60)
                continue
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt * 1000)
                if resp.status != 200:
                    errors.append(f"{resp.status} {data[:200]!r}")

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{peer.name}: {len(errors)} failed calls, e.g. {errors[0]}")
    return latencies, wall


def measure(peer: Peer, n_single: int, n_batches: int) -> dict:
    out = {"startup_s": peer.start()}
    try:
        pool = texts(n_single + 64 * n_batches + 50)
        load(peer, [[t] for t in pool[:50]], 2)  # warm-up
        single = [[t] for t in pool[50 : 50 + n_single]]
        lat1, _ = load(peer, single[: n_single // 2], 1)
        lat8, _ = load(peer, single, 8)
        big = [pool[50 + n_single + 64 * i : 50 + n_single + 64 * (i + 1)] for i in range(n_batches)]
        _, wall = load(peer, big, 2)
        out.update({
            "p50_ms_c1": percentile(lat1, 50), "p99_ms_c1": percentile(lat1, 99),
            "p50_ms_c8": percentile(lat8, 50), "p99_ms_c8": percentile(lat8, 99),
            "throughput_posts_s": 64 * n_batches / wall,
            "rss_mb": tree_rss_mb(peer.proc.pid),
        })
    finally:
        peer.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models:/frontline@champion")
    ap.add_argument("--requests", type=int, default=400, help="single-post calls at concurrency 8")
    ap.add_argument("--batches", type=int, default=40, help="64-post calls for the throughput figure")
    ap.add_argument("--no-peer", action="store_true", help="measure frontline only (tuning runs; writes no results)")
    args = ap.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'models' / 'mlflow.db'}")
    bin_ = Path(sys.executable).parent
    env["PATH"] = f"{bin_}{os.pathsep}{env.get('PATH', '')}"  # mlflow models serve execs `uvicorn` from PATH
    peers = [
        Frontline("frontline", [str(bin_ / "frontline"), "serve", "--host", "127.0.0.1", "--port", "8181",
                                "--model", args.model],
                  # admission control off: the peer queues every call, and the figures compare the two at the
                  # same offered load (with the default 1 s deadline, a 64-post call behind another is shed)
                  8181, "/health/ready", {**env, "FRONTLINE_API_KEYS": API_KEY, "FRONTLINE_QUEUE_DEADLINE_MS": "0"}),
        MlflowServe("mlflow models serve", [str(bin_ / "mlflow"), "models", "serve", "-m", args.model, "--env-manager",
                                            "local", "-h", "127.0.0.1", "-p", "8182", "-w", "1"],
                    8182, "/ping", env),
    ]
    results = {}
    for peer in peers[:1] if args.no_peer else peers:
        print(f"measuring {peer.name} ...", flush=True)
        results[peer.name] = measure(peer, args.requests, args.batches)
        print(json.dumps(results[peer.name], indent=1), flush=True)

    if args.no_peer:
        return
    ours, peer = results["frontline"], results["mlflow models serve"]
    rows = [  # (label, key, target, higher is better)
        ("startup to ready (s)", "startup_s", "≤ 3", False),
        ("single post p50, concurrency 1 (ms)", "p50_ms_c1", "", False),
        ("single post p99, concurrency 1 (ms)", "p99_ms_c1", "", False),
        ("single post p50, concurrency 8 (ms)", "p50_ms_c8", "≤ 15", False),
        ("single post p99, concurrency 8 (ms)", "p99_ms_c8", "≤ 40", False),
        ("throughput, 64-post calls (posts/s)", "throughput_posts_s", "≥ 3× peer", True),
        ("RSS after load (MB)", "rss_mb", "≤ 350", False),
    ]
    # every figure also as a ratio to the peer measured in this run (> 1×: frontline is better), the figure
    # that survives a busy or different machine
    lines = ["| measure | frontline | mlflow models serve | frontline advantage | target |", "|---|---:|---:|---:|---|"]
    for label, key, target, higher in rows:
        adv = ours[key] / peer[key] if higher else peer[key] / ours[key]
        lines.append(f"| {label} | {ours[key]:.1f} | {peer[key]:.1f} | {adv:.2f}× | {target} |")
    body = (f"Model `{args.model}`; {args.requests} single-post calls at concurrency 8 (half as many at 1), "
            f"{args.batches} calls of 64 posts at concurrency 2, after 50 warm-up calls; one worker each; "
            "client and server share the machine; frontline's admission control is off "
            "(`FRONTLINE_QUEUE_DEADLINE_MS=0`) so both queue every call.\n\n" + "\n".join(lines))
    print(body)
    write_section("Service: frontline vs mlflow models serve", body)


if __name__ == "__main__":
    main()
