"""Uncertainty-aware critic (V/U networks) and the UncertaintyGate env wrapper."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy import stats

from fnas_env.env import NASEnv
from fnas_env.evaluators.base import Evaluation, Evaluator
from fnas_env.record import SearchRecord, read_record
from fnas_env.spaces import get_space
from wrappers.critic import UncertaintyCritic
from wrappers.uac import UncertaintyGate

SPACE = get_space("macro")
DIM = SPACE.embedding_dim
# a known objective: 60 + sum over layers of a per-choice gain (best: all choice 2)
GAIN = np.array([[0.0, 2.0, 4.0]] * SPACE.num_decisions) * np.linspace(0.5, 1.5, 8)[:, None]


def objective(arch) -> float:
    return 60.0 + float(sum(GAIN[i, c] for i, c in enumerate(arch.choices)))


class SyntheticMacro(Evaluator):
    """Macro-space evaluator with a known objective that counts its calls."""

    space_name = "macro"

    def __init__(self, fail_on: set | None = None):
        self.calls = 0
        self.fail_on = fail_on or set()

    def _evaluate(self, arch) -> Evaluation:
        self.calls += 1
        if arch.choices in self.fail_on:
            raise RuntimeError("diverged")
        return Evaluation(accuracy=objective(arch), cost=1.0)


class ScriptedCritic:
    """Stub critic: V = 50, U = ``uncertainty(arch choices)``; records updates.

    Training does not change its U, so its version (``num_updates``) stays put
    unless a test changes U on purpose.
    """

    def __init__(
        self, uncertainty=lambda choices: 0.0, num_samples: int = 0, value=lambda choices: 50.0
    ):
        self.uncertainty = uncertainty
        self.value = value
        self.num_samples = num_samples
        self.num_updates = 0
        self.updates: list[tuple[np.ndarray, list[float]]] = []

    def predict(self, embeddings):
        archs = [SPACE.from_one_hot(x) for x in np.atleast_2d(embeddings)]
        u = np.array([float(self.uncertainty(a.choices)) for a in archs])
        return np.array([float(self.value(a.choices)) for a in archs]), u

    def update(self, embeddings, rewards, steps=None):
        self.updates.append((np.array(embeddings), list(rewards)))
        self.num_samples += len(rewards)
        return {}


def one_shot_env(evaluator=None, **kwargs) -> NASEnv:
    return NASEnv(evaluator or SyntheticMacro(), one_shot=True, **kwargs)


def small_critic(**kwargs) -> UncertaintyCritic:
    return UncertaintyCritic(DIM, **{"hidden": 32, "steps_per_sample": 2, **kwargs})


def synthetic_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    archs = [SPACE.sample(rng) for _ in range(n)]
    x = np.stack([SPACE.one_hot(a) for a in archs])
    return archs, x, np.array([objective(a) for a in archs])


# ---- the critic ---------------------------------------------------------------------------


def test_paper_architecture():
    critic = UncertaintyCritic(DIM)
    for net in (critic.v_net, critic.u_net):
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        assert len(linears) == 4
        assert [m.out_features for m in linears] == [200, 200, 200, 1]
        assert sum(isinstance(m, torch.nn.PReLU) for m in net) == 3


def test_v_and_u_losses_decrease_on_a_fixed_dataset():
    _, x, r = synthetic_data(128)
    critic = UncertaintyCritic(DIM, hidden=64)
    critic.update(x, r, steps=0)  # store without training
    before = critic.losses()
    critic.train(300)
    after = critic.losses()
    assert after["loss_v"] < 0.3 * before["loss_v"]
    assert after["loss_u"] < before["loss_u"]
    v, u = critic.predict(x)
    assert np.abs(v - r).mean() < 0.3 * np.abs(r - r.mean()).mean()
    assert (u >= 0).all()


def test_predict_and_update_reject_bad_shapes():
    critic = small_critic()
    with pytest.raises(ValueError, match=f"\\(n, {DIM}\\)"):
        critic.predict(np.zeros((2, DIM + 1)))
    with pytest.raises(ValueError, match="rewards"):
        critic.update(np.zeros((2, DIM)), [1.0])
    with pytest.raises(ValueError, match="finite"):
        critic.update(np.zeros((1, DIM)), [float("nan")])
    with pytest.raises(ValueError, match="embedding_dim"):
        UncertaintyCritic(0)


def test_predictions_are_in_reward_units_and_survive_new_statistics():
    """Standardisation is internal: new rewards move the stats, not the other predictions."""
    _, x, r = synthetic_data(40)
    critic = small_critic()
    critic.update(x[:20], r[:20], steps=50)
    v_before, u_before = critic.predict(x[20:])
    critic.update(x[20:21], [r[20] + 30.0], steps=0)  # statistics change, no training
    v_after, u_after = critic.predict(x[21:])
    np.testing.assert_allclose(v_after, v_before[1:], rtol=1e-5)
    np.testing.assert_allclose(u_after, u_before[1:], rtol=1e-4, atol=1e-6)
    assert abs(critic.reward_mean - r[:20].mean()) > 0.5


@pytest.mark.parametrize("ensemble", [0, 3])
def test_save_load_round_trip(tmp_path, ensemble):
    _, x, r = synthetic_data(60)
    critic = small_critic(seed=3, ensemble=ensemble)
    critic.update(x[:40], r[:40])
    path = critic.save(tmp_path / "critic.pt")
    loaded = UncertaintyCritic.load(path)
    for a, b in zip(critic.predict(x), loaded.predict(x)):
        np.testing.assert_array_equal(a, b)
    pairs = [(critic.v_optimizer, loaded.v_optimizer), (critic.u_optimizer, loaded.u_optimizer)]
    if ensemble:
        pairs.append((critic.e_optimizer, loaded.e_optimizer))
    for opt_a, opt_b in pairs:
        state_a, state_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
        assert state_a.keys() == state_b.keys() and len(state_a) > 0
        for k in state_a:
            for name in ("exp_avg", "exp_avg_sq", "step"):
                torch.testing.assert_close(state_a[k][name], state_b[k][name])
    assert (loaded.num_samples, loaded.num_updates) == (critic.num_samples, critic.num_updates)
    assert (loaded.reward_mean, loaded.reward_std) == (critic.reward_mean, critic.reward_std)
    # training goes on identically (optimiser moments, replay and sampling RNG restored)
    critic.update(x[40:], r[40:])
    loaded.update(x[40:], r[40:])
    for a, b in zip(critic.predict(x), loaded.predict(x)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    with pytest.raises(ValueError, match="not a critic"):
        torch.save({"format": "other"}, tmp_path / "other.pt")
        UncertaintyCritic.load(tmp_path / "other.pt")


def test_ensemble_uncertainty_is_the_members_spread_and_grows_off_the_data():
    """ensemble=K: U is the std of K extra V networks; larger where no sample was seen."""
    with pytest.raises(ValueError, match="ensemble must be 0"):
        small_critic(ensemble=1)
    archs, x, r = synthetic_data(400, seed=4)
    seen = np.array([a.choices[0] != 2 for a in archs])  # never a 2 in the first layer
    critic = small_critic(ensemble=4, seed=1)
    critic.update(x[seen][:150], r[seen][:150], steps=400)
    with torch.no_grad():
        members = torch.stack([net(torch.as_tensor(x)).squeeze(-1) for net in critic.e_nets])
    _, u = critic.predict(x)
    np.testing.assert_allclose(u, members.std(dim=0).double().numpy() * critic.reward_std, 1e-5)
    assert u[~seen].mean() > 1.5 * u[seen][150:].mean()


def write_record(path, archs, rewards):
    record = SearchRecord(path)
    for arch, r in zip(archs, rewards):
        record.append(arch, Evaluation(accuracy=r, cost=1.0), r, "activated")
    # neither trusted rewards nor failed evaluations are training data
    record.append(archs[0], Evaluation(accuracy=10.0, trusted=True), 10.0, "trusted")
    record.append(archs[1], Evaluation(accuracy=0.0, failed=True), 0.0, "activated")
    record.append(archs[2], None, 99.0, "replayed")
    return record


def test_fit_record_learns_from_evaluated_entries_only(tmp_path):
    archs, x, r = synthetic_data(80)
    write_record(tmp_path / "record.jsonl", archs[:60], r[:60])
    critic = small_critic(hidden=64)
    assert critic.fit_record(tmp_path / "record.jsonl", steps=300) == 60
    assert critic.num_samples == 60
    assert critic.reward_mean == pytest.approx(r[:60].mean())
    v, _ = critic.predict(x[60:])  # held-out architectures
    assert np.abs(v - r[60:]).mean() < 0.5 * np.abs(r[60:] - r[:60].mean()).mean()
    # entries work too; failed ones on request
    other = small_critic()
    entries = list(read_record(tmp_path / "record.jsonl"))
    assert other.fit_record(entries, steps=1, include_failed=True) == 61


def test_fit_record_refuses_another_space(tmp_path):
    nb = get_space("nb201")
    arch = nb.sample(np.random.default_rng(0))
    record = SearchRecord(tmp_path / "nb.jsonl")
    record.append(arch, Evaluation(accuracy=80.0), 80.0, "activated")
    with pytest.raises(ValueError, match="transfers within one search space"):
        small_critic().fit_record(tmp_path / "nb.jsonl")


def test_transfer_keeps_weights_and_relearns_the_scale(tmp_path):
    """Table 5: a critic from one search starts another and keeps learning in it."""
    archs, x, r = synthetic_data(120)
    source = small_critic(hidden=64)
    source.update(x[:80], r[:80], steps=200)
    source.save(tmp_path / "source.pt")
    critic = UncertaintyCritic.load(tmp_path / "source.pt")
    v_before, _ = critic.predict(x[80:])
    critic.clear_replay()
    assert critic.num_samples == 0
    np.testing.assert_allclose(critic.predict(x[80:])[0], v_before, rtol=1e-6)
    # the new task: same ranking, other scale (rewards - 20); a few samples fix the offset
    critic.update(x[80:100], r[80:100] - 20.0, steps=60)
    v, _ = critic.predict(x[100:])
    assert critic.num_samples == 20
    assert np.abs(v - (r[100:] - 20.0)).mean() < 0.5 * np.abs(v_before[20:] - (r[100:] - 20)).mean()


@pytest.mark.parametrize("restandardize", [0, 5])
def test_clear_replay_reads_v_in_the_new_tasks_scale(tmp_path, restandardize):
    """restandardize=n: the new task's first n rewards re-scale V's output (no PopArt)."""
    archs, x, r = synthetic_data(120)
    critic = small_critic(hidden=64)
    critic.update(x[:80], r[:80], steps=100)
    old_mean, old_std = critic.reward_mean, critic.reward_std
    v_before, _ = critic.predict(x[100:])
    critic.clear_replay(restandardize=restandardize)
    new_rewards = 0.5 * r[80:85] - 20.0  # another task: other offset and spread
    critic.update(x[80:85], new_rewards, steps=0)
    v_after, _ = critic.predict(x[100:])
    if restandardize:
        expected = (v_before - old_mean) / old_std * new_rewards.std() + new_rewards.mean()
    else:  # PopArt keeps predictions in the old task's units
        expected = v_before
    np.testing.assert_allclose(v_after, expected, rtol=1e-4, atol=1e-3)
    # after the first n rewards the statistics move with the PopArt correction again
    critic.update(x[85:86], [100.0], steps=0)
    np.testing.assert_allclose(critic.predict(x[100:])[0], v_after, rtol=1e-4, atol=1e-3)


# ---- the gate --------------------------------------------------------------------------------


def final_step(env, choices):
    env.reset(seed=0)
    return env.step(np.asarray(choices))


@pytest.mark.parametrize(
    "first_layer, uncertainty, evaluated",
    [(0, 0.1, False), (1, 1.0, False), (2, 5.0, True)],
)
def test_fixed_threshold_trusts_low_u_and_evaluates_high_u(first_layer, uncertainty, evaluated):
    table = {0: 0.1, 1: 1.0, 2: 5.0}
    evaluator = SyntheticMacro()
    gate = UncertaintyGate(
        one_shot_env(evaluator),
        ScriptedCritic(lambda c: table[c[0]]),
        threshold=1.0,
        warmup=0,
        max_relative_error=None,
    )
    _, reward, terminated, _, info = final_step(gate, [first_layer] + [1] * 7)
    assert terminated
    assert info["activated"] is evaluated and info["trusted"] is not evaluated
    assert info["uncertainty"] == uncertainty and info["predicted_reward"] == 50.0
    assert evaluator.calls == int(evaluated)
    assert reward == (objective(SPACE.from_choices([first_layer] + [1] * 7)) if evaluated else 50.0)


def stream_fraction(gate, steps: int, rng) -> float:
    trusted = []
    for _ in range(steps):
        _, _, _, _, info = final_step(gate, SPACE.sample(rng).choices)
        trusted.append(info["trusted"])
    return float(np.mean(trusted[steps // 3 :]))


@pytest.mark.parametrize(
    "threshold, trusted_fraction, expected",
    [("adaptive", 0.2, 0.2), ("adaptive", 0.5, 0.5), ("adaptive", 0.8, 0.8)]
    + [(0.3, 0.8, 0.3), (0.3, 0.2, 0.3)],  # a fixed threshold ignores the target fraction
)
def test_adaptive_threshold_reaches_the_target_fraction(threshold, trusted_fraction, expected):
    u_rng = np.random.default_rng(5)
    critic = ScriptedCritic(lambda c: u_rng.random())  # U ~ uniform(0, 1)
    gate = UncertaintyGate(
        one_shot_env(),
        critic,
        threshold=threshold,
        trusted_fraction=trusted_fraction,
        warmup=0,
        window=100,
        max_relative_error=None,
    )
    fraction = stream_fraction(gate, 600, np.random.default_rng(0))
    assert fraction == pytest.approx(expected, abs=0.05)
    assert gate.metrics()["trusted_fraction"] == pytest.approx(expected, abs=0.06)


def test_adaptive_threshold_follows_shrinking_uncertainty():
    """U falls 100x as the critic learns; the quantile follows it."""
    u_rng = np.random.default_rng(2)
    scale = [1.0]
    critic = ScriptedCritic(lambda c: scale[0] * u_rng.random())
    gate = UncertaintyGate(one_shot_env(), critic, warmup=0, window=100, max_relative_error=None)
    rng = np.random.default_rng(0)
    stream_fraction(gate, 300, rng)
    scale[0] = 0.01
    critic.num_updates += 1  # the critic changed: the gate recomputes the window's U
    assert stream_fraction(gate, 600, rng) == pytest.approx(0.8, abs=0.06)  # the default
    assert gate.current_threshold() < 0.01


def test_max_uncertainty_caps_the_adaptive_threshold():
    u_rng = np.random.default_rng(4)
    gate = UncertaintyGate(
        one_shot_env(),
        ScriptedCritic(lambda c: u_rng.random()),
        warmup=0,
        max_uncertainty=0.1,
        max_relative_error=None,
    )
    assert stream_fraction(gate, 600, np.random.default_rng(0)) == pytest.approx(0.1, abs=0.04)


@pytest.mark.parametrize("kappa", [0.0, 1.0])
def test_ucb_selection_activates_the_most_promising_fraction(kappa):
    """selection='ucb': the activated architectures are the top (1 - trusted_fraction) by
    V + kappa * U of the stream, whatever U alone says."""
    v_rng, u_rng = np.random.default_rng(7), np.random.default_rng(8)
    values: dict[tuple, tuple[float, float]] = {}

    def vu(choices):
        if choices not in values:
            values[choices] = (60.0 + 10.0 * v_rng.random(), u_rng.random())
        return values[choices]

    critic = ScriptedCritic(lambda c: vu(c)[1], value=lambda c: vu(c)[0])
    gate = UncertaintyGate(
        one_shot_env(),
        critic,
        trusted_fraction=0.9,
        warmup=0,
        window=100,
        max_relative_error=None,
        verify_best=False,
        selection="ucb",
        kappa=kappa,
    )
    rng = np.random.default_rng(0)
    scores, trusted = [], []
    for _ in range(600):
        arch = SPACE.sample(rng)
        _, _, _, _, info = final_step(gate, arch.choices)
        if info["cached"]:
            continue
        v, u = vu(arch.choices)
        scores.append(v + kappa * u)
        trusted.append(info["trusted"])
    scores, trusted = np.array(scores[200:]), np.array(trusted[200:])
    assert trusted.mean() == pytest.approx(0.9, abs=0.04)
    # every activated one scores above every trusted one's threshold: the top tenth
    assert scores[~trusted].min() > np.quantile(scores, 0.8)
    assert np.median(scores[~trusted]) > np.quantile(scores, 0.9)


def test_ucb_and_uncertainty_selection_disagree_on_a_promising_certain_architecture():
    """A high-V, low-U architecture: the paper's rule trusts it, UCB activates it."""

    def value(c):
        return 90.0 if c[0] == 2 else 50.0

    def uncertainty(c):
        return 0.0 if c[0] == 2 else 1.0

    verdicts = {}
    for selection in ("uncertainty", "ucb"):
        gate = UncertaintyGate(
            one_shot_env(),
            ScriptedCritic(uncertainty, value=value),
            threshold=0.5 if selection == "uncertainty" else 60.0,
            warmup=0,
            max_relative_error=None,
            verify_best=False,
            selection=selection,
        )
        verdicts[selection] = final_step(gate, [2] + [1] * 7)[4]["trusted"]
    assert verdicts == {"uncertainty": True, "ucb": False}


