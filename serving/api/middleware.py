"""Request observation middleware: request id, access log (never the body), Prometheus counters, body cap."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api import errors
from serving.api.metrics import ServiceMetrics

log = logging.getLogger("frontline.serving")


class ObserveRequests:
    """Pure ASGI middleware: request id, access log line (never the body), Prometheus counters and latency.

    Routes are labelled by their template (``/v1/classify``), unknown paths as ``unmatched``, so metric
    cardinality stays bounded.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int | None = None):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    def _limited(self, receive: Receive) -> Receive:
        """Count body bytes as they arrive (chunked bodies have no Content-Length) and stop at the cap."""
        if self.max_body_bytes is None:
            return receive
        limit, received = self.max_body_bytes, 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, f"more than {limit} bytes")
            return message

        return limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        if not rid or len(rid) > 64 or not all(33 <= ord(c) < 127 for c in rid):  # echo only sane ids
            rid = uuid.uuid4().hex
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), b"0")
            if self.max_body_bytes is not None and length.isdigit() and int(length) > self.max_body_bytes:
                # answered here, typed, before anything reads the body
                response = errors.error_json(413, "payload_too_large", f"Request body too large: {int(length)} bytes, "
                                             f"the limit is {self.max_body_bytes}.")
                await response(scope, receive, send_wrapper)
                return
            await self.app(scope, self._limited(receive), send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            quiet = route.startswith("/health") or route == "/metrics"  # probes and scrapes: every few seconds
            log.log(logging.DEBUG if quiet else logging.INFO, "%s %s -> %d in %.1f ms [%s]", method, route, status,
                    elapsed * 1000, rid)
