"""UncertaintyCritic: held-out errors as U's target, their persistence, and the predict cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fnas_env.evaluators.base import Evaluation
from fnas_env.record import SearchRecord
from fnas_env.spaces import get_space
from wrappers.critic import U_TARGETS, UncertaintyCritic

SPACE = get_space("macro")
DIM = SPACE.embedding_dim
# a known objective: 60 + sum over layers of a per-choice gain
GAIN = np.array([[0.0, 2.0, 4.0]] * SPACE.num_decisions) * np.linspace(0.5, 1.5, 8)[:, None]


def objective(choices) -> float:
    return 60.0 + float(sum(GAIN[i, c] for i, c in enumerate(choices)))


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    archs = [SPACE.sample(rng) for _ in range(n)]
    x = np.stack([SPACE.one_hot(a) for a in archs])
    return archs, x, np.array([objective(a.choices) for a in archs])


def small_critic(**kwargs) -> UncertaintyCritic:
    return UncertaintyCritic(DIM, **{"hidden": 32, "steps_per_sample": 2, **kwargs})


def test_heldout_errors_are_the_errors_before_training():
    _, x, r = data(30)
    critic = small_critic()
    expected = []
    for i in range(30):
        v_before, _ = critic.predict(x[i])
        out = critic.update(x[i : i + 1], r[i : i + 1])
        expected.append(abs(v_before[0] - r[i]))
        assert out["error_before"] == pytest.approx(expected[-1], rel=1e-12)
    # kept in reward units: later rewards move the statistics, not the measured errors
    np.testing.assert_allclose(critic.heldout_errors, expected, rtol=1e-12)
    assert critic.heldout_errors.shape == (critic.num_samples,)
    with pytest.raises(ValueError):
        critic.heldout_errors[0] = 0.0  # read-only
    # a batch update measures every new sample before any training on it
    v_before, _ = critic.predict(x[:5])
    critic.update(x[:5], r[:5] + 1.0)
    np.testing.assert_allclose(critic.heldout_errors[-5:], np.abs(v_before - r[:5] - 1.0))


def test_first_rewards_set_the_scale_of_a_fresh_critic():
    """An untrained V's output is read in the first rewards' statistics, not preserved."""
    _, x, r = data(60)
    critic = small_critic()
    critic.update(x[:1], r[:1], steps=0)
    v, _ = critic.predict(x[1:])
    assert np.abs(v - r[0]).max() < 2.0  # ~ the first reward, not ~0 (the prior mean)
    critic.update(x[1:2], r[1:2], steps=0)
    assert critic.reward_mean == pytest.approx(r[:2].mean())
    v, _ = critic.predict(x[2:])
    assert np.abs(v - r[:2].mean()).max() < 2.0 * critic.reward_std
    # from the third reward on, predictions keep their reward units (PopArt)
    critic.update(x[2:3], [r[2] + 10.0], steps=0)
    np.testing.assert_allclose(critic.predict(x[3:])[0], v[1:], rtol=1e-5)
    # so V learns the rewards, not a bias of tens of standard deviations
    for i in range(3, 60):
        critic.update(x[i : i + 1], r[i : i + 1])
    assert np.mean(critic.heldout_errors[-20:]) < 0.5 * np.abs(r - r.mean()).mean()


def noisy_region_data(n: int, seed: int):
    """Exact rewards, except Gaussian noise (sd 3) where the first layer's choice is 0."""
    rng = np.random.default_rng(seed)
    archs, x, r = data(n, seed)
    noisy = np.array([a.choices[0] == 0 for a in archs])
    return x, r + noisy * rng.normal(0.0, 3.0, n), noisy


def online_critic(seed: int, **kwargs) -> UncertaintyCritic:
    x, r, _ = noisy_region_data(300, seed)
    critic = small_critic(hidden=64, seed=seed, **kwargs)
    for i in range(len(r)):
        critic.update(x[i : i + 1], r[i : i + 1])
    return critic


