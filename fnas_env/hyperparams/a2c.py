"""rl-baselines3-zoo hyperparameters: A2C on the sequential env (``--algo a2c``).

A feed-forward policy picks one token per step; the observation holds the
previous token and the position, so even a memoryless MLP conditions each
decision on the one before it. A2C updates after 2 whole architectures (its
rollouts are short by design; there is no minibatch reuse to amortise) with
the controller's learning rate, no discounting and rewards as fractions.

    python -m rl_zoo3.train --algo a2c --env FNAS-NB201-v0 --gym-packages fnas_env \\
        --conf-file fnas_env.hyperparams.a2c --eval-freq -1 -f logs
"""

from __future__ import annotations

from typing import Any

from fnas_env.hyperparams import for_each_env, search_run


def settings(env_id: str, horizon: int) -> dict[str, Any]:
    """A2C settings for ``env_id`` (``horizon`` = T tokens per architecture)."""
    return {
        "policy": "MlpPolicy",  # previous token + position in the observation
        **search_run(horizon),  # one env, the budget stops the run
        "n_steps": 2 * horizon,  # 2 whole architectures per update (a multiple of T)
        "learning_rate": 1e-3,  # as the controller (RMSprop, SB3's A2C optimiser)
        "gamma": 1.0,  # one terminal reward per episode, undiscounted
        "gae_lambda": 1.0,  # Monte-Carlo return minus the value baseline
        "ent_coef": 1e-4,  # small entropy bonus (ENAS: 1e-4)
    }


#: env id -> settings, the dict ``rl_zoo3.train --conf-file`` imports.
hyperparams: dict[str, dict[str, Any]] = for_each_env(settings)
