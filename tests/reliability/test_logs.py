"""No post text in any log line, at any level, of the live service: on success and on every error path.

The server runs with every logger at DEBUG (uvicorn's, the service's, the libraries'), and is sent
posts carrying a unique marker: a good call, every kind of bad call, a call shed by the rate limit.
The marker must not appear anywhere in what it printed. The same run with ``FRONTLINE_LOG_TEXTS=true``
is the control: there the marker must appear, which proves the capture would have seen a leak.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.reliability.server import AUTH, debug_log_config, live_server

OTHER_KEY = "reliability-second-key"


def _calls(url: str, marker: str) -> dict[str, int]:
    """Every path a post text can take through the service; returns what each answered."""
    text = f"my parcel {marker} never came, called twice"
    got = {}
    with httpx.Client(base_url=url, timeout=60) as c:
        def post(name, **kw):
            got[name] = c.post("/v1/classify", **kw).status_code

        post("ok", json={"posts": [{"id": "a", "text": text}, {"id": "b", "text": f"{marker} refund please"}]},
             headers=AUTH)
        post("single", json={"text": text}, headers=AUTH)
        post("invalid_post", json={"posts": [{"id": "a", "text": text}, {"id": "b", "text": "  "}]}, headers=AUTH)
        post("too_long", json={"posts": [{"id": "a", "text": text * 100}]}, headers=AUTH)
        post("wrong_type", json={"posts": [{"id": 7, "text": text}, {"id": "b", "text": {"nested": text}}]},
             headers=AUTH)
        post("malformed", content=f'{{"posts": [{{"id": "a", "text": "{text}"', headers={**AUTH, "Content-Type":
                                                                                           "application/json"})
        post("too_many", json={"posts": [{"id": str(i), "text": text} for i in range(65)]}, headers=AUTH)
        post("not_json", content=text, headers={**AUTH, "Content-Type": "text/plain"})
        post("no_key", json={"text": text})
        for i in range(11):  # the second key's limit is 10 a minute
            post(f"rate_{i}", json={"text": text}, headers={"X-API-Key": OTHER_KEY})
        got["review"] = c.post("/v1/classify", json={"text": text, "review": {"target_accuracy": 7}},
                               headers=AUTH).status_code
    return got


@pytest.mark.parametrize("log_texts", [False, True], ids=["texts-off", "control-texts-on"])
def test_no_post_text_in_any_log_line(tiny_model, tmp_path, log_texts):
    marker = f"zq{uuid.uuid4().hex[:12]}xk"
    config = debug_log_config(tmp_path / "logging.json")
    with live_server(tiny_model, tmp_path / "server", log_config=config, log_texts=str(log_texts).lower(),
                     api_keys=f"reliability-key,{OTHER_KEY}", rate_limit="10/minute", max_posts=64,
                     max_text_chars=2000) as server:
        got = _calls(server.url, marker)
    logs = server.logs()
    assert got == {"ok": 200, "single": 200, "invalid_post": 422, "too_long": 422, "wrong_type": 422, "malformed": 422,
                   "too_many": 413, "not_json": 415, "no_key": 401, **{f"rate_{i}": 200 for i in range(10)},
                   "rate_10": 429, "review": 422}, json.dumps(got)
    # the capture is real: the service's own lines at INFO and DEBUG are in it
    assert "POST /v1/classify -> 200" in logs and "POST /v1/classify -> 422" in logs and "-> 429" in logs
    assert " DEBUG " in logs and "classified 2 post(s)" in logs
    leaked = [line for line in logs.splitlines() if marker in line]
    if log_texts:
        assert leaked, "the control run logged no text: the capture would miss a leak"
    else:
        assert not leaked, f"{len(leaked)} log line(s) carry post text, e.g. {leaked[:2]}"
