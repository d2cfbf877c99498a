"""Admission control: answer fast or refuse fast, never make a caller wait past the deadline.

Why: under overload a queue in front of the model only turns a 40 ms answer into a 5 s one for
everybody (64 clients on 2 cores measured p50 3.0 s, none refused). A helpdesk calling inline would
rather get a 429 at once and retry or fall back. So every call is priced before it is queued: the
posts already waiting ahead of it plus its own, times a moving estimate of the model's seconds per
post, plus what is left of the batch running now. If that expected time to an answer exceeds
``queue_deadline_ms``, the call is refused with 429 ``overloaded`` and a ``Retry-After`` of about
the time the queue needs to drain below the deadline.

The estimate is a ratio of two exponentially weighted sums (seconds and posts of recent forward passes),
so big batches weigh in by their size: the cost per post under load, not that of lone posts. A call that
finds nothing queued ahead of it is always admitted: refusing it could not make it faster, and it keeps
the estimate fresh after a slow spell.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable

from serving.api.errors import ErrorDetail, Overloaded
from serving.api.metrics import ServiceMetrics

# weights of the newest forward pass (and of the newest call) in the moving estimates: quick to rise, so a
# surge shows within a batch or two (it slows the model too), slower to fall, so one quick batch does not
# open the gates
RISING, FALLING = 0.6, 0.2


def _smooth(current: float, new: float) -> float:
    a = RISING if new > current else FALLING
    return (1 - a) * current + a * new


class ServiceTime:
    """Moving estimate of the model's seconds per post, weighted by batch size. Thread-safe."""

    def __init__(self):
        self._seconds = 0.0
        self._posts = 0.0
        self._lock = threading.Lock()

    def observe(self, posts: int, seconds: float) -> None:
        if posts <= 0:
            return
        with self._lock:
            if self._posts == 0.0:
                self._seconds, self._posts = seconds, float(posts)
            else:
                a = RISING if seconds / posts > self._seconds / self._posts else FALLING
                self._seconds = (1 - a) * self._seconds + a * seconds
                self._posts = (1 - a) * self._posts + a * posts

    @property
    def per_post(self) -> float | None:
        """Seconds per post, or None before the first forward pass."""
        with self._lock:
            return self._seconds / self._posts if self._posts else None


class LoopLag:
    """How late the event loop runs a timer that is due: the wait each step of every call pays on top.

    Why: a call's time is not only the model's. When the event loop itself falls behind (many calls
    parsing and serialising, the batcher's thread holding the GIL), calls wait before they even reach
    the queue, and a queue that looks short lies. The lag is sampled every ``interval_s`` and smoothed.
    """

    def __init__(self, interval_s: float = 0.02, smoothing: float = 0.3, metrics: ServiceMetrics | None = None):
        self.interval_s, self.smoothing, self.metrics = interval_s, smoothing, metrics
        self.seconds = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, loop.time() - due)
            self.seconds = (1 - self.smoothing) * self.seconds + self.smoothing * lag
            if self.metrics:
                self.metrics.loop_lag.set(self.seconds)


