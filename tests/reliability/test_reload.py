"""Hot reload under overload: the champion alias moves every few seconds while calls arrive at twice the
measured capacity, and no call fails.

A call "fails" when it gets anything but 200 or 429 (shed by admission control, which is the overload
doing its job): no 5xx, no 503 (the old model serves until the new one is swapped in), no dropped
connection. Every reload answers 200 and swaps; answers name the version that produced them, and both
versions answer in turn.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.reliability.load import closed_loop, open_loop, posts_from_data
from tests.reliability.server import ADMIN, live_server

POSTS_PER_CALL = 64  # the model is the bottleneck, not the HTTP layer (see test_load.py)
SECONDS = 16
RELOAD_EVERY_S = 2.5
TEXTS = posts_from_data(4096, start=4096)


def body(i: int) -> dict:
    start = (i * POSTS_PER_CALL) % (len(TEXTS) - POSTS_PER_CALL)
    return {"posts": [{"id": f"{i}-{j}", "text": t} for j, t in enumerate(TEXTS[start:start + POSTS_PER_CALL])]}


@pytest.fixture
def two_versions(tiny_model):
    """A second registered version of the tiny model (same artifacts); the champion alias is restored after."""
    from mlflow import MlflowClient

    from training import tracking

    client = MlflowClient()
    first = str(tiny_model.summary["version"])
    mv = client.get_model_version(tracking.MODEL_NAME, first)
    second = str(client.create_model_version(tracking.MODEL_NAME, mv.source, run_id=mv.run_id).version)
    client.set_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION, first)
    yield first, second
    client.set_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION, first)


async def reload_every(url: str, versions: tuple[str, str], every: float, seconds: float) -> list[dict]:
    """Move the champion alias to the other version and ask the server to reload, every ``every`` seconds
    (at fixed times: a slow reload delays the next one, it does not cancel it)."""
    from mlflow import MlflowClient

    from training import tracking

    client, answers, start = MlflowClient(), [], time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for n in range(1, int(seconds / every)):
            await asyncio.sleep(max(0.0, start + n * every - time.perf_counter()))
            target = versions[n % 2]
            await asyncio.to_thread(client.set_registered_model_alias, tracking.MODEL_NAME, tracking.CHAMPION, target)
            t0 = time.perf_counter()
            r = await http.post("/v1/admin/reload", headers=ADMIN)
            answers.append({"target": target, "status": r.status_code, "body": r.json(),
                            "seconds": time.perf_counter() - t0, "at": t0})
    return answers


def test_hot_reloads_under_twice_capacity_fail_no_call(tiny_model, two_versions, tmp_path):
    first, second = two_versions
    with live_server(tiny_model, tmp_path / "server", num_threads=1, max_posts=POSTS_PER_CALL) as server:
        asyncio.run(closed_loop(server.url, body, concurrency=3, seconds=2))  # warm up
        measured, elapsed = asyncio.run(closed_loop(server.url, body, concurrency=4, seconds=4))
        capacity = sum(o.status == 200 for o in measured) / elapsed

        async def overload_with_reloads():
            return await asyncio.gather(open_loop(server.url, body, rate=2 * capacity, seconds=SECONDS),
                                        reload_every(server.url, (first, second), RELOAD_EVERY_S, SECONDS))

        (outcomes, _), reloads = asyncio.run(overload_with_reloads())
        final = httpx.get(f"{server.url}/v1/model", headers=ADMIN).json()["version"]

    failed = [o for o in outcomes if o.status not in (200, 429) or o.failure]
    ok = [o for o in outcomes if o.status == 200]
    report = (f"capacity {capacity:.1f} calls/s, offered {2 * capacity:.1f}/s for {SECONDS} s: {len(outcomes)} calls, "
              f"{len(ok)} answered, {sum(o.status == 429 for o in outcomes)} shed, {len(failed)} failed; "
              f"{len(reloads)} reloads taking {[round(r['seconds'], 1) for r in reloads]} s")
    print(report)
    assert not failed, f"{failed[:3]}; {report}"
    assert len(reloads) == int(SECONDS / RELOAD_EVERY_S) - 1 >= 5, report
    for r in reloads:
        assert r["status"] == 200, r
        assert r["body"]["changed"] is True and r["body"]["current"]["version"] == r["target"], r
    assert final == reloads[-1]["target"]
    # answers came from both versions, and after each swap (plus the time for calls in flight to drain) from
    # the new one only
    assert {o.version for o in ok} == {first, second}, report
    for r, nxt in zip(reloads, reloads[1:] + [None]):
        swapped = r["at"] + r["seconds"] + 1.0  # the calls queued before the swap were answered by the old model
        window = [o for o in ok if o.started > swapped and (nxt is None or o.started + o.latency < nxt["at"])]
        assert all(o.version == r["target"] for o in window), (r, [o.version for o in window])
