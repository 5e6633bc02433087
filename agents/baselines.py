"""Non-sequential NAS baselines on the same NASEnv: random search, regularized evolution, REINFORCE.

Each baseline evaluates architectures through ``env.unwrapped.evaluate(arch)`` and
records them with ``env.unwrapped.score(arch, evaluation)``, so its search record
and counters are the same as those of the RL methods that step the env. Each runs
until ``budget`` more activated samples (real evaluations) are recorded. A
repeated architecture is served its recorded result by the env (``kind="cached"``,
no cost, not activated) and takes part in the search like any sample, so a search
that repeats itself runs until ``max_samples`` sampled architectures (default
20 x budget) at most.

Random search and regularized evolution are pure numpy; REINFORCE imports torch
when it runs.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from fnas_env.arch import Architecture
from fnas_env.env import NASEnv
from fnas_env.record import SearchCounters

__all__ = [
    "SearchResult",
    "SearchLogger",
    "random_search",
    "regularized_evolution",
    "reinforce",
    "search_scalars",
    "nas_env",
]


@dataclass(frozen=True)
class SearchResult:
    """Outcome of a baseline search (the full history is the env's record)."""

    best_arch: str | None
    best_reward: float
    best_accuracy: float
    activated: int
    sampled: int


#: default bound on sampled architectures (cached repeats included), per activated sample
SAMPLES_PER_BUDGET = 20


def nas_env(env: gym.Env | NASEnv) -> NASEnv:
    """The NASEnv under ``env`` (wrappers allowed); a clear error for anything else."""
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, NASEnv):
        raise TypeError(
            f"expected a NASEnv (e.g. gym.make('FNAS-NB201-v0')), got {type(base).__name__}"
        )
    return base


def search_scalars(counters: SearchCounters | list[SearchCounters]) -> dict[str, float]:
    """The ``search/`` scalars of one or several envs' counters (sums; best is the max)."""
    items = counters if isinstance(counters, list) else [counters]
    out = {
        "search/activated": float(sum(c.activated for c in items)),
        "search/sampled": float(sum(c.sampled for c in items)),
        "search/cached": float(sum(c.cached for c in items)),
        "search/trusted": float(sum(c.trusted for c in items)),
        "search/replayed": float(sum(c.replayed for c in items)),
        "search/cost": float(sum(c.cost for c in items)),
    }
    best_reward = max(c.best_reward for c in items)
    best_accuracy = max(c.best_accuracy for c in items)
    if np.isfinite(best_reward):
        out["search/best_reward"] = float(best_reward)
    if np.isfinite(best_accuracy):
        out["search/best_accuracy"] = float(best_accuracy)
    return out


class SearchLogger:
    """TensorBoard ``search/`` scalars and an optional tqdm bar for a baseline.

    Args:
        env: the NASEnv whose counters are logged.
        budget: activated samples of the run (the bar's total).
        logdir: TensorBoard folder (default None: no TensorBoard).
        progress_bar: show a tqdm bar over activated samples (default False).
        log_every: write scalars every this many activated samples (default 10).
    """

    def __init__(
        self,
        env: NASEnv,
        budget: int,
        logdir: str | os.PathLike | None = None,
        progress_bar: bool = False,
        log_every: int = 10,
    ):
        self._env = env
        self._start = env.record.counters.activated
        self._log_every = max(1, int(log_every))
        self._logged = -1  # activated count of the last write (cached repeats add none)
        self._writer = None
        if logdir is not None:
            from torch.utils.tensorboard import SummaryWriter  # torch only when logging

            self._writer = SummaryWriter(str(logdir))
        self._bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=budget, unit="arch", desc="activated")

    @property
    def done(self) -> int:
        """Activated samples recorded since this logger started."""
        return self._env.record.counters.activated - self._start

    def update(self, force: bool = False) -> None:
        counters = self._env.record.counters
        if self._bar is not None:
            self._bar.n = self.done
            self._bar.set_postfix(best=f"{counters.best_accuracy:.2f}", refresh=False)
            self._bar.refresh()
        due = self.done % self._log_every == 0 and self.done != self._logged
        if self._writer is not None and (force or due):
            self._logged = self.done
            for key, value in search_scalars(counters).items():
                self._writer.add_scalar(key, value, counters.sampled)

    def close(self) -> None:
        self.update(force=True)
        if self._writer is not None:
            self._writer.close()
        if self._bar is not None:
            self._bar.close()


