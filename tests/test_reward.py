"""MnasNet reward: table-driven values and configuration errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fnas_env.reward import ACCURACY_ONLY, HARD, SOFT, RewardConfig, mnas_reward, reward_config

T = 10.0
SOFT_T = reward_config("soft", T)
HARD_T = reward_config("hard", T)
SOFT_THR = reward_config("soft", T, "throughput")
HARD_THR = reward_config("hard", T, "throughput")


@pytest.mark.parametrize(
    ("accuracy", "cost", "config", "expected"),
    [
        # soft latency constraint: ACC * (LAT/T)^-0.07 on both sides
        (80.0, T, SOFT_T, 80.0),
        (80.0, 2 * T, SOFT_T, 80.0 * 2**-0.07),
        (80.0, T / 2, SOFT_T, 80.0 * 0.5**-0.07),
        # hard latency constraint: no bonus below T, ACC * T/LAT above it
        (80.0, T, HARD_T, 80.0),
        (80.0, T / 2, HARD_T, 80.0),
        (80.0, 2 * T, HARD_T, 40.0),
        (0.8, 4 * T, HARD_T, 0.2),  # fractions stay fractions
        # accuracy only: the latency does not matter, and may be missing
        (73.5, 123.0, ACCURACY_ONLY, 73.5),
        (73.5, None, ACCURACY_ONLY, 73.5),
        (73.5, None, reward_config("hard", None), 73.5),
        # throughput (higher is better): the ratio is inverted
        (80.0, T, SOFT_THR, 80.0),
        (80.0, 2 * T, SOFT_THR, 80.0 * 2**0.07),
        (80.0, T / 2, SOFT_THR, 80.0 * 0.5**0.07),
        (80.0, 2 * T, HARD_THR, 80.0),
        (80.0, T / 2, HARD_THR, 40.0),
        (80.0, T / 4, HARD_THR, 20.0),
    ],
)
def test_mnas_reward_table(accuracy, cost, config, expected):
    r = mnas_reward(accuracy, cost, config)
    assert isinstance(r, float)
    assert r == pytest.approx(expected, rel=1e-12)


def test_presets():
    assert (SOFT.alpha, SOFT.beta, SOFT.target) == (-0.07, -0.07, None)
    assert (HARD.alpha, HARD.beta) == (0.0, -1.0)
    assert ACCURACY_ONLY.target is None
    cfg = reward_config("hard", 5.0, "throughput")
    assert cfg == RewardConfig(target=5.0, alpha=0.0, beta=-1.0, objective="throughput")


@pytest.mark.parametrize("config", [SOFT_T, HARD_T])
def test_latency_reward_never_increases_with_latency(config):
    lat = np.linspace(0.1 * T, 5 * T, 200)
    r = [mnas_reward(75.0, x, config) for x in lat]
    assert all(a >= b for a, b in zip(r, r[1:]))
    assert mnas_reward(75.0, T * (1 - 1e-9), config) == pytest.approx(75.0)


@pytest.mark.parametrize("config", [SOFT_THR, HARD_THR])
def test_throughput_reward_never_decreases_with_throughput(config):
    thr = np.linspace(0.1 * T, 5 * T, 200)
    r = [mnas_reward(75.0, x, config) for x in thr]
    assert all(a <= b for a, b in zip(r, r[1:]))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: reward_config("medium", 1.0), r"constraint must be one of \['hard', 'soft'\]"),
        (lambda: reward_config("soft", 1.0, "energy"), "objective must be 'latency' or"),
        (lambda: RewardConfig(target=0.0), "target must be a positive finite number"),
        (lambda: RewardConfig(target=-3.0), "target must be a positive finite number"),
        (lambda: RewardConfig(target=math.inf), "target must be a positive finite number"),
        (lambda: RewardConfig(target=math.nan), "target must be a positive finite number"),
        (lambda: mnas_reward(70.0, None, SOFT_T), "has no latency/throughput"),
        (lambda: mnas_reward(70.0, 0.0, SOFT_T), "must be positive, got 0.0"),
        (lambda: mnas_reward(70.0, -1.0, HARD_THR), "must be positive"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_config_is_immutable():
    with pytest.raises(AttributeError):
        SOFT_T.target = 3.0  # type: ignore[misc]


def test_named_presets_are_the_constants_with_a_target():
    from fnas_env.reward import PRESETS

    assert set(PRESETS) == {"soft", "hard"}
    soft = reward_config("soft", target=5.0)
    assert (soft.alpha, soft.beta, soft.target) == (SOFT.alpha, SOFT.beta, 5.0)
    hard = reward_config("hard", target=5.0, objective="throughput")
    assert (hard.alpha, hard.beta, hard.objective) == (HARD.alpha, HARD.beta, "throughput")
    with pytest.raises(ValueError, match="constraint must be one of"):
        reward_config("medium")


def test_a_target_without_a_cost_raises_as_the_docstring_says():
    with pytest.raises(ValueError, match="no latency/throughput"):
        mnas_reward(73.5, None, reward_config("soft", target=5.0))
