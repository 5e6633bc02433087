"""rl-baselines3-zoo hyperparameters: DQN on the sequential env (``--algo dqn``).

DQN needs a ``Discrete`` action space: the sequential env's token action is
``Discrete(K)`` (``K`` the least common multiple of the choice counts; token
``a`` at position ``i`` selects choice ``a % n_i``), so DQN runs on it
unchanged; the one-shot ``MultiDiscrete`` action does not fit DQN. The
Q-network sees the previous token and the position and learns the value of each
next token; the terminal reward (accuracy as a fraction) is bootstrapped back
through the ``T`` decisions without discount.

    python -m rl_zoo3.train --algo dqn --env FNAS-NB201-v0 --gym-packages fnas_env \\
        --conf-file fnas_env.hyperparams.dqn --eval-freq -1 -f logs
"""

from __future__ import annotations

from typing import Any

from fnas_env.hyperparams import (
    ARCHITECTURES_PER_UPDATE,
    BUDGET,
    SAMPLE_FACTOR,
    for_each_env,
    search_run,
)


def settings(env_id: str, horizon: int) -> dict[str, Any]:
    """DQN settings for ``env_id`` (``horizon`` = T tokens per architecture)."""
    return {
        "policy": "MlpPolicy",  # previous token + position in the observation
        **search_run(horizon),  # one env, the budget stops the run
        "learning_rate": 1e-3,  # as the controller (Adam)
        "gamma": 1.0,  # one terminal reward per episode, undiscounted
        "buffer_size": horizon * SAMPLE_FACTOR * BUDGET,  # every transition of a run
        # first update after as many architectures as one on-policy rollout
        "learning_starts": ARCHITECTURES_PER_UPDATE * horizon,
        "batch_size": 64,  # SB3 / zoo default for small control tasks
        "train_freq": (1, "episode"),  # one gradient step per sampled architecture
        "gradient_steps": 1,
        "target_update_interval": ARCHITECTURES_PER_UPDATE * horizon,  # every 8 archs
        # epsilon decays over the first 1/40 of the n_timesteps bound, i.e. half of
        # the budgeted architectures (fraction of n_timesteps: -n rescales it)
        "exploration_fraction": 0.5 / SAMPLE_FACTOR,
        "exploration_initial_eps": 1.0,  # start as random search
        "exploration_final_eps": 0.05,  # keep some exploration (SB3 default)
    }


#: env id -> settings, the dict ``rl_zoo3.train --conf-file`` imports.
hyperparams: dict[str, dict[str, Any]] = for_each_env(settings)