def test_neighbours_change_exactly_one_decision():
    gate = UncertaintyGate(one_shot_env(), ScriptedCritic(), incumbents=1)
    arch = SPACE.from_choices([1] * 8)
    neighbours = gate.rule.neighbours(arch)
    assert len(set(neighbours)) == sum(n - 1 for n in SPACE.num_choices) == len(neighbours)
    assert all(sum(a != b for a, b in zip(n.choices, arch.choices)) == 1 for n in neighbours)


def exact_screening_gate(env: NASEnv, warmup: int, incumbents: int) -> UncertaintyGate:
    """A UCB gate whose critic knows the objective (V = objective, U = 0) and whose
    threshold activates every proposal (so only alternatives are trusted)."""
    critic = ScriptedCritic(value=lambda c: objective(SPACE.from_choices(c)))
    return UncertaintyGate(
        env,
        critic,
        threshold=0.0,
        warmup=warmup,
        max_relative_error=None,
        verify_best=False,
        selection="ucb",
        incumbents=incumbents,
    )


@pytest.mark.parametrize("incumbents", [0, 1])
def test_incumbents_neighbour_is_evaluated_in_place_of_a_lower_scoring_proposal(incumbents):
    """The critic knows the objective exactly (V = objective, U = 0) and the threshold
    activates every proposal: with ``incumbents=1`` the best neighbour of the incumbent
    is evaluated instead of a proposal it beats, the proposal is trusted; a proposal
    better than every neighbour is evaluated itself."""
    evaluator = SyntheticMacro()
    env = one_shot_env(evaluator)
    gate = exact_screening_gate(env, warmup=1, incumbents=incumbents)
    critic = gate.critic
    incumbent, worse, best = [1] * 8, [0] + [1] * 7, [2] * 8
    assert final_step(gate, incumbent)[4]["activated"]  # warm-up: no alternative yet
    _, reward, _, _, info = final_step(gate, worse)
    neighbour = SPACE.from_choices([1] * 7 + [2])  # the incumbent's best neighbour
    entries = [(e.arch, e.kind) for e in env.record.entries]
    if incumbents:
        assert info["trusted"] and reward == objective(SPACE.from_choices(worse))
        assert info["aside_activated"] == 1 and info["alternative"] == SPACE.to_string(neighbour)
        assert entries[1] == (SPACE.to_string(neighbour), "activated")
        assert entries[2][1] == "trusted"
        assert critic.updates[-1][1] == [objective(neighbour)]
        assert gate.metrics()["alternatives"] == 1.0
    else:
        assert info["activated"] and [k for _, k in entries] == ["activated", "activated"]
        assert "aside_activated" not in info
    assert evaluator.calls == 2
    info = final_step(gate, best)[4]  # beats every neighbour of the incumbents
    assert info["activated"] and info["reward"] == objective(SPACE.from_choices(best))
    assert gate.rule.num_alternatives == incumbents


