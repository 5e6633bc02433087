"""RayVecEnv: envs in Ray actors on a local Ray with 2 CPUs started by the tests."""

from __future__ import annotations

import os
import signal
import sys
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from fnas_env.env import NASEnv
from fnas_env.evaluators.base import Evaluation, Evaluator
from fnas_env.record import read_record
from fnas_env.spaces import get_space

ray = pytest.importorskip("ray", reason="Ray is the [ray] extra (installed with [dev])")

from fnas_env.ray_vec_env import RayVecEnv, _check_reachable, make_ray_vec_env  # noqa: E402
from wrappers.record import VecSearchRecord  # noqa: E402
from wrappers.uac import VecUncertaintyGate  # noqa: E402

SPACE = get_space("macro")


def objective(arch) -> float:
    return 60.0 + float(sum((i + 1) * c for i, c in enumerate(arch.choices)))


class Objective(Evaluator):
    """Known objective; ``crash_on``: layer-0 choice that kills the worker process."""

    space_name = "macro"

    def __init__(self, crash_on: int | None = None) -> None:
        self.crash_on = crash_on
        self.calls = 0

    def _evaluate(self, arch) -> Evaluation:
        self.calls += 1
        if self.crash_on is not None and arch.choices[0] == self.crash_on:
            os.kill(os.getpid(), signal.SIGKILL)
        return Evaluation(accuracy=objective(arch), cost=1.0)


def env_fn(one_shot: bool = True, crash_on: int | None = None):
    return lambda: Monitor(NASEnv(Objective(crash_on), one_shot=one_shot))


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """A local Ray with 2 CPUs; this module's classes travel by value to the workers."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def run(venv, actions_list):
    venv.seed(7)
    out = [venv.reset()]
    for actions in actions_list:
        obs, rewards, dones, infos = venv.step(actions)
        keep = [
            {k: info[k] for k in ("arch", "reward", "activated") if k in info} for info in infos
        ]
        terminal = [info.get("terminal_observation") for info in infos]
        out.append((obs, rewards, dones, keep, terminal))
    return out


@pytest.mark.parametrize(
    ("one_shot", "n_envs", "workers"), [(True, 2, None), (False, 2, None), (False, 4, 2)]
)
def test_same_results_as_dummy_vec_env(one_shot, n_envs, workers):
    """One env per worker, or more envs than workers: DummyVecEnv's results."""
    rng = np.random.default_rng(0)
    n = 3 * (1 if one_shot else SPACE.num_decisions)
    shape = (n_envs, SPACE.num_decisions) if one_shot else (n_envs,)
    actions_list = [rng.integers(0, 3, size=shape) for _ in range(n)]
    dummy = DummyVecEnv([env_fn(one_shot)] * n_envs)
    remote = RayVecEnv([env_fn(one_shot)] * n_envs, num_workers=workers)
    try:
        expected, got = run(dummy, actions_list), run(remote, actions_list)
        assert np.array_equal(expected[0], got[0])
        for (e_obs, e_r, e_d, e_i, e_t), (g_obs, g_r, g_d, g_i, g_t) in zip(expected[1:], got[1:]):
            assert np.array_equal(e_obs, g_obs) and np.array_equal(e_r, g_r)
            assert np.array_equal(e_d, g_d) and e_i == g_i
            assert all((a is None) == (b is None) for a, b in zip(e_t, g_t))
        assert remote.observation_space == dummy.observation_space
        assert remote.action_space == dummy.action_space
    finally:
        remote.close()


class Timed(gym.Wrapper):
    """Sleeps ``seconds`` at the last step of an episode; ``info`` says when it ran."""

    def __init__(self, env: gym.Env, seconds: float) -> None:
        super().__init__(env)
        self.seconds = seconds

    def step(self, action):
        start = time.time()
        time.sleep(self.seconds)
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "span": (start, time.time())}


def timed_fn(seconds: float):
    return lambda: Timed(NASEnv(Objective(), one_shot=True), seconds)