def _check_budget(budget: int) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 1:
        raise ValueError(f"budget must be a positive int (activated samples), got {budget!r}")
    return int(budget)


def _check_max_samples(max_samples: int | None, budget: int) -> int:
    if max_samples is None:
        return SAMPLES_PER_BUDGET * budget
    if (
        isinstance(max_samples, bool)
        or not isinstance(max_samples, int | np.integer)
        or max_samples < 1
    ):
        raise ValueError(
            f"max_samples must be None (20 x budget) or a positive int (sampled "
            f"architectures), got {max_samples!r}"
        )
    return int(max_samples)


def _evaluate(env: NASEnv, arch: Architecture) -> float:
    reward, _ = env.score(arch, env.evaluate(arch))
    return reward


def _run(
    env: gym.Env | NASEnv,
    budget: int,
    logdir: str | os.PathLike | None,
    progress_bar: bool,
    step: Callable[[NASEnv], Any],
    max_samples: int | None = None,
) -> SearchResult:
    """Call ``step`` until ``budget`` more activated or ``max_samples`` more sampled."""
    base = nas_env(env)
    budget = _check_budget(budget)
    max_samples = _check_max_samples(max_samples, budget)
    start_sampled = base.record.counters.sampled
    log = SearchLogger(base, budget, logdir, progress_bar)
    try:
        while log.done < budget and base.record.counters.sampled - start_sampled < max_samples:
            step(base)
            log.update()
    finally:
        log.close()
    c = base.record.counters
    return SearchResult(c.best_arch, c.best_reward, c.best_accuracy, c.activated, c.sampled)


def random_search(
    env: gym.Env | NASEnv,
    budget: int,
    seed: int | None = None,
    logdir: str | os.PathLike | None = None,
    progress_bar: bool = False,
    max_samples: int | None = None,
) -> SearchResult:
    """Uniform random search (Li & Talwalkar, 2019) for ``budget`` activated samples.

    Args:
        env: a NASEnv (wrappers allowed); its evaluator and record are used.
        budget: activated samples to spend.
        seed: seed of the sampler (default None).
        logdir: TensorBoard folder for ``search/`` scalars (default None).
        progress_bar: show a tqdm bar (default False).
        max_samples: stop after this many sampled architectures (cached repeats
            included) even if the budget is not spent (default None: 20 x budget).
    """
    rng = np.random.default_rng(seed)
    return _run(
        env,
        budget,
        logdir,
        progress_bar,
        lambda base: _evaluate(base, base.search_space.sample(rng)),
        max_samples,
    )


def regularized_evolution(
    env: gym.Env | NASEnv,
    budget: int,
    seed: int | None = None,
    population_size: int = 10,
    sample_size: int = 3,
    logdir: str | os.PathLike | None = None,
    progress_bar: bool = False,
    max_samples: int | None = None,
) -> SearchResult:
    """Regularized (aging) evolution (Real et al., 2019) for ``budget`` activated samples.

    The first ``population_size`` samples are random; then each cycle draws
    ``sample_size`` members uniformly (with replacement), mutates the best of them
    with the space's ``mutate`` (one decision changed), evaluates the child and
    replaces the oldest member. A child the env serves from its record (a
    repeat) joins the population like any other. Defaults P=10, S=3 are
    NAS-Bench-201's / NATS-Bench's published settings (``--ea_population 10
    --ea_sample_size 3``).

    Args:
        env: a NASEnv (wrappers allowed).
        budget: activated samples to spend.
        seed: seed of sampling and mutation (default None).
        population_size: P, members kept (default 10).
        sample_size: S, tournament size (default 3).
        logdir: TensorBoard folder for ``search/`` scalars (default None).
        progress_bar: show a tqdm bar (default False).
        max_samples: stop after this many sampled architectures (cached repeats
            included) even if the budget is not spent (default None: 20 x budget).
    """
    if population_size < 1 or not 1 <= sample_size:
        raise ValueError(
            f"population_size and sample_size must be >= 1, got {population_size}, {sample_size}"
        )
    rng = np.random.default_rng(seed)
    population: collections.deque[tuple[Architecture, float]] = collections.deque()

    def step(base: NASEnv) -> None:
        space = base.search_space
        if len(population) < population_size:
            arch = space.sample(rng)
        else:
            picks = rng.integers(len(population), size=sample_size)
            parent = max((population[i] for i in picks), key=lambda m: m[1])[0]
            arch = space.mutate(parent, rng)
        population.append((arch, _evaluate(base, arch)))
        if len(population) > population_size:
            population.popleft()  # aging: the oldest dies, not the worst

    return _run(env, budget, logdir, progress_bar, step, max_samples)


