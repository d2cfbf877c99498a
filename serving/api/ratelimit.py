"""Per-API-key rate limits, so one integration cannot starve another (the ``limits`` library).

Why ``limits``: it implements the moving-window algorithm (no double burst at a window's edge) over
interchangeable storages: ``memory://`` counts per process (one replica, or limits per replica), a Redis
URI shares the counters between replicas. Only a hash of the API key is stored, never the key.

A spent limit is a 429 ``rate_limited`` with ``Retry-After`` and the ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset`` headers (of the tightest limit), which successful calls
carry too. If the storage fails (Redis unreachable) the call is let through and a warning is logged:
a broken counter must not take the service down with it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from serving.api.errors import ErrorDetail, RateLimited
from serving.api.metrics import ServiceMetrics

log = logging.getLogger("frontline.serving")

NAMESPACE = "frontline"


@dataclass(frozen=True)
class Quota:
    """Where a key stands against its tightest limit, as response headers."""

    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset_s)}


def identity(api_key: str | None, client_host: str | None) -> str:
    """The counter a call is charged to: its API key (hashed), or its address when authentication is off."""
    if api_key:
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:24]
    return f"addr:{client_host or 'unknown'}"


class KeyRateLimits:
    """``spec`` like ``"600/minute"`` or ``"20/second;600/minute"``; ``storage_uri`` like ``memory://``."""

    def __init__(self, spec: str, storage_uri: str = "memory://", metrics: ServiceMetrics | None = None):
        self.items: list[RateLimitItem] = parse_many(spec)
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        self.storage = storage_from_string(uri)  # a missing driver or a bad URI fails here, at startup
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.metrics = metrics
        self._warned = False

    async def hit(self, who: str) -> Quota | None:
        """Charge one call to ``who``; raise ``RateLimited`` when a limit is spent. None if the storage failed."""
        try:
            for item in self.items:
                if not await self.limiter.hit(item, NAMESPACE, who):
                    quota = await self._quota(item, who)
                    if self.metrics:
                        self.metrics.shed.labels("rate_limit").inc()
                    raise RateLimited(
                        f"This API key has spent its rate limit of {item}; retry after the Retry-After seconds.",
                        [ErrorDetail(field=None, problem=f"rate limit {item} spent")],
                        headers={"Retry-After": str(max(1, quota.reset_s)), **quota.headers()})
            quotas = [await self._quota(item, who) for item in self.items]
        except RateLimited:
            raise
        except Exception as exc:  # noqa: BLE001 - fail open: the counters are down, not the service
            if not self._warned:
                log.warning("rate-limit storage failed (%s: %s); calls are let through until it answers",
                            type(exc).__name__, exc)
                self._warned = True
            return None
        self._warned = False
        return min(quotas, key=lambda q: (q.remaining, -q.reset_s))

    async def _quota(self, item: RateLimitItem, who: str) -> Quota:
        stats = await self.limiter.get_window_stats(item, NAMESPACE, who)
        return Quota(item.amount, max(0, stats.remaining), max(0, math.ceil(stats.reset_time - time.time())))
