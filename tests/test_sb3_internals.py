"""The Stable-Baselines3 / sb3-contrib internals FNAS relies on are where it expects them.

``agents.fnas_ppo`` and ``agents.fnas_buffer`` override or read private members of
RecurrentPPO, its rollout buffer and ``VecEnv`` (``fnas_env.ray_vec_env``).
setup.py pins the tested range; this test fails loudly, naming the member, when a
release within or beyond it moves one, instead of a search misbehaving quietly.
"""

from __future__ import annotations

import inspect

import gymnasium as gym
import pytest
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import fnas_env  # noqa: F401 - registers the ids

#: (owner, private method, the parameters FNAS passes or overrides with)
METHODS = [
    (BaseAlgorithm, "_update_info_buffer", ["infos", "dones"]),
    (BaseAlgorithm, "_update_learning_rate", ["optimizers"]),
    (BaseAlgorithm, "_update_current_progress_remaining", ["num_timesteps", "total_timesteps"]),
    (BaseAlgorithm, "_excluded_save_params", []),
    (OnPolicyAlgorithm, "_setup_model", []),
    (RecurrentRolloutBuffer, "_get_samples", ["batch_inds", "env_change", "env"]),
    (VecEnv, "_get_indices", ["indices"]),
    (VecEnv, "_reset_seeds", []),
    (VecEnv, "_reset_options", []),
]


@pytest.mark.parametrize("owner, name, params", METHODS, ids=[m[1] for m in METHODS])
def test_private_methods_keep_their_signatures(owner, name, params):
    method = getattr(owner, name, None)
    assert callable(method), f"{owner.__name__}.{name} is gone: agents/ must be adapted"
    names = [p for p in inspect.signature(method).parameters if p != "self"]
    assert names == params, f"{owner.__name__}.{name}{names}: agents/ must be adapted"


def test_recurrent_ppo_keeps_its_rollout_state_attributes():
    """After a rollout, the attributes ``FNASRecurrentPPO.collect_rollouts`` reads and sets."""
    env = DummyVecEnv([lambda: gym.make("FNAS-NB201-v0")])
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=12, batch_size=12, n_epochs=1, seed=0)
    assert "_init_setup_model" in inspect.signature(RecurrentPPO.__init__).parameters
    model.learn(total_timesteps=12)
    assert isinstance(model._last_lstm_states, RNNStates)
    assert len(model._last_lstm_states.pi) == 2 and len(model._last_lstm_states.vf) == 2
    assert model._last_obs.shape == (1, *env.observation_space.shape)
    assert model._last_episode_starts.shape == (1,)
    assert model._n_updates == 1
    assert 0.0 <= model._current_progress_remaining <= 1.0
    assert isinstance(model.rollout_buffer, RecurrentRolloutBuffer)


def test_vec_env_keeps_its_seed_and_option_lists():
    """``RayVecEnv`` subclasses ``VecEnv`` and reads the lists ``seed``/``set_options`` fill."""
    env = DummyVecEnv([lambda: gym.make("FNAS-NB201-v0")] * 2)
    env.seed(3)
    env.set_options({"a": 1})
    assert env._seeds == [3, 4] and env._options == [{"a": 1}, {"a": 1}]
