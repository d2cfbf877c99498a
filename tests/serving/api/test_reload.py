"""Hot reload: the alias moves, the service swaps models without failing a single request."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from tests.serving.api.app_support import ADMIN, AUTH, metric_value, settings


@pytest.fixture(scope="module")
def two_versions(tiny_model):
    """A second registered version (same artifacts, new version number); the champion alias is restored after."""
    from mlflow import MlflowClient

    from training import tracking

    client = MlflowClient()
    first = str(tiny_model.summary["version"])
    mv = client.get_model_version(tracking.MODEL_NAME, first)
    second = str(client.create_model_version(tracking.MODEL_NAME, mv.source, run_id=mv.run_id).version)
    assert second != first
    yield first, second
    client.set_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION, first)


def _set_champion(version: str) -> None:
    from training import tracking

    tracking.promote(version, force=True)


def test_reload_under_load_loses_no_request(two_versions, tiny_model):
    first, second = two_versions
    with TestClient(create_app(settings(tiny_model.uri, batch_max_wait_ms=2))) as c:
        assert c.get("/v1/model", headers=AUTH).json()["version"] == first
        # the alias has not moved: a plain reload is a no-op
        same = c.post("/v1/admin/reload", headers=ADMIN).json()
        assert same["changed"] is False and same["current"]["version"] == first
        _set_champion(second)
        stop = threading.Event()
        seen: list[tuple[int, str]] = []

        def hammer(worker: int):
            n = 0
            while not stop.is_set() or n < 3:
                r = c.post("/v1/classify", json={"posts": [{"id": f"{worker}-{n}", "text": f"still waiting {n}"}]},
                           headers=AUTH)
                seen.append((r.status_code, r.json()["model"]["version"] if r.status_code == 200 else r.text))
                assert r.json()["results"][0]["id"] == f"{worker}-{n}"
                n += 1

        with ThreadPoolExecutor(6) as pool:
            workers = [pool.submit(hammer, w) for w in range(6)]
            time.sleep(0.2)
            r = c.post("/v1/admin/reload", headers=ADMIN)
            time.sleep(0.2)
            stop.set()
            for w in workers:
                w.result(60)
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True
        assert r.json()["previous"]["version"] == first and r.json()["current"]["version"] == second
        assert all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200][:3]
        versions = [v for _, v in seen]
        assert set(versions) <= {first, second} and versions[-1] == second and len(seen) >= 18
        assert c.get("/v1/model", headers=AUTH).json()["version"] == second
        text = c.get("/metrics").text
        assert metric_value(text, "frontline_model_info", version=second) == 1.0
        assert metric_value(text, "frontline_model_info", version=first) is None
        assert metric_value(text, "frontline_model_reloads_total", outcome="success") == 2.0
    _set_champion(first)


def test_failed_reload_keeps_serving_the_old_model(two_versions, tiny_model, tmp_path):
    first, _ = two_versions
    _set_champion(first)
    with TestClient(create_app(settings(tiny_model.uri))) as c:
        r = c.post("/v1/admin/reload", json={"uri": str(tmp_path / "missing")}, headers=ADMIN)
        assert r.status_code == 404 and r.json()["error"]["type"] == "model_not_found"
        assert "previous model keeps serving" in r.json()["error"]["message"]
        assert c.get("/health/ready").status_code == 200
        ok = c.post("/v1/classify", json={"text": "hello"}, headers=AUTH)
        assert ok.status_code == 200 and ok.json()["model"]["version"] == first


def test_alias_polling_picks_up_a_promotion(two_versions, tiny_model):
    first, second = two_versions
    _set_champion(first)
    with TestClient(create_app(settings(tiny_model.uri, reload_poll_seconds=0.2))) as c:
        assert c.get("/v1/model", headers=AUTH).json()["version"] == first
        _set_champion(second)
        deadline = time.monotonic() + 30
        while c.get("/v1/model", headers=AUTH).json()["version"] != second:
            assert time.monotonic() < deadline, "the poller never swapped to the new champion"
            time.sleep(0.1)
    _set_champion(first)
