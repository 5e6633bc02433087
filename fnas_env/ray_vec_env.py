"""Parallel evaluation on Ray: a VecEnv whose environments live in Ray actors.

Each env runs in its own Ray actor, on this machine's cores or on a cluster. There
can be more envs than workers (``num_workers``): a step's evaluations then queue in
the driver and each starts on the next worker to finish (list scheduling), so a
step of ``N`` evaluations on ``W`` workers lasts about ``N / W`` evaluations, not as
long as the slowest of ``W`` lockstep ones. The controller, the UAC critic
(:class:`wrappers.uac.VecUncertaintyGate`) and the search record
(:class:`wrappers.record.VecSearchRecord`) stay in the driver process; only
architectures and results travel. Ray is an optional extra: ``pip install -e ".[ray]"``.

A cluster: ``ray start --head`` on one machine, ``ray start --address=<head>:6379``
on the others, then pass ``address="<head>:6379"`` (or set ``RAY_ADDRESS``). Every
node needs this project installed and the data the envs read (benchmark files,
datasets, a knowledge-pool folder on a shared filesystem).
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

__all__ = ["RayVecEnv", "make_ray_vec_env", "RAY_INSTALL_HINT"]

RAY_INSTALL_HINT = 'Ray is an optional extra: pip install -e ".[ray]" (or pip install "ray>=2.9")'


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(f"RayVecEnv needs Ray. {RAY_INSTALL_HINT}") from exc
    return ray


class _EnvWorker:
    """One env in a Ray actor; steps with SB3's auto-reset convention (DummyVecEnv's)."""

    def __init__(self, env_fn: Callable[[], gym.Env]) -> None:
        self.env = env_fn()

    def spaces(self) -> tuple[gym.Space, gym.Space, dict, str | None]:
        env = self.env
        return env.observation_space, env.action_space, env.metadata, env.render_mode

    def reset(self, seed: int | None = None, options: dict | None = None):
        return self.env.reset(seed=seed, **({"options": options} if options else {}))

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = bool(terminated or truncated)
        info["TimeLimit.truncated"] = bool(truncated and not terminated)
        reset_info: dict = {}
        if done:
            info["terminal_observation"] = obs
            obs, reset_info = self.env.reset()
        return obs, float(reward), done, info, reset_info

    def restore(
        self,
        seed: int | None,
        options: dict | None,
        actions: list[Any],
        calls: list[tuple[str, tuple, dict]],
    ) -> None:
        """Bring a fresh env to where a dead worker's env was: reset, replay the episode's
        actions, repeat the env_method calls made since its last step."""
        self.reset(seed, options)
        for action in actions:
            self.env.step(action)
        for name, args, kwargs in calls:
            self.env_method(name, args, kwargs)

    def get_attr(self, name: str) -> Any:
        return self.env.get_wrapper_attr(name)

    def has_attr(self, name: str) -> bool:
        try:
            self.env.get_wrapper_attr(name)
        except AttributeError:
            return False
        return True

    def set_attr(self, name: str, value: Any) -> None:
        setattr(self.env, name, value)

    def env_method(self, name: str, args: tuple, kwargs: dict) -> Any:
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def env_is_wrapped(self, wrapper_class: type) -> bool:
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def render(self) -> Any:
        return self.env.render()

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        self.env.close()


#: NAS env methods that leave an env's episode as it is: not repeated on a restarted worker
STATELESS_METHODS = frozenset({"evaluate", "reward_of", "is_cached", "tokens", "action_masks"})


class RayVecEnv(VecEnv):
    """SB3 VecEnv whose envs live in Ray actors: evaluations run in parallel.

    ``step_async`` starts the evaluations (the steps that end an episode) of the first
    ``num_workers`` envs; ``step_wait`` starts each next one as soon as a running one
    returns (list scheduling: a worker that finishes early takes the next
    evaluation) and returns when every env has stepped, with the results in env
    order (auto-reset as in ``DummyVecEnv``: ``terminal_observation`` and
    ``TimeLimit.truncated`` in ``info``). Each env keeps its own actor, so its state
    and results are the same whatever the number of workers. Steps that evaluate
    nothing (the tokens before an episode's last), ``reset``, ``get_attr``,
    ``set_attr``, ``env_method`` and ``env_is_wrapped`` reach every env's actor at
    once: they do not queue.

    A PPO batch of ``N`` architectures on ``W`` workers: ``N`` envs (one architecture
    each per update) and ``num_workers=W``; the search is the same at every ``W``.

    A worker that dies (its process crashed or was killed, its node left) is
    replaced by a new actor, brought back to the episode's position (reset, the
    episode's earlier actions replayed, the ``env_method`` calls made since its last
    step repeated) and the step is retried, at most ``max_retries`` times, with a
    ``RuntimeWarning`` each time. If the last action of an episode (the one that
    evaluates an architecture) still fails, the episode ends with
    ``failed_reward`` and ``info["failed"] = True``, ``info["error"]``; a failure at
    any other step raises ``RuntimeError`` (the cluster, not the architecture, is
    broken). Nothing the driver holds (record, critic) is lost either way.

    Args:
        env_fns: one picklable factory per env (cloudpickle: lambdas work).
        num_workers: how many evaluations run at once (default None: one worker per
            env, every env's step at once); at most ``len(env_fns)``.
        num_cpus: CPUs of one worker (default 1; fractions allowed). Each env's
            actor reserves its share, ``num_cpus * num_workers / num_envs``.
        num_gpus: GPUs of one worker (default 0; fractions such as 0.25 share one
            GPU), shared out as ``num_cpus``; Ray sets each actor's
            ``CUDA_VISIBLE_DEVICES``, so an env with ``device="auto"`` trains on the
            GPU it was given. Ray places actors, not steps: with more envs than
            workers, two envs that share a GPU can train at once while another GPU
            waits, so GPU workers do best with one env each (or one GPU per env).
        address: Ray cluster to join (``"host:port"``, ``"auto"`` or ``"ray://..."``);
            default None: ``$RAY_ADDRESS`` if set, else a local Ray on this machine's
            cores (started here unless Ray is already initialised).
        max_retries: times a step is retried on a new actor after its worker died
            (default 2).
        failed_reward: reward of an evaluation that failed every retry (default 0.0,
            the NAS envs' ``failed_reward``).
        connect_timeout: seconds to wait for a cluster at ``address`` to answer before
            raising ``ConnectionError`` (default 10).
        ray_init_kwargs: extra ``ray.init`` arguments (e.g. ``num_cpus`` of a local
            Ray, ``runtime_env``).

    Example:
        >>> venv = make_ray_vec_env("FNAS-MNAS-v0", n_envs=2, env_kwargs={"pool": "runs/pool"})
        >>> model = make_fnas_controller(VecUncertaintyGate(VecSearchRecord(venv, "r.jsonl")))
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        num_workers: int | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        address: str | None = None,
        max_retries: int = 2,
        failed_reward: float = 0.0,
        connect_timeout: float = 10.0,
        ray_init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        ray = _ray()
        if not env_fns:
            raise ValueError("RayVecEnv needs at least one env factory")
        if num_cpus < 0 or num_gpus < 0:
            raise ValueError(f"num_cpus and num_gpus must be >= 0, got {num_cpus}, {num_gpus}")
        if int(max_retries) < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        n_envs = len(env_fns)
        workers = n_envs if num_workers is None else num_workers
        if isinstance(workers, bool) or not isinstance(workers, int | np.integer):
            raise TypeError(f"num_workers must be an int or None, got {num_workers!r}")
        if not 1 <= workers <= n_envs:
            raise ValueError(
                f"num_workers must be between 1 and the {n_envs} envs, got {num_workers}"
            )
        #: how many evaluations run at once
        self.num_workers = int(workers)
        self._owns_ray = _init_ray(address, connect_timeout, ray_init_kwargs or {})
        share = self.num_workers / n_envs
        self._remote = ray.remote(num_cpus=num_cpus * share, num_gpus=num_gpus * share)(_EnvWorker)
        self._env_fns = list(env_fns)
        self.max_retries = int(max_retries)
        self.failed_reward = float(failed_reward)
        #: actors started to replace dead workers
        self.worker_restarts = 0
        self._actors = [self._remote.remote(fn) for fn in self._env_fns]
        try:  # every env built before the first step: a search's clock starts here
            spaces = ray.get([actor.spaces.remote() for actor in self._actors])
        except ray.exceptions.RayError as exc:
            self.close()
            raise RuntimeError(f"a Ray env worker could not build its env: {exc}") from exc
        obs_space, action_space, metadata, render_mode = spaces[0]
        super().__init__(n_envs, obs_space, action_space)
        self.metadata = metadata
        self.render_mode = render_mode
        horizons = self._optional_attr("horizon")
        self._horizon = int(horizons) if isinstance(horizons, int | np.integer) else None
        self._one_shot = bool(self._optional_attr("one_shot"))
        self._episode_actions: list[list[Any]] = [[] for _ in range(self.num_envs)]
        self._episode_seed: list[int | None] = [None] * self.num_envs
        self._episode_options: list[dict | None] = [None] * self.num_envs
        self._calls: list[list[tuple[str, tuple, dict]]] = [[] for _ in range(self.num_envs)]
        self._actions: np.ndarray | None = None
        self._running: dict[Any, int] = {}  # future of a started step -> its env
        self._queued: list[int] = []  # envs whose evaluation waits for a free worker

    # ---- VecEnv API ----------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        ray = _ray()
        futures = [
            actor.reset.remote(self._seeds[i], self._options[i])
            for i, actor in enumerate(self._actors)
        ]
        results = ray.get(futures)
        for i in range(self.num_envs):
            self._episode_actions[i] = []
            self._episode_seed[i] = self._seeds[i]
            self._episode_options[i] = self._options[i] or None
            self._calls[i] = []
        self.reset_infos = [info for _, info in results]
        self._reset_seeds()
        self._reset_options()
        return _stack([obs for obs, _ in results])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self._running = {}
        self._queued = []
        for i in range(self.num_envs):
            if self._final_step(i):
                self._queued.append(i)
            else:  # a token before the last: nothing to evaluate, no queue
                self._start(i)
        for _ in range(min(self.num_workers, len(self._queued))):
            self._start(self._queued.pop(0))

    def step_wait(self) -> VecEnvStepReturn:
        ray = _ray()
        assert self._actions is not None, "step_async() was not called"
        results: dict[int, tuple] = {}
        while self._running:
            ready = list(self._running)  # nothing left to start: wait for them all
            if self._queued:
                ready, _ = ray.wait(ready, num_returns=1)
            try:
                values = ray.get(ready)
            except ray.exceptions.RayActorError:
                values = [self._get_or_recover(self._running[f], f) for f in ready]
            for future, value in zip(ready, values):
                i = self._running.pop(future)
                results[i] = value
                if self._queued and self._final_step(i):  # its worker takes the next
                    self._start(self._queued.pop(0))
        observations, rewards, dones, infos = [], [], [], []
        for i in range(self.num_envs):
            obs, reward, done, info, reset_info = results[i]
            observations.append(obs)
            rewards.append(reward)
            dones.append(done)
            infos.append(info)
            self._calls[i] = []
            if done:
                self._episode_actions[i] = []
                self._episode_seed[i] = None
                self._episode_options[i] = None
                self.reset_infos[i] = reset_info
            else:
                self._episode_actions[i].append(self._actions[i])
        return (
            _stack(observations),
            np.asarray(rewards, dtype=np.float32),
            np.asarray(dones, dtype=bool),
            infos,
        )

    def close(self) -> None:
        ray = _ray()
        for actor in getattr(self, "_actors", []):
            try:
                ray.get(actor.close.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - a dead worker has nothing left to close
                pass
            ray.kill(actor)
        self._actors = []
        if getattr(self, "_owns_ray", False) and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._call_each(indices, lambda a: a.get_attr.remote(attr_name))

    def has_attr(self, attr_name: str) -> bool:
        return bool(_ray().get(self._actors[0].has_attr.remote(attr_name)))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._call_each(indices, lambda a: a.set_attr.remote(attr_name, value))

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        """Call ``method_name`` on the envs; a call that changes an env's state (e.g. a UAC
        gate's ``provide``) is repeated on a restarted worker before its step. A worker
        that dies in the call is restarted and the call retried (``max_retries``), then a
        RuntimeError says so."""
        results = self._call_each(
            indices,
            lambda a: a.env_method.remote(method_name, method_args, method_kwargs),
            what=f"env_method({method_name!r})",
        )
        if method_name not in STATELESS_METHODS:
            for i in self._get_indices(indices):
                self._calls[i].append((method_name, method_args, method_kwargs))
        return results

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return self._call_each(indices, lambda a: a.env_is_wrapped.remote(wrapper_class))

    def get_images(self) -> Sequence[np.ndarray | None]:
        return self._call_each(None, lambda a: a.render.remote())

    def worker_pids(self) -> list[int]:
        """Process ids of the env workers (for monitoring, and tests that kill one)."""
        return self._call_each(None, lambda a: a.pid.remote())

    # ---- internals -----------------------------------------------------------------
    def _start(self, index: int) -> None:
        """Start env ``index``'s step of the pending actions."""
        self._running[self._actors[index].step.remote(self._actions[index])] = index

    def _get_or_recover(self, index: int, future: Any) -> tuple:
        """Env ``index``'s step result, retried on a new actor if its worker died."""
        ray = _ray()
        try:
            return ray.get(future)
        except ray.exceptions.RayActorError as exc:
            return self._recover(index, exc)

    def _call_each(
        self, indices: VecEnvIndices, call: Callable[[Any], Any], what: str = "a call"
    ) -> list[Any]:
        """``call(actor)`` on each env's actor; a dead worker is restarted (its episode
        replayed) and the call retried up to ``max_retries`` times."""
        ray = _ray()
        chosen = self._get_indices(indices)
        futures = [call(self._actors[i]) for i in chosen]
        results = []
        for i, future in zip(chosen, futures):
            try:
                results.append(ray.get(future))
            except ray.exceptions.RayActorError as exc:
                results.append(self._retry_call(i, call, exc, what))
        return results

    def _retry_call(self, index: int, call: Callable[[Any], Any], error: Exception, what: str):
        ray = _ray()
        last: Exception = error
        for attempt in range(1, self.max_retries + 2):
            warnings.warn(
                f"Ray env worker {index} died in {what} ({type(last).__name__}); restarting it"
                + (
                    f" and retrying (attempt {attempt} of {self.max_retries})"
                    if attempt <= self.max_retries
                    else ""
                ),
                RuntimeWarning,
                stacklevel=4,
            )
            try:
                self._restart(index)
                if attempt > self.max_retries:  # a fresh worker for what follows
                    break
                return ray.get(call(self._actors[index]))
            except ray.exceptions.RayActorError as exc:
                last = exc
        raise RuntimeError(
            f"Ray env worker {index} died {self.max_retries + 1} times in {what}: {last}"
        ) from last

    def _optional_attr(self, name: str) -> Any:
        return _ray().get(self._actors[0].get_attr.remote(name)) if self.has_attr(name) else None

    def _final_step(self, index: int) -> bool:
        """Whether env ``index``'s pending action ends its episode (evaluates)."""
        if self._one_shot or self._horizon is None:
            return True
        return len(self._episode_actions[index]) + 1 >= self._horizon

    def _recover(self, index: int, error: Exception):
        """Replace env ``index``'s dead worker and retry its step (bounded)."""
        ray = _ray()
        action = self._actions[index] if self._actions is not None else None
        last: Exception = error
        for attempt in range(1, self.max_retries + 1):
            warnings.warn(
                f"Ray env worker {index} died ({type(last).__name__}); restarting it and "
                f"retrying its step (attempt {attempt} of {self.max_retries})",
                RuntimeWarning,
                stacklevel=3,
            )
            try:
                self._restart(index)
                return ray.get(self._actors[index].step.remote(action))
            except ray.exceptions.RayActorError as exc:
                last = exc
        if not self._final_step(index):
            raise RuntimeError(
                f"Ray env worker {index} died {self.max_retries + 1} times at a step that "
                f"evaluates nothing: the workers, not the architecture, are failing ({last})"
            ) from last
        self._replace(index)
        obs, reset_info = ray.get(self._actors[index].reset.remote(None, None))
        info = {
            "failed": True,
            "error": f"worker died {self.max_retries + 1} times: {last}",
            "terminal_observation": obs,
            "TimeLimit.truncated": False,
        }
        return obs, self.failed_reward, True, info, reset_info

    def _restart(self, index: int) -> None:
        """A new worker for env ``index``, brought to where the dead one's env was (its
        episode's actions and the state-changing env_method calls since its last step)."""
        self._replace(index)
        _ray().get(
            self._actors[index].restore.remote(
                self._episode_seed[index],
                self._episode_options[index],
                self._episode_actions[index],
                self._calls[index],
            )
        )

    def _replace(self, index: int) -> None:
        ray = _ray()
        try:
            ray.kill(self._actors[index])
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._actors[index] = self._remote.remote(self._env_fns[index])
        self.worker_restarts += 1


def _stack(observations: list[Any]) -> np.ndarray:
    return np.stack([np.asarray(o) for o in observations])


def _init_ray(address: str | None, timeout: float, init_kwargs: dict[str, Any]) -> bool:
    """Connect to (or start) Ray; True if this call started a local Ray it owns."""
    ray = _ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        kwargs = {"include_dashboard": False, "log_to_driver": False, **init_kwargs}
        ray.init(**kwargs)
        return True
    if address != "auto":
        _check_reachable(address, timeout)
    try:
        ray.init(address=address, **init_kwargs)
    except ConnectionError as exc:
        raise ConnectionError(
            f"could not join the Ray cluster at {address!r}: {exc}. Start one with "
            "`ray start --head` (workers: `ray start --address=<head>:6379`) or pass "
            "address=None for a local Ray."
        ) from exc
    return False


def _check_reachable(address: str, timeout: float) -> None:
    """Fail fast (ConnectionError) when nothing listens at a ``host:port`` Ray address."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"Ray address must be 'host:port', 'ray://host:port' or 'auto', got {address!r}"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionError(
            f"no Ray cluster answers at {address!r} within {timeout:.0f} s ({exc}). Start one "
            "with `ray start --head` on the head node and `ray start --address=<head>:6379` on "
            "the workers, or pass address=None (and unset RAY_ADDRESS) for a local Ray."
        ) from exc


def _make_env(env_id: str, env_kwargs: dict[str, Any], monitor: bool) -> gym.Env:
    import fnas_env  # noqa: F401 - registers the ids in the worker process

    env = gym.make(env_id, **env_kwargs)
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(env)
    return env


def make_ray_vec_env(
    env_id: str,
    n_envs: int = 2,
    env_kwargs: dict[str, Any] | None = None,
    seed: int | None = None,
    monitor: bool = True,
    **ray_kwargs: Any,
) -> RayVecEnv:
    """``n_envs`` copies of a registered env in Ray actors (SB3's ``make_vec_env``, on Ray).

    Args:
        env_id: a registered id (``fnas_env``'s ids are registered in every worker).
        n_envs: number of envs (one Ray actor each).
        env_kwargs: ``gym.make`` keyword arguments of every env.
        seed: env ``i`` is reset with ``seed + i`` at the first reset (default None).
        monitor: wrap each env in SB3's ``Monitor`` (episode statistics; default True).
        **ray_kwargs: :class:`RayVecEnv` arguments (``num_workers``, ``num_cpus``,
            ``num_gpus``, ``address``, ``max_retries``, ...).
    """
    if int(n_envs) < 1:
        raise ValueError(f"n_envs must be a positive int, got {n_envs}")
    kwargs = dict(env_kwargs or {})
    fns = [(lambda: _make_env(env_id, kwargs, monitor)) for _ in range(int(n_envs))]
    venv = RayVecEnv(fns, **ray_kwargs)
    if seed is not None:
        venv.seed(seed)
    return venv
