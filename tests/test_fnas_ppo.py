"""FNASRecurrentPPO: UAC batch rule, bounded resampling, AEB replay, weighted loss, save/load."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.experience import Experience, ExperienceBuffer
from agents.fnas_buffer import Episode, WeightedRecurrentRolloutBuffer
from agents.fnas_ppo import FNASRecurrentPPO, make_fnas_controller
from fnas_env.env import NASEnv
from fnas_env.evaluators.base import Evaluation, Evaluator
from fnas_env.reward import RewardConfig

T = 8  # macro space: 8 decisions


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny LSTMs run ~10x faster on one thread than on two contended ones."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


class TwosEvaluator(Evaluator):
    """Fake macro-space benchmark: accuracy grows with the number of '2' layers.

    5 points per '2' layer plus 2 if the first and last layers are both '2';
    optimum ``22222222`` (accuracy 92).
    """

    space_name = "macro"
    objective = None

    def _evaluate(self, arch):
        c = arch.choices
        acc = 50.0 + 5.0 * sum(x == 2 for x in c) + 2.0 * (c[0] == 2 and c[-1] == 2)
        return Evaluation(accuracy=acc, cost=1.0)


class CountingGate(gym.Wrapper):
    """Stand-in UAC gate: trusts all but every ``evaluate_every``-th architecture."""

    def __init__(self, env: gym.Env, evaluate_every: int = 3):
        super().__init__(env)
        self.trust_enabled = True
        self.evaluate_every = evaluate_every
        self.completed = 0
        self.trust_history: list[bool] = []

    def set_trust_enabled(self, flag: bool) -> None:
        self.trust_enabled = bool(flag)
        self.trust_history.append(self.trust_enabled)

    def metrics(self) -> dict[str, float]:
        return {"completed": float(self.completed)}

    def step(self, action):
        base = self.env.unwrapped
        arch = base.pending_architecture(action)
        if arch is None:
            return self.env.step(action)
        self.completed += 1
        if self.trust_enabled and self.completed % self.evaluate_every != 0:
            evaluation = Evaluation(accuracy=60.0, trusted=True, cost=0.0)
            return base.finish(action, evaluation, reward=60.0)
        return self.env.step(action)


class AlwaysTrusted(gym.Wrapper):
    """A critic-scored env without ``set_trust_enabled``: the rule cannot stop trust."""

    def step(self, action):
        base = self.env.unwrapped
        arch = base.pending_architecture(action)
        if arch is None:
            return self.env.step(action)
        return base.finish(action, Evaluation(accuracy=60.0, trusted=True), reward=60.0)


def nas_env(evaluator: Evaluator | None = None) -> NASEnv:
    return NASEnv(evaluator or TwosEvaluator(), RewardConfig(target=None))


def start(model: FNASRecurrentPPO, total: int = 10_000) -> BaseCallback:
    """What ``learn`` does before its first rollout; returns the callback to pass."""
    _, callback = model._setup_learn(total, None)
    callback.on_training_start(locals(), globals())
    return callback


def rollout(model: FNASRecurrentPPO, callback: BaseCallback) -> WeightedRecurrentRolloutBuffer:
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    return model.rollout_buffer


# ---- UAC batch rule ------------------------------------------------------------------------
def test_batch_rule_keeps_at_most_half_trusted_episodes():
    gate = CountingGate(nas_env(), evaluate_every=3)  # 2/3 of the samples trusted
    model = make_fnas_controller(gate, aeb=False, seed=0)
    callback = start(model)
    for _ in range(4):
        buffer = rollout(model, callback)
        kinds = buffer.episode_kinds
        assert len(kinds) == model.n_steps // T == 8
        assert kinds.count("trusted") == kinds.count("activated") == 4  # exactly half
        assert model.logger.name_to_value["fnas/trusted_fraction"] <= 0.5
        assert model.logger.name_to_value["uac/completed"] == gate.completed
        model.train()
    counters = model.fnas_counters
    assert counters.discarded_trusted > 0  # the rule had something to do
    assert counters.trusted == 4 * 4  # exactly the quota: 4 of 8 per batch
    assert counters.unfilled_batches == 0
    # discarded steps still count as timesteps
    assert model.num_timesteps == T * gate.completed


class ReplacingGate(CountingGate):
    """CountingGate whose trusted proposals were each replaced by an evaluation aside."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if info.get("trusted"):
            info["aside_activated"] = 1
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize("keep_replaced", [False, True])
def test_replaced_proposals_are_kept_outside_the_quota_on_request(keep_replaced):
    """keep_replaced: a trusted episode paid for by an evaluation aside is never
    discarded; by default the batch rule discards it like any trusted one."""
    gate = ReplacingGate(nas_env(), evaluate_every=3)
    model = make_fnas_controller(gate, aeb=False, seed=0, keep_replaced=keep_replaced)
    callback = start(model)
    kinds = rollout(model, callback).episode_kinds
    counters = model.fnas_counters
    assert counters.aside == counters.trusted + counters.discarded_trusted
    if keep_replaced:
        assert counters.discarded_trusted == 0 and kinds.count("trusted") > len(kinds) // 2
    else:
        assert counters.discarded_trusted > 0 and kinds.count("trusted") == len(kinds) // 2


