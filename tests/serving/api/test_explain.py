"""Why this label: occlusion explanations on the served runtime, through the service and directly."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from tests.serving.api.app_support import AUTH, settings
from training.explain import Plan, explain

RELEASE = Path(__file__).resolve().parents[3] / "models" / "release"


def _words(items):
    return [w["word"] for w in items]


def test_plan_drops_one_word_at_a_time_and_bounds_long_posts():
    plan = Plan.of("I called  three times!")
    assert plan.variants() == ["called  three times!", "I three times!", "I called  times!", "I called  three "]
    assert [plan.word(i) for i in range(4)] == ["I", "called", "three", "times"]  # punctuation stripped
    long = Plan.of(" ".join(f"w{i}" for i in range(200)), max_units=64)
    assert len(long.spans) <= 64 and long.spans[0][0] == 0 and long.spans[-1][1] == len(long.text)
    assert Plan.of("").variants() == []


def test_explanations_follow_the_decided_labels(tiny_predictor):
    texts = ["emailed twice and called, still no refund", "the app crashed again", "🙄"]
    results = tiny_predictor.classify(texts)
    for r, e in zip(results, explain(tiny_predictor, texts, top_k=3)):
        assert e["method"] == "occlusion"
        assert e["urgency"]["label"] == r["urgency"]["label"]
        assert e["issue_type"]["label"] == r["issue_type"]["label"]
        assert e["prior_channels"]["tried_other_channel"] == r["prior_channels"]["tried_other_channel"]
        assert sorted(e["prior_channels"]["channels"]) == sorted(r["prior_channels"]["channels"])
        for head in ("urgency", "issue_type"):
            weights = [abs(w["weight"]) for w in e[head]["words"]]
            assert len(weights) <= 3 and weights == sorted(weights, reverse=True)
    one = explain(tiny_predictor, [texts[0]])[0]
    for w in one["urgency"]["words"]:
        assert w["word"] in texts[0][w["start"] : w["end"]]
    # the weight is the drop of the decided label's probability without the word (up to int8 dynamic
    # quantisation, which scales activations per batch: the batch here is not the explanation's batch)
    label = tiny_predictor.schema.urgency.index(one["urgency"]["label"])
    top = one["urgency"]["words"][0]
    without = texts[0][: top["start"]] + texts[0][top["end"]:].lstrip()
    full, less = tiny_predictor.probabilities([texts[0], without])["urgency"][:, label]
    assert top["weight"] == pytest.approx(float(full - less), abs=2e-3)


@pytest.fixture(scope="module")
def tiny_client(tiny_model):
    with TestClient(create_app(settings(tiny_model.uri, explain_max_posts=2))) as c:
        yield c


def test_the_service_explains_on_request_and_limits_posts(tiny_client):
    posts = [{"id": "a", "text": "emailed twice and called, still no refund"}, {"id": "b", "text": "thanks!"}]
    r = tiny_client.post("/v1/classify", json={"posts": posts, "explain": True}, headers=AUTH)
    assert r.status_code == 200, r.text
    for res in r.json()["results"]:
        e = res["explanation"]
        assert e["urgency"]["label"] == res["urgency"]["label"]
        assert e["issue_type"]["label"] == res["issue_type"]["label"]
        assert set(e["prior_channels"]["channels"]) == set(res["prior_channels"]["channels"])
    plain = tiny_client.post("/v1/classify", json={"posts": posts}, headers=AUTH).json()["results"]
    assert all("explanation" not in res for res in plain)
    too_many = tiny_client.post("/v1/classify", json={"posts": posts * 2, "explain": True}, headers=AUTH)
    assert too_many.status_code == 422 and too_many.json()["error"]["details"][0]["field"] == "explain"
    spec = tiny_client.get("/openapi.json").json()["components"]["schemas"]
    assert "explain" in spec["ClassifyRequest"]["properties"] and "Explanation" in spec


@pytest.mark.release
def test_the_shipped_model_explains_phone_by_called():
    """The real release (models/release, onnxruntime): 'called' is why it hears the phone channel."""
    with TestClient(create_app(settings(str(RELEASE)))) as c:
        r = c.post("/v1/classify", json={"posts": [{"id": "p", "text": "I called three times"}], "explain": True},
                   headers=AUTH)
        assert r.status_code == 200, r.text
        res = r.json()["results"][0]
        assert "phone" in res["prior_channels"]["channels"]
        phone = res["explanation"]["prior_channels"]["channels"]["phone"]
        assert "called" in _words(phone)
        assert phone[0]["word"] == "called" and phone[0]["weight"] > 0
