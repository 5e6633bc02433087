"""The controller's policy: sb3-contrib's ``MlpLstmPolicy`` with one LSTM call per episode.

sb3-contrib's :class:`~sb3_contrib.common.recurrent.policies.RecurrentActorCriticPolicy`
runs the LSTM over a training sequence in one call only when no episode starts
inside it; otherwise it loops over the steps, resetting the state where an episode
starts. A NAS controller's training sequences are whole episodes, so every one of
them starts with ``episode_start = 1`` and the loop runs on every PPO minibatch: T
LSTM calls (and their backward passes) where one would do.

:class:`EpisodeLstmPolicy` resets the initial state of the sequences that start an
episode (multiplying it by ``1 - episode_start`` of the first step, as the loop
does) and calls the LSTM once whenever no episode starts after a sequence's first
step. The outputs are the loop's; the gradients differ only in float32 summation
order (about 1e-7 relative), so a fixed-seed search learns the same way but may
drift from sb3-contrib's own after many updates. Any other sequence takes
sb3-contrib's loop. On a PPO minibatch of 8 NB201 episodes the LSTM's forward and
backward pass take about a quarter of the loop's time.
"""

from __future__ import annotations

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from torch import nn

__all__ = ["EpisodeLstmPolicy"]


class EpisodeLstmPolicy(RecurrentActorCriticPolicy):
    """``MlpLstmPolicy`` whose LSTM runs once over sequences that start an episode."""

    @staticmethod
    def _process_sequence(
        features: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        lstm: nn.LSTM,
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        n_seq = lstm_states[0].shape[1]
        starts = episode_starts.reshape((n_seq, -1))
        if th.any(starts[:, 1:] != 0.0):  # an episode starts mid-sequence: step by step
            return RecurrentActorCriticPolicy._process_sequence(
                features, lstm_states, episode_starts, lstm
            )
        keep = (1.0 - starts[:, 0]).view(1, n_seq, 1)
        # (n_seq x length, features) -> (length, n_seq, features), as sb3-contrib does
        sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        output, states = lstm(sequence, (keep * lstm_states[0], keep * lstm_states[1]))
        return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states
