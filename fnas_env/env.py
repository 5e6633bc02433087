"""The NAS environment: one token per step, one architecture per episode."""

from __future__ import annotations

import math
import os
import time
import warnings
from functools import reduce
from math import lcm
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fnas_env.arch import Architecture
from fnas_env.evaluators.base import Evaluation, Evaluator
from fnas_env.record import SearchRecord, record_kind
from fnas_env.reward import RewardConfig, mnas_reward
from fnas_env.spaces.base import SearchSpace

__all__ = ["NASEnv", "nas_spaces"]


class _UnsupportedRenderMode(ValueError, TypeError):
    """A ValueError that is also a TypeError: SB3's ``make_vec_env`` passes
    ``render_mode="rgb_array"`` and retries without it only on TypeError."""


def nas_spaces(
    search_space: SearchSpace, one_shot: bool = False
) -> tuple[spaces.Box, spaces.Space]:
    """The observation and action spaces of a :class:`NASEnv` over ``search_space``.

    See the class docstring (no evaluator or data is needed to know them).
    """
    num_choices = search_space.num_choices
    if one_shot:
        return spaces.Box(0.0, 1.0, (1,), np.float32), spaces.MultiDiscrete(list(num_choices))
    size = search_space.max_choices + 1 + len(num_choices)
    return spaces.Box(0.0, 1.0, (size,), np.float32), spaces.Discrete(reduce(lcm, num_choices))


