"""FNAS's controller: sb3-contrib RecurrentPPO with the UAC batch rule and AEB replay.

:class:`FNASRecurrentPPO` changes three things in RecurrentPPO (see ``docs/fnas_ppo.md``),
each in its own module:

- **UAC batch rule** (``collect_rollouts``, :mod:`agents.fnas_batch`): a trusted
  (critic-scored) episode is kept only while trusted episodes fill at most
  ``max_trusted_fraction`` of the batch's new episodes; extra ones are discarded and
  sampling goes on, with bounded resampling.
- **AEB replay** (:mod:`agents.fnas_replay`): episodes of the experience buffer take up
  to ``max_replay_fraction`` of a batch, with importance weights and an off-policy
  correction; ``train()`` (:mod:`agents.fnas_loss`) minimises ``sum(w x loss) / sum(w)``
  and normalises advantages with the new episodes' statistics (``advantage_stats``).
- **Search progress** (``search_budget``). Progress-based schedules (AEB's ``beta``,
  learning-rate and clip-range schedules) follow the search's own progress,
  paid evaluations (activated samples and a gate's evaluations aside) /
  ``search_budget``, whatever ``total_timesteps`` ``learn`` gets;
  :func:`agents.search.run_search` sets the budget and runs the search.

:func:`make_fnas_controller` builds it with the settings of
:func:`agents.controller.make_controller` (one LSTM layer of 100 units).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.vec_env import VecEnv

from agents.callbacks import check_count
from agents.controller import episode_length, make_controller
from agents.experience import ExperienceBuffer
from agents.fnas_batch import EpisodeStage, RolloutStats, UACBatchRuleMixin
from agents.fnas_buffer import WeightedRecurrentRolloutBuffer
from agents.fnas_loss import WeightedPPOLossMixin
from agents.fnas_replay import OFF_POLICY_CORRECTIONS, REPLAY_MODES, AEBReplayMixin
from agents.seam import SearchEnvs

__all__ = [
    "FNASRecurrentPPO",
    "FNASCounters",
    "make_fnas_controller",
    "OFF_POLICY_CORRECTIONS",
    "REPLAY_MODES",
]


@dataclass
class FNASCounters:
    """Episode counters of the FNAS rules over the whole training (saved with the model).

    - ``activated``: really evaluated episodes (each paid for an evaluation);
    - ``aside``: evaluations a UAC gate made outside the episodes, in place of a
      proposal it then trusted (``TrustRule(incumbents=...)``; the episode's
      ``info["aside_activated"]``);
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
    aside: int = 0
    cached: int = 0
    trusted: int = 0
    discarded_trusted: int = 0
    replayed: int = 0
    experiences_added: int = 0
    unfilled_batches: int = 0

    @property
    def ppo_samples(self) -> int:
        return self.activated + self.cached + self.trusted + self.replayed

    @property
    def evaluations(self) -> int:
        """Paid evaluations: activated episodes and the gate's evaluations aside."""
        return self.activated + self.aside


class FNASRecurrentPPO(UACBatchRuleMixin, AEBReplayMixin, WeightedPPOLossMixin, RecurrentPPO):
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
        keep_replaced: a trusted episode whose proposal a UAC gate replaced by an
            evaluation aside (``info["aside_activated"]``, ``TrustRule(incumbents=...)``)
            is always kept, outside the trusted quota, since its evaluation was paid
            (default False: it is discarded like any trusted episode over the quota).
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
            clip-range schedules) is ``evaluations / search_budget`` instead of SB3's
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
        keep_replaced: bool = False,
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
        self.keep_replaced = bool(keep_replaced)
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
        self._staged: list[EpisodeStage] | None = None
        self._seam: SearchEnvs | None = None
        # reward in the env's units (the record's) of each remembered architecture, by
        # its string (saved with the model as JSON): the training reward may be scaled
        # (make_controller's reward_scale)
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
        return [*super()._excluded_save_params(), "experience_buffer", "_staged", "_seam"]

    # ---- search progress ---------------------------------------------------------------
    @property
    def search_progress(self) -> float:
        """Progress of the search in [0, 1]: paid evaluations (``FNASCounters.evaluations``)
        / ``search_budget`` when it is set,
        else SB3's ``1 - progress_remaining`` (timesteps / ``total_timesteps``)."""
        if self.search_budget:
            return min(1.0, self.fnas_counters.evaluations / self.search_budget)
        return float(np.clip(1.0 - self._current_progress_remaining, 0.0, 1.0))

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        """SB3's progress (read by every schedule) follows the search budget when set."""
        if self.search_budget:
            self._current_progress_remaining = 1.0 - self.search_progress
        else:
            super()._update_current_progress_remaining(num_timesteps, total_timesteps)

    # ---- logging -------------------------------------------------------------------------
    def _log_rollout(self, env: VecEnv, stats: RolloutStats) -> None:
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
        per_env = self._envs(env).gate_metrics()
        for key in per_env[0] if per_env else ():
            values = [m.get(key) for m in per_env]
            if all(isinstance(v, int | float | np.number) for v in values):
                self.logger.record(f"uac/{key}", float(np.mean(values)))


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
            ``experience_buffer=``, else an ``agents.experience.ExperienceBuffer()`` with
            its defaults is made. False: no replay.
        seed: seed of the policy, the action sampling, the env and the replay sampling
            (default None).
        tensorboard_log: TensorBoard folder (default None: no logs).
        **overrides: FNASRecurrentPPO / RecurrentPPO arguments or ``make_controller``
            arguments (``architectures_per_update``, ``reward_scale``, ``verbose``).

    Returns:
        The unfitted model. ``uac=False, aeb=False`` trains like the plain controller.
    """
    if not aeb:
        if overrides.get("experience_buffer") is not None:
            raise ValueError("aeb=False but an experience_buffer was given")
        overrides["experience_buffer"] = None
    elif overrides.get("experience_buffer") is None:
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
        model._envs(model.get_env()).set_trust(False)
    return model
