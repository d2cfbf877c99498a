"""Clients for the load tests: closed-loop (fixed concurrency) and open-loop (fixed arrival rate) drivers,
each call recorded as an :class:`Outcome`, and the shipped posts as request bodies."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import httpx

from tests.reliability.server import AUTH, ROOT


@dataclass
class Outcome:
    """One call as the client saw it: status (0 = no HTTP answer), latency, error type, headers of note."""

    started: float
    latency: float
    status: int
    error_type: str | None = None
    failure: str | None = None  # transport error or unreadable body
    retry_after: str | None = None
    version: str | None = None


def posts_from_data(n: int, start: int = 0) -> list[str]:
    """Real post texts from the shipped data (their length mix is what the service sees)."""
    texts = []
    with open(ROOT / "data" / "train.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= start:
                texts.append(json.loads(line)["text"])
            if len(texts) == n:
                break
    return texts


async def call(client: httpx.AsyncClient, body: dict) -> Outcome:
    t0 = time.perf_counter()
    try:
        r = await client.post("/v1/classify", json=body, headers=AUTH)
    except httpx.HTTPError as exc:
        return Outcome(t0, time.perf_counter() - t0, 0, failure=f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - t0
    try:
        data = r.json()
    except ValueError:
        return Outcome(t0, latency, r.status_code, failure="body is not JSON")
    if r.status_code == 200:
        return Outcome(t0, latency, 200, version=data["model"]["version"])
    return Outcome(t0, latency, r.status_code, error_type=data.get("error", {}).get("type"),
                   retry_after=r.headers.get("retry-after"))


def client_for(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=30.0,
                             limits=httpx.Limits(max_connections=1024, max_keepalive_connections=1024))


async def closed_loop(url: str, bodies, concurrency: int, seconds: float) -> tuple[list[Outcome], float]:
    """``concurrency`` clients, each sending its next call when the last is answered; (outcomes, elapsed s)."""
    outcomes: list[Outcome] = []
    async with client_for(url) as client:
        started = time.perf_counter()
        stop = started + seconds

        async def worker(w: int) -> None:
            i = 0
            while time.perf_counter() < stop:
                outcomes.append(await call(client, bodies(w * 100_000 + i)))
                i += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return outcomes, time.perf_counter() - started


async def open_loop(url: str, bodies, rate: float, seconds: float) -> tuple[list[Outcome], float]:
    """Calls sent at ``rate`` per second whatever the answers (arrivals do not wait for the server, as
    independent helpdesks do not); (outcomes, seconds it took to send them all)."""
    async with client_for(url) as client:
        started = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(call(client, bodies(i))))
        sent_in = time.perf_counter() - started
        return list(await asyncio.gather(*tasks)), sent_in


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
