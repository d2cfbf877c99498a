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
from training.schema import SCHEMA

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


def _labelled_rows(n_days=28, spike_day=21, seed=7):
    """A synthetic labelled export: steady traffic plus a service_disruption outage on one day."""
    rng = random.Random(seed)
    start = date(2017, 10, 1)
    rows, k = [], 0
    for d in range(n_days):
        day = start + timedelta(days=d)
        n = 40 + rng.randint(-5, 5)
        extra = 90 if d == spike_day else 0
        for j in range(n + extra):
            issue = "service_disruption" if j >= n else rng.choice(SCHEMA.issue_type)
            chans = rng.sample(SCHEMA.prior_channels, rng.choice([0, 0, 0, 1, 2]))
            rows.append({"id": f"r{k}", "created_at": f"{day.isoformat()}T{rng.randint(0, 23):02d}:00:00Z",
                         "company": rng.choice(["AcmeAir", "ShopCo", "TelcoHelp", "<script>x</script>"]),
                         "urgency": "critical" if j >= n else rng.choice(SCHEMA.urgency), "urgency_score": 0.7,
                         "issue_type": issue, "issue_type_score": 0.6, "prior_channels": chans,
                         "tried_other_channel": bool(chans), "prior_channels_score": 0.8,
                         "needs_review": rng.random() < 0.1, "contains_personal_data": rng.random() < 0.05})
            k += 1
    return rows, start + timedelta(days=spike_day)


def _write_labelled(path, rows):
    df = pd.DataFrame(rows)
    if path.suffix == ".csv":
        df = df.assign(prior_channels=df["prior_channels"].map("|".join))
        df.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_report_is_self_contained_and_flags_the_outage(tmp_path, fmt):
    rows, spike_day = _labelled_rows()
    src = _write_labelled(tmp_path / f"labelled.{fmt}", rows)
    out = tmp_path / "report.html"
    info = write_report(src, out, ReportOptions())
    page = out.read_text(encoding="utf-8")
    assert info["posts"] == len(rows)
    assert [(s["issue_type"], s["day"]) for s in info["spikes"]] == [("service_disruption", spike_day.isoformat())]
    for cid in CHART_IDS:
        assert f'<svg id="{cid}"' in page, cid
    assert "<script" not in page.replace("&lt;script&gt;", "")  # company names are escaped, no JS anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and "@import" not in page
    assert "url(" not in page
    assert spike_day.isoformat() in page and "service_disruption" in page
    tried = sum(r["tried_other_channel"] for r in rows) / len(rows)
    assert f"{100 * tried:.1f}%" in page  # the headline share
    assert page.count('class="spike-mark"') >= 2  # on the volume line and the issue's sparkline


def test_report_without_timestamps_or_companies(tmp_path):
    rows, _ = _labelled_rows(n_days=3)
    for r in rows:
        del r["created_at"], r["company"]
    src = _write_labelled(tmp_path / "labelled.parquet", rows)
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
    rows, spike_day = _labelled_rows()
    src = _write_labelled(tmp_path / "labelled.parquet", rows)
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
