"""Helpers shared by the HTTP service tests (test_app_*.py)."""

from __future__ import annotations

from serving.api.settings import Settings

KEY = "test-key"
ADMIN_KEY = "test-admin-key"
AUTH = {"X-API-Key": KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}


def settings(uri: str, **overrides) -> Settings:
    """Settings for a test app: no .env, no environment, auth on, batching on."""
    base = {"model_uri": uri, "api_keys": [KEY], "admin_api_keys": [ADMIN_KEY], "max_posts": 8, "max_text_chars": 300,
                "batch_max_wait_ms": 20}
    base.update(overrides)
    return Settings(_env_file=None, **base)


def metric_value(text: str, metric_name: str, /, **labels: str) -> float | None:
    """One sample's value from Prometheus text output (None when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(metric_name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != metric_name:
            continue
        got = dict(p.split("=", 1) for p in rest.rstrip("}").split(",") if p) if rest else {}
        got = {k: v.strip('"') for k, v in got.items()}
        if all(got.get(k) == v for k, v in labels.items()):
            return float(value)
    return None
