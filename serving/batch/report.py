"""``frontline report``: one self-contained HTML page over a labelled export.

No JavaScript, no external CSS or fonts: every chart is an inline SVG generated here. The labelled file is read
in batches and aggregated as it goes (counters, not a DataFrame of the whole file), so a million-row export
reports in flat memory. Sections: headline numbers, urgency and issue mix, urgency × issue, prior channels
overall / by issue type / by company ("why did they come to social?"), daily volume, per-issue daily volume and
the spikes found by :func:`detect_spikes` (an early warning of an outage).
"""

from __future__ import annotations

import html
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from training.schema import SCHEMA, LabelSchema

# --------------------------------------------------------------------------------------------- spikes


@dataclass(frozen=True)
class Spike:
    issue_type: str
    day: date
    count: int
    baseline: float  # median of the trailing window
    factor: float  # count / max(baseline, 1)


def detect_spikes(daily: Mapping[str, Mapping[date, int]], *, window: int = 7, factor: float = 3.0,
                  min_count: int = 10) -> list[Spike]:
    """Days on which a series jumps well above its own trailing baseline.

    ``daily`` maps a series name (an issue type) to {day: count}; missing days count as zero over the full
    span of all series. A day is a spike when it has a full trailing window of ``window`` earlier days, its count
    is at least ``min_count``, and at least ``factor`` × the trailing median (a median of 0 counts as 1, so a quiet
    series needs ``max(min_count, factor)`` posts). Sorted by factor, largest first.
    """
    all_days = [d for s in daily.values() for d, c in s.items() if c]
    if not all_days:
        return []
    first, last = min(all_days), max(all_days)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    spikes = []
    for name, series in daily.items():
        counts = [int(series.get(d, 0)) for d in days]
        for i in range(window, len(days)):
            c = counts[i]
            if c < min_count:
                continue
            base = float(statistics.median(counts[i - window:i]))
            ratio = c / max(base, 1.0)
            if ratio >= factor:
                spikes.append(Spike(name, days[i], c, base, round(ratio, 2)))
    return sorted(spikes, key=lambda s: (-s.factor, s.day, s.issue_type))


# --------------------------------------------------------------------------------------------- reading


_REPORT_COLS = ("urgency", "issue_type", "prior_channels", "tried_other_channel", "needs_review",
                "contains_personal_data", "company", "created_at")
_TWCS_TIME = "%a %b %d %H:%M:%S %z %Y"


def _batches(path: Path, fmt: str, rows: int = 50_000) -> Iterator[pd.DataFrame]:
    if fmt == "parquet":
        pf = pq.ParquetFile(path)
        cols = [c for c in _REPORT_COLS if c in pf.schema_arrow.names]
        for b in pf.iter_batches(batch_size=rows, columns=cols):
            yield b.to_pandas()
    elif fmt == "csv":
        with open(path, "rb") as f:
            header = next(iter(pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=1 << 16)))).schema.names \
                if path.stat().st_size else []
        cols = [c for c in _REPORT_COLS if c in header]
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=8 << 20),
                                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                                convert_options=pacsv.ConvertOptions(
                                    include_columns=cols, column_types={c: pa.string() for c in cols}))
        for b in reader:
            df = b.to_pandas()
            if "prior_channels" in df:
                df["prior_channels"] = df["prior_channels"].fillna("").map(lambda s: [c for c in s.split("|") if c])
            for c in ("tried_other_channel", "needs_review", "contains_personal_data"):
                if c in df:
                    df[c] = df[c].fillna("").str.lower().isin(["true", "1"])
            yield df
    else:
        buf = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    buf.append({c: obj.get(c) for c in _REPORT_COLS if c in obj})
                if len(buf) >= rows:
                    yield pd.DataFrame(buf)
                    buf = []
        if buf:
            yield pd.DataFrame(buf)


def parse_days(s: pd.Series) -> pd.Series:
    """Timestamps in the formats exports use (ISO 8601, TWCS 'Tue Oct 31 22:10:47 +0000 2017', '2015-02-17
    14:03:13 -0800') as UTC calendar days; unparseable or empty values become NaT."""
    s = s.astype("string").str.strip().replace("", pd.NA)
    out = pd.to_datetime(s, utc=True, format="ISO8601", errors="coerce")
    todo = out.isna() & s.notna()
    if todo.any():
        out[todo] = pd.to_datetime(s[todo], utc=True, format=_TWCS_TIME, errors="coerce")
        todo = out.isna() & s.notna()
        if todo.any():
            out[todo] = pd.to_datetime(s[todo], utc=True, format="mixed", errors="coerce")
    return out.dt.floor("D")


