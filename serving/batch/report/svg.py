"""Chart primitives for the report: each returns one inline ``<svg>`` string with an ``id`` (the tests and the
browser find charts by it) and a ``<title>`` tooltip on every mark. No JavaScript, no fonts, no external files:
a chart is text in the page, so the page opens offline and can be mailed."""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import date

from serving.batch.report.spikes import Spike

E = html.escape
URGENCY_COLOURS = ["#4c9a6a", "#e0b040", "#e07b39", "#c62d2d"]
PALETTE = ["#3b6ea8", "#e07b39", "#4c9a6a", "#c62d2d", "#8a63b5", "#8c6d4f", "#d46aa6", "#6f7f8f", "#b8b13a",
           "#3aa6b8"]
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\""


def pct(a: float, b: float) -> str:
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
        share = f" · {pct(v, total)}" if total else ""
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
            if s.series == name and s.day in index:
                out.append(f'<circle class="spike-mark" cx="{px(index[s.day]):.1f}" cy="{py(s.count):.1f}" r="3.5" '
                           f'fill="#c62d2d"><title>{E(name)} {s.day}: {s.count} posts, {s.factor:.1f}× '
                           f'the trailing median</title></circle>')
    out.append("</svg>")
    return "".join(out)


def delta_chart(chart_id: str, items: list[tuple[str, float]], width: int = 900) -> str:
    """Diverging horizontal bars around a zero line: change in percentage points per label (red up, green down
    would presume a direction is bad; a neutral blue/orange pair is used instead)."""
    row, label_w, pad = 24, 170, 70
    h = row * len(items) + 10
    vmax = max([abs(v) for _, v in items] + [1e-9])
    mid = label_w + (width - label_w - pad) / 2
    half = (width - label_w - pad) / 2
    out = [f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {h}" width="{width}" style="max-width:100%;height:auto" role="img" {FONT}>'
           f'<line x1="{mid:.1f}" x2="{mid:.1f}" y1="0" y2="{h}" stroke="#bbb"/>']
    for i, (lab, v) in enumerate(items):
        y = 5 + i * row
        w = half * abs(v) / vmax
        x = mid if v >= 0 else mid - w
        colour = "#3b6ea8" if v >= 0 else "#e07b39"
        tx, anchor = (mid + w + 6, "start") if v >= 0 else (mid - w - 6, "end")
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="13" fill="#333">{E(lab)}</text>'
                   f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" rx="2" fill="{colour}">'
                   f'<title>{E(lab)}: {v:+.1f} pp</title></rect>'
                   f'<text x="{tx:.1f}" y="{y + 16}" text-anchor="{anchor}" font-size="12" fill="#555">{v:+.1f} pp</text>')
    out.append("</svg>")
    return "".join(out)