def test_no_alternative_while_the_critic_is_warming_up_or_trust_is_off():
    gate = exact_screening_gate(one_shot_env(), warmup=3, incumbents=2)
    rng = np.random.default_rng(0)
    kinds = [final_step(gate, SPACE.sample(rng).choices)[4]["activated"] for _ in range(3)]
    assert kinds == [True] * 3 and gate.rule.num_alternatives == 0
    gate.set_trust_enabled(False)
    assert final_step(gate, [0] * 8)[4]["activated"]  # the worst proposal, still itself
    assert gate.rule.num_alternatives == 0


def test_warmup_never_trusts():
    evaluator = SyntheticMacro()
    critic = ScriptedCritic(lambda c: 0.0)  # always sure of itself
    gate = UncertaintyGate(
        one_shot_env(evaluator), critic, threshold=1.0, warmup=12, max_relative_error=None
    )
    rng = np.random.default_rng(0)
    flags = [not final_step(gate, SPACE.sample(rng).choices)[4]["trusted"] for _ in range(20)]
    assert flags == [True] * 12 + [False] * 8
    assert evaluator.calls == 12 == critic.num_samples


def test_pretrained_critic_skips_warmup():
    gate = UncertaintyGate(
        one_shot_env(), ScriptedCritic(num_samples=100), threshold=1.0, max_relative_error=None
    )
    assert final_step(gate, [1] * 8)[4]["trusted"] is True


