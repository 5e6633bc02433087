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

import numpy as np

from fnas_env.arch import Architecture
from fnas_env.spaces import SearchSpace

__all__ = ["PendingArchitectures"]


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
