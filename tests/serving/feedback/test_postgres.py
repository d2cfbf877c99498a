"""The corrections database on a real PostgreSQL server: migrations, upserts, agreement and export.

A throwaway cluster is started on loopback in a temporary directory (as the ``postgres`` user when run as
root, since PostgreSQL refuses root), and removed afterwards. Skipped where PostgreSQL or psycopg is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from serving.feedback.export import export_jsonl
from serving.feedback.store import FeedbackStore, current_revision, head_revision
from training.data import read_labelled

L = {"urgency": "high", "issue_type": "billing", "prior_channels": ["phone"]}


def _bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg")
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not installed")
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="frontline-pg-")
    if os.geteuid() == 0:
        try:
            import pwd

            pg = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(root, "data")
    try:
        subprocess.run([*as_user, initdb, "-D", data, "-A", "trust", "-U", "frontline", "--no-sync"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a throwaway PostgreSQL: {exc}")
    try:
        yield f"postgresql+psycopg://frontline@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_the_store_on_postgresql(postgres_url, tmp_path):
    store = FeedbackStore(postgres_url).open()
    assert current_revision(store._engine) == head_revision()
    first = store.save(post_id="p1", text="card charged twice", labels=L, model_name="frontline", model_version="2",
                       predicted={**L, "urgency": "low"}, predicted_source="client", agent="a")
    again = store.save(post_id="p1", text="card charged twice", labels=L, model_name="frontline", model_version="2",
                       predicted=L, predicted_source="client", agent="a")
    store.save(post_id="p2", text="parcel lost", labels={**L, "issue_type": "delivery"}, model_name="frontline",
               model_version="2", predicted=L, predicted_source="client")
    assert first.created and not again.created and again.id == first.id
    (agreement,) = store.agreement()
    assert (agreement.model_version, agreement.corrections, agreement.scored) == ("2", 2, 2)
    assert agreement.agreement == {"urgency": 1.0, "issue_type": 0.5, "prior_channels": 1.0}
    assert FeedbackStore(postgres_url).open().count() == 2  # a second process: migrations already at head
    out = tmp_path / "c.jsonl"
    assert export_jsonl(store, out)["written"] == 2 and len(read_labelled(out)) == 2
    store.close()
