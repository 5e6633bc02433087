"""The search methods the benchmarks compare, each a function of explicit settings.

:func:`run` makes a fresh env, runs one method on it for a budget of activated samples
(and, for the paper's metric, at least ``min_ppo_samples`` PPO samples) and returns a
:class:`RunResult`: the per-activated-sample trace read from the env's record, the
FNAS counters, the gate's metrics and the PPO-sample checkpoints. Nothing is kept in
module state: every knob is a field of :class:`FNASSettings` passed to :func:`run`.

=================  ==========================================================================
method             what
=================  ==========================================================================
``mnas``           sb3-contrib RecurrentPPO with :func:`~agents.controller.make_controller`'s
                   defaults, every sample trained (MnasNet's controller)
``mnas-2``         ``mnas`` updating after every 2 architectures instead of 8
``fnas-off``       :class:`~agents.fnas_ppo.FNASRecurrentPPO` with UAC and AEB off: the
                   control (must learn like ``mnas``)
``uac``            UAC gate + the 50% batch rule, no replay
``aeb``            AEB replay, every new sample evaluated
``fnas``           UAC + AEB
``fnas-transfer``  ``fnas`` whose critic starts from the one a ``fnas`` search saved on
                   another task (``FNASSettings.transfer_critic``)
``fnas-fast``      ``fnas`` beyond the paper's rule: the gate trusts 90% of the
                   architectures and a batch may hold 75% trusted ones
                   (:data:`FAST`), so each activated sample is screened with more
                   critic-scored ones
``fnas-screen``    ``fnas`` beyond the paper: the gate activates the most promising tenth
                   of the sampled architectures by V + kappa U and trusts the rest, and
                   trains an incumbent's neighbour instead where that scores higher
                   (:data:`SCREEN`, the library's preset)
``fnas-screen-``   ``fnas-screen`` screening the controller's proposals only
``proposals``      (:data:`SCREEN_PROPOSALS`)
``fnas-screen-``   ``fnas-screen`` whose controller keeps a trusted episode whose proposal
``keep``           the gate replaced by a neighbour outside the trusted quota
                   (``FNASRecurrentPPO(keep_replaced=True)``)
``fnas-screen-``   ``fnas-screen`` whose critic starts from the one a ``fnas-screen``
``transfer``       search saved on another task (``FNASSettings.transfer_critic``)
``uac-screen``     ``fnas-screen`` without AEB (the screening gate alone)
``uac-screen-``    ``uac-screen`` with ``fnas-screen-keep``'s controller
``keep``
``evolution``      regularized evolution (Real et al., 2019)
``random``         random search
=================  ==========================================================================

Trusted, cached and replayed samples never spend budget (see :mod:`benchmarks.harness`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.baselines import nas_env, random_search, regularized_evolution
from agents.methods import SCREEN_CONTROLLER, SCREEN_CRITIC, SCREEN_GATE, SCREEN_KEEP_CONTROLLER
from benchmarks.harness import TracePoint, make_search_env, trace_of
from fnas_env import threads

__all__ = [
    "FNASSettings",
    "RunResult",
    "METHODS",
    "run",
    "top_accuracy",
    "PPO_CHECKPOINTS",
]

#: Methods :func:`run` knows.
METHODS = (
    "mnas",
    "mnas-2",
    "fnas-off",
    "uac",
    "aeb",
    "fnas",
    "fnas-transfer",
    "fnas-fast",
    "fnas-screen",
    "fnas-screen-proposals",
    "fnas-screen-keep",
    "fnas-screen-transfer",
    "uac-screen",
    "uac-screen-keep",
    "evolution",
    "random",
)
#: What ``fnas-fast`` changes in the settings it is given.
FAST = {"trusted_fraction": 0.9, "max_trusted_fraction": 0.75}
#: What ``fnas-screen`` changes in the settings it is given: the library's preset
#: (:data:`agents.methods.SCREEN_GATE` and :data:`~agents.methods.SCREEN_CONTROLLER`;
#: :data:`~agents.methods.SCREEN_CRITIC` is merged into ``critic_kwargs``).
SCREEN = {**SCREEN_GATE, **SCREEN_CONTROLLER}
#: ``fnas-screen-proposals``: ``fnas-screen`` whose critic screens the controller's
#: proposals only (no incumbents' neighbours, a single V/U pair, kappa 1, trust after 20
#: evaluations)
SCREEN_PROPOSALS = {
    **SCREEN,
    "kappa": 1.0,
    "incumbents": 0,
    "warmup": 20,
    "quality_window": 20,
}
#: Methods with ``fnas-screen``'s gate and critic -> (the method they modify, the library's
#: controller preset they use)
SCREEN_VARIANTS = {
    "fnas-screen": ("fnas", SCREEN_CONTROLLER),
    "fnas-screen-keep": ("fnas", SCREEN_KEEP_CONTROLLER),
    "fnas-screen-transfer": ("fnas-transfer", SCREEN_CONTROLLER),
    "uac-screen": ("uac", SCREEN_CONTROLLER),
    "uac-screen-keep": ("uac", SCREEN_KEEP_CONTROLLER),
}
#: PPO samples at which the paper's metric is read (Table 4 compares at equal PPO samples).
PPO_CHECKPOINTS = (400, 1000)


@dataclass(frozen=True)
class FNASSettings:
    """Settings of the FNAS methods (defaults: the library's paper-faithful defaults).

    Args:
        warmup: really evaluated samples before the critic may be trusted (gate).
        trusted_fraction: the gate's adaptive threshold: fraction of architectures whose
            U is low enough to trust (0.8: above the batch rule, so the rule binds).
        max_relative_error: the gate's quality check (None: off; 1.0, the library's default).
        quality_window: samples of the quality check.
        max_trusted_fraction: the UAC batch rule (0.5, the paper's).
        max_replay_fraction: AEB share of a batch (0.5, the paper's).
        replay_mode: ``"share"`` (the paper's) or ``"extra"``.
        buffer_capacity: AEB entries (10, the paper's).
        priority: AEB priorities, ``"paper"`` or ``"standardized"``.
        off_policy_correction: ``"clip"`` (PPO's ratio against the behaviour policy),
            ``"none"``, ``"episode"`` or ``"step"``.
        verify_best: the gate evaluates would-be incumbents.
        encoding: what V and U see, ``"one_hot"`` (the paper's) or ``"features"``
            (:meth:`~fnas_env.spaces.base.SearchSpace.features`: NB201 adds path encoding).
        selection: which architectures the gate activates, ``"uncertainty"`` (the
            paper's: the most uncertain) or ``"ucb"`` (the most promising by V + kappa U).
        kappa: weight of U in the ``"ucb"`` score.
        incumbents: best activated architectures whose one-decision neighbours the gate
            screens against each proposal it would activate (0: none).
        critic: ``"learnt"`` (V/U networks) or ``"oracle"`` (the benchmark's true reward,
            uninformative U: :class:`benchmarks.oracle.OracleCritic`, tables only).
        critic_kwargs: extra :class:`~wrappers.critic.UncertaintyCritic` arguments.
        transfer_critic: critic file (may hold ``{seed}``) ``fnas-transfer`` and
            ``fnas-screen-transfer`` start from.
        transfer_warmup: their warm-up and quality window.
        transfer_restandardize: new-task rewards that re-scale a transferred V.
        controller: extra FNASRecurrentPPO / RecurrentPPO arguments.
    """

    warmup: int = 20
    trusted_fraction: float = 0.8
    max_relative_error: float | None = 1.0
    quality_window: int = 20
    max_trusted_fraction: float = 0.5
    max_replay_fraction: float = 0.5
    replay_mode: str = "share"
    buffer_capacity: int = 10
    priority: str = "paper"
    off_policy_correction: str = "clip"
    verify_best: bool = True
    critic: str = "learnt"
    encoding: str = "one_hot"
    selection: str = "uncertainty"
    kappa: float = 1.0
    incumbents: int = 0
    critic_kwargs: dict[str, Any] = field(default_factory=dict)
    transfer_critic: str | None = None
    transfer_warmup: int = 10
    transfer_restandardize: int = 5
    controller: dict[str, Any] = field(default_factory=dict)

    def changed(self, **changes: Any) -> FNASSettings:
        """A copy with ``changes``; unknown keys raise TypeError naming the accepted ones."""
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise TypeError(
                f"unknown FNAS settings {sorted(unknown)}; accepted: "
                f"{sorted(self.__dataclass_fields__)}"
            )
        return replace(self, **changes)


@dataclass
class RunResult:
    """What one run of a method did.

    ``trace``: one point per activated sample (at most the budget); ``counters``: the
    FNAS controller's counters (empty for other methods); ``metrics``: the UAC gate's;
    ``ppo_checkpoints``: ``(ppo_samples, record_entries)`` after every PPO rollout (for
    the paper's metric; empty for methods without PPO); ``converged``: the run stopped
    because its policy only repeated evaluated architectures; ``entries``: the search record's
    entries of this run, the first at index ``record_start`` of the record; ``wall_s``:
    seconds.
    """

    trace: list[TracePoint]
    counters: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    ppo_checkpoints: list[tuple[int, int]] = field(default_factory=list)
    entries: list[Any] = field(default_factory=list)
    record_start: int = 0
    wall_s: float = 0.0
    converged: bool = False


class _SearchStop(BaseCallback):
    """Stop once ``budget`` activated samples are recorded and PPO has trained on at least
    ``min_ppo_samples`` episodes, after ``max_samples`` sampled architectures, or when
    ``patience`` sampled architectures in a row brought no activated one (the policy only
    repeats what it has evaluated: ``converged``). Logs ``(ppo_samples, record entries)``
    after every rollout."""

    def __init__(self, base, budget: int, min_ppo_samples: int, max_samples: int, patience: int):
        super().__init__()
        self.base = base
        self.budget = budget
        self.min_ppo_samples = min_ppo_samples
        self.max_samples = max_samples
        self.patience = patience
        self.start_activated = base.record.counters.activated
        self.start_sampled = base.record.counters.sampled
        self.last_activated = (self.start_activated, self.start_sampled)
        self.converged = False
        self.checkpoints: list[tuple[int, int]] = []

    def ppo_samples(self) -> int:
        counters = getattr(self.model, "fnas_counters", None)
        if counters is not None:
            return counters.ppo_samples
        return self.model.num_timesteps // self.base.horizon  # every episode is trained on

    def _on_rollout_end(self) -> None:
        self.checkpoints.append((self.ppo_samples(), len(self.base.record.entries)))

    def _on_step(self) -> bool:
        c = self.base.record.counters
        if c.activated != self.last_activated[0]:
            self.last_activated = (c.activated, c.sampled)
        elif c.sampled - self.last_activated[1] >= self.patience:
            self.converged = True
            return False
        if c.sampled - self.start_sampled >= self.max_samples:
            return False
        done_ppo = self.checkpoints[-1][0] if self.checkpoints else 0
        return not (
            c.activated - self.start_activated >= self.budget and done_ppo >= self.min_ppo_samples
        )


def _critic(env, settings: FNASSettings, seed: int, path: str | None):
    from wrappers.critic import UncertaintyCritic

    if path is not None:
        critic = UncertaintyCritic.load(path)
        critic.clear_replay(restandardize=settings.transfer_restandardize)
        return critic
    if settings.critic == "oracle":
        from benchmarks.oracle import OracleCritic

        return OracleCritic(env, seed)
    if settings.critic != "learnt":
        raise ValueError(f"critic must be 'learnt' or 'oracle', got {settings.critic!r}")
    space = nas_env(env).search_space
    width = space.embedding_dim if settings.encoding == "one_hot" else space.feature_dim
    return UncertaintyCritic(width, seed=seed, **settings.critic_kwargs)


def _ppo_run(
    method: str,
    env,
    budget: int,
    seed: int,
    settings: FNASSettings,
    min_ppo_samples: int,
    max_samples: int,
    patience: int,
    save_dir: str | None,
    search=None,
) -> dict[str, Any]:
    """Run a PPO method on ``env``: a NAS env, or (``n_envs > 1``) a ``VecSearchRecord``
    over several; ``search`` is what the stop callback reads (``record``, ``horizon``;
    default the NAS env under ``env``)."""
    from stable_baselines3.common.vec_env import VecEnv

    from agents.controller import ARCHITECTURES_PER_UPDATE, make_controller
    from agents.experience import ExperienceBuffer
    from agents.fnas_ppo import make_fnas_controller
    from wrappers.uac import UncertaintyGate, VecUncertaintyGate

    vectorised = isinstance(env, VecEnv)
    base = search if search is not None else nas_env(env)
    n_envs = env.num_envs if vectorised else 1
    gate = critic = model = None
    requested = method
    if method == "fnas-fast":
        method, settings = "fnas", settings.changed(**FAST)
    elif method in SCREEN_VARIANTS:
        critic_kwargs = {**settings.critic_kwargs, **SCREEN_CRITIC}
        method, preset = SCREEN_VARIANTS[method]
        controller = {**settings.controller, **preset}
        settings = settings.changed(**SCREEN, critic_kwargs=critic_kwargs, controller=controller)
    elif method == "fnas-screen-proposals":
        method, settings = "fnas", settings.changed(**SCREEN_PROPOSALS)
    overrides: dict[str, Any] = dict(settings.controller)  # the FNAS methods'
    per_update = overrides.pop("architectures_per_update", ARCHITECTURES_PER_UPDATE)
    if method in ("mnas", "mnas-2"):
        per_update = 2 if method == "mnas-2" else ARCHITECTURES_PER_UPDATE
    if per_update % n_envs:
        raise ValueError(f"{per_update} architectures per update do not split over {n_envs} envs")
    overrides["architectures_per_update"] = per_update // n_envs
    if method in ("mnas", "mnas-2"):
        model = make_controller(env, seed=seed, architectures_per_update=per_update // n_envs)
    else:
        uac = method in ("uac", "fnas", "fnas-transfer")
        aeb = method in ("aeb", "fnas", "fnas-transfer")
        transfer = None
        if method == "fnas-transfer":
            if settings.transfer_critic is None:
                raise ValueError(f"{requested} needs FNASSettings.transfer_critic")
            transfer = os.fspath(settings.transfer_critic).format(seed=seed)
            if not Path(transfer).is_file():
                raise FileNotFoundError(f"{requested}: no critic at {transfer}")
        if uac:
            one = env.envs[0] if vectorised else env
            critic = _critic(one, settings, seed, transfer)
            window = settings.transfer_warmup if transfer else settings.quality_window
            gate = (VecUncertaintyGate if vectorised else UncertaintyGate)(
                env,
                critic,
                trusted_fraction=settings.trusted_fraction,
                warmup=settings.transfer_warmup if transfer else settings.warmup,
                verify_best=settings.verify_best,
                max_relative_error=settings.max_relative_error,
                quality_window=window,
                encoding=settings.encoding,
                selection=settings.selection,
                kappa=settings.kappa,
                incumbents=settings.incumbents,
            )
        if uac:
            overrides["max_trusted_fraction"] = settings.max_trusted_fraction
        if aeb:
            overrides.update(
                max_replay_fraction=settings.max_replay_fraction,
                replay_mode=settings.replay_mode,
                off_policy_correction=settings.off_policy_correction,
                experience_buffer=ExperienceBuffer(
                    settings.buffer_capacity, seed=seed, priority=settings.priority
                ),
            )
        model = make_fnas_controller(
            gate if gate is not None else env,
            uac=uac,
            aeb=aeb,
            seed=seed,
            search_budget=budget,
            **overrides,
        )
    stop = _SearchStop(base, budget, min_ppo_samples, max_samples, patience)
    try:
        model.learn(total_timesteps=base.horizon * max_samples, callback=stop)
    finally:
        if save_dir is not None and critic is not None and hasattr(critic, "save"):
            Path(save_dir).mkdir(parents=True, exist_ok=True)
            critic.save(Path(save_dir) / f"critic-{seed}.pt")
    counters = getattr(model, "fnas_counters", None)
    return {
        "counters": {}
        if counters is None
        else {**vars(counters), "ppo_samples": counters.ppo_samples},
        "metrics": gate.metrics() if gate is not None else {},
        "ppo_checkpoints": stop.checkpoints,
        "converged": stop.converged,
    }


def run(
    method: str,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    budget: int = 400,
    seed: int = 0,
    settings: FNASSettings | None = None,
    min_ppo_samples: int = 0,
    max_samples: int | None = None,
    patience: int = 400,
    save_dir: str | None = None,
    num_threads: int = 1,
    n_envs: int = 1,
) -> RunResult:
    """Run ``method`` on a fresh ``gym.make(env_id, **env_kwargs)`` env.

    Args:
        method: one of :data:`METHODS`.
        env_id: a registered FNAS env id.
        env_kwargs: ``gym.make`` keyword arguments.
        budget: activated samples (the trace holds at most this many points).
        seed: seed of the method and the env.
        settings: FNAS settings (default :class:`FNASSettings`'s).
        min_ppo_samples: PPO methods keep searching past the budget until PPO has
            trained on this many episodes (for the paper's equal-PPO-samples metric).
        max_samples: bound on sampled architectures of every kind (default
            ``50 x max(budget, min_ppo_samples)``).
        patience: PPO methods stop after this many sampled architectures in a row
            without an activated one (the policy has converged on what it evaluated);
            ``RunResult.converged`` says so.
        save_dir: where a UAC method saves ``critic-{seed}.pt`` (default: nowhere).
        num_threads: torch threads while the method runs (one: tiny networks).
        n_envs: PPO methods sample this many architectures at once (default 1): ``n_envs``
            envs in a ``DummyVecEnv`` under one :class:`~wrappers.record.VecSearchRecord`
            (and one :class:`~wrappers.uac.VecUncertaintyGate`), so one batched LSTM
            step serves ``n_envs`` episodes. A PPO batch keeps its architectures (8, split
            over the envs: ``n_envs`` must divide them); the gate decides the
            architectures completed in one step before learning from any of them, so
            the search differs from ``n_envs=1``'s (measured:
            ``benchmarks/results/fnas_ablation.md``, "Wall time and where it goes").
            The trace's ``eval_time`` is 0 with several envs (meant for table lookups).
    """
    from types import SimpleNamespace

    from stable_baselines3.common.vec_env import DummyVecEnv

    from wrappers.record import VecSearchRecord

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if int(n_envs) < 1 or (n_envs > 1 and method in ("evolution", "random")):
        raise ValueError(f"n_envs must be >= 1 (and 1 for {method!r}), got {n_envs!r}")
    settings = settings or FNASSettings()
    max_samples = max_samples or 50 * max(budget, min_ppo_samples)
    envs = [make_search_env(env_id, env_kwargs) for _ in range(int(n_envs))]
    env: Any = envs[0]
    base: Any = nas_env(env)
    if n_envs == 1:
        env.reset(seed=seed)
    else:  # one record (and cache) for every env; eval times are not traced (lookups)
        env = VecSearchRecord(DummyVecEnv([lambda e=e: e for e in envs]), seed=seed)
        env.seed(seed)
        base = SimpleNamespace(record=env.record, horizon=base.horizon, evaluator=None)
    start_entries = len(base.record.entries)
    start = time.time()
    extra: dict[str, Any] = {}
    try:
        with threads.torch_threads(num_threads):
            if method == "evolution":
                regularized_evolution(env, budget, seed=seed, max_samples=max_samples)
            elif method == "random":
                random_search(env, budget, seed=seed, max_samples=max_samples)
            else:
                extra = _ppo_run(
                    method,
                    env,
                    budget,
                    seed,
                    settings,
                    min_ppo_samples,
                    max_samples,
                    patience,
                    save_dir,
                    search=base,
                )
    finally:
        env.close()
    wall = time.time() - start
    return RunResult(
        trace=trace_of(base, start_entries, start, budget),
        entries=list(base.record.entries[start_entries:]),
        record_start=start_entries,
        wall_s=wall,
        **extra,
    )


def top_accuracy(
    entries: list[Any], lookup, k: int = 10
) -> tuple[float, float] | tuple[None, None]:
    """Mean true (accuracy, reward) of the top-``k`` distinct architectures by recorded reward.

    ``entries``: record entries (replayed ones are skipped; trusted ones count with
    their predicted reward, as the search saw them); ``lookup(arch_string) ->
    (accuracy, reward)``: the benchmark's true values.
    """
    best: dict[str, float] = {}
    for e in entries:
        if e.kind == "replayed":
            continue
        best[e.arch] = max(best.get(e.arch, -np.inf), e.reward)
    if not best:
        return None, None
    top = sorted(best, key=best.__getitem__, reverse=True)[:k]
    values = np.array([lookup(a) for a in top], dtype=float)
    return float(values[:, 0].mean()), float(values[:, 1].mean())