@dataclass
class Aggregate:
    schema: LabelSchema = SCHEMA
    posts: int = 0
    urgency: Counter = field(default_factory=Counter)
    issue: Counter = field(default_factory=Counter)
    urgency_issue: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    tried: int = 0
    needs_review: int = 0
    personal: int = 0
    issue_tried: Counter = field(default_factory=Counter)
    issue_channels: dict = field(default_factory=lambda: defaultdict(Counter))
    company: Counter = field(default_factory=Counter)
    company_tried: Counter = field(default_factory=Counter)
    company_urgent: Counter = field(default_factory=Counter)
    company_channels: dict = field(default_factory=lambda: defaultdict(Counter))
    company_issue: dict = field(default_factory=lambda: defaultdict(Counter))
    daily: dict = field(default_factory=lambda: defaultdict(Counter))  # issue -> {day: n}
    with_time: int = 0
    has_company: bool = False
    has_time: bool = False

    def add(self, df: pd.DataFrame) -> None:
        n = len(df)
        self.posts += n
        if not n:
            return
        self.urgency.update(df["urgency"].value_counts().to_dict())
        self.issue.update(df["issue_type"].value_counts().to_dict())
        self.urgency_issue.update(df.groupby(["issue_type", "urgency"]).size().to_dict())
        tried = df["tried_other_channel"].astype(bool)
        self.tried += int(tried.sum())
        self.needs_review += int(df["needs_review"].astype(bool).sum()) if "needs_review" in df else 0
        if "contains_personal_data" in df:
            self.personal += int(df["contains_personal_data"].astype(bool).sum())
        self.issue_tried.update(df.loc[tried, "issue_type"].value_counts().to_dict())
        urgent = df["urgency"].isin(self.schema.urgency[-2:])  # the top two urgency levels
        ex = df[["issue_type", "prior_channels"]].assign(
            company=df["company"] if "company" in df else None).explode("prior_channels")
        ex = ex[ex["prior_channels"].notna()]
        self.channels.update(ex["prior_channels"].value_counts().to_dict())
        for (iss, ch), c in ex.groupby(["issue_type", "prior_channels"]).size().items():
            self.issue_channels[iss][ch] += int(c)
        if "company" in df:
            self.has_company = True
            comp = df["company"].fillna("").astype(str).str.strip().replace("", "(unknown)")
            self.company.update(comp.value_counts().to_dict())
            self.company_tried.update(comp[tried].value_counts().to_dict())
            self.company_urgent.update(comp[urgent].value_counts().to_dict())
            for (co, iss), c in pd.DataFrame({"c": comp, "i": df["issue_type"]}).groupby(["c", "i"]).size().items():
                self.company_issue[co][iss] += int(c)
            exc = ex.assign(company=ex["company"].fillna("").astype(str).str.strip().replace("", "(unknown)"))
            for (co, ch), c in exc.groupby(["company", "prior_channels"]).size().items():
                self.company_channels[co][ch] += int(c)
        if "created_at" in df:
            self.has_time = True
            days = parse_days(df["created_at"])
            ok = days.notna()
            self.with_time += int(ok.sum())
            if ok.any():
                for (iss, d), c in pd.DataFrame({"i": df.loc[ok, "issue_type"], "d": days[ok].dt.date}) \
                        .groupby(["i", "d"]).size().items():
                    self.daily[iss][d] += int(c)


def aggregate(path: Path, fmt: str, schema: LabelSchema = SCHEMA) -> Aggregate:
    agg = Aggregate(schema=schema)
    for df in _batches(path, fmt):
        missing = {"urgency", "issue_type", "prior_channels", "tried_other_channel"} - set(df.columns)
        if missing:
            from serving.batch.labelling import LabelError

            raise LabelError(f"{path} is not a `frontline label` output: missing columns {sorted(missing)}")
        agg.add(df)
    return agg


# --------------------------------------------------------------------------------------------- SVG


E = html.escape
URGENCY_COLOURS = ["#4c9a6a", "#e0b040", "#e07b39", "#c62d2d"]
PALETTE = ["#3b6ea8", "#e07b39", "#4c9a6a", "#c62d2d", "#8a63b5", "#8c6d4f", "#d46aa6", "#6f7f8f", "#b8b13a",
           "#3aa6b8"]
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\""


