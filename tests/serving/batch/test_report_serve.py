"""`frontline report --serve`: the same charts filtered by company, issue type and dates, over HTTP and in
headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from serving.batch.report import Report
from serving.batch.report.serve import FilterError, make_server, parse_filters
from tests.serving.batch.report_support import (
    OUTAGE_COMPANY,
    SECRETS,
    labelled_rows,
    write_labelled,
)
from training.schema import SCHEMA

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def test_parse_filters():
    f = parse_filters("company=AcmeAir&issue=billing&from=2017-10-01&to=2017-10-31", SCHEMA.issue_type)
    assert (f.company, f.issue, f.start, f.end) == ("AcmeAir", "billing", date(2017, 10, 1), date(2017, 10, 31))
    assert not parse_filters("company=&issue=&from=&to=", SCHEMA.issue_type).active()  # the form's "all"
    for bad, msg in [("issue=weather", "unknown issue type"), ("from=31/10/2017", "not a date"),
                     ("from=2017-11-01&to=2017-10-01", "after"), ("colour=red", "unknown parameter")]:
        with pytest.raises(FilterError, match=msg):
            parse_filters(bad, SCHEMA.issue_type)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    rows, spike_day = labelled_rows()
    server = make_server(Report(write_labelled(tmp / "labelled.parquet", rows)), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", rows, spike_day, tmp
    server.shutdown()
    server.server_close()


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _posts(page):
    return int(re.search(r"<b>([\d,]+)</b><span>posts labelled", page).group(1).replace(",", ""))


def test_server_filters_the_page(served):
    base, rows, spike_day, _ = served
    status, full = _get(base)
    assert status == 200 and _posts(full) == len(rows) and '<form class="filters"' in full
    status, telco = _get(base + f"?company={OUTAGE_COMPANY}&issue=service_disruption")
    assert status == 200
    assert _posts(telco) == sum(r["company"] == OUTAGE_COMPANY and r["issue_type"] == "service_disruption"
                                for r in rows)
    assert '<option value="service_disruption" selected>' in telco and f'value="{OUTAGE_COMPANY}"' in telco
    assert spike_day.isoformat() in re.search(r'<table id="spikes">.*?</table>', telco).group(0)
    assert not any(s in telco for s in SECRETS) and '<li class="example">' in telco
    status, msg = _get(base + "?issue=weather")
    assert status == 400 and "unknown issue type" in msg
    assert _get(base + "admin")[0] == 404


def test_cli_serve_starts_and_answers(tmp_path):
    rows, _ = labelled_rows(n_days=10)
    src = write_labelled(tmp_path / "l.csv", rows)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "serving.cli", "report", str(src), "--serve", "--port", "0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://\S+/", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None else "")
        status, page = _get(url.group(0) + "?company=AcmeAir")
        assert status == 200 and _posts(page) == sum(r["company"] == "AcmeAir" for r in rows)
        assert not (tmp_path / "report.html").exists()  # --serve writes nothing
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _bars(html, chart_id):
    svg = re.search(rf'<svg id="{chart_id}".*?</svg>', html, re.DOTALL).group(0)
    return re.findall(r"<title>([^<]*)</title>", svg)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); browser test "
                                             "skipped")
def test_filters_in_headless_chromium(served):
    base, rows, spike_day, tmp = served
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", "--dump-dom"]

    def dom(query=""):
        res = subprocess.run([*cmd, base + query], check=False, capture_output=True, text=True, timeout=90)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout

    full = dom()
    view = dom("?company=AcmeAir&from=2017-10-08&to=2017-10-14")
    n = sum(r["company"] == "AcmeAir" and "2017-10-08" <= r["created_at"][:10] <= "2017-10-14" for r in rows)
    assert _posts(full) == len(rows) and _posts(view) == n
    assert len(_bars(full, "chart-companies")) == 4 and _bars(view, "chart-companies") == [f"AcmeAir: {n:,} · 100.0%"]
    assert _bars(view, "chart-urgency") != _bars(full, "chart-urgency")  # the same chart, other numbers
    assert "2017-10-08 to 2017-10-14" in view and spike_day.isoformat() not in re.search(
        r'<section><h2>Volume per day.*?</section>', view, re.DOTALL).group(0)
    # the form in the rendered DOM carries the filter, so "Apply" keeps it
    assert re.search(r'<input[^>]*name="company"[^>]*value="AcmeAir"', view)
    assert re.search(r'<input[^>]*name="from"[^>]*value="2017-10-08"', view)
