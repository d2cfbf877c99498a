"""The reliability suite: every test in this folder carries the ``reliability`` marker (it runs in ``make test``;
deselect with ``-m 'not reliability'``). The live server lives in ``server.py``, the load drivers in ``load.py``."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.reliability)