@pytest.mark.parametrize("seed", [0, 1])
def test_heldout_u_ranks_the_noisy_region_as_more_uncertain(seed):
    """Where rewards are noisy V's error on new samples is large; held-out U learns that."""
    critic = online_critic(seed)
    x_new, r_new, noisy = noisy_region_data(400, seed + 100)
    v, u = critic.predict(x_new)
    assert u[noisy].mean() > 2.0 * u[~noisy].mean()
    assert stats.spearmanr(u, noisy)[0] > 0.5
    # the stored targets say the same: V's errors before training are larger where noisy
    errors = critic.heldout_errors
    _, _, seen_noisy = noisy_region_data(300, seed)
    assert np.median(errors[seen_noisy]) > 2.0 * np.median(errors[~seen_noisy])
    # and U is V's error on new architectures in size (measured 0.9-1.5 x)
    assert 0.6 < u.mean() / np.abs(v - r_new).mean() < 2.0


def test_insample_u_underestimates_the_error_on_new_architectures():
    """The paper's target: V's residual on its training samples, smaller than on new ones."""
    critic = online_critic(0, u_target="insample")
    x_new, r_new, noisy = noisy_region_data(400, 100)
    v, u = critic.predict(x_new)
    assert u[noisy].mean() > 2.0 * u[~noisy].mean()  # it still ranks the regions
    assert u.mean() < 0.6 * np.abs(v - r_new).mean()  # measured 0.27-0.47 x


def test_u_trains_on_every_u_every_th_step():
    _, x, r = data(10)
    critic = small_critic(steps_per_sample=4, u_every=2)
    critic.update(x[:1], r[:1])
    u_state = [p.detach().clone() for p in critic.u_net.parameters()]
    critic.update(x[1:2], r[1:2])  # 4 steps: U steps on 2 of them
    assert critic.num_updates == 8
    steps = critic.u_optimizer.state[next(critic.u_net.parameters())]["step"]
    assert int(steps) == 4
    assert any(not torch.equal(a, b) for a, b in zip(u_state, critic.u_net.parameters()))


def test_v_does_not_depend_on_u_target():
    """V's gradients never involve U: the same data and seed give the same V."""
    _, x, r = data(40)
    a, b = small_critic(seed=2), small_critic(seed=2, u_target="insample")
    for i in range(40):
        a.update(x[i : i + 1], r[i : i + 1])
        b.update(x[i : i + 1], r[i : i + 1])
    np.testing.assert_array_equal(a.predict(x)[0], b.predict(x)[0])
    assert not np.array_equal(a.predict(x)[1], b.predict(x)[1])


def test_losses_use_the_u_target():
    """L_U is |U - V's current error| (insample) or |U - V's held-out error| (heldout)."""
    _, x, r = data(50)
    for u_target in U_TARGETS:
        critic = small_critic(u_target=u_target)
        critic.update(x, r, steps=20)
        v, u = critic.predict(x)
        assert (u > 0).all()  # predict clips U at 0; losses() does not
        std = critic.reward_std
        target = np.abs(v - r) if u_target == "insample" else critic.heldout_errors
        expected = np.abs(u - target).mean() / std
        assert critic.losses()["loss_u"] == pytest.approx(expected, rel=1e-4)


def test_u_target_is_validated_and_kept_in_config():
    with pytest.raises(ValueError, match="u_target must be 'heldout'.*'insample'.*got 'held'"):
        small_critic(u_target="held")
    with pytest.raises(ValueError, match="u_every must be an int >= 1"):
        small_critic(u_every=0)
    assert U_TARGETS == ("heldout", "insample")
    assert small_critic().config["u_target"] == "heldout"
    assert small_critic(u_target="insample").config["u_target"] == "insample"


