"""Admission control: a call that would wait past the deadline is refused at once (429 + Retry-After)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from serving.api.admission import Admission, ServiceTime
from serving.api.app import create_app
from serving.api.errors import Overloaded
from serving.api.metrics import ServiceMetrics
from serving.api.predictor import MicroBatcher
from tests.serving.api.app_support import AUTH, metric_value, settings


def test_service_time_weighs_batches_by_their_size_and_rises_faster_than_it_falls():
    st = ServiceTime()
    assert st.per_post is None
    st.observe(1, 0.010)  # a lone post: 10 ms
    st.observe(63, 0.100)  # a big batch: ~1.6 ms per post, a fall (weight 0.2)
    # by posts, not by passes: (0.8 * 0.01 + 0.2 * 0.1) / (0.8 * 1 + 0.2 * 63) = 2.1 ms, not (10 + 1.6) / 2
    assert st.per_post == pytest.approx((0.8 * 0.010 + 0.2 * 0.100) / (0.8 * 1 + 0.2 * 63))
    fell = st.per_post
    st.observe(64, 64 * 0.010)  # a slow batch (a surge): it counts at 0.6
    assert st.per_post > fell + 0.5 * (0.010 - fell)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _measured(adm: Admission, posts: int, seconds: float) -> None:
    """Tell ``adm`` that a batch of ``posts`` posts took ``seconds`` (its calls queued just before)."""
    adm.batch_started(posts, adm.clock())
    adm.clock.now += seconds
    adm.batch_finished(posts)


def _admission(**kw) -> Admission:
    return Admission(clock=Clock(), **kw)


def test_admission_admits_an_empty_queue_and_refuses_past_the_deadline():
    metrics = ServiceMetrics()
    adm = _admission(deadline_s=1.0, max_queue=1000, metrics=metrics)  # calls are admitted up to 0.5 s expected
    adm.check(0, 10)  # no estimate yet, nothing queued
    _measured(adm, 10, 1.0)  # 100 ms per post
    assert adm.check(0, 64) == pytest.approx(6.4, rel=0.01)  # nothing ahead of it: refusing could not speed it up
    assert adm.check(3, 1) == pytest.approx(0.4, rel=0.01)
    with pytest.raises(Overloaded) as exc:
        adm.check(9, 1)  # 1 s expected
    assert exc.value.status_code == 429 and exc.value.type == "overloaded"
    assert exc.value.headers["Retry-After"] == "1"  # ceil(1.0 - 0.5)
    assert "1000 ms" in exc.value.message and "1000 ms deadline" in exc.value.message
    with pytest.raises(Overloaded) as exc:
        adm.check(40, 1)  # 4.1 s expected: retry after ~3.6 s
    assert exc.value.headers["Retry-After"] == "4"
    with pytest.raises(Overloaded):
        adm.check(999, 2)  # over max_queue
    from prometheus_client import generate_latest

    out = generate_latest(metrics.registry).decode()
    assert metric_value(out, "frontline_shed_calls_total", reason="deadline") == 2.0
    assert metric_value(out, "frontline_shed_calls_total", reason="queue_full") == 1.0
    assert metric_value(out, "frontline_seconds_per_post") == pytest.approx(0.1, rel=0.01)


def test_calls_slower_than_predicted_raise_the_price_of_the_next():
    adm = _admission(deadline_s=1.0, max_queue=1000)
    _measured(adm, 10, 0.1)  # 10 ms per post
    assert adm.expected_seconds(20, 1) == pytest.approx(0.21, rel=0.01)
    for _ in range(20):  # admitted calls keep taking 300 ms longer than their model part
        adm.call_finished(0.2, 0.5)
    assert adm.overhead_s == pytest.approx(0.3, rel=0.01)
    assert adm.expected_seconds(20, 1) == pytest.approx(0.51, rel=0.01)
    with pytest.raises(Overloaded):
        adm.check(20, 1)


def test_admission_off_still_bounds_the_queue():
    adm = _admission(deadline_s=0.0, max_queue=10)
    _measured(adm, 1, 100.0)
    adm.check(9, 1)
    with pytest.raises(Overloaded):
        adm.check(9, 2)


def test_the_running_batch_counts_for_what_is_left_of_it():
    adm = _admission(deadline_s=1.0, max_queue=1000)
    _measured(adm, 1, 0.1)
    assert adm.expected_seconds(2, 1) == pytest.approx(0.3)
    adm.batch_started(8, adm.clock())  # 0.8 s of work just started
    assert adm.expected_seconds(2, 1) == pytest.approx(1.1)
    adm.clock.now += 0.5
    assert adm.expected_seconds(2, 1) == pytest.approx(0.6)


def test_gaps_between_back_to_back_batches_count_as_cost():
    adm = _admission(deadline_s=1.0, max_queue=1000)
    queued_at = adm.clock()
    _measured(adm, 10, 0.05)  # 5 ms per post
    adm.clock.now += 0.05  # the worker hands results over and waits for the GIL before the next batch
    adm.batch_started(10, queued_at)  # its calls were queued long ago: the worker was busy all along
    adm.clock.now += 0.05
    adm.batch_finished(10)  # so this batch cost the queue 100 ms, not 50
    assert adm.service_time.per_post == pytest.approx((0.4 * 0.05 + 0.6 * 0.1) / 10)  # a rise: weight 0.6
    adm.clock.now += 5.0  # idle
    adm.batch_started(10, adm.clock.now - 0.01)  # a call that arrived 10 ms ago to an idle worker
    adm.clock.now += 0.05
    adm.batch_finished(10)  # costs its 60 ms, not the 5 s of idleness before it
    assert adm.service_time.per_post < 0.01


def test_a_call_that_can_no_longer_make_the_deadline_is_answered_429_not_late():
    adm = _admission(deadline_s=1.0, max_queue=1000)
    assert adm.too_late(5.0, 10) is None  # no estimate yet
    _measured(adm, 10, 0.1)  # 10 ms per post: a batch of 20 takes 0.2 s
    assert adm.too_late(0.7, 20) is None  # 0.9 s: still in time
    late = adm.too_late(0.9, 20)  # 1.1 s
    assert late is not None and late.status_code == 429 and late.headers["Retry-After"] == "1"
    assert adm.too_late(3.0, 150) is None  # the batch alone takes 1.5 s: waiting was not the problem


def test_the_batcher_drops_calls_stalled_past_the_deadline():
    b = MicroBatcher(SlowModel(0.01), max_size=100, max_wait_s=0.0, deadline_s=1.0)
    b.admission.service_time.observe(10, 0.1)  # 10 ms per post
    stalled, fresh = b._enqueue(["a", "b"]), b._enqueue(["c"])
    stalled.enqueued -= 5.0  # it has waited 5 s: the machine stalled after it was admitted
    for j in (stalled, fresh):
        j.future.set_running_or_notify_cancel()
    assert b._drop_late([stalled, fresh]) == [fresh]
    with pytest.raises(Overloaded):
        stalled.future.result(0)
    assert not fresh.future.done()


class SlowModel:
    """A fake model that takes ``per_post`` seconds per post."""

    def __init__(self, per_post: float):
        self.per_post = per_post

    def __call__(self, texts):
        time.sleep(self.per_post * len(texts))
        return "m", list(texts)


def test_batcher_refuses_fast_and_the_admitted_finish_near_the_deadline():
    b = MicroBatcher(SlowModel(0.05), max_size=4, max_wait_s=0.0, deadline_s=0.8)  # admitted up to 0.4 s
    b.start()
    try:
        b.submit(["warm"]).result(5)  # first measurement: 50 ms per post
        started = time.perf_counter()
        admitted, refused = [], 0
        for i in range(40):  # 40 posts at once: 2 s of work, 5x the deadline
            t0 = time.perf_counter()
            try:
                admitted.append((t0, b.submit([f"p{i}"])))
            except Overloaded:
                refused += 1
                assert time.perf_counter() - t0 < 0.05  # refused at once, not after waiting
        assert 3 <= len(admitted) <= 12 and refused == 40 - len(admitted)
        for t0, f in admitted:
            f.result(5)
        assert time.perf_counter() - started < 0.8  # the admitted were answered within the deadline
        assert b.queued == 0
    finally:
        b.stop()


def test_queue_count_stays_exact_when_calls_are_carried_to_the_next_batch():
    # calls of 3 posts with batches of at most 5: every second call waits for the next batch (the carry)
    b = MicroBatcher(SlowModel(0.001), max_size=5, max_wait_s=0.01, max_queue=7)
    futures = [b.submit(["a", "b", "c"]), b.submit(["d", "e", "f"])]
    assert b.queued == 6
    with pytest.raises(Overloaded):
        b.submit(["g", "h"])  # 6 + 2 > 7
    b.start()
    try:
        for f in futures:
            f.result(5)
        assert b.queued == 0  # counted once each: it used to go negative and disable the bound
        for _ in range(3):
            futures = [b.submit(["a", "b", "c"]) for _ in range(2)]
            for f in futures:
                f.result(5)
        assert b.queued == 0
    finally:
        b.stop()


def test_http_overload_is_a_fast_429_with_retry_after(tiny_model):
    """The real app with a model made slow (0.3 s per forward pass, one call per pass): 8 simultaneous calls
    against a 2 s deadline (admitted up to 1 s expected); the first few are answered, the rest refused at once."""
    app = create_app(settings(tiny_model.uri, batch_max_size=1, batch_max_wait_ms=0, queue_deadline_ms=2000))
    with TestClient(app) as c:
        batcher = app.state.predictor.batcher
        real = batcher.run_batch

        def slow(texts):
            time.sleep(0.3)
            return real(texts)

        batcher.run_batch = slow
        assert c.post("/v1/classify", json={"text": "warm up"}, headers=AUTH).status_code == 200

        def call(i):
            t0 = time.perf_counter()
            r = c.post("/v1/classify", json={"posts": [{"id": str(i), "text": "my parcel is late"}]}, headers=AUTH)
            return r, time.perf_counter() - t0

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(8)))
        ok = [t for r, t in answers if r.status_code == 200]
        shed = [(r, t) for r, t in answers if r.status_code == 429]
        assert len(ok) + len(shed) == 8, [r.text for r, _ in answers]
        assert len(ok) >= 2 and len(shed) >= 3
        for r, t in shed:
            assert r.json()["error"]["type"] == "overloaded" and int(r.headers["Retry-After"]) >= 1
            assert t < 0.3  # refused before waiting for the model
        assert max(ok) < 2.0  # the deadline
        text = c.get("/metrics").text
        assert metric_value(text, "frontline_shed_calls_total", reason="deadline") == len(shed)
        doc = c.get("/openapi.json").json()["paths"]["/v1/classify"]["post"]["responses"]["429"]
        assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(doc["headers"])