@pytest.mark.parametrize("exact, trusts", [(True, True), (False, False)])
def test_trust_follows_the_critics_measured_held_out_error(exact, trusts):
    """An exact V (error 0) is trusted once the window is measured; a V that predicts a
    constant (no better than the mean: relative error >= 1) never is."""
    evaluator = SyntheticMacro()
    value = (lambda c: objective(SPACE.from_choices(c))) if exact else (lambda c: 60.0)
    gate = UncertaintyGate(
        one_shot_env(evaluator),
        ScriptedCritic(value=value),
        threshold=1.0,
        warmup=0,
        max_relative_error=0.5,
        quality_window=6,
        verify_best=False,
    )
    rng = np.random.default_rng(0)
    flags = [not final_step(gate, SPACE.sample(rng).choices)[4]["trusted"] for _ in range(12)]
    assert flags[:6] == [True] * 6  # the quality is not measured before 6 samples
    assert flags[6:] == [not trusts] * 6
    error = gate.metrics()["relative_error"]
    assert (error == 0.0) if exact else (error >= 1.0)


def test_quality_window_needs_two_samples_and_max_relative_error_a_positive_limit():
    with pytest.raises(ValueError, match="quality_window"):
        UncertaintyGate(one_shot_env(), ScriptedCritic(), quality_window=1)
    with pytest.raises(ValueError, match="max_relative_error"):
        UncertaintyGate(one_shot_env(), ScriptedCritic(), max_relative_error=0.0)


