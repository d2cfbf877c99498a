"""The spike rule: a day on which a daily series (one issue type, or one company) jumps well above its own
trailing baseline. A pure function over {series: {day: count}}, so the static page, the ``--serve`` view and
the tests apply exactly the same rule."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Spike:
    series: str  # the issue type or company whose daily count jumped
    day: date
    count: int
    baseline: float  # median of the trailing window
    factor: float  # count / max(baseline, 1)
    by: str = "issue_type"  # which dimension ``series`` belongs to: "issue_type" or "company"

    def as_dict(self) -> dict:
        return {self.by: self.series, "day": self.day.isoformat(), "count": self.count, "baseline": self.baseline,
                "factor": self.factor}


def day_span(daily: Mapping[str, Mapping[date, int]]) -> list[date]:
    """Every calendar day from the first to the last day with a post in any series (gaps included)."""
    all_days = [d for s in daily.values() for d, c in s.items() if c]
    if not all_days:
        return []
    first, last = min(all_days), max(all_days)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def detect_spikes(daily: Mapping[str, Mapping[date, int]], *, window: int = 7, factor: float = 3.0,
                  min_count: int = 10, by: str = "issue_type") -> list[Spike]:
    """Days on which a series jumps well above its own trailing baseline.

    ``daily`` maps a series name (an issue type, a company) to {day: count}; missing days count as zero over the
    full span of all series. A day is a spike when it has a full trailing window of ``window`` earlier days, its
    count is at least ``min_count``, and at least ``factor`` × the trailing median (a median of 0 counts as 1, so a
    quiet series needs ``max(min_count, factor)`` posts). Sorted by factor, largest first.
    """
    days = day_span(daily)
    spikes = []
    for name, series in daily.items():
        if not series or max(series.values()) < min_count:  # cannot spike: skip (thousands of small companies)
            continue
        counts = [int(series.get(d, 0)) for d in days]
        for i in range(window, len(days)):
            c = counts[i]
            if c < min_count:
                continue
            base = float(statistics.median(counts[i - window:i]))
            ratio = c / max(base, 1.0)
            if ratio >= factor:
                spikes.append(Spike(name, days[i], c, base, round(ratio, 2), by))
    return sorted(spikes, key=lambda s: (-s.factor, s.day, s.series))
