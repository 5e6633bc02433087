"""NASEnv through the registered ids: checkers, seeding, masks, tokens, failures."""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

import fnas_env  # noqa: F401  (registers the ids)
from fnas_env.env import NASEnv
from fnas_env.evaluators import Evaluation, Evaluator, MissingBenchmarkData
from fnas_env.reward import RewardConfig

#: (id, kwargs) of the benchmark-backed environments
ENVS = [
    ("FNAS-NB201-v0", {"dataset": "cifar10"}),
    ("FNAS-NB201-v0", {"dataset": "cifar100"}),
    ("FNAS-NB201-v0", {"dataset": "ImageNet16-120"}),
    ("FNAS-Macro-v0", {}),
    ("FNAS-ANB-v0", {"device": "zcu102"}),
    ("FNAS-ANB-v0", {"device": "a100", "constraint": "hard"}),
]
ENV_IDS = [f"{i}-{'-'.join(map(str, k.values())) or 'default'}" for i, k in ENVS]
FINAL_KEYS = {
    "arch", "accuracy", "latency", "reward", "activated", "trusted", "cached", "cost", "failed"
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def surrogate_cache(tmp_path_factory):
    """Fitted ANB surrogates go to this session's temp folder, never to ``~/.cache``."""
    old = os.environ.get("FNAS_CACHE_DIR")
    os.environ["FNAS_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "fnas-cache")
    yield
    if old is None:
        os.environ.pop("FNAS_CACHE_DIR", None)
    else:
        os.environ["FNAS_CACHE_DIR"] = old


def _make(env_id, kwargs, benchmark_dir, **extra):
    return gym.make(env_id, benchmark_dir=benchmark_dir, **kwargs, **extra)


def _episode(env, actions, seed=0):
    obs, info = env.reset(seed=seed)
    trace = [(obs.copy(), info)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        trace.append((obs.copy(), reward, terminated, truncated, info))
    return trace


# ---- checkers ---------------------------------------------------------------------------
@pytest.mark.parametrize("one_shot", [False, True], ids=["sequential", "one-shot"])
@pytest.mark.parametrize(("env_id", "kwargs"), ENVS, ids=ENV_IDS)
def test_checkers_pass_without_warnings(benchmark_dir, env_id, kwargs, one_shot):
    env = _make(env_id, kwargs, benchmark_dir, one_shot=one_shot)
    # the checker replays a seeded step and wants the same info; the record outlives
    # reset() by design, so a cached repeat reports cached=True, cost=0.0 (tested below)
    env.unwrapped.cache = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
    env.close()


# ---- episodes -----------------------------------------------------------------------------
@pytest.mark.parametrize(("env_id", "kwargs"), ENVS, ids=ENV_IDS)
def test_final_info_and_episode_length(benchmark_dir, env_id, kwargs):
    env = _make(env_id, kwargs, benchmark_dir)
    base: NASEnv = env.unwrapped
    env.action_space.seed(3)
    trace = _episode(env, [env.action_space.sample() for _ in range(base.horizon)])
    for step in trace[1:-1]:
        assert step[1:4] == (0.0, False, False) and step[4] == {}
    _, reward, terminated, truncated, info = trace[-1]
    assert terminated is True and truncated is False and isinstance(reward, float)
    assert FINAL_KEYS <= set(info)
    assert info["reward"] == reward and info["failed"] is False and info["activated"] is True
    assert 0 < info["accuracy"] <= 100
    arch = base.search_space.from_string(info["arch"])
    assert base.search_space.to_string(arch) == info["arch"]
    if env_id == "FNAS-NB201-v0":
        assert 0 < info["test_accuracy"] <= 100 and info["dataset"] == kwargs["dataset"]
        assert info["latency"] is None and reward == info["accuracy"]
    if env_id == "FNAS-ANB-v0":
        measure = info["latency"] if kwargs["device"] == "zcu102" else info["throughput"]
        assert measure > 0 and info["cost"] > 0 and info["device"] == kwargs["device"]
        assert reward == pytest.approx(
            fnas_env.reward.mnas_reward(info["accuracy"], measure, base.reward_config)
        )
    with pytest.raises(RuntimeError, match="call reset"):
        env.unwrapped.step(0)
    assert base.record.counters.activated == 1


@pytest.mark.parametrize(
    ("env_id", "kwargs"), [ENVS[0], ENVS[3], ENVS[4]], ids=ENV_IDS[:1] + ENV_IDS[3:5]
)
def test_equal_seeds_equal_episodes(benchmark_dir, env_id, kwargs):
    def run(seed):
        env = _make(env_id, kwargs, benchmark_dir)
        env.action_space.seed(seed)
        out = []
        for ep in range(3):
            actions = [env.action_space.sample() for _ in range(env.unwrapped.horizon)]
            out.append(_episode(env, actions, seed=seed + ep))
        return out

    a, b, c = run(11), run(11), run(12)
    assert _same(a, b)
    assert not _same(a, c)


def _same(x, y) -> bool:
    if isinstance(x, np.ndarray):
        return np.array_equal(x, y)
    if isinstance(x, list | tuple):
        return len(x) == len(y) and all(_same(i, j) for i, j in zip(x, y))
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    return x == y


@pytest.mark.parametrize(
    ("env_id", "kwargs"), [ENVS[0], ENVS[3], ENVS[4]], ids=ENV_IDS[:1] + ENV_IDS[3:5]
)
def test_action_masks_allow_exactly_the_valid_choices(benchmark_dir, env_id, kwargs):
    env = _make(env_id, kwargs, benchmark_dir)
    base: NASEnv = env.unwrapped
    rng = np.random.default_rng(0)
    for _ in range(20):
        env.reset()
        chosen = []
        for i, n in enumerate(base.num_choices):
            mask = base.action_masks()
            assert mask.shape == (base.action_space.n,) and mask.dtype == bool
            assert mask.sum() == n and mask[:n].all()
            action = int(rng.choice(np.flatnonzero(mask)))
            chosen.append(action)
            *_, terminated, _, info = env.step(action)
            assert terminated == (i == base.horizon - 1)
        arch = base.search_space.from_string(info["arch"])
        assert arch.choices == tuple(chosen)  # masked tokens are the choice indices
    one_shot = _make(env_id, kwargs, benchmark_dir, one_shot=True).unwrapped
    assert one_shot.action_masks().shape == (sum(base.num_choices),)
    assert one_shot.action_masks().all()


@pytest.mark.parametrize(
    ("env_id", "kwargs"), [ENVS[0], ENVS[3], ENVS[4]], ids=ENV_IDS[:1] + ENV_IDS[3:5]
)
def test_every_token_is_a_valid_choice_and_uniform(benchmark_dir, env_id, kwargs):
    env = _make(env_id, kwargs, benchmark_dir)
    base: NASEnv = env.unwrapped
    k = base.action_space.n
    assert all(k % n == 0 for n in base.num_choices)
    per_position = [Counter() for _ in base.num_choices]
    for token in range(k):
        info = _episode(env, [token] * base.horizon)[-1][4]
        arch = base.search_space.from_string(info["arch"])
        for i, (c, n) in enumerate(zip(arch.choices, base.num_choices)):
            assert c == token % n
            per_position[i][c] += 1
    for counts, n in zip(per_position, base.num_choices):
        assert counts == Counter({c: k // n for c in range(n)})  # uniform tokens -> uniform choices
    env.reset()
    for bad in (-1, k, 1.5, "a"):
        with pytest.raises((ValueError, TypeError)):
            env.unwrapped.step(bad)


@pytest.mark.parametrize("one_shot", [False, True], ids=["sequential", "one-shot"])
@pytest.mark.parametrize(
    ("env_id", "kwargs"), [ENVS[0], ENVS[3], ENVS[4]], ids=ENV_IDS[:1] + ENV_IDS[3:5]
)
def test_tokens_replay_the_architecture(benchmark_dir, env_id, kwargs, one_shot):
    env = _make(env_id, kwargs, benchmark_dir, one_shot=one_shot)
    base: NASEnv = env.unwrapped
    rng = np.random.default_rng(5)
    for _ in range(10):
        arch = base.search_space.sample(rng)
        tokens = base.tokens(arch)
        actions = [np.asarray(tokens)] if one_shot else list(tokens)
        info = _episode(env, actions)[-1][4]
        assert info["arch"] == base.search_space.to_string(arch)
        assert info["accuracy"] == base.evaluator.evaluate(arch).accuracy


def test_one_shot_rejects_bad_action(benchmark_dir):
    env = _make("FNAS-Macro-v0", {}, benchmark_dir, one_shot=True)
    env.reset()
    with pytest.raises(ValueError, match="one-shot action must be 8 ints"):
        env.unwrapped.step(np.array([0, 1, 3, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="one-shot action"):
        env.unwrapped.step(np.zeros(7, dtype=int))


# ---- failures and trusted rewards -----------------------------------------------------
class FlakyEvaluator(Evaluator):
    """Macro-space evaluator that raises, returns NaN, or works, by the first choice."""

    space_name = "macro"

    def _evaluate(self, arch):
        if arch.choices[0] == 0:
            raise RuntimeError("CUDA out of memory (simulated)")
        if arch.choices[0] == 1:
            return Evaluation(accuracy=math.nan, cost=3.0)
        return Evaluation(accuracy=60.0 + arch.choices[1], cost=2.0)


@pytest.mark.parametrize(
    ("first", "failed", "reward"),
    [(0, True, -1.0), (1, True, -1.0), (2, False, 62.0)],
    ids=["raises", "nan", "works"],
)
def test_failing_evaluator_gives_failed_reward(tmp_path, first, failed, reward):
    env = NASEnv(FlakyEvaluator(), failed_reward=-1.0, record_path=tmp_path / "r.jsonl")
    env.reset(seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for token in [first, 2, 0, 0, 0, 0, 0, 0]:
            obs, r, terminated, truncated, info = env.step(token)
    assert terminated and r == reward and info["failed"] is failed and info["reward"] == reward
    assert env.observation_space.contains(obs)
    assert env.record.counters.failed == int(failed) and env.record.counters.activated == 1
    if first == 0:
        assert any("CUDA out of memory" in str(w.message) for w in caught)
        assert "RuntimeError" in info["error"]
    if failed:
        assert info["accuracy"] == 0.0
    env.reset()  # the search goes on
    assert env.step(2)[1] == 0.0


def test_wrong_space_in_evaluate_is_a_bug_not_a_failure(benchmark_dir):
    env = _make("FNAS-Macro-v0", {}, benchmark_dir).unwrapped
    nb201 = fnas_env.get_space("nb201").from_choices([0] * 6)
    with pytest.raises(ValueError, match="space 'macro'"):
        env.evaluate(nb201)


def test_finish_records_a_trusted_entry(benchmark_dir, tmp_path):
    env = _make("FNAS-Macro-v0", {}, benchmark_dir, record_path=tmp_path / "r.jsonl")
    base: NASEnv = env.unwrapped
    env.reset(seed=1)
    for token in (1, 2, 0, 1, 2, 0, 1):
        assert base.pending_architecture(token) is None
        env.step(token)
    arch = base.pending_architecture(2)
    assert base.search_space.to_string(arch) == "12012012"
    predicted = Evaluation(accuracy=93.0, trusted=True, cost=0.0)
    obs, reward, terminated, truncated, info = base.finish(2, predicted, reward=42.0)
    assert (reward, terminated, truncated) == (42.0, True, False)
    assert info["trusted"] is True and info["activated"] is False
    assert info["arch"] == "12012012" and info["reward"] == 42.0
    c = base.record.counters
    assert (c.trusted, c.activated, c.sampled) == (1, 0, 1)
    entry = base.record.entries[-1]
    assert (entry.kind, entry.reward, entry.arch) == ("trusted", 42.0, "12012012")
    with pytest.raises(RuntimeError, match="call reset"):
        base.finish(2, predicted)
    env.reset()
    with pytest.raises(RuntimeError, match="only valid for the last token"):
        base.finish(0, predicted)


def test_score_for_non_sequential_baselines(benchmark_dir):
    base: NASEnv = _make("FNAS-Macro-v0", {}, benchmark_dir).unwrapped
    arch = base.search_space.from_string("22222222")
    reward, info = base.score(arch, base.evaluate(arch))
    assert reward == info["accuracy"] and base.record.counters.activated == 1


def test_target_needs_a_measure(benchmark_dir):
    from fnas_env.evaluators.tabular import MacroEvaluator

    with pytest.raises(ValueError, match="reports no latency/throughput"):
        NASEnv(MacroEvaluator(benchmark_dir), RewardConfig(target=5.0))
    with pytest.raises(TypeError, match="evaluator must be an Evaluator"):
        NASEnv("macro")
    with pytest.raises(ValueError, match="render_mode must be None or 'ansi'"):
        NASEnv(MacroEvaluator(benchmark_dir), render_mode="human")


# ---- vectorised, kwargs, missing data -------------------------------------------------------
def test_subproc_vec_env(benchmark_dir):
    vec = make_vec_env(
        "fnas_env:FNAS-NB201-v0",
        n_envs=2,
        seed=0,
        vec_env_cls=SubprocVecEnv,
        env_kwargs={"benchmark_dir": str(benchmark_dir), "dataset": "cifar100"},
    )
    try:
        vec.reset()
        horizon = 6
        for t in range(horizon):
            obs, rewards, dones, infos = vec.step(np.array([t % 5, (t + 1) % 5]))
        assert dones.all()
        archs = [i["arch"] for i in infos]
        assert archs == [
            "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|",
            "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|",
        ]
        assert all(
            i["dataset"] == "cifar100" and r == i["accuracy"] for i, r in zip(infos, rewards)
        )
    finally:
        vec.close()


@pytest.mark.parametrize(
    ("env_id", "kwargs", "message"),
    [
        (
            "FNAS-NB201-v0",
            {"dataset": "mnist"},
            r"one of \['cifar10', 'cifar100', 'ImageNet16-120'\]",
        ),
        ("FNAS-ANB-v0", {"device": "tpu"}, r"accepted devices: \['zcu102', 'vck190', 'a100'"),
        ("FNAS-ANB-v0", {"constraint": "medium"}, "constraint must be one of"),
        ("FNAS-ANB-v0", {"target": -1.0}, "target must be a positive"),
    ],
)
def test_bad_kwargs(benchmark_dir, env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, benchmark_dir=benchmark_dir, **kwargs)


@pytest.mark.parametrize(
    ("env_id", "file"),
    [
        ("FNAS-NB201-v0", "nas-bench-201/nb201_accuracies.csv"),
        ("FNAS-Macro-v0", "nas-bench-macro/nas-bench-macro_cifar10.json"),
        ("FNAS-ANB-v0", "accel-nasbench/anb_dataset_jsons.tar.gz"),
    ],
)
def test_missing_benchmark_dir(tmp_path, env_id, file):
    missing = Path(tmp_path) / "nowhere"
    with pytest.raises(MissingBenchmarkData, match=file) as info:
        gym.make(env_id, benchmark_dir=missing)
    assert str(missing) in str(info.value) and "https://github.com/" in str(info.value)


# ---- repeats are served from the record -------------------------------------------------------
class CountingEvaluator(Evaluator):
    """Macro-space evaluator counting its calls; the first call of an architecture whose
    first choice is 0 raises, of one whose first choice is 1 gives NaN."""

    space_name = "macro"

    def __init__(self):
        self.calls: Counter[tuple[int, ...]] = Counter()

    def _evaluate(self, arch):
        self.calls[arch.choices] += 1
        if arch.choices[0] == 0 and self.calls[arch.choices] == 1:
            raise RuntimeError("diverged (simulated)")
        if arch.choices[0] == 1 and self.calls[arch.choices] == 1:
            return Evaluation(accuracy=math.nan, cost=1.0)
        return Evaluation(
            accuracy=50.0 + sum(arch.choices),
            latency=1.0 + arch.choices[1],
            cost=5.0,
            extras={"test_accuracy": 40.0 + arch.choices[2]},
        )


def _one_shot(env, arch):
    env.reset(seed=0)
    return env.step(np.asarray(arch.choices))


def test_repeat_is_served_from_the_record(tmp_path):
    evaluator = CountingEvaluator()
    env = NASEnv(evaluator, one_shot=True, record_path=tmp_path / "r.jsonl")
    arch = env.search_space.from_string("21021021")
    assert not env.is_cached(arch)
    _, first, *_, info = _one_shot(env, arch)
    assert env.is_cached(arch) and info["cached"] is False and info["cost"] == 5.0
    for _ in range(2):
        _, again, terminated, _, info = _one_shot(env, arch)
        assert terminated and again == first == info["reward"]
        assert info["cached"] is True and info["cost"] == 0.0
        assert info["trusted"] is False and info["activated"] is False
        assert info["test_accuracy"] == 40.0 and info["latency"] == 2.0 and info["accuracy"] == 59.0
    reward, info = env.score(arch, env.evaluate(arch))  # the baselines' path
    assert reward == first and info["cached"] is True
    assert evaluator.calls[arch.choices] == 1
    c = env.record.counters
    assert (c.sampled, c.activated, c.cached, c.cost) == (4, 1, 3, 5.0)
    assert [e.kind for e in env.record.entries] == ["activated"] + ["cached"] * 3
    assert {e.reward for e in env.record.entries} == {first}


def test_sequential_repeat_is_cached_and_checker_step_is_otherwise_deterministic(benchmark_dir):
    env = _make("FNAS-NB201-v0", {"dataset": "cifar10"}, benchmark_dir)
    actions = [1, 2, 3, 4, 0, 1]
    *_, (obs_a, r_a, *_, info_a) = _episode(env, actions, seed=5)
    *_, (obs_b, r_b, *_, info_b) = _episode(env, actions, seed=5)
    assert np.array_equal(obs_a, obs_b) and r_a == r_b
    assert (info_a["cached"], info_b["cached"], info_b["cost"]) == (False, True, 0.0)
    assert (info_a["activated"], info_b["activated"]) == (True, False)
    same = {k for k in info_a if k not in ("cached", "activated", "cost", "evaluation")}
    assert all(info_a[k] == info_b[k] for k in same)
    assert env.unwrapped.record.counters.activated == 1


def test_resumed_env_serves_earlier_results_as_cached(tmp_path):
    path = tmp_path / "r.jsonl"
    first = NASEnv(CountingEvaluator(), one_shot=True, record_path=path)
    archs = [first.search_space.from_string(s) for s in ("22222222", "21012101", "01201201")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rewards = [_one_shot(first, a)[1] for a in archs]  # the last one fails (choice 0)
    evaluator = CountingEvaluator()
    resumed = NASEnv(evaluator, one_shot=True, record_path=path)
    assert [resumed.is_cached(a) for a in archs] == [True, True, False]
    for arch, reward in zip(archs[:2], rewards):
        _, again, *_, info = _one_shot(resumed, arch)
        assert again == reward and info["cached"] is True
        assert info["test_accuracy"] == 40.0 + arch.choices[2]
    assert sum(evaluator.calls.values()) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, _, *_, info = _one_shot(resumed, archs[2])  # a failed result is retried, not served
    assert info["cached"] is False and evaluator.calls[archs[2].choices] == 1
    c = resumed.record.counters
    assert (c.activated, c.cached, c.failed) == (4, 2, 2)


def test_cache_false_evaluates_repeats_again(tmp_path):
    evaluator = CountingEvaluator()
    env = NASEnv(evaluator, one_shot=True, cache=False)
    arch = env.search_space.from_string("22222222")
    infos = [_one_shot(env, arch)[-1] for _ in range(3)]
    assert evaluator.calls[arch.choices] == 3 and not env.is_cached(arch)
    assert [i["cached"] for i in infos] == [False] * 3 and infos[-1]["cost"] == 5.0
    assert (env.record.counters.activated, env.record.counters.cached) == (3, 0)
    path = tmp_path / "r.jsonl"
    NASEnv(CountingEvaluator(), one_shot=True, record_path=path).score(arch, Evaluation(60.0))
    assert not NASEnv(evaluator, cache=False, record_path=path).is_cached(arch)
    assert NASEnv(evaluator, record_path=path).is_cached(arch)


@pytest.mark.parametrize("first", [0, 1], ids=["raises", "nan"])
def test_failed_evaluations_are_evaluated_again(first):
    evaluator = CountingEvaluator()
    env = NASEnv(evaluator, one_shot=True, failed_reward=-1.0)
    arch = env.search_space.from_choices([first, 2, 2, 2, 2, 2, 2, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rewards = [_one_shot(env, arch)[1] for _ in range(3)]
    assert rewards == [-1.0, 64.0 + first, 64.0 + first]
    assert evaluator.calls[arch.choices] == 2
    assert [e.kind for e in env.record.entries] == ["activated", "activated", "cached"]
    c = env.record.counters
    assert (c.activated, c.failed, c.cached, c.sampled) == (2, 1, 1, 3)


def test_only_real_evaluations_are_served():
    evaluator = CountingEvaluator()
    env = NASEnv(evaluator, one_shot=True)
    arch = env.search_space.from_string("22222222")
    env.reset()
    env.finish(np.asarray(arch.choices), Evaluation(99.0, trusted=True), reward=99.0)
    env.score(arch, Evaluation(98.0), kind="replayed")
    assert not env.is_cached(arch)
    _, reward, *_, info = _one_shot(env, arch)
    assert info["cached"] is False and reward == 66.0 and evaluator.calls[arch.choices] == 1
    assert [e.kind for e in env.record.entries] == ["trusted", "replayed", "activated"]
