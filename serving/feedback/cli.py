"""``frontline feedback export | stats``: the ML engineer's side of the agents' corrections.

The database is the service's (``FRONTLINE_FEEDBACK_URL``, else SQLite ``feedback.db`` in the models
directory); ``--url`` points at another one. Opening it runs any pending migration.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()

UrlOption = Annotated[Optional[str], typer.Option(
    help="SQLAlchemy URL of the corrections database [default: FRONTLINE_FEEDBACK_URL, else models/feedback.db].")]


def open_store(url: str | None):
    from serving.api.settings import Settings
    from serving.feedback.store import FeedbackStore, FeedbackStoreError

    store = FeedbackStore(url or Settings().feedback_url)
    try:
        return store.open()
    except FeedbackStoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    feedback = typer.Typer(help="Agents' corrections (POST /v1/feedback): export them for training, agreement per "
                                "model version.", no_args_is_help=True)

    @feedback.command()
    def export(
        out: Annotated[Path, typer.Option(help="JSONL file to write, in data/train.jsonl's format.")],
        url: UrlOption = None,
        version: Annotated[Optional[str], typer.Option(help="Only corrections of answers by this model version.")] = None,
        since: Annotated[Optional[datetime], typer.Option(help="Only corrections stored or changed since (UTC).")] = None,
    ):
        """Write the corrections as labelled posts (latest per post id) for `frontline train --extra FILE`."""
        from datetime import UTC

        from serving.feedback.export import export_jsonl

        store = open_store(url)
        since_utc = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
        counts = export_jsonl(store, out, model_version=version, since=since_utc)
        console.print(f"wrote {counts['written']} labelled posts to {out} ({counts['corrections']} corrections from "
                      f"{store.safe_url}; {counts['superseded']} superseded by a later correction of the same post)")

    @feedback.command()
    def stats(url: UrlOption = None):
        """Per model version: corrections, and how often agents kept the model's label, per head."""
        from training.schema import HEADS

        store = open_store(url)
        rows = store.agreement()
        table = Table(title=f"agreement between the model and the agents — {store.safe_url}")
        for col in ("model", "version", "corrections", "with the model's answer", *HEADS):
            table.add_column(col, justify="left" if col in ("model", "version") else "right")
        for a in rows:
            table.add_row(a.model_name or "-", a.model_version or "unknown", str(a.corrections), str(a.scored),
                          *("-" if a.agreement[h] is None else f"{100 * a.agreement[h]:.1f}%" for h in HEADS))
        console.print(table)
        if not rows:
            console.print("no corrections yet: POST /v1/feedback stores them")
        else:
            console.print("agreement: share of corrections whose label for that head is the one the version answered "
                          "(prior_channels: the same set); counted over corrections that carry the answer")

    app.add_typer(feedback, name="feedback")