def _pct(a: float, b: float) -> str:
    return f"{100 * a / b:.1f}%" if b else "–"


def bar_chart(chart_id: str, items: list[tuple[str, float]], *, colours: list[str] | None = None,
              value_fmt=lambda v: f"{v:,.0f}", total: float | None = None, width: int = 900) -> str:
    """Horizontal bars, one per (label, value); optional share of ``total`` after the value."""
    row, label_w, pad = 26, 150, 110
    h = row * len(items) + 10
    vmax = max([v for _, v in items] + [1e-9])
    out = [f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {h}" width="{width}" style="max-width:100%;height:auto" role="img" {FONT}>']
    for i, (lab, v) in enumerate(items):
        y = 5 + i * row
        w = (width - label_w - pad) * v / vmax
        colour = (colours or PALETTE)[i % len(colours or PALETTE)] if colours else PALETTE[0]
        share = f" · {_pct(v, total)}" if total else ""
        out.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" font-size="13" fill="#333">{E(str(lab))}</text>'
                   f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" rx="3" fill="{colour}">'
                   f'<title>{E(str(lab))}: {value_fmt(v)}{share}</title></rect>'
                   f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" font-size="12" fill="#555">{value_fmt(v)}{share}</text>')
    out.append("</svg>")
    return "".join(out)


def stacked_chart(chart_id: str, rows: list[tuple[str, dict[str, float], str]], keys: list[str],
                  width: int = 900, scale_max: float | None = None) -> str:
    """Horizontal stacked bars: rows of (label, {key: value}, note at the end), with a legend."""
    row, label_w, pad, legend_h = 26, 170, 110, 28
    h = legend_h + row * len(rows) + 8
    vmax = scale_max or max([sum(v.values()) for _, v, _ in rows] + [1e-9])
    out = [f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {h}" width="{width}" style="max-width:100%;height:auto" role="img" {FONT}>']
    x = label_w
    for i, k in enumerate(keys):
        out.append(f'<rect x="{x}" y="6" width="12" height="12" rx="2" fill="{PALETTE[i % len(PALETTE)]}"/>'
                   f'<text x="{x + 16}" y="16" font-size="12" fill="#333">{E(k)}</text>')
        x += 22 + 7.2 * len(k)
    for r, (lab, vals, note) in enumerate(rows):
        y = legend_h + r * row
        out.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" font-size="13" fill="#333">{E(lab)}</text>')
        x = float(label_w)
        for i, k in enumerate(keys):
            v = vals.get(k, 0)
            if v <= 0:
                continue
            w = (width - label_w - pad) * v / vmax
            out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{PALETTE[i % len(PALETTE)]}">'
                       f'<title>{E(lab)} · {E(k)}: {v:.1f}%</title></rect>')
            x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + 17}" font-size="12" fill="#555">{E(note)}</text>')
    out.append("</svg>")
    return "".join(out)


