"""The image's steps without a container daemon: what the Dockerfile does, done on this machine.

The wheel is built from exactly what the Dockerfile copies into its build stage, installed with the serving
dependencies only into a fresh virtualenv, and run from another directory by a user who cannot write the install
tree (an unprivileged user when the tests run as root, else a read-only virtualenv). On a fresh store it must
register the shipped release under ``./models`` and answer ``/health/ready`` and a classify call; the same install
runs ``mlflow models serve`` on the registered model and labels a file, all without torch.

One virtualenv for the module (a couple of minutes: it installs from the package index, the pip cache helps).
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, TRAINING_ONLY
from training.schema import SCHEMA

pytestmark = pytest.mark.deploy

# What the Dockerfile's build stage copies (test_the_dockerfile_builds_what_this_test_builds keeps them in step).
BUILD_CONTEXT = ("pyproject.toml", "README.md", "training", "serving", "models/release")
POSTS = ["@Delta flight cancelled, on hold 2 hours, nobody answers the phone", "love the new app, thanks!"]


@dataclass
class Install:
    top: Path
    venv: Path
    uid: int | None  # run as this user (we are root), or None: as ourselves, the virtualenv made read-only
    gid: int | None

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def workdir(self, name: str) -> Path:
        """A working directory the serving user owns, outside the repository and the install."""
        work = self.top / name
        work.mkdir()
        if self.uid is not None:
            os.chown(work, self.uid, self.gid)
        return work

    def env(self, work: Path, **extra: str) -> dict[str, str]:
        """A clean environment, as in the image: no PYTHONPATH, no MLflow URI unless given."""
        keep = {k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ}
        return {**keep, "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": str(work),
                "MLFLOW_DISABLE_TELEMETRY": "true", "TOKENIZERS_PARALLELISM": "false", **extra}

    def _as_user(self) -> dict:
        return {} if self.uid is None else {"user": self.uid, "group": self.gid, "extra_groups": []}

    def run(self, args: list[str], work: Path, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=work, env=self.env(work, **extra), capture_output=True, text=True,
                              timeout=timeout, **self._as_user())

    def start(self, args: list[str], work: Path, log: Path, **extra: str) -> subprocess.Popen:
        with open(log, "wb") as out:
            return subprocess.Popen(args, cwd=work, env=self.env(work, **extra), stdout=out,
                                    stderr=subprocess.STDOUT, **self._as_user())


def _unprivileged_python() -> tuple[str, int | None, int | None]:
    """(interpreter to build the virtualenv from, uid, gid to run as). As root: a Python 3.11 the ``nobody`` user
    can run (pyenv under /root is not one), so the service runs as a user that cannot write the install."""
    base = getattr(sys, "_base_executable", sys.executable)
    if os.geteuid() != 0:
        return base, None, None
    nobody = pwd.getpwnam("nobody")
    for cand in dict.fromkeys([base, shutil.which("python3.11"), "/usr/bin/python3.11", "/usr/local/bin/python3.11"]):
        if not cand or not os.path.exists(cand):
            continue
        try:
            probe = subprocess.run([cand, "-c", "import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 11)"],
                                   cwd="/", capture_output=True, user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
        except OSError:  # not executable for that user
            continue
        if probe.returncode == 0:
            return cand, nobody.pw_uid, nobody.pw_gid
    pytest.skip("running as root with no Python 3.11 that the 'nobody' user can run (install Debian's python3.11-venv)")


def _set_writable(tree: Path, writable: bool) -> None:
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture(scope="module")
def install():
    python, uid, gid = _unprivileged_python()
    top = Path(tempfile.mkdtemp(prefix="frontline-deploy-"))
    top.chmod(0o755)  # the serving user must reach the virtualenv and its own working directory
    venv = top / "venv"
    build_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        src = top / "src"
        for item in BUILD_CONTEXT:
            (src / item).parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / item).is_dir():
                shutil.copytree(ROOT / item, src / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / item, src / item)
        dist = top / "dist"
        # the Dockerfile's build stage: pip wheel (isolated build), then the runtime stage installs the wheel
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(src)],
                       check=True, env=build_env, capture_output=True, timeout=900)
        subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        wheel = next(dist.glob("frontline-*.whl"))
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
                              env=build_env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-4000:]
        if uid is None:
            _set_writable(venv, False)
        yield Install(top, venv, uid, gid)
    finally:
        if uid is None and venv.exists():
            _set_writable(venv, True)
        shutil.rmtree(top, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status = r.read().decode(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read().decode(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def _wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> float:
    """Seconds until ``url`` answers 200; fails with the server's log if it exits or never gets there."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if _http("GET", url, timeout=5)[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"{url} not 200 after {timeout:.0f}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def test_the_install_has_only_the_serving_dependencies(install):
    work = install.workdir("deps")
    done = install.run([install.python, "-c", "import importlib.metadata as m, json; "
                        "print(json.dumps(sorted({d.metadata['Name'].lower() for d in m.distributions()})))"], work)
    assert done.returncode == 0, done.stderr
    installed = set(json.loads(done.stdout))
    assert {"frontline", "onnxruntime", "tokenizers", "mlflow-skinny", "fastapi"} <= installed
    assert not installed & set(TRAINING_ONLY), sorted(installed & set(TRAINING_ONLY))
    assert install.run([install.python, "-c", "import torch"], work).returncode != 0


