"""Rollout wrappers over VecEnvs: one search record and one UAC critic for all envs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from fnas_env.env import NASEnv
from fnas_env.evaluators.base import Evaluation, Evaluator
from fnas_env.record import read_record
from fnas_env.spaces import get_space
from wrappers.critic import UncertaintyCritic
from wrappers.pending import PendingArchitectures
from wrappers.record import VecSearchRecord
from wrappers.uac import VecUncertaintyGate

SPACE = get_space("macro")


def objective(arch) -> float:
    return 60.0 + float(sum((i + 1) * c for i, c in enumerate(arch.choices)))


class Objective(Evaluator):
    """Macro-space evaluator with a known objective; counts its calls in this process."""

    space_name = "macro"

    def __init__(self) -> None:
        self.calls = 0

    def _evaluate(self, arch) -> Evaluation:
        self.calls += 1
        return Evaluation(accuracy=objective(arch), cost=1.0)


def make_env(one_shot: bool = True) -> NASEnv:
    return NASEnv(Objective(), one_shot=one_shot)


def env_fn(one_shot: bool = True):
    return lambda: make_env(one_shot)


def one_shot_actions(archs) -> np.ndarray:
    return np.asarray([a.choices for a in archs])


def test_pending_architectures_follow_sequential_episodes():
    venv = DummyVecEnv([env_fn(False), env_fn(False)])
    pending = PendingArchitectures(SPACE, venv.num_envs, one_shot=False)
    venv.reset()
    rng = np.random.default_rng(0)
    completed = []
    for _ in range(5 * SPACE.num_decisions + 3):  # episodes out of step after a reset
        actions = rng.integers(0, 3, size=venv.num_envs)
        expected = pending.completed_by(actions)
        _, _, dones, infos = venv.step(actions)
        for i, arch in enumerate(expected):
            assert (arch is not None) == bool(dones[i])
            if arch is not None:
                assert SPACE.to_string(arch) == infos[i]["arch"]
                completed.append(arch)
        pending.advance(actions, dones)
    assert len(completed) == 10


def test_one_record_serves_repeats_across_envs_and_resumes(tmp_path):
    path = tmp_path / "record.jsonl"
    venv = VecSearchRecord(DummyVecEnv([env_fn(), env_fn()]), path, seed=3)
    venv.reset()
    a, b, c = (SPACE.from_choices([k % 3] * 8) for k in range(3))
    venv.step(one_shot_actions([a, b]))  # env 0 pays for a, env 1 for b
    _, rewards, _, infos = venv.step(one_shot_actions([b, a]))  # repeats, the other env
    assert [info["cached"] for info in infos] == [True, True]
    assert list(rewards) == [objective(b), objective(a)]
    assert [e.calls for e in venv.venv.get_attr("evaluator")] == [1, 1]
    venv.step(one_shot_actions([c, c]))  # the same new architecture twice in one step
    counters = venv.counters
    assert (counters.activated, counters.cached, counters.sampled) == (4, 2, 6)
    entries = list(read_record(path))
    assert [e.kind for e in entries] == ["activated"] * 2 + ["cached"] * 2 + ["activated"] * 2
    assert all(e.seed == 3 for e in entries) and entries[2].cost == 0.0

    resumed = VecSearchRecord(DummyVecEnv([env_fn()]), path)
    assert resumed.counters.activated == 4 and resumed.is_cached(a) and resumed.is_cached(c)
    resumed.reset()
    _, reward, _, info = resumed.step(one_shot_actions([a]))
    assert info[0]["cached"] and reward[0] == objective(a)
    assert resumed.venv.get_attr("evaluator")[0].calls == 0


def test_record_keeps_replays_and_rejects_non_nas_envs(tmp_path):
    import gymnasium as gym

    venv = VecSearchRecord(DummyVecEnv([env_fn()]), tmp_path / "r.jsonl")
    arch = SPACE.from_choices([1] * 8)
    venv.record_replay(arch, 71.5)
    assert venv.counters.replayed == 1 and venv.counters.sampled == 0
    with pytest.raises(TypeError, match="search_space"):
        VecSearchRecord(DummyVecEnv([lambda: gym.make("CartPole-v1")]))


class FixedCritic:
    """V = objective + 1, U = 0 for layer-0 choice 0 else 1; records what it learns."""

    embedding_dim = SPACE.embedding_dim

    def __init__(self) -> None:
        self.num_samples = 100  # warm
        self.seen: list[float] = []

    def predict(self, x):
        archs = [SPACE.from_one_hot(row) for row in x]
        v = np.array([objective(a) + 1.0 for a in archs])
        u = np.array([0.0 if a.choices[0] == 0 else 1.0 for a in archs])
        return v, u

    def update(self, x, rewards, steps=None):
        self.seen.extend(float(r) for r in rewards)


@pytest.mark.parametrize("vec_cls", [DummyVecEnv, SubprocVecEnv])
def test_gate_decides_in_the_driver_and_learns_from_every_worker(vec_cls, tmp_path):
    """One critic in this process: trusted architectures are never evaluated by any
    worker, and every worker's real evaluation reaches the critic."""
    kwargs = {"start_method": "spawn"} if vec_cls is SubprocVecEnv else {}
    base = vec_cls([env_fn(), env_fn(), env_fn()], **kwargs)
    critic = FixedCritic()
    gate = VecUncertaintyGate(
        VecSearchRecord(base, tmp_path / "r.jsonl"),
        critic,
        threshold=0.5,
        max_relative_error=None,
        verify_best=False,
    )
    gate.reset()
    rng = np.random.default_rng(1)
    for _ in range(8):
        archs = [SPACE.sample(rng) for _ in range(3)]
        _, rewards, dones, infos = gate.step(one_shot_actions(archs))
        assert dones.all()
        for arch, reward, info in zip(archs, rewards, infos):
            trusted = arch.choices[0] == 0 and not info["cached"]
            assert info["trusted"] is trusted
            assert reward == (objective(arch) + 1.0 if trusted else objective(arch))
            assert info["predicted_reward"] == objective(arch) + 1.0
    counters = gate.venv.counters
    assert counters.activated == len(critic.seen) == gate.metrics()["activated"] > 0
    assert counters.trusted == gate.metrics()["trusted"] > 0
    worker_calls = sum(e.calls for e in base.get_attr("evaluator"))
    assert worker_calls == counters.activated  # trusted and cached: no worker evaluated them
    entries = list(read_record(tmp_path / "r.jsonl"))
    assert all(e.cost == 0.0 for e in entries if e.kind == "trusted")
    gate.set_trust_enabled(False)
    _, _, _, infos = gate.step(one_shot_actions([SPACE.from_choices([0, 1, 2, 0, 1, 2, 0, 2])] * 3))
    assert not any(info["trusted"] for info in infos)
    base.close()


