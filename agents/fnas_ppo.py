"""FNAS's controller: sb3-contrib RecurrentPPO with the UAC batch rule and AEB replay.

:class:`FNASRecurrentPPO` changes three things in RecurrentPPO (see ``docs/fnas_ppo.md``):

- **UAC batch rule** (``collect_rollouts``). Every env's running episode is staged
  and, when it ends, accepted into the batch or discarded. An episode whose reward
  came from the critic (``info["evaluated"] is False``, a *trusted* sample) is
  accepted only while trusted episodes fill at most ``max_trusted_fraction`` of the
  batch's new episodes; extra trusted episodes are thrown away and sampling goes on
  until untrusted ones (really evaluated, or served from the search record as
  *cached*) fill the batch, as in the paper. With a gate that trusts more than half
  of the architectures (the UAC gate's default) every batch holds exactly half
  trusted episodes. Resampling is bounded: once the discarded steps reach
  ``max_resample_factor`` x the batch, trust is turned off on the UAC wrapper
  (``set_trust_enabled(False)``) for the rest of the rollout and the batch is
  counted as ``unfilled``.
- **AEB replay** (end of ``collect_rollouts`` and ``train``). Every untrusted
  episode is offered to the experience buffer. At the start of a rollout up to
  ``max_replay_fraction`` of the batch's slots are kept for episodes drawn from it
  (``replay_mode="share"``: new episodes fill only the rest). Their values are
  recomputed with the current policy and every replayed step gets the buffer's
  importance weight ``S_i = (N P_i)^-beta``; PPO's clipped ratio is taken against the
  behaviour policy that sampled the replay (``off_policy_correction``), so a replay
  stops pushing once the policy has moved towards it. ``train()`` minimises
  ``sum(w x loss) / sum(w)`` and normalises advantages with the new episodes'
  statistics (``advantage_stats``).
- **Search progress** (``search_budget``). Progress-based schedules (AEB's ``beta``,
  learning-rate and clip-range schedules) follow the search's own progress,
  activated samples / ``search_budget``, whatever ``total_timesteps`` ``learn`` gets;
  :func:`agents.search.run_search` sets the budget and runs the search.

:func:`make_fnas_controller` builds it with the settings of
:func:`agents.controller.make_controller` (one LSTM layer of 100 units).
"""

from __future__ import annotations

import math
import warnings
from copy import deepcopy
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from agents.callbacks import check_count
from agents.controller import episode_length
from agents.fnas_buffer import Episode, WeightedRecurrentRolloutBuffer
from fnas_env.evaluators.base import Evaluation

__all__ = [
    "FNASRecurrentPPO",
    "FNASCounters",
    "make_fnas_controller",
    "OFF_POLICY_CORRECTIONS",
    "REPLAY_MODES",
]

#: ``"none"``: a replayed step weighs the buffer's importance weight S_i only;
#: ``"episode"``: times min(rho_max, prod_t pi_t/mu_t) (the architecture's probability
#: ratio); ``"step"``: times min(rho_max, pi_t/mu_t) per step.
#: ``"clip"``: the behaviour policy's log-probs are the replay's ``old_log_prob``, so PPO's
#: clipped ratio pi/mu stops a replay from pushing once the policy has moved 1 + clip_range
#: past the policy that sampled it.
OFF_POLICY_CORRECTIONS = ("none", "episode", "step", "clip")
#: ``"share"``: replayed episodes take up to ``max_replay_fraction`` of the fixed batch of
#: ``n_steps x n_envs`` steps and new episodes fill the rest, so a batch needs fewer new
#: samples (the paper's "each batch at most 50% exploited samples"); ``"extra"``: a full
#: batch of new episodes, replays appended on top (the batch grows, new samples per
#: update do not shrink).
REPLAY_MODES = ("share", "extra")


@dataclass
class FNASCounters:
    """Episode counters of the FNAS rules over the whole training (saved with the model).

    - ``activated``: really evaluated episodes (each paid for an evaluation);
    - ``cached``: episodes whose architecture this search had evaluated before, served
      from the search record at no cost;
    - ``trusted``: critic-scored episodes accepted into a batch;
    - ``discarded_trusted``: critic-scored episodes thrown out by the UAC rule;
    - ``replayed``: AEB episodes added to batches;
    - ``experiences_added``: episodes the experience buffer accepted;
    - ``unfilled_batches``: rollouts in which the resampling bound turned trust off
      (the batch holds fewer trusted episodes than the rule allows).

    ``ppo_samples`` (activated + cached + trusted + replayed) counts the episodes PPO
    trained on.
    """

    activated: int = 0
    cached: int = 0
    trusted: int = 0
    discarded_trusted: int = 0
    replayed: int = 0
    experiences_added: int = 0
    unfilled_batches: int = 0

    @property
    def ppo_samples(self) -> int:
        return self.activated + self.cached + self.trusted + self.replayed


