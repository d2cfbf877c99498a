"""A live service for the reliability suite: ``uvicorn --factory serving.api.app:create_app`` in a subprocess.

Why a real process: overload, hot reload under load and logging are properties of the server as deployed
(uvicorn's event loop, its sockets, its log configuration), which an in-process test client does not have.
The server reads its settings from the environment, as in production, pointed at the session's tiny model
and temporary MLflow store (``tests/conftest.py``). Its socket is bound here and handed over (``--fd``), so
there is no race for a free port; its stdout and stderr go to a file the tests read.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
KEY = "reliability-key"
ADMIN_KEY = "reliability-admin-key"
AUTH = {"X-API-Key": KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def debug_log_config(path: Path) -> Path:
    """A logging config that prints every logger at DEBUG (the service's, uvicorn's, the libraries')."""
    config = {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"}},
        "root": {"level": "DEBUG", "handlers": ["out"]},
        "loggers": {name: {"level": "DEBUG", "handlers": [], "propagate": True}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "frontline")},
    }
    path.write_text(json.dumps(config))
    return path


def server_env(tiny_model, **settings: str) -> dict[str, str]:
    """The process environment: nothing FRONTLINE_* inherited, the worktree importable, the tiny model's store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTLINE_")}
    env.update({
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        "MLFLOW_TRACKING_URI": tiny_model.tracking_uri, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true", "TOKENIZERS_PARALLELISM": "false",
        "FRONTLINE_MODEL_URI": tiny_model.uri, "FRONTLINE_API_KEYS": KEY, "FRONTLINE_ADMIN_API_KEYS": ADMIN_KEY,
    })
    env.update({f"FRONTLINE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@contextmanager
def live_server(tiny_model, workdir: Path, *, log_config: Path | None = None, log_level: str = "warning",
                ready_timeout: float = 120.0, **settings: str) -> Iterator[LiveServer]:
    """Start the service with ``FRONTLINE_<setting>`` from ``settings``, wait until ready, stop it after."""
    workdir.mkdir(parents=True, exist_ok=True)  # the server's cwd: no stray .env is read
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serving.api.app:create_app", "--fd", str(sock.fileno()),
           "--no-access-log" if log_config is None else "--access-log", "--timeout-graceful-shutdown", "5"]
    cmd += ["--log-config", str(log_config)] if log_config else ["--log-level", log_level]
    log_path = workdir / "server.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=server_env(tiny_model, **settings), stdout=out,
                                stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),))
    sock.close()  # the child holds it now
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            assert proc.poll() is None, f"the server exited ({proc.returncode}):\n{server.logs()[-3000:]}"
            try:
                if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not ready after {ready_timeout} s:\n{server.logs()[-3000:]}"
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