class NASEnv(gym.Env):
    """Neural architecture search as a Gymnasium environment.

    ## Description

    The agent builds an architecture of a search space decision by decision
    (MnasNet's controller view: one token per step). After the last token the
    architecture is scored by the environment's evaluator (a benchmark table,
    a fitted surrogate or real proxy training) and the episode ends with
    MnasNet's reward ``ACC x (LAT/T)^w``.

    ## Action Space

    Sequential mode: ``Discrete(K)`` with ``K`` the least common multiple of the
    per-decision choice counts. Token ``a`` at position ``i`` selects choice
    ``a % n_i``: every action is valid at every step and, for a uniform policy,
    every choice is equally likely. :meth:`action_masks` allows exactly
    ``a < n_i`` (one action per choice) for MaskablePPO.
    One-shot mode (``one_shot=True``): ``MultiDiscrete(n_1, ..., n_T)``, one
    action is a whole architecture.

    ## Observation Space

    Sequential: ``Box(0, 1, (max_choices + 1 + T,), float32)``, the one-hot of the
    previous choice (last slot = start token) and the one-hot of the position.
    One-shot: ``Box(0, 1, (1,))``, constant.

    ## Rewards

    0 on intermediate steps; on the last step ``ACC x (LAT/T)^w`` (accuracy in
    percent; accuracy alone when no target is set). A failed evaluation (diverged
    training, NaN, an evaluator error) gives ``failed_reward`` and
    ``info["failed"] = True``; the search goes on.

    ## Starting State

    Position 0, previous token = start token.

    ## Episode End

    Terminates after ``T`` tokens (``T`` = number of decisions; 1 in one-shot
    mode). Never truncates.

    ## Arguments

    - ``evaluator``: an :class:`~fnas_env.evaluators.Evaluator`; fixes the space.
    - ``reward``: a :class:`~fnas_env.reward.RewardConfig` (target, exponents).
    - ``one_shot``: whole architecture per action.
    - ``record_path``: JSON-lines file for the durable search record (optional).
    - ``failed_reward``: reward of a failed evaluation (default 0.0).
    - ``cache``: serve an architecture this env's record already holds a
      successful real evaluation of (this search's, or the resumed record
      file's) its recorded result, at no cost and without calling the
      evaluator; it is recorded as ``kind="cached"`` and not counted as
      activated (default True). False evaluates repeats again (fresh noisy
      re-training). Failed evaluations are never served: they are retried.

    The last-step ``info`` holds ``arch`` (compact string), ``accuracy``,
    ``latency`` (or None), ``throughput``, ``macs``, ``params``, ``reward``,
    ``activated`` (this step really evaluated the architecture), ``trusted``
    (the reward is the critic's prediction, nothing trained), ``cached`` (a
    repeat served from the record), ``cost``, ``failed`` and the evaluator's
    extras.

    The last-step ``info`` also holds ``evaluation``, the
    :class:`~fnas_env.evaluators.base.Evaluation` value itself (what a search
    record outside the env, e.g. :class:`wrappers.record.VecSearchRecord`, keeps).

    Hooks for wrappers and algorithms: :meth:`provide` hands the env the
    evaluation of the next architecture it completes (a critic's prediction, a
    result from a search record shared by several workers), so the evaluator is
    not called for it; it works through any wrapper stack and through
    ``VecEnv.env_method``. :meth:`pending_architecture` tells which
    architecture an action would complete, :meth:`is_cached` whether its result
    is already in this env's record (free), and :meth:`finish` completes the last
    step with a given :class:`Evaluation`; :meth:`tokens` gives the token
    sequence that replays an architecture.

    ## Example

    >>> import gymnasium as gym, fnas_env
    >>> env = gym.make("FNAS-NB201-v0", dataset="cifar10")
    >>> obs, info = env.reset(seed=0)
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        evaluator: Evaluator,
        reward: RewardConfig | None = None,
        one_shot: bool = False,
        record_path: str | os.PathLike | None = None,
        failed_reward: float = 0.0,
        render_mode: str | None = None,
        cache: bool = True,
    ):
        if not isinstance(evaluator, Evaluator):
            raise TypeError(f"evaluator must be an Evaluator, got {type(evaluator).__name__}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise _UnsupportedRenderMode(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.evaluator = evaluator
        self.search_space = evaluator.space
        self.reward_config = reward or RewardConfig()
        if self.reward_config.target is not None and evaluator.objective is None:
            raise ValueError(
                f"{type(evaluator).__name__} reports no latency/throughput; "
                "a target cannot be used (set target=None)"
            )
        self.one_shot = bool(one_shot)
        self.failed_reward = float(failed_reward)
        self.render_mode = render_mode
        self.record = SearchRecord(record_path)
        self.cache = bool(cache)
        self._cache: dict[Architecture, Evaluation] = self.record.results()

        self.num_choices = self.search_space.num_choices
        self.horizon = len(self.num_choices)
        self.observation_space, self.action_space = nas_spaces(self.search_space, self.one_shot)
        if not self.one_shot:
            self.num_tokens = int(self.action_space.n)
            self._start = self.search_space.max_choices
        self._position = 0
        self._choices: list[int] = []
        self._provided: tuple[Evaluation, float | None] | None = None

    # ---- Gymnasium API ----------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.record.seed = seed
        self._position = 0
        self._choices = []
        self._provided = None
        return self._obs(), {}

    def step(self, action):
        arch = self.pending_architecture(action)
        if arch is None:
            self._choices.append(self._choice(action))
            self._position += 1
            return self._obs(), 0.0, False, False, {}
        if self._provided is not None:
            (evaluation, reward), self._provided = self._provided, None
            return self.finish(action, evaluation, reward=reward)
        return self.finish(action, self.evaluate(arch))

    def close(self) -> None:
        """Close the evaluator too (e.g. a proxy evaluator deletes its temporary pool)."""
        self.evaluator.close()
        super().close()

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return f"position {self._position}/{self.horizon}, choices {self._choices}"
        return None

    # ---- hooks for wrappers and algorithms ------------------------------------------
    def pending_architecture(self, action) -> Architecture | None:
        """The architecture ``action`` completes, or None if it is not the last token."""
        if self.one_shot:
            choices = np.asarray(action, dtype=np.int64).reshape(-1)
            if choices.shape != (self.horizon,) or not self.action_space.contains(choices):
                raise ValueError(
                    f"one-shot action must be {self.horizon} ints with 0 <= a_i < "
                    f"{list(self.num_choices)}, got {action!r}"
                )
            return self.search_space.from_choices(choices.tolist())
        if self._position >= self.horizon:
            raise RuntimeError("episode is over: call reset() before step()")
        if self._position < self.horizon - 1:
            self._check_token(action)
            return None
        return self.search_space.from_choices([*self._choices, self._choice(action)])

    def provide(self, evaluation: Evaluation, reward: float | None = None) -> None:
        """Use ``evaluation`` for the next architecture this episode completes.

        The evaluator is not called for it: ``evaluation`` is scored (``reward``
        overrides the reward computed from it) and recorded as its kind says
        (``"trusted"`` for ``trusted=True``, ``"cached"`` for ``cached=True``).
        A rollout wrapper calls it through ``VecEnv.env_method("provide", ...,
        indices=[i])`` before stepping env ``i``'s last token: the UAC gate for a
        trusted architecture (the critic's reward), a search record shared by several
        workers for a repeat. :meth:`reset` forgets an unused one.
        """
        if not isinstance(evaluation, Evaluation):
            raise TypeError(f"provide() takes an Evaluation, got {type(evaluation).__name__}")
        self._provided = (evaluation, None if reward is None else float(reward))

    def is_cached(self, arch: Architecture) -> bool:
        """Whether :meth:`evaluate` serves ``arch`` from the record (False with ``cache=False``)."""
        return self.cache and arch in self._cache

    def evaluate(self, arch: Architecture) -> Evaluation:
        """Evaluate ``arch`` with the evaluator; a failure becomes a failed Evaluation.

        An architecture of the record (:meth:`is_cached`) gets its recorded
        Evaluation with ``cached=True`` and ``cost=0.0``; the evaluator is not called.
        """
        if self.is_cached(arch):
            return self._cache[arch].replace(cached=True, cost=0.0)
        start = time.perf_counter()
        try:
            evaluation = self.evaluator.evaluate(arch)
        except (ValueError, TypeError):
            raise  # a wrong architecture is the caller's bug, not a failed evaluation
        except Exception as exc:  # noqa: BLE001 - never crash a search on one architecture
            warnings.warn(f"evaluation of {arch} failed: {exc!r}", RuntimeWarning, stacklevel=2)
            return Evaluation(
                accuracy=0.0,
                cost=time.perf_counter() - start,
                failed=True,
                extras={"error": repr(exc)},
            )
        if evaluation.accuracy is None or not math.isfinite(evaluation.accuracy):
            return evaluation.replace(accuracy=0.0, failed=True)
        return evaluation

    def reward_of(self, evaluation: Evaluation) -> float:
        """MnasNet reward of an evaluation (``failed_reward`` if it failed)."""
        if evaluation.failed:
            return self.failed_reward
        measure = (
            evaluation.throughput
            if self.reward_config.objective == "throughput"
            else evaluation.latency
        )
        return mnas_reward(evaluation.accuracy, measure, self.reward_config)

    def finish(self, action, evaluation: Evaluation, reward: float | None = None):
        """Complete the last step with ``evaluation`` (real or predicted) and record it.

        ``reward`` overrides the reward computed from ``evaluation`` (a critic's
        predicted reward for a trusted sample, with ``evaluation.trusted=True``).
        """
        arch = self.pending_architecture(action)
        if arch is None:
            raise RuntimeError("finish() is only valid for the last token of an episode")
        reward, info = self.score(arch, evaluation, reward=reward)
        self._choices = list(arch.choices)
        self._position = self.horizon
        return self._obs(), reward, True, False, info

    def score(
        self,
        arch: Architecture,
        evaluation: Evaluation,
        kind: str | None = None,
        reward: float | None = None,
    ) -> tuple[float, dict[str, Any]]:
        """Reward and info of ``arch`` under ``evaluation``, appended to the record.

        Baselines that do not step token by token (random search, evolution)
        call ``score(arch, env.evaluate(arch))`` directly. ``kind`` defaults to
        ``"cached"`` for a result served from the record, ``"trusted"`` for a
        critic's prediction and ``"activated"`` for a real evaluation. A
        successful ``"activated"`` entry is kept, so a later repeat of ``arch``
        is served from the record.
        """
        reward = float(self.reward_of(evaluation) if reward is None else reward)
        kind = kind or record_kind(evaluation)
        self.record.append(arch, evaluation, reward, kind, wall_time=evaluation.cost or 0.0)
        if kind == "activated" and not evaluation.failed:
            self._cache[arch] = evaluation.replace(cached=False)
        info: dict[str, Any] = dict(evaluation.extras)
        info.update(
            arch=self.search_space.to_string(arch),
            architecture=arch,
            accuracy=evaluation.accuracy,
            latency=evaluation.latency,
            throughput=evaluation.throughput,
            macs=evaluation.macs,
            params=evaluation.params,
            reward=reward,
            activated=kind == "activated",
            trusted=bool(evaluation.trusted),
            cached=bool(evaluation.cached),
            cost=evaluation.cost,
            failed=bool(evaluation.failed),
            evaluation=evaluation,
        )
        return reward, info

    def tokens(self, arch: Architecture) -> tuple[int, ...]:
        """Token sequence that replays ``arch`` (one-shot: a single MultiDiscrete action)."""
        return self.search_space.to_tokens(arch)

    def action_masks(self) -> np.ndarray:
        """Valid actions now: exactly one token per choice of the current decision."""
        if self.one_shot:
            return np.ones(sum(self.num_choices), dtype=bool)
        mask = np.zeros(self.num_tokens, dtype=bool)
        mask[: self.num_choices[min(self._position, self.horizon - 1)]] = True
        return mask

    @property
    def counters(self):
        return self.record.counters

    # ---- internals ------------------------------------------------------------------
    def _check_token(self, action) -> None:
        token = np.asarray(action)
        integral = token.ndim == 0 and (
            np.issubdtype(token.dtype, np.integer)
            or (np.issubdtype(token.dtype, np.floating) and float(token).is_integer())
        )
        if not integral or not self.action_space.contains(np.int64(token)):
            raise ValueError(f"token must be an int in [0, {self.num_tokens}), got {action!r}")

    def _choice(self, action) -> int:
        self._check_token(action)
        return int(action) % self.num_choices[self._position]

    def _obs(self) -> np.ndarray:
        if self.one_shot:
            return np.zeros(1, dtype=np.float32)
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        obs[self._choices[-1] if self._choices else self._start] = 1.0
        obs[self._start + 1 + min(self._position, self.horizon - 1)] = 1.0
        return obs
