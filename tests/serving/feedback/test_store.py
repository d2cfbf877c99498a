"""The corrections database without a model: migrations, idempotent saves, agreement, export, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from serving.feedback.export import export_jsonl
from serving.feedback.store import (VERSION_TABLE, FeedbackStore, FeedbackStoreError, agreement_of, current_revision,
                                    head_revision)
from training.data import read_labelled

L = {"urgency": "high", "issue_type": "billing", "prior_channels": ["phone", "email"]}


def _store(tmp_path, name="fb.db") -> FeedbackStore:
    return FeedbackStore(f"sqlite:///{tmp_path / name}").open()


def test_migrations_create_the_schema_at_head_and_rerun_as_a_no_op(tmp_path):
    store = _store(tmp_path)
    assert current_revision(store._engine) == head_revision() == "0001"
    insp = inspect(store._engine)
    assert {"feedback_corrections", VERSION_TABLE} <= set(insp.get_table_names())
    cols = {c["name"] for c in insp.get_columns("feedback_corrections")}
    assert {"post_id", "agent", "text", "urgency", "issue_type", "prior_channels", "model_version",
            "predicted_urgency", "agree_urgency", "created_at"} <= cols
    store.save(post_id="p", text="t", labels=L, model_name="frontline", model_version="1")
    again = _store(tmp_path)  # a second process opening the same database
    assert again.count() == 1


def test_downgrade_and_upgrade_round_trip(tmp_path):
    from alembic import command

    from serving.feedback.store import _alembic_config

    store = _store(tmp_path)
    with store._engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "base")
    assert "feedback_corrections" not in inspect(store._engine).get_table_names()
    store.close()
    assert _store(tmp_path).count() == 0  # reopening upgrades again


def test_a_repeat_from_the_same_agent_replaces_and_another_agent_adds(tmp_path):
    store = _store(tmp_path)
    first = store.save(post_id="p1", text="t", labels=L, model_name="frontline", model_version="1", agent="a")
    again = store.save(post_id="p1", text="t", labels={**L, "urgency": "low"}, model_name="frontline",
                       model_version="1", agent="a")
    other = store.save(post_id="p1", text="t", labels=L, model_name="frontline", model_version="1", agent="b")
    anonymous = store.save(post_id="p1", text="t", labels=L, model_name="frontline", model_version="1")
    assert first.created and not again.created and again.id == first.id
    assert other.created and other.id != first.id and anonymous.created
    assert store.count() == 3
    assert [c.urgency for c in store.corrections() if c.agent == "a"] == ["low"]


def test_agreement_per_version_and_head(tmp_path):
    store = _store(tmp_path)
    predicted = {"urgency": "high", "issue_type": "delivery", "prior_channels": ["email", "phone"]}
    store.save(post_id="1", text="a", labels=L, model_name="frontline", model_version="3", predicted=predicted,
               predicted_source="client")  # urgency kept, issue changed, channels the same set
    store.save(post_id="2", text="b", labels={**L, "urgency": "low"}, model_name="frontline", model_version="3",
               predicted=predicted, predicted_source="client")
    store.save(post_id="3", text="c", labels=L, model_name="frontline", model_version="3")  # answer unknown
    store.save(post_id="4", text="d", labels=L, model_name="frontline", model_version="4", predicted=L,
               predicted_source="recomputed")
    by_version = {a.model_version: a for a in store.agreement()}
    assert (by_version["3"].corrections, by_version["3"].scored) == (3, 2)
    assert by_version["3"].agreement == {"urgency": 0.5, "issue_type": 0.0, "prior_channels": 1.0}
    assert by_version["4"].agreement == {"urgency": 1.0, "issue_type": 1.0, "prior_channels": 1.0}
    assert agreement_of(L, None) == {"urgency": None, "issue_type": None, "prior_channels": None}


def test_export_writes_training_rows_latest_per_post(tmp_path):
    store = _store(tmp_path)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.save(post_id="p1", text="my card was charged twice", labels=L, model_name="frontline", model_version="1",
               agent="a", now=t0)
    store.save(post_id="p1", text="my card was charged twice", labels={**L, "urgency": "critical"},
               model_name="frontline", model_version="1", agent="b", now=t0 + timedelta(hours=1))
    store.save(post_id="p2", text="parcel never came", labels={"urgency": "medium", "issue_type": "delivery",
               "prior_channels": []}, model_name="frontline", model_version="2", queue="q", now=t0)
    out = tmp_path / "out" / "corrections.jsonl"
    counts = export_jsonl(store, out)
    assert counts == {"corrections": 3, "written": 2, "superseded": 1}
    ds = read_labelled(out)  # the training reader accepts it as it is
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["p1"]["urgency"] == "critical" and rows["p1"]["agent"] == "b"
    assert rows["p2"]["queue"] == "q" and rows["p2"]["source"] == "feedback"
    assert datetime.fromisoformat(rows["p2"]["created_at"]) == t0  # UTC, with its offset
    assert sorted(ds["id"]) == ["p1", "p2"]
    assert export_jsonl(store, tmp_path / "v2.jsonl", model_version="2")["written"] == 1
    assert export_jsonl(store, tmp_path / "late.jsonl", since=t0 + timedelta(minutes=30))["written"] == 1


def test_unreachable_database_is_a_typed_error_without_the_password(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(FeedbackStoreError, match="feedback database"):
        FeedbackStore(f"sqlite:///{blocker}/sub/fb.db").open()
    store = FeedbackStore("postgresql+psycopg://user:secret@127.0.0.1:1/none")
    assert "secret" not in store.safe_url and "***" in store.safe_url


def test_cli_export_and_stats(tmp_path):
    from serving.cli import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = FeedbackStore(url).open()
    store.save(post_id="1", text="a b c", labels=L, model_name="frontline", model_version="7", predicted=L,
               predicted_source="client")
    store.save(post_id="2", text="d e f", labels={**L, "issue_type": "other"}, model_name="frontline",
               model_version="7", predicted=L, predicted_source="client")
    runner = CliRunner()
    res = runner.invoke(app, ["feedback", "stats", "--url", url], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "│ 7 " in x or "│ 7│" in x)
    assert "100.0%" in line and "50.0%" in line  # urgency kept twice, issue type once
    out = tmp_path / "c.jsonl"
    res = runner.invoke(app, ["feedback", "export", "--out", str(out), "--url", url])
    assert res.exit_code == 0, res.output
    assert "wrote 2 labelled posts" in res.output and len(read_labelled(out)) == 2
    (tmp_path / "file").write_text("not a directory")
    res = runner.invoke(app, ["feedback", "stats", "--url", f"sqlite:///{tmp_path / 'file'}/fb.db"])
    assert res.exit_code == 1 and "feedback database" in res.output


def test_a_concurrent_insert_of_the_same_key_becomes_an_update(tmp_path, monkeypatch):
    import serving.feedback.store as store_mod

    store = _store(tmp_path)
    first = store.save(post_id="p", text="t", labels=L, model_name="frontline", model_version="1", agent="a")
    real, calls = store_mod.select, []

    def racing(*args):  # the first lookup misses the row, as if another replica inserted it just after
        calls.append(1)
        q = real(*args)
        return q.where(store_mod.Correction.id < 0) if len(calls) == 1 else q

    monkeypatch.setattr(store_mod, "select", racing)
    again = store.save(post_id="p", text="t", labels={**L, "urgency": "low"}, model_name="frontline",
                       model_version="1", agent="a")
    assert len(calls) == 2 and not again.created and again.id == first.id
    monkeypatch.undo()
    assert [c.urgency for c in store.corrections()] == ["low"]
