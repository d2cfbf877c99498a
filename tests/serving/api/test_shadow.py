"""A challenger in shadow: sampled live posts scored off the request path, agreement on /metrics and
/v1/shadow, counts stored on the challenger's version, and promote's minimum shadow sample."""

from __future__ import annotations

import json
import shutil
import threading
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from serving.api.app import create_app
from serving.api.shadow import ShadowScorer
from tests.serving.api.app_support import AUTH, metric_value, settings

TEXTS = ["@Delta on hold 2 hours, flight cancelled", "my card was charged twice", "where is my parcel?",
         "emailed twice and called, no answer", "love the new app", "account locked, cannot log in"]


@pytest.fixture(scope="module")
def challenger(tiny_model, tmp_path_factory):
    """A second tiny model: the champion's network with a policy that always says `critical`, registered as a new
    version with the alias `challenger`. Issue type and channels decide exactly as the champion does."""
    from mlflow import MlflowClient

    from training import tracking

    bundle = tmp_path_factory.mktemp("challenger") / "frontline"
    shutil.copytree(tiny_model.bundle_dir, bundle)
    meta = json.loads((bundle / "frontline.json").read_text())
    meta["policy"]["class_offsets"]["urgency"] = [0.0, 0.0, 0.0, 50.0]
    (bundle / "frontline.json").write_text(json.dumps(meta))
    import mlflow

    client = MlflowClient()
    with mlflow.start_run() as run:  # a run with a (low) validation score, as `frontline train` would leave
        mlflow.log_metric("val_selection_score", 0.0)
    version = str(client.create_model_version(tracking.MODEL_NAME, str(bundle), run_id=run.info.run_id).version)
    client.set_registered_model_alias(tracking.MODEL_NAME, "challenger", version)
    yield version
    client.delete_registered_model_alias(tracking.MODEL_NAME, "challenger")
    client.set_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION, str(tiny_model.summary["version"]))


def _wait(c, posts: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = c.get("/v1/shadow", headers=AUTH).json()
        if report["posts"] >= posts or report["status"] == "failed":
            return report
        time.sleep(0.1)
    raise AssertionError(f"shadow scored {report['posts']} posts, expected {posts}: {report}")


def test_shadow_agreement_is_counted_exported_and_stored(tiny_model, challenger):
    from training import tracking

    cfg = settings(tiny_model.uri, shadow_uri="models:/frontline@challenger", shadow_sample=1.0, shadow_flush_seconds=0.2)
    with TestClient(create_app(cfg)) as c:
        r = c.post("/v1/classify", json={"posts": [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]}, headers=AUTH)
        assert r.status_code == 200 and r.json()["model"]["version"] == str(tiny_model.summary["version"])
        champion = r.json()["results"]
        report = _wait(c, len(TEXTS))
        assert report["status"] == "scoring" and report["version"] == challenger
        assert report["champion_version"] == str(tiny_model.summary["version"])
        critical = sum(x["urgency"]["label"] == "critical" for x in champion)
        assert report["agree"] == {"urgency": critical, "issue_type": 6, "prior_channels": 6, "tried_other_channel": 6}
        assert report["agreement"]["issue_type"] == 1.0
        metrics = c.get("/metrics").text
        assert metric_value(metrics, "frontline_shadow_agreement_total", head="issue_type", agree="true") == 6
        assert metric_value(metrics, "frontline_shadow_agreement_total", head="urgency", agree="false") == 6 - critical
        assert metric_value(metrics, "frontline_shadow_posts_total") == 6
    stored = tracking.shadow_stats(challenger)  # flushed at shutdown at the latest
    assert stored["posts"] == 6 and stored["champion_version"] == str(tiny_model.summary["version"])
    assert stored["agree"]["issue_type"] == 6

    # a restarted service continues the sample it had against the same champion
    with TestClient(create_app(cfg)) as c:
        c.post("/v1/classify", json={"text": "still no refund"}, headers=AUTH)
        assert _wait(c, 7)["posts"] == 7
    assert tracking.shadow_stats(challenger)["posts"] == 7


def test_promote_requires_the_minimum_shadow_sample(tiny_model, challenger):
    from typer.testing import CliRunner

    from serving.cli import app
    from training import tracking

    have = tracking.shadow_stats(challenger)["posts"]
    assert have > 0  # written by the test above
    with pytest.raises(tracking.PromotionRefused, match="fewer than"):
        tracking.promote(challenger, force=True, min_shadow_posts=have + 100)
    res = CliRunner().invoke(app, ["promote", challenger, "--force", "--min-shadow-posts", str(have + 100)])
    assert res.exit_code == 1 and "refused" in res.output
    assert tracking.champion().version == str(tiny_model.summary["version"])
    res = CliRunner().invoke(app, ["promote", challenger, "--force", "--min-shadow-posts", str(have)])
    assert res.exit_code == 0, res.output
    assert tracking.champion().version == challenger and f"shadow sample: {have} posts" in res.output
    tracking.promote(str(tiny_model.summary["version"]), force=True)  # restore for the other tests


def test_a_full_queue_drops_without_waiting_and_a_broken_challenger_fails_nothing(tiny_model):
    release = threading.Event()

    def slow_loader(uri):
        release.wait(10)
        return SimpleNamespace(name="frontline", version=None, predictor=SimpleNamespace(
            classify=lambda texts: [{"urgency": {"label": "low"}, "issue_type": {"label": "other"},
                                     "prior_channels": {"channels": [], "tried_other_channel": False}} for _ in texts]))

    scorer = ShadowScorer("x", 1.0, 2, CollectorRegistry(), slow_loader, flush_seconds=0.1)
    scorer.start()
    result = {"urgency": {"label": "low"}, "issue_type": {"label": "billing"},
              "prior_channels": {"channels": [], "tried_other_channel": False}}
    started = time.perf_counter()
    queued = scorer.offer(["a", "b", "c", "d", "e"], "1", [result] * 5)
    assert time.perf_counter() - started < 0.05
    assert queued == 2 and scorer.report()["dropped"] == {"queue_full": 3}
    release.set()
    deadline = time.monotonic() + 10
    while scorer.report()["posts"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    report = scorer.report()
    assert report["posts"] == 2 and report["agree"]["urgency"] == 2 and report["agree"]["issue_type"] == 0
    scorer.stop()

    cfg = settings(tiny_model.uri, shadow_uri="/no/such/model", shadow_sample=1.0)
    with TestClient(create_app(cfg)) as c:
        r = c.post("/v1/classify", json={"text": "where is my parcel?"}, headers=AUTH)
        assert r.status_code == 200
        report = _wait(c, 1)
        assert report["status"] == "failed" and report["error"]
        c.post("/v1/classify", json={"text": "where is my parcel?"}, headers=AUTH)
        assert c.get("/v1/shadow", headers=AUTH).json()["dropped"].get("challenger_unavailable", 0) >= 1
    with TestClient(create_app(settings(tiny_model.uri))) as c:
        assert c.get("/v1/shadow", headers=AUTH).json() == {**c.get("/v1/shadow", headers=AUTH).json(), "enabled": False}
