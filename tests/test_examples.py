"""The example scripts run end to end with a tiny budget and report what they found."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fnas_env.spaces import get_space

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [
    "search_nb201_recurrent_ppo.py",
    "search_nb201_ppo_oneshot.py",
    "search_nb201_a2c.py",
    "search_nb201_maskable_ppo.py",
]


BUDGET = 6


@pytest.fixture(scope="module")
def runs(tmp_path_factory, benchmark_dir) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Run every example once, all at the same time (each is mostly import time)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), FNAS_BENCHMARK_DIR=str(benchmark_dir))
    procs = {}
    for script in EXAMPLES:
        tmp = tmp_path_factory.mktemp(script.removesuffix(".py"))
        logdir = tmp / "run"
        args = [
            sys.executable,
            str(ROOT / "examples" / script),
            "--total-architectures",
            str(BUDGET),
            "--seed",
            "1",
            "--logdir",
            str(logdir),
            "--no-progress-bar",
        ]
        proc = subprocess.Popen(
            args, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        procs[script] = (proc, args, logdir)
    out = {}
    for script, (proc, args, logdir) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        out[script] = (subprocess.CompletedProcess(args, proc.returncode, stdout, stderr), logdir)
    return out


@pytest.mark.parametrize("script", EXAMPLES)
def test_example_runs_and_reports(script, runs):
    result, logdir = runs[script]
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    budget = BUDGET

    record_path = logdir / "record.jsonl"
    entries = [json.loads(line) for line in record_path.read_text().splitlines()]
    assert len(entries) == budget and all(e["kind"] == "evaluated" for e in entries)
    best = max(entries, key=lambda e: e["reward"])

    assert f"activated samples: {budget}" in out
    arch = re.search(r"best architecture: (\S+)", out).group(1)
    assert arch == best["arch"]
    get_space("nb201").from_string(arch)  # a valid NAS-Bench-201 cell string
    assert f"validation accuracy: {best['accuracy']:.2f}" in out
    assert f"test accuracy: {best['extras']['test_accuracy']:.2f}" in out
    assert f"search record: {record_path}" in out
    assert f"tensorboard logs: {logdir}" in out
    assert list(logdir.rglob("events.out.tfevents.*")), "no TensorBoard log written"


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
    assert sum(e["kind"] == "evaluated" for e in entries) >= 6
    assert "with 2 worker(s)" in outputs[0]
    target = json.loads((run_dir / "search.json").read_text())["target"]
    for out in outputs:
        assert f"target latency T = {target:.3f}" in out