class Admission:
    """The admit-or-refuse rule of the micro-batcher (which holds its lock while asking).

    ``max_queue`` bounds the posts waiting (a hard cap, whatever the estimate); ``deadline_s`` (0 = off)
    bounds the time to an answer. A call's expected time is the model's part (what is left of the
    running batch, then the posts ahead and its own at the estimated seconds per post), plus the
    measured overhead around it (how much longer admitted calls took than their model part predicted:
    waking up on the event loop, deciding, the estimate's own bias) and the event loop's lag. Calls are
    admitted while that stays under ``HEADROOM`` of the deadline, so that the error of an estimate
    does not push the slowest accepted calls past it. If the machine stalls after a call was admitted, the
    call is answered 429 when its batch is formed rather than late (``too_late``). Refusals raise
    ``Overloaded`` and count in ``frontline_shed_calls_total{reason}``.
    """

    HEADROOM = 0.5  # a sudden surge slows the model too: measured up to 2x before the estimates catch up

    def __init__(self, deadline_s: float, max_queue: int, metrics: ServiceMetrics | None = None,
                 loop_lag: LoopLag | None = None, clock: Callable[[], float] = time.perf_counter):
        self.deadline_s = deadline_s
        self.max_queue = max_queue
        self.metrics = metrics
        self.loop_lag = loop_lag
        self.clock = clock  # the batcher's clock (``_Job.enqueued``); tests pass a fake one
        self.service_time = ServiceTime()
        self.overhead_s = 0.0
        self._running: tuple[int, float] | None = None  # (posts, perf_counter at start) of the batch running now
        self._cost_from = 0.0
        self._last_finish: float | None = None

    # ---- what the batcher tells it -----------------------------------------------------------------
    def batch_started(self, posts: int, first_enqueued: float) -> None:
        now = self.clock()
        # the batch's cost to the queue runs from when the worker was free for it: the previous batch's end
        # when it was busy back to back (so the gaps between passes count: handing results over, waiting
        # for the GIL), else from when its first call arrived
        free = max(self._last_finish, first_enqueued) if self._last_finish is not None else now
        self._running = (posts, now)
        self._cost_from = min(free, now)

    def batch_finished(self, posts: int) -> None:
        now = self.clock()
        self._running = None
        self.service_time.observe(posts, now - self._cost_from)
        self._last_finish = now
        if self.metrics and self.service_time.per_post is not None:
            self.metrics.seconds_per_post.set(self.service_time.per_post)

    def call_finished(self, predicted_s: float | None, seconds: float) -> None:
        """An admitted call got its results ``seconds`` after it was queued; its model part was ``predicted_s``."""
        if predicted_s is not None:
            self.overhead_s = _smooth(self.overhead_s, max(0.0, seconds - predicted_s))
            if self.metrics:
                self.metrics.call_overhead.set(self.overhead_s)

    # ---- the rule ----------------------------------------------------------------------------------
    def model_seconds(self, queued: int, posts: int) -> float | None:
        """The model's part of the time until a call of ``posts`` posts, behind ``queued`` posts, is answered."""
        per_post = self.service_time.per_post
        if per_post is None:
            return None
        running = self._running
        left = 0.0
        if running is not None:
            left = max(0.0, running[0] * per_post - (self.clock() - running[1]))
        return left + (queued + posts) * per_post

    def expected_seconds(self, queued: int, posts: int) -> float | None:
        """The whole expected time to an answer: the model's part, the overhead around it, the loop's lag."""
        model = self.model_seconds(queued, posts)
        if model is None:
            return None
        return model + self.overhead_s + (self.loop_lag.seconds if self.loop_lag else 0.0)

    def check(self, queued: int, posts: int) -> float | None:
        """Raise ``Overloaded`` (429) if a call of ``posts`` posts should not join ``queued`` waiting posts;
        else return its predicted model part (for ``call_finished``)."""
        predicted = self.model_seconds(queued, posts)
        if not queued:
            return predicted  # nothing ahead of it: refusing cannot make it faster
        if queued + posts > self.max_queue:
            self._refuse("queue_full", f"{queued} posts are already waiting for the model (the limit is "
                         f"{self.max_queue}); retry shortly.", f"{queued} posts queued ahead, at most {self.max_queue}",
                         retry_after=1.0)
        if self.deadline_s <= 0:
            return predicted
        expected, budget = self.expected_seconds(queued, posts), self.deadline_s * self.HEADROOM
        if expected is not None and expected > budget:
            self._refuse("deadline", f"The service is overloaded: this call would wait about {expected * 1000:.0f} ms "
                         f"for an answer, too close to the {self.deadline_s * 1000:.0f} ms deadline; retry after the "
                         "Retry-After seconds.", f"expected {expected * 1000:.0f} ms, admitted up to "
                         f"{budget * 1000:.0f} ms of the {self.deadline_s * 1000:.0f} ms deadline "
                         f"({queued} posts queued ahead)", retry_after=expected - budget)
        return predicted

    def too_late(self, waited_s: float, batch_posts: int) -> Overloaded | None:
        """For a call about to run in a batch of ``batch_posts`` posts after waiting ``waited_s``: the 429 to
        answer instead when it can no longer make the deadline (a stall after it was admitted), else None.

        Never when the batch alone takes longer than the deadline: then waiting was not the problem, and
        dropping could starve every call."""
        per_post = self.service_time.per_post
        if self.deadline_s <= 0 or per_post is None:
            return None
        batch = batch_posts * per_post
        if batch >= self.deadline_s or waited_s + batch <= self.deadline_s:
            return None
        if self.metrics:
            self.metrics.shed.labels("expired").inc()
        return Overloaded(f"The service is overloaded: this call waited {waited_s * 1000:.0f} ms and could not be "
                          f"answered within the {self.deadline_s * 1000:.0f} ms deadline; retry after the Retry-After "
                          "seconds.", [ErrorDetail(field=None, problem=f"waited {waited_s * 1000:.0f} ms in the queue")],
                          headers={"Retry-After": "1"})

    def _refuse(self, reason: str, message: str, problem: str, retry_after: float) -> None:
        if self.metrics:
            self.metrics.shed.labels(reason).inc()
        raise Overloaded(message, [ErrorDetail(field=None, problem=problem)],
                         headers={"Retry-After": str(max(1, math.ceil(retry_after)))})
