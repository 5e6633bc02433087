"""ProxyEvaluator end to end and FNAS-MNAS-v0 (env checkers, records) on a tiny setting."""

from __future__ import annotations

import json
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from torch import nn

import fnas_env  # noqa: F401  (registers the ids)
from fnas_env.evaluators.proxy import ProxyEvaluator, base_architecture
from fnas_env.knowledge_pool import KnowledgePool
from fnas_env.latency import LatencyModel
from fnas_env.spaces import get_space
from fnas_env.training import TrainConfig, load_dataset

#: tiny proxy: 64 training images, 2 steps of 32, MACs as the cost (deterministic)
TINY_ENV = dict(cost_model="macs", epochs=1, batch_size=32, max_train=64, max_val=32, width=0.25)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=32, num_threads=1)


@pytest.fixture(scope="module")
def tiny_digits():
    return load_dataset("digits", max_train=64, max_val=32, seed=0)


def archs(n: int, seed: int = 0):
    space, rng = get_space("mnas"), np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_proxy_evaluator_with_pool_end_to_end(tmp_path, tiny_digits):
    pool = tmp_path / "akp"
    ev = ProxyEvaluator(
        "mnas",
        tiny_digits,
        train_config=TINY_TRAIN,
        latency_model=LatencyModel("macs"),
        pool=pool,
        width=0.25,
    )
    first, second = archs(2)
    a = ev.evaluate(first)
    assert 0.0 <= a.accuracy <= 100.0 and a.evaluated and not a.failed
    assert a.latency > 0 and a.macs == pytest.approx(a.latency * 1e6) and a.params > 0
    assert a.cost > a.extras["train_seconds"] > 0
    assert a.extras["iterations"] == 2 and a.extras["diverged"] is False
    assert a.extras["pool_hit_ratio"] == 0.0 and a.extras["pool_stored"] is True
    assert len(KnowledgePool(pool)) > 0  # stored on disk

    b = ev.evaluate(second)
    assert b.extras["pool_hit_ratio"] == 1.0  # fuzzy matching: every block initialised
    assert 0.0 <= b.extras["pool_exact_ratio"] <= 1.0 and b.extras["pool_lookup_ms"] >= 0

    again = ev.evaluate(first)  # cached: same result, no training
    assert again == a and ev.cache_hits == 1


def test_same_seed_same_accuracy_without_pool(tiny_digits):
    arch = archs(1, seed=3)[0]
    results = [
        ProxyEvaluator(
            dataset=tiny_digits,
            train_config=TINY_TRAIN,
            latency_model=LatencyModel("macs"),
            width=0.25,
            cache=False,
        ).evaluate(arch)
        for _ in range(2)
    ]
    assert results[0].accuracy == results[1].accuracy
    assert results[0].extras["final_loss"] == results[1].extras["final_loss"]


def test_diverging_candidate_is_a_failed_evaluation_and_zero_reward(monkeypatch, tiny_digits):
    class NaNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1)) * float("nan")

    monkeypatch.setattr("fnas_env.evaluators.proxy.build_model", lambda arch, cfg: NaNNet())
    env = gym.make("FNAS-MNAS-v0", one_shot=True, **TINY_ENV, target=1.0).unwrapped
    env.reset(seed=0)
    arch = archs(1)[0]
    _, reward, terminated, _, info = env.step(np.asarray(arch.choices))
    assert terminated and reward == 0.0
    assert info["failed"] is True and info["diverged"] is True and info["accuracy"] == 0.0
    assert env.record.counters.failed == 1


def test_env_checkers_pass_with_small_training():
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for one_shot in (False, True):
        # the checker replays a seeded step: a repeat would be served as cached
        env = gym.make("FNAS-MNAS-v0", one_shot=one_shot, cache=False, **TINY_ENV)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gym_check_env(env.unwrapped)
            if not one_shot:  # one-shot: every SB3 check step trains a network
                sb3_check_env(env.unwrapped, warn=True)
        env.close()


