"""Episode-wise recurrent rollout buffer with per-step weights (for FNAS's RecurrentPPO).

SB3's :class:`~sb3_contrib.common.recurrent.buffers.RecurrentRolloutBuffer` writes one
row for all envs at once, so one env's episode can be neither dropped (UAC batch rule)
nor inserted (AEB replay). This buffer stores *whole episodes* back to back in a single
column instead: an episode is accepted or discarded when it ends, replayed episodes are
appended after the new ones, and every step carries a weight (1 for new samples, the
importance weight times the truncated off-policy ratio for replays) that the FNAS
``train()`` uses as ``sum(w * loss) / sum(w)``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.type_aliases import RNNStates

__all__ = ["Episode", "WeightedRecurrentRolloutBuffer", "WeightedRecurrentRolloutBufferSamples"]


class WeightedRecurrentRolloutBufferSamples(NamedTuple):
    """:class:`RecurrentRolloutBufferSamples` plus ``weights`` (padded steps weigh 0) and
    ``replayed`` (1.0 for the steps of replayed episodes, else 0.0)."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    lstm_states: RNNStates
    episode_starts: th.Tensor
    mask: th.Tensor
    weights: th.Tensor
    replayed: th.Tensor


class Episode(NamedTuple):
    """One whole episode as the buffer stores it (``T`` steps, first step starts it).

    ``observations`` (T, *obs_shape), ``actions`` (T, action_dim), ``rewards``,
    ``values``, ``log_probs``, ``weights`` (T,), and the LSTM states *before* each step,
    ``lstm_states`` = (h_pi, c_pi, h_vf, c_vf), each (T, n_layers, hidden) or None for
    zeros (an episode start resets the LSTM, so zeros are exact for whole episodes).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    values: np.ndarray
    log_probs: np.ndarray
    weights: np.ndarray
    lstm_states: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


_STEP_ARRAYS = (
    "observations",
    "actions",
    "rewards",
    "values",
    "log_probs",
    "weights",
    "replayed",
    "episode_starts",
    "advantages",
    "returns",
    "hidden_states_pi",
    "cell_states_pi",
    "hidden_states_vf",
    "cell_states_vf",
)


class WeightedRecurrentRolloutBuffer(RecurrentRolloutBuffer):
    """A recurrent rollout buffer of whole episodes, each step with a loss weight.

    Layout: one column (``n_envs = 1``) holding the episodes back to back; ``pos`` is the
    number of steps written. Capacity grows when needed, so a batch may hold more steps
    than planned (episodes that end in the same vectorized step as the one that filled
    the batch are kept: they were paid for). Returns and advantages are computed per
    episode (every stored episode is complete). :meth:`get` shuffles whole episodes
    into minibatches of about ``batch_size`` steps, so every sequence starts at an
    episode start and no padding is needed for equal-length episodes.

    Args:
        buffer_size: initial capacity in steps (grows on demand).
        observation_space: the env's observation space (``Box``; Dict is not supported).
        action_space: the env's action space.
        hidden_state_shape: ``(buffer_size, n_layers, 1, hidden_size)`` of the LSTM.
        device: torch device of the returned samples (default ``"auto"``).
        gae_lambda: GAE lambda (default 1).
        gamma: discount factor (default 0.99).
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden_state_shape: tuple[int, int, int, int],
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
    ):
        if isinstance(observation_space, spaces.Dict):
            raise ValueError(
                "WeightedRecurrentRolloutBuffer supports Box/Discrete observations, not Dict; "
                "flatten the observation (gymnasium.wrappers.FlattenObservation)"
            )
        if hidden_state_shape[2] != 1:
            raise ValueError(f"hidden_state_shape must have n_envs=1, got {hidden_state_shape}")
        self._initial_size = int(buffer_size)
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            hidden_state_shape,
            device,
            gae_lambda=gae_lambda,
            gamma=gamma,
            n_envs=1,
        )

    # ---- filling ----------------------------------------------------------------------
    def reset(self) -> None:
        self.buffer_size = self._initial_size
        self.hidden_state_shape = (self.buffer_size, *self.hidden_state_shape[1:])
        super().reset()
        self.weights = np.zeros((self.buffer_size, 1), dtype=np.float32)
        self.replayed = np.zeros((self.buffer_size, 1), dtype=np.float32)
        self.episode_bounds: list[tuple[int, int]] = []  # [start, end) per episode
        self.episode_kinds: list[str] = []

    def add(self, *args, **kwargs) -> None:
        raise NotImplementedError(
            "WeightedRecurrentRolloutBuffer stores whole episodes: use add_episode()"
        )

    def add_episode(self, episode: Episode, kind: str = "activated") -> None:
        """Append one whole episode (grows the arrays if it does not fit).

        ``kind`` labels it: ``"activated"``, ``"cached"``, ``"trusted"`` or ``"replayed"``
        (replayed steps are flagged in the samples' ``replayed``).
        """
        if self.generator_ready:
            raise RuntimeError("buffer already prepared for sampling: reset() before adding")
        length = len(episode.rewards)
        if length == 0:
            raise ValueError("an episode needs at least one step")
        self._ensure_capacity(self.pos + length)
        s = slice(self.pos, self.pos + length)
        self.observations[s, 0] = np.asarray(episode.observations).reshape(
            (length, *self.obs_shape)
        )
        self.actions[s, 0] = np.asarray(episode.actions).reshape((length, self.action_dim))
        self.rewards[s, 0] = episode.rewards
        self.values[s, 0] = np.asarray(episode.values).reshape(length)
        self.log_probs[s, 0] = np.asarray(episode.log_probs).reshape(length)
        self.weights[s, 0] = episode.weights
        self.replayed[s, 0] = float(kind == "replayed")
        self.episode_starts[s, 0] = 0.0
        self.episode_starts[self.pos, 0] = 1.0
        names = ("hidden_states_pi", "cell_states_pi", "hidden_states_vf", "cell_states_vf")
        for name, states in zip(names, episode.lstm_states or (None,) * 4):
            getattr(self, name)[s, :, 0] = 0.0 if states is None else states
        self.episode_bounds.append((self.pos, self.pos + length))
        self.episode_kinds.append(kind)
        self.pos += length
        self.full = True

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= self.buffer_size:
            return
        new_size = max(needed, 2 * self.buffer_size)
        for name in (*_STEP_ARRAYS,):
            old = getattr(self, name)
            grown = np.zeros((new_size, *old.shape[1:]), dtype=old.dtype)
            grown[: self.buffer_size] = old
            setattr(self, name, grown)
        self.buffer_size = new_size
        self.hidden_state_shape = (new_size, *self.hidden_state_shape[1:])

    @property
    def n_episodes(self) -> int:
        return len(self.episode_bounds)

    def episode_slices(self) -> list[slice]:
        """Row slices of the stored episodes, in insertion order."""
        return [slice(a, b) for a, b in self.episode_bounds]

    # ---- returns ---------------------------------------------------------------------
    def compute_returns_and_advantage(
        self, last_values: th.Tensor | None = None, dones: np.ndarray | None = None
    ) -> None:
        """GAE(lambda) per stored episode; every episode is complete, so nothing bootstraps.

        ``last_values``/``dones`` are accepted for signature compatibility and ignored.
        """
        for start, end in self.episode_bounds:
            last_gae = 0.0
            for step in reversed(range(start, end)):
                next_value = self.values[step + 1, 0] if step + 1 < end else 0.0
                delta = self.rewards[step, 0] + self.gamma * next_value - self.values[step, 0]
                last_gae = delta + self.gamma * self.gae_lambda * last_gae
                self.advantages[step, 0] = last_gae
            self.returns[start:end] = self.advantages[start:end] + self.values[start:end]

    # ---- sampling --------------------------------------------------------------------
    def get(
        self, batch_size: int | None = None
    ) -> Generator[WeightedRecurrentRolloutBufferSamples, None, None]:
        """Minibatches of whole, shuffled episodes of about ``batch_size`` steps each.

        An episode is never split; a minibatch closes once it holds ``batch_size`` steps
        or more (so ``batch_size`` a multiple of the episode length gives exact sizes).
        ``None``: one batch with everything.
        """
        if self.pos == 0:
            raise RuntimeError("the buffer holds no episode")
        if not self.generator_ready:
            for name in (
                "hidden_states_pi",
                "cell_states_pi",
                "hidden_states_vf",
                "cell_states_vf",
            ):
                self.__dict__[name] = self.__dict__[name][: self.pos].swapaxes(1, 2)
            for name in _STEP_ARRAYS:
                if not name.endswith(("_pi", "_vf")):
                    self.__dict__[name] = self.__dict__[name][: self.pos]
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.buffer_size = self.pos
            self.generator_ready = True

        batch_size = batch_size or self.pos
        env_change = np.zeros((self.pos, 1))
        order = np.random.permutation(len(self.episode_bounds))
        chunk: list[np.ndarray] = []
        size = 0
        for i in order:
            start, end = self.episode_bounds[i]
            chunk.append(np.arange(start, end))
            size += end - start
            if size >= batch_size:
                yield self._chunk_samples(chunk, env_change)
                chunk, size = [], 0
        if chunk:
            yield self._chunk_samples(chunk, env_change)

    def _chunk_samples(
        self, chunk: list[np.ndarray], env_change: np.ndarray
    ) -> WeightedRecurrentRolloutBufferSamples:
        """The samples of whole episodes (each an index array); episodes of one length
        need no padding, so their tensors are the rows in order (the same values
        sb3-contrib's per-sequence padding gives, without its per-episode copies)."""
        batch_inds = np.concatenate(chunk)
        length = len(chunk[0])
        if any(len(episode) != length for episode in chunk):
            return self._get_samples(batch_inds, env_change)
        self.seq_start_indices = np.arange(0, len(batch_inds), length)

        def rows(array: np.ndarray) -> th.Tensor:
            return th.tensor(array[batch_inds], device=self.device)

        def states(array: np.ndarray) -> th.Tensor:
            return self.to_torch(array[batch_inds][self.seq_start_indices].swapaxes(0, 1))

        return WeightedRecurrentRolloutBufferSamples(
            observations=rows(self.observations).reshape((len(batch_inds), *self.obs_shape)),
            actions=rows(self.actions).reshape((len(batch_inds), *self.actions.shape[1:])),
            old_values=rows(self.values).flatten(),
            old_log_prob=rows(self.log_probs).flatten(),
            advantages=rows(self.advantages).flatten(),
            returns=rows(self.returns).flatten(),
            lstm_states=RNNStates(
                (
                    states(self.hidden_states_pi).contiguous(),
                    states(self.cell_states_pi).contiguous(),
                ),
                (
                    states(self.hidden_states_vf).contiguous(),
                    states(self.cell_states_vf).contiguous(),
                ),
            ),
            episode_starts=rows(self.episode_starts).flatten(),
            mask=th.tensor(np.ones_like(self.returns[batch_inds]), device=self.device).flatten(),
            weights=rows(self.weights).flatten(),
            replayed=rows(self.replayed).flatten(),
        )

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env_change: np.ndarray, env=None
    ) -> WeightedRecurrentRolloutBufferSamples:
        samples = super()._get_samples(batch_inds, env_change, env)
        return WeightedRecurrentRolloutBufferSamples(
            *samples,
            weights=self.pad_and_flatten(self.weights[batch_inds]),
            replayed=self.pad_and_flatten(self.replayed[batch_inds]),
        )
