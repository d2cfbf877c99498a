"""``--compare-to``: this period against a previous labelled export.

Volumes are compared per day (periods rarely have the same length) and the label mix as shares, in percentage
points, so "billing went from 12% to 19% of posts" reads directly. Both sides are :class:`Cube` objects, so a
``--serve`` view filtered by company or issue type compares like with like.
"""

from __future__ import annotations

from serving.batch.report.cube import Cube
from serving.batch.report.svg import E, delta_chart


def shares(c: Cube) -> dict[str, dict[str, float]]:
    """Per group (urgency, issue type, channel tried, flags): {label: percent of posts}."""
    s, n = c.schema, c.posts
    if not n:
        return {}
    urg, iss, men = c.count("urgency"), c.count("issue_type"), c.mentions()
    return {"urgency": {u: 100 * urg.get(u, 0) / n for u in s.urgency},
            "issue type": {i: 100 * iss.get(i, 0) / n for i in s.issue_type},
            "channel tried": {k: 100 * men.get(k, 0) / n for k in s.prior_channels},
            "flags": {"tried another channel": 100 * c.total("tried") / n, "needs review": 100 * c.total("review") / n,
                      "personal data": 100 * c.total("personal") / n}}


def per_day(c: Cube) -> float | None:
    """Timestamped posts per calendar day over the cube's first-to-last day, or None without timestamps."""
    span = c.day_range()
    return c.with_time / ((span[1] - span[0]).days + 1) if span else None


def deltas(cur: Cube, prev: Cube) -> dict[str, dict[str, tuple[float, float, float]]]:
    """{group: {label: (previous %, current %, change in points)}}."""
    a, b = shares(prev), shares(cur)
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for group in b.keys() | a.keys():
        labels = list((b.get(group) or a.get(group)).keys())
        out[group] = {k: (a.get(group, {}).get(k, 0.0), b.get(group, {}).get(k, 0.0),
                          b.get(group, {}).get(k, 0.0) - a.get(group, {}).get(k, 0.0)) for k in labels}
    return out


def _change(prev: float | None, cur: float | None) -> str:
    if prev is None or cur is None:
        return "–"
    if not prev:
        return "new" if cur else "0"
    d = 100 * (cur - prev) / prev
    return f'<span class="{"up" if d >= 0 else "down"}">{d:+.0f}%</span>'


def _span(c: Cube) -> str:
    r = c.day_range()
    return f"{r[0]} to {r[1]}" if r else "no timestamps"


def compare_section(cur: Cube, prev: Cube, cur_source: str, prev_source: str, top_n: int = 15) -> str:
    d = deltas(cur, prev)
    vol = [("posts", prev.posts, cur.posts), ("posts per day", per_day(prev), per_day(cur))]
    vrows = "".join(f"<tr><td>{E(k)}</td><td class=n>{_num(a)}</td><td class=n>{_num(b)}</td>"
                    f"<td class=n>{_change(a, b)}</td></tr>" for k, a, b in vol)
    mix_rows = []
    for group in ("flags", "urgency", "issue type", "channel tried"):
        for k, (a, b, dd) in d.get(group, {}).items():
            mix_rows.append(f"<tr><td>{E(group)}</td><td>{E(k)}</td><td class=n>{a:.1f}%</td><td class=n>{b:.1f}%</td>"
                            f'<td class=n><span class="{"up" if dd >= 0 else "down"}">{dd:+.1f} pp</span></td></tr>')
    issue_items = sorted(((k, v[2]) for k, v in d.get("issue type", {}).items()), key=lambda t: -abs(t[1]))
    pc, cc = prev.count("company"), cur.count("company")
    top = sorted(cc.items(), key=lambda t: (-t[1], t[0]))[:top_n]
    crows = "".join(f"<tr><td>{E(co)}</td><td class=n>{pc.get(co, 0):,}</td><td class=n>{n:,}</td>"
                    f"<td class=n>{_change(pc.get(co, 0), n)}</td></tr>" for co, n in top)
    return ('<section id="compare"><h2>Compared with the previous period</h2>'
            f'<p class="note">Previous: {E(prev_source)} ({_span(prev)}). This period: {E(cur_source)} '
            f'({_span(cur)}). Label mix in percent of each period\'s posts; change in percentage points.</p>'
            '<table id="compare-volume"><tr><th></th><th class=n>previous</th><th class=n>this period</th>'
            f'<th class=n>change</th></tr>{vrows}</table>'
            '<h2 style="margin-top:14px">Issue mix change</h2>' + delta_chart("chart-compare-issue", issue_items)
            + '<table id="compare-mix"><tr><th>group</th><th>label</th><th class=n>previous</th><th class=n>this period'
            f'</th><th class=n>change</th></tr>{"".join(mix_rows)}</table>'
            + (('<h2 style="margin-top:14px">Companies (this period\'s top by volume)</h2><table id="compare-companies">'
                '<tr><th>company</th><th class=n>previous</th><th class=n>this period</th><th class=n>change</th></tr>'
                f'{crows}</table>') if cur.has_company else "")
            + "</section>")


def _num(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"
