"""The report page: sections drawn from a :class:`~serving.batch.report.cube.Cube`.

One function, :func:`render`, writes the static page and every ``--serve`` response, so a filtered view shows
exactly the charts of the full report over fewer posts. The page is self-contained (inline CSS and SVG, no
JavaScript); in serve mode it adds a plain HTML ``GET`` form whose fields are the URL's query parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from serving.batch.report.compare import compare_section
from serving.batch.report.cube import Cube
from serving.batch.report.examples import Example
from serving.batch.report.spikes import Spike, day_span
from serving.batch.report.svg import (
    PALETTE,
    URGENCY_COLOURS,
    E,
    bar_chart,
    heatmap,
    line_chart,
    pct,
    sparklines,
    stacked_chart,
)

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
tr.examples td{background:#fafbfc;border-bottom:1px solid #ddd}tr.examples ul{margin:2px 0;padding-left:18px}
tr.examples li{margin:3px 0;color:#333}.tag{font-size:11px;color:#fff;border-radius:3px;padding:1px 5px;margin-right:4px}
.note{color:#666;font-size:13px}.alert{color:#c62d2d;font-weight:600}.up{color:#3b6ea8}.down{color:#e07b39}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;font-size:13px}
form.filters label{display:flex;flex-direction:column;gap:3px;color:#555}
form.filters input,form.filters select,form.filters button{font:inherit;padding:4px 6px}
@media (max-width:800px){.grid{grid-template-columns:1fr}.kpis{grid-template-columns:repeat(3,1fr)}}
"""


@dataclass(frozen=True)
class Filters:
    """A ``--serve`` view: one company and/or issue type and/or a day range (the URL's query parameters)."""

    company: str | None = None
    issue: str | None = None
    start: date | None = None
    end: date | None = None

    def active(self) -> bool:
        return any((self.company, self.issue, self.start, self.end))

    def describe(self) -> str:
        parts = [f"company = {self.company}" if self.company else "", f"issue type = {self.issue}" if self.issue else "",
                 f"from {self.start}" if self.start else "", f"to {self.end}" if self.end else ""]
        return ", ".join(p for p in parts if p)


@dataclass
class PageInput:
    """Everything one page shows, computed before rendering (see ``serving.batch.report.build``)."""

    cube: Cube
    source: str
    title: str
    tz_name: str = "UTC"
    top_companies: int = 15
    spike_rule: str = ""
    spikes: list[Spike] = field(default_factory=list)
    company_spikes: list[Spike] = field(default_factory=list)
    examples: dict[Spike, list[Example]] | None = None
    example_note: str = ""
    previous: Cube | None = None
    previous_source: str = ""
    filters: Filters | None = None  # set in serve mode: the form is drawn
    companies: list[str] = field(default_factory=list)  # form choices, by volume


def render(p: PageInput) -> str:
    c = p.cube
    n = c.posts
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
             f"content=\"width=device-width, initial-scale=1\"><title>{E(p.title)}</title><style>{CSS}</style>"
             f"</head><body><main><h1>{E(p.title)}</h1>"
             f"<div class=\"sub\">{E(p.source)} · generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
             f" · days in {E(p.tz_name)}</div>"]
    if p.filters is not None:
        parts.append(_form(p))
    parts.append(_kpis(c))
    if not n:
        parts.append('<section id="empty"><h2>No posts</h2><p class="note">No labelled post matches '
                     + (E(p.filters.describe()) if p.filters and p.filters.active() else "this file") + ".</p></section>")
    if p.previous is not None:
        parts.append(compare_section(c, p.previous, p.source, p.previous_source, p.top_companies))
    parts += [_mix(c), _channels(c), _companies(c, p.top_companies), _time(p)]
    parts.append('<p class="note">Labels are model predictions (frontline); shares are of labelled posts. '
                 'Rejected and skipped rows are not included: see the label summary. Example posts have personal '
                 'data (e-mail, phone, card, account numbers) masked.</p></main></body></html>')
    return "".join(parts)


def _form(p: PageInput) -> str:
    f = p.filters or Filters()
    opts = "".join(f'<option value="{E(co)}"></option>' for co in p.companies)
    issues = "".join(f'<option value="{E(i)}"{" selected" if i == f.issue else ""}>{E(i)}</option>'
                     for i in p.cube.schema.issue_type)
    return ('<section><form class="filters" method="get" action="">'
            f'<label>company<input name="company" list="companies" value="{E(f.company or "")}" '
            f'placeholder="all"><datalist id="companies">{opts}</datalist></label>'
            f'<label>issue type<select name="issue"><option value="">all</option>{issues}</select></label>'
            f'<label>from<input type="date" name="from" value="{f.start or ""}"></label>'
            f'<label>to<input type="date" name="to" value="{f.end or ""}"></label>'
            '<button type="submit">Apply</button><a href="?">reset</a></form>'
            + (f'<p class="note" id="active-filters">Showing {E(f.describe())}.</p>' if f.active() else "")
            + "</section>")