def test_a_repeat_is_served_from_the_record_not_trusted_nor_learnt_again():
    evaluator = SyntheticMacro()
    uncertainty = {"u": 9.0}
    critic = ScriptedCritic(lambda c: uncertainty["u"])
    env = one_shot_env(evaluator)
    gate = UncertaintyGate(env, critic, threshold=1.0, warmup=0, max_relative_error=None)
    arch = [2, 1, 0, 0, 1, 2, 2, 1]
    first = final_step(gate, arch)
    uncertainty["u"] = 0.0  # the critic would now trust it
    second = final_step(gate, arch)
    assert first[4]["activated"] and not second[4]["trusted"] and second[4]["cached"]
    assert second[1] == first[1] == objective(SPACE.from_choices(arch))  # the real reward
    assert evaluator.calls == 1 and len(critic.updates) == 1
    m = gate.metrics()
    assert (m["cached"], m["activated"], m["trusted"]) == (1.0, 1.0, 0.0)
    assert env.record.entries[-1].kind == "cached"


def test_trust_disabled_never_trusts():
    evaluator = SyntheticMacro()
    gate = UncertaintyGate(
        one_shot_env(evaluator), ScriptedCritic(), threshold=1.0, warmup=0, max_relative_error=None
    )
    gate.set_trust_enabled(False)
    assert gate.trust_enabled is False
    rng = np.random.default_rng(0)
    for _ in range(15):
        assert final_step(gate, SPACE.sample(rng).choices)[4]["trusted"] is False
    assert evaluator.calls == 15
    gate.set_trust_enabled(True)
    assert final_step(gate, [2] * 8)[4]["trusted"] is True
    assert evaluator.calls == 15


