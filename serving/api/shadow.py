"""A challenger in shadow: a second model scores a sample of live posts off the request path.

Why: a new version's cross-validated score says how it does on the labelled data; shadow scoring says how
often it would have answered live traffic differently from the champion, before it answers anyone. The
service keeps answering with the champion only: after an answer is computed, a sample of its posts
(``shadow_sample``) is put on a bounded queue (``shadow_queue_posts``) with the champion's labels; a
background thread scores them with the challenger and counts per-head agreement. The request never
waits: a full queue drops the posts and counts them, and a challenger that fails to load or to score
changes nothing but the shadow status.

Where the counts go:
- ``/metrics``: ``frontline_shadow_agreement_total{head,agree}``, ``frontline_shadow_posts_total``,
  ``frontline_shadow_dropped_total{reason}``, ``frontline_shadow_queued_posts``;
- ``GET /v1/shadow``: the same counts, agreement rates, the two versions and the status;
- the registry: every ``shadow_flush_seconds`` the counts are written as ``frontline.shadow.*`` tags on the
  challenger's model version (``training.tracking.write_shadow_stats``), where ``frontline promote
  --min-shadow-posts N`` reads them. A restarted service continues from the tags when they were counted
  against the same champion; counts against another champion start again from zero. Several replicas
  each write their own totals (the last write wins), so the stored sample is never larger than the real one.

Heads compared: ``urgency`` and ``issue_type`` (same label), ``prior_channels`` (same channel list) and
``tried_other_channel`` (same decision).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, Field

log = logging.getLogger("frontline.serving.shadow")

HEADS_COMPARED = ("urgency", "issue_type", "prior_channels", "tried_other_channel")
_STOP = object()


def decisions(result: dict) -> dict[str, Any]:
    """The part of a result that shadow compares, per head."""
    pc = result["prior_channels"]
    return {"urgency": result["urgency"]["label"], "issue_type": result["issue_type"]["label"],
            "prior_channels": tuple(pc["channels"]), "tried_other_channel": bool(pc["tried_other_channel"])}


@dataclass
class _Item:
    text: str
    champion_version: str | None
    champion: dict[str, Any]


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry):
        r = registry
        self.agreement = Counter("frontline_shadow_agreement", "Posts scored in shadow, by head and whether the "
                                 "challenger agreed with the champion.", ["head", "agree"], registry=r)
        self.posts = Counter("frontline_shadow_posts", "Posts scored by the challenger in shadow.", registry=r)
        self.dropped = Counter("frontline_shadow_dropped", "Sampled posts not scored in shadow, by reason "
                               "(queue_full, challenger_unavailable, failed).", ["reason"], registry=r)
        self.queued = Gauge("frontline_shadow_queued_posts", "Posts waiting for the challenger.", registry=r)
        self.info = Gauge("frontline_shadow_info", "The challenger scored in shadow (value 1).",
                          ["uri", "version"], registry=r)


class ShadowScorer:
    """Scores a sample of the champion's posts with a challenger, on its own thread, behind a bounded queue."""

    def __init__(self, uri: str, sample: float, max_queue: int, registry: CollectorRegistry,
                 loader: Callable[[str], Any], flush_seconds: float = 30.0, batch_size: int = 32,
                 rng: random.Random | None = None):
        self.uri, self.sample, self.flush_seconds, self.batch_size = uri, sample, flush_seconds, batch_size
        self._loader = loader
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self._rng = rng or random.Random()
        self.metrics = ShadowMetrics(registry)
        self.model: Any = None
        self.status = "starting"
        self.error: str | None = None
        self._lock = threading.Lock()
        self._stats = self._empty(None)
        self._dropped: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._last_flush = time.monotonic()
        self._dirty = False

    @staticmethod
    def _empty(champion_version: str | None) -> dict:
        return {"posts": 0, "champion_version": champion_version, "agree": {h: 0 for h in HEADS_COMPARED}}

    # ---- the request side: never blocks ---------------------------------------------------------------
    def offer(self, texts: list[str], champion_version: str | None, results: list[dict]) -> int:
        """Queue a sample of these answered posts; returns how many were queued. Never blocks or raises."""
        queued = 0
        for text, result in zip(texts, results):
            if self.sample < 1.0 and self._rng.random() >= self.sample:
                continue
            if self.status == "failed":
                self._drop("challenger_unavailable")
                continue
            try:
                self._q.put_nowait(_Item(text, champion_version, decisions(result)))
                queued += 1
            except queue.Full:
                self._drop("queue_full")
        self.metrics.queued.set(self._q.qsize())
        return queued

    def _drop(self, reason: str, n: int = 1) -> None:
        self.metrics.dropped.labels(reason).inc(n)
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n

    # ---- the worker ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="frontline-shadow", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            try:
                self._q.put(_STOP, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            self.model = self._loader(self.uri)
            self.status, self.error = "scoring", None
            self.metrics.info.labels(self.uri, self.model.version or "").set(1)
            log.info("shadow: scoring a %.0f%% sample with %s (version %s)", self.sample * 100, self.uri,
                     self.model.version)
        except Exception as exc:  # noqa: BLE001 - the champion keeps serving whatever the challenger does
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("shadow: could not load %s: %s; sampled posts are dropped", self.uri, self.error)
        while True:
            items, stop = self._take()
            if items:
                self._score(items)
            self._maybe_flush(force=stop)
            if stop:
                return

    def _take(self) -> tuple[list[_Item], bool]:
        try:
            first = self._q.get(timeout=min(self.flush_seconds, 1.0))
        except queue.Empty:
            return [], False
        if first is _STOP:
            return [], True
        items, stop = [first], False
        while len(items) < self.batch_size:
            try:
                nxt = self._q.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                stop = True
                break
            items.append(nxt)
        self.metrics.queued.set(self._q.qsize())
        return items, stop

    def _score(self, items: list[_Item]) -> None:
        if self.model is None:
            self._drop("challenger_unavailable", len(items))
            return
        try:
            results = self.model.predictor.classify([i.text for i in items])
        except Exception as exc:  # noqa: BLE001
            log.warning("shadow: the challenger failed on %d posts: %s", len(items), type(exc).__name__)
            self._drop("failed", len(items))
            return
        with self._lock:
            for item, result in zip(items, results):
                if item.champion_version != self._stats["champion_version"]:
                    self._stats = self._restored(item.champion_version)  # a new champion: a new sample
                got = decisions(result)
                self._stats["posts"] += 1
                for head in HEADS_COMPARED:
                    agree = got[head] == item.champion[head]
                    self._stats["agree"][head] += agree
                    self.metrics.agreement.labels(head, "true" if agree else "false").inc()
            self._dirty = True
        self.metrics.posts.inc(len(items))

    # ---- the registry ------------------------------------------------------------------------------------
    def _registered(self) -> bool:
        return self.model is not None and self.model.version is not None and self.model.name is not None

    def _restored(self, champion_version: str | None) -> dict:
        """Counts to continue from: the tags on the challenger's version if counted against this champion."""
        fresh = self._empty(champion_version)
        if not self._registered():
            return fresh
        try:
            from training.tracking import shadow_stats

            stored = shadow_stats(self.model.version)
        except Exception as exc:  # noqa: BLE001
            log.warning("shadow: could not read stored counts: %s", exc)
            return fresh
        if stored["posts"] and stored["champion_version"] == champion_version:
            fresh["posts"] = stored["posts"]
            fresh["agree"].update({h: stored["agree"].get(h, 0) for h in HEADS_COMPARED})
        return fresh

    def _maybe_flush(self, force: bool = False) -> None:
        if not self._dirty or not self._registered():
            return
        if not force and time.monotonic() - self._last_flush < self.flush_seconds:
            return
        self._last_flush = time.monotonic()
        stats = self.stats()
        try:
            from training.tracking import write_shadow_stats

            write_shadow_stats(self.model.version, {**stats, "updated_at": datetime.now(UTC).isoformat()})
            self._dirty = False
        except Exception as exc:  # noqa: BLE001 - e.g. a read-only registry: the counts stay on /v1/shadow
            log.warning("shadow: could not write counts to the registry: %s", exc)

    def flush(self) -> None:
        """Write the counts now (tests; the worker does it every ``flush_seconds``)."""
        self._maybe_flush(force=True)

    # ---- reporting -------------------------------------------------------------------------------------
    def stats(self) -> dict:
        with self._lock:
            return {"posts": self._stats["posts"], "champion_version": self._stats["champion_version"],
                    "agree": dict(self._stats["agree"])}

    def report(self) -> dict:
        stats = self.stats()
        n = stats["posts"]
        with self._lock:
            dropped = dict(self._dropped)
        return {"enabled": True, "uri": self.uri, "version": getattr(self.model, "version", None),
                "status": self.status, "error": self.error, "sample": self.sample,
                "champion_version": stats["champion_version"], "posts": n, "agree": stats["agree"],
                "agreement": {h: (a / n if n else None) for h, a in stats["agree"].items()},
                "dropped": dropped, "queued": self._q.qsize()}


def from_settings(settings: Any, registry: CollectorRegistry, loader: Callable[[str], Any] | None = None) -> ShadowScorer | None:
    """The service's shadow scorer, or None when ``FRONTLINE_SHADOW_URI`` is not set."""
    if not settings.shadow_uri:
        return None

    def load(uri: str) -> Any:
        from training.tracking import load as load_model

        return load_model(uri, runtime=settings.runtime, num_threads=settings.shadow_num_threads,
                          batch_size=settings.forward_batch_size, shared_cpu=True)

    return ShadowScorer(settings.shadow_uri, settings.shadow_sample, settings.shadow_queue_posts, registry,
                        loader or load, settings.shadow_flush_seconds)


# ---- GET /v1/shadow ---------------------------------------------------------------------------------------
class ShadowReport(BaseModel):
    enabled: bool = Field(..., description="False when FRONTLINE_SHADOW_URI is not set (the other fields are then empty).")
    uri: str | None = None
    version: str | None = Field(None, description="The challenger's registered version.")
    status: str | None = Field(None, description="`starting`, `scoring` or `failed` (see `error`).")
    error: str | None = None
    sample: float | None = Field(None, description="Share of classified posts sent to the challenger.")
    champion_version: str | None = Field(None, description="The champion version the counts were compared against.")
    posts: int = Field(0, description="Posts scored by both models.")
    agree: dict[str, int] = Field(default_factory=dict, description="Per head, posts on which both models agreed.")
    agreement: dict[str, float | None] = Field(default_factory=dict, description="Per head, agree / posts.")
    dropped: dict[str, int] = Field(default_factory=dict, description="Sampled posts not scored, by reason.")
    queued: int = 0


def router() -> APIRouter:
    """The ``GET /v1/shadow`` route (built on call: ``serving.api.deps`` imports the predictor, which imports this)."""
    from serving.api.deps import require_api_key
    from serving.api.errors import responses

    r = APIRouter(prefix="/v1", tags=["model"])

    @r.get("/shadow", response_model=ShadowReport, summary="The challenger scored in shadow",
           dependencies=[Depends(require_api_key)], responses=responses(401))
    async def shadow(request: Request) -> ShadowReport:
        scorer = getattr(request.app.state.predictor, "shadow", None)
        return ShadowReport(**scorer.report()) if scorer is not None else ShadowReport(enabled=False)

    return r