class ExactCritic:
    """V = the objective, U = 0: it ranks every architecture right."""

    num_samples = 100  # warm

    def predict(self, x):
        v = np.array([objective(SPACE.from_one_hot(row)) for row in np.atleast_2d(x)])
        return v, np.zeros(len(v))

    def update(self, x, rewards, steps=None):
        pass


@pytest.mark.parametrize("with_record", [True, False])
def test_gate_evaluates_an_incumbents_neighbour_aside_and_records_it(with_record, tmp_path):
    """incumbents=1 over a VecEnv: the incumbent's best neighbour is evaluated on the
    proposing env, recorded as activated (in the one record, or in that env's own), and
    the proposal it beat is trusted."""
    base = DummyVecEnv([env_fn(), env_fn()])
    venv = VecSearchRecord(base, tmp_path / "r.jsonl") if with_record else base
    gate = VecUncertaintyGate(
        venv,
        ExactCritic(),
        threshold=0.0,
        warmup=0,
        max_relative_error=None,
        verify_best=False,
        selection="ucb",
        incumbents=1,
    )
    gate.reset()
    incumbent, other = SPACE.from_choices([1] * 8), SPACE.from_choices([0] * 8)
    _, _, _, infos = gate.step(one_shot_actions([incumbent, other]))
    assert [info["activated"] for info in infos] == [True, True]  # nothing evaluated yet
    proposal = SPACE.from_choices([0] + [1] * 7)
    _, rewards, _, infos = gate.step(one_shot_actions([proposal, proposal]))
    neighbour = SPACE.from_choices([1] * 7 + [2])  # the incumbent's best neighbour
    assert infos[0]["trusted"] and rewards[0] == objective(proposal)
    # the second env's proposal: that neighbour is now the incumbent, so its best
    # neighbour is evaluated next
    second = SPACE.from_choices([1] * 6 + [2, 2])
    assert infos[1]["trusted"]
    assert [info["alternative"] for info in infos] == [
        SPACE.to_string(a) for a in (neighbour, second)
    ]
    assert [info["aside_activated"] for info in infos] == [1, 1]
    if with_record:
        entries = [(e.arch, e.kind) for e in venv.record.entries]
    else:
        entries = [(e.arch, e.kind) for env in base.envs for e in env.record.entries]
    activated = {arch for arch, kind in entries if kind == "activated"}
    assert activated == {SPACE.to_string(a) for a in (incumbent, other, neighbour, second)}
    assert sum(e.calls for e in base.get_attr("evaluator")) == 4
    assert gate.metrics()["alternatives"] == 2.0


def test_gate_asks_the_env_about_repeats_without_a_record():
    gate = VecUncertaintyGate(DummyVecEnv([env_fn()]), FixedCritic(), threshold=0.5)
    gate.reset()
    arch = SPACE.from_choices([1] * 8)  # U = 1: evaluated
    gate.step(one_shot_actions([arch]))
    _, reward, _, info = gate.step(one_shot_actions([arch]))
    assert info[0]["cached"] and reward[0] == objective(arch)
    assert gate.metrics()["cached"] == 1.0 and gate.critic.seen == [objective(arch)]


def test_fnas_controller_on_a_vec_gate_keeps_the_batch_rule_and_one_record(tmp_path):
    from agents import make_fnas_controller, run_search

    base = DummyVecEnv([env_fn(False), env_fn(False)])
    critic = UncertaintyCritic(SPACE.embedding_dim, hidden=16, steps_per_sample=1, seed=0)
    record = VecSearchRecord(base, tmp_path / "r.jsonl")
    gate = VecUncertaintyGate(record, critic, warmup=8, max_relative_error=None)
    model = make_fnas_controller(gate, seed=0, architectures_per_update=8)
    run_search(model, budget=40)
    counters = model.fnas_counters
    assert counters.trusted > 0 and counters.replayed > 0
    # every batch: trusted episodes at most half of the new ones (the episode that spends
    # the budget stops training before the controller counts it)
    assert counters.trusted <= counters.activated + counters.cached + 1
    assert record.counters.activated >= 40 and record.counters.replayed == counters.replayed
    assert critic.num_samples == record.counters.activated - record.counters.failed
    kinds = {e.kind for e in read_record(tmp_path / "r.jsonl")}
    assert kinds >= {"activated", "trusted", "replayed"}
    assert math.isfinite(gate.metrics()["v_mae"])
