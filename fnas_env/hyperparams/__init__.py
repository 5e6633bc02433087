"""rl-baselines3-zoo hyperparameters for the FNAS env ids.

One module per zoo algorithm, each with the ``hyperparams`` dict (env id ->
settings) that ``rl_zoo3.train --conf-file <module>`` imports:

=======================  ==============================  ==========  ===================
module                   algorithm                       env mode    action
=======================  ==============================  ==========  ===================
``ppo_lstm``             sb3-contrib RecurrentPPO        sequential  ``Discrete(K)``
                         (the MnasNet controller of
                         :func:`agents.make_controller`)
``ppo``                  PPO                             one-shot    ``MultiDiscrete``
``a2c``                  A2C                             sequential  ``Discrete(K)``
``dqn``                  DQN                             sequential  ``Discrete(K)``
``ppo_mask``             sb3-contrib MaskablePPO         sequential  ``Discrete(K)`` +
                                                                     ``action_masks()``
=======================  ==============================  ==========  ===================

Each covers ``FNAS-NB201-v0``, ``FNAS-Macro-v0`` and ``FNAS-ANB-v0``; there is
deliberately no ``default`` entry, so another id fails with the zoo's
"Hyperparameters not found" instead of training with settings meant for another
env. (A ``default`` entry that names the wrong policy is what breaks
``--algo ppo_lstm`` without ``--conf-file``: the zoo's own ``ppo_lstm.yml``
falls back to ``default: policy: MlpPolicy``, a name RecurrentPPO does not know,
since its policies are ``MlpLstmPolicy``, ``CnnLstmPolicy`` and
``MultiInputLstmPolicy``: ``ValueError: Policy MlpPolicy unknown``.)

Training with the zoo (``pip install -e ".[zoo]"``)::

    python -m rl_zoo3.train --algo ppo_lstm --env FNAS-NB201-v0 --gym-packages fnas_env \\
        --conf-file fnas_env.hyperparams.ppo_lstm --eval-freq -1 -f logs
    python -m rl_zoo3.train --algo ppo --env FNAS-NB201-v0 --gym-packages fnas_env \\
        --conf-file fnas_env.hyperparams.ppo --eval-freq -1 -f logs
    python -m rl_zoo3.train --algo a2c --env FNAS-Macro-v0 --gym-packages fnas_env \\
        --conf-file fnas_env.hyperparams.a2c --eval-freq -1 -f logs
    python -m rl_zoo3.train --algo dqn --env FNAS-ANB-v0 --gym-packages fnas_env \\
        --conf-file fnas_env.hyperparams.dqn --eval-freq -1 -f logs

What a run does: the zoo trains until the search has spent :data:`BUDGET`
activated samples (architectures really evaluated; repeats served from the
env's record are free), through :class:`agents.callbacks.SearchBudgetCallback`,
or until ``n_timesteps`` steps, a bound of ``SAMPLE_FACTOR x BUDGET`` sampled
architectures (``T`` steps each in sequential mode, one in one-shot mode), the
same stop rule as :func:`agents.run_search`. The callback also logs the
``search/`` scalars (best accuracy, activated, cached, ...) with the zoo's other
metrics. ``-n N`` replaces the bound by ``N`` steps, and
``-params callback:"[{'agents.callbacks.SearchBudgetCallback': {'budget': 200}}]"``
sets another budget.

Notes:

- ``--eval-freq -1``: the zoo's periodic evaluation would build a second env and
  score the deterministic policy's architecture outside the search; a search's
  result is its record (best architecture found), not an evaluation return.
- ``--env-kwargs`` *replaces* a file's ``env_kwargs`` (the zoo does not merge
  them): repeat ``one_shot:True`` for ``ppo``, e.g.
  ``--env-kwargs one_shot:True dataset:"'cifar100'"``. A durable search record:
  ``--env-kwargs record_path:"'logs/record.jsonl'"``.
- The rewards the agent trains on are scaled by :data:`REWARD_SCALE` (accuracy
  in percent to a fraction) by the ``vec_env_wrapper``
  :class:`agents.controller.ScaleReward`; the zoo's monitor files, its
  ``ep_rew_mean`` and the search record keep the true reward.
- ``--conf-file`` also takes the file path (``fnas_env/hyperparams/ppo.py``);
  these modules import only the package, not the zoo.
- rl_zoo3 2.9 has no MaskablePPO in its ``ALGOS`` (``--algo`` accepts a2c,
  ddpg, dqn, ppo, sac, td3, ars, crossq, qrdqn, tqc, trpo, ppo_lstm), so
  ``ppo_mask`` is used by ``examples/search_nb201.py``, not by the zoo.

Where each value comes from is written beside it in each module; the shared
choices are the constants below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fnas_env
from fnas_env.spaces import get_space

__all__ = [
    "ENV_SPACES",
    "BUDGET",
    "SAMPLE_FACTOR",
    "ARCHITECTURES_PER_UPDATE",
    "REWARD_SCALE",
    "horizon",
    "budget_callback",
    "scale_reward",
    "for_each_env",
    "search_run",
]

#: The env ids these files cover (the benchmark envs; FNAS-MNAS-v0 trains real
#: networks, too slow for the zoo's sample counts) and their search spaces.
ENV_SPACES: dict[str, str] = {
    env_id: space for env_id, space in fnas_env.ENV_SPACES.items() if env_id != "FNAS-MNAS-v0"
}

#: Activated samples (real evaluations) a zoo run spends before it stops: a few
#: hundred queries, the scale at which searches are compared on the tabular
#: benchmarks (the README's searches use 200).
BUDGET = 500

#: ``n_timesteps`` bounds a run at this many sampled architectures per budgeted
#: one (:data:`agents.search.DEFAULT_SAMPLE_FACTOR`, the bound of ``run_search``).
SAMPLE_FACTOR = 20

#: Architectures per update (per env) of the on-policy controllers, as in
#: :func:`agents.make_controller`: "a few", since every sample is an evaluation.
ARCHITECTURES_PER_UPDATE = 8

#: Factor on the rewards the agent trains on (:class:`agents.controller.ScaleReward`,
#: as in :func:`agents.make_controller`): accuracy in percent to a fraction.
REWARD_SCALE = 0.01


def horizon(env_id: str) -> int:
    """Episode length ``T`` of ``env_id`` in sequential mode (its number of decisions)."""
    return len(get_space(ENV_SPACES[env_id]).num_choices)


def budget_callback(budget: int = BUDGET) -> list[dict[str, dict[str, int]]]:
    """The zoo's ``callback`` entry: stop after ``budget`` activated samples, log ``search/``."""
    return [{"agents.callbacks.SearchBudgetCallback": {"budget": int(budget)}}]


