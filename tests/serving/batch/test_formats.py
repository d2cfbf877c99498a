"""`frontline label`: every format in and out, column detection (TWCS layout, the shipped data), carried columns."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from serving.batch.labelling import (
    LabelError,
    LabelOptions,
    company_from_text,
    detect_columns,
    detect_format,
    run_label,
    side_paths,
)
from tests.serving.batch.label_support import (
    make_twcs_csv,
    read_output,
    read_rejects,
    read_summary,
    sample_posts,
    write_rows,
)
from training.predict import flat_columns, flatten
from training.schema import SCHEMA

FORMATS = ("csv", "jsonl", "parquet")


def _label(tmp_path, predictor, src, out, **kw):
    return run_label(LabelOptions(input=src, output=out, **kw), predictor=predictor,
                     model_info={"uri": "tiny"}, progress=False)


@pytest.mark.parametrize("in_fmt", FORMATS)
@pytest.mark.parametrize("out_fmt", FORMATS)
def test_each_format_in_and_out(tmp_path, tiny_predictor, in_fmt, out_fmt):
    posts = sample_posts(25)
    src = write_rows(tmp_path / f"in.{in_fmt}", posts)
    out = tmp_path / f"labelled.{out_fmt}"
    summary = _label(tmp_path, tiny_predictor, src, out, chunk_rows=10)  # 3 chunks, the last one short

    rows = read_output(out)
    assert [r["id"] for r in rows] == [p["id"] for p in posts]  # input order kept, across chunks
    expected_cols = ["id", "created_at", "company", *flat_columns(SCHEMA)]
    expected_cols.insert(expected_cols.index("needs_review") + 1, "contains_personal_data")
    assert list(rows[0]) == expected_cols
    texts = [p["text"] for p in posts]  # the same chunks: batch composition can move int8 scores a hair
    want = [flatten(r) for i in range(0, 25, 10) for r in tiny_predictor.classify(texts[i:i + 10])]
    for row, p, w in zip(rows, posts, want):
        # an empty company cell falls back to the first @handle the post addresses
        assert (row["company"] or "") == (p["company"] or company_from_text(p["text"]) or "")
        assert (row["created_at"] or "") == p["created_at"]
        assert row["urgency"] == w["urgency"] and row["issue_type"] == w["issue_type"]
        assert row["prior_channels"] == w["prior_channels"]
        assert row["tried_other_channel"] == bool(w["prior_channels"])
        assert row["urgency"] in SCHEMA.urgency and row["issue_type"] in SCHEMA.issue_type
        assert row["urgency_score"] == pytest.approx(w["urgency_score"], abs=1e-6)
        assert sum(row[f"issue_type__{c}"] for c in SCHEMA.issue_type) == pytest.approx(1.0, abs=1e-4)
        assert isinstance(row["contains_personal_data"], bool)
    assert summary["rows_read"] == summary["labelled"] == 25
    assert summary["rejected"] == 0 and summary["chunks"] == 3
    assert read_summary(out)["labelled"] == 25
    assert read_rejects(out) == []
    assert not side_paths(out)["parts"].exists()  # parts cleaned up after assembly
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_shipped_data_with_no_options(tmp_path, tiny_model):
    """`frontline label data/train.jsonl --out x.parquet`: default champion model, columns detected."""
    out = tmp_path / "train_labelled.parquet"
    res = CliRunner().invoke(_app(), ["label", "data/train.jsonl", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    with open("data/train.jsonl", encoding="utf-8") as f:
        n = sum(1 for line in f if line.strip())
    s = read_summary(out)
    assert s["labelled"] == s["rows_read"] == n and s["rejected"] == 0
    assert s["columns"]["id"] == "id" and s["columns"]["time"] == "created_at" and s["columns"]["company"] == "company"
    assert s["model"]["version"] is not None and s["model"]["alias"] == "champion"
    assert "posts/s" in res.output and "labelled" in res.output
    rows = read_output(out)
    assert len({r["id"] for r in rows}) == n


def test_twcs_layout_with_no_options(tmp_path, tiny_model):
    src, inbound, _replies = make_twcs_csv(tmp_path / "twcs.csv", n_inbound=12)
    out = tmp_path / "twcs_labelled.jsonl"
    res = CliRunner().invoke(_app(), ["label", str(src), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    rows = read_output(out)
    assert [r["id"] for r in rows] == inbound  # tweet_id as id; only the customers' (inbound) posts
    s = read_summary(out)
    assert s["rows_read"] == 24 and s["labelled"] == 12 and s["skipped_not_inbound"] == 12 and s["rejected"] == 0
    assert s["columns"]["inbound"] == "inbound" and s["columns"]["id"] == "tweet_id"
    assert read_rejects(out) == []  # skipped replies are not rejects
    assert [r["company"] for r in rows] == ["AppleSupport", "AmazonHelp", "Delta", "SpotifyCares"] * 3
    assert rows[0]["created_at"] == "Tue Oct 31 22:10:47 +0000 2017"


def test_carried_columns_and_name_collisions(tmp_path, tiny_predictor):
    posts = [{**p, "urgency": "high", "region": "EU"} for p in sample_posts(6)]
    src = write_rows(tmp_path / "in.jsonl", posts)
    out = tmp_path / "out.csv"
    _label(tmp_path, tiny_predictor, src, out, carry=["region", "urgency", "source"])
    rows = read_output(out)
    assert [r["region"] for r in rows] == ["EU"] * 6
    assert [r["input_urgency"] for r in rows] == ["high"] * 6  # the gold label never overwrites the prediction
    assert all(r["urgency"] in SCHEMA.urgency for r in rows) and "source" in rows[0]


def test_explicit_columns_and_format_override(tmp_path, tiny_predictor):
    posts = [{"msg_no": str(i), "body_text": p["text"], "when": p["created_at"], "brand_name": "Acme"}
             for i, p in enumerate(sample_posts(5))]
    src = write_rows(tmp_path / "export.txt", posts, fmt="csv")
    out = tmp_path / "out.data"
    _label(tmp_path, tiny_predictor, src, out, in_format="csv", out_format="jsonl", id_col="msg_no",
           text_col="body_text", time_col="when", company_col="brand_name")
    rows = read_output(out.rename(tmp_path / "out.jsonl"))
    assert [r["id"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert {r["company"] for r in rows} == {"Acme"}
    assert rows[0]["created_at"] == posts[0]["when"]


def test_detection_errors_are_explained(tmp_path, tiny_model):
    src = write_rows(tmp_path / "nope.csv", [{"a": "1", "b": "x"}])
    res = CliRunner().invoke(_app(), ["label", str(src), "--out", str(tmp_path / "o.csv"), "--no-progress"])
    assert res.exit_code == 2
    assert "no text column found" in res.output and "a, b" in res.output
    with pytest.raises(LabelError, match="not in the input"):
        detect_columns(["id", "text"], text_col="body")
    with pytest.raises(LabelError, match="cannot tell the format"):
        detect_format(tmp_path / "x.xlsx")
    assert not (tmp_path / "o.csv").exists()


def test_company_from_text_rule():
    assert company_from_text("@115712 @AppleSupport my phone died") == "AppleSupport"
    assert company_from_text("@Delta where is my bag") == "Delta"
    assert company_from_text("no handle here") is None
    cols = detect_columns(["tweet_id", "author_id", "inbound", "created_at", "text"])
    assert (cols.id, cols.text, cols.time, cols.inbound, cols.company_from_text) == \
        ("tweet_id", "text", "created_at", "inbound", True)
    assert detect_columns(["id", "text", "inbound"], inbound_col="none").inbound is None


def test_existing_unfinished_run_is_not_silently_discarded(tmp_path, tiny_predictor):
    src = write_rows(tmp_path / "in.jsonl", sample_posts(5))
    out = tmp_path / "out.parquet"
    parts = side_paths(out)["parts"]
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"chunks": {}}))
    with pytest.raises(LabelError, match="--resume"):
        _label(tmp_path, tiny_predictor, src, out)
    _label(tmp_path, tiny_predictor, src, out, restart=True)
    assert len(read_output(out)) == 5


def _app():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from serving.cli import app

    return app
