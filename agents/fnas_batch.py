"""FNAS's UAC batch rule: which finished episodes a rollout keeps.

:class:`UACBatchRuleMixin` gives :class:`~agents.fnas_ppo.FNASRecurrentPPO` its
``collect_rollouts``. Every env's running episode is staged step by step and, when
it ends, accepted into the batch or discarded. An episode whose reward came from
the critic (``info["trusted"]``, a *trusted* sample) is accepted only
while trusted episodes fill at most ``max_trusted_fraction`` of the batch's new
episodes; extra trusted episodes are thrown away and sampling goes on until
untrusted ones (really evaluated, or served from the search record as *cached*)
fill the batch, as in the paper. With a gate that trusts more than half of the
architectures (the UAC gate's default) every batch holds exactly half trusted
episodes. Resampling is bounded: once the discarded steps reach
``max_resample_factor`` x the batch, trust is turned off on the UAC wrapper
(:meth:`agents.seam.SearchEnvs.set_trust`) for the rest of the rollout and the batch is counted
as ``unfilled``. Accepted episodes go into a
:class:`~agents.fnas_buffer.WeightedRecurrentRolloutBuffer`; AEB replays
(:mod:`agents.fnas_replay`) are appended once the new episodes fill the batch.
"""

from __future__ import annotations

import warnings
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from agents.fnas_buffer import Episode, WeightedRecurrentRolloutBuffer
from agents.seam import SearchEnvs, episode_kind

__all__ = ["UACBatchRuleMixin", "RolloutStats", "EpisodeStage"]


@dataclass
class RolloutStats:
    """What one rollout kept, discarded and replayed (logged under ``fnas/``)."""

    target_steps: int
    replay_slots: int | None = None  # replays planned at the start ("share" mode)
    new_episodes: int = 0
    accepted_steps: int = 0
    trusted: int = 0
    trusted_steps: int = 0
    discarded: int = 0
    discarded_steps: int = 0
    trust_off: bool = False
    force_accept: bool = False
    replayed: int = 0
    importance: list[float] = field(default_factory=list)
    rho: list[float] = field(default_factory=list)


class EpisodeStage:
    """The running episode of one env, step by step."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget the staged steps."""
        self.obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.values: list[float] = []
        self.log_probs: list[float] = []
        self.states: list[tuple[np.ndarray, ...]] = []

    def __len__(self) -> int:
        return len(self.rewards)

    def pop(self) -> Episode:
        """The staged steps as one :class:`~agents.fnas_buffer.Episode` (weights 1); clears."""
        n = len(self)
        episode = Episode(
            observations=np.stack(self.obs),
            actions=np.stack(self.actions).reshape(n, -1),
            rewards=np.asarray(self.rewards, dtype=np.float32),
            values=np.asarray(self.values, dtype=np.float32),
            log_probs=np.asarray(self.log_probs, dtype=np.float32),
            weights=np.ones(n, dtype=np.float32),
            lstm_states=tuple(np.stack(s) for s in zip(*self.states)),  # type: ignore[arg-type]
        )
        self.clear()
        return episode


