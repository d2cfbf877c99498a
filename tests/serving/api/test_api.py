"""The HTTP contract of the service over the tiny registered model: results, every error path, auth,
OpenAPI status codes, metrics and the no-text-in-logs rule."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from serving.api.app import create_app
from serving.api.schemas import NOT_BLANK
from tests.serving.api.app_support import ADMIN, AUTH, metric_value, settings
from training.schema import HEADS, SCHEMA

TEXTS = ["@Delta on hold 2 hours, flight cancelled, stuck at ATL",
         "@AcmeBank love the new app, thanks!",
         "emailed twice and called, still no refund. my order #4821934"]


@pytest.fixture(scope="module")
def client(tiny_model):
    with TestClient(create_app(settings(tiny_model.uri))) as c:
        yield c


def _posts(texts):
    return {"posts": [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]}


# ---- contract ----------------------------------------------------------------------------------------
def test_classify_batch_matches_direct_predictor(client, tiny_model):
    r = client.post("/v1/classify", json=_posts(TEXTS), headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "frontline", "version": str(tiny_model.summary["version"]), "alias": "champion"}
    assert [x["id"] for x in body["results"]] == ["t0", "t1", "t2"]
    served = client.app.state.predictor
    expected = served.current.predictor.classify(TEXTS, served.review_thresholds())
    for got, want in zip(body["results"], expected):
        for head in ("urgency", "issue_type"):
            assert got[head]["label"] == want[head]["label"]
            assert got[head]["label"] in SCHEMA.labels(head)
            assert set(got[head]["scores"]) == set(SCHEMA.labels(head))
            assert got[head]["score"] == pytest.approx(want[head]["score"], abs=1e-4)
            assert sum(got[head]["scores"].values()) == pytest.approx(1.0, abs=1e-3)
        pc = got["prior_channels"]
        assert pc["channels"] == want["prior_channels"]["channels"]
        assert pc["tried_other_channel"] is bool(pc["channels"])
        assert set(pc["scores"]) == set(SCHEMA.prior_channels)
        assert got["needs_review"] is want["needs_review"]
    assert [x["contains_personal_data"] for x in body["results"]] == [False, False, True]
    assert body["results"][2]["personal_data"] == ["account_number"]
    assert r.headers["x-request-id"]


def test_review_reasons_explain_needs_review_and_a_call_may_ask_for_its_own_trade_off(client):
    texts = TEXTS * 2 + ["the app crashed", "where is my parcel", "card charged twice"]
    default = client.post("/v1/classify", json=_posts(texts[:8]), headers=AUTH).json()["results"]
    for r in default:
        assert r["needs_review"] is bool(r["review_reasons"])
        assert set(r["review_reasons"]) <= {"urgency", "issue_type", "prior_channels", "possible_critical"}
    strict = client.post("/v1/classify", json={**_posts(texts[:8]), "review": {"target_accuracy": 0.999, "critical_recall": 1.0}},
                         headers=AUTH).json()["results"]
    # an unreachable accuracy flags every post on every head (thresholds above 1)
    assert all(set(r["review_reasons"]) >= {"urgency", "issue_type", "prior_channels"} for r in strict)
    assert [r["urgency"]["label"] for r in strict] == [r["urgency"]["label"] for r in default]  # labels unchanged
    lax = client.post("/v1/classify", json={**_posts(texts[:8]), "review": {"target_accuracy": 0.5}}, headers=AUTH).json()
    assert sum(r["needs_review"] for r in lax["results"]) <= sum(r["needs_review"] for r in strict)
    err = _error(client.post("/v1/classify", json={"text": "hi", "review": {"target_accuracy": 2}}, headers=AUTH), 422,
                 "validation_error")
    assert err["details"][0]["field"].startswith("review")
    _error(client.post("/v1/classify", json={"text": "hi", "review": {"recall": 0.9}}, headers=AUTH), 422, "validation_error")


def test_model_info_states_the_review_operating_point(client):
    info = client.get("/v1/model", headers=AUTH).json()
    assert info["operating_point"]["review_accuracy"] == pytest.approx(0.85)
    assert set(info["review_thresholds"]) == set(HEADS)


def test_single_text_form_returns_same_shape(client):
    one = client.post("/v1/classify", json={"text": TEXTS[0]}, headers=AUTH).json()
    batch = client.post("/v1/classify", json=_posts(TEXTS[:1]), headers=AUTH).json()
    assert len(one["results"]) == 1 and one["results"][0]["id"] is None
    assert one["results"][0]["urgency"] == batch["results"][0]["urgency"]
    assert set(one["results"][0]) == set(batch["results"][0])


def test_model_info(client, tiny_model, tiny_predictor):
    r = client.get("/v1/model", headers=AUTH)
    assert r.status_code == 200
    info = r.json()
    assert info["version"] == str(tiny_model.summary["version"]) and info["alias"] == "champion"
    assert info["name"] == "frontline" and info["run_id"] and info["uri"].startswith("models:/frontline/")
    assert info["labels"] == {h: list(SCHEMA.labels(h)) for h in HEADS}
    assert info["validation_metrics"] and all(k.startswith("val_") and not k.startswith("val_baseline")
                                              for k in info["validation_metrics"])
    assert info["validation_metrics"]["val_urgency_macro_f1"] == pytest.approx(
        tiny_predictor.metrics["val_urgency_macro_f1"])
    assert info["review_thresholds"] == pytest.approx(tiny_predictor.policy.review_thresholds)
    assert info["limits"] == {"max_posts": 8, "max_text_chars": 300, "max_tokens": tiny_predictor.max_length}


def test_review_threshold_override(tiny_model):
    s = settings(tiny_model.uri, review_thresholds={"urgency": 1.0})  # nothing is that confident
    with TestClient(create_app(s)) as c:
        assert c.get("/v1/model", headers=AUTH).json()["review_thresholds"]["urgency"] == 1.0
        res = c.post("/v1/classify", json=_posts(TEXTS), headers=AUTH).json()["results"]
        assert all(x["needs_review"] for x in res)


def test_health(client):
    assert client.get("/health/live").json() == {"status": "ok"}
    r = client.get("/health/ready")
    assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["model"]["alias"] == "champion"


# ---- errors ------------------------------------------------------------------------------------------
def _error(r, status, type_):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == type_ and err["message"]
    return err


def test_every_bad_post_is_reported_in_one_422(client):
    posts = ["fine", "", "also fine", "   \n\t", "x" * 301, "ok"]
    err = _error(client.post("/v1/classify", json=_posts(posts), headers=AUTH), 422, "validation_error")
    assert [(d["index"], d["field"]) for d in err["details"]] == [
        (1, "posts[1].text"), (3, "posts[3].text"), (4, "posts[4].text")]
    assert "empty" in err["details"][0]["problem"] and "301 characters" in err["details"][2]["problem"]
    assert "3 of 6" in err["message"]
    assert "x" * 50 not in r_text(err)  # the text is never echoed back


def r_text(obj) -> str:
    import json

    return json.dumps(obj)


def test_text_at_the_limit_is_accepted(client):
    assert client.post("/v1/classify", json=_posts(["y" * 300]), headers=AUTH).status_code == 200


def test_structural_errors_name_every_field(client):
    body = {"posts": [{"id": "a", "text": "ok"}, {"id": 7, "text": "ok"}, {"id": "c"}]}
    err = _error(client.post("/v1/classify", json=body, headers=AUTH), 422, "validation_error")
    fields = {(d["field"], d["index"]) for d in err["details"]}
    assert ("posts[1].id", 1) in fields and ("posts[2].text", 2) in fields


@pytest.mark.parametrize("body", [{}, {"posts": []}, {"posts": [{"id": "a", "text": "x"}], "text": "y"}, [1, 2]])
def test_shape_errors(client, body):
    _error(client.post("/v1/classify", json=body, headers=AUTH), 422, "validation_error")


def test_single_text_empty(client):
    err = _error(client.post("/v1/classify", json={"text": "  "}, headers=AUTH), 422, "validation_error")
    assert err["details"] == [{"field": "text", "index": None, "problem": "text is empty or only whitespace"}]


def test_too_many_posts_413(client):
    err = _error(client.post("/v1/classify", json=_posts(["a"] * 9), headers=AUTH), 413, "too_many_posts")
    assert "limit is 8" in err["message"]


def test_huge_body_413(client):
    r = client.post("/v1/classify", content=b'{"text": "' + b"a" * 200_000 + b'"}',
                    headers={**AUTH, "content-type": "application/json"})
    _error(r, 413, "payload_too_large")


def test_malformed_json_422(client):
    r = client.post("/v1/classify", content=b'{"posts": [', headers={**AUTH, "content-type": "application/json"})
    err = _error(r, 422, "malformed_json")
    assert "not valid JSON" in err["message"]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_415(client, ctype):
    headers = {**AUTH, **({"content-type": ctype} if ctype else {})}
    err = _error(client.post("/v1/classify", content=b'{"text": "hi"}', headers=headers), 415,
                 "unsupported_media_type")
    assert "application/json" in err["message"]


def test_json_subtype_accepted(client):
    r = client.post("/v1/classify", content=b'{"text": "hi"}',
                    headers={**AUTH, "content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200


def test_unknown_route_and_method(client):
    _error(client.get("/v1/nope", headers=AUTH), 404, "not_found")
    _error(client.get("/v1/classify", headers=AUTH), 405, "method_not_allowed")


# ---- auth --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers,needle", [({}, "Missing API key"), ({"X-API-Key": "wrong"}, "Invalid API key")])
def test_auth_required(client, headers, needle):
    for r in (client.post("/v1/classify", json={"text": "hi"}, headers=headers),
              client.get("/v1/model", headers=headers),
              client.post("/v1/admin/reload", headers=headers)):
        err = _error(r, 401, "unauthorized")
        assert needle in err["message"]
        assert r.headers["www-authenticate"] == "ApiKey"


def test_auth_precedes_content_checks(client):
    _error(client.post("/v1/classify", content=b"hi", headers={"content-type": "text/plain"}), 401, "unauthorized")


def test_admin_key_separate(client):
    _error(client.post("/v1/admin/reload", headers=AUTH), 401, "unauthorized")  # inference key is not admin
    assert client.post("/v1/classify", json={"text": "hi"}, headers=ADMIN).status_code == 200  # admin may classify


def test_probes_and_metrics_need_no_key(client):
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_auth_disabled_warns(tiny_model, caplog):
    caplog.set_level(logging.WARNING, logger="frontline.serving")
    with TestClient(create_app(settings(tiny_model.uri, api_keys=[], admin_api_keys=[]))) as c:
        assert c.post("/v1/classify", json={"text": "hi"}).status_code == 200
    assert "AUTHENTICATION IS DISABLED" in caplog.text


def test_settings_from_environment(monkeypatch):
    from serving.api.settings import Settings

    monkeypatch.setenv("FRONTLINE_API_KEYS", "a, b,,c")
    monkeypatch.setenv("FRONTLINE_MAX_POSTS", "5")
    monkeypatch.setenv("FRONTLINE_REVIEW_THRESHOLDS", '{"urgency": 0.4}')
    s = Settings(_env_file=None)
    assert s.api_keys == ["a", "b", "c"] and s.max_posts == 5 and s.review_thresholds == {"urgency": 0.4}
    monkeypatch.setenv("FRONTLINE_REVIEW_THRESHOLDS", '{"sentiment": 0.4}')
    with pytest.raises(ValueError, match="unknown head"):
        Settings(_env_file=None)


# ---- model not loaded --------------------------------------------------------------------------------
def test_model_not_loaded_503_then_reload_makes_ready(tiny_model, tmp_path):
    with TestClient(create_app(settings(str(tmp_path / "no-such-bundle")))) as c:
        r = c.get("/health/ready")
        assert r.status_code == 503 and r.json()["status"] in ("loading", "retrying") and r.json()["error"]
        assert r.json()["reason"].startswith("load_failed: ") and r.json()["attempts"] >= 1
        assert c.get("/health/live").status_code == 200
        err = _error(c.post("/v1/classify", json={"text": "hi"}, headers=AUTH), 503, "model_unavailable")
        assert "loading failed" in err["message"]
        _error(c.get("/v1/model", headers=AUTH), 503, "model_unavailable")
        bad = c.post("/v1/admin/reload", json={"uri": str(tmp_path / "still-nothing")}, headers=ADMIN)
        _error(bad, 404, "model_not_found")  # nothing there: the caller's mistake, not the server's
        ok = c.post("/v1/admin/reload", json={"uri": str(tiny_model.bundle_dir)}, headers=ADMIN)
        assert ok.status_code == 200, ok.text
        assert ok.json()["changed"] is True and ok.json()["previous"] is None
        assert c.get("/health/ready").status_code == 200
        assert c.post("/v1/classify", json={"text": "hi"}, headers=AUTH).status_code == 200


def test_background_load_becomes_ready(tiny_model):
    import time

    with TestClient(create_app(settings(str(tiny_model.bundle_dir), load_blocking=False))) as c:
        assert c.get("/health/live").status_code == 200
        deadline = time.monotonic() + 30
        while c.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "model never became ready"
            time.sleep(0.05)
        assert c.post("/v1/classify", json={"text": "hi"}, headers=AUTH).status_code == 200


# ---- OpenAPI -----------------------------------------------------------------------------------------
def test_openapi_documents_status_codes_and_labels(client):
    spec = client.get("/openapi.json").json()
    codes = lambda path, method: set(spec["paths"][path][method]["responses"])
    assert {"200", "401", "413", "415", "422", "429", "503"} <= codes("/v1/classify", "post")
    assert {"200", "401", "503"} <= codes("/v1/model", "get")
    assert {"200", "401", "500"} <= codes("/v1/admin/reload", "post")
    assert {"200", "503"} <= codes("/health/ready", "get")
    assert "200" in codes("/health/live", "get") and "200" in codes("/metrics", "get")
    err_ref = spec["paths"]["/v1/classify"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert err_ref["$ref"].endswith("/ErrorResponse")
    schemas = spec["components"]["schemas"]
    assert schemas["UrgencyLabel"]["enum"] == list(SCHEMA.urgency)
    assert set(schemas["ChannelScores"]["properties"]) == set(SCHEMA.prior_channels)
    post = spec["paths"]["/v1/classify"]["post"]
    assert "every bad post" in post["description"]
    assert set(post["requestBody"]["content"]["application/json"]["examples"]) == {"batch", "single"}
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]


# ---- metrics -----------------------------------------------------------------------------------------
def test_metrics(client, tiny_model):
    client.post("/v1/classify", json=_posts(TEXTS), headers=AUTH)
    client.post("/v1/classify", json={"text": ""}, headers=AUTH)
    text = client.get("/metrics").text
    assert metric_value(text, "frontline_http_requests_total", route="/v1/classify", method="POST", status="200") >= 1
    assert metric_value(text, "frontline_http_requests_total", route="/v1/classify", method="POST", status="422") >= 1
    assert metric_value(text, "frontline_http_request_duration_seconds_count", route="/v1/classify") >= 2
    assert metric_value(text, "frontline_batch_posts_count") >= 1
    assert metric_value(text, "frontline_batch_posts_sum") >= 3
    assert metric_value(text, "frontline_model_info", name="frontline", alias="champion",
                        version=str(tiny_model.summary["version"])) == 1.0
    assert metric_value(text, "frontline_personal_data_posts_total", kind="account_number") >= 1
    client.get("/v1/definitely/not/here")
    assert metric_value(client.get("/metrics").text, "frontline_http_requests_total", route="unmatched") >= 1


# ---- logs --------------------------------------------------------------------------------------------
SECRET = "zebra-quokka-4242 call me on 555-867-5309"


@pytest.mark.parametrize("log_texts", [False, True])
def test_texts_are_logged_only_when_enabled(tiny_model, caplog, log_texts):
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings(tiny_model.uri, log_texts=log_texts))) as c:
        assert c.post("/v1/classify", json={"posts": [{"id": "a", "text": SECRET}]}, headers=AUTH).status_code == 200
        c.post("/v1/classify", json={"posts": [{"id": "a", "text": SECRET}, {"id": "b", "text": ""}]}, headers=AUTH)
        c.post("/v1/classify", json={"posts": [{"id": "a", "text": SECRET * 20}]}, headers=AUTH)
    assert "classified 1 post(s)" in caplog.text  # the service does log requests...
    assert ("zebra-quokka" in caplog.text) is log_texts  # ...but the text only when asked to


def test_huge_chunked_body_413(client):
    def chunks():
        yield b'{"text": "'
        for _ in range(50):
            yield b"a" * 10_000
        yield b'"}'

    r = client.post("/v1/classify", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    _error(r, 413, "payload_too_large")


# ---- the OpenAPI document says exactly what the server accepts ---------------------------------------
# (tests/reliability/test_schemathesis.py attacks it at random; these pin each rule down by name)
def test_the_request_schema_is_one_of_posts_or_text_with_this_servers_limits(client):
    spec = client.get("/openapi.json").json()
    req = spec["components"]["schemas"]["ClassifyRequest"]
    assert req["oneOf"] == [{"required": ["posts"]}, {"required": ["text"]}]
    assert req["additionalProperties"] is False
    posts = req["properties"]["posts"]
    assert (posts["type"], posts["minItems"], posts["maxItems"]) == ("array", 1, 8)  # settings.max_posts
    post_text = spec["components"]["schemas"]["Post"]["properties"]["text"]
    for text in (post_text, req["properties"]["text"]):  # neither takes null; bounds from settings
        assert (text["type"], text["minLength"], text["maxLength"], text["pattern"]) == ("string", 1, 300, NOT_BLANK)
    assert req["properties"]["truncate"]["type"] == "boolean" and req["properties"]["truncate"]["default"] is True
    assert spec["components"]["schemas"]["ReloadRequest"]["properties"]["force"]["type"] == "boolean"
    assert "x-frontline-limit" not in r_text(spec)


@pytest.mark.parametrize("body", [
    {"posts": [{"id": "a", "text": "x"}], "text": "y"},  # both forms
    {"posts": None, "text": "x"}, {"text": None},  # null is not "absent"
    {"text": "x", "truncat": False},  # a misspelt option is not silently ignored
    {"text": "x", "truncate": 0}, {"text": "x", "truncate": "false"},  # booleans are booleans
    {"text": "x", "review": {"target_accuracy": "0.9"}},  # numbers are numbers
    {"posts": [{"id": 1, "text": "x"}]},
])
def test_what_the_document_refuses_the_server_refuses(client, body):
    _error(client.post("/v1/classify", json=body, headers=AUTH), 422, "validation_error")


def test_fields_of_your_own_inside_a_post_are_still_ignored(client):
    body = {"posts": [{"id": "a", "text": "my parcel never came", "channel": "twitter", "lang": "en"}], "truncate": True}
    assert client.post("/v1/classify", json=body, headers=AUTH).status_code == 200


@pytest.mark.parametrize("text,blank", [("\u3000\ufeff\u00a0", True), ("\x1c\x1f\x85", True), (" \t\n", True),
                                        ("\u200b", False), ("·", False)])
def test_blank_means_what_the_documented_pattern_says(client, text, blank):
    import re

    assert (re.search(NOT_BLANK, text) is None) is blank  # Python's \s and ECMA's \s disagree; the pattern does not
    r = client.post("/v1/classify", json={"text": text}, headers=AUTH)
    assert r.status_code == (422 if blank else 200), r.text


@pytest.mark.parametrize("body,field", [(b'{"posts": [{"id": "a\\ud800", "text": "fine"}]}', ("posts[0].id", 0)),
                                        (b'{"posts": [{"id": "a", "text": "fine"}, {"id": "b", "text": "x\\udfff"}]}',
                                         ("posts[1].text", 1))])
def test_a_lone_surrogate_is_refused_by_name_not_a_500(client, body, field):
    err = _error(client.post("/v1/classify", content=body, headers={**AUTH, "content-type": "application/json"}),
                 422, "validation_error")
    assert [(d["field"], d["index"]) for d in err["details"]] == [field]


def test_an_undecodable_body_is_the_documented_400(client):
    for path, headers in (("/v1/classify", AUTH), ("/v1/admin/reload", ADMIN)):
        r = client.post(path, content=b"\xff\xfe{", headers={**headers, "content-type": "application/json"})
        _error(r, 400, "bad_request")


def test_every_route_documents_exactly_the_statuses_it_answers(client):
    spec = client.get("/openapi.json").json()
    want = {("/v1/classify", "post"): {"200", "400", "401", "413", "415", "422", "429", "500", "503"},
            ("/v1/model", "get"): {"200", "401", "500", "503"},
            ("/v1/admin/reload", "post"): {"200", "400", "401", "404", "413", "422", "500"}}
    for (path, method), codes in want.items():
        responses = spec["paths"][path][method]["responses"]
        assert set(responses) == codes, path
        for code in codes - {"200"}:
            assert responses[code]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_reload_refuses_non_booleans_and_unknown_fields_and_404s_a_missing_model(client, tmp_path):
    for body in ({"force": 0}, {"force": "yes"}, {"uri": ""}, {"model": "x"}):
        _error(client.post("/v1/admin/reload", json=body, headers=ADMIN), 422, "validation_error")
    for uri in (str(tmp_path / "nothing-here"), "models:/frontline@no-such-alias", "x" * 300):
        err = _error(client.post("/v1/admin/reload", json={"uri": uri}, headers=ADMIN), 404, "model_not_found")
        assert "previous model keeps serving" in err["message"]
    assert client.get("/health/ready").status_code == 200


def test_only_the_callers_mistakes_are_404s():
    import errno

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

    from serving.api.routes.admin import callers_mistake

    assert callers_mistake(FileNotFoundError("gone"))
    assert callers_mistake(MlflowException("no such alias", error_code=RESOURCE_DOES_NOT_EXIST))
    assert callers_mistake(OSError(errno.ENAMETOOLONG, "File name too long"))
    assert not callers_mistake(MlflowException("store down", error_code=TEMPORARILY_UNAVAILABLE))
    assert not callers_mistake(ConnectionError("refused"))
    assert not callers_mistake(OSError(errno.EIO, "I/O error"))
    assert not callers_mistake(None)


def test_the_response_serialised_once_still_matches_its_documented_model(client):
    from serving.api.schemas import ClassifyResponse

    r = client.post("/v1/classify", json=_posts(TEXTS), headers=AUTH)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    # nothing missing, nothing extra (`explanation` is only present when asked for, hence exclude_unset)
    assert ClassifyResponse.model_validate(body).model_dump(mode="json", exclude_unset=True) == body


# ---- long posts: one window rule, truncated (default) or refused ------------------------------------
LONG = "still no refund after 3 calls " + "! " * 130  # punctuation: one token per "!"


def test_a_long_post_is_truncated_by_default_and_says_so(client, tiny_predictor):
    short = TEXTS[0]
    assert len(LONG) <= 300  # within max_text_chars: only the token window is at stake
    w_long, w_short = tiny_predictor.windows([LONG, short])
    assert w_long.truncated and w_long.tokens == tiny_predictor.max_length < w_long.total
    assert not w_short.truncated
    res = client.post("/v1/classify", json=_posts([LONG, short]), headers=AUTH).json()["results"]
    assert (res[0]["truncated"], res[0]["tokens"]) == (True, w_long.tokens)
    assert (res[1]["truncated"], res[1]["tokens"]) == (False, w_short.tokens)
    direct = tiny_predictor.classify([LONG, short])  # what batch labelling gets for the same posts
    assert [(r["truncated"], r["tokens"]) for r in direct] == [(r["truncated"], r["tokens"]) for r in res]
    assert res[0]["urgency"]["score"] == pytest.approx(direct[0]["urgency"]["score"], abs=1e-4)


def test_truncate_false_refuses_exactly_the_posts_over_the_window(client, tiny_predictor):
    w = tiny_predictor.windows([LONG])[0]
    body = {**_posts(["fine", LONG, "also fine", " ", LONG]), "truncate": False}
    err = _error(client.post("/v1/classify", json=body, headers=AUTH), 422, "validation_error")
    assert [(d["field"], d["index"]) for d in err["details"]] == [(f"posts[{i}].text", i) for i in (1, 3, 4)]
    assert f"{w.total} tokens" in err["details"][0]["problem"] and f"at most {w.limit}" in err["details"][0]["problem"]
    assert "empty" in err["details"][1]["problem"]  # every bad post, whatever its problem, in one answer
    assert "3 of 5" in err["message"]
    ok = client.post("/v1/classify", json={"text": "fine", "truncate": False}, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["results"][0]["truncated"] is False


def test_batch_labelling_applies_and_records_the_same_window_rule(client, tiny_predictor, tmp_path):
    import csv

    import pyarrow.parquet as pq

    from serving.batch.labelling import LabelOptions, run_label

    texts = [LONG, TEXTS[1], "x " * 400]  # the last is over the service's max_text_chars: batch labels it all the same
    src, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    with open(src, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("id", "text"), *((f"p{i}", t) for i, t in enumerate(texts))])
    summary = run_label(LabelOptions(input=src, output=out), predictor=tiny_predictor, model_info={"uri": "tiny"},
                        progress=False)
    got = pq.read_table(out).column("truncated").to_pylist()
    assert got == [w.truncated for w in tiny_predictor.windows(texts)] == [True, False, True]
    assert summary["truncated"] == 2
    served = client.post("/v1/classify", json=_posts(texts[:2]), headers=AUTH).json()["results"]
    assert [r["truncated"] for r in served] == got[:2]
