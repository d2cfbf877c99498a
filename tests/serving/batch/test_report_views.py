"""`frontline report`: time zones, --compare-to, Spark part-file directories, filtered views, missing text."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pandas as pd
import pytest

from serving.batch.labelling import LabelError
from serving.batch.report import (
    NO_TEXT_NOTE,
    Filters,
    Report,
    ReportOptions,
    parse_days,
    write_report,
)
from tests.serving.batch.report_support import (
    COMPANIES,
    OUTAGE_COMPANY,
    labelled_rows,
    write_labelled,
)


def _posts_kpi(page: str) -> int:
    return int(re.search(r"<b>([\d,]+)</b><span>posts labelled", page).group(1).replace(",", ""))


def _kpis(page: str) -> str:
    return re.search(r'<div class="kpis" id="kpis">.*?</div></div>', page).group(0)


def test_parse_days_in_a_time_zone():
    s = pd.Series(["2017-10-31T23:30:00Z", "2017-03-26T00:30:00Z", "Tue Oct 31 22:10:47 +0000 2017", "2017-10-31",
                   None])
    utc = [None if pd.isna(v) else v.date().isoformat() for v in parse_days(s)]
    paris = [None if pd.isna(v) else v.date().isoformat() for v in parse_days(s, "Europe/Paris")]
    ny = [None if pd.isna(v) else v.date().isoformat() for v in parse_days(s, "America/New_York")]
    assert utc == ["2017-10-31", "2017-03-26", "2017-10-31", "2017-10-31", None]
    assert paris == ["2017-11-01", "2017-03-26", "2017-10-31", "2017-10-31", None]  # 00:30 UTC on DST day: 01:30
    assert ny == ["2017-10-31", "2017-03-25", "2017-10-31", "2017-10-30", None]  # a bare date is UTC midnight


def test_tz_moves_the_daily_buckets_and_the_spike(tmp_path):
    rows, spike_day = labelled_rows()  # the outage's posts arrive 10:00-19:59 UTC
    src = write_labelled(tmp_path / "l.parquet", rows)
    utc = write_report(src, tmp_path / "utc.html")
    kiri = write_report(src, tmp_path / "kiri.html", ReportOptions(tz="Pacific/Kiritimati"))  # UTC+14: next day
    assert [s["day"] for s in utc["spikes"]] == [spike_day.isoformat()]
    assert [s["day"] for s in kiri["spikes"]] == [(spike_day + timedelta(days=1)).isoformat()]
    page = (tmp_path / "kiri.html").read_text()
    assert "days in Pacific/Kiritimati" in page and "days in UTC" in (tmp_path / "utc.html").read_text()
    with pytest.raises(LabelError, match="unknown time zone 'Mars/Olympus'"):
        write_report(src, tmp_path / "x.html", ReportOptions(tz="Mars/Olympus"))


def _share(rows, issue):
    return 100 * sum(r["issue_type"] == issue for r in rows) / len(rows)


def test_compare_to_a_previous_period(tmp_path):
    cur_rows, _ = labelled_rows()
    prev_rows, _ = labelled_rows(n_days=14, seed=11, start=date(2017, 9, 1), outage=0)
    cur = write_labelled(tmp_path / "oct.parquet", cur_rows)
    prev = write_labelled(tmp_path / "sep.jsonl", prev_rows)  # formats may differ
    out = tmp_path / "r.html"
    info = write_report(cur, out, ReportOptions(compare_to=prev))
    page = out.read_text()
    assert info["previous_posts"] == len(prev_rows) and info["compared_to"] == str(prev)
    section = re.search(r'<section id="compare">.*?</section>', page).group(0)
    assert '<svg id="chart-compare-issue"' in section and "2017-09-01 to 2017-09-14" in section
    d = _share(cur_rows, "service_disruption") - _share(prev_rows, "service_disruption")
    row = re.search(r"<tr><td>issue type</td><td>service_disruption</td>(.*?)</tr>", section).group(1)
    assert f"{_share(prev_rows, 'service_disruption'):.1f}%" in row and f"{d:+.1f} pp" in row
    vol = re.search(r"<tr><td>posts per day</td>(.*?)</tr>", section).group(1)
    assert f"{len(prev_rows) / 14:,.1f}" in vol and f"{len(cur_rows) / 28:,.1f}" in vol
    assert write_report(cur, tmp_path / "plain.html")["compared_to"] is None
    assert '<section id="compare">' not in (tmp_path / "plain.html").read_text()


def _spark_dir(path, rows, fmt, parts=3):
    """What Spark writes: part files (CSV ones each with a header), _SUCCESS, .crc side files, an empty part;
    Spark's JSON writer omits null fields."""
    path.mkdir()
    (path / "_SUCCESS").write_text("")
    k = -(-len(rows) // parts)
    for i in range(parts):
        chunk = [dict(r) for r in rows[i * k:(i + 1) * k]]
        if fmt == "json":
            for r in chunk[::5]:
                del r["company"]
        name = f"part-0000{i}-6b1c-c000." + {"parquet": "snappy.parquet", "csv": "csv", "json": "json"}[fmt]
        write_labelled(path / name.replace(".json", ".jsonl"), chunk, spark_csv=True)
        if fmt == "json":
            (path / name.replace(".json", ".jsonl")).rename(path / name)
        (path / f".{name}.crc").write_bytes(b"\x00crc")
    (path / "part-00009-6b1c-c000.csv").write_text("") if fmt == "csv" else None
    return path


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_report_reads_a_spark_output_directory(tmp_path, fmt):
    rows, _ = labelled_rows()
    single = write_labelled(tmp_path / f"one.{'jsonl' if fmt == 'json' else fmt}", rows)
    ref = write_report(single, tmp_path / "ref.html")
    d = _spark_dir(tmp_path / f"spark.{fmt}", rows, fmt)
    got = write_report(d, tmp_path / "spark.html")
    assert got["posts"] == len(rows) and got["spikes"] == ref["spikes"]
    page = (tmp_path / "spark.html").read_text()
    if fmt != "json":  # JSON parts lost some companies (nulls omitted): the same posts, other company counts
        assert _kpis(page) == _kpis((tmp_path / "ref.html").read_text())
        assert got["company_spikes"] == ref["company_spikes"]
    else:
        assert "(unknown)" in page
    nameless = tmp_path / "out"  # a directory named without an extension: the parts' extension tells
    d.rename(nameless)
    assert write_report(nameless, tmp_path / "n.html")["posts"] == len(rows)


def test_directory_without_parts_is_a_clear_error(tmp_path):
    (tmp_path / "empty.parquet").mkdir()
    with pytest.raises(LabelError, match="without part files"):
        write_report(tmp_path / "empty.parquet", tmp_path / "x.html")


def test_filtered_views_count_only_their_posts(tmp_path):
    rows, spike_day = labelled_rows()
    rep = Report(write_labelled(tmp_path / "l.parquet", rows))
    full, spikes, cspikes = rep.page()
    assert [s.series for s in spikes] == ["service_disruption"] and [s.series for s in cspikes] == [OUTAGE_COMPANY]
    assert _posts_kpi(full) == len(rows)
    acme, a_spikes, a_cspikes = rep.page(Filters(company="AcmeAir"))
    n_acme = sum(r["company"] == "AcmeAir" for r in rows)
    assert f"<b>{n_acme:,}</b><span>posts labelled" in acme and a_spikes == [] and a_cspikes == []
    telco, t_spikes, _ = rep.page(Filters(company=OUTAGE_COMPANY, issue="service_disruption"))
    n = sum(r["company"] == OUTAGE_COMPANY and r["issue_type"] == "service_disruption" for r in rows)
    assert f"<b>{n:,}</b><span>posts labelled" in telco and [s.day for s in t_spikes] == [spike_day]
    week = Filters(start=date(2017, 10, 1), end=date(2017, 10, 7))
    page, w_spikes, _ = rep.page(week)
    n_week = sum(r["created_at"][:10] <= "2017-10-07" for r in rows)
    assert f"<b>{n_week:,}</b><span>posts labelled" in page and w_spikes == []
    assert "2017-10-01 to 2017-10-07" in page and 'id="active-filters"' in page
    none, _, _ = rep.page(Filters(company="NoSuchCo"))
    assert '<section id="empty">' in none and "<b>0</b><span>posts labelled" in none
    for co in COMPANIES:
        assert f'<option value="{co.replace("<", "&lt;").replace(">", "&gt;")}">' in acme  # the form's choices


def test_without_text_the_page_says_how_to_get_examples(tmp_path):
    rows, _ = labelled_rows(text=False)
    out = tmp_path / "r.html"
    info = write_report(write_labelled(tmp_path / "l.csv", rows), out)
    page = out.read_text()
    assert info["spikes"] and NO_TEXT_NOTE.replace("`", "") in page.replace("`", "").replace("&#x27;", "'")
    assert '<li class="example">' not in page
    with_text = write_labelled(tmp_path / "t.csv", labelled_rows()[0])
    assert '<li class="example">' in Report(with_text).page()[0]
    assert '<li class="example">' not in Report(with_text, ReportOptions(examples=0)).page()[0]


def test_cli_report_options(tmp_path):
    from typer.testing import CliRunner

    from serving.cli import app

    cur = write_labelled(tmp_path / "oct.parquet", labelled_rows()[0])
    prev_rows = labelled_rows(n_days=10, seed=3, outage=0)[0]
    prev = write_labelled(tmp_path / "sep.csv", prev_rows)
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", str(cur), "--out", str(out), "--tz", "Europe/Paris", "--compare-to",
                                   str(prev), "--examples", "2"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())  # rich wraps long lines
    assert "1 issue-type and 1 company spike(s)" in said and f"compared with {len(prev_rows):,} posts" in said
    page = out.read_text()
    assert "days in Europe/Paris" in page and '<section id="compare">' in page
    assert page.count('<li class="example">') == 4  # 2 per spike
    res = CliRunner().invoke(app, ["report", str(cur), "--out", str(out), "--tz", "Paris"])
    assert res.exit_code == 2 and "unknown time zone 'Paris'" in " ".join(res.output.split())
