"""One harness for every search method: same env, same budget, same counting.

:func:`run_method` makes the env, runs a registered method for a budget of
activated samples and returns the per-activated-sample trace read from the env's
search record, so every method is measured the same way.

Counting rule (the same for every method): an *activated* sample is a real
evaluation the env records (``kind="evaluated"``) of an architecture not
evaluated before in this search. A repeated architecture is served its recorded
result by the env (``kind="cached"``): it is free, counted apart (``cached``)
and never spends budget, for every method. Surrogate rewards (UAC) and replays
(AEB) are free as well. The trace also carries ``sampled`` (every architecture
sampled so far), ``unique`` (distinct architectures activated so far) and
``cached``.

Adding a method is one function::

    @register_method("fnas")
    def _fnas(env, budget, seed, logdir=None, progress_bar=False):
        model = FNASRecurrentPPO(...)
        model.learn(10**9, callback=SearchBudgetCallback(budget))
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

import fnas_env  # noqa: F401 - registers the env ids
from agents.baselines import nas_env, random_search, regularized_evolution, reinforce
from fnas_env.arch import Architecture
from fnas_env.evaluators.base import Evaluation, Evaluator

__all__ = [
    "TracePoint",
    "METHODS",
    "register_method",
    "run_method",
    "make_search_env",
    "reach",
    "TimedEvaluator",
]

#: A method runs a search on ``env`` until ``budget`` more activated samples are recorded.
Method = Callable[..., Any]
METHODS: dict[str, Method] = {}


@dataclass(frozen=True)
class TracePoint:
    """One activated sample of a search.

    ``activated`` counts from 1; ``best_*`` are running maxima; ``wall_time`` is
    seconds since the search started, ``eval_time`` the seconds spent inside the
    evaluator up to this sample (so ``wall_time - eval_time`` is the controller's
    share); ``sampled`` counts every architecture sampled so far (cached repeats
    and surrogates included); ``unique`` the distinct architectures activated so
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


def register_method(name: str) -> Callable[[Method], Method]:
    """Decorator: register ``fn(env, budget, seed, logdir=None, progress_bar=False)``."""

    def add(fn: Method) -> Method:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = fn
        return fn

    return add


@register_method("random")
def _random(env, budget, seed, logdir=None, progress_bar=False):
    random_search(env, budget, seed=seed, logdir=logdir, progress_bar=progress_bar)


@register_method("evolution")
def _evolution(env, budget, seed, logdir=None, progress_bar=False):
    regularized_evolution(env, budget, seed=seed, logdir=logdir, progress_bar=progress_bar)


@register_method("reinforce")
def _reinforce(env, budget, seed, logdir=None, progress_bar=False):
    reinforce(env, budget, seed=seed, logdir=logdir, progress_bar=progress_bar)


@register_method("ppo-lstm")
def _ppo_lstm(env, budget, seed, logdir=None, progress_bar=False):
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


def make_search_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)``, its evaluator wrapped in a :class:`TimedEvaluator`."""
    env = gym.make(env_id, **(env_kwargs or {}))
    base = nas_env(env)
    base.evaluator = TimedEvaluator(base.evaluator)
    return env


def run_method(
    method: str,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    budget: int = 500,
    seed: int = 0,
    logdir: str | os.PathLike | None = None,
    progress_bar: bool = False,
    torch_threads: int | None = 1,
) -> list[TracePoint]:
    """Run ``method`` on a fresh ``env_id`` env for ``budget`` activated samples.

    Args:
        method: a key of :data:`METHODS` (``random``, ``evolution``, ``reinforce``,
            ``ppo-lstm``, and any added with :func:`register_method`).
        env_id: a registered FNAS env id (``"FNAS-NB201-v0"``).
        env_kwargs: keyword arguments of ``gym.make`` (default None).
        budget: activated samples (default 500).
        seed: seed of the method and the env (default 0).
        logdir: TensorBoard folder (default None).
        progress_bar: show a progress bar (default False).
        torch_threads: torch intra-op threads while the method runs (default 1: a
            100-unit LSTM is fastest on one thread; None leaves torch's setting).

    Returns:
        One :class:`TracePoint` per activated sample, in order (at most ``budget``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; registered: {sorted(METHODS)}")
    env = make_search_env(env_id, env_kwargs)
    base = nas_env(env)
    env.reset(seed=seed)
    previous = None
    if torch_threads is not None:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(int(torch_threads))
    start_entries = len(base.record.entries)
    start = time.time()
    try:
        METHODS[method](env, budget, seed, logdir=logdir, progress_bar=progress_bar)
    finally:
        if previous is not None:
            import torch

            torch.set_num_threads(previous)
        env.close()
    return _trace(base, start_entries, start, budget)


def _trace(base, start_entries: int, start: float, budget: int) -> list[TracePoint]:
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
        if entry.kind != "evaluated":
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


def reach(trace: list[TracePoint], threshold: float) -> int | None:
    """Activated samples needed until the best accuracy is >= ``threshold`` (None: never)."""
    for point in trace:
        if point.best_accuracy >= threshold:
            return point.activated
    return None
