"""Nothing lost: empty texts, undecodable bytes, broken JSON and malformed CSV rows go to OUTPUT.rejects.jsonl."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from serving.batch.labelling import LabelOptions, run_label
from tests.serving.batch.label_support import (
    read_output,
    read_rejects,
    read_summary,
    sample_posts,
)


def _label(predictor, src, out, **kw):
    return run_label(LabelOptions(input=src, output=out, **kw), predictor=predictor, model_info={"uri": "tiny"},
                     progress=False)


def test_csv_bad_bytes_empty_text_and_malformed_rows_are_isolated(tmp_path, tiny_predictor):
    posts = sample_posts(30)
    lines = [b"id,text,company"]
    for i, p in enumerate(posts):
        text = p["text"].replace('"', '""').encode()
        if i == 3:
            text = b"caf\xe9 latte was cold \xff\xfe and nobody answered"  # latin-1 bytes: not UTF-8
        if i == 7:
            text = b"   "
        if i == 12:
            text = b""
        lines.append(b'%s,"%s",Acme' % (p["id"].encode(), text))
    lines.insert(20, b'broken,"a row with",too,many,fields')  # data row 19
    src = tmp_path / "export.csv"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "labelled.parquet"
    s = _label(tiny_predictor, src, out, chunk_rows=8)

    rows = read_output(out)
    rejects = read_rejects(out)
    assert s["rows_read"] == 31 and s["labelled"] == 27 and s["rejected"] == 4, s
    assert len(rows) == 27 and len(rejects) == 4
    by_id = {r["id"]: r for r in rejects}
    bad = by_id[posts[3]["id"]]
    assert "undecodable bytes" in bad["reason"] and "'text'" in bad["reason"]
    assert "caf\\xe9" in bad["excerpt"] and bad["row"] == 4
    assert by_id[posts[7]["id"]]["reason"] == "empty text" and by_id[posts[12]["id"]]["reason"] == "empty text"
    malformed = [r for r in rejects if r["reason"].startswith("malformed CSV row")]
    assert len(malformed) == 1 and "expected 3 fields, found 5" in malformed[0]["reason"]
    assert "too,many" in malformed[0]["excerpt"] and malformed[0]["line"] == 21
    # every input row is somewhere exactly once
    labelled_ids = [r["id"] for r in rows]
    assert sorted(labelled_ids + [r["id"] for r in rejects if r["id"]]) == sorted(p["id"] for p in posts)
    assert s["reject_reasons"] == {"undecodable bytes": 1, "empty text": 2, "malformed CSV row": 1}
    assert read_summary(out)["rejected"] == 4


def test_jsonl_broken_lines_bad_bytes_and_non_objects(tmp_path, tiny_predictor):
    posts = sample_posts(10)
    raw = [json.dumps(p).encode() for p in posts]
    raw[2] = b'{"id": "p-broken", "text": "unterminated'
    raw[4] = json.dumps({"id": "p-bytes", "text": "x"}).encode().replace(b'"x"', b'"\xc3\x28 bad"')
    raw[5] = json.dumps({"id": "p-empty", "text": ""}).encode()
    raw[6] = b'["an", "array"]'
    raw.insert(8, b"")  # a blank line is not a row
    src = tmp_path / "export.jsonl"
    src.write_bytes(b"\n".join(raw) + b"\n")
    out = tmp_path / "labelled.jsonl"
    s = _label(tiny_predictor, src, out, chunk_rows=4)

    rejects = read_rejects(out)
    reasons = {r["row"]: r["reason"] for r in rejects}
    assert reasons[3].startswith("broken JSON") and reasons[5].startswith("undecodable bytes")
    assert reasons[6] == "empty text" and "not a JSON object" in reasons[7]
    assert {r["row"]: r["id"] for r in rejects}[6] == "p-empty"
    assert "unterminated" in next(r["excerpt"] for r in rejects if r["row"] == 3)
    assert s["rows_read"] == 10 and s["labelled"] == 6 and s["rejected"] == 4 and s["blank_lines"] == 1
    assert len(read_output(out)) == 6


def test_parquet_null_text_is_rejected_with_its_id(tmp_path, tiny_predictor):
    posts = sample_posts(6)
    texts = [p["text"] for p in posts]
    texts[1] = None
    src = tmp_path / "export.parquet"
    pq.write_table(pa.table({"post_id": [p["id"] for p in posts], "body": texts}), src)
    out = tmp_path / "labelled.csv"
    s = _label(tiny_predictor, src, out)
    assert s["columns"]["id"] == "post_id" and s["columns"]["text"] == "body"
    assert [(r["id"], r["reason"]) for r in read_rejects(out)] == [(posts[1]["id"], "empty text")]
    assert [r["id"] for r in read_output(out)] == [p["id"] for i, p in enumerate(posts) if i != 1]


def test_all_rejected_still_writes_a_valid_empty_output(tmp_path, tiny_predictor):
    src = tmp_path / "empty_texts.csv"
    src.write_text("id,text\na,\nb,\n")
    out = tmp_path / "labelled.csv"
    s = _label(tiny_predictor, src, out)
    assert s["labelled"] == 0 and s["rejected"] == 2
    assert out.read_text().splitlines()[0].startswith('"id"')  # header only
    assert read_output(out) == []
