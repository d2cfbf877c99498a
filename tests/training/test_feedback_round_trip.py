"""The whole loop on the tiny model: agents' corrections posted to the service → `frontline feedback export` →
`frontline train --extra` → a registered version that records how many it used, with its model card, served by
GET /v1/model; and `frontline feedback stats` shows the agreement of the version that answered."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from mlflow import MlflowClient
from typer.testing import CliRunner

from serving.api.app import create_app
from serving.feedback.store import FeedbackStore
from tests.conftest import DATA
from tests.serving.api.app_support import AUTH, settings
from training.data import load_splits


def test_corrections_round_trip_into_a_retrained_version(tiny_model, tmp_path):
    from serving.cli import app as cli

    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    splits = load_splits(DATA)
    in_test = splits["test"][0]["text"]
    in_train = splits["train"][0]["text"]  # within the tiny run's --limit 400 (train is sorted by id)
    labels = {"urgency": "critical", "issue_type": "billing", "prior_channels": ["phone"]}
    posts = [("p1", "@Acme charged twice for one order, called 3 times", "a"),
             ("p1", "@Acme charged twice for one order, called 3 times", "b"),  # a second agent: latest wins
             ("p2", "@Acme my parcel is lost http://t.co/x", None),
             ("p3", "@Other my parcel is lost https://bit.ly/y", None),  # the same post as p2 (normalised)
             ("p4", in_test, None), ("p5", in_train, None)]
    with TestClient(create_app(settings(tiny_model.uri, feedback_url=url))) as c:
        served = c.get("/v1/model", headers=AUTH).json()
        for pid, text, agent in posts:
            r = c.post("/v1/feedback", headers=AUTH, json={
                "post_id": pid, "text": text, "labels": labels, "agent": agent,
                "model": {"name": served["name"], "version": served["version"]}})
            assert r.status_code == 201, r.text
            assert r.json()["predicted_source"] == "recomputed"

    runner = CliRunner()
    exported = tmp_path / "corrections.jsonl"
    res = runner.invoke(cli, ["feedback", "export", "--out", str(exported), "--url", url])
    assert res.exit_code == 0, res.output
    assert len(exported.read_text().splitlines()) == 5  # p1 once

    summary_file = tmp_path / "summary.json"
    res = runner.invoke(cli, ["train", "--base", "tiny", "--epochs", "1", "--limit", "400", "--no-export-onnx",
                              "--no-promote", "--extra", str(exported), "--summary-json", str(summary_file)])
    assert res.exit_code == 0, res.output
    assert "corrections: 4 of 5 rows" in res.output
    summary = json.loads(summary_file.read_text())
    assert summary["extra"]["extra_used"] == 4 and summary["extra"]["extra_duplicates_dropped"] == 1
    assert summary["extra"]["extra_replaced"] == {"train": 1, "validation": 0, "test": 1}

    client = MlflowClient()
    run = client.get_run(summary["run_id"])
    assert run.data.params["n_extra_used"] == "4" and run.data.metrics["n_extra_used"] == 4
    assert run.data.params["extra"] == str(exported)
    mv = client.get_model_version("frontline", summary["version"])
    assert mv.tags["n_extra_used"] == "4" and len(mv.tags["data_sha256"]) == 64
    assert str(client.get_model_version_by_alias("frontline", "champion").version) == tiny_model.summary["version"]

    with TestClient(create_app(settings(f"models:/frontline/{summary['version']}", feedback_url=url))) as c:
        info = c.get("/v1/model", headers=AUTH).json()
    assert info["version"] == summary["version"]
    card = info["model_card"]
    assert "4 agents' corrections" in card and summary["data"]["split_sha256"] in card
    assert f"MLflow run {summary['run_id']}" in card
    from training import tracking

    meta = tracking.load(f"models:/frontline/{summary['version']}").predictor.meta  # the bundle's frontline.json
    assert meta["extra"]["extra_used"] == 4 and meta["extra"]["file"] == str(exported)

    res = runner.invoke(cli, ["feedback", "stats", "--url", url], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in res.output.splitlines() if line.startswith("│")]
    row = next(r for r in rows if r[:2] == ["frontline", served["version"]])
    (agreement,) = FeedbackStore(url).agreement()
    assert row[2:4] == ["6", "6"]  # six corrections (p1 by two agents), each with the recomputed answer
    assert row[4:] == [f"{100 * agreement.agreement[h]:.1f}%" for h in ("urgency", "issue_type", "prior_channels")]
