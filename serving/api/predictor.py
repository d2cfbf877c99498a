"""The one shared predictor of the service: loads the tracked model once, batches requests, hot-reloads.

Why one object: the model is large and its forward pass is not thread-safe, so every request goes
through a ``MicroBatcher`` whose single worker thread gathers concurrent calls (up to
``batch_max_size`` posts or ``batch_max_wait_ms``) into one forward pass and routes each caller's slice
of the results back through its future. Batching is also what makes the service fast under load:
one pass over 32 posts costs far less than 32 passes over one.

Reload is atomic: the new model is loaded, checked against the label schema and warmed up while the
old one keeps serving; only then is the reference swapped. A batch already running keeps the model it
started with, and every answer names the model version that actually produced it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from serving.api.admission import Admission, LoopLag
from serving.api.errors import (
    InferenceFailed,
    ModelUnavailable,
    OperatingPointUnavailable,
    ReloadFailed,
)
from serving.api import shadow
from serving.api.first_load import FirstLoad
from serving.api.metrics import ServiceMetrics
from serving.api.settings import Settings
from training.schema import HEADS, SCHEMA

log = logging.getLogger("frontline.serving")

_STOP = object()


@dataclass
class _Job:
    texts: list[str]
    predicted_s: float | None = None  # the model's part of its wait, as admission control priced it
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Merge concurrent ``submit`` calls into batches run one at a time on a single worker thread.

    ``run_batch(texts) -> (meta, results)`` must return one result per text, in order; each job's future
    receives ``(meta, its own results)``. A job is never split across batches, so one request is always
    answered by one model. If ``run_batch`` raises, every job of that batch gets the exception.
    ``submit`` asks ``Admission`` first: a call that would wait past ``deadline_s`` (or overflow
    ``max_queue``) is refused with 429 before it is queued.
    """

    def __init__(self, run_batch: Callable[[list[str]], tuple[Any, list]], max_size: int = 64,
                 max_wait_s: float = 0.005, max_queue: int = 2048, metrics: ServiceMetrics | None = None,
                 deadline_s: float = 0.0):
        self.run_batch = run_batch
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.metrics = metrics
        self.admission = Admission(deadline_s, max_queue, metrics)
        self._q: queue.Queue = queue.Queue()
        self._carry: _Job | None = None
        self._queued = 0
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="frontline-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in progress, fail what is still queued with 503, and end the worker."""
        self._closed = True
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        for job in ([self._carry] if self._carry else []) + self._drain():
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(ModelUnavailable("The service is shutting down."))
        self._carry = None

    def _drain(self) -> list[_Job]:
        jobs = []
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return jobs
            if item is not _STOP:
                jobs.append(item)

    def submit(self, texts: list[str]) -> concurrent.futures.Future:
        """Queue ``texts`` for a forward pass (or raise 429 / 503); the future gets ``(meta, results)``."""
        return self._enqueue(texts).future

    def _enqueue(self, texts: list[str]) -> _Job:
        if self._closed:
            raise ModelUnavailable("The service is shutting down.")
        with self._lock:
            predicted = self.admission.check(self._queued, len(texts))  # 429 when it would wait past the deadline
            self._queued += len(texts)
            self._gauge()
        job = _Job(list(texts), predicted_s=predicted)
        self._q.put(job)
        return job

    def precheck(self) -> None:
        """Refuse at once (429) when even a one-post call would miss the deadline: before its body is validated."""
        with self._lock:
            self.admission.check(self._queued, 1)

    @property
    def queued(self) -> int:
        """Posts waiting for a forward pass (not counting the one running)."""
        return self._queued

    async def classify(self, texts: list[str]) -> tuple[Any, list]:
        """Await this call's results; cancelling the caller drops its job if it has not started."""
        started = time.perf_counter()
        job = self._enqueue(texts)
        answer = await asyncio.wrap_future(job.future)
        self.admission.call_finished(job.predicted_s, time.perf_counter() - started)
        return answer

    def _gauge(self) -> None:
        if self.metrics:
            self.metrics.queued_posts.set(self._queued)

    def _taken(self, job: _Job) -> None:
        with self._lock:
            self._queued -= len(job.texts)
            self._gauge()

    def _next_batch(self) -> tuple[list[_Job], bool]:
        # a job leaves the queue count when it joins a batch; a carried job is still waiting until then
        first = self._carry if self._carry is not None else self._q.get()
        self._carry = None
        if first is _STOP:
            return [], True
        self._taken(first)
        batch, n, stop = [first], len(first.texts), False
        deadline = time.perf_counter() + self.max_wait_s
        while n < self.max_size:
            left = deadline - time.perf_counter()
            try:
                nxt = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                stop = True
                break
            if n + len(nxt.texts) > self.max_size:
                self._carry = nxt
                break
            self._taken(nxt)
            batch.append(nxt)
            n += len(nxt.texts)
        return batch, stop

    def _loop(self) -> None:
        while True:
            batch, stop = self._next_batch()
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]  # skip callers who gave up
            live = self._drop_late(live)
            if live:
                self._run(live)
            if stop:
                return

    def _drop_late(self, jobs: list[_Job]) -> list[_Job]:
        """Answer 429 to the calls that can no longer make the deadline (the machine stalled after they
        were admitted), so that an accepted call is an answer in time; keep the rest."""
        now, posts, keep = time.perf_counter(), sum(len(j.texts) for j in jobs), []
        for j in jobs:
            late = self.admission.too_late(now - j.enqueued, posts)
            if late is None:
                keep.append(j)
            else:
                j.future.set_exception(late)
                posts -= len(j.texts)
        return keep

    def _run(self, jobs: list[_Job]) -> None:
        texts = [t for j in jobs for t in j.texts]
        started = time.perf_counter()
        if self.metrics:
            self.metrics.batch_posts.observe(len(texts))
            self.metrics.batch_requests.observe(len(jobs))
            for j in jobs:
                self.metrics.queue_wait.observe(started - j.enqueued)
        self.admission.batch_started(len(texts), min(j.enqueued for j in jobs))
        try:
            meta, results = self.run_batch(texts)
            if len(results) != len(texts):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(texts)} texts")
        except BaseException as exc:  # noqa: BLE001 - every caller must hear about it
            for j in jobs:
                j.future.set_exception(exc)
            return
        finally:
            seconds = time.perf_counter() - started
            self.admission.batch_finished(len(texts))
            if self.metrics:
                self.metrics.inference.observe(seconds)
        start = 0
        for j in jobs:
            j.future.set_result((meta, results[start : start + len(j.texts)]))
            start += len(j.texts)


