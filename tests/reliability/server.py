"""A live service for the reliability tests: ``uvicorn`` in a subprocess, serving the tiny registered model.

Why a real process and not a TestClient: these tests attack what a deployment runs (sockets, uvicorn's
HTTP parsing, the worker's lifespan), and a subprocess started with ``sys.executable`` from the repository
root imports this checkout, here and in CI alike.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(tracking_uri: str, log_path: Path, settings: dict[str, str] | None = None,
                ready_timeout: float = 180.0) -> Iterator[str]:
    """Serve ``models:/frontline@champion`` from ``tracking_uri``; yield the base URL once ready.

    ``settings`` are ``FRONTLINE_*`` variables (without the prefix); the server's output goes to
    ``log_path`` and is shown if it dies or never gets ready.
    """
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "FRONTLINE_MODEL_URI": "models:/frontline@champion",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    env.update({f"FRONTLINE_{k.upper()}": v for k, v in (settings or {}).items()})
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serving.api.app:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + ready_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
                try:
                    if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server was not ready in {ready_timeout:.0f} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.25)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
