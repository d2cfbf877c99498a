"""``frontline report``: one self-contained HTML page over a labelled export, or a local server that filters
the same page by company, issue type and dates (``--serve``).

The package, one concern per module:

- ``read``: the labelled file or Spark part-file directory, in batches; timestamps to days in a time zone;
- ``cube``: the one streaming aggregation every number is summed from (flat memory);
- ``spikes``: the spike rule (a pure function), per issue type and per company;
- ``examples``: a second pass for each spike's most urgent posts, masked (``serving.pii``) and truncated;
- ``compare``: ``--compare-to``, the deltas against a previous period;
- ``svg`` / ``page``: inline-SVG charts and the page (no JavaScript, no network);
- ``serve``: ``--serve``, the same page re-rendered per filter by a small stdlib HTTP server.

This module ties them together: :class:`Report` loads a source once and renders any view of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from serving.batch.report.cube import Cube, build_cube
from serving.batch.report.examples import find_examples
from serving.batch.report.page import Filters, PageInput, render
from serving.batch.report.read import parse_days, resolve_tz, source_format
from serving.batch.report.spikes import Spike, detect_spikes

__all__ = ["Filters", "Report", "ReportOptions", "Spike", "detect_spikes", "parse_days", "write_report"]

NO_TEXT_NOTE = ("Example posts need the post text in the labelled file: label with `frontline label … "
                "--carry text`.")


@dataclass
class ReportOptions:
    in_format: str | None = None
    top_companies: int = 15
    spike_factor: float = 3.0
    spike_window: int = 7
    spike_min_count: int = 10
    title: str = "frontline — why customers came to social"
    tz: str | None = None  # IANA zone for the daily buckets (default UTC)
    compare_to: Path | None = None  # a previous period's labelled file or Spark directory
    examples: int = 3  # example posts per spike (0: none)


class Report:
    """A labelled source read once (and its previous period, with ``compare_to``); :meth:`page` renders the whole
    report or a filtered view of it."""

    def __init__(self, labelled: Path, opts: ReportOptions | None = None):
        self.path, self.opts = labelled, opts or ReportOptions()
        self.tz = resolve_tz(self.opts.tz)
        self.tz_name = self.opts.tz if self.tz else "UTC"
        self.fmt = source_format(labelled, self.opts.in_format)
        self.cube: Cube = build_cube(labelled, self.fmt, self.tz)
        self.previous: Cube | None = None
        if self.opts.compare_to is not None:
            prev = Path(self.opts.compare_to)
            self.previous = build_cube(prev, source_format(prev), self.tz)
        self.companies = [co for co, _ in sorted(self.cube.count("company").items(), key=lambda t: (-t[1], t[0]))]

    def spikes(self, view: Cube) -> tuple[list[Spike], list[Spike]]:
        o = self.opts
        rule = dict(window=o.spike_window, factor=o.spike_factor, min_count=o.spike_min_count)
        issue = detect_spikes(view.daily("issue_type"), **rule, by="issue_type") if view.has_time else []
        company = detect_spikes(view.daily("company"), **rule, by="company") \
            if view.has_time and view.has_company else []
        return issue, company

    @lru_cache(maxsize=64)  # noqa: B019 -- one Report per process; views repeat while an analyst explores
    def page(self, filters: Filters | None = None) -> tuple[str, list[Spike], list[Spike]]:
        """The page (``filters`` given: the serve view, with its form) and the issue / company spikes it lists."""
        o, f = self.opts, filters or Filters()
        view = self.cube.filter(f.company, f.issue, f.start, f.end)
        previous = self.previous.filter(f.company, f.issue) if self.previous is not None else None
        spikes, company_spikes = self.spikes(view)
        examples, note = None, ""
        if o.examples > 0 and (spikes or company_spikes):
            if view.has_text:
                examples = find_examples(self.path, self.fmt, spikes[:50] + company_spikes[:50], k=o.examples,
                                         tz=self.tz, company=f.company, issue=f.issue, schema=view.schema)
                note = (f"Under each spike, its {o.examples} most urgent posts of the day (text truncated, personal "
                        "data masked).")
            else:
                note = NO_TEXT_NOTE
        rule = (f"{o.spike_factor:g}× its trailing {o.spike_window}-day median (and at least {o.spike_min_count} "
                "posts)")
        html = render(PageInput(
            cube=view, source=str(self.path), title=o.title, tz_name=self.tz_name, top_companies=o.top_companies,
            spike_rule=rule, spikes=spikes, company_spikes=company_spikes, examples=examples, example_note=note,
            previous=previous, previous_source=str(o.compare_to or ""), filters=filters, companies=self.companies))
        return html, spikes, company_spikes


def write_report(labelled: Path, out: Path, opts: ReportOptions | None = None) -> dict:
    """Write the static page to ``out`` (atomically) and return what it found."""
    from serving.batch.labelling import _atomic_write_text

    report = Report(labelled, opts)
    html, spikes, company_spikes = report.page()
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(out, html)
    return {"posts": report.cube.posts, "spikes": [s.as_dict() for s in spikes],
            "company_spikes": [s.as_dict() for s in company_spikes],
            "compared_to": str(report.opts.compare_to) if report.previous is not None else None,
            "previous_posts": report.previous.posts if report.previous is not None else None}