def test_trusted_step_calls_no_evaluation_and_records_a_trusted_entry():
    evaluator = SyntheticMacro()
    env = one_shot_env(evaluator)
    gate = UncertaintyGate(env, ScriptedCritic(), threshold=1.0, warmup=0, max_relative_error=None)
    _, reward, terminated, truncated, info = final_step(gate, [2, 1, 0, 0, 1, 2, 2, 1])
    assert evaluator.calls == 0
    assert (reward, terminated, truncated) == (50.0, True, False)
    assert info["trusted"] is True and info["activated"] is False
    assert info["cost"] == 0.0 and info["reward"] == 50.0
    entry = env.record.entries[-1]
    assert entry.kind == "trusted" and entry.reward == 50.0 and entry.arch == "21001221"
    assert entry.extras["uncertainty"] == 0.0
    assert (env.counters.trusted, env.counters.activated) == (1, 0)


def test_evaluated_step_trains_the_critic_on_the_real_reward():
    evaluator = SyntheticMacro()
    critic = ScriptedCritic(lambda c: 9.0)
    gate = UncertaintyGate(
        one_shot_env(evaluator),
        critic,
        threshold=1.0,
        warmup=0,
        update_steps=3,
        max_relative_error=None,
    )
    arch = SPACE.from_choices([2, 2, 2, 2, 1, 1, 0, 0])
    info = final_step(gate, arch.choices)[4]
    assert info["activated"] is True and info["trusted"] is False and evaluator.calls == 1
    ((x, rewards),) = critic.updates
    np.testing.assert_array_equal(x[0], SPACE.one_hot(arch))
    assert rewards == [objective(arch)]


def test_failed_evaluation_is_not_learnt_from():
    arch = SPACE.from_choices([1] * 8)
    critic = ScriptedCritic(lambda c: 9.0)
    evaluator = SyntheticMacro({arch.choices})
    gate = UncertaintyGate(
        one_shot_env(evaluator), critic, threshold=1.0, warmup=0, max_relative_error=None
    )
    with pytest.warns(RuntimeWarning, match="failed"):
        _, reward, _, _, info = final_step(gate, arch.choices)
    assert info["failed"] is True and reward == 0.0 and evaluator.calls == 1
    assert critic.updates == [] and math.isnan(gate.metrics()["v_mae"])


def test_v_error_is_measured_before_training():
    archs, x, r = synthetic_data(40)
    critic = small_critic()
    critic.update(x[:30], r[:30])
    gate = UncertaintyGate(
        one_shot_env(), critic, warmup=10**6, max_relative_error=None
    )  # never trust
    errors = []
    for arch in archs[30:]:
        v_before = float(critic.predict(SPACE.one_hot(arch))[0][0])
        info = final_step(gate, arch.choices)[4]
        assert info["predicted_reward"] == pytest.approx(v_before)
        assert float(critic.predict(SPACE.one_hot(arch))[0][0]) != pytest.approx(v_before)
        errors.append(abs(v_before - objective(arch)))
    metrics = gate.metrics()
    assert metrics["v_mae"] == pytest.approx(np.mean(errors))
    assert metrics["v_mae_recent"] == pytest.approx(np.mean(errors))
    assert math.isfinite(metrics["v_spearman"]) and math.isfinite(metrics["u_error_spearman"])
    assert metrics["critic_samples"] == 40 and metrics["trusted_fraction"] == 0.0


