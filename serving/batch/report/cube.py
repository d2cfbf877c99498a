"""The aggregation behind every chart: two small count tables ("cubes") built in one streaming pass.

``main`` counts posts per (company, issue type, urgency, day) with the number that tried another channel,
need review and carry personal data; ``channels`` counts channel mentions per (company, issue type, day,
channel). Every number on the page is a sum over one of them, so the same code draws the static report, the
``--serve`` view filtered by company / issue / dates, and the previous period of ``--compare-to``. Their size
is bounded by the distinct keys (companies × issue types × urgencies × days), not by the rows read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from serving.batch.labelling import LabelError
from serving.batch.report.read import (
    TEXT_COLS,
    batches,
    check_columns,
    columns_of,
    parse_days,
)
from training.schema import SCHEMA, LabelSchema

UNKNOWN = "(unknown)"  # company of a post whose company cell is empty
KEYS = ["company", "issue_type", "urgency", "day"]
VALUES = ["posts", "tried", "review", "personal"]
CH_KEYS = ["company", "issue_type", "day", "channel"]
_COMPACT_EVERY = 32  # batches between re-aggregations of the partial tables


def _flag(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df:
        return pd.Series(0, index=df.index)
    return df[col].eq(True).fillna(False).astype(int)  # NaN/None (a Spark JSON null) is False, not truthy


def _company(df: pd.DataFrame) -> pd.Series:
    if "company" not in df:
        return pd.Series(UNKNOWN, index=df.index)
    return df["company"].fillna("").astype(str).str.strip().replace("", UNKNOWN)


def _days(df: pd.DataFrame, tz) -> pd.Series:
    if "created_at" not in df:
        return pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
    return parse_days(df["created_at"], tz).astype("datetime64[ns]")


@dataclass(frozen=True)
class Cube:
    main: pd.DataFrame  # KEYS + VALUES
    channels: pd.DataFrame  # CH_KEYS + ["mentions"]
    has_company: bool = False
    has_time: bool = False
    has_text: bool = False
    schema: LabelSchema = SCHEMA

    # ---------------------------------------------------------------------------------- filtering

    def filter(self, company: str | None = None, issue: str | None = None, start: date | None = None,
               end: date | None = None) -> Cube:
        """The posts of one company and/or issue type, between two days (inclusive). A date bound drops the
        posts without a timestamp (they cannot be placed in the range)."""
        def keep(df: pd.DataFrame) -> pd.Series:
            m = pd.Series(True, index=df.index)
            if company:
                m &= df["company"] == company
            if issue:
                m &= df["issue_type"] == issue
            if start:
                m &= df["day"] >= pd.Timestamp(start)
            if end:
                m &= df["day"] <= pd.Timestamp(end)
            return m

        return replace(self, main=self.main[keep(self.main)], channels=self.channels[keep(self.channels)])

    # ---------------------------------------------------------------------------------- sums

    @property
    def posts(self) -> int:
        return int(self.main["posts"].sum())

    def total(self, value: str) -> int:
        return int(self.main[value].sum())

    def count(self, by: str | list[str], value: str = "posts") -> dict:
        """{key: sum of ``value``} over one or more key columns (a tuple key for several)."""
        if self.main.empty:
            return {}
        s = self.main.groupby(by, observed=True)[value].sum()
        return {k: int(v) for k, v in s.items() if v}

    def mentions(self, by: str | list[str] = "channel") -> dict:
        if self.channels.empty:
            return {}
        s = self.channels.groupby(by, observed=True)["mentions"].sum()
        return {k: int(v) for k, v in s.items() if v}

    def daily(self, by: str = "issue_type") -> dict[str, dict[date, int]]:
        """{series: {day: posts}} for the posts that have a day."""
        timed = self.main[self.main["day"].notna()]
        out: dict[str, dict[date, int]] = {}
        for (key, day), n in timed.groupby([by, "day"], observed=True)["posts"].sum().items():
            if n:
                out.setdefault(key, {})[day.date()] = int(n)
        return out

    @property
    def with_time(self) -> int:
        return int(self.main.loc[self.main["day"].notna(), "posts"].sum())

    def day_range(self) -> tuple[date, date] | None:
        days = self.main.loc[self.main["day"].notna() & (self.main["posts"] > 0), "day"]
        return (days.min().date(), days.max().date()) if len(days) else None


class _Codes:
    """A growing string → int code book, so the partial tables hold small integers instead of strings (a third
    of the memory on a million rows with dense keys) and decode to categoricals once, at the end."""

    def __init__(self, initial: tuple[str, ...] = ()):
        self.names: list[str] = list(initial)
        self.index = {n: i for i, n in enumerate(self.names)}

    def encode(self, s: pd.Series) -> np.ndarray:
        local, uniques = pd.factorize(s)
        book = np.array([self.index.setdefault(u, len(self.index)) for u in uniques] + [-1], dtype=np.int32)
        self.names = list(self.index)
        return book[local]  # pandas' NaN code -1 picks the trailing -1



# Each partial table row is one packed int64 key (company | issue | urgency | day, or company | issue | day |
# channel) plus its counts: a single-integer group-by is several times lighter than one over four columns.
_BITS = {"company": 24, "issue_type": 7, "urgency": 5, "channel": 5, "day": 21}
_DAY0 = 1 << 20  # day code = days since 1970 + _DAY0 (1970 ± 2,800 years); 0 = no timestamp


def _pack(cols: dict[str, np.ndarray], order: list[str]) -> np.ndarray:
    key = np.zeros(len(next(iter(cols.values()))), dtype=np.int64)
    for name in order:
        v = cols[name].astype(np.int64)
        if len(v) and (v.max() >= 1 << _BITS[name] or v.min() < 0):
            raise LabelError(f"too many distinct {name} values for the report (at most {1 << _BITS[name]:,})")
        key = (key << _BITS[name]) | v
    return key


def _unpack(key: np.ndarray, order: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for name in reversed(order):
        out[name] = (key & ((1 << _BITS[name]) - 1)).astype(np.int64)
        key = key >> _BITS[name]
    return out


class CubeBuilder:
    """Adds batches of labelled rows; :meth:`build` returns the :class:`Cube`."""

    def __init__(self, tz=None, schema: LabelSchema = SCHEMA):
        self.tz, self.schema = tz, schema
        self._codes = {"company": _Codes(), "issue_type": _Codes(tuple(schema.issue_type)),
                       "urgency": _Codes(tuple(schema.urgency)), "channel": _Codes(tuple(schema.prior_channels))}
        self._main: list[pd.DataFrame] = []
        self._channels: list[pd.DataFrame] = []
        self.has_company = self.has_time = self.has_text = False

    def add(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        self.has_company |= "company" in df
        self.has_time |= "created_at" in df
        c = self._codes
        days = _days(df, self.tz)
        day = np.where(days.isna(), 0, days.to_numpy().astype("datetime64[D]").astype(np.int64) + _DAY0)
        cols = {"company": c["company"].encode(_company(df)), "issue_type": c["issue_type"].encode(
            df["issue_type"].astype(str)), "urgency": c["urgency"].encode(df["urgency"].astype(str)), "day": day}
        frame = pd.DataFrame({"key": _pack(cols, KEYS), "posts": 1,
                              "tried": _flag(df, "tried_other_channel").to_numpy(),
                              "review": _flag(df, "needs_review").to_numpy(),
                              "personal": _flag(df, "contains_personal_data").to_numpy()})
        self._main.append(frame.groupby("key", sort=False)[VALUES].sum().reset_index())
        ex = pd.DataFrame({"row": np.arange(len(df)), "channel": df["prior_channels"].to_numpy()}).explode("channel")
        ex = ex[ex["channel"].notna() & (ex["channel"] != "")]
        if len(ex):
            rows = ex["row"].to_numpy(dtype=np.int64)
            key = _pack({"company": cols["company"][rows], "issue_type": cols["issue_type"][rows],
                         "day": day[rows], "channel": c["channel"].encode(ex["channel"].astype(str))}, CH_KEYS)
            self._channels.append(pd.DataFrame({"key": key, "mentions": 1}).groupby("key", sort=False)
                                  [["mentions"]].sum().reset_index())
        if len(self._main) >= _COMPACT_EVERY:
            self._compact()

    def _compact(self) -> None:
        self._main = [_regroup(self._main, VALUES)]
        self._channels = [_regroup(self._channels, ["mentions"])]

    def _decode(self, df: pd.DataFrame, order: list[str]) -> pd.DataFrame:
        codes = _unpack(df["key"].to_numpy(), order)
        out = {k: pd.Categorical.from_codes(codes[k], categories=self._codes[k].names) for k in order if k != "day"}
        day = codes["day"]
        out["day"] = pd.Series(np.where(day == 0, np.datetime64("NaT"), (day - _DAY0).astype("datetime64[D]")),
                               index=df.index).astype("datetime64[ns]")
        return pd.DataFrame({**{k: out[k] for k in order}, **{v: df[v] for v in df.columns if v != "key"}},
                            index=df.index)

    def build(self) -> Cube:
        main = self._decode(_regroup(self._main, VALUES), KEYS)
        channels = self._decode(_regroup(self._channels, ["mentions"]), CH_KEYS)
        return Cube(main, channels, self.has_company, self.has_time, self.has_text, self.schema)


def _regroup(parts: list[pd.DataFrame], values: list[str]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in ["key", *values]})
    df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return df.groupby("key", sort=False)[values].sum().reset_index()


def build_cube(path: Path, fmt: str, tz=None, schema: LabelSchema = SCHEMA) -> Cube:
    """One streaming pass over a labelled file or Spark directory."""
    b = CubeBuilder(tz, schema)
    b.has_text = bool(set(TEXT_COLS) & columns_of(path, fmt))
    for df in batches(path, fmt):
        check_columns(df, path)
        b.add(df)
    return b.build()
