"""One harness for the baseline search methods: same env, same budget, same counting.

:func:`run_method` makes the env, runs a method of :data:`METHODS` for a budget of
activated samples and returns the per-activated-sample trace read from the env's
search record (:func:`trace_of`), so every method is measured the same way.
:mod:`benchmarks.methods` runs the FNAS methods on the same env and trace.

Counting rule (the same for every method): an *activated* sample is a real
evaluation the env records (``kind="activated"``) of an architecture not
evaluated before in this search. A repeated architecture is served its recorded
result by the env (``kind="cached"``): it is free, counted apart (``cached``)
and never spends budget, for every method. Trusted rewards (UAC) and replays
(AEB) are free as well. The trace also carries ``sampled`` (every architecture
sampled so far), ``unique`` (distinct architectures activated so far) and
``cached``.

Adding a method is one function ``fn(env, budget, seed=..., logdir=...,
progress_bar=...)`` that searches until ``budget`` more activated samples are
recorded, and one entry of :data:`METHODS`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any

import gymnasium as gym
import numpy as np

import fnas_env  # noqa: F401 - registers the env ids
from agents.baselines import nas_env, random_search, regularized_evolution, reinforce
from fnas_env import threads
from fnas_env.arch import Architecture
from fnas_env.env import NASEnv
from fnas_env.evaluators.base import Evaluation, Evaluator

__all__ = [
    "TracePoint",
    "METHODS",
    "run_method",
    "make_search_env",
    "table_thresholds",
    "trace_of",
    "reach",
    "reaching",
    "TimedEvaluator",
]

#: A method runs a search on ``env`` until ``budget`` more activated samples are recorded.
Method = Callable[..., Any]


@dataclass(frozen=True)
class TracePoint:
    """One activated sample of a search.

    ``activated`` counts from 1; ``best_*`` are running maxima; ``wall_time`` is
    seconds since the search started, ``eval_time`` the seconds spent inside the
    evaluator up to this sample (so ``wall_time - eval_time`` is the controller's
    share); ``sampled`` counts every architecture sampled so far (cached and
    trusted ones included); ``unique`` the distinct architectures activated so
    far; ``cached`` the repeats served from the record so far (free).
    """

    activated: int
    arch: str
    accuracy: float | None
    reward: float
    best_accuracy: float
    best_reward: float
    wall_time: float
    eval_time: float
    sampled: int
    unique: int
    cached: int = 0
    test_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TimedEvaluator(Evaluator):
    """Wrap an evaluator to time each evaluation (perf_counter seconds, host wall time)."""

    def __init__(self, inner: Evaluator):
        self.inner = inner
        self.space_name = inner.space_name
        self.objective = inner.objective
        self.times: list[float] = []

    def _evaluate(self, arch: Architecture) -> Evaluation:
        start = time.perf_counter()
        try:
            return self.inner.evaluate(arch)
        finally:
            self.times.append(time.perf_counter() - start)

    def __getattr__(self, name: str) -> Any:  # all_accuracies() and the like
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def _ppo_lstm(
    env: gym.Env,
    budget: int,
    seed: int | None = None,
    logdir: str | os.PathLike | None = None,
    progress_bar: bool = False,
) -> None:
    """Vanilla MnasNet-style controller: RecurrentPPO, no FNAS modules."""
    from agents.callbacks import SearchBudgetCallback
    from agents.controller import make_controller

    model = make_controller(env, seed=seed, tensorboard_log=logdir)
    horizon = nas_env(env).horizon
    # repeats are free (cached), so an episode is not always an activated sample: the
    # callback stops at the budget, or at 20 x budget sampled architectures at most
    bound = 20 * budget
    model.learn(
        total_timesteps=horizon * bound,
        callback=SearchBudgetCallback(budget, max_samples=bound),
        progress_bar=progress_bar,
    )


#: The methods :func:`run_method` runs, by name (read-only).
METHODS: Mapping[str, Method] = MappingProxyType(
    {
        "random": random_search,
        "evolution": regularized_evolution,
        "reinforce": reinforce,
        "ppo-lstm": _ppo_lstm,
    }
)


def make_search_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)``, its evaluator wrapped in a :class:`TimedEvaluator`."""
    env = gym.make(env_id, **(env_kwargs or {}))
    base = nas_env(env)
    base.evaluator = TimedEvaluator(base.evaluator)
    return env


