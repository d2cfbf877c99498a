"""The column rules, once, for both engines: what one record becomes (labelled / rejected with a reason / skipped),
checked directly, through the local chunk preparation and through the Spark engine's executor-side adapter
(``prepare_batches``, called here on Arrow batches without a Spark session; test_spark.py runs it in Spark)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from serving.batch.chunked import prepare_chunk
from serving.batch.columns import Undecodable, check_row, company_from_text, detect_columns, reason_key
from serving.batch.formats import Record, parse_json_line
from serving.batch.spark import prepare_batches

COLS = detect_columns(["id", "text", "company", "created_at"])


def _rec(**vals):
    return Record(7, {"id": "p7", "company": None, "created_at": None, **vals})


@pytest.mark.parametrize("value, kind", [(42, "a number"), (3.5, "a number"), ({"a": 1}, "an object"),
                                         (["x"], "an array"), (True, "a boolean")])
def test_text_that_is_not_a_string_is_rejected_with_its_type(value, kind):
    o = check_row(_rec(text=value), COLS)
    assert o.status == "reject" and o.reason == f"wrong type: text is {kind}, not a string"
    assert o.id == "p7" and reason_key(o.reason) == "wrong type"


def test_scalar_ids_pass_objects_do_not():
    assert check_row(Record(1, {"id": 1234567890123456789, "text": "late"}), detect_columns(["id", "text"])).id \
        == "1234567890123456789"
    o = check_row(Record(1, {"id": {"x": 1}, "text": "late"}), detect_columns(["id", "text"]))
    assert o.status == "reject" and o.reason == "wrong type: column 'id' is an object, not a value"


def test_empty_undecodable_and_inbound_rules():
    assert check_row(_rec(text="   "), COLS).reason == "empty text"
    assert check_row(_rec(text=None), COLS).reason == "empty text"
    assert check_row(_rec(text=b"caf\xe9"), COLS).reason.startswith("undecodable bytes (not UTF-8) in column 'text'")
    assert reason_key(check_row(_rec(text=Undecodable("caf\ufffd")), COLS).reason) == "undecodable bytes"
    inbound = detect_columns(["id", "text", "inbound"])
    assert check_row(Record(1, {"id": "a", "text": "hi", "inbound": "False"}), inbound).status == "skip"
    assert check_row(Record(1, {"id": "a", "text": "hi", "inbound": True}), inbound).status == "ok"
    assert check_row(Record(3, {"text": "no id column"}), detect_columns(["text"])).id == "3"  # the row number


def test_unicode_handles_are_companies():
    assert company_from_text("@Café_help my card was charged twice") == "Café_help"
    assert company_from_text("@115712 @Müller_Bahn zug fällt aus") == "Müller_Bahn"
    o = check_row(_rec(text="@Café_help where is my order", company=""), COLS)
    assert o.fields["company"] == "Café_help"
    assert check_row(_rec(text="@Café_help hi", company="Acme"), COLS).fields["company"] == "Acme"


HOSTILE_LINES = [
    json.dumps({"id": "a", "text": "@Café_help my card was charged twice", "company": ""}).encode(),
    json.dumps({"id": "b", "text": 42}).encode(),
    json.dumps({"id": "c", "text": {"body": "nested"}}).encode(),
    b'{"id": "d", "text": "unterminated',
    b'{"id": "e", "text": "caf\xe9 bad bytes"}',
    b"",
    b'["not", "an", "object"]',
    json.dumps({"id": 17, "text": "@AmazonHelp parcel lost", "created_at": 1509487847}).encode(),
    b"\xef\xbb\xbf" + json.dumps({"id": "f", "text": "bom first"}).encode(),
]


def _local(lines):
    recs = [parse_json_line(line, i, COLS.needed()) for i, line in enumerate(lines, 1) if line.strip()]
    good, rejects, res = prepare_chunk(recs, COLS)
    return good, rejects, res


def _spark_adapter(lines, kind="jsonl"):
    batch = pa.RecordBatch.from_pydict({"line": lines}, schema=pa.schema([("line", pa.binary())]))
    [out] = list(prepare_batches(iter([batch]), cols=COLS, kind=kind))
    return out.to_pylist()


def test_spark_adapter_gives_the_local_verdict_for_every_jsonl_line():
    lines = HOSTILE_LINES[:-1]  # the BOM line is the file's first line only locally; checked below
    good, rejects, res = _local(lines)
    rows = _spark_adapter(lines)
    assert [r["_status"] for r in rows] == ["ok", "reject", "reject", "reject", "reject", "blank", "reject", "ok"]
    spark_ok = [r for r in rows if r["_status"] == "ok"]
    assert [r["id"] for r in spark_ok] == good["id"] == ["a", "17"]
    assert [r["company"] for r in spark_ok] == good["company"] == ["Café_help", "AmazonHelp"]
    assert [r["created_at"] for r in spark_ok] == good["created_at"] == [None, "1509487847"]
    spark_rej = [r for r in rows if r["_status"] == "reject"]
    assert [(r["id"], r["_reason"]) for r in spark_rej] == [(r["id"], r["reason"]) for r in rejects]
    assert res.reasons == {"wrong type": 2, "broken JSON": 1, "undecodable bytes": 1, "not a JSON object": 1}
    # a BOM before the first object is an encoding mark in both engines
    assert _local([HOSTILE_LINES[-1]])[0]["id"] == ["f"] and _spark_adapter([HOSTILE_LINES[-1]])[0]["id"] == "f"


def test_spark_adapter_csv_rows_replacement_chars_malformed_rows_and_multiline_fields():
    batch = pa.RecordBatch.from_pydict({
        "id": ["1", "2", "3", None], "text": ["ok post", "caf\ufffd latte", "first line\nswallowed,row", None],
        "company": ["", "Acme", "Acme", None], "created_at": [None] * 4,
        "_corrupt_record": [None, None, None, "4,too,many,fields"]})
    rows = list(prepare_batches(iter([batch]), cols=COLS, kind="csv"))[0].to_pylist()
    assert [r["_status"] for r in rows] == ["ok", "reject", "ok", "reject"]
    assert rows[1]["_reason_key"] == "undecodable bytes" and rows[3]["_reason_key"] == "malformed CSV row"
    assert [r["_multiline"] for r in rows] == [0, 0, 1, 0]