def heatmap(chart_id: str, rows: list[str], cols: list[str], values: Mapping[tuple[str, str], int],
            width: int = 900) -> str:
    label_w, head_h, cell_h = 170, 24, 24
    cw = (width - label_w) / max(len(cols), 1)
    h = head_h + cell_h * len(rows) + 4
    vmax = max(list(values.values()) + [1])
    out = [f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {h}" width="{width}" style="max-width:100%;height:auto" role="img" {FONT}>']
    for j, c in enumerate(cols):
        out.append(f'<text x="{label_w + (j + 0.5) * cw:.1f}" y="16" text-anchor="middle" font-size="12" '
                   f'fill="#333">{E(c)}</text>')
    for i, r in enumerate(rows):
        y = head_h + i * cell_h
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="13" fill="#333">{E(r)}</text>')
        for j, c in enumerate(cols):
            v = values.get((r, c), 0)
            a = 0.06 + 0.94 * (v / vmax) if v else 0.0
            colour = "#fff" if a > 0.55 else "#222"
            out.append(f'<rect x="{label_w + j * cw + 1:.1f}" y="{y + 1}" width="{cw - 2:.1f}" height="{cell_h - 2}" '
                       f'fill="rgba(59,110,168,{a:.3f})" stroke="#eee"><title>{E(r)} · {E(c)}: {v:,}</title></rect>'
                       f'<text x="{label_w + (j + 0.5) * cw:.1f}" y="{y + 16}" text-anchor="middle" font-size="11" '
                       f'fill="{colour}">{v:,}</text>')
    out.append("</svg>")
    return "".join(out)


def line_chart(chart_id: str, days: list[date], counts: list[int], marks: list[tuple[date, int, str]],
               width: int = 900, height: int = 220) -> str:
    """Daily volume as a line (area), with spike days marked."""
    left, right, top, bottom = 48, 12, 12, 28
    pw, ph = width - left - right, height - top - bottom
    vmax = max(counts + [1])
    n = len(days)

    def px(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def py(v: float) -> float:
        return top + ph - ph * v / vmax

    out = [f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {height}" width="{width}" style="max-width:100%;height:auto" role="img" {FONT}>']
    for k in range(5):
        v = vmax * k / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end" font-size="11" fill="#777">{v:,.0f}</text>')
    pts = " ".join(f"{px(i):.1f},{py(c):.1f}" for i, c in enumerate(counts))
    if n:
        out.append(f'<polygon points="{px(0):.1f},{py(0):.1f} {pts} {px(n - 1):.1f},{py(0):.1f}" fill="#3b6ea8" '
                   f'fill-opacity="0.15"/><polyline points="{pts}" fill="none" stroke="#3b6ea8" stroke-width="1.6"/>')
        for k in range(min(n, 6)):
            i = round(k * (n - 1) / max(min(n, 6) - 1, 1))
            anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
            out.append(f'<text x="{px(i):.1f}" y="{height - 8}" text-anchor="{anchor}" font-size="11" '
                       f'fill="#777">{days[i].isoformat()}</text>')
    index = {d: i for i, d in enumerate(days)}
    for d, v, label in marks:
        if d in index:
            out.append(f'<circle class="spike-mark" cx="{px(index[d]):.1f}" cy="{py(v):.1f}" r="4.5" fill="#c62d2d">'
                       f'<title>{E(label)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def sparklines(chart_id: str, days: list[date], series: list[tuple[str, list[int]]], spikes: list[Spike],
               width: int = 900) -> str:
    """One small daily line per issue type, each on its own scale, spikes marked."""
    row, label_w, right = 34, 170, 60
    h = row * len(series) + 6
    n = len(days)
    out = [f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {h}" width="{width}" style="max-width:100%;height:auto" role="img" {FONT}>']
    index = {d: i for i, d in enumerate(days)}
    for r, (name, counts) in enumerate(series):
        y0 = 4 + r * row
        vmax = max(counts + [1])

        def px(i: int) -> float:
            return label_w + ((width - label_w - right) * i / (n - 1) if n > 1 else 0)

        def py(v: float, y0: float = y0, vmax: int = vmax) -> float:
            return y0 + row - 6 - (row - 10) * v / vmax

        pts = " ".join(f"{px(i):.1f},{py(c):.1f}" for i, c in enumerate(counts))
        out.append(f'<text x="{label_w - 8}" y="{y0 + row / 2 + 4:.1f}" text-anchor="end" font-size="12" '
                   f'fill="#333">{E(name)}</text><polyline points="{pts}" fill="none" stroke="#6f7f8f" '
                   f'stroke-width="1.2"/><text x="{width - right + 6}" y="{y0 + row / 2 + 4:.1f}" font-size="11" '
                   f'fill="#777">max {vmax:,}</text>')
        for s in spikes:
            if s.issue_type == name and s.day in index:
                out.append(f'<circle class="spike-mark" cx="{px(index[s.day]):.1f}" cy="{py(s.count):.1f}" r="3.5" '
                           f'fill="#c62d2d"><title>{E(name)} {s.day}: {s.count} posts, {s.factor:.1f}× '
                           f'the trailing median</title></circle>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------------------------- page


@dataclass
class ReportOptions:
    in_format: str | None = None
    top_companies: int = 15
    spike_factor: float = 3.0
    spike_window: int = 7
    spike_min_count: int = 10
    title: str = "frontline — why customers came to social"


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f6f7f9;color:#222}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:18px;margin:0 0 8px}
.sub{color:#666;font-size:13px;margin-bottom:18px}
section{background:#fff;border:1px solid #e3e5e8;border-radius:8px;padding:16px 18px;margin:14px 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}.grid section{margin:0}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:10px}
.kpi{background:#fff;border:1px solid #e3e5e8;border-radius:8px;padding:10px 12px}
.kpi b{display:block;font-size:22px}.kpi span{font-size:12px;color:#666}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:5px 8px;border-bottom:1px solid #eee;text-align:left}
th{color:#555;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#666;font-size:13px}.alert{color:#c62d2d;font-weight:600}
@media (max-width:800px){.grid{grid-template-columns:1fr}.kpis{grid-template-columns:repeat(3,1fr)}}
"""


def render(agg: Aggregate, opts: ReportOptions, source: str) -> tuple[str, list[Spike]]:
    s = agg.schema
    n = agg.posts
    urgent = sum(agg.urgency.get(u, 0) for u in s.urgency[-2:])
    kpis = [(f"{n:,}", "posts labelled"), (_pct(agg.tried, n), "already tried another channel"),
            (_pct(urgent, n), f"{' or '.join(s.urgency[-2:])} urgency"), (_pct(agg.needs_review, n), "need review"),
            (_pct(agg.personal, n), "contain personal data"),
            (f"{len(agg.company):,}" if agg.has_company else "–", "companies")]
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
             f"content=\"width=device-width, initial-scale=1\"><title>{E(opts.title)}</title><style>{CSS}</style>"
             f"</head><body><main><h1>{E(opts.title)}</h1>"
             f"<div class=\"sub\">{E(source)} · generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</div>"
             "<div class=\"kpis\">"
             + "".join(f'<div class="kpi"><b>{E(v)}</b><span>{E(t)}</span></div>' for v, t in kpis) + "</div>"]

    # label mix
    urg = [(u, agg.urgency.get(u, 0)) for u in s.urgency]
    iss = sorted(((i, agg.issue.get(i, 0)) for i in s.issue_type), key=lambda t: -t[1])
    parts.append('<div class="grid" style="margin-top:14px"><section><h2>Urgency</h2>'
                 + bar_chart("chart-urgency", urg, colours=URGENCY_COLOURS, total=n, width=430)
                 + '</section><section><h2>Issue type</h2>'
                 + bar_chart("chart-issue", iss, total=n, width=430) + "</section></div>")
    parts.append('<section><h2>Urgency by issue type</h2><p class="note">Posts per issue type and urgency.</p>'
                 + heatmap("chart-urgency-issue", [i for i, _ in iss], list(s.urgency), agg.urgency_issue)
                 + "</section>")

    # prior channels
    ch = sorted(((c, agg.channels.get(c, 0)) for c in s.prior_channels), key=lambda t: -t[1])
    top = ch[0][0] if ch and ch[0][1] else None
    parts.append('<section><h2>Why did they come to social? Channels tried before</h2>'
                 f'<p class="note">{_pct(agg.tried, n)} of posts say the customer already tried another channel'
                 + (f"; the most common is <b>{E(top)}</b>" if top else "") + ". Share of all posts:</p>"
                 + bar_chart("chart-channels", ch, total=n, value_fmt=lambda v: f"{v:,.0f}") + "</section>")
    rows = []
    for i, cnt in iss:
        if not cnt:
            continue
        vals = {c: 100 * agg.issue_channels[i].get(c, 0) / cnt for c in s.prior_channels}
        rows.append((i, vals, f"{_pct(agg.issue_tried.get(i, 0), cnt)} tried"))
    rows.sort(key=lambda r: -sum(r[1].values()))
    parts.append('<section><h2>Channels tried, by issue type</h2><p class="note">Percent of each issue type\'s posts '
                 'that mention each earlier channel (a post can name several); at the end, the share that tried '
                 'any.</p>' + stacked_chart("chart-channels-by-issue", rows, list(s.prior_channels)) + "</section>")

    if agg.has_company:
        topc = agg.company.most_common(opts.top_companies)
        crow = []
        for co, cnt in topc:
            vals = {c: 100 * agg.company_channels[co].get(c, 0) / cnt for c in s.prior_channels}
            crow.append((co, vals, f"{_pct(agg.company_tried.get(co, 0), cnt)} tried"))
        table = [("<table><tr><th>company</th><th class=n>posts</th><th class=n>tried another channel</th>"
                  f"<th>top channel</th><th class=n>{E(' / '.join(s.urgency[-2:]))}</th><th>top issue</th></tr>")]
        for co, cnt in topc:
            tc = agg.company_channels[co].most_common(1)
            ti = agg.company_issue[co].most_common(1)
            table.append(f"<tr><td>{E(co)}</td><td class=n>{cnt:,}</td><td class=n>{_pct(agg.company_tried.get(co, 0), cnt)}"
                         f"</td><td>{E(tc[0][0]) if tc else '–'}</td><td class=n>"
                         f"{_pct(agg.company_urgent.get(co, 0), cnt)}</td><td>{E(ti[0][0]) if ti else '–'}</td></tr>")
        table.append("</table>")
        parts.append(f'<section><h2>Top {len(topc)} companies by volume</h2>'
                     + bar_chart("chart-companies", topc, total=n) + "</section>"
                     '<section><h2>Channels tried, by company</h2><p class="note">Percent of each company\'s posts '
                     'that mention each earlier channel.</p>'
                     + stacked_chart("chart-channels-by-company", crow, list(s.prior_channels))
                     + "".join(table) + "</section>")
    else:
        parts.append('<section><h2>Companies</h2><p class="note">No company column in this file.</p></section>')

    spikes: list[Spike] = []
    if agg.has_time and agg.with_time:
        spikes = detect_spikes(agg.daily, window=opts.spike_window, factor=opts.spike_factor,
                               min_count=opts.spike_min_count)
        all_days = [d for ser in agg.daily.values() for d in ser]
        first, last = min(all_days), max(all_days)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        total = Counter()
        for ser in agg.daily.values():
            total.update(ser)
        counts = [total.get(d, 0) for d in days]
        marks = [(sp.day, total.get(sp.day, 0), (f"{sp.day}: {sp.issue_type} spike, {sp.count} posts "
                                                 f"({sp.factor:.1f}× trailing median {sp.baseline:g})"))
                 for sp in spikes]
        parts.append(f'<section><h2>Volume per day</h2><p class="note">{agg.with_time:,} of {n:,} posts have a '
                     f'timestamp; {first} to {last} (UTC days). Red dots: days with an issue-type spike.</p>'
                     + line_chart("chart-volume", days, counts, marks) + "</section>")
        series = [(i, [agg.daily[i].get(d, 0) for d in days]) for i, _ in iss if agg.daily.get(i)]
        if spikes:
            srows = "".join(f"<tr><td>{sp.day}</td><td>{E(sp.issue_type)}</td><td class=n>{sp.count:,}</td>"
                            f"<td class=n>{sp.baseline:g}</td><td class=n>{sp.factor:.1f}×</td></tr>"
                            for sp in spikes[:50])
            spike_html = (f'<p class="alert">{len(spikes)} spike(s): an issue type\'s daily volume jumped to at least '
                          f'{opts.spike_factor:g}× its trailing {opts.spike_window}-day median (and at least '
                          f'{opts.spike_min_count} posts). Check for an outage or incident on these days.</p>'
                          '<table id="spikes"><tr><th>day</th><th>issue type</th><th class=n>posts</th>'
                          f'<th class=n>trailing median</th><th class=n>factor</th></tr>{srows}</table>')
        else:
            spike_html = (f'<p class="note" id="spikes">No spikes: no issue type reached {opts.spike_factor:g}× its '
                          f'trailing {opts.spike_window}-day median with at least {opts.spike_min_count} posts.</p>')
        parts.append('<section><h2>Spikes by issue type (early warning)</h2>' + spike_html
                     + '<p class="note">Daily posts per issue type, each on its own scale.</p>'
                     + sparklines("chart-issue-daily", days, series, spikes) + "</section>")
    else:
        parts.append('<section><h2>Volume over time</h2><p class="note">No timestamps in this file '
                     '(label with --time-col to get daily volume and spike detection).</p></section>')
    parts.append('<p class="note">Labels are model predictions (frontline); shares are of labelled posts. '
                 'Rejected and skipped rows are not included: see the label summary.</p></main></body></html>')
    return "".join(parts), spikes


def write_report(labelled: Path, out: Path, opts: ReportOptions | None = None) -> dict:
    from serving.batch.labelling import _atomic_write_text, detect_format

    opts = opts or ReportOptions()
    fmt = detect_format(labelled, opts.in_format)
    agg = aggregate(labelled, fmt)
    page, spikes = render(agg, opts, str(labelled))
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(out, page)
    return {"posts": agg.posts, "spikes": [{"issue_type": s.issue_type, "day": s.day.isoformat(), "count": s.count,
                                           "baseline": s.baseline, "factor": s.factor} for s in spikes]}
