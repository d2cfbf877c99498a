"""A hostile-input corpus through the local engine: NUL bytes, bad UTF-8, a BOM, CRLF line ends, unterminated
quotes, 1 MB fields, wrong JSON types, truncated gzip, an empty file, a header with no rows.

For every file, every input row is accounted for: labelled (in the output), or rejected with a reason (in the
rejects file), ``rows_read = labelled + rejected + skipped`` holds, and the run finishes with a valid output.
What standard CSV cannot tell apart (an unterminated quote that swallows the rows after it) is warned about and
counted in the summary.
"""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving.batch.labelling import LabelError, LabelOptions, run_label
from tests.serving.batch.label_support import read_output, read_rejects, read_summary, sample_posts

pytestmark = pytest.mark.reliability

# plain one-line texts without quotes, so that every quote and line break in a file below is the test's own
T = [p["text"].encode() for p in sample_posts(60, offset=200) if not set(p["text"]) & set('"\r\n')][:8]


def _label(tmp_path, predictor, name: str, data: bytes, out_fmt: str = "jsonl", **kw) -> tuple[dict, list, list]:
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / f"{name}.out.{out_fmt}"
    s = run_label(LabelOptions(input=src, output=out, chunk_rows=5, **kw), predictor=predictor,
                  model_info={"uri": "tiny"}, progress=False)
    rows, rejects = read_output(out), read_rejects(out)
    assert s == read_summary(out)
    assert s["rows_read"] == s["labelled"] + s["rejected"] + s["skipped_not_inbound"]
    assert len(rows) == s["labelled"] and len(rejects) == s["rejected"]
    assert all(r["reason"] for r in rejects)
    return s, rows, rejects


def _csv(rows: list[bytes], eol: bytes = b"\n", header: bytes = b"id,text") -> bytes:
    return eol.join([header, *rows]) + eol


def _ids(rows):
    return [r["id"] for r in rows]


def test_nul_bytes(tmp_path, tiny_predictor):
    s, rows, rej = _label(tmp_path, tiny_predictor, "nul.csv", _csv([b'a,"' + T[0] + b'\x00tail"', b'b,"' + T[1] + b'"']))
    assert _ids(rows) == ["a", "b"] and rej == []  # NUL is a valid character: the post is labelled
    lines = [json.dumps({"id": "esc", "text": "x\u0000y " + T[2].decode()}).encode(),
             b'{"id": "raw", "text": "x\x00y"}']  # a raw control character is not valid JSON
    s, rows, rej = _label(tmp_path, tiny_predictor, "nul.jsonl", b"\n".join(lines))
    assert _ids(rows) == ["esc"] and [(r["row"], r["reason"].split(":")[0]) for r in rej] == [(2, "broken JSON")]


def test_bad_utf8(tmp_path, tiny_predictor):
    s, rows, rej = _label(tmp_path, tiny_predictor, "bad.csv",
                          _csv([b'a,"' + T[0] + b'"', b'b,"caf\xe9 \xff\xfe latte"', b'c\xc3,"' + T[1] + b'"']))
    assert _ids(rows) == ["a"]
    assert [r["reason"] for r in rej] == ["undecodable bytes (not UTF-8) in column 'text' at byte 3",
                                          "undecodable bytes (not UTF-8) in column 'id' at byte 1"]
    s, rows, rej = _label(tmp_path, tiny_predictor, "bad.jsonl",
                          b'{"id": "a", "text": "ok post"}\n{"id": "b", "text": "caf\xe9"}\n')
    assert _ids(rows) == ["a"] and rej[0]["reason"].startswith("undecodable bytes") and rej[0]["row"] == 2


def test_bom_and_crlf(tmp_path, tiny_predictor):
    data = b"\xef\xbb\xbf" + _csv([b'a,"' + T[0] + b'"', b'b,"' + T[1] + b'\r\nsecond line"', b'c,"' + T[2] + b'"'], eol=b"\r\n")
    s, rows, rej = _label(tmp_path, tiny_predictor, "bom_crlf.csv", data)
    assert s["columns"]["id"] == "id" and _ids(rows) == ["a", "b", "c"] and rej == []  # no '\ufeffid', no '\r'
    assert s["multiline_fields"] == 1 and s["multiline_rows"] == [2]  # the quoted CRLF inside a post is counted
    lines = [b"\xef\xbb\xbf" + json.dumps({"id": "a", "text": T[0].decode()}).encode(),
             json.dumps({"id": "b", "text": T[1].decode()}).encode()]
    s, rows, rej = _label(tmp_path, tiny_predictor, "bom_crlf.jsonl", b"\r\n".join(lines) + b"\r\n")
    assert _ids(rows) == ["a", "b"] and rej == [] and s["columns"]["id"] == "id"


def test_unterminated_quotes_are_warned_and_counted(tmp_path, tiny_predictor, caplog):
    # row b opens a quote it never closes: standard CSV reads on until the next quote, swallowing row c
    data = _csv([b'a,"' + T[0] + b'"', b'b,"' + T[1], b'c,"' + T[2] + b'"', b'd,"' + T[3] + b'"'])
    with caplog.at_level("WARNING", logger="frontline.batch"):
        s, rows, rej = _label(tmp_path, tiny_predictor, "unterminated.csv", data)
    assert s["multiline_fields"] == 1 and s["multiline_rows"] == [2]
    assert any("span lines" in r.getMessage() and "rows 2" in r.getMessage() for r in caplog.records)
    assert "b" in _ids(rows) and "c" not in _ids(rows)  # c is inside b's text: the warning is all CSV allows
    # a quote still open at the end of the file swallows everything after it: warned about the same way
    s, rows, rej = _label(tmp_path, tiny_predictor, "open_to_eof.csv", _csv([b'a,"' + T[0] + b'"', b'b,"' + T[1],
                                                                             b"c,no quote here"]))
    assert _ids(rows) == ["a", "b"] and rej == [] and s["multiline_rows"] == [2]
    # a row with too many fields is rejected with its physical line
    s, rows, rej = _label(tmp_path, tiny_predictor, "fields.csv", _csv([b'a,"' + T[0] + b'"', b"b,x,y,z"]))
    assert _ids(rows) == ["a"] and rej[0]["reason"].startswith("malformed CSV row") and rej[0]["line"] == 3


