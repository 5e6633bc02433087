"""Agents: controller factory, baselines, search callback, other SB3 algorithms."""

from __future__ import annotations

import itertools

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


def evaluated_everywhere(env: NASEnv) -> NASEnv:
    """Record every architecture of the env's space, so each later sample is a cached repeat."""
    for choices in itertools.product(*map(range, env.search_space.num_choices)):
        arch = env.search_space.from_choices(list(choices))
        env.score(arch, env.evaluate(arch))
    return env


def assert_repeats_are_cached(entries) -> None:
    """Every evaluated entry is a new architecture, every cached one an earlier evaluated one."""
    seen: set[tuple[int, ...]] = set()
    for entry in entries:
        assert entry.kind in ("activated", "cached"), entry.kind
        if entry.kind == "activated":
            assert entry.choices not in seen, f"{entry.arch} evaluated twice"
            seen.add(entry.choices)
        else:
            assert entry.choices in seen and entry.cost == 0.0


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
        assert len(env.record.entries) == 25 + env.record.counters.cached == result.sampled
        assert_repeats_are_cached(env.record.entries)
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


@pytest.mark.parametrize("max_samples", [0, -1, 2.5, True])
def test_baseline_rejects_bad_max_samples(max_samples):
    with pytest.raises(ValueError, match="max_samples must be None .* or a positive int"):
        random_search(synthetic_env(), budget=3, max_samples=max_samples)


@pytest.mark.parametrize("search", BASELINES)
@pytest.mark.parametrize("env_id", ["FNAS-Macro-v0", "FNAS-NB201-v0"])
def test_baseline_activates_budget_distinct_architectures(search, env_id, benchmark_dir):
    env = gym.make(env_id, benchmark_dir=benchmark_dir)
    result = search(env, budget=60, seed=0)
    record = env.unwrapped.record
    c = record.counters
    assert c.activated == 60 == result.activated and c.sampled == 60 + c.cached == result.sampled
    assert_repeats_are_cached(record.entries)
    assert len({e.choices for e in record.entries}) == 60
    if search is regularized_evolution:
        assert c.cached > 0, "the test needs a repeat to show it is free"


def limit_sampling(monkeypatch, env: NASEnv, n: int) -> list[Architecture]:
    """Make the env's space sample and mutate within its first ``n`` architectures."""
    space = env.search_space
    archs = [space.sample(np.random.default_rng(i)) for i in range(n)]
    monkeypatch.setattr(space, "sample", lambda rng: archs[int(rng.integers(n))])
    monkeypatch.setattr(space, "mutate", lambda arch, rng: archs[int(rng.integers(n))])
    return archs


@pytest.mark.parametrize("search", [random_search, regularized_evolution])
def test_max_samples_stops_a_search_that_can_only_repeat(search, monkeypatch):
    env = synthetic_env()
    archs = limit_sampling(monkeypatch, env, 3)
    result = search(env, budget=5, seed=0)  # 3 distinct architectures exist: budget unreachable
    assert (result.activated, result.sampled) == (3, 20 * 5)
    assert env.record.counters.cached == 97
    assert {e.choices for e in env.record.entries} == {a.choices for a in archs}
    result = search(env, budget=5, seed=1, max_samples=12)  # counted from this call's start
    assert (result.activated, result.sampled, env.record.counters.cached) == (3, 112, 109)


def test_max_samples_stops_a_reinforce_policy_that_collapsed():
    env = synthetic_env()
    result = reinforce(env, budget=100, seed=0, learning_rate=1.0, max_samples=300)
    assert result.activated < 100 and result.sampled == 300
    assert env.record.counters.cached == 300 - result.activated
    assert_repeats_are_cached(env.record.entries)


def test_evolution_keeps_cached_children_in_its_population(monkeypatch):
    """A child copied from its parent (a cached repeat) joins the population and ages out
    the others: the population converges to the best initial members."""
    env = synthetic_env()
    space = env.search_space
    parents: list[Architecture] = []

    def copy_parent(arch, rng):
        parents.append(arch)
        return arch

    monkeypatch.setattr(space, "mutate", copy_parent)
    result = regularized_evolution(env, budget=11, seed=0, max_samples=200)
    assert (result.activated, result.sampled) == (10, 200)  # children are never new
    initial = {e.choices: e.reward for e in env.record.entries[:10]}
    best = max(initial.values())
    assert min(initial.values()) < best  # some members are worse: the test can tell
    assert all(initial[arch.choices] == best for arch in parents[-50:])


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
    assert logged["search/cached"][-1] == env.record.counters.cached
    for key in ("sampled", "trusted", "replayed", "cost", "best_reward"):
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
    for key in ("best_accuracy", "sampled", "cached", "trusted", "replayed", "cost"):
        assert f"search/{key}" in logged


def test_callback_max_samples_stops_a_search_of_repeats(tmp_path):
    env = evaluated_everywhere(synthetic_env())
    start = env.record.counters.sampled
    model = make_controller(env, seed=0, tensorboard_log=str(tmp_path), architectures_per_update=4)
    callback = SearchBudgetCallback(budget=5, max_samples=8)
    model.learn(total_timesteps=6 * 1000, callback=callback)
    c = env.record.counters
    assert (callback.activated, callback.sampled, c.sampled - start) == (0, 8, 8)
    assert c.cached == 8 and model.num_timesteps == 6 * 8
    assert scalars(tmp_path)["search/cached"][-1] == 8
    fresh = synthetic_env()
    callback = SearchBudgetCallback(max_samples=3)
    make_controller(fresh, seed=0, architectures_per_update=2).learn(6 * 100, callback=callback)
    assert callback.sampled == fresh.record.counters.sampled == 3


@pytest.mark.parametrize("kwargs", [{"budget": 0}, {"max_samples": 0}, {"max_samples": 1.5}])
def test_callback_rejects_bad_budget(kwargs):
    with pytest.raises(ValueError, match=f"{next(iter(kwargs))} must be None or a positive int"):
        SearchBudgetCallback(**kwargs)


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