def test_the_installed_package_serves_the_shipped_release_from_any_directory(install):
    work = install.workdir("serve")
    site = next((install.venv / "lib").glob("python3.*/site-packages"))
    cannot_write = install.run([install.python, "-c", f"open({str(site / 'probe')!r}, 'w')"], work)
    assert cannot_write.returncode != 0 and re.search(r"PermissionError|Read-only", cannot_write.stderr)

    where = install.run([install.python, "-c", "import json; from training import paths; print(json.dumps("
                         "[paths.from_checkout(), str(paths.models_dir()), str(paths.release_dir())]))"], work)
    assert where.returncode == 0, where.stderr
    from_checkout, models_dir, release_dir = json.loads(where.stdout)
    assert not from_checkout and Path(models_dir) == work / "models"
    assert Path(release_dir).is_relative_to(install.venv) and (Path(release_dir) / "model.onnx").is_file()

    port, log = _free_port(), install.top / "serve.log"
    proc = install.start([str(install.venv / "bin" / "frontline"), "serve", "--port", str(port)], work, log)
    try:
        seconds = _wait_for(f"http://127.0.0.1:{port}/health/ready", proc, log)
        status, body = _http("POST", f"http://127.0.0.1:{port}/v1/classify",
                             {"posts": [{"id": str(i), "text": t} for i, t in enumerate(POSTS)]})
    finally:
        _stop(proc)
    assert status == 200, body
    assert body["model"] == {"name": "frontline", "version": "1", "alias": "champion"}
    assert [r["id"] for r in body["results"]] == ["0", "1"]
    for r in body["results"]:
        assert r["urgency"]["label"] in SCHEMA.urgency and r["issue_type"]["label"] in SCHEMA.issue_type
    assert (work / "models" / "mlflow.db").is_file() and (work / "models" / "artifacts").is_dir()
    print(f"ready {seconds:.1f}s after start (registering the shipped release on a fresh store included)")


def test_mlflow_models_serve_runs_the_logged_model_without_torch(install):
    work = install.workdir("mlflow-serve")
    store = work / "store"
    reg = install.run([install.python, "-c", "from training.release import ensure_champion; print(ensure_champion())"],
                      work, FRONTLINE_MODELS_DIR=str(store))
    assert reg.returncode == 0 and reg.stdout.strip().splitlines()[-1] == "1", reg.stderr[-4000:]
    port, log = _free_port(), install.top / "mlflow-serve.log"
    proc = install.start([str(install.venv / "bin" / "mlflow"), "models", "serve", "-m", "models:/frontline@champion",
                          "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)], work, log,
                         MLFLOW_TRACKING_URI=f"sqlite:///{store / 'mlflow.db'}")
    try:
        _wait_for(f"http://127.0.0.1:{port}/ping", proc, log)
        status, body = _http("POST", f"http://127.0.0.1:{port}/invocations",
                             {"dataframe_split": {"columns": ["text"], "data": [[t] for t in POSTS]}})
    finally:
        _stop(proc)
    assert status == 200, body
    rows = body["predictions"]
    assert len(rows) == 2
    for row in rows:
        assert row["urgency"] in SCHEMA.urgency and isinstance(row["tried_other_channel"], bool)


def test_batch_labelling_runs_from_the_install(install):
    work = install.workdir("label")
    src = work / "posts.jsonl"
    src.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(POSTS)))
    if install.uid is not None:
        os.chown(src, install.uid, install.gid)
    where = install.run([install.python, "-c", "from training.paths import release_dir; print(release_dir())"], work)
    done = install.run([str(install.venv / "bin" / "frontline"), "label", str(src), "--out", str(work / "out.csv"),
                        "--model", where.stdout.strip()], work)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with open(work / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["p0", "p1"]
    assert all(r["urgency"] in SCHEMA.urgency for r in rows)


def test_the_dockerfile_builds_what_this_test_builds():
    """The Dockerfile copies the same build context, installs the wheel without extras, runs as a non-root user and
    checks readiness: what the tests above reproduce."""
    text = (ROOT / "Dockerfile").read_text()
    copies = [line.split()[1:-1] for line in text.splitlines()
              if line.startswith("COPY") and "--from" not in line]
    assert sorted(src for srcs in copies for src in srcs) == sorted(BUILD_CONTEXT)
    installs = re.findall(r"pip install ([^\n&]*)", text)
    assert installs and all("frontline-*.whl" in i and "[" not in i and "torch" not in i for i in installs), installs
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*?/health/ready", text, re.M | re.S)
