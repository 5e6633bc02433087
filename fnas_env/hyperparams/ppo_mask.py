"""Hyperparameters in the zoo's format: sb3-contrib MaskablePPO on the sequential env.

The env's ``action_masks()`` allows exactly one token per choice of the current
decision (``a < n_i``), so the policy puts no probability on aliases of a
choice. MaskablePPO has no recurrent policy: the MLP sees the previous token
and the position in the observation. Update settings are the controller's
(:func:`agents.make_controller`).

rl_zoo3 2.9 has no MaskablePPO among its algorithms (its ``--algo`` rejects
``ppo_mask``), so this dict serves ``examples/search_nb201.py --algo
maskable_ppo``; it has the same keys as the other modules, ready for a zoo that
registers MaskablePPO.
"""

from __future__ import annotations

from typing import Any

from fnas_env.hyperparams import (
    ARCHITECTURES_PER_UPDATE,
    for_each_env,
    search_run,
)


def settings(env_id: str, horizon: int) -> dict[str, Any]:
    """MaskablePPO settings for ``env_id`` (``horizon`` = T tokens per architecture)."""
    n_steps = ARCHITECTURES_PER_UPDATE * horizon  # 8 whole architectures per rollout
    return {
        "policy": "MlpPolicy",  # MaskablePPO's MLP policy (previous token + position)
        **search_run(horizon),  # one env, the budget stops the run
        "n_steps": n_steps,  # a multiple of T: rollouts hold whole episodes
        "batch_size": n_steps,  # one minibatch = the whole rollout
        "n_epochs": 4,  # as the controller
        "learning_rate": 1e-3,  # as the controller
        "gamma": 1.0,  # one terminal reward per episode, undiscounted
        "gae_lambda": 1.0,  # Monte-Carlo return minus the value baseline
        "clip_range": 0.2,  # PPO default
        "ent_coef": 1e-4,  # small entropy bonus (ENAS: 1e-4)
    }


#: env id -> settings, in the format of rl_zoo3's ``--conf-file`` modules.
hyperparams: dict[str, dict[str, Any]] = for_each_env(settings)