def _kpis(c: Cube) -> str:
    s, n = c.schema, c.posts
    urgent = sum(c.count("urgency").get(u, 0) for u in s.urgency[-2:])
    kpis = [(f"{n:,}", "posts labelled"), (pct(c.total("tried"), n), "already tried another channel"),
            (pct(urgent, n), f"{' or '.join(s.urgency[-2:])} urgency"), (pct(c.total("review"), n), "need review"),
            (pct(c.total("personal"), n), "contain personal data"),
            (f"{len(c.count('company')):,}" if c.has_company else "–", "companies")]
    return ('<div class="kpis" id="kpis">'
            + "".join(f'<div class="kpi"><b>{E(v)}</b><span>{E(t)}</span></div>' for v, t in kpis) + "</div>")


def _mix(c: Cube) -> str:
    s, n = c.schema, c.posts
    urg_n, iss_n = c.count("urgency"), c.count("issue_type")
    urg = [(u, urg_n.get(u, 0)) for u in s.urgency]
    iss = sorted(((i, iss_n.get(i, 0)) for i in s.issue_type), key=lambda t: -t[1])
    return ('<div class="grid" style="margin-top:14px"><section><h2>Urgency</h2>'
            + bar_chart("chart-urgency", urg, colours=URGENCY_COLOURS, total=n, width=430)
            + '</section><section><h2>Issue type</h2>' + bar_chart("chart-issue", iss, total=n, width=430)
            + '</section></div><section><h2>Urgency by issue type</h2><p class="note">Posts per issue type and '
            'urgency.</p>' + heatmap("chart-urgency-issue", [i for i, _ in iss], list(s.urgency),
                                     c.count(["issue_type", "urgency"])) + "</section>")


def _channels(c: Cube) -> str:
    s, n = c.schema, c.posts
    tried = c.total("tried")
    men = c.mentions()
    ch = sorted(((k, men.get(k, 0)) for k in s.prior_channels), key=lambda t: -t[1])
    top = ch[0][0] if ch and ch[0][1] else None
    out = ['<section><h2>Why did they come to social? Channels tried before</h2>'
           f'<p class="note">{pct(tried, n)} of posts say the customer already tried another channel'
           + (f"; the most common is <b>{E(top)}</b>" if top else "") + ". Share of all posts:</p>"
           + bar_chart("chart-channels", ch, total=n) + "</section>"]
    iss_n, iss_tried, by_issue = c.count("issue_type"), c.count("issue_type", "tried"), c.mentions(["issue_type", "channel"])
    rows = [(i, {k: 100 * by_issue.get((i, k), 0) / cnt for k in s.prior_channels},
             f"{pct(iss_tried.get(i, 0), cnt)} tried") for i, cnt in iss_n.items() if cnt]
    rows.sort(key=lambda r: -sum(r[1].values()))
    out.append('<section><h2>Channels tried, by issue type</h2><p class="note">Percent of each issue type\'s posts '
               'that mention each earlier channel (a post can name several); at the end, the share that tried '
               'any.</p>' + stacked_chart("chart-channels-by-issue", rows, list(s.prior_channels)) + "</section>")
    return "".join(out)


def _companies(c: Cube, top_n: int) -> str:
    s, n = c.schema, c.posts
    if not c.has_company:
        return '<section><h2>Companies</h2><p class="note">No company column in this file.</p></section>'
    counts = c.count("company")
    topc = sorted(counts.items(), key=lambda t: (-t[1], t[0]))[:top_n]
    tried, by_ch, by_iss = c.count("company", "tried"), c.mentions(["company", "channel"]), c.count(["company", "issue_type"])
    urg = c.count(["company", "urgency"])
    crow, table = [], [("<table id=\"companies\"><tr><th>company</th><th class=n>posts</th><th class=n>tried another "
                        f"channel</th><th>top channel</th><th class=n>{E(' / '.join(s.urgency[-2:]))}</th>"
                        "<th>top issue</th></tr>")]
    for co, cnt in topc:
        crow.append((co, {k: 100 * by_ch.get((co, k), 0) / cnt for k in s.prior_channels},
                     f"{pct(tried.get(co, 0), cnt)} tried"))
        tc = max(s.prior_channels, key=lambda k: by_ch.get((co, k), 0))
        ti = max(s.issue_type, key=lambda i: by_iss.get((co, i), 0))
        urgent = sum(urg.get((co, u), 0) for u in s.urgency[-2:])
        table.append(f"<tr><td>{E(co)}</td><td class=n>{cnt:,}</td><td class=n>{pct(tried.get(co, 0), cnt)}</td>"
                     f"<td>{E(tc) if by_ch.get((co, tc)) else '–'}</td><td class=n>{pct(urgent, cnt)}</td>"
                     f"<td>{E(ti)}</td></tr>")
    table.append("</table>")
    return (f'<section><h2>Top {len(topc)} companies by volume</h2>' + bar_chart("chart-companies", topc, total=n)
            + '</section><section><h2>Channels tried, by company</h2><p class="note">Percent of each company\'s '
            'posts that mention each earlier channel.</p>'
            + stacked_chart("chart-channels-by-company", crow, list(s.prior_channels)) + "".join(table) + "</section>")