def test_resampling_is_bounded_then_trust_returns():
    gate = CountingGate(nas_env(), evaluate_every=10**9)  # trusts everything
    model = make_fnas_controller(gate, aeb=False, seed=0, max_resample_factor=1.0)
    callback = start(model)
    buffer = rollout(model, callback)
    # quota: 4 trusted; bound: 8 discarded episodes (one batch); then 4 really evaluated
    assert buffer.episode_kinds.count("trusted") == 4
    assert buffer.episode_kinds.count("activated") == 4
    assert model.fnas_counters.discarded_trusted == 8
    assert model.fnas_counters.unfilled_batches == 1
    assert model.logger.name_to_value["fnas/unfilled_batch"] == 1
    assert gate.trust_history == [False] and not gate.trust_enabled
    assert model.num_timesteps == 16 * T
    rollout(model, callback)
    assert gate.trust_history[:2] == [False, True]  # re-enabled for the next rollout


def test_without_trust_switch_the_rule_gives_way_with_a_warning():
    model = FNASRecurrentPPO(
        "MlpLstmPolicy",
        AlwaysTrusted(nas_env()),
        n_steps=2 * T,
        batch_size=2 * T,
        seed=0,
        max_resample_factor=2.0,
    )
    callback = start(model)
    with pytest.warns(RuntimeWarning, match="set_trust_enabled"):
        buffer = rollout(model, callback)
    assert buffer.n_episodes == 2
    assert model.fnas_counters.discarded_trusted == 4  # max_resample_factor 2 x 2 episodes


def test_uac_off_evaluates_everything_like_the_plain_controller():
    gate = CountingGate(nas_env(), evaluate_every=3)
    model = make_fnas_controller(gate, uac=False, aeb=False, seed=0)
    assert not gate.trust_enabled and model.experience_buffer is None
    model.learn(2 * model.n_steps)
    assert model.fnas_counters.discarded_trusted == 0
    assert gate.unwrapped.counters.activated == gate.completed == 16


# ---- AEB replay ----------------------------------------------------------------------------
def test_recomputed_log_probs_equal_rollout_log_probs():
    venv = DummyVecEnv([lambda: CountingGate(nas_env(), evaluate_every=2) for _ in range(2)])
    model = FNASRecurrentPPO("MlpLstmPolicy", venv, n_steps=2 * T, batch_size=4 * T, seed=1)
    buffer = rollout(model, start(model))
    slices = buffer.episode_slices()
    assert len(slices) == 4
    observations = [buffer.observations[s, 0] for s in slices]
    actions = [buffer.actions[s, 0] for s in slices]
    values, log_probs = model.evaluate_episodes(observations, actions)
    for s, value, log_prob in zip(slices, values, log_probs):
        np.testing.assert_allclose(log_prob, buffer.log_probs[s, 0], atol=1e-5)
        np.testing.assert_allclose(value, buffer.values[s, 0], atol=1e-5)


