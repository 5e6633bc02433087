"""rl-baselines3-zoo trains every shipped algorithm on FNAS-NB201-v0 with our hyperparameters.

The zoo runs are subprocesses of ``python -m rl_zoo3.train`` (the documented
command), all at the same time, a few hundred steps each, no evaluation, logs in a
temporary folder, and with the network switched off: the zoo must not download
anything. The hyperparameter checks need only SB3 / sb3-contrib.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import pytest
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO

import fnas_env  # noqa: F401 - registers the ids
from fnas_env.hyperparams import ENV_SPACES, horizon

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "FNAS-NB201-v0"
STEPS = 300

#: zoo --algo -> algorithm class; the modules of fnas_env.hyperparams
CLASSES = {"ppo_lstm": RecurrentPPO, "ppo": PPO, "a2c": A2C, "dqn": DQN, "ppo_mask": MaskablePPO}
#: the algorithms rl_zoo3 2.9 trains (it has no MaskablePPO)
ZOO_ALGOS = ["ppo_lstm", "ppo", "a2c", "dqn"]

#: Installed as sitecustomize in the zoo processes: every network connection is
#: written to $FNAS_TEST_NETWORK_LOG and refused (local sockets stay allowed).
NO_NETWORK = '''
import os, socket

def _refuse(*args, **kwargs):
    with open(os.environ["FNAS_TEST_NETWORK_LOG"], "a") as f:
        f.write(repr(args[:2]) + "\\n")
    raise OSError("network disabled by tests/test_zoo.py")

_connect = socket.socket.connect

def _connect_local(self, address):
    if self.family == socket.AF_UNIX:
        return _connect(self, address)
    return _refuse(self, address)

socket.socket.connect = _connect_local
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
'''


#: algo -> (finished ``rl_zoo3.train`` process, its log folder)
Runs = dict[str, tuple[subprocess.CompletedProcess, Path]]


def settings(algo: str, env_id: str = ENV_ID) -> dict:
    return importlib.import_module(f"fnas_env.hyperparams.{algo}").hyperparams[env_id]


@pytest.fixture(scope="module")
def zoo_runs(tmp_path_factory, benchmark_dir) -> Runs:
    """``rl_zoo3.train`` once per algorithm, all at the same time (mostly import time)."""
    pytest.importorskip("rl_zoo3", reason="rl-baselines3-zoo is the [zoo] extra (in [dev])")
    site = tmp_path_factory.mktemp("no-network")
    (site / "sitecustomize.py").write_text(NO_NETWORK)
    network_log = site / "connections.log"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
        FNAS_BENCHMARK_DIR=str(benchmark_dir),
        FNAS_TEST_NETWORK_LOG=str(network_log),
    )
    procs = {}
    for algo in ZOO_ALGOS:
        tmp = tmp_path_factory.mktemp(f"zoo-{algo}")
        args = [sys.executable, "-m", "rl_zoo3.train", "--algo", algo, "--env", ENV_ID]
        args += ["--gym-packages", "fnas_env", "--conf-file", f"fnas_env.hyperparams.{algo}"]
        args += ["-n", str(STEPS), "--eval-freq", "-1", "--seed", "0", "--num-threads", "1"]
        args += ["-f", str(tmp / "logs")]
        proc = subprocess.Popen(
            args, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        procs[algo] = (proc, args, tmp / "logs")
    out = {}
    for algo, (proc, args, logs) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        out[algo] = (subprocess.CompletedProcess(args, proc.returncode, stdout, stderr), logs)
    assert not network_log.exists(), f"the zoo opened connections: {network_log.read_text()}"
    return out


@pytest.mark.parametrize("algo", ZOO_ALGOS)
def test_zoo_trains_with_our_hyperparameters(algo, zoo_runs):
    result, logs = zoo_runs[algo]
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Loading hyperparameters from: fnas_env.hyperparams.{algo}" in result.stdout
    run = logs / algo / f"{ENV_ID}_1"
    data = json.loads(zipfile.ZipFile(run / f"{ENV_ID}.zip").read("data"))
    # on-policy algorithms finish their last rollout: at most one rollout past -n
    rollout = settings(algo).get("n_steps", 1)
    assert STEPS <= data["num_timesteps"] < STEPS + rollout
    assert (run / ENV_ID / "config.yml").is_file()
    assert "activated" in result.stdout  # the budget callback logged the search/ scalars
    monitor = (run / "0.monitor.csv").read_text().splitlines()[2:]
    steps_per_episode = 1 if settings(algo)["env_kwargs"]["one_shot"] else horizon(ENV_ID)
    assert len(monitor) == data["num_timesteps"] // steps_per_episode


@pytest.mark.parametrize("algo", list(CLASSES))
def test_hyperparameters_fit_every_env(algo, benchmark_dir):
    """Every id has settings; the policy is one the algorithm knows (a zoo default of
    MlpPolicy is what breaks ppo_lstm); rollouts hold whole episodes; the action space
    is the one the algorithm needs (DQN: Discrete)."""
    for env_id in ENV_SPACES:
        hp = settings(algo, env_id)
        assert hp["policy"] in CLASSES[algo].policy_aliases
        one_shot = hp["env_kwargs"]["one_shot"]
        assert one_shot == (algo == "ppo")
        if "n_steps" in hp and not one_shot:
            assert hp["n_steps"] % horizon(env_id) == 0
        env = gym.make(env_id, benchmark_dir=benchmark_dir, **hp["env_kwargs"])
        expected = gym.spaces.MultiDiscrete if one_shot else gym.spaces.Discrete
        assert isinstance(env.action_space, expected)  # DQN: Discrete
        env.close()


def test_ppo_lstm_settings_are_make_controllers():
    """The zoo's ppo_lstm trains the controller agents.make_controller builds."""
    from agents.controller import ARCHITECTURES_PER_UPDATE, CONTROLLER_DEFAULTS, make_controller
    from agents.search import DEFAULT_SAMPLE_FACTOR
    from fnas_env import hyperparams

    assert hyperparams.ARCHITECTURES_PER_UPDATE == ARCHITECTURES_PER_UPDATE
    assert hyperparams.SAMPLE_FACTOR == DEFAULT_SAMPLE_FACTOR
    for env_id in ENV_SPACES:
        hp = settings("ppo_lstm", env_id)
        for key, value in CONTROLLER_DEFAULTS.items():
            assert hp[key] == value, key
        assert hp["n_steps"] == hp["batch_size"] == ARCHITECTURES_PER_UPDATE * horizon(env_id)
        scale = inspect.signature(make_controller).parameters["reward_scale"].default
        assert hp["vec_env_wrapper"] == {"agents.controller.ScaleReward": {"scale": scale}}
