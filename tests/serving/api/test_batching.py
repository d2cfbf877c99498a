"""The micro-batcher: concurrent calls share forward passes and each caller gets its own results."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from serving.api.predictor import MicroBatcher
from tests.serving.api.app_support import AUTH, metric_value, settings


class Recorder:
    """A fake model: result i is the text itself, uppercased; records every batch it sees."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.batches: list[list[str]] = []
        self.delay, self.fail_on = delay, fail_on

    def __call__(self, texts):
        self.batches.append(list(texts))
        time.sleep(self.delay)
        if self.fail_on in texts:
            raise RuntimeError("boom")
        return "model-A", [t.upper() for t in texts]


def test_concurrent_submissions_are_merged_and_routed_back():
    rec = Recorder()
    b = MicroBatcher(rec, max_size=100, max_wait_s=0.2)
    futures = [b.submit([f"r{i}-a", f"r{i}-b"]) for i in range(5)]  # queued before the worker starts
    b.start()
    try:
        for i, f in enumerate(futures):
            assert f.result(5) == ("model-A", [f"R{i}-A", f"R{i}-B"])
        assert len(rec.batches) == 1 and len(rec.batches[0]) == 10
    finally:
        b.stop()


def test_batch_size_cap_never_splits_a_request():
    rec = Recorder()
    b = MicroBatcher(rec, max_size=5, max_wait_s=0.05)
    futures = [b.submit([f"{i}.{j}" for j in range(3)]) for i in range(4)]
    b.start()
    try:
        assert [f.result(5)[1] for f in futures] == [[f"{i}.{j}" for j in range(3)] for i in range(4)]
        assert [len(x) for x in rec.batches] == [3, 3, 3, 3]  # 3+3 > 5: each request alone, none split
    finally:
        b.stop()


def test_failure_reaches_every_caller_of_the_batch_and_only_them():
    rec = Recorder(fail_on="bad")
    b = MicroBatcher(rec, max_size=100, max_wait_s=0.05)
    f1, f2 = b.submit(["ok"]), b.submit(["bad"])
    b.start()
    try:
        for f in (f1, f2):
            with pytest.raises(RuntimeError, match="boom"):
                f.result(5)
        assert b.submit(["fine"]).result(5) == ("model-A", ["FINE"])  # the worker survived
    finally:
        b.stop()


def test_cancelled_callers_are_skipped_and_queue_limit_gives_429():
    from serving.api.errors import Overloaded

    rec = Recorder()
    b = MicroBatcher(rec, max_size=100, max_wait_s=0.0, max_queue=4)
    gone = b.submit(["gone"])
    assert gone.cancel()
    kept = b.submit(["kept", "x", "y"])
    with pytest.raises(Overloaded):
        b.submit(["one", "too", "many"])
    b.start()
    try:
        assert kept.result(5)[1] == ["KEPT", "X", "Y"]
        assert all("gone" not in batch for batch in rec.batches)
    finally:
        b.stop()


def _vector(result) -> list[float]:
    return [v for head in ("urgency", "issue_type", "prior_channels") for v in result[head]["scores"].values()]


def test_concurrent_http_requests_get_their_own_results(tiny_model):
    words = ["refund", "flight", "password", "delivery", "outage", "rude", "invoice", "broken", "cancel", "thanks",
             "app", "store"]
    texts = [f"@company {w} {w} {i} " + " ".join(words[: i % 12]) + ("!" * i) for i, w in enumerate(words * 2)]
    with TestClient(create_app(settings(tiny_model.uri, batch_max_wait_ms=100, batch_max_size=64))) as c:
        served = c.app.state.predictor.current.predictor
        expected = {t: _vector(served.classify([t])[0]) for t in texts}  # each text alone, no batching
        barrier = threading.Barrier(12)

        def call(i):
            mine = texts[2 * i : 2 * i + 2]
            barrier.wait()
            r = c.post("/v1/classify", json={"posts": [{"id": f"{i}-{j}", "text": t} for j, t in enumerate(mine)]},
                       headers=AUTH)
            return i, mine, r

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(call, range(12)))
        for i, mine, r in answers:
            assert r.status_code == 200, r.text
            res = r.json()["results"]
            assert [x["id"] for x in res] == [f"{i}-0", f"{i}-1"]
            for t, got in zip(mine, res):
                dist = {u: max(abs(a - b) for a, b in zip(_vector(got), v)) for u, v in expected.items()}
                assert dist[t] < 2e-3, f"result for {t!r} is off by {dist[t]}"
                assert min(dist, key=dist.get) == t, "a caller received another caller's result"
        text = c.get("/metrics").text
        passes = metric_value(text, "frontline_batch_requests_count")
        assert passes < 12, f"12 concurrent requests took {passes} forward passes: nothing was batched"
        assert metric_value(text, "frontline_batch_requests_sum") == 12
