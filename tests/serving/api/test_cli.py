"""``frontline serve`` wiring and ``.env`` settings (no server is started)."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from serving.api.settings import Settings
from serving.cli import app


def test_serve_runs_uvicorn_on_the_factory(monkeypatch):
    calls = {}
    monkeypatch.setattr("uvicorn.run", lambda target, **kw: calls.update(target=target, **kw))
    monkeypatch.delenv("FRONTLINE_MODEL_URI", raising=False)
    r = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "9001", "--workers", "2",
                                 "--model", "models:/frontline/7"])
    assert r.exit_code == 0, r.output
    assert calls["target"] == "serving.api.app:create_app" and calls["factory"] is True
    assert (calls["host"], calls["port"], calls["workers"]) == ("0.0.0.0", 9001, 2)
    assert os.environ["FRONTLINE_MODEL_URI"] == "models:/frontline/7"  # every worker's Settings() sees it
    monkeypatch.delenv("FRONTLINE_MODEL_URI")


def test_settings_read_dotenv(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("FRONTLINE_"):
            monkeypatch.delenv(k)
    env = tmp_path / ".env"
    env.write_text("FRONTLINE_API_KEYS=k1,k2\nFRONTLINE_MAX_TEXT_CHARS=500\nFRONTLINE_LOG_TEXTS=true\n")
    s = Settings(_env_file=env)
    assert s.api_keys == ["k1", "k2"] and s.max_text_chars == 500 and s.log_texts is True
    d = Settings(_env_file=None)
    assert d.api_keys == [] and d.model_uri == "models:/frontline@champion" and d.max_posts == 64
    assert d.log_texts is False and d.reload_poll_seconds == 0 and d.api_key_header == "X-API-Key"


def test_the_cli_imports_no_torch_until_a_training_command_runs():
    """`frontline serve` / `label` share the typer app with `train`: the serving path must stay torch-free."""
    import subprocess
    import sys

    code = "import sys, serving.cli; print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
