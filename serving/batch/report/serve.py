"""``frontline report LABELLED --serve``: the report's charts, filtered by company, issue type and dates.

Why a server that re-renders rather than a JavaScript dashboard: every view is drawn by the same Python code as
the static page (``page.render`` over ``Cube.filter``), so a filtered chart can never disagree with the report;
nothing is vendored (no charting library, no CDN, no JavaScript: a plain ``GET`` form); the filter lives in the
URL (``/?company=AcmeAir&issue=billing&from=2017-10-01&to=2017-10-31``), so a view can be bookmarked or pasted
into a ticket. The labelled file is aggregated once at start-up; a request sums the cube and, when the view
has spikes, re-reads the spike days for example posts (views are cached). Python's ``http.server`` is enough
for one analyst on localhost and adds no dependency; it binds 127.0.0.1 unless told otherwise and serves
read-only pages.
"""

from __future__ import annotations

import threading
from datetime import date
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from serving.batch.report import Report
from serving.batch.report.page import Filters


class FilterError(ValueError):
    """A query parameter the view cannot use (unknown issue type, a date that is not YYYY-MM-DD, from > to)."""


def parse_filters(query: str, issue_types: tuple[str, ...] | list[str]) -> Filters:
    """Filters from a URL query (``company``, ``issue``, ``from``, ``to``; empty means all)."""
    q = {k: v[-1].strip() for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = set(q) - {"company", "issue", "from", "to"}
    if unknown:
        raise FilterError(f"unknown parameter(s) {sorted(unknown)}: use company, issue, from, to")
    issue = q.get("issue") or None
    if issue and issue not in issue_types:
        raise FilterError(f"unknown issue type {issue!r}: one of {', '.join(issue_types)}")

    def day(name: str) -> date | None:
        v = q.get(name)
        if not v:
            return None
        try:
            return date.fromisoformat(v)
        except ValueError:
            raise FilterError(f"{name}={v!r} is not a date (YYYY-MM-DD)") from None

    start, end = day("from"), day("to")
    if start and end and start > end:
        raise FilterError(f"from ({start}) is after to ({end})")
    return Filters(company=q.get("company") or None, issue=issue, start=start, end=end)


def make_server(report: Report, host: str = "127.0.0.1", port: int = 8050) -> ThreadingHTTPServer:
    """A server for ``report`` (not started: call ``serve_forever``); ``port=0`` picks a free port."""
    lock = threading.Lock()  # one render at a time: pandas over a shared cube, and the view cache

    class Handler(BaseHTTPRequestHandler):
        server_version = "frontline-report"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path not in ("/", "/index.html"):
                self._send(HTTPStatus.NOT_FOUND, "text/plain", f"not found: {url.path} (the report is at /)")
                return
            try:
                filters = parse_filters(url.query, report.cube.schema.issue_type)
            except FilterError as e:
                self._send(HTTPStatus.BAD_REQUEST, "text/plain", f"bad filter: {e}")
                return
            with lock:
                html, _, _ = report.page(filters)
            self._send(HTTPStatus.OK, "text/html", html)

        def _send(self, status: HTTPStatus, ctype: str, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", f"{ctype}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # quiet: the console shows the URL once
            pass

    return ThreadingHTTPServer((host, port), Handler)
