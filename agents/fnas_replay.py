"""FNAS's AEB replay: experience-buffer episodes in the rollout, with their weights.

:class:`AEBReplayMixin` gives :class:`~agents.fnas_ppo.FNASRecurrentPPO` its replay.
Every really evaluated episode is offered to the experience buffer
(:class:`~agents.experience.ExperienceBuffer`). At the start of a rollout up to
``max_replay_fraction`` of the batch's slots are kept for episodes drawn from it
(``replay_mode="share"``: new episodes fill only the rest). Their values are
recomputed with the current policy and every replayed step gets the buffer's
importance weight ``S_i = (N P_i)^-beta``; PPO's clipped ratio is taken against the
behaviour policy that sampled the replay (``off_policy_correction``), so a replay
stops pushing once the policy has moved towards it. Each replay adds a
``"replayed"`` entry, at no cost, to the search record.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from agents.experience import Experience
from agents.fnas_batch import RolloutStats
from agents.fnas_buffer import Episode, WeightedRecurrentRolloutBuffer
from fnas_env.arch import Architecture

__all__ = ["AEBReplayMixin", "OFF_POLICY_CORRECTIONS", "REPLAY_MODES"]


#: ``"none"``: a replayed step weighs the buffer's importance weight S_i only;
#: ``"episode"``: times min(rho_max, prod_t pi_t/mu_t) (the architecture's probability
#: ratio); ``"step"``: times min(rho_max, pi_t/mu_t) per step.
#: ``"clip"``: the behaviour policy's log-probs are the replay's ``old_log_prob``, so PPO's
#: clipped ratio pi/mu stops a replay from pushing once the policy has moved 1 + clip_range
#: past the policy that sampled it.
OFF_POLICY_CORRECTIONS = ("none", "episode", "step", "clip")
#: ``"share"``: replayed episodes take up to ``max_replay_fraction`` of the fixed batch of
#: ``n_steps x n_envs`` steps and new episodes fill the rest, so a batch needs fewer new
#: samples (the paper's "each batch at most 50% exploited samples"); ``"extra"``: a full
#: batch of new episodes, replays appended on top (the batch grows, new samples per
#: update do not shrink).
REPLAY_MODES = ("share", "extra")


class AEBReplayMixin:
    """AEB replay for :class:`~sb3_contrib.RecurrentPPO`: remember, sample, weight, append.

    Mixed into :class:`~agents.fnas_ppo.FNASRecurrentPPO`, which sets the attributes
    it reads (``experience_buffer``, ``max_replay_fraction``, ``rho_max``,
    ``off_policy_correction``, ``replay_mode``, ``_replay_rng``, ``_env_rewards``,
    ``_episode_length``), the seam to the envs (``_envs``) and ``search_progress``.
    """

    def _remember(self, env: VecEnv, info: dict[str, Any], episode: Episode) -> None:
        """Add a really evaluated episode to the experience buffer."""
        if self.experience_buffer is None or info.get("failed", False):
            return
        arch = info.get("architecture")
        if not isinstance(arch, Architecture):
            return
        experience = Experience(
            arch=arch,
            tokens=tuple(int(a) for a in np.asarray(episode.actions).reshape(-1)),
            observations=np.asarray(episode.observations, dtype=np.float32),
            reward=float(np.sum(episode.rewards)),
            log_probs=np.asarray(episode.log_probs, dtype=np.float32),
        )
        if self.experience_buffer.add(experience):
            self.fnas_counters.experiences_added += 1
        self._env_rewards[str(experience.arch)] = float(info.get("reward", experience.reward))

    def evaluate_episodes(
        self, observations: list[np.ndarray], actions: list[np.ndarray]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Current values and log-probs of whole episodes (LSTM started from zeros).

        Args:
            observations: per episode, an array (T, *obs_shape).
            actions: per episode, the actions taken, (T,) or (T, action_dim).

        Returns:
            ``(values, log_probs)``: per episode, arrays (T,). Equal to the rollout's values
            and log-probs while the policy is unchanged.
        """
        if len(observations) != len(actions):
            raise ValueError(
                f"got {len(observations)} observation sequences and {len(actions)} action ones"
            )
        values_out: list[np.ndarray] = [np.empty(0)] * len(observations)
        log_probs_out: list[np.ndarray] = [np.empty(0)] * len(observations)
        by_length: dict[int, list[int]] = {}
        for i, obs in enumerate(observations):
            by_length.setdefault(len(obs), []).append(i)
        lstm = self.policy.lstm_actor
        for length, idxs in by_length.items():
            k = len(idxs)
            obs = np.stack([np.asarray(observations[i]) for i in idxs]).reshape(
                (k * length, *self.observation_space.shape)
            )
            act = np.stack([np.asarray(actions[i]).reshape(length, -1) for i in idxs])
            act_t = th.as_tensor(act.reshape(k * length, -1), device=self.device)
            if isinstance(self.action_space, spaces.Discrete):
                act_t = act_t.long().flatten()
            starts = np.zeros((k, length), dtype=np.float32)
            starts[:, 0] = 1.0
            zeros = th.zeros((lstm.num_layers, k, lstm.hidden_size), device=self.device)
            states = RNNStates((zeros, zeros), (zeros, zeros))
            with th.no_grad():
                values, log_prob, _ = self.policy.evaluate_actions(
                    obs_as_tensor(obs, self.device),
                    act_t,
                    states,
                    th.as_tensor(starts.reshape(-1), device=self.device),
                )
            values_np = values.flatten().cpu().numpy().reshape(k, length)
            log_prob_np = log_prob.flatten().cpu().numpy().reshape(k, length)
            for j, i in enumerate(idxs):
                values_out[i], log_probs_out[i] = values_np[j], log_prob_np[j]
        return values_out, log_probs_out

    def planned_replay_steps(self, batch_steps: int) -> int:
        """Steps of a ``batch_steps`` batch kept for replays (``replay_mode="share"``), else 0.

        ``k = min(floor(max_replay_fraction x episodes per batch), len(buffer))`` episodes
        of the episode length (the env's horizon; for an env without one, the length
        seen so far, 0 before the first episode has ended).
        """
        if (
            self.replay_mode != "share"
            or self.experience_buffer is None
            or self.max_replay_fraction <= 0
            or not self._episode_length
        ):
            return 0
        episodes = batch_steps // self._episode_length
        k = min(math.floor(self.max_replay_fraction * episodes + 1e-9), len(self.experience_buffer))
        return max(0, k) * self._episode_length

    def replay_budget(self, new_episodes: int) -> int:
        """Most replayed episodes allowed next to ``new_episodes`` new ones (and the AEB size)."""
        if self.experience_buffer is None or self.max_replay_fraction <= 0:
            return 0
        f = self.max_replay_fraction
        k = math.floor(f / (1.0 - f) * new_episodes + 1e-9)
        return max(0, min(k, len(self.experience_buffer)))

    def _replay(
        self, env: VecEnv, buffer: WeightedRecurrentRolloutBuffer, stats: RolloutStats
    ) -> None:
        """Append up to ``replay_budget`` AEB episodes with recomputed log-probs and weights."""
        k = self.replay_budget(stats.new_episodes)
        if self.replay_mode == "share" and stats.replay_slots is not None:
            k = min(k, stats.replay_slots)
        if k == 0:
            return
        samples = self.experience_buffer.sample(k, self.search_progress, self._replay_rng)
        if not samples:
            return
        observations = [np.asarray(exp.observations, dtype=np.float32) for exp, _ in samples]
        actions = [
            np.asarray(exp.tokens).reshape(len(obs), -1)
            for (exp, _), obs in zip(samples, observations)
        ]
        values, log_probs = self.evaluate_episodes(observations, actions)
        log_rho_max = math.log(self.rho_max)
        for (exp, importance), obs, act, value, log_prob in zip(
            samples, observations, actions, values, log_probs
        ):
            log_ratio = log_prob.astype(np.float64) - np.asarray(exp.log_probs, dtype=np.float64)
            if self.off_policy_correction == "episode":
                rho = np.full(len(obs), math.exp(min(log_rho_max, float(log_ratio.sum()))))
            elif self.off_policy_correction == "step":
                rho = np.exp(np.minimum(log_rho_max, log_ratio))
            else:
                rho = np.ones(len(obs))
            if self.off_policy_correction == "clip":  # PPO's clipped ratio pi / mu
                log_prob = np.asarray(exp.log_probs, dtype=np.float32)
            rewards = np.zeros(len(obs), dtype=np.float32)
            rewards[-1] = exp.reward
            buffer.add_episode(
                Episode(
                    observations=obs,
                    actions=act,
                    rewards=rewards,
                    values=value,
                    log_probs=log_prob,
                    weights=(rho * float(importance)).astype(np.float32),
                ),
                "replayed",
            )
            stats.importance.append(float(importance))
            stats.rho.append(float(rho.mean()))
            self._record_replay(env, exp)
        stats.replayed = len(samples)
        self.fnas_counters.replayed += len(samples)

    def _record_replay(self, env: VecEnv, exp: Any) -> None:
        """Log the replay in the search record (:meth:`agents.seam.SearchEnvs.log_replay`)."""
        if not isinstance(exp.arch, Architecture):
            return
        reward = self._env_rewards.get(str(exp.arch), float(exp.reward))
        self._envs(env).log_replay(exp.arch, reward)
