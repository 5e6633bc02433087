"""The example scripts run end to end with a tiny budget and report what they found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_main_job_on_two_ray_workers_resumes_with_the_same_target(tmp_path):
    """examples/fnas_search.py --workers 2: trains on two Ray workers into one record;
    a second start on the same folder resumes it and scores with the same T."""
    pytest.importorskip("ray", reason="Ray is the [ray] extra (installed with [dev])")
    run_dir = tmp_path / "run"
    args = [sys.executable, str(ROOT / "examples" / "fnas_search.py"), "--workers", "2"]
    args += ["--epochs", "1", "--max-train", "128", "--max-val", "64", "--width", "0.25"]
    args += ["--cost-model", "macs", "--run-dir", str(run_dir), "--no-progress-bar"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    outputs = []
    for budget in (4, 2):
        proc = subprocess.run(
            [*args, "--architectures", str(budget)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append(proc.stdout)
    entries = [json.loads(line) for line in (run_dir / "record.jsonl").read_text().splitlines()]
    assert sum(e["kind"] == "activated" for e in entries) >= 6
    assert "with 2 worker(s)" in outputs[0]
    target = json.loads((run_dir / "search.json").read_text())["env_kwargs"]["target"]
    for out in outputs:
        assert f"target latency T = {target:.3f}" in out