def test_more_envs_than_workers_list_schedules_a_step():
    """4 evaluations on 2 workers: never more than 2 at once, and the worker whose
    evaluation ends first takes the next two while the long one runs (list scheduling),
    so the step lasts as long as the long one, not two rounds of lockstep."""
    venv = RayVecEnv([timed_fn(s) for s in (1.5, 0.3, 0.3, 0.3)], num_workers=2, num_cpus=1)
    try:
        assert venv.num_workers == 2 and venv.num_envs == 4
        venv.reset()
        actions = np.zeros((4, SPACE.num_decisions), dtype=np.int64)
        start = time.time()
        _, rewards, dones, infos = venv.step(actions)
        elapsed = time.time() - start
        assert dones.all() and list(rewards) == [objective(SPACE.from_choices([0] * 8))] * 4
        spans = [info["span"] for info in infos]
        for t in (s for s, _ in spans):  # at most 2 evaluations at any start time
            assert sum(s <= t < e for s, e in spans) <= 2
        assert spans[2][0] >= spans[1][1] and spans[3][0] >= spans[2][1]
        assert spans[3][1] <= spans[0][1] + 0.25  # the short ones fit beside the long one
        assert elapsed < 1.75  # lockstep pairs would take 1.5 + 0.3 s
    finally:
        venv.close()


def test_num_workers_must_fit_the_envs():
    with pytest.raises(ValueError, match="num_workers must be between 1 and the 2 envs"):
        RayVecEnv([env_fn(), env_fn()], num_workers=3)
    with pytest.raises(ValueError, match="num_workers"):
        RayVecEnv([env_fn()], num_workers=0)
    with pytest.raises(TypeError, match="num_workers must be an int"):
        RayVecEnv([env_fn()], num_workers=1.5)


def test_vec_env_api_and_an_sb3_algorithm():
    from stable_baselines3 import PPO

    venv = RayVecEnv([env_fn(False), env_fn(False)], num_cpus=0.5)
    try:
        assert venv.num_envs == 2 and venv.env_is_wrapped(Monitor) == [True, True]
        assert venv.get_attr("horizon") == [SPACE.num_decisions] * 2
        venv.set_attr("failed_reward", -1.0, indices=[1])
        assert venv.get_attr("failed_reward") == [0.0, -1.0]
        assert venv.env_method("is_cached", SPACE.from_choices([0] * 8)) == [False, False]
        assert len(set(venv.worker_pids())) == 2 and os.getpid() not in venv.worker_pids()
        model = PPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0)
        model.learn(64)
        assert model.num_timesteps == 64
        assert sum(c.activated for c in venv.get_attr("counters")) >= 64 // 8 - 2
    finally:
        venv.close()


def test_shared_critic_and_one_record_see_every_worker(tmp_path):
    from wrappers.critic import UncertaintyCritic

    critic = UncertaintyCritic(SPACE.embedding_dim, hidden=16, steps_per_sample=1, seed=0)
    base = RayVecEnv([env_fn(), env_fn()])
    record = VecSearchRecord(base, tmp_path / "r.jsonl")
    gate = VecUncertaintyGate(record, critic, warmup=6, max_relative_error=None)
    try:
        gate.reset()
        rng = np.random.default_rng(0)
        for _ in range(12):
            gate.step(np.stack([SPACE.sample(rng).choices for _ in range(2)]))
        counters = record.counters
        assert counters.sampled == 24 and counters.trusted > 0
        assert critic.num_samples == counters.activated  # both workers' evaluations
        worker_calls = [e.calls for e in base.get_attr("evaluator")]
        assert sum(worker_calls) == counters.activated and min(worker_calls) > 0
        assert len(list(read_record(tmp_path / "r.jsonl"))) == 24
    finally:
        base.close()


def test_a_killed_worker_is_restarted_and_its_episode_replayed(tmp_path):
    """SIGKILL a worker mid-episode: the next step runs on a new actor that replayed the
    episode's earlier tokens, so the architecture completed is the one the actions say."""
    base = RayVecEnv([env_fn(False), env_fn(False)])
    record = VecSearchRecord(base, tmp_path / "r.jsonl")
    try:
        record.reset()
        tokens = [[1, 2], [2, 0], [0, 1], [1, 1], [2, 2], [0, 0], [1, 2]]
        for step in tokens[:3]:
            record.step(np.asarray(step))
        os.kill(base.worker_pids()[0], signal.SIGKILL)
        time.sleep(0.5)
        with pytest.warns(RuntimeWarning, match="restarting"):
            for step in tokens[3:]:
                record.step(np.asarray(step))
            _, _, dones, infos = record.step(np.asarray([1, 0]))
        assert dones.all() and base.worker_restarts == 1
        expected = [
            SPACE.from_choices([*(t[i] for t in tokens), last]) for i, last in ((0, 1), (1, 0))
        ]
        assert [info["arch"] for info in infos] == [SPACE.to_string(a) for a in expected]
        assert record.counters.activated == 2 and record.counters.failed == 0
    finally:
        base.close()