@dataclass
class _RolloutStats:
    target_steps: int
    replay_slots: int | None = None  # replays planned at the start ("share" mode)
    new_episodes: int = 0
    accepted_steps: int = 0
    trusted: int = 0
    trusted_steps: int = 0
    discarded: int = 0
    discarded_steps: int = 0
    trust_off: bool = False
    force_accept: bool = False
    replayed: int = 0
    importance: list[float] = field(default_factory=list)
    rho: list[float] = field(default_factory=list)


class _Stage:
    """The running episode of one env, step by step."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.values: list[float] = []
        self.log_probs: list[float] = []
        self.states: list[tuple[np.ndarray, ...]] = []

    def __len__(self) -> int:
        return len(self.rewards)

    def pop(self) -> Episode:
        n = len(self)
        episode = Episode(
            observations=np.stack(self.obs),
            actions=np.stack(self.actions).reshape(n, -1),
            rewards=np.asarray(self.rewards, dtype=np.float32),
            values=np.asarray(self.values, dtype=np.float32),
            log_probs=np.asarray(self.log_probs, dtype=np.float32),
            weights=np.ones(n, dtype=np.float32),
            lstm_states=tuple(np.stack(s) for s in zip(*self.states)),  # type: ignore[arg-type]
        )
        self.clear()
        return episode


class FNASRecurrentPPO(RecurrentPPO):
    """RecurrentPPO with FNAS's UAC batch rule and AEB replay (see the module docstring).

    Needs a ``Box`` observation space (the NAS envs' one) and episodes no longer than
    ``n_steps``; a rollout collects at least ``n_steps x n_envs`` accepted steps (whole
    episodes: choose ``n_steps`` a multiple of the episode length ``T``) plus replays.
    With ``experience_buffer=None`` and an env without critic (every episode evaluated)
    it trains like RecurrentPPO on whole episodes.

    Args:
        policy: the policy (``"MlpLstmPolicy"`` or a RecurrentActorCriticPolicy class).
        env: the env (Gymnasium env, VecEnv or registered id).
        max_trusted_fraction: at most this fraction of a batch's new episodes may be
            trusted (critic-scored); the UAC batch rule (default 0.5, the paper's; 1.0
            switches the rule off).
        experience_buffer: the AEB, an object with ``add(Experience) -> bool``,
            ``sample(k, progress, rng) -> list[(Experience, weight)]`` and ``len``
            (:class:`agents.experience.ExperienceBuffer`); ``None`` (default) disables replay.
            Not saved with the model: save it on its own and pass it to ``load``.
        max_replay_fraction: at most this fraction of a batch's episodes are replayed;
            ``k <= f / (1 - f) x new episodes`` and ``k <= len(buffer)`` (default 0.5,
            the paper's; in [0, 1)).
        rho_max: truncation of the off-policy ratio ``pi / mu`` (default 1.0; only with
            ``off_policy_correction`` ``"episode"`` or ``"step"``).
        max_resample_factor: bound on resampling: once the steps of discarded trusted
            episodes in one rollout reach this multiple of the batch's new steps, trust
            is turned off for the rest of the rollout (default 10.0: with a gate that
            trusts 80% of the architectures a batch needs about 4 discarded episodes per
            untrusted one, so the bound is rarely reached; 0 turns trust off at the first
            discarded episode).
        off_policy_correction: how replays account for the policy that sampled them
            (the paper's "off-policy correction factor"; every mode keeps the importance
            weight ``S_i``): ``"clip"`` (default: the behaviour log-probs ``mu`` are PPO's
            old log-probs, so the clipped ratio ``pi / mu`` stops a replay from pushing once
            the policy has moved ``1 + clip_range`` towards it), ``"none"`` (``S_i`` only,
            the ratio starts at 1 at every update), ``"episode"`` (times one truncated
            ratio of the architecture's probabilities, ``min(rho_max, prod_t pi_t /
            mu_t)``) or ``"step"`` (``min(rho_max, pi_t / mu_t)`` per step). Measured
            (``docs/fnas_ppo.md``): with ``"none"`` every replay pushes again at every
            update and the policy collapses onto the buffer's architectures within
            100-200 activated samples on NB201.
        replay_mode: ``"share"`` (default, the paper's): a batch keeps ``n_steps x
            n_envs`` steps; at the start of a rollout ``k = min(floor(f x episodes per
            batch), len(buffer))`` replays are planned and new episodes fill the rest,
            so with ``f = 0.5`` and a full buffer a PPO update needs half as many new
            samples. ``"extra"``: a full batch of new episodes plus up to ``f / (1 - f)``
            times as many replays (the batch grows; new samples per update unchanged).
        search_budget: activated samples the search will spend (default None). When set,
            the training progress of every schedule (AEB's ``beta``, learning-rate and
            clip-range schedules) is ``activated / search_budget`` instead of SB3's
            ``num_timesteps / total_timesteps`` (which counts discarded and trusted
            episodes and depends on the ``total_timesteps`` a caller passes).
        advantage_stats: statistics that normalise the advantages: ``"new"`` (default:
            the new episodes', so replays keep their advantage) or ``"batch"`` (all
            episodes, replays included).
        **kwargs: any other :class:`~sb3_contrib.RecurrentPPO` argument (``n_steps``,
            ``batch_size``, ``learning_rate``, ``seed``, ``device``, ...), with its defaults.
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        *,
        max_trusted_fraction: float = 0.5,
        experience_buffer: Any | None = None,
        max_replay_fraction: float = 0.5,
        rho_max: float = 1.0,
        max_resample_factor: float = 10.0,
        off_policy_correction: str = "clip",
        replay_mode: str = "share",
        search_budget: int | None = None,
        advantage_stats: str = "new",
        **kwargs: Any,
    ):
        if not 0.0 <= max_trusted_fraction <= 1.0:
            raise ValueError(f"max_trusted_fraction must be in [0, 1], got {max_trusted_fraction}")
        if not 0.0 <= max_replay_fraction < 1.0:
            raise ValueError(f"max_replay_fraction must be in [0, 1), got {max_replay_fraction}")
        if not rho_max > 0:
            raise ValueError(f"rho_max must be positive, got {rho_max}")
        if not max_resample_factor >= 0:
            raise ValueError(f"max_resample_factor must be >= 0, got {max_resample_factor}")
        if off_policy_correction not in OFF_POLICY_CORRECTIONS:
            raise ValueError(
                f"off_policy_correction must be one of {OFF_POLICY_CORRECTIONS}, "
                f"got {off_policy_correction!r}"
            )
        if replay_mode not in REPLAY_MODES:
            raise ValueError(f"replay_mode must be one of {REPLAY_MODES}, got {replay_mode!r}")
        check_count("search_budget", search_budget)
        for method in ("add", "sample", "__len__"):
            if experience_buffer is not None and not hasattr(experience_buffer, method):
                raise TypeError(
                    f"experience_buffer must provide add(), sample() and len() "
                    f"(agents.experience.ExperienceBuffer); {type(experience_buffer).__name__} "
                    f"has no {method}"
                )
        init_model = kwargs.pop("_init_setup_model", True)
        super().__init__(policy, env, _init_setup_model=False, **kwargs)
        self.max_trusted_fraction = float(max_trusted_fraction)
        self.experience_buffer = experience_buffer
        self.max_replay_fraction = float(max_replay_fraction)
        self.rho_max = float(rho_max)
        self.max_resample_factor = float(max_resample_factor)
        self.off_policy_correction = off_policy_correction
        self.replay_mode = replay_mode
        self.search_budget = search_budget
        if advantage_stats not in ("new", "batch"):
            raise ValueError(f"advantage_stats must be 'new' or 'batch', got {advantage_stats!r}")
        self.advantage_stats = advantage_stats
        self.fnas_counters = FNASCounters()
        # the env's horizon where it has one (a NASEnv), else learned when an episode ends
        self._episode_length: int | None = None
        self._trust_disabled = False
        self._staged: list[_Stage] | None = None
        self._search_space: Any = None
        # reward in the env's units (the record's) of each remembered architecture:
        # the training reward may be scaled (make_controller's reward_scale)
        self._env_rewards: dict[str, float] = {}
        if init_model:
            self._setup_model()

    # ---- setup / save -------------------------------------------------------------------
    def _setup_model(self) -> None:
        super()._setup_model()
        if self.env is not None:
            try:  # known up front, a preloaded buffer is replayed from the first rollout on
                self._episode_length = episode_length(self.env)
            except (ValueError, AttributeError):
                self._episode_length = None
        if isinstance(self.observation_space, spaces.Dict):
            raise ValueError(
                "FNASRecurrentPPO needs a Box observation space (the NAS envs' one), "
                "got a Dict space"
            )
        lstm = self.policy.lstm_actor
        capacity = 2 * self.n_steps * self.n_envs
        self.rollout_buffer = WeightedRecurrentRolloutBuffer(
            capacity,
            self.observation_space,
            self.action_space,
            (capacity, lstm.num_layers, 1, lstm.hidden_size),
            self.device,
            gae_lambda=self.gae_lambda,
            gamma=self.gamma,
        )
        self._replay_rng = np.random.default_rng(self.seed)
        self._staged = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "experience_buffer", "_staged", "_search_space"]

    # ---- rollouts ------------------------------------------------------------------------
    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """Fill the buffer with whole accepted episodes (UAC rule), then with AEB replays.

        Returns False if a callback stopped training, as in SB3.
        """
        if not isinstance(rollout_buffer, WeightedRecurrentRolloutBuffer):
            raise TypeError(
                f"FNASRecurrentPPO needs a WeightedRecurrentRolloutBuffer, got "
                f"{type(rollout_buffer).__name__}"
            )
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        if self._staged is None or len(self._staged) != env.num_envs:
            self._staged = [_Stage() for _ in range(env.num_envs)]
        if self._trust_disabled and self._set_trust(env, True):
            self._trust_disabled = False

        callback.on_rollout_start()
        batch_steps = n_rollout_steps * env.num_envs
        replay_steps = self.planned_replay_steps(batch_steps)
        stats = _RolloutStats(
            target_steps=batch_steps - replay_steps,
            replay_slots=replay_steps // self._episode_length if replay_steps else 0,
        )
        lstm_states = deepcopy(self._last_lstm_states)
        n_steps = 0
        dones = np.zeros(env.num_envs, dtype=bool)

        while stats.accepted_steps < stats.target_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)

            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)
                episode_starts = th.tensor(
                    self._last_episode_starts, dtype=th.float32, device=self.device
                )
                actions, values, log_probs, lstm_states = self.policy(
                    obs_tensor, lstm_states, episode_starts
                )
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs

            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1

            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            rewards = np.asarray(rewards, dtype=np.float32).copy()
            for idx, done_ in enumerate(dones):
                if (
                    done_
                    and infos[idx].get("terminal_observation") is not None
                    and infos[idx].get("TimeLimit.truncated", False)
                ):
                    terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with th.no_grad():
                        terminal_lstm_state = (
                            lstm_states.vf[0][:, idx : idx + 1, :].contiguous(),
                            lstm_states.vf[1][:, idx : idx + 1, :].contiguous(),
                        )
                        starts = th.tensor([False], dtype=th.float32, device=self.device)
                        terminal_value = self.policy.predict_values(
                            terminal_obs, terminal_lstm_state, starts
                        )[0]
                    rewards[idx] += self.gamma * float(terminal_value)

            self._stage_step(actions, rewards, values, log_probs)
            for idx in np.flatnonzero(dones):
                self._end_episode(env, int(idx), infos[idx], rollout_buffer, stats)

            self._last_obs = new_obs
            self._last_episode_starts = dones
            self._last_lstm_states = lstm_states

        self._replay(env, rollout_buffer, stats)
        rollout_buffer.compute_returns_and_advantage()
        self._log_rollout(env, stats)
        callback.on_rollout_end()
        return True

    def _stage_step(
        self, actions: np.ndarray, rewards: np.ndarray, values: th.Tensor, log_probs: th.Tensor
    ) -> None:
        """Append this step of every env to its staged episode (LSTM states before the step)."""
        states = [s.cpu().numpy() for s in (*self._last_lstm_states.pi, *self._last_lstm_states.vf)]
        obs = np.asarray(self._last_obs)
        values_np = values.flatten().cpu().numpy()
        log_probs_np = log_probs.flatten().cpu().numpy()
        for i, stage in enumerate(self._staged or ()):
            if self._last_episode_starts[i]:
                stage.clear()  # leftovers of an episode cut short (a callback stopped learn)
            if len(stage) >= self.n_steps:
                raise ValueError(
                    f"an episode ran longer than n_steps={self.n_steps}: FNASRecurrentPPO "
                    "keeps whole episodes, set n_steps to a multiple of the episode length"
                )
            stage.obs.append(obs[i].copy())
            stage.actions.append(np.asarray(actions[i]).copy())
            stage.rewards.append(float(rewards[i]))
            stage.values.append(float(values_np[i]))
            stage.log_probs.append(float(log_probs_np[i]))
            stage.states.append(tuple(s[:, i, :] for s in states))

    def _end_episode(
        self,
        env: VecEnv,
        idx: int,
        info: dict[str, Any],
        buffer: WeightedRecurrentRolloutBuffer,
        stats: _RolloutStats,
    ) -> None:
        """Accept env ``idx``'s finished episode into the batch or discard it (UAC rule)."""
        assert self._staged is not None
        episode = self._staged[idx].pop()
        length = len(episode.rewards)
        self._episode_length = length
        kind = _episode_kind(info)
        if kind == "trusted":
            quota = self.max_trusted_fraction * stats.target_steps
            over = self.max_trusted_fraction < 1.0 and stats.trusted_steps + length > quota + 1e-9
            if over and not stats.force_accept:
                stats.discarded += 1
                stats.discarded_steps += length
                self.fnas_counters.discarded_trusted += 1
                if (
                    stats.discarded_steps >= self.max_resample_factor * stats.target_steps
                    and not stats.trust_off
                ):
                    self._stop_trusting(env, stats)
                return
            stats.trusted += 1
            stats.trusted_steps += length
            self.fnas_counters.trusted += 1
        else:
            setattr(self.fnas_counters, kind, getattr(self.fnas_counters, kind) + 1)
            if kind == "activated":  # a cached repeat was offered when first evaluated
                self._remember(env, info, episode)
        buffer.add_episode(episode, kind)
        stats.new_episodes += 1
        stats.accepted_steps += length

    def _stop_trusting(self, env: VecEnv, stats: _RolloutStats) -> None:
        stats.trust_off = True
        self.fnas_counters.unfilled_batches += 1
        if self._set_trust(env, False):
            self._trust_disabled = True
            return
        stats.force_accept = True
        warnings.warn(
            "trusted episodes keep coming but the env has no set_trust_enabled() (the UAC "
            "wrapper's): accepting them above max_trusted_fraction for this rollout",
            RuntimeWarning,
            stacklevel=3,
        )

    # ---- search progress ---------------------------------------------------------------
    @property
    def search_progress(self) -> float:
        """Progress of the search in [0, 1]: activated / ``search_budget`` when it is set,
        else SB3's ``1 - progress_remaining`` (timesteps / ``total_timesteps``)."""
        if self.search_budget:
            return min(1.0, self.fnas_counters.activated / self.search_budget)
        return float(np.clip(1.0 - self._current_progress_remaining, 0.0, 1.0))

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        """SB3's progress (read by every schedule) follows the search budget when set."""
        if self.search_budget:
            self._current_progress_remaining = 1.0 - self.search_progress
        else:
            super()._update_current_progress_remaining(num_timesteps, total_timesteps)

    @staticmethod
    def _set_trust(env: VecEnv, flag: bool) -> bool:
        """Turn the UAC gate's trust on/off (the VecEnv's gate, else every env's); False if
        there is no gate."""
        gate = _vec_gate(env)
        if gate is not None:
            gate.set_trust_enabled(bool(flag))
            return True
        if not env.has_attr("set_trust_enabled"):
            return False
        env.env_method("set_trust_enabled", bool(flag))
        return True

    # ---- AEB ---------------------------------------------------------------------------
    def _space(self, env: VecEnv) -> Any:
        if self._search_space is None:
            self._search_space = (
                env.get_attr("search_space", indices=[0])[0]
                if env.has_attr("search_space")
                else False
            )
        return self._search_space or None

    def _remember(self, env: VecEnv, info: dict[str, Any], episode: Episode) -> None:
        """Add a really evaluated episode to the experience buffer."""
        if self.experience_buffer is None or info.get("failed", False):
            return
        arch = info.get("arch")
        space = self._space(env)
        if arch is None or space is None:
            return
        from agents.experience import Experience

        experience = Experience(
            arch=space.from_string(arch) if isinstance(arch, str) else arch,
            tokens=tuple(int(a) for a in np.asarray(episode.actions).reshape(-1)),
            observations=np.asarray(episode.observations, dtype=np.float32),
            reward=float(np.sum(episode.rewards)),
            log_probs=np.asarray(episode.log_probs, dtype=np.float32),
        )
        if self.experience_buffer.add(experience):
            self.fnas_counters.experiences_added += 1
        self._env_rewards[str(experience.arch)] = float(info.get("reward", experience.reward))

    def evaluate_episodes(
        self, observations: list[np.ndarray], actions: list[np.ndarray]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Current values and log-probs of whole episodes (LSTM started from zeros).

        Args:
            observations: per episode, an array (T, *obs_shape).
            actions: per episode, the actions taken, (T,) or (T, action_dim).

        Returns:
            ``(values, log_probs)``: per episode, arrays (T,). Equal to the rollout's values
            and log-probs while the policy is unchanged.
        """
        if len(observations) != len(actions):
            raise ValueError(
                f"got {len(observations)} observation sequences and {len(actions)} action ones"
            )
        values_out: list[np.ndarray] = [np.empty(0)] * len(observations)
        log_probs_out: list[np.ndarray] = [np.empty(0)] * len(observations)
        by_length: dict[int, list[int]] = {}
        for i, obs in enumerate(observations):
            by_length.setdefault(len(obs), []).append(i)
        lstm = self.policy.lstm_actor
        for length, idxs in by_length.items():
            k = len(idxs)
            obs = np.stack([np.asarray(observations[i]) for i in idxs]).reshape(
                (k * length, *self.observation_space.shape)
            )
            act = np.stack([np.asarray(actions[i]).reshape(length, -1) for i in idxs])
            act_t = th.as_tensor(act.reshape(k * length, -1), device=self.device)
            if isinstance(self.action_space, spaces.Discrete):
                act_t = act_t.long().flatten()
            starts = np.zeros((k, length), dtype=np.float32)
            starts[:, 0] = 1.0
            zeros = th.zeros((lstm.num_layers, k, lstm.hidden_size), device=self.device)
            states = RNNStates((zeros, zeros), (zeros, zeros))
            with th.no_grad():
                values, log_prob, _ = self.policy.evaluate_actions(
                    obs_as_tensor(obs, self.device),
                    act_t,
                    states,
                    th.as_tensor(starts.reshape(-1), device=self.device),
                )
            values_np = values.flatten().cpu().numpy().reshape(k, length)
            log_prob_np = log_prob.flatten().cpu().numpy().reshape(k, length)
            for j, i in enumerate(idxs):
                values_out[i], log_probs_out[i] = values_np[j], log_prob_np[j]
        return values_out, log_probs_out

    def planned_replay_steps(self, batch_steps: int) -> int:
        """Steps of a ``batch_steps`` batch kept for replays (``replay_mode="share"``), else 0.

        ``k = min(floor(max_replay_fraction x episodes per batch), len(buffer))`` episodes
        of the episode length (the env's horizon; for an env without one, the length
        seen so far, 0 before the first episode has ended).
        """
        if (
            self.replay_mode != "share"
            or self.experience_buffer is None
            or self.max_replay_fraction <= 0
            or not self._episode_length
        ):
            return 0
        episodes = batch_steps // self._episode_length
        k = min(math.floor(self.max_replay_fraction * episodes + 1e-9), len(self.experience_buffer))
        return max(0, k) * self._episode_length

    def replay_budget(self, new_episodes: int) -> int:
        """Most replayed episodes allowed next to ``new_episodes`` new ones (and the AEB size)."""
        if self.experience_buffer is None or self.max_replay_fraction <= 0:
            return 0
        f = self.max_replay_fraction
        k = math.floor(f / (1.0 - f) * new_episodes + 1e-9)
        return max(0, min(k, len(self.experience_buffer)))

    def _replay(
        self, env: VecEnv, buffer: WeightedRecurrentRolloutBuffer, stats: _RolloutStats
    ) -> None:
        """Append up to ``replay_budget`` AEB episodes with recomputed log-probs and weights."""
        k = self.replay_budget(stats.new_episodes)
        if self.replay_mode == "share" and stats.replay_slots is not None:
            k = min(k, stats.replay_slots)
        if k == 0:
            return
        samples = self.experience_buffer.sample(k, self.search_progress, self._replay_rng)
        if not samples:
            return
        observations = [np.asarray(exp.observations, dtype=np.float32) for exp, _ in samples]
        actions = [
            np.asarray(exp.tokens).reshape(len(obs), -1)
            for (exp, _), obs in zip(samples, observations)
        ]
        values, log_probs = self.evaluate_episodes(observations, actions)
        log_rho_max = math.log(self.rho_max)
        for (exp, importance), obs, act, value, log_prob in zip(
            samples, observations, actions, values, log_probs
        ):
            log_ratio = log_prob.astype(np.float64) - np.asarray(exp.log_probs, dtype=np.float64)
            if self.off_policy_correction == "episode":
                rho = np.full(len(obs), math.exp(min(log_rho_max, float(log_ratio.sum()))))
            elif self.off_policy_correction == "step":
                rho = np.exp(np.minimum(log_rho_max, log_ratio))
            else:
                rho = np.ones(len(obs))
            if self.off_policy_correction == "clip":  # PPO's clipped ratio pi / mu
                log_prob = np.asarray(exp.log_probs, dtype=np.float32)
            rewards = np.zeros(len(obs), dtype=np.float32)
            rewards[-1] = exp.reward
            buffer.add_episode(
                Episode(
                    observations=obs,
                    actions=act,
                    rewards=rewards,
                    values=value,
                    log_probs=log_prob,
                    weights=(rho * float(importance)).astype(np.float32),
                ),
                "replayed",
            )
            stats.importance.append(float(importance))
            stats.rho.append(float(rho.mean()))
            self._record_replay(env, exp)
        stats.replayed = len(samples)
        self.fnas_counters.replayed += len(samples)

    def _record_replay(self, env: VecEnv, exp: Any) -> None:
        """Append a "replayed" entry to the search record (the VecEnv's
        :class:`~wrappers.record.VecSearchRecord`, else env 0's); no evaluation, no cost."""
        if not hasattr(exp.arch, "choices"):
            return
        reward = self._env_rewards.get(str(exp.arch), float(exp.reward))
        record = _vec_record(env)
        if record is not None:
            record.record_replay(exp.arch, reward)
            return
        if not env.has_attr("score"):
            return
        env.env_method(
            "score",
            exp.arch,
            Evaluation(accuracy=float("nan"), cost=0.0, evaluated=False),
            kind="replayed",
            reward=reward,
            indices=[0],
        )

    # ---- logging -------------------------------------------------------------------------
    def _log_rollout(self, env: VecEnv, stats: _RolloutStats) -> None:
        new = max(stats.new_episodes, 1)
        self.logger.record("fnas/trusted_fraction", stats.trusted / new)
        self.logger.record("fnas/discarded_trusted", stats.discarded)
        self.logger.record(
            "fnas/replayed_fraction", stats.replayed / max(stats.new_episodes + stats.replayed, 1)
        )
        if stats.replayed:
            self.logger.record("fnas/mean_importance_weight", float(np.mean(stats.importance)))
            self.logger.record("fnas/mean_rho", float(np.mean(stats.rho)))
        self.logger.record("fnas/unfilled_batch", int(stats.trust_off))
        for key, value in asdict(self.fnas_counters).items():
            self.logger.record(f"fnas/total_{key}", value)
        self.logger.record("fnas/total_ppo_samples", self.fnas_counters.ppo_samples)
        self.logger.record("fnas/search_progress", self.search_progress)
        gate = _vec_gate(env)
        if gate is not None:
            per_env = [gate.metrics()]
        elif env.has_attr("metrics"):
            per_env = [m for m in env.env_method("metrics") if isinstance(m, dict)]
        else:
            per_env = []
        for key in per_env[0] if per_env else ():
            values = [m.get(key) for m in per_env]
            if all(isinstance(v, int | float | np.number) for v in values):
                self.logger.record(f"uac/{key}", float(np.mean(values)))

    # ---- training ------------------------------------------------------------------------
    def weighted_losses(
        self, rollout_data: Any, clip_range: float, clip_range_vf: float | None = None
    ) -> dict[str, th.Tensor]:
        """PPO losses of one minibatch, each a weighted mean ``sum(w x) / sum(w)``.

        Policy, value and entropy terms are all weighted (a step of weight 0 contributes
        no gradient); advantages are normalised with the weighted statistics of the new
        (not replayed) steps, so replays of good architectures keep their advantage
        instead of shifting the baseline of the new ones.

        Returns:
            ``policy_loss``, ``value_loss``, ``entropy_loss``, ``loss`` (with gradients),
            ``clip_fraction`` and ``approx_kl`` (detached).
        """
        actions = rollout_data.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = rollout_data.actions.long().flatten()
        w = th.where(rollout_data.mask > 1e-8, rollout_data.weights, 0.0)
        total = w.sum().clamp_min(1e-12)

        def wmean(x: th.Tensor) -> th.Tensor:
            return th.where(w > 0, w * x, 0.0).sum() / total

        values, log_prob, entropy = self.policy.evaluate_actions(
            rollout_data.observations,
            actions,
            rollout_data.lstm_states,
            rollout_data.episode_starts,
        )
        values = values.flatten()
        advantages = rollout_data.advantages
        if self.normalize_advantage:  # statistics of the new episodes (replays excluded)
            w_new = w
            if self.advantage_stats == "new":
                w_new = th.where(rollout_data.replayed > 0.5, 0.0, w)
            if float(w_new.sum()) <= 0.0:
                w_new = w
            total_new = w_new.sum().clamp_min(1e-12)
            mean = (w_new * advantages).sum() / total_new
            std = th.sqrt((w_new * (advantages - mean) ** 2).sum() / total_new)
            advantages = (advantages - mean) / (std + 1e-8)

        ratio = th.exp(log_prob - rollout_data.old_log_prob)
        policy_loss_1 = advantages * ratio
        policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
        policy_loss = -wmean(th.min(policy_loss_1, policy_loss_2))

        if clip_range_vf is None:
            values_pred = values
        else:
            values_pred = rollout_data.old_values + th.clamp(
                values - rollout_data.old_values, -clip_range_vf, clip_range_vf
            )
        value_loss = wmean((rollout_data.returns - values_pred) ** 2)
        entropy_loss = -wmean(-log_prob if entropy is None else entropy)
        loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
        with th.no_grad():
            clip_fraction = wmean((th.abs(ratio - 1) > clip_range).float())
            log_ratio = log_prob - rollout_data.old_log_prob
            approx_kl = wmean((th.exp(log_ratio) - 1) - log_ratio)
        return {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy_loss": entropy_loss,
            "loss": loss,
            "clip_fraction": clip_fraction,
            "approx_kl": approx_kl,
        }

    def train(self) -> None:
        """RecurrentPPO's update with weighted losses over whole-episode minibatches."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = (
            self.clip_range_vf(self._current_progress_remaining)
            if self.clip_range_vf is not None
            else None
        )
        entropy_losses, pg_losses, value_losses, clip_fractions = [], [], [], []
        approx_kl_divs: list[float] = []
        continue_training = True
        losses: dict[str, th.Tensor] = {}

        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                losses = self.weighted_losses(rollout_data, clip_range, clip_range_vf)
                pg_losses.append(losses["policy_loss"].item())
                value_losses.append(losses["value_loss"].item())
                entropy_losses.append(losses["entropy_loss"].item())
                clip_fractions.append(losses["clip_fraction"].item())
                approx_kl_div = losses["approx_kl"].item()
                approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(
                            f"Early stopping at step {epoch} due to reaching max kl: "
                            f"{approx_kl_div:.2f}"
                        )
                    break
                self.policy.optimizer.zero_grad()
                losses["loss"].backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(
            self.rollout_buffer.values[: self.rollout_buffer.pos].flatten(),
            self.rollout_buffer.returns[: self.rollout_buffer.pos].flatten(),
        )
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        if losses:
            self.logger.record("train/loss", losses["loss"].item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)


def _vec_gate(env: VecEnv) -> Any:
    """The :class:`~wrappers.uac.VecUncertaintyGate` in ``env``'s wrapper chain, or None."""
    from stable_baselines3.common.vec_env import unwrap_vec_wrapper

    from wrappers.uac import VecUncertaintyGate

    return unwrap_vec_wrapper(env, VecUncertaintyGate)


def _vec_record(env: VecEnv) -> Any:
    """The :class:`~wrappers.record.VecSearchRecord` in ``env``'s wrapper chain, or None."""
    from stable_baselines3.common.vec_env import unwrap_vec_wrapper

    from wrappers.record import VecSearchRecord

    return unwrap_vec_wrapper(env, VecSearchRecord)


def _episode_kind(info: dict[str, Any]) -> str:
    """``"trusted"`` (critic-scored), ``"cached"`` (served from the record) or ``"activated"``."""
    if not bool(info.get("evaluated", True)):
        return "trusted"
    return "cached" if info.get("cached", False) else "activated"


def make_fnas_controller(
    env: gym.Env | VecEnv,
    uac: bool = True,
    aeb: bool = True,
    seed: int | None = None,
    tensorboard_log: str | None = None,
    **overrides: Any,
) -> FNASRecurrentPPO:
    """The FNAS controller: :func:`agents.controller.make_controller`'s settings plus FNAS rules.

    Args:
        env: a sequential NASEnv (wrappers allowed, e.g. ``wrappers.uac.UncertaintyGate``)
            or a VecEnv of them.
        uac: enforce the UAC batch rule (default True). False: every episode is kept
            and, if the env has a UAC gate, its trust is turned off so every sample is
            really evaluated (the "no UAC" ablation).
        aeb: replay from an experience buffer (default True): ``overrides`` may pass
            ``experience_buffer=``, else an ``agents.experience.ExperienceBuffer()`` with its
            defaults is made. False: no replay.
        seed: seed of the policy, the action sampling, the env and the replay sampling
            (default None).
        tensorboard_log: TensorBoard folder (default None: no logs).
        **overrides: FNASRecurrentPPO / RecurrentPPO arguments or ``make_controller``
            arguments (``architectures_per_update``, ``reward_scale``, ``verbose``).

    Returns:
        The unfitted model. ``uac=False, aeb=False`` trains like the plain controller.
    """
    from agents.controller import make_controller

    if not aeb:
        if overrides.get("experience_buffer") is not None:
            raise ValueError("aeb=False but an experience_buffer was given")
        overrides["experience_buffer"] = None
    elif overrides.get("experience_buffer") is None:
        from agents.experience import ExperienceBuffer

        overrides["experience_buffer"] = ExperienceBuffer()
    if not uac:
        overrides.setdefault("max_trusted_fraction", 1.0)
    model = make_controller(
        env,
        seed=seed,
        tensorboard_log=tensorboard_log,
        algorithm=FNASRecurrentPPO,
        **overrides,
    )
    if not uac:
        model._set_trust(model.get_env(), False)
    return model
