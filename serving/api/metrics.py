"""Prometheus metrics of one app instance, in its own registry.

Why a registry per app: tests (and anything embedding the app) create several apps in one process;
the global default registry would refuse the second one's metrics. ``/metrics`` serves this registry.
With several uvicorn workers each worker counts on its own: run one worker per container and scale
with replicas (the service is stateless), or scrape each worker.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("frontline_http_requests", "HTTP requests by route template, method and status.",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("frontline_http_request_duration_seconds", "HTTP request latency by route template.",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_posts = Histogram("frontline_batch_posts", "Posts per forward pass of the micro-batcher.",
                                     buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("frontline_batch_requests", "Requests merged into one forward pass.",
                                        buckets=BATCH_BUCKETS, registry=r)
        self.inference = Histogram("frontline_inference_seconds", "Duration of one forward pass (whole batch).",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("frontline_queue_wait_seconds", "Time a request waited for its batch to start.",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.queued_posts = Gauge("frontline_queued_posts", "Posts waiting for the model.", registry=r)
        self.seconds_per_post = Gauge("frontline_seconds_per_post",
                                      "Moving estimate of the model's seconds per post (what admission control prices "
                                      "a call with).", registry=r)
        self.call_overhead = Gauge("frontline_call_overhead_seconds",
                                   "Moving estimate of how much longer admitted calls take than their model part.",
                                   registry=r)
        self.loop_lag = Gauge("frontline_event_loop_lag_seconds",
                              "Smoothed delay of the event loop in running a due timer.", registry=r)
        self.shed = Counter("frontline_shed_calls", "Calls refused with 429 before reaching the model, by reason: "
                            "deadline (expected time over the queue deadline's budget), expired (admitted, then "
                            "stalled past the deadline), queue_full, rate_limit (the API key's limit is spent).", ["reason"], registry=r)
        self.posts = Counter("frontline_posts_classified", "Posts classified.", registry=r)
        self.predictions = Counter("frontline_predictions", "Predicted labels by head (prior_channels: each channel, or none).",
                                   ["head", "label"], registry=r)
        self.needs_review = Counter("frontline_needs_review", "Posts flagged needs_review.", registry=r)
        self.review_reasons = Counter("frontline_review_reasons", "Review reasons given, by reason (a post may have several).",
                                      ["reason"], registry=r)
        self.personal_data = Counter("frontline_personal_data_posts", "Posts found to contain personal data, by kind.",
                                     ["kind"], registry=r)
        self.model_info = Gauge("frontline_model_info", "The model being served (value 1).",
                                ["name", "version", "alias", "uri"], registry=r)
        self.model_loaded = Gauge("frontline_model_loaded", "1 when a model is loaded and serving.", registry=r)
        self.reloads = Counter("frontline_model_reloads", "Model (re)loads by outcome.", ["outcome"], registry=r)

    def set_model(self, name: str | None, version: str | None, alias: str | None, uri: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name or "", version or "", alias or "", uri).set(1)
        self.model_loaded.set(1)