def test_one_megabyte_fields(tmp_path, tiny_predictor):
    big = (T[0] + b" ") * (1_000_000 // (len(T[0]) + 1) + 1)
    s, rows, rej = _label(tmp_path, tiny_predictor, "big.csv", _csv([b'a,"' + big + b'"', b'b,"' + T[1] + b'"']),
                          out_fmt="csv")
    assert _ids(rows) == ["a", "b"] and rej == [] and len(big) >= 1_000_000
    lines = [json.dumps({"id": "a", "text": big.decode(), "note": "x" * 1_000_000}).encode(),
             json.dumps({"id": "b", "text": T[1].decode()}).encode()]
    s, rows, rej = _label(tmp_path, tiny_predictor, "big.jsonl", b"\n".join(lines), carry=["note"])
    assert _ids(rows) == ["a", "b"] and len(rows[0]["note"]) == 1_000_000


def test_wrong_json_types(tmp_path, tiny_predictor):
    objs = [{"id": "ok", "text": T[0].decode()}, {"id": "num", "text": 42}, {"id": "obj", "text": {"a": 1}},
            {"id": "arr", "text": ["x"]}, {"id": "bool", "text": True}, {"id": "null", "text": None},
            {"id": {"nested": 1}, "text": T[1].decode()}, {"id": 1234567890123456789, "text": T[2].decode()},
            {"id": "num_company", "text": T[3].decode(), "company": 7}]
    s, rows, rej = _label(tmp_path, tiny_predictor, "types.jsonl",
                          b"\n".join(json.dumps(o).encode() for o in objs) + b"\n")
    assert _ids(rows) == ["ok", "1234567890123456789", "num_company"] and rows[2]["company"] == "7"
    assert [(r["id"], r["reason"]) for r in rej] == [
        ("num", "wrong type: text is a number, not a string"), ("obj", "wrong type: text is an object, not a string"),
        ("arr", "wrong type: text is an array, not a string"), ("bool", "wrong type: text is a boolean, not a string"),
        ("null", "empty text"), (None, "wrong type: column 'id' is an object, not a value")]
    assert s["reject_reasons"] == {"wrong type": 5, "empty text": 1}
    src = tmp_path / "types.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": pa.array([1, 2], pa.int64())}), src)
    s = run_label(LabelOptions(input=src, output=tmp_path / "types_pq.jsonl"), predictor=tiny_predictor,
                  model_info={"uri": "tiny"}, progress=False)
    assert s["labelled"] == 0 and s["reject_reasons"] == {"wrong type": 2}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_truncated_gzip_keeps_what_was_readable(tmp_path, tiny_predictor, fmt):
    n = 400
    posts = sample_posts(n)
    if fmt == "csv":
        raw = _csv([f'{p["id"]},"{p["text"].replace(chr(34), chr(39))}"'.encode() for p in posts])
    else:
        raw = b"".join(json.dumps({"id": p["id"], "text": p["text"]}).encode() + b"\n" for p in posts)
    whole = gzip.compress(raw)
    s, rows, rej = _label(tmp_path, tiny_predictor, f"cut.{fmt}.gz", whole[: len(whole) * 2 // 3])
    assert s["input_damaged"] and rej[-1]["reason"].startswith("truncated input")
    assert 0 < s["labelled"] < n
    assert _ids(rows) == [p["id"] for p in posts[: len(rows)]]  # the readable rows, in order, before the damage
    with pytest.raises(LabelError, match="corrupt before its first row"):  # nothing readable: a clear error
        _label(tmp_path, tiny_predictor, f"garbage.{fmt}.gz", b"\x1f\x8b\x08\x00" + b"\x00garbage" * 40)


@pytest.mark.parametrize("name, data", [("empty.csv", b""), ("empty.jsonl", b""), ("blank.jsonl", b"\n\n"),
                                        ("header_only.csv", b"id,text\n"), ("header_no_eol.csv", b"id,text"),
                                        ("header_only_crlf.csv", b"\xef\xbb\xbfid,text,company\r\n")])
@pytest.mark.parametrize("out_fmt", ["csv", "parquet"])
def test_empty_file_and_header_only(tmp_path, tiny_predictor, name, data, out_fmt):
    s, rows, rej = _label(tmp_path, tiny_predictor, name, data, out_fmt=out_fmt)
    assert s["rows_read"] == 0 and rows == [] and rej == []
    assert (tmp_path / f"{name}.out.{out_fmt}").stat().st_size > 0  # a valid empty file with the output columns


def test_a_jsonl_with_no_object_at_all_is_a_clear_error(tmp_path, tiny_predictor):
    with pytest.raises(LabelError, match="no JSON object"):
        _label(tmp_path, tiny_predictor, "not_jsonl.jsonl", b"id,text\n1,hello\n")
    assert not (tmp_path / "not_jsonl.jsonl.out.jsonl").exists()
