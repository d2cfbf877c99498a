"""Per-API-key rate limits: one key spending its limit does not touch another's."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from serving.api.app import create_app
from serving.api.ratelimit import identity
from tests.serving.api.app_support import ADMIN_KEY, KEY, metric_value, settings

OTHER = "second-integration-key"
BODY = {"text": "my parcel never arrived"}


@pytest.fixture(scope="module")
def client(tiny_model):
    s = settings(tiny_model.uri, api_keys=[KEY, OTHER], rate_limit="3/minute", rate_limit_storage="memory://")
    with TestClient(create_app(s)) as c:
        yield c


def test_one_key_spending_its_limit_leaves_the_other_alone(client):
    seen = []
    for _ in range(3):
        r = client.post("/v1/classify", json=BODY, headers={"X-API-Key": KEY})
        assert r.status_code == 200, r.text
        assert r.headers["RateLimit-Limit"] == "3"
        seen.append(int(r.headers["RateLimit-Remaining"]))
        assert 0 < int(r.headers["RateLimit-Reset"]) <= 60
    assert seen == [2, 1, 0]
    r = client.post("/v1/classify", json=BODY, headers={"X-API-Key": KEY})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["type"] == "rate_limited" and "3 per 1 minute" in r.json()["error"]["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60 and r.headers["RateLimit-Remaining"] == "0"
    # the other integration still has its whole allowance
    other = client.post("/v1/classify", json=BODY, headers={"X-API-Key": OTHER})
    assert other.status_code == 200 and other.headers["RateLimit-Remaining"] == "2"
    # an admin key is an identity of its own too
    assert client.post("/v1/classify", json=BODY, headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    assert metric_value(client.get("/metrics").text, "frontline_shed_calls_total", reason="rate_limit") == 1.0


def test_a_wrong_key_is_401_before_any_counting(client):
    for _ in range(5):
        assert client.post("/v1/classify", json=BODY, headers={"X-API-Key": "nope"}).status_code == 401


def test_rate_limits_are_off_by_default(tiny_model):
    with TestClient(create_app(settings(tiny_model.uri))) as c:
        r = c.post("/v1/classify", json=BODY, headers={"X-API-Key": KEY})
        assert r.status_code == 200 and "RateLimit-Limit" not in r.headers


def test_without_keys_the_client_address_is_the_identity():
    assert identity(None, "10.0.0.7") == "addr:10.0.0.7"
    hashed = identity("secret-key", "10.0.0.7")
    assert hashed.startswith("key:") and "secret-key" not in hashed  # the key itself is never stored


def test_a_bad_limit_fails_at_startup():
    with pytest.raises(ValidationError, match="not a rate limit"):
        settings("x", rate_limit="lots")
    with pytest.raises(Exception, match="(?i)redis|storage|scheme"):
        create_app(settings("x", rate_limit="5/second", rate_limit_storage="nosuch://host"))