@pytest.mark.parametrize("u_target", U_TARGETS)
def test_save_load_keeps_heldout_errors_and_u_target(tmp_path, u_target):
    _, x, r = data(60)
    critic = small_critic(seed=3, u_target=u_target)
    for i in range(40):
        critic.update(x[i : i + 1], r[i : i + 1])
    loaded = UncertaintyCritic.load(critic.save(tmp_path / "critic.pt"))
    assert loaded.config == critic.config
    np.testing.assert_array_equal(loaded.heldout_errors, critic.heldout_errors)
    for a, b in zip(critic.predict(x), loaded.predict(x), strict=True):
        np.testing.assert_array_equal(a, b)
    for c in (critic, loaded):  # training goes on identically
        c.update(x[40:], r[40:])
    np.testing.assert_array_equal(loaded.heldout_errors, critic.heldout_errors)
    for a, b in zip(critic.predict(x), loaded.predict(x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_loads_a_file_whose_config_says_lr(tmp_path):
    """A critic file whose config names the learning rate "lr" loads as learning_rate."""
    _, x, r = data(20)
    critic = small_critic()
    critic.update(x, r)
    state = critic.state_dict()
    state["config"]["lr"] = state["config"].pop("learning_rate")
    torch.save(state, tmp_path / "lr.pt")
    loaded = UncertaintyCritic.load(tmp_path / "lr.pt")
    assert loaded.config == critic.config and loaded.num_samples == 20


def test_loads_a_file_without_heldout_errors(tmp_path):
    """A critic file without held-out errors or u_target: NaN errors, U learns from new samples."""
    _, x, r = data(50)
    critic = small_critic(u_target="insample")
    critic.update(x[:40], r[:40])
    state = critic.state_dict()
    del state["replay"]["e"], state["config"]["u_target"]
    for key in ("v_optimizer", "u_optimizer"):  # the unfused optimiser's saved flags
        for group in state[key]["param_groups"]:
            group["fused"] = None
    torch.save(state, tmp_path / "old.pt")
    loaded = UncertaintyCritic.load(tmp_path / "old.pt")
    assert loaded.config["u_target"] == "heldout"
    assert np.isnan(loaded.heldout_errors).all() and loaded.num_samples == 40
    assert math.isnan(loaded.losses()["loss_u"])  # no known target yet
    assert (
        loaded.v_optimizer.param_groups[0]["fused"] == critic.v_optimizer.param_groups[0]["fused"]
    )
    out = loaded.update(x[40:41], r[40:41])
    assert math.isfinite(out["loss_u"]) and math.isfinite(loaded.losses()["loss_u"])
    assert np.isfinite(loaded.heldout_errors[-1]) and np.isnan(loaded.heldout_errors[:-1]).all()


def write_record(path, archs, rewards):
    record = SearchRecord(path)
    for arch, reward in zip(archs, rewards, strict=True):
        record.append(arch, Evaluation(accuracy=reward, cost=1.0), reward, "activated")
    return path


def test_fit_record_cross_fits_heldout_errors(tmp_path):
    archs, x, r = data(80)
    path = write_record(tmp_path / "record.jsonl", archs, r)
    critic = small_critic(hidden=64)
    assert critic.fit_record(path, steps=200) == 80
    errors = critic.heldout_errors
    assert errors.shape == (80,) and np.isfinite(errors).all()
    v, _ = critic.predict(x)
    # out-of-fold errors are those of networks that did not see the entry: larger than
    # the residuals of the network trained on all of them
    assert errors.mean() > 1.5 * np.abs(v - r).mean()
    assert errors.mean() < np.abs(r - r.mean()).mean()  # but they learnt something
    for kwargs in ({"folds": 0}, {}):
        other = small_critic(**({} if kwargs else {"u_target": "insample"}))
        other.fit_record(path, steps=10, **kwargs)
        assert np.isnan(other.heldout_errors).all()
    with pytest.raises(ValueError, match="folds must be 0"):
        small_critic().fit_record(path, folds=1)


def test_clear_replay_clears_heldout_errors():
    _, x, r = data(20)
    critic = small_critic()
    critic.update(x, r)
    critic.clear_replay()
    assert critic.heldout_errors.shape == (0,) and critic.num_samples == 0
    critic.update(x[:3], r[:3])
    assert critic.heldout_errors.shape == (3,)


def test_predict_cache_never_serves_a_stale_answer():
    _, x, r = data(30)
    critic = small_critic()
    critic.update(x[:20], r[:20])
    first = critic.predict(x[20:])
    first[0][:] = 0.0  # callers may write to what they get
    again = critic.predict(x[20:])
    assert not (again[0] == 0.0).any()
    critic.update(x[20:21], r[20:21])  # trains and moves the statistics
    trained = critic.predict(x[20:])
    assert not np.array_equal(trained[0], again[0])
    with torch.no_grad():  # an in-place edit from outside the critic
        critic.v_net[-1].bias.add_(1.0)
    np.testing.assert_allclose(critic.predict(x[20:])[0], trained[0] + critic.reward_std)
    other = x[20:].copy()
    other[0] = x[0]
    assert critic.predict(other)[0][0] == pytest.approx(critic.predict(x[0])[0][0])