@pytest.mark.parametrize("verify_best", [True, False])
def test_verify_best_evaluates_would_be_incumbents(verify_best):
    """U would trust everything; with verify_best, a new arch whose V beats the best is measured."""
    incumbent = (1,) * 8  # evaluated first (warm-up): reward objective(incumbent)
    best = objective(SPACE.from_choices(incumbent))
    better, worse = (2,) + (1,) * 7, (0,) + (1,) * 7  # V above / below the incumbent's reward
    evaluator = SyntheticMacro()
    critic = ScriptedCritic(value=lambda c: best + 1.0 if c in (better, incumbent) else best - 1.0)
    gate = UncertaintyGate(
        one_shot_env(evaluator),
        critic,
        threshold=1.0,
        warmup=1,
        verify_best=verify_best,
        max_relative_error=None,
    )
    assert final_step(gate, incumbent)[4]["activated"]  # warm-up
    assert gate.best_reward == best
    assert final_step(gate, worse)[4]["trusted"]
    repeat = final_step(gate, incumbent)[4]  # known: served its recorded result
    assert repeat["cached"] and repeat["reward"] == best
    assert final_step(gate, better)[4]["activated"] is verify_best
    assert gate.metrics()["verified"] == float(verify_best)
    assert evaluator.calls == 1 + int(verify_best)
    if verify_best:  # now known: a repeat is served from the record
        assert gate.best_reward == objective(SPACE.from_choices(better))
        assert final_step(gate, better)[4]["cached"]


def test_metrics_keys_and_values():
    u_rng = np.random.default_rng(0)
    gate = UncertaintyGate(
        one_shot_env(), ScriptedCritic(lambda c: u_rng.random()), warmup=0, max_relative_error=None
    )
    assert math.isnan(gate.metrics()["trusted_fraction"])
    stream_fraction(gate, 60, np.random.default_rng(1))
    metrics = gate.metrics()
    assert set(metrics) == {
        "trusted_fraction",
        "trusted",
        "activated",
        "verified",
        "alternatives",
        "cached",
        "relative_error",
        "v_mae",
        "v_mae_recent",
        "v_spearman",
        "u_error_pearson",
        "u_error_spearman",
        "threshold",
        "critic_updates",
        "critic_samples",
    }
    assert metrics["trusted"] + metrics["activated"] + metrics["cached"] == 60
    assert len(gate.critic.updates) == metrics["activated"] == metrics["critic_samples"]
    assert 0.0 < metrics["threshold"] < 1.0
    assert math.isnan(metrics["v_spearman"])  # V is constant: no rank correlation
    assert all(isinstance(v, float) for v in metrics.values())


def test_learnt_critic_ranks_and_gate_trusts_where_it_is_accurate():
    """Real critic on the synthetic objective: trusted rewards are close to the truth."""
    evaluator = SyntheticMacro()
    critic = small_critic(hidden=64, steps_per_sample=4)
    gate = UncertaintyGate(
        one_shot_env(evaluator),
        critic,
        warmup=40,
        window=50,
        trusted_fraction=0.5,
        max_relative_error=None,
    )
    rng = np.random.default_rng(0)
    trusted_error = []
    for _ in range(100):
        arch = SPACE.sample(rng)
        _, reward, _, _, info = final_step(gate, arch.choices)
        if info["trusted"]:
            trusted_error.append(abs(reward - objective(arch)))
    assert 0.2 < gate.metrics()["trusted_fraction"] < 0.45  # 40 warm-up samples, then ~half
    cached = gate.metrics()["cached"]  # repeats of the random stream: served, not learnt
    assert evaluator.calls == critic.num_samples == 100 - len(trusted_error) - cached
    _, x, r = synthetic_data(300, seed=9)  # held-out architectures
    v, _ = critic.predict(x)
    assert stats.spearmanr(v, r)[0] > 0.9
    assert np.mean(trusted_error) < 0.3 * np.abs(r - r.mean()).mean()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": "high"}, "adaptive"),
        ({"threshold": -1.0}, "adaptive"),
        ({"trusted_fraction": 1.0}, "trusted_fraction"),
        ({"warmup": -1}, "warmup"),
        ({"critic": object()}, "predict"),
        ({"critic": UncertaintyCritic(DIM + 1, hidden=4)}, "one search space"),
        ({"update_steps": -2}, "update_steps"),
        ({"selection": "greedy"}, "selection"),
        ({"kappa": -1.0}, "kappa"),
        ({"kappa": float("nan")}, "kappa"),
        ({"incumbents": -1}, "incumbents"),
        ({"incumbents": 1.5}, "incumbents"),
    ],
)
def test_gate_rejects_bad_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        UncertaintyGate(one_shot_env(), **kwargs)