def test_one_episode_records_an_entry(tmp_path):
    record = tmp_path / "record.jsonl"
    env = gym.make("FNAS-MNAS-v0", record_path=record, **TINY_ENV)
    base = env.unwrapped
    arch = archs(1, seed=7)[0]
    obs, _ = env.reset(seed=1)
    tokens = base.tokens(arch)
    for token in tokens[:-1]:
        obs, reward, terminated, truncated, info = env.step(token)
        assert reward == 0.0 and not terminated and info == {}
    obs, reward, terminated, truncated, info = env.step(tokens[-1])
    assert terminated and not truncated and isinstance(reward, float)
    assert info["arch"] == get_space("mnas").to_string(arch)
    assert 0.0 <= info["accuracy"] <= 100.0 and info["evaluated"] is True
    assert info["latency"] > 0 and info["cost"] > 0 and math.isfinite(reward)
    # soft constraint: reward = ACC x (LAT/T)^-0.07 with T = the base architecture's MACs
    target = base.evaluator.cost_of(base_architecture())
    assert base.reward_config.target == pytest.approx(target)
    assert reward == pytest.approx(info["accuracy"] * (info["latency"] / target) ** -0.07)
    lines = record.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["arch"] == info["arch"]
    assert base.record.counters.activated == 1


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="target"):
        gym.make("FNAS-MNAS-v0", target="fast", **TINY_ENV)
    with pytest.raises(ValueError, match="cost_model"):
        gym.make("FNAS-MNAS-v0", **{**TINY_ENV, "cost_model": "flops"})
    with pytest.raises(ValueError, match="trains networks of the spaces"):
        ProxyEvaluator("nb201", load_dataset("digits", max_train=32, max_val=16))


def test_example_search_runs_and_reports(tmp_path):
    """examples/fnas_search.py with a tiny proxy: prints the best architecture and paths."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from fnas_env.record import read_record

    root = Path(__file__).resolve().parents[1]
    run_dir = tmp_path / "run"
    args = ["--architectures", "2", "--epochs", "1", "--max-train", "64", "--max-val", "32"]
    args += ["--cost-model", "macs", "--width", "0.25", "--run-dir", str(run_dir)]
    proc = subprocess.run(
        [sys.executable, str(root / "examples" / "fnas_search.py"), *args, "--no-progress-bar"],
        env=dict(os.environ, PYTHONPATH=str(root)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "2 trained (0 failed)" in out
    best = out.split("best architecture: ")[1].splitlines()[0]
    get_space("mnas").from_string(best)  # a valid architecture string
    assert "reward" in out and f"knowledge pool: {run_dir / 'pool'}" in out
    entries = list(read_record(run_dir / "record.jsonl"))
    assert sum(e.kind == "evaluated" for e in entries) == 2
    assert (run_dir / "critic.pt").is_file()  # UAC's V and U, for the next search
    assert any((run_dir / "tb").rglob("events.out.tfevents*"))
    assert len(KnowledgePool(run_dir / "pool")) > 0

    # a second search starts from the first one's critic, on its own reward scale
    second = tmp_path / "second"
    args2 = [a if a != str(run_dir) else str(second) for a in args]
    proc = subprocess.run(
        [sys.executable, str(root / "examples" / "fnas_search.py"), *args2, "--no-progress-bar"]
        + ["--transfer-critic", str(run_dir / "critic.pt"), "--pool", "none"],
        env=dict(os.environ, PYTHONPATH=str(root)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    from wrappers.critic import UncertaintyCritic

    source = UncertaintyCritic.load(run_dir / "critic.pt")
    critic = UncertaintyCritic.load(second / "critic.pt")
    trained = sum(e.kind == "evaluated" for e in read_record(second / "record.jsonl"))
    assert critic.num_samples == trained == 2  # the source's samples were forgotten
    assert critic.num_updates > source.num_updates  # its weights went on training
