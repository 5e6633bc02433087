"""A search on several Ray workers, as the parallel benchmarks run it (settings explicit).

:func:`build_search` makes the stack a parallel FNAS search uses: envs in Ray actors
(:class:`~fnas_env.ray_vec_env.RayVecEnv`), one record
(:class:`~wrappers.record.VecSearchRecord`) and, for the UAC methods, one gate
(:class:`~wrappers.uac.VecUncertaintyGate`) in this process, and the FNAS controller.
:class:`StopAfterUpdates` ends ``learn`` after a number of PPO updates (the paper's
equal-PPO-samples comparison); :meth:`Search.run_updates` runs a search that long.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

__all__ = [
    "Search",
    "build_search",
    "StopAfterUpdates",
    "METHOD_MODULES",
    "start_ray",
    "append_jsonl",
]

#: which FNAS modules each method of the parallel benchmarks switches on
METHOD_MODULES = {
    "mnas": {"uac": False, "aeb": False},
    "uac": {"uac": True, "aeb": False},
    "fnas": {"uac": True, "aeb": True},
}


@dataclass
class Search:
    """What :func:`build_search` made; ``close()`` stops the workers."""

    model: Any
    venv: Any  # the RayVecEnv
    record: Any  # the VecSearchRecord
    gate: Any | None
    critic: Any | None
    buffer: Any | None

    def close(self) -> None:
        self.venv.close()

    def run_updates(self, updates: int) -> float:
        """``learn`` for ``updates`` PPO updates (:class:`StopAfterUpdates`), then stop the
        workers; the wall seconds ``learn`` took."""
        try:
            start = time.perf_counter()
            self.model.learn(10**9, callback=StopAfterUpdates(updates))
            return time.perf_counter() - start
        finally:
            self.close()


def build_search(
    env_id: str,
    env_kwargs: dict[str, Any],
    method: str,
    workers: int,
    seed: int,
    architectures_per_update: int,
    record_path: str | os.PathLike | None = None,
    critic: Any | None = None,
    buffer: Any | None = None,
    gate_kwargs: dict[str, Any] | None = None,
    controller_kwargs: dict[str, Any] | None = None,
    env_wrapper: Any | None = None,
    envs: int | None = None,
) -> Search:
    """The controller and its envs for ``method`` (a key of :data:`METHOD_MODULES`).

    ``architectures_per_update`` is the PPO batch in architectures, split over the
    ``envs`` envs (default: one env per worker; the batch must divide by them). More
    envs than ``workers`` share the workers (:class:`RayVecEnv`'s ``num_workers``):
    with ``envs=architectures_per_update`` the search is the same at every worker
    count. ``env_wrapper(env)`` wraps every env (e.g. a simulated training time).
    """
    from agents.fnas_ppo import make_fnas_controller
    from fnas_env.ray_vec_env import RayVecEnv, _make_env
    from fnas_env.spaces import get_space
    from wrappers.record import VecSearchRecord
    from wrappers.uac import VecUncertaintyGate

    if method not in METHOD_MODULES:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHOD_MODULES)}")
    n_envs = workers if envs is None else int(envs)
    if not 1 <= workers <= n_envs:
        raise ValueError(f"workers={workers} must be between 1 and envs={n_envs}")
    if architectures_per_update % n_envs:
        raise ValueError(
            f"architectures_per_update={architectures_per_update} must divide by the {n_envs} envs"
        )
    modules = METHOD_MODULES[method]

    def make() -> Any:
        env = _make_env(env_id, env_kwargs, monitor=False)
        return env_wrapper(env) if env_wrapper is not None else env

    venv = RayVecEnv([make] * n_envs, num_workers=workers)
    venv.seed(seed)
    record = VecSearchRecord(venv, record_path, seed=seed)
    env: Any = record
    gate = None
    if modules["uac"]:
        if critic is None:
            from wrappers.critic import UncertaintyCritic

            space = get_space(venv.get_attr("search_space", indices=[0])[0].name)
            critic = UncertaintyCritic(space.embedding_dim, seed=seed)
        gate = VecUncertaintyGate(record, critic, **(gate_kwargs or {}))
        env = gate
    if modules["aeb"] and buffer is None:
        from agents.experience import ExperienceBuffer

        buffer = ExperienceBuffer(seed=seed)
    model = make_fnas_controller(
        env,
        uac=modules["uac"],
        aeb=modules["aeb"],
        experience_buffer=buffer if modules["aeb"] else None,
        seed=seed,
        architectures_per_update=architectures_per_update // n_envs,
        **(controller_kwargs or {}),
    )
    return Search(model, venv, record, gate, critic if modules["uac"] else None, buffer)


class StopAfterUpdates(BaseCallback):
    """Stop ``learn`` once ``updates`` PPO updates are done (at the next rollout's first step).

    The search's progress (what AEB's beta follows) is ``updates done / updates``: pass
    ``learn`` a ``total_timesteps`` it never reaches.
    """

    def __init__(self, updates: int) -> None:
        super().__init__()
        self.updates = int(updates)
        self.done = 0

    def _on_rollout_start(self) -> None:
        self.model._current_progress_remaining = 1.0 - self.done / self.updates

    def _on_rollout_end(self) -> None:
        self.done += 1

    def _on_step(self) -> bool:
        return self.done < self.updates


def start_ray(num_cpus: int, script: str) -> None:
    """A local Ray with ``num_cpus`` logical CPUs; the benchmark module ``script`` (its
    ``__name__``) and this one travel to the workers by value (no PYTHONPATH there)."""
    import ray

    for module in (sys.modules[script], sys.modules[__name__]):
        ray.cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def append_jsonl(path: str | os.PathLike | None, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line to ``path`` (nothing when ``path`` is None)."""
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