def test_wrappers_under_the_gate_see_every_step_and_non_nas_envs_are_refused():
    """The gate hands trusted evaluations to the env (provide), so the step still goes
    through every wrapper below it: a Monitor there records trusted episodes too."""
    from stable_baselines3.common.monitor import Monitor

    monitor = Monitor(one_shot_env())
    critic = ScriptedCritic(lambda choices: float(choices[0]), num_samples=100)
    gate = UncertaintyGate(monitor, critic, threshold=0.5, max_relative_error=None)
    gate.reset(seed=0)
    gate.action_space.seed(0)
    rewards, evaluated = [], []
    for _ in range(30):
        _, reward, *_, info = gate.step(gate.action_space.sample())
        gate.reset()
        rewards.append(reward)
        evaluated.append(not info["trusted"])
    assert not all(evaluated) and any(evaluated)  # some trusted (V = 50), some evaluated
    assert monitor.get_episode_rewards() == pytest.approx(rewards)
    assert all(r == 50.0 for r, e in zip(rewards, evaluated) if not e)
    with pytest.raises(TypeError, match="NASEnv"):
        UncertaintyGate(gym.make("CartPole-v1"), ScriptedCritic())


def test_gate_on_gym_make_env_with_real_benchmark(benchmark_dir):
    """Sequential episodes on NAS-Bench-Macro through gym.make's wrapper stack."""
    import fnas_env  # noqa: F401  (registers the ids)

    env = gym.make("FNAS-Macro-v0", benchmark_dir=benchmark_dir)
    gate = UncertaintyGate(env, small_critic(), warmup=3, max_relative_error=None)
    rng = np.random.default_rng(0)
    kinds = []
    for episode in range(8):
        gate.reset(seed=episode)
        for t in range(SPACE.num_decisions):
            obs, reward, terminated, truncated, info = gate.step(int(rng.integers(3)))
            assert terminated == (t == SPACE.num_decisions - 1) and not truncated
        kinds.append(not info["trusted"])
        assert 0.0 < reward < 100.0 and gate.observation_space.contains(obs)
    counters = env.unwrapped.record.counters
    assert kinds[:3] == [True] * 3 and not all(kinds)
    assert (counters.activated, counters.trusted) == (kinds.count(True), kinds.count(False))


def test_works_with_sb3_algorithms_and_a_shared_critic():
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.env_checker import check_env
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(
            UncertaintyGate(
                NASEnv(SyntheticMacro()), small_critic(), warmup=2, max_relative_error=None
            )
        )

    critic = small_critic(steps_per_sample=1)
    gates = [
        UncertaintyGate(
            NASEnv(SyntheticMacro()), critic, warmup=6, update_steps=1, max_relative_error=None
        )
        for _ in range(2)
    ]
    venv = DummyVecEnv([lambda g=g: Monitor(g) for g in gates])
    for algo, extra in ((PPO, {"batch_size": 32}), (A2C, {})):
        model = algo("MlpPolicy", venv, n_steps=16, seed=0, device="cpu", **extra)
        model.learn(total_timesteps=64)
    activated = sum(g.unwrapped.record.counters.activated for g in gates)
    trusted = sum(g.unwrapped.record.counters.trusted for g in gates)
    cached = sum(g.unwrapped.record.counters.cached for g in gates)
    assert activated + trusted + cached == 128 // SPACE.num_decisions
    assert critic.num_samples == activated  # one critic learnt from both envs
    assert trusted == sum(g.rule.num_trusted for g in gates) > 0
    trusted = venv.env_method("get_wrapper_attr", "trust_enabled")
    assert trusted == [True, True]
    venv.env_method("set_trust_enabled", False)
    assert [g.trust_enabled for g in gates] == [False, False]


def test_features_encoding_feeds_the_critic_the_spaces_features(benchmark_dir):
    import gymnasium as gym

    env = gym.make("FNAS-NB201-v0", benchmark_dir=benchmark_dir, one_shot=True)
    space = env.unwrapped.search_space
    with pytest.raises(ValueError, match="encoding"):
        UncertaintyGate(env, UncertaintyCritic(space.embedding_dim, hidden=16), encoding="paths")
    with pytest.raises(ValueError, match="114"):  # the critic must take the features
        UncertaintyGate(env, UncertaintyCritic(space.embedding_dim, hidden=16), encoding="features")
    critic = UncertaintyCritic(space.feature_dim, hidden=16)
    gate = UncertaintyGate(env, critic, encoding="features", warmup=10**6)
    arch = space.sample(np.random.default_rng(0))
    final_step(gate, arch.choices)
    np.testing.assert_array_equal(critic._x[-1], space.features(arch))
