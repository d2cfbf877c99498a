"""The first model load is retried with backoff; /health/ready says why it is not ready meanwhile."""

from __future__ import annotations

import shutil
import time

from fastapi.testclient import TestClient

from serving.api.app import create_app
from tests.serving.api.app_support import AUTH, metric_value, settings


def _wait_ready(c: TestClient, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while (r := c.get("/health/ready")).status_code != 200:
        assert time.monotonic() < deadline, f"never ready: {r.json()}"
        time.sleep(0.05)
    return r.json()


def test_a_store_that_appears_later_is_picked_up(tiny_model, tmp_path):
    target = tmp_path / "models" / "frontline"  # e.g. a volume not mounted yet when the pod starts
    s = settings(str(target), load_retry_initial_s=0.1, load_retry_max_delay_s=0.4)
    with TestClient(create_app(s)) as c:  # the app starts although the first attempt failed
        assert c.get("/health/live").status_code == 200
        r = c.get("/health/ready")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["status"] in ("retrying", "loading") and body["attempts"] >= 1
        assert body["reason"].startswith("load_failed: ") and "Exception" in body["reason"]  # class and message
        assert int(r.headers["Retry-After"]) >= 1
        # it keeps trying, with growing delays
        deadline = time.monotonic() + 30
        while c.get("/health/ready").json()["attempts"] < 3:
            assert time.monotonic() < deadline, "no retries"
            time.sleep(0.05)
        waiting = c.get("/health/ready").json()
        if waiting["status"] == "retrying":
            assert 0 <= waiting["next_retry_in_s"] <= 0.4 + 0.1 + 0.05
        # the store appears (moved in whole, as a mount appears)
        staging = tmp_path / "staging"
        shutil.copytree(tiny_model.bundle_dir, staging)
        target.parent.mkdir()
        staging.rename(target)
        ready = _wait_ready(c)
        assert ready["status"] == "ready" and ready.get("reason") is None
        assert c.post("/v1/classify", json={"text": "my parcel is late"}, headers=AUTH).status_code == 200
        text = c.get("/metrics").text
        assert metric_value(text, "frontline_model_reloads_total", outcome="failure") >= 3
        assert metric_value(text, "frontline_model_reloads_total", outcome="success") == 1.0


def test_spent_attempts_say_failed_and_a_reload_still_fixes_it(tiny_model, tmp_path):
    s = settings(str(tmp_path / "never"), load_retry_attempts=2, load_retry_initial_s=0.05, load_retry_max_delay_s=0.05)
    with TestClient(create_app(s)) as c:
        deadline = time.monotonic() + 30
        while (body := c.get("/health/ready").json())["status"] != "failed":
            assert time.monotonic() < deadline, body
            time.sleep(0.02)
        assert body["attempts"] == 2 and body["next_retry_in_s"] is None and body["reason"].startswith("load_failed")
        from tests.serving.api.app_support import ADMIN

        ok = c.post("/v1/admin/reload", json={"uri": str(tiny_model.bundle_dir)}, headers=ADMIN)
        assert ok.status_code == 200, ok.text
        assert _wait_ready(c)["status"] == "ready"


def test_background_start_says_loading_first(tiny_model):
    with TestClient(create_app(settings(str(tiny_model.bundle_dir), load_blocking=False))) as c:
        first = c.get("/health/ready")
        if first.status_code == 503:  # caught before the load finished
            assert first.json()["status"] == "loading" and first.json()["reason"] == "loading"
        assert _wait_ready(c)["model"] is not None
