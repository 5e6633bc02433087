"""run_search: any SB3 model searches until a budget of activated samples is spent."""

from __future__ import annotations

import gymnasium as gym
import pytest

import fnas_env  # noqa: F401 - registers the ids
from agents import make_controller, make_fnas_controller, run_search


def test_a_recurrent_controller_spends_exactly_the_budget():
    env = gym.make("FNAS-Macro-v0")
    stop = run_search(make_controller(env, seed=0), budget=12)
    counters = env.unwrapped.counters
    assert counters.activated == stop.activated == 12
    assert counters.sampled == counters.activated + counters.cached


def test_the_fnas_controller_learns_its_budget_and_progress():
    env = gym.make("FNAS-Macro-v0")
    model = make_fnas_controller(env, uac=False, seed=0)
    run_search(model, budget=20)
    assert model.search_budget == 20 and env.unwrapped.counters.activated == 20
    assert model.search_progress >= 19 / 20
    before = model.fnas_counters.activated
    run_search(model, budget=10)  # a second call continues the search: 10 more
    assert model.search_budget == before + 10
    assert env.unwrapped.counters.activated == 30


def test_a_one_shot_ppo_search():
    from stable_baselines3 import PPO

    env = gym.make("FNAS-Macro-v0", one_shot=True)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0)
    run_search(model, budget=10)
    assert env.unwrapped.counters.activated == 10


@pytest.mark.parametrize(
    "kwargs, error", [({"budget": 0}, ValueError), ({"budget": 5, "max_samples": -1}, ValueError)]
)
def test_bad_budgets_are_refused(kwargs, error):
    model = make_controller(gym.make("FNAS-Macro-v0"), seed=0)
    with pytest.raises(error, match="positive int"):
        run_search(model, **kwargs)
    with pytest.raises(TypeError, match="total_timesteps"):
        run_search(model, budget=5, total_timesteps=10)
