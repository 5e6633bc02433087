"""The MnasNet/FNAS controller: sb3-contrib RecurrentPPO with one LSTM layer of 100 units.

MnasNet (Tan et al., 2019) samples an architecture token by token with the
recurrent controller of NASNet (Zoph et al., 2018), a one-layer LSTM with 100
hidden units trained by PPO. :func:`make_controller` builds that controller on a
:class:`~fnas_env.env.NASEnv` (one token per step) with settings sized for NAS,
where every sampled architecture is expensive: a few architectures per update,
whole episodes per rollout, no discounting.

Hyperparameters (``overrides`` replace any of them):

=====================  =====================  =================================================
setting                value                  source / reason
=====================  =====================  =================================================
policy                 EpisodeLstmPolicy      sb3-contrib's ``MlpLstmPolicy`` with one LSTM
                                              call per episode in PPO's update, same outputs
                                              (:mod:`agents.policy`)
lstm_hidden_size       100                    NASNet/MnasNet controller: one LSTM layer, 100
n_lstm_layers          1                      units (NASNet appendix; MnasNet reuses it)
shared_lstm            True                   one LSTM as in MnasNet; the value head reads its
enable_critic_lstm     False                  state (critic gradient stays out of the LSTM)
net_arch               ``[]``                 linear heads on the LSTM output, as in NASNet
learning_rate          1e-3                   Adam; NASNet used 3.5e-4 with far larger
                                              batches (ENAS: 3.5e-4); 1e-3 learns within a
                                              few hundred samples on the tabular benchmarks
n_steps                T x 8 (per env)        8 architectures per update ("a few": each
                                              sample is expensive); a multiple of T so a
                                              rollout holds whole episodes
batch_size             n_steps x n_envs       one minibatch = the whole rollout (no padding)
n_epochs               4                      PPO epochs per rollout (small batches overfit
                                              with SB3's default 10)
gamma                  1.0                    one terminal reward per episode, no discount
                                              (MnasNet/NASNet: undiscounted episode reward)
gae_lambda             1.0                    Monte-Carlo return minus the value baseline
clip_range             0.2                    PPO default (Schulman et al., 2017)
ent_coef               1e-4                   small entropy bonus (ENAS: 1e-4; NASNet 1e-5)
vf_coef                0.5                    SB3 default
max_grad_norm          0.5                    SB3 default
reward_scale           0.01                   rewards (accuracy in percent) as fractions, the
                                              scale MnasNet's reward has; keeps the value loss
                                              from dominating the clipped gradient
=====================  =====================  =================================================

``reward_scale`` is applied by a :class:`ScaleReward` VecEnv wrapper around the
controller's training env only: the env's search record, infos and the
``search/`` scalars keep the true reward.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from agents.policy import EpisodeLstmPolicy

__all__ = ["make_controller", "episode_length", "ScaleReward", "CONTROLLER_DEFAULTS"]

#: Architectures per PPO update (per env); n_steps = T x this.
ARCHITECTURES_PER_UPDATE = 8

#: Defaults of :func:`make_controller` (see the module docstring for sources).
CONTROLLER_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "n_epochs": 4,
    "gamma": 1.0,
    "gae_lambda": 1.0,
    "clip_range": 0.2,
    "ent_coef": 1e-4,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "policy_kwargs": {
        "lstm_hidden_size": 100,
        "n_lstm_layers": 1,
        "shared_lstm": True,
        "enable_critic_lstm": False,
        "net_arch": [],
    },
}


class ScaleReward(VecEnvWrapper):
    """Multiply the rewards the agent trains on by ``scale`` (infos keep the true reward).

    Args:
        venv: the vectorized env.
        scale: factor applied to every reward (default 0.01: percent to fraction).
    """

    def __init__(self, venv: VecEnv, scale: float = 0.01):
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"reward scale must be a positive finite number, got {scale!r}")
        super().__init__(venv)
        self.scale = float(scale)

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        return obs, rewards * self.scale, dones, infos


def episode_length(env: gym.Env | VecEnv) -> int:
    """Episode length ``T`` (the env's ``horizon``) of a NASEnv, a wrapped one, or a VecEnv.

    Raises:
        ValueError: the env is not a (wrapped) NASEnv in sequential mode.
    """
    if isinstance(env, VecEnv):
        horizons = env.get_attr("horizon")
        one_shot = env.get_attr("one_shot")
    else:
        base = env.unwrapped
        horizons = [getattr(base, "horizon", None)]
        one_shot = [getattr(base, "one_shot", None)]
    if any(h is None for h in horizons):
        raise ValueError(
            "make_controller needs a NASEnv (e.g. gym.make('FNAS-NB201-v0')) or a VecEnv of "
            "them: the env has no 'horizon'"
        )
    if any(one_shot):
        raise ValueError(
            "RecurrentPPO is the sequential controller: make the env with one_shot=False, "
            "or use PPO('MlpPolicy', env) for one-shot mode"
        )
    if len(set(horizons)) != 1:
        raise ValueError(f"all envs must have the same episode length, got {horizons}")
    return int(horizons[0])


def make_controller(
    env: gym.Env | VecEnv,
    seed: int | None = None,
    tensorboard_log: str | None = None,
    verbose: int = 0,
    architectures_per_update: int = ARCHITECTURES_PER_UPDATE,
    reward_scale: float = 0.01,
    algorithm: type[RecurrentPPO] = RecurrentPPO,
    **overrides: Any,
) -> RecurrentPPO:
    """RecurrentPPO controller (one LSTM layer, 100 units) for a sequential NASEnv.

    Args:
        env: a NASEnv (``gym.make("FNAS-NB201-v0")``, wrappers allowed) or a VecEnv of
            them; must be in sequential mode (``one_shot=False``).
        seed: seed of the policy, the action sampling and the env (default None).
        tensorboard_log: folder for TensorBoard logs (default None: no logs).
        verbose: SB3 verbosity, 0 silent, 1 info (default 0).
        architectures_per_update: architectures per env per PPO update (default 8);
            ``n_steps = T x architectures_per_update``.
        reward_scale: factor on the rewards the controller trains on (default 0.01;
            1.0 trains on the raw reward).
        algorithm: RecurrentPPO or a subclass (e.g. FNASRecurrentPPO) built with the
            same settings (default RecurrentPPO).
        **overrides: any RecurrentPPO argument, replacing the defaults
            (``policy_kwargs`` entries are merged). ``n_steps`` must be a multiple of T.

    Returns:
        The unfitted model; call ``model.learn(total_timesteps=T x architectures)``.
    """
    horizon = episode_length(env)
    if int(architectures_per_update) < 1:
        raise ValueError(
            f"architectures_per_update must be a positive int, got {architectures_per_update!r}"
        )
    venv = env if isinstance(env, VecEnv) else DummyVecEnv([lambda: Monitor(env)])
    if reward_scale != 1.0:
        venv = ScaleReward(venv, reward_scale)
    n_steps = int(overrides.pop("n_steps", horizon * int(architectures_per_update)))
    if n_steps % horizon:
        raise ValueError(
            f"n_steps must be a multiple of the episode length T={horizon} so rollouts hold "
            f"whole episodes, got {n_steps}"
        )
    kwargs: dict[str, Any] = {k: v for k, v in CONTROLLER_DEFAULTS.items() if k != "policy_kwargs"}
    kwargs["policy_kwargs"] = {
        **CONTROLLER_DEFAULTS["policy_kwargs"],
        **overrides.pop("policy_kwargs", {}),
    }
    policy = overrides.pop("policy", EpisodeLstmPolicy)
    kwargs.update(n_steps=n_steps, batch_size=n_steps * venv.num_envs)
    kwargs.update(overrides)
    model = algorithm(
        policy,
        venv,
        seed=seed,
        tensorboard_log=tensorboard_log,
        verbose=verbose,
        **kwargs,
    )
    if tensorboard_log is None and verbose == 0:
        # SB3's default logger makes an empty SB3-<date> folder in the temp dir on every
        # learn(); a search with nothing to write needs none (thousands in a benchmark)
        model.set_logger(Logger(folder=None, output_formats=[]))
    return model