def scale_reward(scale: float = REWARD_SCALE) -> dict[str, dict[str, float]]:
    """The zoo's ``vec_env_wrapper`` entry: train on rewards multiplied by ``scale``."""
    return {"agents.controller.ScaleReward": {"scale": float(scale)}}


def search_run(horizon: int, one_shot: bool = False) -> dict[str, Any]:
    """The zoo entries every file shares: how the zoo runs a search.

    One env (architectures are sampled one after the other, as in MnasNet), in
    sequential mode (one token per step) or one-shot mode (one ``MultiDiscrete``
    action per architecture); ``n_timesteps`` bounds the run at
    :data:`SAMPLE_FACTOR` x :data:`BUDGET` sampled architectures, and the budget
    callback stops it first; rewards as fractions (:func:`scale_reward`, as
    :func:`agents.make_controller`).
    """
    steps = 1 if one_shot else int(horizon)
    return {
        "env_kwargs": {"one_shot": bool(one_shot)},
        "n_envs": 1,
        "n_timesteps": steps * SAMPLE_FACTOR * BUDGET,
        "callback": budget_callback(),
        "vec_env_wrapper": scale_reward(),
    }


def for_each_env(settings: Callable[[str, int], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{env_id: settings(env_id, T)}`` for every id of :data:`ENV_SPACES`."""
    return {env_id: settings(env_id, horizon(env_id)) for env_id in ENV_SPACES}
