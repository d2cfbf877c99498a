"""The first model load, retried with exponential backoff until it works (tenacity).

Why: a replica often starts before its model store answers (a tracking server still starting, a volume
not mounted yet, a network blip). One failed attempt used to leave the pod not-ready for ever; now the
load is retried (``load_retry_initial_s`` doubling up to ``load_retry_max_delay_s``, with jitter so a
fleet does not retry in step; ``load_retry_attempts`` = 0 retries for ever), and ``/health/ready``
says meanwhile why it is not ready: the reason, the attempts made and when the next one comes.
A reload (admin route or alias poller) that succeeds in between ends the retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential_jitter,
)

from serving.api.errors import ReloadFailed

if TYPE_CHECKING:
    from serving.api.predictor import SharedPredictor

log = logging.getLogger("frontline.serving")

MAX_REASON_CHARS = 300


class FirstLoad:
    """Runs the first load of ``predictor`` with retries and remembers where it stands."""

    def __init__(self, predictor: "SharedPredictor"):
        self.predictor = predictor
        s = predictor.settings
        self.max_attempts = s.load_retry_attempts
        self.initial_s, self.max_delay_s = s.load_retry_initial_s, s.load_retry_max_delay_s
        self.attempts = 0
        self.next_retry_at: float | None = None  # time.time() of the next attempt while waiting for it
        self.gave_up = False
        self.first_attempt_done = asyncio.Event()

    def _before_sleep(self, state: RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action else 0.0
        self.next_retry_at = time.time() + delay
        log.warning("model load attempt %d failed (%s); next attempt in %.1f s", state.attempt_number,
                    self.predictor.load_error, delay)

    async def run(self) -> None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts) if self.max_attempts else stop_never,
            wait=wait_exponential_jitter(initial=self.initial_s, max=self.max_delay_s, jitter=self.initial_s),
            retry=retry_if_exception_type(ReloadFailed), before_sleep=self._before_sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    if self.predictor.ready:  # a reload got there first
                        break
                    self.attempts = attempt.retry_state.attempt_number
                    self.next_retry_at = None
                    try:
                        await self.predictor.reload()
                    finally:
                        self.first_attempt_done.set()
        except ReloadFailed:
            self.gave_up = True
            log.error("model load failed %d times; giving up (a reload can still load it): %s", self.attempts,
                      self.predictor.load_error)
        finally:
            self.next_retry_at = None
            self.first_attempt_done.set()

    def readiness(self) -> dict[str, Any]:
        """``status``, ``reason``, ``attempts`` and ``next_retry_in_s`` for ``/health/ready`` while not ready."""
        p = self.predictor
        error = p.load_error[:MAX_REASON_CHARS] if p.load_error else None
        if self.gave_up and not p.loading:
            status = "failed"
        elif error and self.next_retry_at is not None:
            status = "retrying"
        else:
            status = "loading"
        reason = f"load_failed: {error}" if error else "loading"
        wait = None if self.next_retry_at is None else round(max(0.0, self.next_retry_at - time.time()), 1)
        return {"status": status, "reason": reason, "error": error, "attempts": self.attempts, "next_retry_in_s": wait}