class ProbabilityRows:
    """A micro-batch's probabilities (output name → array), sliceable by post so each caller gets its rows."""

    def __init__(self, probs: dict):
        self.probs = probs

    def __len__(self) -> int:
        return len(next(iter(self.probs.values())))

    def __getitem__(self, rows: slice) -> "ProbabilityRows":
        return ProbabilityRows({k: v[rows] for k, v in self.probs.items()})


def model_ref(loaded: Any) -> dict[str, str | None]:
    return {"name": loaded.name, "version": loaded.version, "alias": loaded.alias}


def _alias_ref(uri: str) -> tuple[str, str] | None:
    if uri.startswith("models:/") and "@" in uri:
        name, alias = uri.removeprefix("models:/").split("@", 1)
        return name, alias
    return None


class SharedPredictor:
    """The model being served, its micro-batcher, and how it is reloaded. Created once per app (lifespan)."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics | None = None,
                 loader: Callable[[str], Any] | None = None):
        self.settings = settings
        self.metrics = metrics or ServiceMetrics()
        self.uri = settings.model_uri
        self._loader = loader
        self._current: Any = None  # training.tracking.LoadedModel
        self.loaded_at: float | None = None
        self.load_error: str | None = None
        self.loading = False
        self._reload_lock = threading.Lock()
        self.batcher = MicroBatcher(self._run_batch, settings.batch_max_size, settings.batch_max_wait_ms / 1000,
                                    settings.max_queue_posts, self.metrics, settings.queue_deadline_ms / 1000)
        self._poller: asyncio.Task | None = None
        self.shadow = shadow.from_settings(settings, self.metrics.registry)  # None unless FRONTLINE_SHADOW_URI
        self._initial: asyncio.Task | None = None
        self._lag: asyncio.Task | None = None
        self.loop_lag = LoopLag(metrics=self.metrics)
        self.batcher.admission.loop_lag = self.loop_lag
        self.first_load = FirstLoad(self)

    # ---- state -------------------------------------------------------------------------------------
    @property
    def current(self) -> Any:
        """The loaded model (``LoadedModel``), or raise 503."""
        model = self._current
        if model is None:
            why = "the model is still loading" if self.loading else f"loading failed: {self.load_error}" \
                if self.load_error else "no model is loaded"
            raise ModelUnavailable(f"No model is available ({why}); retry when /health/ready says ready.",
                                   headers={"Retry-After": "5"})
        return model

    @property
    def ready(self) -> bool:
        return self._current is not None

    def review_thresholds(self, model: Any | None = None) -> dict[str, float]:
        """The thresholds in use: the model's tuned ones, overridden per head by the settings."""
        return {h: float(t) for h, t in self.policy(model or self.current).review_thresholds.items()}

    # ---- inference ---------------------------------------------------------------------------------
    def _run_batch(self, texts: list[str]) -> tuple[Any, "ProbabilityRows"]:
        """The worker thread's part: one forward pass for the whole micro-batch. Decisions are made per
        call afterwards (``classify``), since each call may ask for its own review operating point."""
        model = self.current  # one reference for the whole batch: a concurrent swap does not affect it
        try:
            probs = model.predictor.probabilities(texts)
        except Exception as exc:
            log.error("inference failed on a batch of %d posts: %s", len(texts), type(exc).__name__)
            raise InferenceFailed(f"The model failed on this batch ({type(exc).__name__}).") from exc
        return model, ProbabilityRows(probs)

    def policy(self, model: Any, review: Any | None = None) -> Any:
        """The policy a call is decided with: the model's, at the call's operating point if it asks for one,
        with the configured per-head thresholds on top."""
        p = model.predictor
        target = getattr(review, "target_accuracy", None)
        recall = getattr(review, "critical_recall", None)
        try:
            return p.policy_for(self.settings.review_thresholds or None, target, recall)
        except ValueError as exc:  # a model without stored operating points
            raise OperatingPointUnavailable(str(exc)) from exc

    async def classify(self, texts: list[str], review: Any | None = None) -> tuple[Any, list[dict]]:
        """Classify ``texts`` as part of a micro-batch; returns (the model that answered, results)."""
        self.current  # noqa: B018 - fail fast with 503 rather than queueing for nothing
        model, rows = await self.batcher.classify(texts)
        results = model.predictor.results(rows.probs, policy=self.policy(model, review))
        m = self.metrics
        m.posts.inc(len(results))
        for r in results:
            m.predictions.labels("urgency", r["urgency"]["label"]).inc()
            m.predictions.labels("issue_type", r["issue_type"]["label"]).inc()
            for c in r["prior_channels"]["channels"] or ["none"]:
                m.predictions.labels("prior_channels", c).inc()
            if r["needs_review"]:
                m.needs_review.inc()
            for reason in r["review_reasons"]:
                m.review_reasons.labels(reason).inc()
        if self.shadow is not None:  # a sample for the challenger, queued without waiting (serving.api.shadow)
            self.shadow.offer(texts, model.version, results)
        return model, results

    # ---- loading -----------------------------------------------------------------------------------
    def _load(self, uri: str) -> Any:
        if self._loader is not None:
            return self._loader(uri)
        from training.tracking import load

        return load(uri, runtime=self.settings.runtime, num_threads=self.settings.num_threads,
                    batch_size=self.settings.forward_batch_size, shared_cpu=True)

    def resolve_alias(self, uri: str | None = None) -> str | None:
        """The version an alias URI points at now (None for other URIs)."""
        ref = _alias_ref(uri or self.uri)
        if ref is None:
            return None
        from mlflow import MlflowClient

        from training import tracking

        tracking.configure(read_only=True)
        return str(MlflowClient().get_model_version_by_alias(*ref).version)

    def load(self, uri: str | None = None, force: bool = True) -> dict[str, Any]:
        """Load ``uri`` (default: the configured one), validate, warm up, then swap. Blocking; thread-safe.

        With ``force=False`` an alias that still points at the served version is a no-op.
        """
        uri = uri or self.uri
        with self._reload_lock:
            previous = self._current
            started = time.perf_counter()
            if not force and previous is not None and uri == self.uri and previous.version is not None:
                try:
                    if self.resolve_alias(uri) == previous.version:
                        return {"changed": False, "previous": model_ref(previous), "current": model_ref(previous),
                                "seconds": round(time.perf_counter() - started, 3)}
                except Exception as exc:  # noqa: BLE001 - resolution problems surface in the load below
                    log.debug("could not resolve %s before reloading: %s", uri, exc)
            self.loading = True
            try:
                loaded = self._load(uri)
                self._check_schema(loaded)
                loaded.predictor.classify(["warm-up"], None)  # first pass allocates; do it before traffic
            except Exception as exc:
                self.load_error = f"{type(exc).__name__}: {exc}"
                self.metrics.reloads.labels("failure").inc()
                log.error("model load from %s failed: %s", uri, self.load_error)
                raise ReloadFailed(f"Could not load {uri}: {self.load_error}"
                                   + ("; the previous model keeps serving." if previous else "")) from exc
            finally:
                self.loading = False
            self._current, self.uri, self.load_error, self.loaded_at = loaded, uri, None, time.time()
            self.metrics.set_model(loaded.name, loaded.version, loaded.alias, loaded.uri)
            self.metrics.reloads.labels("success").inc()
            seconds = round(time.perf_counter() - started, 3)
            log.info("serving model %s version %s (alias %s) from %s, loaded in %.2fs", loaded.name, loaded.version,
                     loaded.alias, loaded.uri, seconds)
            changed = previous is None or (previous.uri, previous.version) != (loaded.uri, loaded.version)
            return {"changed": changed, "previous": model_ref(previous) if previous else None,
                    "current": model_ref(loaded), "seconds": seconds}

    @staticmethod
    def _check_schema(loaded: Any) -> None:
        got = {h: list(loaded.predictor.schema.labels(h)) for h in HEADS}
        want = {h: list(SCHEMA.labels(h)) for h in HEADS}
        if got != want:
            raise ValueError(f"the model's labels {got} differ from the service's schema {want}")

    async def reload(self, uri: str | None = None, force: bool = True) -> dict[str, Any]:
        return await asyncio.to_thread(self.load, uri, force)

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the batcher, load the model with retries (``FirstLoad``), start alias polling if configured.

        With ``load_blocking`` the app waits for the first attempt only: if it fails, the app starts
        anyway (live, not ready, saying why) and the retries go on in the background."""
        self.batcher.start()
        if self.shadow is not None:
            self.shadow.start()
        self._lag = asyncio.create_task(self.loop_lag.run())
        self.loading = True
        self._initial = asyncio.create_task(self.first_load.run())
        if self.settings.load_blocking:
            await self.first_load.first_attempt_done.wait()
        if self.settings.reload_poll_seconds > 0:
            self._poller = asyncio.create_task(self._poll(self.settings.reload_poll_seconds))

    async def _poll(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.reload(force=self._current is None)
            except Exception as exc:  # noqa: BLE001 - the poller must survive a bad version
                log.warning("alias poll: %s", exc)

    async def stop(self) -> None:
        for task in (self._poller, self._initial, self._lag):
            if task is not None:
                task.cancel()
        await asyncio.to_thread(self.batcher.stop)
        if self.shadow is not None:
            await asyncio.to_thread(self.shadow.stop)
