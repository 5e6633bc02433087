"""rl-baselines3-zoo hyperparameters: RecurrentPPO, the MnasNet controller (``--algo ppo_lstm``).

The settings of :func:`agents.make_controller` (its table gives the sources):
NASNet's and MnasNet's controller, one LSTM layer of 100 units trained with PPO on
the sequential env (one token per step), a few whole architectures per update,
no discounting. ``policy`` must be given: the zoo's own ``ppo_lstm.yml`` falls
back to ``policy: MlpPolicy``, which RecurrentPPO rejects
(``ValueError: Policy MlpPolicy unknown``).

    python -m rl_zoo3.train --algo ppo_lstm --env FNAS-NB201-v0 --gym-packages fnas_env \\
        --conf-file fnas_env.hyperparams.ppo_lstm --eval-freq -1 -f logs
"""

from __future__ import annotations

from typing import Any

from fnas_env.hyperparams import (
    ARCHITECTURES_PER_UPDATE,
    for_each_env,
    search_run,
)


def settings(env_id: str, horizon: int) -> dict[str, Any]:
    """RecurrentPPO settings for ``env_id`` (``horizon`` = T tokens per architecture)."""
    n_steps = ARCHITECTURES_PER_UPDATE * horizon  # 8 whole architectures per rollout
    return {
        "policy": "MlpLstmPolicy",  # RecurrentPPO's policy names end in LstmPolicy
        **search_run(horizon),  # one env, the budget stops the run
        "n_steps": n_steps,  # a multiple of T: rollouts hold whole episodes
        "batch_size": n_steps,  # one minibatch = the whole rollout (no padding)
        "n_epochs": 4,  # SB3's 10 overfits rollouts of 8 samples
        "learning_rate": 1e-3,  # Adam; learns within a few hundred tabular samples
        "gamma": 1.0,  # one terminal reward per episode, undiscounted (MnasNet/NASNet)
        "gae_lambda": 1.0,  # Monte-Carlo return minus the value baseline
        "clip_range": 0.2,  # PPO default (Schulman et al., 2017)
        "ent_coef": 1e-4,  # small entropy bonus (ENAS: 1e-4)
        "vf_coef": 0.5,  # SB3 default
        "max_grad_norm": 0.5,  # SB3 default
        "policy_kwargs": {
            "lstm_hidden_size": 100,  # NASNet/MnasNet controller: one LSTM layer of 100
            "n_lstm_layers": 1,
            "shared_lstm": True,  # one LSTM, as in MnasNet; the value head reads it
            "enable_critic_lstm": False,  # (required by shared_lstm)
            "net_arch": [],  # linear heads on the LSTM output, as in NASNet
        },
    }


#: env id -> settings, the dict ``rl_zoo3.train --conf-file`` imports.
hyperparams: dict[str, dict[str, Any]] = for_each_env(settings)
