"""Service settings: one ``Settings`` object, read from ``FRONTLINE_*`` environment variables and ``.env``.

Why pydantic-settings: every knob an operator may turn is declared, typed and validated in one place,
so a typo in a deployment fails at startup instead of at the first request. Tests build a ``Settings``
directly and hand it to ``create_app`` (or override the ``get_settings`` dependency); nothing reads
the environment behind their back.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from training.schema import HEADS


def _split_keys(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [k.strip() for k in value.split(",") if k.strip()]
    return [str(k).strip() for k in value if str(k).strip()]  # type: ignore[union-attr]


class Settings(BaseSettings):
    """Everything the HTTP service can be told. Environment: ``FRONTLINE_<FIELD>`` (e.g. ``FRONTLINE_API_KEYS``)."""

    model_config = SettingsConfigDict(env_prefix="FRONTLINE_", env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore", protected_namespaces=())

    model_uri: str = Field("models:/frontline@champion",
                           description="MLflow model URI (alias URIs are re-resolved on reload) or a bundle directory.")
    max_posts: int = Field(64, ge=1, description="Most posts in one /v1/classify call; more is a 413.")
    max_text_chars: int = Field(2000, ge=1, description="Longest accepted post text, in characters; longer is a 422.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated keys accepted on /v1/*. Empty: authentication is OFF (a warning is logged at startup).")
    admin_api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated keys accepted on /v1/admin/*. Empty: the api_keys are accepted there too.")
    api_key_header: str = Field("X-API-Key", description="Header that carries the API key.")
    review_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description='Per-head confidence under which a post needs_review, overriding the model\'s tuned values; JSON, e.g. {"urgency": 0.6}.')
    batch_max_size: int = Field(64, ge=1, description="Most posts in one forward pass of the micro-batcher.")
    batch_max_wait_ms: float = Field(
        0.0, ge=0, description="How long the micro-batcher waits for more requests to join a batch; 0 = continuous "
                               "batching: a batch takes whatever queued while the model was busy.")
    forward_batch_size: int = Field(
        16, ge=1, description="Posts per forward pass inside a micro-batch, sorted by length so short posts are not "
                              "padded to the longest (64 random posts in one pass: 230 posts/s; in passes of 16: 424).")
    max_queue_posts: int = Field(2048, ge=1, description="Posts waiting for the model beyond which calls get a 429.")
    queue_deadline_ms: float = Field(
        1000.0, ge=0, description="Admission control: the time to an answer accepted calls should stay under. A call "
                                  "whose expected time (the model's part for the posts queued ahead and its own, plus "
                                  "the measured overhead and event-loop lag) exceeds half of it is refused at once "
                                  "with 429 + Retry-After instead of waiting; 0 = off. A call is always admitted when "
                                  "nothing is queued ahead of it.")
    rate_limit: str = Field(
        "", description='Per-API-key rate limit on /v1/classify, in the limits library\'s notation, e.g. "600/minute" or '
                        '"20/second;600/minute"; empty = off. Without API keys the client address is the key.')
    rate_limit_storage: str = Field(
        "memory://", description='Where the rate-limit counters live: "memory://" (per process) or a Redis URI '
                                 '("redis://host:6379", shared by every replica; needs limits[async-redis]).')
    load_retry_attempts: int = Field(
        0, ge=0, description="First model load: attempts before giving up (0 = keep retrying); "
                             "/health/ready says 503 with the reason meanwhile.")
    load_retry_initial_s: float = Field(1.0, gt=0, description="First model load: delay before the first retry.")
    load_retry_max_delay_s: float = Field(
        60.0, gt=0, description="First model load: the longest delay between retries (exponential backoff with jitter).")
    runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="Network engine: auto = the model's int8 ONNX file with onnxruntime when present, else torch.")
    num_threads: int | None = Field(None, ge=1, description="Threads for one forward pass (default: the runtime's choice).")
    log_texts: bool = Field(False, description="Log post texts (debugging only: texts carry personal data).")
    reload_poll_seconds: float = Field(0.0, ge=0, description="Re-resolve the model alias this often and hot-swap on change; 0 = off.")
    load_blocking: bool = Field(
        True, description="Load the model before accepting connections. False: start at once, /health/ready says 503 until loaded.")

    # ---- explanations (serving.api.explain) and the challenger in shadow (serving.api.shadow) ----------
    explain_max_posts: int = Field(8, ge=1, description="Most posts in one call with `explain: true` (each costs a "
                                                        "forward pass over words + 1 texts); more is a 422.")
    explain_max_words: int = Field(64, ge=1, description="Most units occluded per post; longer posts are cut into "
                                                         "this many runs of consecutive words.")
    explain_top_k: int = Field(5, ge=1, le=50, description="Words returned per head (and per channel listed).")
    shadow_uri: str | None = Field(None, description="Challenger scored in shadow, e.g. models:/frontline@challenger; "
                                                     "unset = no shadow.")
    shadow_sample: float = Field(0.1, ge=0.0, le=1.0, description="Share of classified posts also scored by the challenger.")
    shadow_queue_posts: int = Field(1024, ge=1, description="Posts waiting for the challenger beyond which sampled "
                                                            "posts are dropped (counted), never delaying an answer.")
    shadow_num_threads: int = Field(1, ge=1, description="Threads of the challenger's forward pass (it shares the CPU "
                                                         "with the champion).")
    shadow_flush_seconds: float = Field(30.0, gt=0, description="How often shadow counts are written as tags on the "
                                                                "challenger's registered version (read by `frontline promote`).")

    # ---- corrections (serving.feedback) ----------------------------------------------------------------
    feedback_url: str | None = Field(
        None, description="SQLAlchemy URL of the corrections database (POST /v1/feedback), e.g. "
                          "postgresql+psycopg://user:pw@db/frontline; default: SQLite feedback.db in the models directory.")
    feedback_api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated keys accepted on POST /v1/feedback only (the API and admin keys work there too).")

    @field_validator("api_keys", "admin_api_keys", "feedback_api_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> list[str]:
        return _split_keys(value)

    @field_validator("review_thresholds")
    @classmethod
    def _heads(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(HEADS))
        if unknown:
            raise ValueError(f"unknown head(s) {unknown}; heads are {list(HEADS)}")
        bad = {h: t for h, t in value.items() if not 0.0 <= t <= 1.0}
        if bad:
            raise ValueError(f"review thresholds must lie in [0, 1], got {bad}")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f'not a rate limit: {value!r} (write e.g. "600/minute" or "20/second;600/minute")') from exc
        return value.strip()

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.admin_api_keys)

    @property
    def max_body_bytes(self) -> int:
        """A byte cap well above any valid call (4 bytes per char, JSON overhead), so huge bodies die before parsing."""
        return self.max_posts * (self.max_text_chars * 4 + 512) + 64 * 1024
