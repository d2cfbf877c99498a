"""Where corrections live: one SQLAlchemy table, created and upgraded by Alembic migrations.

Why a real database: corrections arrive from several service replicas and are read by the ML engineer's
commands (``frontline feedback export | stats``), so they need transactions, a unique key and a schema that
can evolve; SQLite under the models directory is the zero-setup default, any SQLAlchemy URL (PostgreSQL in
a deployment) when ``FRONTLINE_FEEDBACK_URL`` says so. The schema is only ever changed by a migration in
``migrations/versions`` (``alembic.command.upgrade`` runs them on first use), never by ``create_all``.

One row per (post id, agent): a second correction of the same post by the same agent replaces the first
(latest wins), so a helpdesk retrying a call never counts twice. Whether the model agreed is computed once,
when the correction is stored, so the per-version agreement is a plain ``GROUP BY``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (JSON, Boolean, DateTime, Integer, String, Text, UniqueConstraint, create_engine, event, func,
                        select)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from training.schema import HEADS

log = logging.getLogger("frontline.feedback")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DB_FILE = "feedback.db"
VERSION_TABLE = "feedback_alembic_version"  # its own, so the database may be shared with other apps


class FeedbackStoreError(RuntimeError):
    """The corrections database cannot be reached or migrated; the message says which URL and why."""


def models_dir() -> Path:
    """The models directory the default database lives in: the one the MLflow store uses (one place to re-point)."""
    from training import paths

    return paths.models_dir()


def default_url() -> str:
    return f"sqlite:///{(models_dir() / DB_FILE).resolve()}"


class Base(DeclarativeBase):
    pass


class Correction(Base):
    """An agent's corrected labels for one post, with what the model had answered (when known)."""

    __tablename__ = "feedback_corrections"
    __table_args__ = (UniqueConstraint("post_id", "agent", name="uq_feedback_post_agent"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    post_id: Mapped[str] = mapped_column(String(256))
    agent: Mapped[str] = mapped_column(String(256), default="")  # "" = not given (NULLs would not be unique)
    queue: Mapped[str | None] = mapped_column(String(256), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(String(32))
    issue_type: Mapped[str] = mapped_column(String(64))
    prior_channels: Mapped[list] = mapped_column(JSON)
    model_name: Mapped[str] = mapped_column(String(128), default="")
    model_version: Mapped[str] = mapped_column(String(64), default="", index=True)
    predicted_urgency: Mapped[str | None] = mapped_column(String(32), nullable=True)
    predicted_issue_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    predicted_prior_channels: Mapped[list | None] = mapped_column(JSON, nullable=True)
    predicted_source: Mapped[str | None] = mapped_column(String(16), nullable=True)  # client | recomputed
    agree_urgency: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    agree_issue_type: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    agree_prior_channels: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def labels(self) -> dict[str, Any]:
        return {"urgency": self.urgency, "issue_type": self.issue_type, "prior_channels": list(self.prior_channels)}


@dataclass(frozen=True)
class Saved:
    id: int
    created: bool  # False: an earlier correction of this (post id, agent) was replaced
    received_at: datetime


@dataclass(frozen=True)
class Agreement:
    """Per model version: corrections received, how many carry the model's answer, and per head the share
    of those where the agent kept the model's label."""

    model_name: str
    model_version: str
    corrections: int
    scored: int
    agreement: dict[str, float | None]


def agreement_of(labels: dict[str, Any], predicted: dict[str, Any] | None) -> dict[str, bool | None]:
    """Per head, did the agent keep the model's label? (channels: the same set). None when not known."""
    if predicted is None:
        return {h: None for h in HEADS}
    return {h: (sorted(labels[h]) == sorted(predicted[h])) if h == "prior_channels" else labels[h] == predicted[h]
            for h in HEADS}


def _sqlite_pragmas(engine: Engine) -> None:
    """Several workers share one SQLite file: WAL lets readers run beside the writer, and a busy timeout makes
    a second writer wait instead of failing with 'database is locked'."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()


def _alembic_config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


class FeedbackStore:
    """The corrections database. ``open()`` (or the first call that needs it) runs the migrations."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def open(self) -> "FeedbackStore":
        """Connect and upgrade the schema to the newest migration (idempotent; safe from several processes)."""
        with self._lock:
            if self._engine is not None:
                return self
            try:
                if self.url.startswith("sqlite:///") and self.url != "sqlite:///:memory:":
                    Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                # hide_parameters: an error never carries the statement's values (post texts are personal data)
                engine = create_engine(self.url, pool_pre_ping=True, hide_parameters=True)
                if engine.dialect.name == "sqlite":
                    _sqlite_pragmas(engine)
                self._upgrade(engine)
            except FeedbackStoreError:
                raise
            except Exception as exc:
                raise FeedbackStoreError(f"feedback database {self.safe_url}: {type(exc).__name__}: {exc}") from exc
            self._engine = engine
            self._sessions = sessionmaker(engine, expire_on_commit=False)
            return self

    @staticmethod
    def _upgrade(engine: Engine) -> None:
        from alembic import command

        head = head_revision()
        if current_revision(engine) == head:
            return
        try:
            with engine.begin() as conn:
                command.upgrade(_alembic_config(conn), "head")
        except Exception:
            if current_revision(engine) != head:  # not just another process winning the race
                raise
        log.info("feedback database at migration %s", head)

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = self._sessions = None

    def session(self) -> Session:
        if self._sessions is None:
            self.open()
        assert self._sessions is not None
        return self._sessions()

    # ---- writing ---------------------------------------------------------------------------------------
    def save(self, *, post_id: str, text: str, labels: dict[str, Any], model_name: str | None,
             model_version: str | None, predicted: dict[str, Any] | None = None, predicted_source: str | None = None,
             agent: str | None = None, queue: str | None = None, now: datetime | None = None) -> Saved:
        """Insert the correction, or replace the one this agent already gave for this post."""
        now = now or datetime.now(UTC)
        agree = agreement_of(labels, predicted)
        values = dict(
            queue=queue, text=text, urgency=labels["urgency"], issue_type=labels["issue_type"],
            prior_channels=list(labels["prior_channels"]), model_name=model_name or "", model_version=model_version or "",
            predicted_urgency=predicted["urgency"] if predicted else None,
            predicted_issue_type=predicted["issue_type"] if predicted else None,
            predicted_prior_channels=list(predicted["prior_channels"]) if predicted else None,
            predicted_source=predicted_source if predicted else None,
            agree_urgency=agree["urgency"], agree_issue_type=agree["issue_type"],
            agree_prior_channels=agree["prior_channels"], updated_at=now)
        key = dict(post_id=post_id, agent=agent or "")
        for _attempt in range(2):  # a concurrent insert of the same key makes the second try an update
            try:
                with self.session() as s, s.begin():  # commits on leaving; rolls back on any error
                    row = s.scalars(select(Correction).filter_by(**key)).one_or_none()
                    created = row is None
                    if created:
                        row = Correction(**key, **values, created_at=now)
                        s.add(row)
                    else:
                        for k, v in values.items():
                            setattr(row, k, v)
                    s.flush()
                    saved = Saved(row.id, created, now)
                return saved
            except IntegrityError:
                continue
        raise FeedbackStoreError(f"could not store the correction of post {post_id!r}")

    # ---- reading ---------------------------------------------------------------------------------------
    def count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count(Correction.id))) or 0)

    def corrections(self, model_version: str | None = None, since: datetime | None = None) -> Iterator[Correction]:
        """Every correction, oldest change first (so a writer that keeps the last one per post keeps the newest)."""
        q = select(Correction).order_by(Correction.updated_at, Correction.id)
        if model_version is not None:
            q = q.where(Correction.model_version == model_version)
        if since is not None:
            q = q.where(Correction.updated_at >= since)
        with self.session() as s:
            yield from s.scalars(q.execution_options(yield_per=1000))

    def agreement(self) -> list[Agreement]:
        """Per (model name, version): corrections, scored ones, and the agreement share per head."""
        from sqlalchemy import case

        def share(col):
            return func.avg(case((col.is_(True), 1.0), (col.is_(False), 0.0), else_=None))

        q = (select(Correction.model_name, Correction.model_version, func.count(Correction.id),
                    func.count(Correction.agree_urgency), share(Correction.agree_urgency),
                    share(Correction.agree_issue_type), share(Correction.agree_prior_channels))
             .group_by(Correction.model_name, Correction.model_version)
             .order_by(Correction.model_name, Correction.model_version))
        with self.session() as s:
            rows = s.execute(q).all()
        return [Agreement(name, version, int(n), int(scored),
                          {h: (None if v is None else float(v)) for h, v in zip(HEADS, shares)})
                for name, version, n, scored, *shares in rows]