class _EMA:
    """NAS-Bench-201's bias-corrected exponential moving average of rewards."""

    def __init__(self, momentum: float):
        self.momentum = momentum
        self._num = 0.0
        self._den = 0.0

    def update(self, value: float) -> None:
        self._num = self.momentum * self._num + (1 - self.momentum) * value
        self._den = self.momentum * self._den + (1 - self.momentum)

    @property
    def value(self) -> float:
        return self._num / self._den


def reinforce(
    env: gym.Env | NASEnv,
    budget: int,
    seed: int | None = None,
    learning_rate: float = 0.01,
    ema_momentum: float = 0.9,
    logdir: str | os.PathLike | None = None,
    progress_bar: bool = False,
    max_samples: int | None = None,
) -> SearchResult:
    """REINFORCE with an EMA reward baseline, as NAS-Bench-201 / NATS-Bench ran it.

    The policy is one independent categorical per decision (logits initialised
    ``1e-3 x N(0, 1)``), trained with Adam after every sample on
    ``-log p(arch) x (R - b)``, where ``b`` is the bias-corrected EMA of rewards
    updated with the current reward first (NAS-Bench-201's ``reinforce.py``;
    ``--learning_rate 0.01``, ``--EMA_momentum 0.9``).

    Args:
        env: a NASEnv (wrappers allowed).
        budget: activated samples to spend.
        seed: seed of the initial logits and of sampling (default None).
        learning_rate: Adam step size (default 0.01).
        ema_momentum: momentum of the reward baseline (default 0.9).
        logdir: TensorBoard folder for ``search/`` scalars (default None).
        progress_bar: show a tqdm bar (default False).
        max_samples: stop after this many sampled architectures (cached repeats
            included) even if the budget is not spent (default None: 20 x budget).
    """
    import torch

    if not 0.0 <= ema_momentum < 1.0:
        raise ValueError(f"ema_momentum must be in [0, 1), got {ema_momentum!r}")
    base = nas_env(env)
    num_choices = base.search_space.num_choices
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    logits = torch.nn.Parameter(
        1e-3 * torch.randn(len(num_choices), max(num_choices), generator=generator)
    )
    # choices beyond a decision's count are masked out of its softmax
    invalid = torch.tensor([[j >= n for j in range(max(num_choices))] for n in num_choices])
    optimizer = torch.optim.Adam([logits], lr=learning_rate)
    baseline = _EMA(ema_momentum)
    rows = torch.arange(len(num_choices))

    def step(base: NASEnv) -> None:
        log_probs = torch.log_softmax(logits.masked_fill(invalid, -torch.inf), dim=-1)
        probs = log_probs.detach().exp().numpy().astype(np.float64)
        choices = [int(rng.choice(n, p=p[:n] / p[:n].sum())) for p, n in zip(probs, num_choices)]
        reward = _evaluate(base, base.search_space.from_choices(choices))
        baseline.update(reward)
        loss = -(log_probs[rows, torch.tensor(choices)].sum()) * (reward - baseline.value)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return _run(env, budget, logdir, progress_bar, step, max_samples)
