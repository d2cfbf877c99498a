"""Alembic environment of the corrections database.

Run programmatically (``serving.feedback.store.FeedbackStore.open``), which passes an open connection in
``config.attributes["connection"]``; with the ``alembic`` command line (``alembic -c
serving/feedback/alembic.ini ...``) the URL comes from ``FRONTLINE_FEEDBACK_URL`` or the default SQLite file.
``render_as_batch`` lets later migrations alter columns on SQLite too (copy-and-move).
"""

from alembic import context
from sqlalchemy import create_engine

from serving.feedback.store import VERSION_TABLE, Base, default_url

target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    import os

    url = os.environ.get("FRONTLINE_FEEDBACK_URL") or default_url()
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()


def run_migrations_offline() -> None:
    import os

    context.configure(url=os.environ.get("FRONTLINE_FEEDBACK_URL") or default_url(), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
