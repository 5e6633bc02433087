"""``fnas search`` and ``fnas envs`` end to end, on tiny data in temporary folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest

import fnas_env  # noqa: F401 - registers the ids
from fnas_env.cli import main
from fnas_env.record import read_record
from fnas_env.run import RunFolder
from fnas_env.spaces import get_space

ROOT = Path(__file__).resolve().parents[1]
#: a proxy that trains in a fraction of a second (digits, 64 images, 1 epoch)
TINY_MNAS = [
    "--epochs", "1",
    "--env-kwarg", "max_train=64",
    "--env-kwarg", "max_val=32",
    "--env-kwarg", "width=0.25",
    "--env-kwarg", "cost_model=macs",
]  # fmt: skip


def evaluated(run_dir: Path) -> list:
    return [e for e in read_record(run_dir / "record.jsonl") if e.kind == "activated"]


def fnas(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m fnas_env ARGS`` in a subprocess (the console script's code path)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "fnas_env", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_fnas_search_on_digits_records_and_reports_the_best(tmp_path, capsys):
    run_dir = tmp_path / "digits"
    code = main(["search", "--budget", "3", "--run-dir", str(run_dir), *TINY_MNAS,
                 "--no-progress-bar"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    entries = evaluated(run_dir)
    assert len(entries) == 3
    settings = RunFolder(run_dir).settings()
    assert settings.env_id == "FNAS-MNAS-v0" and settings.method == "fnas"
    target = settings.env_kwargs["target"]
    assert isinstance(target, float) and target > 0  # 'base' fixed to a number once
    best = max(entries, key=lambda e: e.reward)
    assert f"best architecture: {best.arch}" in out
    assert f"target latency T = {target:.3f}" in out
    get_space("mnas").from_string(best.arch)
    for name in ("critic.pt", "aeb", "pool", "latency.json", "tb"):
        assert (run_dir / name).exists(), name


@pytest.mark.parametrize(
    "method", ["mnas", "fnas", "fnas-screen", "evolution", "random", "reinforce"]
)
def test_fnas_search_on_a_table_spends_exactly_the_budget(method, tmp_path, capsys):
    run_dir = tmp_path / method
    args = ["search", "--env", "FNAS-NB201-v0", "--method", method, "--budget", "6"]
    assert main([*args, "--run-dir", str(run_dir), "--no-progress-bar"]) == 0
    entries = evaluated(run_dir)
    assert len(entries) == 6
    assert len({e.choices for e in entries}) == 6  # repeats are cached, never paid twice
    out = capsys.readouterr().out
    assert f"best architecture: {max(entries, key=lambda e: e.reward).arch}" in out
    # the same command with a larger budget resumes: earlier entries are kept
    assert main([*args[:-1], "9", "--run-dir", str(run_dir), "--no-progress-bar"]) == 0
    resumed = evaluated(run_dir)
    assert len(resumed) == 9 and resumed[:6] == entries
    out = capsys.readouterr().out
    assert "resuming: 6 architectures already evaluated, 3 to go" in out
    if method in ("fnas", "fnas-screen", "mnas"):  # the controller goes on from its last update
        assert "controller restored from" in out and (run_dir / "controller.pt").is_file()


@pytest.mark.parametrize("method", ["fnas", "fnas-screen", "fnas-screen-keep"])
def test_fnas_screen_trusts_the_less_promising_and_fnas_the_less_uncertain(
    method, tmp_path, monkeypatch
):
    """fnas-screen's gate puts its threshold on V + U / 2 (so a trusted architecture's
    score is below it, unless a neighbour of the best ones was evaluated in its place,
    just before it); fnas's on U alone (a few points, far below any V on Macro)."""
    import agents.fnas_ppo as fnas_ppo
    from agents.methods import SCREEN_GATE

    built = []
    make = fnas_ppo.make_fnas_controller
    monkeypatch.setattr(
        fnas_ppo, "make_fnas_controller", lambda *a, **k: built.append(k) or make(*a, **k)
    )
    screen = method.startswith("fnas-screen")
    run_dir = tmp_path / method
    args = ["search", "--env", "FNAS-Macro-v0", "--method", method, "--budget", "40"]
    args += ["--uac-warmup", "10", "--run-dir", str(run_dir), "--no-progress-bar"]
    assert main(args) == 0
    entries = list(read_record(run_dir / "record.jsonl"))
    trusted = [(i, e) for i, e in enumerate(entries) if e.kind == "trusted"]
    assert trusted, "the critic was never trusted"
    replaced = 0
    for i, e in trusted:
        v, u, threshold = (e.extras[k] for k in ("predicted_reward", "uncertainty", "threshold"))
        if "alternative" in e.extras:  # its neighbour-of-the-best was evaluated first
            assert screen
            assert (entries[i - 1].arch, entries[i - 1].kind) == (
                e.extras["alternative"],
                "activated",
            )
            replaced += 1
        elif screen:
            assert v + SCREEN_GATE["kappa"] * u <= threshold + 1e-6
        else:
            assert u <= threshold + 1e-6 < v
    assert (replaced > 0) is screen
    assert [k.get("keep_replaced", False) for k in built] == [method == "fnas-screen-keep"]
    assert [k.get("max_trusted_fraction", 0.5) for k in built] == [0.75 if screen else 0.5]