@pytest.mark.parametrize("workers", [None, 1])
def test_an_evaluation_that_keeps_killing_its_worker_fails_with_a_defined_reward(tmp_path, workers):
    """Also when the envs share one worker: the retries run in the dead env's turn."""
    base = RayVecEnv(
        [env_fn(crash_on=2), env_fn(crash_on=2)],
        num_workers=workers,
        max_retries=1,
        failed_reward=-5,
    )
    record = VecSearchRecord(base, tmp_path / "r.jsonl")
    try:
        record.reset()
        crash, fine = SPACE.from_choices([2] + [0] * 7), SPACE.from_choices([1] * 8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            _, rewards, dones, infos = record.step(np.stack([crash.choices, fine.choices]))
        assert dones.all() and rewards[0] == -5.0 and rewards[1] == objective(fine)
        assert infos[0]["failed"] and "died" in infos[0]["error"]
        assert base.worker_restarts == 2  # the retry and the fresh worker for what follows
        _, rewards, _, _ = record.step(np.stack([fine.choices, fine.choices]))
        assert list(rewards) == [objective(fine)] * 2  # the search goes on
        entries = list(read_record(tmp_path / "r.jsonl"))
        assert [e.failed for e in entries] == [True, False, False, False]
        assert entries[0].arch == SPACE.to_string(crash)
    finally:
        base.close()


def test_an_evaluation_aside_survives_a_dying_worker(tmp_path):
    """The UAC gate's evaluations outside the episodes (``VecSearchRecord.evaluate_aside``)
    go through ``env_method``: a worker killed there is restarted and the call retried; an
    architecture that keeps killing it is recorded as failed with the defined reward."""
    base = RayVecEnv([env_fn(crash_on=2)], max_retries=1, failed_reward=-5)
    record = VecSearchRecord(base, tmp_path / "r.jsonl")
    try:
        record.reset()
        fine, crash = SPACE.from_choices([1] * 8), SPACE.from_choices([2] + [0] * 7)
        os.kill(base.worker_pids()[0], signal.SIGKILL)
        time.sleep(0.5)
        with pytest.warns(RuntimeWarning, match="restarting it and retrying"):
            reward, info = record.evaluate_aside(0, fine)
        assert reward == objective(fine) and info["activated"] and base.worker_restarts == 1
        with pytest.warns(RuntimeWarning, match="died 2 times"):
            reward, info = record.evaluate_aside(0, crash)
        assert reward == -5.0 and info["failed"]  # recorded as a failed evaluation
        _, rewards, _, _ = record.step(np.asarray([fine.choices]))  # the search goes on
        assert rewards[0] == objective(fine) and record.counters.cached == 1
        entries = list(read_record(tmp_path / "r.jsonl"))
        assert [(e.kind, e.failed) for e in entries] == [
            ("activated", False),
            ("activated", True),
            ("cached", False),
        ]
    finally:
        base.close()


def test_unreachable_cluster_address_errors_fast():
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="ray start --head"):
        _check_reachable("127.0.0.1:9", timeout=2.0)
    assert time.perf_counter() - start < 10
    with pytest.raises(ValueError, match="host:port"):
        _check_reachable("nowhere", timeout=1.0)
    with pytest.raises(ValueError, match="n_envs"):
        make_ray_vec_env("FNAS-Macro-v0", n_envs=0)


def test_two_ray_workers_share_one_knowledge_pool(tmp_path):
    """Real proxy training on two Ray workers, one pool folder: every stored block is
    loadable and indexed once, and each worker's candidates find the other's blocks."""
    from fnas_env.knowledge_pool import KnowledgePool

    pool_dir = tmp_path / "pool"
    kwargs = dict(
        pool=str(pool_dir),
        epochs=1,
        max_train=256,
        max_val=128,
        cost_model="macs",
        one_shot=True,
    )
    venv = make_ray_vec_env("FNAS-MNAS-v0", n_envs=2, env_kwargs=kwargs)
    record = VecSearchRecord(venv)
    try:
        record.reset()
        space = get_space("mnas")
        rng = np.random.default_rng(0)
        for _ in range(3):
            archs = [space.sample(rng) for _ in range(2)]
            _, _, _, infos = record.step(np.stack([a.choices for a in archs]))
            assert not any(info["failed"] for info in infos)
        pool = KnowledgePool(pool_dir)
        stored = {e.arch for e in record.record.entries if e.extras.get("pool_stored")}
        assert len(stored) == 6
        assert {e.arch for e in pool.entries() if e.position == 0} <= stored
        files = {p.name for p in (pool_dir / "tensors").iterdir()}
        assert files == {os.path.basename(e.file) for e in pool.entries()}
        for entry in pool.entries():
            assert pool.load_tensors(entry)  # every indexed block loads
        later = [e.extras["pool_hit_ratio"] for e in record.record.entries[2:]]
        assert min(later) > 0.0  # the second step's candidates found stored blocks
    finally:
        venv.close()


