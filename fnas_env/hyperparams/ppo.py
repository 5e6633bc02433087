"""rl-baselines3-zoo hyperparameters: PPO on the one-shot env (``--algo ppo``).

With ``one_shot=True`` one action is a whole architecture (``MultiDiscrete``, one
categorical per decision, independent given the constant observation, like the
REINFORCE baseline of NAS-Bench-201) and every step is one sample. The update
settings are the controller's (:func:`agents.make_controller`): 8 architectures
per update, 4 epochs, no discounting, rewards as fractions.

On NAS-Bench-201 this policy converges: after about 250 evaluated cells it
samples one cell (seeds 0-2 ended on cells of 84.9, 84.7 and 84.9 validation
accuracy; the table's best is 84.89), so the rest of a run is cached repeats,
free, until the ``n_timesteps`` bound, and less than the budget is spent.

    python -m rl_zoo3.train --algo ppo --env FNAS-NB201-v0 --gym-packages fnas_env \\
        --conf-file fnas_env.hyperparams.ppo --eval-freq -1 -f logs

``--env-kwargs`` replaces ``env_kwargs``: keep ``one_shot:True`` in it.
"""

from __future__ import annotations

from typing import Any

from fnas_env.hyperparams import (
    ARCHITECTURES_PER_UPDATE,
    for_each_env,
    search_run,
)


def settings(env_id: str, horizon: int) -> dict[str, Any]:
    """One-shot PPO settings for ``env_id`` (``horizon`` unused: one step per architecture)."""
    n_steps = ARCHITECTURES_PER_UPDATE  # one step = one architecture
    return {
        "policy": "MlpPolicy",  # the observation is constant: an MLP is all it needs
        **search_run(horizon, one_shot=True),  # one env, the budget stops the run
        "n_steps": n_steps,  # 8 architectures per update (make_controller)
        "batch_size": n_steps,  # one minibatch = the whole rollout
        "n_epochs": 4,  # as the controller: SB3's 10 overfits 8 samples
        "learning_rate": 1e-3,  # as the controller
        "gamma": 1.0,  # single-step episodes: no discount
        "gae_lambda": 1.0,  # advantage = reward minus the value baseline
        "clip_range": 0.2,  # PPO default
        "ent_coef": 1e-4,  # small entropy bonus (ENAS: 1e-4)
    }


#: env id -> settings, the dict ``rl_zoo3.train --conf-file`` imports.
hyperparams: dict[str, dict[str, Any]] = for_each_env(settings)