class UACBatchRuleMixin:
    """``collect_rollouts`` with the UAC batch rule, for :class:`~sb3_contrib.RecurrentPPO`.

    Mixed into :class:`~agents.fnas_ppo.FNASRecurrentPPO`, which sets the attributes
    it reads (``max_trusted_fraction``, ``max_resample_factor``, ``fnas_counters``,
    ``_staged``, ``_trust_disabled``, ``_episode_length``, ``_seam``) and provides the replay
    (:class:`~agents.fnas_replay.AEBReplayMixin`) and ``_log_rollout``.
    """

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """Fill the buffer with whole accepted episodes (UAC rule), then with AEB replays.

        Returns False if a callback stopped training, as in SB3.
        """
        if not isinstance(rollout_buffer, WeightedRecurrentRolloutBuffer):
            raise TypeError(
                f"FNASRecurrentPPO needs a WeightedRecurrentRolloutBuffer, got "
                f"{type(rollout_buffer).__name__}"
            )
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        if self._staged is None or len(self._staged) != env.num_envs:
            self._staged = [EpisodeStage() for _ in range(env.num_envs)]
        if self._trust_disabled and self._envs(env).set_trust(True):
            self._trust_disabled = False

        callback.on_rollout_start()
        batch_steps = n_rollout_steps * env.num_envs
        replay_steps = self.planned_replay_steps(batch_steps)
        stats = RolloutStats(
            target_steps=batch_steps - replay_steps,
            replay_slots=replay_steps // self._episode_length if replay_steps else 0,
        )
        lstm_states = deepcopy(self._last_lstm_states)
        n_steps = 0
        dones = np.zeros(env.num_envs, dtype=bool)

        while stats.accepted_steps < stats.target_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)

            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)
                episode_starts = th.tensor(
                    self._last_episode_starts, dtype=th.float32, device=self.device
                )
                actions, values, log_probs, lstm_states = self.policy(
                    obs_tensor, lstm_states, episode_starts
                )
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs

            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1

            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            rewards = np.asarray(rewards, dtype=np.float32).copy()
            for idx, done_ in enumerate(dones):
                if (
                    done_
                    and infos[idx].get("terminal_observation") is not None
                    and infos[idx].get("TimeLimit.truncated", False)
                ):
                    terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with th.no_grad():
                        terminal_lstm_state = (
                            lstm_states.vf[0][:, idx : idx + 1, :].contiguous(),
                            lstm_states.vf[1][:, idx : idx + 1, :].contiguous(),
                        )
                        starts = th.tensor([False], dtype=th.float32, device=self.device)
                        terminal_value = self.policy.predict_values(
                            terminal_obs, terminal_lstm_state, starts
                        )[0]
                    rewards[idx] += self.gamma * float(terminal_value)

            self._stage_step(actions, rewards, values, log_probs)
            for idx in np.flatnonzero(dones):
                self._end_episode(env, int(idx), infos[idx], rollout_buffer, stats)

            self._last_obs = new_obs
            self._last_episode_starts = dones
            self._last_lstm_states = lstm_states

        self._replay(env, rollout_buffer, stats)
        rollout_buffer.compute_returns_and_advantage()
        self._log_rollout(env, stats)
        callback.on_rollout_end()
        return True

    def _stage_step(
        self, actions: np.ndarray, rewards: np.ndarray, values: th.Tensor, log_probs: th.Tensor
    ) -> None:
        """Append this step of every env to its staged episode (LSTM states before the step)."""
        states = [s.cpu().numpy() for s in (*self._last_lstm_states.pi, *self._last_lstm_states.vf)]
        obs = np.asarray(self._last_obs)
        values_np = values.flatten().cpu().numpy()
        log_probs_np = log_probs.flatten().cpu().numpy()
        for i, stage in enumerate(self._staged or ()):
            if self._last_episode_starts[i]:
                stage.clear()  # leftovers of an episode cut short (a callback stopped learn)
            if len(stage) >= self.n_steps:
                raise ValueError(
                    f"an episode ran longer than n_steps={self.n_steps}: FNASRecurrentPPO "
                    "keeps whole episodes, set n_steps to a multiple of the episode length"
                )
            stage.obs.append(obs[i].copy())
            stage.actions.append(np.asarray(actions[i]).copy())
            stage.rewards.append(float(rewards[i]))
            stage.values.append(float(values_np[i]))
            stage.log_probs.append(float(log_probs_np[i]))
            stage.states.append(tuple(s[:, i, :] for s in states))

    def _end_episode(
        self,
        env: VecEnv,
        idx: int,
        info: dict[str, Any],
        buffer: WeightedRecurrentRolloutBuffer,
        stats: RolloutStats,
    ) -> None:
        """Accept env ``idx``'s finished episode into the batch or discard it (UAC rule)."""
        assert self._staged is not None
        episode = self._staged[idx].pop()
        length = len(episode.rewards)
        self._episode_length = length
        kind = episode_kind(info)
        self.fnas_counters.aside += int(info.get("aside_activated", 0))
        replaced = kind == "trusted" and bool(info.get("aside_activated", 0))
        if replaced and getattr(self, "keep_replaced", False):  # paid for: kept, no quota
            self.fnas_counters.trusted += 1
        elif kind == "trusted":
            quota = self.max_trusted_fraction * stats.target_steps
            over = self.max_trusted_fraction < 1.0 and stats.trusted_steps + length > quota + 1e-9
            if over and not stats.force_accept:
                stats.discarded += 1
                stats.discarded_steps += length
                self.fnas_counters.discarded_trusted += 1
                if (
                    stats.discarded_steps >= self.max_resample_factor * stats.target_steps
                    and not stats.trust_off
                ):
                    self._stop_trusting(env, stats)
                return
            stats.trusted += 1
            stats.trusted_steps += length
            self.fnas_counters.trusted += 1
        else:
            setattr(self.fnas_counters, kind, getattr(self.fnas_counters, kind) + 1)
            if kind == "activated":  # a cached repeat was offered when first evaluated
                self._remember(env, info, episode)
        buffer.add_episode(episode, kind)
        stats.new_episodes += 1
        stats.accepted_steps += length

    def _stop_trusting(self, env: VecEnv, stats: RolloutStats) -> None:
        stats.trust_off = True
        self.fnas_counters.unfilled_batches += 1
        if self._envs(env).set_trust(False):
            self._trust_disabled = True
            return
        stats.force_accept = True
        warnings.warn(
            "trusted episodes keep coming but the env has no set_trust_enabled() (the UAC "
            "wrapper's): accepting them above max_trusted_fraction for this rollout",
            RuntimeWarning,
            stacklevel=3,
        )

    def _envs(self, env: VecEnv) -> SearchEnvs:
        """The seam to ``env`` (made once per env the algorithm steps)."""
        if self._seam is None or self._seam.venv is not env:
            self._seam = SearchEnvs(env)
        return self._seam