def table_thresholds(
    env_id: str, env_kwargs: Mapping[str, Any] | None = None
) -> dict[str, float] | None:
    """Top-1% and top-0.1% accuracy of the env's whole table, its best and its size.

    A threshold is the accuracy of the ``ceil(p N)``-th best of the ``N`` architectures
    (the evaluator's ``all_accuracies()``). None where the env's evaluator is not a table.
    """
    env = make_search_env(env_id, env_kwargs)
    try:
        all_accuracies = getattr(env.unwrapped.evaluator, "all_accuracies", None)
        if all_accuracies is None:
            return None
        accuracies = np.sort(np.asarray(all_accuracies(), dtype=float))[::-1]
    finally:
        env.close()
    n = len(accuracies)
    return {
        "top1pct": float(accuracies[math.ceil(0.01 * n) - 1]),
        "top01pct": float(accuracies[math.ceil(0.001 * n) - 1]),
        "best": float(accuracies[0]),
        "n": n,
    }


def run_method(
    method: str,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    budget: int = 500,
    seed: int = 0,
    logdir: str | os.PathLike | None = None,
    progress_bar: bool = False,
    num_threads: int | None = 1,
) -> list[TracePoint]:
    """Run ``method`` on a fresh ``env_id`` env for ``budget`` activated samples.

    Args:
        method: a key of :data:`METHODS` (``random``, ``evolution``, ``reinforce``,
            ``ppo-lstm``).
        env_id: a registered FNAS env id (``"FNAS-NB201-v0"``).
        env_kwargs: keyword arguments of ``gym.make`` (default None).
        budget: activated samples (default 500).
        seed: seed of the method and the env (default 0).
        logdir: TensorBoard folder (default None).
        progress_bar: show a progress bar (default False).
        num_threads: torch intra-op threads while the method runs (default 1: a
            100-unit LSTM is fastest on one thread; None leaves torch's setting).

    Returns:
        One :class:`TracePoint` per activated sample, in order (at most ``budget``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
    env = make_search_env(env_id, env_kwargs)
    base = nas_env(env)
    env.reset(seed=seed)
    start_entries = len(base.record.entries)
    start = time.time()
    try:
        with threads.torch_threads(num_threads):
            METHODS[method](env, budget, seed=seed, logdir=logdir, progress_bar=progress_bar)
    finally:
        env.close()
    return trace_of(base, start_entries, start, budget)


def trace_of(base: NASEnv, start_entries: int, start: float, budget: int) -> list[TracePoint]:
    """The trace of a search on ``base``: one point per activated sample, at most ``budget``.

    Reads the record's entries from index ``start_entries`` on (replays skipped, cached
    repeats counted); ``start`` is the search's ``time.time()`` at its start. Evaluation
    times come from a :class:`TimedEvaluator` (0 with another evaluator).
    """
    times = base.evaluator.times if isinstance(base.evaluator, TimedEvaluator) else []
    eval_times = np.cumsum(times) if times else None
    trace: list[TracePoint] = []
    seen: set[tuple[int, ...]] = set()
    best_acc, best_reward, sampled, cached = -np.inf, -np.inf, 0, 0
    for entry in base.record.entries[start_entries:]:
        if entry.kind == "replayed":
            continue
        sampled += 1
        cached += int(entry.kind == "cached")
        if entry.kind != "activated":
            continue
        if len(trace) >= budget:
            break
        seen.add(entry.choices)
        if entry.accuracy is not None:
            best_acc = max(best_acc, entry.accuracy)
        best_reward = max(best_reward, entry.reward)
        n = len(trace)
        test = entry.extras.get("test_accuracy")
        trace.append(
            TracePoint(
                activated=n + 1,
                arch=entry.arch,
                accuracy=entry.accuracy,
                reward=entry.reward,
                best_accuracy=float(best_acc),
                best_reward=float(best_reward),
                wall_time=entry.timestamp - start,
                eval_time=float(eval_times[min(n, len(eval_times) - 1)])
                if eval_times is not None
                else 0.0,
                sampled=sampled,
                unique=len(seen),
                cached=cached,
                test_accuracy=None if test is None else float(test),
            )
        )
    return trace


def reach(trace: list[TracePoint], threshold: float | None) -> int | None:
    """Activated samples needed until the best accuracy is >= ``threshold``.

    None when it never is, or when there is no ``threshold`` (an env without a table).
    """
    if threshold is None:
        return None
    for point in trace:
        if point.best_accuracy >= threshold:
            return point.activated
    return None


def reaching(trace: list[TracePoint], targets: Mapping[str, float | None]) -> dict[str, Any]:
    """The reaching figures of a run's record: its ``budget`` (the trace's length), the
    activated samples to ``targets``' top-1% and top-0.1% accuracies (:func:`reach`) and
    those accuracies (None where the env has no table)."""
    return {
        "budget": len(trace),
        "activated_to_top1pct": reach(trace, targets["top1pct"]),
        "activated_to_top01pct": reach(trace, targets["top01pct"]),
        "top1pct_accuracy": targets["top1pct"],
        "top01pct_accuracy": targets["top01pct"],
    }
