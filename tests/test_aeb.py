"""Architecture experience buffer: diversity rule, priorities, IS weights, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.experience import Experience, ExperienceBuffer
from fnas_env.spaces import get_space

SPACE = get_space("macro")
T = SPACE.num_decisions
OBS_DIM = SPACE.max_choices + 1 + T


def arch_of(i: int):
    """A distinct macro architecture for each i < 3**8 (base-3 digits)."""
    return SPACE.from_choices([(i // 3**k) % 3 for k in range(T)])


def experience(i: int, reward: float, seed: int = 0) -> Experience:
    rng = np.random.default_rng(seed + i)
    arch = arch_of(i)
    return Experience(
        arch=arch,
        tokens=SPACE.to_tokens(arch),
        observations=rng.random((T, OBS_DIM), dtype=np.float32),
        reward=reward,
        log_probs=-rng.random(T).astype(np.float32),
    )


def buffer_with(rewards, **kwargs) -> ExperienceBuffer:
    buffer = ExperienceBuffer(capacity=kwargs.pop("capacity", len(rewards)), **kwargs)
    for i, r in enumerate(rewards):
        assert buffer.add(experience(i, r))
    return buffer


# ---- Experience -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"log_probs": -np.ones(T - 1)}, "log_probs has"),
        ({"observations": np.zeros((T, 2, 2))}, "2-d array"),
        ({"log_probs": np.full(T, 0.5)}, "<= 0"),
        ({"reward": float("nan")}, "finite"),
        ({"tokens": ()}, "empty"),
        ({"tokens": (0, 1)}, "tokens for"),
        ({"observations": np.full((T, OBS_DIM), np.inf)}, "NaN or inf"),
    ],
)
def test_experience_rejects_bad_input(change, message):
    base = dict(
        arch=arch_of(1),
        tokens=SPACE.to_tokens(arch_of(1)),
        observations=np.zeros((T, OBS_DIM)),
        reward=50.0,
        log_probs=-np.ones(T),
    )
    with pytest.raises(ValueError, match=message):
        Experience(**{**base, **change})


def test_experience_copies_and_freezes_arrays():
    obs = np.zeros((T, OBS_DIM), dtype=np.float64)
    exp = Experience(arch_of(2), SPACE.to_tokens(arch_of(2)), obs, 1, -np.ones(T))
    obs[0, 0] = 7.0
    assert exp.observations[0, 0] == 0.0 and exp.observations.dtype == np.float32
    with pytest.raises(ValueError):
        exp.observations[0, 0] = 1.0
    with pytest.raises(AttributeError):
        exp.reward = 3.0  # frozen
    assert exp.num_steps == T and isinstance(exp.reward, float)


def test_one_shot_experience_has_one_step():
    arch = arch_of(5)
    exp = Experience(arch, arch.choices, np.zeros((1, 1)), 60.0, np.array([-3.0]))
    assert exp.num_steps == 1 and exp.tokens == arch.choices


# ---- diversity rule ------------------------------------------------------------------------


def test_closest_pair_rule_by_hand():
    """capacity 3: each full add drops the lower member of the closest pair of rewards."""
    buffer = ExperienceBuffer(capacity=3)
    for i, r in enumerate([10.0, 20.0, 21.0]):
        assert buffer.add(experience(i, r))
    steps = [  # (reward offered, accepted?, rewards kept)
        (30.0, True, [10.0, 21.0, 30.0]),  # (20, 21) closest: 20 goes
        (29.0, False, [10.0, 21.0, 30.0]),  # (29, 30) closest: the newcomer goes
        (5.0, False, [10.0, 21.0, 30.0]),  # (5, 10) closest: the newcomer goes
        (15.0, True, [15.0, 21.0, 30.0]),  # (10, 15) closest: 10 goes
    ]
    for k, (reward, accepted, kept) in enumerate(steps):
        assert buffer.add(experience(10 + k, reward)) is accepted, reward
        assert sorted(buffer.rewards.tolist()) == kept


def test_equal_rewards_drop_the_older_entry():
    buffer = buffer_with([1.0, 5.0], capacity=2)
    assert buffer.add(experience(7, 5.0))  # (5, 5) closest, the older 5 goes
    assert {e.arch for e in buffer} == {arch_of(0), arch_of(7)}


def test_same_architecture_is_replaced_not_duplicated():
    buffer = ExperienceBuffer(capacity=4)
    buffer.add(experience(3, 10.0))
    buffer.add(experience(4, 20.0))
    assert buffer.add(experience(3, 12.0, seed=9))
    assert len(buffer) == 2
    assert sorted(buffer.rewards.tolist()) == [12.0, 20.0]


def test_capacity_uniqueness_and_best_kept_on_a_stream():
    rng = np.random.default_rng(0)
    buffer = ExperienceBuffer(capacity=10)
    offered = []
    for step in range(300):
        reward = float(rng.normal(80, 5))
        # architectures repeat (i < 200), so some adds replace an entry
        accepted = buffer.add(experience(int(rng.integers(200)), reward))
        if not offered or reward > max(offered):
            assert accepted, step  # a new best is never rejected
        offered.append(reward)
        assert len(buffer) <= 10
        assert len({e.arch for e in buffer}) == len(buffer)
    assert len(buffer) == 10


def test_distinct_stream_keeps_the_best_and_a_spread_of_rewards():
    rng = np.random.default_rng(1)
    buffer = ExperienceBuffer(capacity=10)
    rewards = rng.normal(80, 5, size=400)
    for i, r in enumerate(rewards):
        buffer.add(experience(i, float(r)))
    kept = np.sort(buffer.rewards)
    assert kept[-1] == rewards.max()
    # more spread than keeping the 10 best: a larger smallest gap and a wider range
    top = np.sort(rewards)[-10:]
    assert np.diff(kept).min() > np.diff(top).min()
    assert kept[-1] - kept[0] > top[-1] - top[0]


def test_buffer_rejects_another_space_and_bad_arguments():
    buffer = buffer_with([1.0])
    nb = get_space("nb201")
    arch = nb.sample(np.random.default_rng(0))
    other = Experience(arch, nb.to_tokens(arch), np.zeros((6, 3)), 1.0, -np.ones(6))
    with pytest.raises(ValueError, match="space"):
        buffer.add(other)
    for kwargs in ({"capacity": 0}, {"temperature": 0.0}, {"beta0": 1.5}):
        with pytest.raises(ValueError):
            ExperienceBuffer(**kwargs)


# ---- priorities, beta, importance weights -------------------------------------------------

# The paper's rule: P_i = exp(r_i / T) / sum_j exp(r_j / T) on the stored rewards
# (fractions: nearly uniform over close rewards), S_i = (N P_i)^-beta, unnormalised.
PAPER_PRIORITY_TABLE = [
    ([1.0, 2.0, 3.0], 1.0, [0.0900305732, 0.2447284711, 0.6652409558]),
    ([1.0, 2.0, 3.0], 2.0, [0.1863237232, 0.3071958857, 0.5064803911]),
    # accuracies as fractions (reward_scale 0.01): almost uniform
    ([0.91, 0.92, 0.93], 1.0, [0.3300056110, 0.3333222225, 0.3366721665]),
    ([0.70, 0.70], 1.0, [0.5, 0.5]),
    ([0.42], 1.0, [1.0]),
]
# The standardised variant: z = (r - mean) / std; rewards 1, 2, 3: z = -1.2247, 0, 1.2247
STANDARDIZED_PRIORITY_TABLE = [
    ([1.0, 2.0, 3.0], 1.0, [0.0625557807, 0.2128959440, 0.7245482753]),
    ([1.0, 2.0, 3.0], 2.0, [0.1600486399, 0.2952581930, 0.5446931670]),
    # standardising makes the priorities scale-free: percentages do not saturate
    ([91.0, 92.0, 93.0], 1.0, [0.0625557807, 0.2128959440, 0.7245482753]),
    ([70.0, 70.0], 1.0, [0.5, 0.5]),
    ([42.0], 1.0, [1.0]),
]


@pytest.mark.parametrize(
    "priority, rewards, temperature, expected",
    [("paper", *row) for row in PAPER_PRIORITY_TABLE]
    + [("standardized", *row) for row in STANDARDIZED_PRIORITY_TABLE],
)
def test_priorities_match_hand_computed_values(priority, rewards, temperature, expected):
    buffer = buffer_with(rewards, temperature=temperature, priority=priority)
    np.testing.assert_allclose(buffer.priorities(), expected, rtol=1e-8)


def test_paper_rule_is_the_default_and_unknown_rules_are_refused():
    assert ExperienceBuffer().priority == "paper"
    with pytest.raises(ValueError, match="priority must be one of"):
        ExperienceBuffer(priority="rank")


# paper: S_i = (N P_i)^-beta with P from PAPER_PRIORITY_TABLE's first row (N = 3)
# standardized: (N P_i)^-beta / max_j = exp(-beta (z_i - z_min) / T)
WEIGHT_TABLE = [
    ("paper", 0.0, [1.0, 1.0, 1.0]),
    ("paper", 1.0, [3.7024459758, 1.3620537565, 0.5010715748]),
    ("paper", 0.5, [1.9241741023, 1.1670705876, 0.7078640935]),
    ("standardized", 0.0, [1.0, 1.0, 1.0]),
    ("standardized", 1.0, [1.0, 0.2938326559, 0.0863376297]),
    ("standardized", 0.5, [1.0, 0.5420633320, 0.2938326559]),
]


@pytest.mark.parametrize("priority, progress, expected", WEIGHT_TABLE)
def test_importance_weights_match_hand_computed_values(priority, progress, expected):
    buffer = buffer_with([1.0, 2.0, 3.0], priority=priority)
    np.testing.assert_allclose(buffer.weights(progress), expected, rtol=1e-8)


@pytest.mark.parametrize(
    "beta0, progress, expected",
    [(0.0, 0.0, 0.0), (0.0, 0.25, 0.25), (0.0, 1.0, 1.0), (0.0, 1.3, 1.0), (0.0, -0.2, 0.0)]
    + [(0.4, 0.0, 0.4), (0.4, 0.5, 0.7), (0.4, 1.0, 1.0)],
)
def test_beta_is_annealed_linearly_to_one(beta0, progress, expected):
    assert ExperienceBuffer(beta0=beta0).beta(progress) == pytest.approx(expected)


def test_beta_rejects_nan():
    with pytest.raises(ValueError, match="progress"):
        ExperienceBuffer().beta(float("nan"))


@pytest.mark.parametrize("priority", ["paper", "standardized"])
def test_sample_follows_priorities_with_matching_weights(priority):
    buffer = buffer_with([1.0, 2.0, 3.0, 2.5], priority=priority)
    p = buffer.priorities()
    weights = {e.arch: w for e, w in zip(buffer.entries, buffer.weights(0.6))}
    draws = buffer.sample(20000, progress=0.6, rng=np.random.default_rng(1))
    assert len(draws) == 20000
    counts = {e.arch: 0 for e in buffer.entries}
    for exp, w in draws:
        counts[exp.arch] += 1
        assert w == pytest.approx(weights[exp.arch])
    freq = np.array([counts[e.arch] for e in buffer.entries]) / 20000
    np.testing.assert_allclose(freq, p, atol=0.015)
    # the highest-priority entry gets the smallest weight
    assert min(weights.values()) == weights[buffer.best.arch]
    if priority == "standardized":  # normalised: the lowest-priority entry weighs 1
        assert max(weights.values()) == pytest.approx(1.0)


def test_sample_edge_cases_and_determinism():
    assert ExperienceBuffer().sample(4, 0.5) == []
    buffer = buffer_with([1.0, 2.0, 3.0])
    assert buffer.sample(0, 0.5) == []
    with pytest.raises(ValueError, match="k must be"):
        buffer.sample(-1, 0.5)
    a = buffer.sample(8, 0.5, np.random.default_rng(3))
    b = buffer.sample(8, 0.5, np.random.default_rng(3))
    assert [e.arch for e, _ in a] == [e.arch for e, _ in b]


# ---- persistence ------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    buffer = ExperienceBuffer(
        capacity=4, temperature=0.5, beta0=0.2, seed=7, priority="standardized"
    )
    for i, r in enumerate([70.0, 75.0, 71.0, 90.0, 80.0, 60.0]):
        buffer.add(experience(i, r))
    buffer.sample(3, 0.1)  # advance the buffer's own generator
    folder = buffer.save(tmp_path / "aeb")
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "buffer.json"]
    json.loads((folder / "buffer.json").read_text())  # plain JSON
    with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:
        assert len(arrays.files) == 2 * len(buffer)

    loaded = ExperienceBuffer.load(folder, space="macro", obs_dim=OBS_DIM)
    assert (loaded.capacity, loaded.temperature, loaded.beta0) == (4, 0.5, 0.2)
    assert loaded.priority == "standardized"
    assert len(loaded) == len(buffer)
    for a, b in zip(buffer.entries, loaded.entries):
        assert (a.arch, a.tokens, a.reward) == (b.arch, b.tokens, b.reward)
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.log_probs, b.log_probs)
    np.testing.assert_allclose(loaded.priorities(), buffer.priorities())
    # the buffer's own generator and the diversity rule's ages survive the round trip
    assert [e.arch for e, _ in loaded.sample(5, 0.3)] == [e.arch for e, _ in buffer.sample(5, 0.3)]
    assert loaded.add(experience(40, 72.0)) == buffer.add(experience(40, 72.0))
    assert sorted(loaded.rewards.tolist()) == sorted(buffer.rewards.tolist())


def test_load_checks_space_obs_dim_and_folder(tmp_path):
    folder = buffer_with([1.0, 2.0]).save(tmp_path / "aeb")
    with pytest.raises(ValueError, match="space"):
        ExperienceBuffer.load(folder, space="nb201")
    with pytest.raises(ValueError, match="observations"):
        ExperienceBuffer.load(folder, obs_dim=OBS_DIM + 1)
    with pytest.raises(FileNotFoundError, match="buffer.json"):
        ExperienceBuffer.load(tmp_path / "nothing")
