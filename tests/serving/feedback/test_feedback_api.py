"""POST /v1/feedback over the tiny registered model: storing, idempotency, validation against the schema,
auth, the recomputed answer, the agreement metric, OpenAPI, and a database that is down."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from tests.serving.api.app_support import AUTH, metric_value, settings

FEEDBACK_KEY = {"X-API-Key": "fb-only"}
TEXT = "@Delta on hold 2 hours, flight cancelled, stuck at ATL"
LABELS = {"urgency": "critical", "issue_type": "service_disruption", "prior_channels": ["phone"]}


@pytest.fixture()
def client(tiny_model, tmp_path):
    app = create_app(settings(tiny_model.uri, feedback_url=f"sqlite:///{tmp_path / 'fb.db'}",
                              feedback_api_keys=["fb-only"]))
    with TestClient(app) as c:
        c.app.state.feedback_collector.ttl = 0  # scrape the database every time in tests
        yield c


def _body(**over):
    return {"post_id": "t1", "text": TEXT, "labels": LABELS, "model": {"name": "frontline", "version": "1"}, **over}


def _served(client) -> dict:
    m = client.app.state.predictor.current
    return {"name": m.name, "version": m.version}


def test_created_then_replaced_for_the_same_agent_then_created_for_another(client):
    r1 = client.post("/v1/feedback", json=_body(agent="a", queue="airlines"), headers=AUTH)
    assert r1.status_code == 201, r1.text
    r2 = client.post("/v1/feedback", json=_body(agent="a", labels={**LABELS, "urgency": "high"}), headers=AUTH)
    assert r2.status_code == 200 and r2.json()["id"] == r1.json()["id"] and r2.json()["created"] is False
    r3 = client.post("/v1/feedback", json=_body(agent="b"), headers=FEEDBACK_KEY)
    assert r3.status_code == 201 and r3.json()["id"] != r1.json()["id"]
    stored = {c.agent: c for c in client.app.state.feedback_store.corrections()}
    assert stored["a"].urgency == "high" and stored["a"].queue is None and stored["b"].urgency == "critical"
    assert stored["a"].text == TEXT and stored["a"].model_version == "1"


@pytest.mark.parametrize("change, field", [
    ({"labels": {**LABELS, "urgency": "urgent"}}, "labels.urgency"),
    ({"labels": {**LABELS, "issue_type": "refund"}}, "labels.issue_type"),
    ({"labels": {**LABELS, "prior_channels": ["pigeon"]}}, "labels.prior_channels[0]"),
    ({"labels": {**LABELS, "tried": True}}, "labels.tried"),
    ({"labels": {"urgency": "low", "issue_type": "other"}}, "labels.prior_channels"),
    ({"issue": "billing"}, "issue"),
    ({"text": "   "}, "text"),
    ({"text": "x" * 301}, "text"),
    ({"model": None}, "model"),
    ({"predicted": {**LABELS, "urgency": "meh"}}, "predicted.urgency"),
])
def test_invalid_corrections_are_refused_and_nothing_is_stored(client, change, field):
    r = client.post("/v1/feedback", json=_body(**change), headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "validation_error"
    assert field in [d["field"] for d in r.json()["error"]["details"]]
    assert client.app.state.feedback_store.count() == 0


def test_auth_and_media_type(client):
    assert client.post("/v1/feedback", json=_body()).status_code == 401
    assert client.post("/v1/feedback", json=_body(), headers={"X-API-Key": "wrong"}).status_code == 401
    # the feedback-only key cannot classify
    assert client.post("/v1/classify", json={"text": TEXT}, headers=FEEDBACK_KEY).status_code == 401
    r = client.post("/v1/feedback", content="post_id=t1", headers={**AUTH, "Content-Type": "text/plain"})
    assert r.status_code == 415


def test_the_serving_version_recomputes_its_answer_and_other_versions_are_not_counted(client):
    served = _served(client)
    expected = client.post("/v1/classify", json={"text": TEXT}, headers=AUTH).json()["results"][0]
    r = client.post("/v1/feedback", json=_body(model=served), headers=AUTH).json()
    assert r["predicted_source"] == "recomputed" and r["agreement_counted"] is True
    row = next(client.app.state.feedback_store.corrections())
    assert row.predicted_urgency == expected["urgency"]["label"]
    assert row.predicted_issue_type == expected["issue_type"]["label"]
    assert row.predicted_prior_channels == expected["prior_channels"]["channels"]
    assert row.agree_urgency is (expected["urgency"]["label"] == LABELS["urgency"])
    old = client.post("/v1/feedback", json=_body(post_id="t2", model={"name": "frontline", "version": "999"}),
                      headers=AUTH).json()
    assert old["predicted_source"] is None and old["agreement_counted"] is False


def test_agreement_is_a_metric_per_version_and_head(client):
    predicted = {**LABELS, "urgency": "high"}
    for i, labels in enumerate([LABELS, LABELS, {**LABELS, "issue_type": "other"}, {**LABELS, "prior_channels": []}]):
        r = client.post("/v1/feedback", json=_body(post_id=f"p{i}", labels=labels, predicted=predicted,
                                                    model={"version": "5"}), headers=AUTH)
        assert r.status_code == 201 and r.json()["predicted_source"] == "client"
    client.post("/v1/feedback", json=_body(post_id="x", model={"version": "999"}), headers=AUTH)  # not counted
    text = client.get("/metrics").text
    assert metric_value(text, "frontline_feedback_agreement", version="5", head="urgency") == 0.0
    assert metric_value(text, "frontline_feedback_agreement", version="5", head="issue_type") == 0.75
    assert metric_value(text, "frontline_feedback_agreement", version="5", head="prior_channels") == 0.75
    assert metric_value(text, "frontline_feedback_corrections", version="5") == 4
    assert metric_value(text, "frontline_feedback_corrections", version="999") == 1
    assert metric_value(text, "frontline_feedback_agreement", version="999", head="urgency") is None
    assert metric_value(text, "frontline_feedback_received_total", outcome="created") == 5


def test_openapi_documents_every_status(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/feedback"]["post"]
    assert {"200", "201", "401", "413", "415", "422", "503"} <= set(op["responses"])
    labels = spec["components"]["schemas"]["FeedbackLabels"]
    assert labels["additionalProperties"] is False


def test_a_database_that_is_down_fails_feedback_only(tiny_model, tmp_path, caplog):
    (tmp_path / "file").write_text("not a directory")
    app = create_app(settings(tiny_model.uri, feedback_url=f"sqlite:///{tmp_path / 'file'}/fb.db"))
    with TestClient(app) as c:
        r = c.post("/v1/feedback", json=_body(), headers=AUTH)
        assert r.status_code == 503 and r.json()["error"]["type"] == "feedback_unavailable"
        assert r.headers["retry-after"]
        assert c.post("/v1/classify", json={"text": TEXT}, headers=AUTH).status_code == 200
        assert c.get("/metrics").status_code == 200
    assert "feedback database unavailable at startup" in caplog.text
    assert TEXT not in caplog.text  # the post text never reaches the logs


def test_model_info_serves_the_card_stored_with_the_version(client, tiny_model):
    card = client.get("/v1/model", headers=AUTH).json()["model_card"]
    assert card.startswith("# frontline model card")
    assert f"MLflow run {tiny_model.summary['run_id']}" in card and "Known weaknesses" in card
    spec = client.get("/openapi.json").json()["components"]["schemas"]["ModelInfo"]["properties"]
    assert "model_card" in spec