@pytest.mark.parametrize("replay_mode", ["share", "extra"])
def test_replays_fill_at_most_the_allowed_fraction(replay_mode):
    env = nas_env()
    experiences = ExperienceBuffer(capacity=10)
    model = FNASRecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=4 * T,
        batch_size=8 * T,
        seed=0,
        experience_buffer=experiences,
        replay_mode=replay_mode,
    )
    callback = start(model)
    new_episodes = 0
    for fraction in (0.5, 0.25, 0.0):
        model.max_replay_fraction = fraction
        for _ in range(3):
            kinds = rollout(model, callback).episode_kinds
            assert kinds.count("replayed") <= fraction * len(kinds)
            new = len(kinds) - kinds.count("replayed")
            new_episodes += new
            if replay_mode == "share":  # the batch keeps 4 episodes, replays take slots
                assert len(kinds) == 4
            else:  # 4 new episodes, replays on top
                assert new == 4
    assert len(experiences) == 10  # the buffer filled up, so replay was not starved
    assert model.fnas_counters.replayed > 0
    assert env.counters.replayed == model.fnas_counters.replayed  # counted in the record
    assert env.counters.activated == new_episodes
    if replay_mode == "share":  # 2 + 2 + 2 replays at 0.5 after the first rollout, 1 x 3 at 0.25
        assert env.counters.replayed == 2 + 2 + 3 * 1
        assert env.counters.activated == 4 * 9 - env.counters.replayed
    else:
        assert env.counters.activated == 4 * 9


def test_a_preloaded_buffer_is_replayed_from_the_first_rollout():
    """share mode plans replays from the env's horizon, so a transferred buffer counts at once."""
    source = FNASRecurrentPPO(
        "MlpLstmPolicy",
        nas_env(),
        n_steps=4 * T,
        batch_size=4 * T,
        seed=0,
        experience_buffer=ExperienceBuffer(capacity=10),
    )
    source.learn(total_timesteps=12 * T)
    loaded = source.experience_buffer
    assert len(loaded) >= 2
    env = nas_env()
    model = FNASRecurrentPPO(
        "MlpLstmPolicy", env, n_steps=4 * T, batch_size=4 * T, seed=1, experience_buffer=loaded
    )
    kinds = rollout(model, start(model)).episode_kinds
    assert kinds.count("replayed") == 2  # half of the 4 slots
    assert len(kinds) == 4 and env.counters.activated == 2


def test_replay_weights_are_truncated_ratio_times_importance():
    """Replaying the rollout's own episodes: rho = 1 for an unchanged policy."""
    env = nas_env()
    model = FNASRecurrentPPO(
        "MlpLstmPolicy", env, n_steps=4 * T, batch_size=8 * T, seed=0, replay_mode="extra"
    )
    buffer = rollout(model, start(model))
    slices = buffer.episode_slices()

    class Fixed:
        def __init__(self, shift: float):
            self.shift = shift

        def add(self, exp):
            return True

        def __len__(self):
            return len(slices)

        def sample(self, k, progress, rng):
            out = []
            for i, s in enumerate(slices[:k]):
                exp = Experience(
                    arch=env.search_space.from_choices([0] * T),
                    tokens=tuple(int(a) for a in buffer.actions[s, 0, 0]),
                    observations=buffer.observations[s, 0],
                    reward=1.0,
                    log_probs=buffer.log_probs[s, 0] + self.shift,  # behaviour policy
                )
                out.append((exp, 1.0 / (i + 1)))
            return out

    for shift, off_policy_correction, expected in [
        (0.7, "none", 1.0),  # the paper's: the importance weight alone
        (0.0, "episode", 1.0),  # same policy: rho = 1
        (-1.0, "episode", 1.0),  # pi/mu = e^8, truncated at rho_max = 1
        (0.1, "episode", np.exp(-0.1 * T)),  # product of the per-step ratios
        (0.1, "step", np.exp(-0.1)),
    ]:
        model.experience_buffer = Fixed(shift)
        model.off_policy_correction = off_policy_correction
        buffer = rollout(model, start(model))
        replayed = [
            s
            for s, kind in zip(buffer.episode_slices(), buffer.episode_kinds)
            if kind == "replayed"
        ]
        assert len(replayed) == 4
        new = [
            s
            for s, kind in zip(buffer.episode_slices(), buffer.episode_kinds)
            if kind != "replayed"
        ]
        assert all(np.all(buffer.weights[s] == 1.0) for s in new)
        for i, s in enumerate(replayed):
            np.testing.assert_allclose(buffer.weights[s, 0], expected / (i + 1), rtol=1e-4)
        assert model.logger.name_to_value["fnas/replayed_fraction"] == 0.5


