"""One search record for a VecEnv: however evaluations are spread, one file, one cache."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

from stable_baselines3.common.vec_env import VecEnv

from fnas_env.arch import Architecture
from fnas_env.evaluators.base import Evaluation
from fnas_env.record import SearchCounters, SearchRecord, record_kind
from wrappers.pending import VecArchitectureWrapper

__all__ = ["VecSearchRecord"]


class VecSearchRecord(VecArchitectureWrapper):
    """The durable record of a search run on several envs (``SubprocVecEnv``, Ray, ...).

    ## Description

    Each NAS env keeps a record of what *it* scored; a search spread over worker
    processes or machines needs one: this wrapper, in the process that runs the
    controller, appends every architecture any env completes to one append-only
    JSON-lines file (:class:`~fnas_env.record.SearchRecord`: fsynced per entry, so a
    SIGKILL of the driver loses no completed evaluation) and serves repeats from it.
    An architecture the record already holds a successful real evaluation of is
    handed to the env that samples it again (``env_method("provide", ...)``) and is
    not evaluated: it is recorded as ``"cached"``, whichever worker first paid for it.
    A record file that exists is read first, so a search started on it resumes its
    counters and its cache. Workers need no ``record_path`` of their own.

    Put it directly on the VecEnv of NAS envs, under the UAC gate:
    ``VecUncertaintyGate(VecSearchRecord(venv, path))``. Two envs completing the same
    new architecture in the same step both evaluate it (the second result is kept).

    ## Arguments

    - ``venv``: a VecEnv of NAS envs (:class:`~fnas_env.env.NASEnv`, wrapped or not).
    - ``path``: the JSON-lines record file (default None: in memory only).
    - ``cache``: serve repeats from the record (default True).
    - ``seed``: stored with every entry (default None).

    ## Example

    >>> venv = VecSearchRecord(make_vec_env("FNAS-Macro-v0", n_envs=2), "runs/macro/record.jsonl")
    >>> venv.counters.activated
    0
    """

    def __init__(
        self,
        venv: VecEnv,
        path: str | os.PathLike | None = None,
        cache: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(venv)
        self.record = SearchRecord(path, seed=seed)
        self.cache = bool(cache)
        self._results: dict[Architecture, Evaluation] = self.record.results()

    @property
    def counters(self) -> SearchCounters:
        """The search's counters (activated, cached, trusted, replayed, best reward, ...)."""
        return self.record.counters

    def is_cached(self, arch: Architecture) -> bool:
        """Whether a repeat of ``arch`` is served from the record (free)."""
        return self.cache and arch in self._results

    def record_replay(self, arch: Architecture, reward: float) -> None:
        """Append a ``"replayed"`` entry (an AEB replay: no evaluation, no cost)."""
        self.record.append(arch, Evaluation(accuracy=math.nan, cost=0.0), reward, "replayed")

    def evaluate_aside(self, index: int, arch: Architecture) -> tuple[float, dict[str, Any]]:
        """Evaluate ``arch`` on env ``index`` outside an episode (a repeat is served from
        the record) and record it; returns ``(reward, info)`` as a last step would. A
        worker that keeps dying in it (:class:`~fnas_env.ray_vec_env.RayVecEnv` raises
        RuntimeError after its retries) gives a failed evaluation and its defined reward."""
        lost = None  # why the worker could not evaluate it
        if self.is_cached(arch):
            evaluation = self._results[arch].replace(cached=True, cost=0.0)
        else:
            try:
                evaluation = self.venv.env_method("evaluate", arch, indices=[index])[0]
            except RuntimeError as exc:
                warnings.warn(f"evaluation of {arch} failed: {exc}", RuntimeWarning, stacklevel=2)
                lost = str(exc)
                evaluation = Evaluation(accuracy=0.0, cost=0.0, failed=True, extras={"error": lost})
        if lost is not None and hasattr(self.venv, "failed_reward"):
            reward = float(self.venv.failed_reward)  # as the VecEnv rewards a lost step
        else:
            reward = float(self.venv.env_method("reward_of", evaluation, indices=[index])[0])
        info = {
            "evaluation": evaluation,
            "reward": reward,
            "trusted": bool(evaluation.trusted),
            "cached": bool(evaluation.cached),
            "failed": bool(evaluation.failed),
        }
        self.after_completion(index, arch, info, reward)
        info["activated"] = record_kind(evaluation) == "activated"
        return reward, info

    # ---- the completed architectures ---------------------------------------------
    def before_completion(self, index: int, arch: Architecture) -> None:
        if self.is_cached(arch):
            served = self._results[arch].replace(cached=True, cost=0.0)
            self.venv.env_method("provide", served, indices=[index])

    def after_completion(
        self, index: int, arch: Architecture, info: dict[str, Any], reward: float
    ) -> None:
        evaluation = info.get("evaluation")
        if not isinstance(evaluation, Evaluation):  # e.g. a worker that died for good
            error = info.get("error", "the env reported no evaluation")
            evaluation = Evaluation(accuracy=0.0, cost=0.0, failed=True, extras={"error": error})
        kind = record_kind(evaluation)
        reward = float(info.get("reward", reward))
        self.record.append(arch, evaluation, reward, kind, wall_time=evaluation.cost or 0.0)
        if kind == "activated" and not evaluation.failed:
            self._results[arch] = evaluation.replace(cached=False)
