"""Agents: controller factory, baselines, search callback, harness, other SB3 algorithms."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import fnas_env  # noqa: F401
from agents.baselines import random_search, regularized_evolution, reinforce
from agents.callbacks import SearchBudgetCallback
from agents.controller import episode_length, make_controller
from agents.harness import METHODS, reach, register_method, run_method
from fnas_env.arch import Architecture
from fnas_env.env import NASEnv
from fnas_env.evaluators.base import Evaluation, Evaluator
from fnas_env.reward import RewardConfig

torch.set_num_threads(1)

OPTIMUM = (3, 1, 4, 1, 0, 2)


class MatchEvaluator(Evaluator):
    """Synthetic objective on the nb201 space: percent of decisions equal to OPTIMUM."""

    space_name = "nb201"

    def _evaluate(self, arch: Architecture) -> Evaluation:
        hits = sum(a == b for a, b in zip(arch.choices, OPTIMUM))
        return Evaluation(accuracy=100.0 * hits / len(OPTIMUM))


def synthetic_env(one_shot: bool = False) -> NASEnv:
    return NASEnv(MatchEvaluator(), RewardConfig(target=None), one_shot=one_shot)


def scalars(logdir) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


# ---- controller ---------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ["FNAS-NB201-v0", "FNAS-Macro-v0"])
def test_controller_learns_tiny_budget(env_id, benchmark_dir):
    env = gym.make(env_id, benchmark_dir=benchmark_dir)
    horizon = env.unwrapped.horizon
    model = make_controller(env, seed=0, architectures_per_update=4)
    assert model.n_steps == 4 * horizon and model.n_steps % horizon == 0
    assert model.policy.lstm_actor.hidden_size == 100 and model.policy.lstm_actor.num_layers == 1
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=8 * horizon)
    counters = env.unwrapped.record.counters
    assert counters.activated == 8 and counters.sampled == 8
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters())), (
        "two PPO updates changed no parameter"
    )


def test_controller_rejects_bad_settings():
    with pytest.raises(ValueError, match="one_shot"):
        make_controller(synthetic_env(one_shot=True))
    with pytest.raises(ValueError, match="multiple of the episode length"):
        make_controller(synthetic_env(), n_steps=7)
    with pytest.raises(ValueError, match="NASEnv"):
        make_controller(gym.make("CartPole-v1"))
    assert episode_length(synthetic_env()) == 6


def test_controller_scaled_reward_keeps_true_record():
    env = synthetic_env()
    model = make_controller(env, seed=1, architectures_per_update=2)
    model.learn(total_timesteps=4 * 6)
    rewards = [e.reward for e in env.record.entries]
    assert all(r in {100.0 * k / 6 for k in range(7)} for r in rewards)
    assert model.env.scale == pytest.approx(0.01)


def test_silent_controller_leaves_no_log_folders(tmp_path, monkeypatch):
    """SB3's default logger would make an empty SB3-<date> folder per learn()."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = make_controller(synthetic_env(), seed=0, architectures_per_update=2)
    model.learn(total_timesteps=2 * 6)
    model.learn(total_timesteps=2 * 6, reset_num_timesteps=False)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("SB3-")] == []
    model.logger.record("search/x", 1.0)  # still a working (silent) logger
    model.logger.dump(0)


# ---- baselines ------------------------------------------------------------------------
BASELINES = [random_search, regularized_evolution, reinforce]


@pytest.mark.parametrize("search", BASELINES)
def test_baseline_budget_and_seed(search):
    runs = []
    for seed in (0, 0, 1):
        env = synthetic_env()
        result = search(env, budget=25, seed=seed)
        assert env.record.counters.activated == 25 == result.activated
        assert len(env.record.entries) == 25
        runs.append([e.choices for e in env.record.entries])
    assert runs[0] == runs[1], "same seed, different search"
    assert runs[0] != runs[2], "different seeds, same search"


@pytest.mark.parametrize("search", BASELINES)
def test_baseline_continues_a_used_env_for_budget_more(search):
    env = synthetic_env()
    random_search(env, budget=5, seed=3)
    search(env, budget=7, seed=3)
    assert env.record.counters.activated == 12


@pytest.mark.parametrize("budget", [0, -3, 2.5, True])
def test_baseline_rejects_bad_budget(budget):
    with pytest.raises(ValueError, match="budget"):
        random_search(synthetic_env(), budget=budget)


