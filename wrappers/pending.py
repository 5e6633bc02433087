"""Which architecture each env of a VecEnv completes: the rollout wrappers' view of a step.

A rollout wrapper (:class:`wrappers.uac.VecUncertaintyGate`,
:class:`wrappers.record.VecSearchRecord`) decides about an architecture *before*
its evaluation is paid for, so it must know which architecture an env's next
action completes. It follows the episodes from the actions it forwards and the
``dones`` it sees, with the search space's own decoding, and never asks the
workers (no round trip, no ``env.unwrapped``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from fnas_env.arch import Architecture
from fnas_env.spaces import SearchSpace

__all__ = ["PendingArchitectures", "VecArchitectureWrapper"]


class PendingArchitectures:
    """The running episode of every env of a VecEnv of NAS envs.

    Sequential mode: token ``a`` at position ``p`` selects choice ``a % n_p`` (the
    NAS env's rule), and the token at position ``T - 1`` completes the
    architecture. One-shot mode: every action is a whole architecture.

    Args:
        space: the envs' search space.
        num_envs: envs of the VecEnv.
        one_shot: whether the envs take one ``MultiDiscrete`` action per architecture.

    Example:
        >>> pending = PendingArchitectures(space, venv.num_envs, one_shot=False)
        >>> completed = pending.completed_by(actions)  # before venv.step_async(actions)
        >>> pending.advance(actions, dones)             # after venv.step_wait()
    """

    def __init__(self, space: SearchSpace, num_envs: int, one_shot: bool = False) -> None:
        self.space = space
        self.num_envs = int(num_envs)
        self.one_shot = bool(one_shot)
        self.num_choices = tuple(space.num_choices)
        self._choices: list[list[int]] = [[] for _ in range(self.num_envs)]

    def reset(self, indices: Sequence[int] | None = None) -> None:
        """Start new episodes in ``indices`` (default: every env)."""
        for i in range(self.num_envs) if indices is None else indices:
            self._choices[i] = []

    def completed_by(self, actions: np.ndarray) -> list[Architecture | None]:
        """Per env, the architecture its action in ``actions`` completes, or None."""
        out: list[Architecture | None] = []
        for i in range(self.num_envs):
            if self.one_shot:
                choices = np.asarray(actions[i], dtype=np.int64).reshape(-1).tolist()
                out.append(self._architecture(choices))
                continue
            position = len(self._choices[i])
            if position < len(self.num_choices) - 1:
                out.append(None)
                continue
            choice = int(np.asarray(actions[i]).reshape(-1)[0]) % self.num_choices[position]
            out.append(self._architecture([*self._choices[i], choice]))
        return out

    def advance(self, actions: np.ndarray, dones: np.ndarray) -> None:
        """Take the step: append each env's choice, start a new episode where it ended."""
        for i in range(self.num_envs):
            if dones[i] or self.one_shot:
                self._choices[i] = []
                continue
            position = len(self._choices[i])
            if position < len(self.num_choices):
                token = int(np.asarray(actions[i]).reshape(-1)[0])
                self._choices[i].append(token % self.num_choices[position])

    def _architecture(self, choices: list[int]) -> Architecture | None:
        if len(choices) != len(self.num_choices) or any(
            not 0 <= c < n for c, n in zip(choices, self.num_choices)
        ):
            return None  # an invalid action: the env raises its own error for it
        return self.space.from_choices(choices)


class VecArchitectureWrapper(VecEnvWrapper):
    """A ``VecEnvWrapper`` that acts on the architectures its envs complete.

    Subclasses implement :meth:`before_completion` (called in ``step_async`` for every
    env whose action completes an architecture, before the workers are stepped) and
    :meth:`after_completion` (called in ``step_wait`` with that env's ``info`` and
    reward). The episodes are followed with :class:`PendingArchitectures`.
    """

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        if not venv.has_attr("search_space"):
            raise TypeError(
                f"{type(self).__name__} wraps a VecEnv of fnas_env NAS envs (they have a "
                "'search_space' attribute)"
            )
        self.search_space = venv.get_attr("search_space", indices=[0])[0]
        one_shot = bool(venv.get_attr("one_shot", indices=[0])[0])
        self._pending = PendingArchitectures(self.search_space, self.num_envs, one_shot)
        self._actions: np.ndarray | None = None
        self._completing: list[Architecture | None] = [None] * self.num_envs

    def before_completion(self, index: int, arch: Architecture) -> None:
        """Env ``index``'s action completes ``arch``; its step has not been taken."""
        return None

    def after_completion(
        self, index: int, arch: Architecture, info: dict[str, Any], reward: float
    ) -> None:
        """Env ``index`` completed ``arch``; ``info`` and ``reward`` are its last step's."""
        return None

    def reset(self):
        self._pending.reset()
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self._completing = self._pending.completed_by(self._actions)
        for i, arch in enumerate(self._completing):
            if arch is not None:
                self.before_completion(i, arch)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        for i, arch in enumerate(self._completing):
            if arch is not None and dones[i]:
                self.after_completion(i, arch, infos[i], float(rewards[i]))
        if self._actions is not None:
            self._pending.advance(self._actions, dones)
        return obs, rewards, dones, infos