# ---- weighted loss ------------------------------------------------------------------------
def test_zero_weight_steps_contribute_no_gradient():
    model = FNASRecurrentPPO("MlpLstmPolicy", nas_env(), n_steps=2 * T, batch_size=2 * T, seed=0)
    rollout(model, start(model))
    first, second = model.rollout_buffer.episode_slices()

    def gradient(weight: float, perturb: bool) -> th.Tensor:
        """Loss gradient of a batch of both episodes; the second weighs ``weight``."""
        stored = model.rollout_buffer
        lstm = model.policy.lstm_actor
        buffer = WeightedRecurrentRolloutBuffer(
            2 * T, model.observation_space, model.action_space, (2 * T, 1, 1, lstm.hidden_size)
        )
        for s, w in ((first, 1.0), (second, weight)):
            changed = perturb and s == second
            buffer.add_episode(
                Episode(
                    observations=stored.observations[s, 0],
                    actions=stored.actions[s, 0],
                    rewards=stored.rewards[s, 0] + (7.0 if changed else 0.0),
                    values=stored.values[s, 0],
                    log_probs=stored.log_probs[s, 0] + (0.5 if changed else 0.0),
                    weights=np.full(T, w, dtype=np.float32),
                )
            )
        buffer.compute_returns_and_advantage()
        (data,) = list(buffer.get(None))
        model.policy.optimizer.zero_grad()
        model.weighted_losses(data, clip_range=0.2)["loss"].backward()
        return th.cat([p.grad.flatten() for p in model.policy.parameters() if p.grad is not None])

    th.testing.assert_close(gradient(0.0, perturb=False), gradient(0.0, perturb=True))
    assert not th.allclose(gradient(1.0, perturb=False), gradient(1.0, perturb=True))
    # a weight of 0 is the same as leaving the episode out
    half = gradient(0.5, perturb=False)
    assert not th.allclose(half, gradient(0.0, perturb=False))


def test_equal_length_minibatches_match_sb3_contribs_padding():
    """The unpadded tensors of equal-length episodes are sb3-contrib's padded ones, exactly."""
    model = FNASRecurrentPPO("MlpLstmPolicy", nas_env(), n_steps=4 * T, batch_size=4 * T, seed=0)
    rollout(model, start(model))
    buffer = model.rollout_buffer
    buffer.compute_returns_and_advantage()
    list(buffer.get(None))  # prepares the arrays for sampling
    inds = np.concatenate([np.arange(a, b) for a, b in buffer.episode_bounds])
    chunk = [inds[i : i + T] for i in range(0, len(inds), T)]
    env_change = np.zeros((buffer.pos, 1))
    fast = buffer._chunk_samples(chunk, env_change)
    padded = buffer._get_samples(inds, env_change)
    for name, a, b in zip(fast._fields, fast, padded, strict=True):
        for x, y in zip(th.utils._pytree.tree_leaves(a), th.utils._pytree.tree_leaves(b)):
            assert x.dtype == y.dtype and x.shape == y.shape and th.equal(x, y), name


