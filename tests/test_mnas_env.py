"""ProxyEvaluator end to end and FNAS-MNAS-v0 (env checkers, records) on a tiny setting."""

from __future__ import annotations

import gc
import json
import math
import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import fnas_env  # noqa: F401  (registers the ids)
from fnas_env.evaluators.proxy import TEMPORARY_POOL, ProxyEvaluator, base_architecture
from fnas_env.knowledge_pool import KnowledgePool
from fnas_env.latency import LatencyModel
from fnas_env.spaces import get_space
from fnas_env.training import TrainConfig, load_dataset

#: tiny proxy: 64 training images, 2 steps of 32, MACs as the cost (deterministic)
TINY_ENV = dict(cost_model="macs", epochs=1, batch_size=32, max_train=64, max_val=32, width=0.25)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=32, num_threads=1)


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """The per-machine latency table goes to a test folder, not the user's cache."""
    monkeypatch.setenv("FNAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "fnas-cache"))


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
    assert 0.0 <= a.accuracy <= 100.0 and not a.trusted and not a.failed
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
    env = gym.make("FNAS-MNAS-v0", one_shot=True, **TINY_ENV, target=1.0, pool=None).unwrapped
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
        # the checker replays a seeded step and compares: a repeat would be served as
        # cached, and a pool would initialise the replay from the first run
        env = gym.make("FNAS-MNAS-v0", one_shot=one_shot, cache=False, pool=None, **TINY_ENV)
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
    assert 0.0 <= info["accuracy"] <= 100.0 and info["activated"] is True
    assert info["latency"] > 0 and info["cost"] > 0 and math.isfinite(reward)
    # soft constraint: reward = ACC x (LAT/T)^-0.07 with T = the base architecture's MACs
    target = base.evaluator.cost_of(base_architecture())
    assert base.reward_config.target == pytest.approx(target)
    assert reward == pytest.approx(info["accuracy"] * (info["latency"] / target) ** -0.07)
    lines = record.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["arch"] == info["arch"]
    assert base.record.counters.activated == 1
    # AKP is on by default: the first architecture met an empty pool
    assert info["pool_hit_ratio"] == 0.0 and info["pool_exact_ratio"] == 0.0
    env.close()


def _step_one(env, arch) -> dict:
    env.reset(seed=0)
    *_, info = env.step(np.asarray(arch.choices))
    return info


def test_default_pool_is_temporary_and_deleted_on_close_or_collection():
    env = gym.make("FNAS-MNAS-v0", one_shot=True, **TINY_ENV)
    pool = env.unwrapped.evaluator.pool
    assert isinstance(pool, KnowledgePool) and pool.path.is_dir()
    first, second = archs(2, seed=11)
    info = _step_one(env, first)
    assert info["pool_hit_ratio"] == 0.0 and info["pool_exact_ratio"] == 0.0
    assert info["pool_stored"] is True and len(pool) > 0
    info = _step_one(env, second)
    assert info["pool_hit_ratio"] == 1.0 and 0.0 <= info["pool_exact_ratio"] <= 1.0
    folder = pool.path
    env.close()
    assert not folder.exists()
    env.close()  # closing twice is harmless

    other = gym.make("FNAS-MNAS-v0", **TINY_ENV)
    folder = other.unwrapped.evaluator.pool.path
    assert folder.is_dir() and folder != pool.path
    del other
    gc.collect()
    assert not folder.exists()


def test_pool_none_trains_from_scratch_and_a_folder_pool_is_kept(tmp_path):
    arch = archs(1, seed=12)[0]
    scratch = gym.make("FNAS-MNAS-v0", one_shot=True, pool=None, **TINY_ENV)
    assert scratch.unwrapped.evaluator.pool is None
    info = _step_one(scratch, arch)
    assert "pool_hit_ratio" not in info and "pool_exact_ratio" not in info
    scratch.close()

    folder = tmp_path / "akp"
    kept = gym.make("FNAS-MNAS-v0", one_shot=True, pool=folder, **TINY_ENV)
    assert _step_one(kept, arch)["pool_hit_ratio"] == 0.0
    kept.close()
    assert len(KnowledgePool(folder)) > 0  # a pool given by path outlives the env
    assert TEMPORARY_POOL == "temporary"


def test_device_auto_resolves_to_cpu_without_cuda(monkeypatch):
    env = gym.make("FNAS-MNAS-v0", pool=None, **TINY_ENV)  # device="auto" by default
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert env.unwrapped.evaluator.device.type == expected
    env.close()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    env = gym.make("FNAS-MNAS-v0", pool=None, device="auto", **TINY_ENV)
    evaluator = env.unwrapped.evaluator
    assert evaluator.device == torch.device("cpu") and evaluator.trainer.amp is False
    assert "device='cpu'" in repr(evaluator)
    env.close()


def test_bad_device_is_a_clear_error(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda', 'cuda:N'.*got 'tpu'"):
        gym.make("FNAS-MNAS-v0", device="tpu", **TINY_ENV)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='cuda' needs CUDA"):
        gym.make("FNAS-MNAS-v0", device="cuda", pool=tmp_path / "akp", **TINY_ENV)
    assert not (tmp_path / "akp").exists()  # failed before anything was made


def test_same_latency_cache_gives_the_same_target_and_latencies(tmp_path):
    """A resumed search (same latency_cache) reuses T and every latency, measuring nothing."""
    kwargs = {**TINY_ENV, "cost_model": "lut", "pool": None, "one_shot": True}
    cache = tmp_path / "run" / "latency.json"
    first = gym.make(
        "FNAS-MNAS-v0", latency_cache=cache, latency_table=tmp_path / "a.json", **kwargs
    )
    target = first.unwrapped.reward_config.target
    latencies = [_step_one(first, a)["latency"] for a in archs(2, seed=13)]
    assert target > 0 and all(v > 0 for v in latencies)
    model = first.unwrapped.evaluator.latency_model
    assert model.unit == "ms" and model.table.calibrations > 0 and model.table.measurements > 0
    first.close()
    saved = json.loads(cache.read_text())
    assert len(saved["predicted"]) == 3  # T (the base architecture's entry) and both latencies
    assert target in saved["predicted"].values()

    # another table file (empty): anything not read back from the cache would be re-timed
    second = gym.make(
        "FNAS-MNAS-v0", latency_cache=cache, latency_table=tmp_path / "b.json", **kwargs
    )
    assert second.unwrapped.reward_config.target == target
    assert [_step_one(second, a)["latency"] for a in archs(2, seed=13)] == latencies
    model = second.unwrapped.evaluator.latency_model
    assert model.measurements == 0
    assert model.table.measurements == 0 and model.table.calibrations == 0
    assert not (tmp_path / "b.json").exists()
    second.close()


def test_lut_default_gives_the_same_target_in_every_env_on_a_machine(tmp_path):
    kwargs = {**TINY_ENV, "pool": None}
    del kwargs["cost_model"]  # the default: "lut", the table in $FNAS_CACHE_DIR
    first = gym.make("FNAS-MNAS-v0", **kwargs)
    model = first.unwrapped.evaluator.latency_model
    assert model.cost_model == "lut"
    assert model.table.cache.path == Path(os.environ["FNAS_CACHE_DIR"]) / "latency_lut.json"
    second = gym.make("FNAS-MNAS-v0", **kwargs)  # a new search (no latency_cache)
    assert second.unwrapped.reward_config.target == first.unwrapped.reward_config.target
    assert second.unwrapped.evaluator.latency_model.table.measurements == 0


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
    assert "2 activated (0 failed)" in out
    best = out.split("best architecture: ")[1].splitlines()[0]
    get_space("mnas").from_string(best)  # a valid architecture string
    assert "reward" in out and f"knowledge pool: {run_dir / 'pool'}" in out
    entries = list(read_record(run_dir / "record.jsonl"))
    assert sum(e.kind == "activated" for e in entries) == 2
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
    trained = sum(e.kind == "activated" for e in read_record(second / "record.jsonl"))
    assert critic.num_samples == trained == 2  # the source's samples were forgotten
    assert critic.num_updates > source.num_updates  # its weights went on training