DRIVER = """
import sys, numpy as np
from fnas_env.ray_vec_env import make_ray_vec_env
from wrappers.record import VecSearchRecord
venv = make_ray_vec_env("FNAS-Macro-v0", n_envs=2, env_kwargs={"one_shot": True,
    "benchmark_dir": sys.argv[2]}, ray_init_kwargs={"num_cpus": 2})
record = VecSearchRecord(venv, sys.argv[1])
record.reset()
rng = np.random.default_rng(0)
while True:
    record.step(rng.integers(0, 3, size=(2, 8)))
"""


def test_killed_driver_loses_no_completed_evaluation_and_resumes(tmp_path, benchmark_dir):
    """SIGKILL the process that runs a Ray search: every line of its record is whole,
    and a search reopened on the record resumes its counters and serves its results."""
    import subprocess

    path = tmp_path / "record.jsonl"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(path), str(benchmark_dir)],
        env=dict(os.environ, PYTHONPATH=root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and (not path.exists() or len(path.read_bytes()) < 4000):
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    entries = list(read_record(path))
    assert len(entries) >= 10 and len(path.read_text().splitlines()) - len(entries) <= 1
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([lambda: NASEnv(Objective(), one_shot=True)])
    resumed = VecSearchRecord(env, path)
    evaluated = [e for e in entries if e.kind == "activated"]
    assert resumed.counters.activated == len(evaluated)
    assert all(resumed.is_cached(e.architecture) for e in evaluated)


@pytest.mark.parametrize(("method", "envs"), [("mnas", None), ("fnas", None), ("mnas", 4)])
def test_parallel_benchmark_searches_stop_at_equal_ppo_samples(method, envs, benchmark_dir):
    """benchmarks/parallel.py: every method trains on the same number of PPO samples,
    with one env per worker or more envs sharing the workers."""
    from benchmarks.parallel import StopAfterUpdates, build_search

    search = build_search(
        "FNAS-Macro-v0",
        {"benchmark_dir": str(benchmark_dir)},
        method,
        workers=2,
        seed=0,
        architectures_per_update=8,
        gate_kwargs={"warmup": 4, "max_relative_error": None},
        envs=envs,
    )
    assert search.venv.num_envs == (envs or 2) and search.venv.num_workers == 2
    try:
        search.model.learn(10**9, callback=StopAfterUpdates(3))
    finally:
        search.close()
    counters = search.model.fnas_counters
    assert search.model._n_updates == 3 * search.model.n_epochs
    assert counters.ppo_samples == 3 * 8
    assert (counters.trusted > 0) == (method == "fnas")
    assert search.record.counters.activated == counters.activated


def _python(code: str, **env: str):
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, "PYTHONPATH": root, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_cluster_address_that_does_not_answer_fails_fast_with_the_commands():
    code = (
        "from fnas_env.ray_vec_env import make_ray_vec_env\n"
        "make_ray_vec_env('FNAS-Macro-v0', n_envs=1, address='127.0.0.1:9', connect_timeout=2)\n"
    )
    start = time.perf_counter()
    proc = _python(code)
    assert proc.returncode != 0 and time.perf_counter() - start < 60
    assert "ConnectionError" in proc.stderr and "ray start --head" in proc.stderr
    proc = _python(code.replace(", address='127.0.0.1:9'", ""), RAY_ADDRESS="127.0.0.1:9")
    assert "ConnectionError" in proc.stderr and "RAY_ADDRESS" in proc.stderr


def test_without_ray_the_error_says_how_to_install_it():
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import fnas_env, wrappers, agents  # everything else imports without Ray\n"
        "from fnas_env.ray_vec_env import RayVecEnv\n"
        "RayVecEnv([lambda: None])\n"
    )
    proc = _python(code)
    assert proc.returncode != 0 and 'pip install -e ".[ray]"' in proc.stderr