def _time(p: PageInput) -> str:
    c = p.cube
    if not (c.has_time and c.with_time):
        return ('<section><h2>Volume over time</h2><p class="note">No timestamps '
                + ("in this view" if c.has_time else "in this file (label with --time-col to get daily volume and "
                   "spike detection)") + ".</p></section>")
    by_issue = c.daily("issue_type")
    days = day_span(by_issue)
    total: dict[date, int] = {}
    for ser in by_issue.values():
        for d, k in ser.items():
            total[d] = total.get(d, 0) + k
    marks = [(sp.day, total.get(sp.day, 0), f"{sp.day}: {sp.series} spike, {sp.count} posts "
              f"({sp.factor:.1f}× trailing median {sp.baseline:g})") for sp in p.spikes]
    out = [f'<section><h2>Volume per day</h2><p class="note">{c.with_time:,} of {c.posts:,} posts have a '
           f'timestamp; {days[0]} to {days[-1]} (days in {E(p.tz_name)}). Red dots: days with an issue-type '
           'spike.</p>' + line_chart("chart-volume", days, [total.get(d, 0) for d in days], marks) + "</section>"]
    order = sorted(by_issue, key=lambda i: -sum(by_issue[i].values()))
    series = [(i, [by_issue[i].get(d, 0) for d in days]) for i in order]
    out.append('<section><h2>Spikes by issue type (early warning)</h2>'
               + _spike_table("spikes", "issue type", p.spikes, p)
               + '<p class="note">Daily posts per issue type, each on its own scale.</p>'
               + sparklines("chart-issue-daily", days, series, p.spikes) + "</section>")
    if c.has_company:
        by_co = c.daily("company")
        volume = sorted(by_co, key=lambda k: -sum(by_co[k].values()))
        shown = list(dict.fromkeys([sp.series for sp in p.company_spikes] + volume[:5]))[:12]
        cseries = [(co, [by_co[co].get(d, 0) for d in days]) for co in shown]
        out.append('<section><h2>Spikes by company</h2>' + _spike_table("company-spikes", "company",
                                                                        p.company_spikes, p)
                   + '<p class="note">Daily posts of the companies that spiked and the five largest, each on its own '
                     'scale.</p>' + sparklines("chart-company-daily", days, cseries, p.company_spikes) + "</section>")
    return "".join(out)


def _spike_table(table_id: str, what: str, spikes: list[Spike], p: PageInput) -> str:
    if not spikes:
        return f'<p class="note" id="{table_id}">No spikes: no {what} reached {E(p.spike_rule)}.</p>'
    rows = []
    for sp in spikes[:50]:
        rows.append(f"<tr><td>{sp.day}</td><td>{E(sp.series)}</td><td class=n>{sp.count:,}</td>"
                    f"<td class=n>{sp.baseline:g}</td><td class=n>{sp.factor:.1f}×</td></tr>")
        if p.examples is not None:
            ex = p.examples.get(sp, [])
            items = "".join(_example(e, sp.by) for e in ex) or '<li class="note">no post text for this day</li>'
            rows.append(f'<tr class="examples"><td></td><td colspan="4"><ul>{items}</ul></td></tr>')
    more = f'<p class="note">{len(spikes) - 50} more not listed.</p>' if len(spikes) > 50 else ""
    note = f'<p class="note">{E(p.example_note)}</p>' if p.example_note else ""
    article = "an" if what[0] in "aeiou" else "a"
    return (f'<p class="alert">{len(spikes)} spike(s): {article} {what}\'s daily volume reached {E(p.spike_rule)}. Check '
            'for an outage or incident on these days.</p>' + note
            + f'<table id="{table_id}"><tr><th>day</th><th>{E(what)}</th><th class=n>posts</th>'
            f'<th class=n>trailing median</th><th class=n>factor</th></tr>{"".join(rows)}</table>{more}')


def _example(e: Example, by: str) -> str:
    colour = URGENCY_COLOURS[-1] if e.urgency == "critical" else URGENCY_COLOURS[-2] if e.urgency == "high" \
        else PALETTE[-3]
    other = e.issue_type if by == "company" else e.company
    return (f'<li class="example"><span class="tag" style="background:{colour}">{E(e.urgency)}</span>'
            f'<span class="note">{E(other)}{" · " + E(e.id) if e.id else ""}</span> — {E(e.text)}</li>')
