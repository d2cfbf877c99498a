"""The column rules: which input column plays which role, and what one input row becomes.

Both engines apply these rules through this module, so a row is labelled, rejected or skipped for the same
reason whether it went through the local streaming run or Spark (``serving.batch.spark`` calls
:func:`check_row` on its executors, over the same :class:`Record` the local reader yields):

* **Detection** (:func:`detect_columns`): first case-insensitive match in the candidate lists; an explicit
  ``--*-col`` always wins, a missing one is an error that lists the file's columns.
* **Text** must be a string (raw bytes are decoded as strict UTF-8). A number, object, array or boolean is not
  a post: it is rejected with its type, never coerced into text the model would then label.
* **id, time, company** may be any scalar (a JSON number id is common); an object or array there is rejected.
* **Company**: the company column, or when it is absent or empty, the first ``@handle`` the post addresses that
  is not all digits (TWCS anonymises customers to numbers). Handles are Unicode word characters
  (``@Café_help`` → ``Café_help``), in both engines, because both call :func:`company_from_text`.
* **Inbound**: when an inbound column exists, only rows where it is true are labelled; others are skipped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from serving.batch.errors import LabelError
from serving.batch.formats import EXCERPT_CHARS, Record
from training.predict import flat_column_kinds, flat_columns
from training.schema import SCHEMA, LabelSchema

ID_CANDIDATES = ("id", "tweet_id", "post_id", "message_id", "status_id")
TEXT_CANDIDATES = ("text", "full_text", "body", "message", "content", "post", "tweet")
TIME_CANDIDATES = ("created_at", "timestamp", "time", "date", "created", "posted_at")
COMPANY_CANDIDATES = ("company", "brand", "company_handle", "account")
INBOUND_CANDIDATES = ("inbound",)
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t"})
_HANDLE = re.compile(r"@(\w{1,50})")  # str pattern: \w is Unicode (é, ß, 日本 are handle characters)


@dataclass
class Columns:
    """Which input columns play which role (input names), and the output names of the extra columns."""

    text: str
    id: str | None = None
    time: str | None = None
    company: str | None = None
    company_from_text: bool = False
    inbound: str | None = None
    carry: list[str] = field(default_factory=list)
    carry_out: list[str] = field(default_factory=list)  # output names of carried columns (prefixed on collision)

    def needed(self) -> list[str]:
        names = [self.text, self.id, self.time, self.company, self.inbound, *self.carry]
        return list(dict.fromkeys(n for n in names if n))

    def output_extra(self) -> list[str]:
        out = ["id"]
        if self.time:
            out.append("created_at")
        if self.company or self.company_from_text:
            out.append("company")
        return out + self.carry_out

    def describe(self) -> dict:
        """The columns as the run summary states them."""
        return {"id": self.id, "text": self.text, "time": self.time,
                "company": self.company or ("first @handle in the text" if self.company_from_text else None),
                "inbound": self.inbound, "carry": dict(zip(self.carry, self.carry_out))}


def _find(header: list[str], wanted: str | None, candidates: tuple[str, ...], role: str, required: bool) -> str | None:
    lower = {h.lower(): h for h in reversed(header)}
    if wanted:
        if wanted in header:
            return wanted
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise LabelError(f"{role} column {wanted!r} not in the input; columns are: {', '.join(header)}")
    for c in candidates:
        if c in lower:
            return lower[c]
    if required:
        raise LabelError(f"no {role} column found (looked for {', '.join(candidates)}); pass --{role}-col. "
                         f"Columns are: {', '.join(header)}")
    return None


def detect_columns(header: list[str], *, id_col: str | None = None, text_col: str | None = None,
                   time_col: str | None = None, company_col: str | None = None, inbound_col: str | None = None,
                   carry: list[str] | None = None, schema: LabelSchema = SCHEMA) -> Columns:
    """Map roles to input columns. ``inbound_col``: None = detect, '' or 'none' = no inbound filter."""
    text = _find(header, text_col, TEXT_CANDIDATES, "text", True)
    ident = _find(header, id_col, ID_CANDIDATES, "id", False)
    tcol = _find(header, time_col, TIME_CANDIDATES, "time", False)
    comp = _find(header, company_col, COMPANY_CANDIDATES, "company", False)
    if inbound_col is not None and inbound_col.lower() in ("", "none"):
        inbound = None
    else:
        inbound = _find(header, inbound_col, INBOUND_CANDIDATES, "inbound", False)
    cols = Columns(text=text, id=ident, time=tcol, company=comp, company_from_text=comp is None, inbound=inbound)
    taken = set(cols.output_extra()) | set(flat_columns(schema)) | {"contains_personal_data"}
    for c in carry or []:
        name = _find(header, c, (), "carried", True)
        if name in cols.carry:
            continue
        out = name
        while out in taken:  # e.g. a gold 'urgency' column carried next to the predicted one
            out = f"input_{out}"
        cols.carry.append(name)
        cols.carry_out.append(out)
        taken.add(out)
    return cols


def company_from_text(text: str) -> str | None:
    """The first @handle the post addresses that is not an anonymised customer handle (all digits)."""
    for m in _HANDLE.finditer(text):
        if not m.group(1).isdigit():
            return m.group(1)
    return None


def output_schema(cols: Columns, schema: LabelSchema = SCHEMA) -> pa.Schema:
    """The labelled file's columns: id / created_at / company / carried, then the model's flat columns."""
    fields = [pa.field(n, pa.string()) for n in cols.output_extra()]
    arrow = {"label": pa.string(), "labels": pa.list_(pa.string()), "flag": pa.bool_(), "score": pa.float64()}
    for name, kind in flat_column_kinds(schema):
        fields.append(pa.field(name, arrow[kind]))
        if name == "needs_review":
            fields.append(pa.field("contains_personal_data", pa.bool_()))
    return pa.schema(fields)


# --------------------------------------------------------------------------------------------- one row


class Undecodable(str):
    """A value an engine already decoded with U+FFFD replacements (Spark's CSV reader): treated as bad bytes."""


class WrongType(ValueError):
    """A cell whose type cannot play its role (a number as a post's text, an object as an id)."""


def json_kind(v: Any) -> str:
    """A value's type in the words of the JSON it most likely came from."""
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, (list, tuple)):
        return "array"
    return type(v).__name__