def test_a_killed_search_resumes_from_its_record(tmp_path):
    """SIGKILL mid-search loses no completed evaluation; the same command finishes it."""
    run_dir = tmp_path / "killed"
    args = ["search", "--budget", "10", "--run-dir", str(run_dir), *TINY_MNAS,
            "--no-progress-bar"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fnas_env", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (run_dir / "record.jsonl").exists() and len(evaluated(run_dir)) >= 3:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = evaluated(run_dir)
    assert 3 <= len(before) < 10, "the search was not killed mid-way"
    target = RunFolder(run_dir).settings().env_kwargs["target"]

    result = fnas(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    after = evaluated(run_dir)
    assert len(after) == 10 and after[: len(before)] == before
    assert RunFolder(run_dir).settings().env_kwargs["target"] == target  # one reward scale
    assert f"resuming: {len(before)} architectures already evaluated" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "FNAS-Nope-v0"], "unknown env 'FNAS-Nope-v0'"),
        (["--env", "FNAS-NB201-v0", "--epochs", "2"], "FNAS-NB201-v0 takes no option 'epochs'"),
        (["--target", "-3"], "latency target must be a positive number"),
        (["--target", "fast"], "latency target must be a positive number"),
        (["--budget", "0", "--env", "FNAS-NB201-v0"], "budget must be a positive int"),
        (["--env-kwarg", "width"], "env options are KEY=VALUE"),
        (
            ["--env", "FNAS-NB201-v0", "--method", "evolution", "--workers", "2"],
            "one architecture at a",
        ),
    ],
)
def test_bad_search_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    code = main(["search", *args, "--run-dir", str(tmp_path / "run"), "--no-progress-bar"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("fnas search: error: ") and message in captured.err
    assert captured.err.count("\n") == 1
    assert captured.out == ""  # refused before anything is built or printed


def test_an_unknown_method_is_an_argparse_error_that_lists_the_methods(tmp_path):
    result = fnas("search", "--method", "darts", "--run-dir", str(tmp_path / "run"), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "invalid choice: 'darts'" in result.stderr and "evolution" in result.stderr


def test_a_dataset_that_is_not_an_image_folder_is_refused(tmp_path):
    not_images = tmp_path / "notes"
    not_images.mkdir()
    (not_images / "readme.txt").write_text("no class folders here")
    result = fnas("search", "--dataset", str(not_images), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("fnas search: error: ") and "ImageFolder" in result.stderr


def test_a_folder_of_another_search_is_refused(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    base = ["search", "--env", "FNAS-NB201-v0", "--budget", "2", "--run-dir", run_dir]
    assert main([*base, "--method", "random", "--no-progress-bar"]) == 0
    record = (tmp_path / "run" / "record.jsonl").read_bytes()
    capsys.readouterr()
    assert main([*base, "--method", "evolution", "--no-progress-bar"]) == 2
    err = capsys.readouterr().err
    assert "holds the record of another search" in err and "method: 'random' here" in err
    assert main([*base, "--dataset", "cifar100", "--no-progress-bar"]) == 2
    assert "env dataset" in capsys.readouterr().err
    assert (tmp_path / "run" / "record.jsonl").read_bytes() == record  # untouched


def test_fnas_envs_lists_every_env_with_the_spaces_gym_make_builds(capsys):
    assert main(["envs", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"FNAS-MNAS-v0", "FNAS-NB201-v0", "FNAS-Macro-v0", "FNAS-ANB-v0"}
    env = gym.make("FNAS-NB201-v0")
    assert rows["FNAS-NB201-v0"]["observation_space"] == str(env.observation_space)
    assert rows["FNAS-NB201-v0"]["action_space"] == str(env.action_space)
    assert rows["FNAS-NB201-v0"]["architectures"] == 5**6
    assert "dataset" in rows["FNAS-NB201-v0"]["options"]
    assert main(["envs"]) == 0
    assert "FNAS-MNAS-v0" in capsys.readouterr().out


def test_help_of_every_command_has_examples():
    for command in ("search", "export", "train", "report", "envs"):
        result = fnas(command, "--help", timeout=60)
        assert result.returncode == 0, result.stderr
        assert "examples:" in result.stdout, command


def test_fnas_search_on_two_ray_workers_keeps_one_record(tmp_path):
    pytest.importorskip("ray", reason="Ray is the [ray] extra (installed with [dev])")
    run_dir = tmp_path / "ray"
    args = ["search", "--env", "FNAS-NB201-v0", "--method", "fnas", "--budget", "8"]
    result = fnas(*args, "--workers", "2", "--run-dir", str(run_dir), "--no-progress-bar")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 worker(s)" in result.stdout
    entries = evaluated(run_dir)
    assert len(entries) >= 8 and len({e.choices for e in entries}) == len(entries)
    assert (run_dir / "critic.pt").is_file()
