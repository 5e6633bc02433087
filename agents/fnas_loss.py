"""FNAS's weighted PPO update: every loss term a weighted mean over whole episodes.

:class:`WeightedPPOLossMixin` gives :class:`~agents.fnas_ppo.FNASRecurrentPPO` its
``train()``: RecurrentPPO's update where each minibatch of whole episodes (from
:class:`~agents.fnas_buffer.WeightedRecurrentRolloutBuffer`) minimises
``sum(w x loss) / sum(w)``, with ``w`` 1 for new steps and the replay weight for AEB
steps, and advantages normalised with the new episodes' statistics
(``advantage_stats``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import explained_variance

__all__ = ["WeightedPPOLossMixin"]


class WeightedPPOLossMixin:
    """RecurrentPPO's ``train()`` with per-step loss weights.

    Mixed into :class:`~agents.fnas_ppo.FNASRecurrentPPO`; reads RecurrentPPO's
    settings and ``advantage_stats``.
    """

    def weighted_losses(
        self, rollout_data: Any, clip_range: float, clip_range_vf: float | None = None
    ) -> dict[str, th.Tensor]:
        """PPO losses of one minibatch, each a weighted mean ``sum(w x) / sum(w)``.

        Policy, value and entropy terms are all weighted (a step of weight 0 contributes
        no gradient); advantages are normalised with the weighted statistics of the new
        (not replayed) steps, so replays of good architectures keep their advantage
        instead of shifting the baseline of the new ones.

        Returns:
            ``policy_loss``, ``value_loss``, ``entropy_loss``, ``loss`` (with gradients),
            ``clip_fraction`` and ``approx_kl`` (detached).
        """
        actions = rollout_data.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = rollout_data.actions.long().flatten()
        w = th.where(rollout_data.mask > 1e-8, rollout_data.weights, 0.0)
        total = w.sum().clamp_min(1e-12)

        def wmean(x: th.Tensor) -> th.Tensor:
            return th.where(w > 0, w * x, 0.0).sum() / total

        values, log_prob, entropy = self.policy.evaluate_actions(
            rollout_data.observations,
            actions,
            rollout_data.lstm_states,
            rollout_data.episode_starts,
        )
        values = values.flatten()
        advantages = rollout_data.advantages
        if self.normalize_advantage:  # statistics of the new episodes (replays excluded)
            w_new = w
            if self.advantage_stats == "new":
                w_new = th.where(rollout_data.replayed > 0.5, 0.0, w)
            if float(w_new.sum()) <= 0.0:
                w_new = w
            total_new = w_new.sum().clamp_min(1e-12)
            mean = (w_new * advantages).sum() / total_new
            std = th.sqrt((w_new * (advantages - mean) ** 2).sum() / total_new)
            advantages = (advantages - mean) / (std + 1e-8)

        ratio = th.exp(log_prob - rollout_data.old_log_prob)
        policy_loss_1 = advantages * ratio
        policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
        policy_loss = -wmean(th.min(policy_loss_1, policy_loss_2))

        if clip_range_vf is None:
            values_pred = values
        else:
            values_pred = rollout_data.old_values + th.clamp(
                values - rollout_data.old_values, -clip_range_vf, clip_range_vf
            )
        value_loss = wmean((rollout_data.returns - values_pred) ** 2)
        entropy_loss = -wmean(-log_prob if entropy is None else entropy)
        loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
        with th.no_grad():
            clip_fraction = wmean((th.abs(ratio - 1) > clip_range).float())
            log_ratio = log_prob - rollout_data.old_log_prob
            approx_kl = wmean((th.exp(log_ratio) - 1) - log_ratio)
        return {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy_loss": entropy_loss,
            "loss": loss,
            "clip_fraction": clip_fraction,
            "approx_kl": approx_kl,
        }

    def train(self) -> None:
        """RecurrentPPO's update with weighted losses over whole-episode minibatches."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = (
            self.clip_range_vf(self._current_progress_remaining)
            if self.clip_range_vf is not None
            else None
        )
        entropy_losses, pg_losses, value_losses, clip_fractions = [], [], [], []
        approx_kl_divs: list[float] = []
        continue_training = True
        losses: dict[str, th.Tensor] = {}

        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                losses = self.weighted_losses(rollout_data, clip_range, clip_range_vf)
                pg_losses.append(losses["policy_loss"].item())
                value_losses.append(losses["value_loss"].item())
                entropy_losses.append(losses["entropy_loss"].item())
                clip_fractions.append(losses["clip_fraction"].item())
                approx_kl_div = losses["approx_kl"].item()
                approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(
                            f"Early stopping at step {epoch} due to reaching max kl: "
                            f"{approx_kl_div:.2f}"
                        )
                    break
                self.policy.optimizer.zero_grad()
                losses["loss"].backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(
            self.rollout_buffer.values[: self.rollout_buffer.pos].flatten(),
            self.rollout_buffer.returns[: self.rollout_buffer.pos].flatten(),
        )
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        if losses:
            self.logger.record("train/loss", losses["loss"].item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