def _decode(v: bytes | bytearray | Undecodable) -> str:
    if isinstance(v, Undecodable):
        raise UnicodeDecodeError("utf-8", v.encode("utf-8", "replace"), max(v.find("\ufffd"), 0),
                                 max(v.find("\ufffd"), 0) + 1, "U+FFFD replacement in the engine's decoded text")
    return bytes(v).decode("utf-8")


def as_text(v: Any) -> str | None:
    """A post's text: only a string (or UTF-8 bytes) is one. Raises UnicodeDecodeError or :class:`WrongType`."""
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, Undecodable)):
        return _decode(v)
    if isinstance(v, str):
        return v
    kind = json_kind(v)
    raise WrongType(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}, not a string")


def as_value(v: Any) -> str | None:
    """An id / time / company cell as text: any scalar; an object or array is :class:`WrongType`."""
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, Undecodable)):
        return _decode(v)
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, (dict, list, tuple)):
        raise WrongType(f"an {json_kind(v)}, not a value")
    return str(v)


def as_carried(v: Any) -> str | None:
    """A carried column: copied through as text, objects and arrays as their JSON."""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return as_value(v)


def is_inbound(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    try:
        s = as_value(v)
    except (UnicodeDecodeError, WrongType):
        return False
    return (s or "").strip().lower() in TRUE_WORDS


def excerpt_of(values: dict) -> str:
    parts = []
    for v in values.values():
        if isinstance(v, (bytes, bytearray)):
            parts.append(bytes(v).decode("utf-8", errors="backslashreplace"))
        elif isinstance(v, (dict, list)):
            parts.append(json.dumps(v, ensure_ascii=False, default=str))
        else:
            parts.append("" if v is None else str(v))
    return ",".join(parts)[:EXCERPT_CHARS]


def reason_key(reason: str) -> str:
    """The summary's bucket for a reason: 'undecodable bytes (not UTF-8) in column ...' → 'undecodable bytes'."""
    return reason.split(":")[0].split(" (")[0]


@dataclass
class Outcome:
    """What one input record becomes: ``ok`` with its output fields, ``reject`` with a reason, or ``skip``."""

    status: str
    reason: str | None = None
    id: str | None = None
    excerpt: str | None = None
    fields: dict | None = None  # id, text, created_at, company and the carried columns' output names


def check_row(rec: Record, cols: Columns) -> Outcome:
    """Apply the column rules to one record (the one implementation both engines call)."""
    if rec.error is not None:
        return Outcome("reject", rec.error, None, rec.excerpt)
    vals = rec.values
    if cols.inbound and not is_inbound(vals.get(cols.inbound)):
        return Outcome("skip")
    ident = None
    if cols.id:
        try:
            ident = as_value(vals.get(cols.id))
        except (UnicodeDecodeError, WrongType):
            ident = None  # the rule below rejects the row with the reason
    out: dict[str, Any] = {}
    roles = [(cols.text, "text", as_text), (cols.id, "id", as_value), (cols.time, "created_at", as_value),
             (cols.company, "company", as_value)]
    roles += [(c, o, as_carried) for c, o in zip(cols.carry, cols.carry_out)]
    for name, key, conv in roles:
        if not name:
            continue
        try:
            out[key] = conv(vals.get(name))
        except UnicodeDecodeError as e:
            return Outcome("reject", f"undecodable bytes (not UTF-8) in column {name!r} at byte {e.start}", ident,
                           excerpt_of(vals))
        except WrongType as e:
            what = "text" if key == "text" else f"column {name!r}"
            return Outcome("reject", f"wrong type: {what} is {e}", ident, excerpt_of(vals))
    text = out["text"]
    if text is None or not text.strip():
        return Outcome("reject", "empty text", ident, excerpt_of(vals))
    out["id"] = ident if cols.id else (str(rec.row) if rec.row else None)  # row 0: an engine without numbers
    company = out.get("company")
    if company is None or not company.strip():  # no company column, or an empty cell: whom the post addresses
        out["company"] = company_from_text(text)
    return Outcome("ok", id=out["id"], fields=out)
