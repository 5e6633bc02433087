"""examples/search_nb201.py runs every --algo end to end and reports what it found."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fnas_env.evaluators.tabular import NB201Evaluator
from fnas_env.spaces import get_space

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "search_nb201.py"
BUDGET = 6

#: --algo -> --dataset: every algorithm once, every dataset at least once
RUNS = {
    "ppo_lstm": "cifar10",
    "ppo": "cifar100",
    "a2c": "ImageNet16-120",
    "dqn": "cifar10",
    "maskable_ppo": "cifar100",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, benchmark_dir) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Run the script once per --algo, all at the same time (each is mostly import time)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), FNAS_BENCHMARK_DIR=str(benchmark_dir))
    procs = {}
    for algo, dataset in RUNS.items():
        tmp = tmp_path_factory.mktemp(algo)
        logdir = tmp / "run"
        args = [sys.executable, str(SCRIPT), "--algo", algo, "--dataset", dataset]
        args += ["--total-architectures", str(BUDGET), "--seed", "1"]
        args += ["--logdir", str(logdir), "--no-progress-bar"]
        proc = subprocess.Popen(
            args, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        procs[algo] = (proc, args, logdir)
    out = {}
    for algo, (proc, args, logdir) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        out[algo] = (subprocess.CompletedProcess(args, proc.returncode, stdout, stderr), logdir)
    return out


@pytest.mark.parametrize("algo", list(RUNS))
def test_search_reports_the_best_architecture_of_its_record(algo, runs, benchmark_dir):
    result, logdir = runs[algo]
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout

    record_path = logdir / "record.jsonl"
    entries = [json.loads(line) for line in record_path.read_text().splitlines()]
    evaluated = [e for e in entries if e["kind"] == "activated"]
    cached = [e for e in entries if e["kind"] == "cached"]
    assert len(evaluated) == BUDGET and len(evaluated) + len(cached) == len(entries)
    assert f"activated samples: {BUDGET}" in out
    assert f"cached samples: {len(cached)}" in out

    best = max(evaluated, key=lambda e: e["reward"])
    arch = re.search(r"best architecture: (\S+)", out).group(1)
    assert arch == best["arch"]
    table = NB201Evaluator(RUNS[algo], benchmark_dir).evaluate(
        get_space("nb201").from_string(arch)  # a valid NAS-Bench-201 cell string
    )
    assert f"validation accuracy: {table.accuracy:.2f}" in out
    assert f"test accuracy: {table.extras['test_accuracy']:.2f}" in out
    assert best["accuracy"] == pytest.approx(table.accuracy)

    assert f"search record: {record_path}" in out
    assert f"tensorboard logs: {logdir}" in out
    assert list(logdir.rglob("events.out.tfevents.*")), "no TensorBoard log written"
