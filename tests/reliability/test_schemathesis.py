"""The OpenAPI document says exactly what the server accepts: schemathesis, every check, both directions,
against a live uvicorn serving the tiny model.

Every check (``--checks all``) and both generation modes (``--mode all``) over every operation, in all
of schemathesis' phases (schema examples, boundary coverage, random fuzzing): a request the document
calls valid must be answered 2xx (not 422), one it calls invalid must be refused, every status, header,
content type and body must be documented, and nothing may answer 5xx.

Two settings of the server under test, and why:
* ``max_text_chars`` is 120, inside the model's 128-token window, so ``"truncate": false`` never refuses
  a text the document allows (a token count cannot be written in JSON Schema: with a larger
  ``max_text_chars`` a schema-valid long post may be refused under ``truncate: false``, as documented;
  ``tests/serving/api/test_api.py`` tests that rule).
* A batch over ``max_posts`` is refused with 413 (as TEI does), so 413 is added to the statuses that
  count as refusing invalid data; every other expectation is schemathesis' own.

``FRONTLINE_SCHEMATHESIS_EXAMPLES`` (default 100 per operation and phase) and ``FRONTLINE_SCHEMATHESIS_SEED``
widen or vary the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.reliability.server import ADMIN_KEY, ROOT, live_server

pytestmark = pytest.mark.reliability

EXAMPLES = int(os.environ.get("FRONTLINE_SCHEMATHESIS_EXAMPLES", "100"))
SEED = os.environ.get("FRONTLINE_SCHEMATHESIS_SEED", "20261202")
# schemathesis' default for negative_data_rejection, plus 413 (a batch over max_posts)
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    with live_server(tiny_model, tmp_path_factory.mktemp("server"), max_posts="8", max_text_chars="120") as server:
        yield server.url, server.log_path


def test_schemathesis_finds_no_difference_between_the_openapi_document_and_the_server(server, tmp_path):
    url, log = server
    config = tmp_path / "schemathesis.toml"
    config.write_text("[checks.negative_data_rejection]\nexpected-statuses = [%s]\n"
                      % ", ".join(f'"{s}"' for s in REFUSALS))
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{url}/openapi.json",
           "--checks", "all", "--mode", "all", "--max-examples", str(EXAMPLES), "--seed", SEED, "--workers", "1",
           "--request-timeout", "60", "--header", f"X-API-Key: {ADMIN_KEY}",
           "--report", "json", "--report-json-path", str(report)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = run.stdout[-12000:] + run.stderr[-4000:]
    assert report.exists(), out
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    print(f"schemathesis {result['schemathesis_version']}, seed {result['seed']}: {result['operations']['tested']} "
          f"operations, {cases['generated']} cases, {cases['unique_failures']} unique failures, "
          f"{len(result['errors'])} errors, {result['running_time']:.0f} s")
    assert result["operations"]["tested"] == result["operations"]["total"] >= 6, out
    assert result["failures"] == [] and result["errors"] == [], out + "\n--- server log ---\n" + log.read_text()[-4000:]
    assert run.returncode == 0, out
    assert cases["generated"] >= EXAMPLES, out  # the run really generated cases (not all skipped)
    assert not result["warnings"].get("unsupported_regex"), out  # the post-text pattern was understood
