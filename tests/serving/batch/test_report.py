"""`frontline report`: spike detection (pure function), aggregation, the self-contained page, headless Chromium."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from datetime import date, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.batch.labelling import LabelOptions, run_label
from serving.batch.report import ReportOptions, detect_spikes, parse_days, write_report
from tests.serving.batch.label_support import sample_posts, write_rows
from tests.serving.batch.report_support import (
    OUTAGE_COMPANY,
    SECRETS,
    labelled_rows,
    write_labelled,
)

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHART_IDS = ["chart-urgency", "chart-issue", "chart-urgency-issue", "chart-channels", "chart-channels-by-issue",
             "chart-companies", "chart-channels-by-company", "chart-volume", "chart-issue-daily",
             "chart-company-daily"]


# --------------------------------------------------------------------------------------------- spikes


def _days(n, start=date(2017, 10, 1)):
    return [start + timedelta(days=i) for i in range(n)]


def test_planted_spike_is_found_with_day_and_factor():
    rng = random.Random(3)
    days = _days(30)
    billing = {d: 8 + rng.randint(-2, 2) for d in days}
    outage = {d: 5 + rng.randint(-1, 1) for d in days}
    outage[days[20]] = 60  # the outage
    spikes = detect_spikes({"billing": billing, "service_disruption": outage}, window=7, factor=3, min_count=10)
    assert [(s.series, s.day) for s in spikes] == [("service_disruption", days[20])]
    s = spikes[0]
    assert s.count == 60 and 4 <= s.baseline <= 6 and s.factor == pytest.approx(60 / s.baseline, rel=0.01)


def test_flat_or_noisy_series_yield_no_spike():
    rng = random.Random(5)
    days = _days(60)
    assert detect_spikes({"billing": {d: 20 for d in days}}) == []
    assert detect_spikes({"delivery": {d: rng.randint(15, 35) for d in days}}) == []
    assert detect_spikes({}) == []


def test_spike_rules_minimum_count_history_and_missing_days():
    days = _days(20)
    small = {d: 1 for d in days}
    small[days[15]] = 8  # 8x the baseline, but below min_count
    assert detect_spikes({"other": small}, min_count=10) == []
    assert [s.day for s in detect_spikes({"other": small}, min_count=5)] == [days[15]]
    early = {d: 2 for d in days}
    early[days[3]] = 50  # no full trailing window yet: not judged
    assert detect_spikes({"other": early}, window=7) == []
    sparse = {days[0]: 1, days[19]: 12}  # days in between are zeros: baseline 0 counts as 1
    [s] = detect_spikes({"feedback": sparse}, min_count=10)
    assert s.day == days[19] and s.baseline == 0 and s.factor == 12


def test_parse_days_handles_export_timestamp_formats():
    s = pd.Series(["Tue Oct 31 22:10:47 +0000 2017", "2020-03-31T03:01:09.000Z", "2015-02-17 14:03:13 -0800",
                   "", None, "not a date"])
    got = [None if pd.isna(v) else v.date().isoformat() for v in parse_days(s)]
    assert got == ["2017-10-31", "2020-03-31", "2015-02-17", None, None, None]


# --------------------------------------------------------------------------------------------- the page


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_report_is_self_contained_and_flags_the_outage(tmp_path, fmt):
    rows, spike_day = labelled_rows()
    src = write_labelled(tmp_path / f"labelled.{fmt}", rows)
    out = tmp_path / "report.html"
    info = write_report(src, out, ReportOptions())
    page = out.read_text(encoding="utf-8")
    assert info["posts"] == len(rows)
    assert [(s["issue_type"], s["day"]) for s in info["spikes"]] == [("service_disruption", spike_day.isoformat())]
    assert [(s["company"], s["day"]) for s in info["company_spikes"]] == [(OUTAGE_COMPANY, spike_day.isoformat())]
    for cid in CHART_IDS:
        assert f'<svg id="{cid}"' in page, cid
    assert "<script" not in page.replace("&lt;script&gt;", "")  # company names are escaped, no JS anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and "@import" not in page
    assert "url(" not in page
    assert spike_day.isoformat() in page and "service_disruption" in page
    tried = sum(r["tried_other_channel"] for r in rows) / len(rows)
    assert f"{100 * tried:.1f}%" in page  # the headline share
    assert page.count('class="spike-mark"') >= 3  # the volume line, the and the company's sparklines
    # each spike lists its three most urgent posts (highest score first), masked and truncated
    examples = re.findall(r'<li class="example">(.*?)</li>', page)
    assert len(examples) == 6  # 3 under the issue spike, 3 under the company spike
    assert all("#89:" in e or "#88:" in e or "#87:" in e for e in examples), examples[:1]
    for secret in SECRETS:
        assert secret not in page
    assert "[phone]" in examples[0] and "[email]" in examples[0] and "[card]" in examples[0]
    assert "[account_number]" in examples[0] and "…" in examples[0] and "x" * 200 not in page


def test_report_without_timestamps_or_companies(tmp_path):
    rows, _ = labelled_rows(n_days=3)
    for r in rows:
        del r["created_at"], r["company"]
    src = write_labelled(tmp_path / "labelled.parquet", rows)
    out = tmp_path / "r.html"
    info = write_report(src, out)
    page = out.read_text()
    assert info["spikes"] == [] and "No timestamps in this file" in page and "No company column" in page
    assert '<svg id="chart-urgency"' in page and '<svg id="chart-volume"' not in page


def test_label_then_report_cli(tmp_path, tiny_predictor):
    src = write_rows(tmp_path / "in.jsonl", sample_posts(60))
    labelled = tmp_path / "labelled.csv"
    run_label(LabelOptions(input=src, output=labelled), predictor=tiny_predictor, model_info={"uri": "tiny"},
              progress=False)
    from serving.cli import app

    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", str(labelled), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "report of 60 posts" in res.output
    page = out.read_text()
    assert '<svg id="chart-channels-by-issue"' in page and "posts labelled" in page
    bad = tmp_path / "not_labelled.csv"
    bad.write_text("id,text\n1,hello\n")
    res = CliRunner().invoke(app, ["report", str(bad), "--out", str(tmp_path / "x.html")])
    assert res.exit_code == 2 and "not a `frontline label` output" in res.output


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); browser render "
                                             "test skipped")
def test_report_renders_in_headless_chromium(tmp_path):
    rows, spike_day = labelled_rows()
    src = write_labelled(tmp_path / "labelled.parquet", rows)
    out = tmp_path / "report.html"
    write_report(src, out)
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", out.as_uri()], check=False, capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    rendered = re.findall(r'<svg id="(chart-[\w-]+)"', html)
    assert rendered == CHART_IDS  # every chart made it into the rendered DOM, in page order
    assert html.count("<rect") > 50 and "<polyline" in html
    assert spike_day.isoformat() in html
    shot = tmp_path / "report.png"
    res = subprocess.run([*base, "--window-size=1100,2400", f"--screenshot={shot}", out.as_uri()],
                         check=False, capture_output=True, text=True, timeout=90)
    assert res.returncode == 0 and shot.exists() and shot.stat().st_size > 20_000  # not a blank page