# ---- save / load ---------------------------------------------------------------------------
def test_save_and_load_keep_settings_and_policy(tmp_path):
    env = CountingGate(nas_env())
    model = make_fnas_controller(
        env, seed=0, max_trusted_fraction=0.25, rho_max=2.0, tensorboard_log=str(tmp_path / "tb")
    )
    model.learn(2 * model.n_steps)
    # replays take batch slots from the second rollout on (the first may have been all)
    model.learn(model.n_steps, reset_num_timesteps=False)
    (run,) = (tmp_path / "tb").iterdir()
    tags = EventAccumulator(str(run)).Reload().Tags()["scalars"]
    for tag in ("fnas/trusted_fraction", "fnas/discarded_trusted", "fnas/replayed_fraction"):
        assert tag in tags
    assert "fnas/mean_importance_weight" in tags and "fnas/mean_rho" in tags
    assert "uac/completed" in tags
    model.save(tmp_path / "fnas.zip")
    experiences = model.experience_buffer
    loaded = FNASRecurrentPPO.load(
        tmp_path / "fnas.zip", env=model.get_env(), experience_buffer=experiences
    )
    assert (loaded.max_trusted_fraction, loaded.rho_max) == (0.25, 2.0)
    assert loaded.fnas_counters == model.fnas_counters
    assert loaded.experience_buffer is experiences
    for a, b in zip(model.policy.parameters(), loaded.policy.parameters()):
        th.testing.assert_close(a, b)
    loaded.learn(model.n_steps, reset_num_timesteps=False)
    assert loaded.fnas_counters.replayed > model.fnas_counters.replayed
    bare = FNASRecurrentPPO.load(tmp_path / "fnas.zip")
    assert bare.experience_buffer is None  # large stores are saved on their own


def test_bad_arguments_are_rejected():
    env = nas_env()
    for kwargs, message in [
        ({"max_trusted_fraction": 1.5}, "max_trusted_fraction"),
        ({"max_replay_fraction": 1.0}, "max_replay_fraction"),
        ({"rho_max": 0.0}, "rho_max"),
        ({"max_resample_factor": -1.0}, "max_resample_factor"),
        ({"off_policy_correction": "trajectory"}, "off_policy_correction"),
    ]:
        with pytest.raises(ValueError, match=message):
            FNASRecurrentPPO("MlpLstmPolicy", env, **kwargs)
    with pytest.raises(TypeError, match="experience_buffer"):
        FNASRecurrentPPO("MlpLstmPolicy", env, experience_buffer=[])


# ---- learning -------------------------------------------------------------------------------
class StopAtOptimum(BaseCallback):
    """Stop once ``optimum`` was really evaluated or ``budget`` activated samples are spent."""

    def __init__(self, env: NASEnv, optimum: str, budget: int):
        super().__init__()
        self.env, self.optimum, self.budget = env, optimum, budget

    def _on_step(self) -> bool:
        counters = self.env.counters
        return counters.best_arch != self.optimum and counters.activated < self.budget