def test_evolution_and_reinforce_beat_random_on_known_optimum():
    def mean_reward(search, seed):
        env = synthetic_env()
        search(env, budget=200, seed=seed)
        return np.mean([e.reward for e in env.record.entries[100:]])

    seeds = range(3)
    random_mean = np.mean([mean_reward(random_search, s) for s in seeds])
    assert random_mean == pytest.approx(100 / 5, abs=3)  # 1 in 5 decisions right by chance
    for search in (regularized_evolution, reinforce):
        mean = np.mean([mean_reward(search, s) for s in seeds])
        assert mean > random_mean + 10, f"{search.__name__}: {mean:.1f} vs random {random_mean:.1f}"
    env = synthetic_env()
    regularized_evolution(env, budget=200, seed=0)
    assert env.record.counters.best_arch == env.search_space.to_string(
        Architecture("nb201", OPTIMUM)
    )


def test_baseline_logs_tensorboard_scalars(tmp_path):
    env = synthetic_env()
    random_search(env, budget=20, seed=0, logdir=tmp_path)
    logged = scalars(tmp_path)
    assert logged["search/activated"][-1] == 20
    assert logged["search/best_accuracy"][-1] == env.record.counters.best_accuracy
    for key in ("sampled", "surrogate", "replayed", "cost", "best_reward"):
        assert f"search/{key}" in logged


# ---- callback ---------------------------------------------------------------------------
def test_callback_stops_at_budget_and_logs(tmp_path):
    env = synthetic_env()
    model = make_controller(env, seed=0, tensorboard_log=str(tmp_path), architectures_per_update=4)
    callback = SearchBudgetCallback(budget=10)
    model.learn(total_timesteps=6 * 1000, callback=callback)
    assert env.record.counters.activated == 10 == callback.activated
    assert model.num_timesteps == 6 * 10
    logged = scalars(tmp_path)
    assert logged["search/activated"][-1] == 10
    assert logged["search/best_reward"][-1] == env.record.counters.best_reward
    for key in ("best_accuracy", "sampled", "surrogate", "replayed", "cost"):
        assert f"search/{key}" in logged


def test_callback_rejects_bad_budget():
    with pytest.raises(ValueError, match="budget"):
        SearchBudgetCallback(budget=0)


# ---- other SB3 algorithms on the env ------------------------------------------------------
def test_ppo_one_shot_a2c_and_maskable_ppo_learn():
    env = synthetic_env(one_shot=True)
    PPO("MlpPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0).learn(16)
    assert env.record.counters.activated == 16

    env = synthetic_env()
    A2C("MlpPolicy", env, n_steps=6, seed=0).learn(6 * 3)
    assert env.record.counters.activated == 3

    env = synthetic_env()
    model = MaskablePPO("MlpPolicy", env, n_steps=12, batch_size=12, n_epochs=1, seed=0)
    model.learn(6 * 4, callback=SearchBudgetCallback(budget=4))
    assert env.record.counters.activated == 4
    # masks allow only token < n_i, so every choice was taken as its own token
    assert all(0 <= c < 5 for e in env.record.entries for c in e.choices)


# ---- harness ---------------------------------------------------------------------------------
def test_harness_trace_and_registry(benchmark_dir):
    trace = run_method(
        "evolution", "FNAS-Macro-v0", {"benchmark_dir": benchmark_dir}, budget=30, seed=0
    )
    assert [p.activated for p in trace] == list(range(1, 31))
    best = np.maximum.accumulate([p.accuracy for p in trace])
    assert np.allclose([p.best_accuracy for p in trace], best)
    assert all(p.eval_time <= p.wall_time + 1e-6 for p in trace)
    assert trace[-1].unique <= 30
    assert reach(trace, trace[-1].best_accuracy) == int(np.argmax(best >= best[-1])) + 1
    assert reach(trace, 101.0) is None
    with pytest.raises(ValueError, match="unknown method"):
        run_method("nope", "FNAS-Macro-v0", budget=1)
    with pytest.raises(ValueError, match="already registered"):
        register_method("random")(lambda *a, **k: None)
    assert {"random", "evolution", "reinforce", "ppo-lstm"} <= set(METHODS)


def test_harness_ppo_lstm_respects_budget(benchmark_dir):
    trace = run_method(
        "ppo-lstm", "FNAS-NB201-v0", {"benchmark_dir": benchmark_dir}, budget=12, seed=0
    )
    assert len(trace) == 12 and trace[-1].sampled == 12
    assert trace[-1].test_accuracy is not None
