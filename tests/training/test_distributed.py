"""The training entry point under torchrun: two gloo processes, one registered version."""

import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient


def test_torchrun_two_processes_registers_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    frontline = Path(sys.executable).parent / "frontline"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "--no-python", str(frontline), "train",
           "--base", "tiny", "--epochs", "2", "--limit", "300", "--summary-json", str(tmp_path / "summary.json")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='frontline'")
    assert len(versions) == 1
    runs = client.search_runs([client.get_experiment_by_name("frontline").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["best_epoch"] in (1.0, 2.0)
    assert client.get_model_version_by_alias("frontline", "champion").version in (1, "1")