def activated_to_optimum(
    fnas: bool, seed: int, budget: int = 120, fast: bool = False, screen: bool = False
) -> float:
    """Activated samples until ``22222222`` is really evaluated (inf: not within budget).

    ``fast``: the gate trusts 90% and a batch may hold 75% trusted episodes; ``screen``:
    the library's ``fnas-screen`` preset (both beyond the paper).
    """
    from agents.controller import make_controller
    from agents.methods import SCREEN_CONTROLLER, SCREEN_CRITIC, SCREEN_GATE
    from wrappers.critic import UncertaintyCritic
    from wrappers.uac import UncertaintyGate

    env = nas_env()
    if screen:
        critic = UncertaintyCritic(env.search_space.embedding_dim, seed=seed, **SCREEN_CRITIC)
        gate = UncertaintyGate(env, critic, **SCREEN_GATE)
        model = make_fnas_controller(gate, seed=seed, learning_rate=3e-3, **SCREEN_CONTROLLER)
    elif fnas:
        critic = UncertaintyCritic(env.search_space.embedding_dim, seed=seed)
        gate = UncertaintyGate(env, critic, warmup=16, trusted_fraction=0.9 if fast else 0.8)
        model = make_fnas_controller(
            gate, seed=seed, learning_rate=3e-3, max_trusted_fraction=0.75 if fast else 0.5
        )
    else:
        model = make_controller(env, seed=seed, learning_rate=3e-3)
    model.learn(10**6, callback=StopAtOptimum(env, "22222222", budget))
    counters = env.counters
    return counters.activated if counters.best_arch == "22222222" else float("inf")


def test_fnas_reaches_the_optimum_with_fewer_activated_samples():
    """UAC + AEB against the plain controller on a synthetic objective, same settings.

    Reward: 5 points per '2' layer (+2 when the first and last are both '2'); the
    optimum 22222222 is one of 6561 architectures. Both use make_controller's
    settings with a learning rate of 3e-3 (to keep the test short). Measured over
    8 seeds: median 39 activated samples (FNAS) against 57.5 (plain); over seeds 0-5,
    24.5 (the fnas-screen preset) against 30 (FNAS) and 57 (plain).
    """
    seeds = (0, 1, 2)
    plain = np.median([activated_to_optimum(False, s) for s in seeds])
    fnas = np.median([activated_to_optimum(True, s) for s in seeds])
    assert fnas < plain, (fnas, plain)
    assert np.isfinite(fnas)
    # the beyond-the-paper options (75% trusted per batch; the fnas-screen preset, which
    # also trains the best architectures' neighbours) find the optimum too, sooner
    fast = np.median([activated_to_optimum(True, s, fast=True) for s in seeds])
    assert np.isfinite(fast) and fast < plain, (fast, plain)
    screen = np.median([activated_to_optimum(True, s, screen=True) for s in seeds])
    assert np.isfinite(screen) and screen < plain, (screen, plain)


def test_real_nb201_env_counters_agree_with_the_record(benchmark_dir):
    import fnas_env  # noqa: F401  (registers the ids)
    from wrappers.uac import UncertaintyGate

    gate = UncertaintyGate(
        gym.make("FNAS-NB201-v0", benchmark_dir=benchmark_dir), warmup=8, max_relative_error=None
    )
    model = make_fnas_controller(gate, seed=0)
    model.learn(2 * model.n_steps)  # replays start in the second rollout
    record, ours = gate.unwrapped.counters, model.fnas_counters
    assert record.activated == ours.activated  # every evaluated episode is kept
    assert record.cached == ours.cached
    assert record.trusted == ours.trusted + ours.discarded_trusted
    assert record.replayed == ours.replayed > 0


def test_evaluations_aside_count_in_the_counters_and_the_search_progress():
    """A gate screening the incumbents' neighbours evaluates some of them outside the
    episodes: the record holds them as activated, the controller counts them as
    ``aside`` (not as PPO samples) and its progress is paid evaluations / budget."""
    from wrappers.critic import UncertaintyCritic
    from wrappers.uac import UncertaintyGate

    env = nas_env()
    critic = UncertaintyCritic(env.search_space.embedding_dim, hidden=32, seed=0)
    gate = UncertaintyGate(
        env, critic, warmup=8, max_relative_error=None, selection="ucb", incumbents=2
    )
    model = make_fnas_controller(gate, seed=0, search_budget=400)
    model.learn(4 * model.n_steps)
    record, ours = env.counters, model.fnas_counters
    assert ours.aside == gate.rule.num_alternatives > 0
    assert record.activated == ours.activated + ours.aside
    assert ours.ppo_samples == ours.activated + ours.cached + ours.trusted + ours.replayed
    assert model.search_progress == pytest.approx(record.activated / 400)


