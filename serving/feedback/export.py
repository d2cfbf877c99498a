"""Corrections out of the database, in the training data's format (``data/train.jsonl``, ``training.data``).

One row per post id: when several agents corrected the same post, the latest correction wins (the rows are
read oldest change first). The extra keys (``agent``, ``queue``, ``model_version``, ``corrected_at``) are
ignored by ``training.data.read_labelled`` and keep each row traceable to who corrected what. The file is
written to a temporary name and moved into place, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from serving.feedback.store import FeedbackStore

SOURCE = "feedback"


def export_jsonl(store: FeedbackStore, out: Path, model_version: str | None = None,
                 since: datetime | None = None) -> dict[str, int]:
    """Write the corrections to ``out``; return {corrections, written, superseded}."""
    latest: dict[str, dict] = {}
    n = 0
    for c in store.corrections(model_version=model_version, since=since):
        n += 1
        changed = c.updated_at if c.updated_at.tzinfo else c.updated_at.replace(tzinfo=UTC)  # stored in UTC
        latest[c.post_id] = {
            "id": c.post_id, "source": SOURCE, "company": "", "created_at": changed.isoformat(), "text": c.text,
            **c.labels(), "agent": c.agent or None, "queue": c.queue, "model_version": c.model_version or None,
        }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in latest.values():
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"corrections": n, "written": len(latest), "superseded": n - len(latest)}