def test_no_cap_keeps_every_trusted_episode_of_lockstep_envs():
    venv = DummyVecEnv([lambda: AlwaysTrusted(nas_env()) for _ in range(2)])
    model = FNASRecurrentPPO(
        "MlpLstmPolicy", venv, n_steps=2 * T, batch_size=4 * T, max_trusted_fraction=1.0
    )
    buffer = rollout(model, start(model))
    assert buffer.episode_kinds == ["trusted"] * 4
    assert model.fnas_counters.discarded_trusted == 0


def test_an_interrupted_episode_is_not_glued_to_the_next_one():
    class StopAfter(BaseCallback):
        def _on_step(self) -> bool:
            return self.n_calls < 3

    model = FNASRecurrentPPO("MlpLstmPolicy", nas_env(), n_steps=2 * T, batch_size=2 * T, seed=0)
    model.learn(100, callback=StopAfter())  # stops 3 tokens into the first episode
    buffer = rollout(model, start(model))  # _setup_learn resets the env
    assert [b - a for a, b in buffer.episode_bounds] == [T, T]
    np.testing.assert_array_equal(buffer.episode_starts[:, 0][: 2 * T : T], [1, 1])
    assert buffer.episode_starts[: 2 * T, 0].sum() == 2


# ---- control: with UAC and AEB off, FNASRecurrentPPO is RecurrentPPO ------------------------
def architectures(model, env: NASEnv, n: int) -> list[str]:
    model.learn(n * T)
    return [e.arch for e in env.record.entries]


def test_with_modules_off_it_learns_like_plain_recurrent_ppo():
    """Same seed, same settings: the same architectures, update after update.

    The only differences are how the batch is stored (whole episodes) and how the loss
    is averaged (weights of 1), so the sampled architectures agree exactly over several
    PPO updates (float rounding could only flip a sample in a near tie).
    """
    from agents.controller import make_controller

    n = 5 * 8  # five PPO updates of 8 architectures
    # built and run one after the other: both seed torch's global generator when built
    plain_env = nas_env()
    expected = architectures(make_controller(plain_env, seed=3), plain_env, n)
    fnas_env_ = nas_env()
    fnas = make_fnas_controller(fnas_env_, uac=False, aeb=False, seed=3)
    assert architectures(fnas, fnas_env_, n) == expected
    assert fnas.fnas_counters.activated + fnas.fnas_counters.cached == n


# ---- search progress -----------------------------------------------------------------------
@pytest.mark.parametrize("total_timesteps", [40 * T, 10**7])
def test_beta_follows_the_search_budget_whatever_total_timesteps(total_timesteps):
    """Progress = activated / search_budget: beta reaches 1 at the budget either way."""
    from agents.callbacks import SearchBudgetCallback

    env = nas_env()
    seen: list[float] = []

    class Recording(ExperienceBuffer):
        def sample(self, k, progress, rng=None):
            seen.append(progress)
            return super().sample(k, progress, rng)

    model = make_fnas_controller(
        env, uac=False, seed=0, experience_buffer=Recording(), search_budget=40
    )
    model.learn(total_timesteps, callback=SearchBudgetCallback(40))
    # the callback stops learn on the step of the 40th, before the batch rule counts it
    assert env.counters.activated == 40 and model.search_progress >= 39 / 40
    assert seen == sorted(seen) and seen[-1] >= 0.7  # annealed along the search
    # the schedules read the same progress (updated after each rollout)
    assert model._current_progress_remaining <= 1.0 - seen[-1] + 1e-9


def test_search_progress_without_a_budget_is_sb3s():
    model = make_fnas_controller(nas_env(), uac=False, aeb=False, seed=0)
    model.learn(4 * model.n_steps)
    assert model.search_progress == pytest.approx(1.0 - model._current_progress_remaining)
    with pytest.raises(ValueError, match="search_budget"):
        make_fnas_controller(nas_env(), seed=0, search_budget=0)
