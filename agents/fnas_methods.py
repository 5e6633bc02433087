"""FNAS's search methods in the harness registry: ``mnas``, ``uac``, ``aeb``, ``fnas``, transfer.

Importing this module registers into :data:`agents.harness.METHODS` (so
:func:`agents.harness.run_method` and the benchmarks can run them):

=================  ==========================================================================
method             what
=================  ==========================================================================
``mnas``           RecurrentPPO with :func:`~agents.controller.make_controller`'s defaults,
                   every sample trained (the controller of ``ppo-lstm``, under the paper's name)
``mnas-2``         ``mnas`` updating after every 2 architectures instead of 8: the same
                   activated samples per PPO update as ``fnas`` once its buffer is full
                   (a control: how much of FNAS's gain is update frequency alone)
``uac``            :class:`~wrappers.uac.UncertaintyGate` + the UAC batch rule, no replay
``aeb``            AEB replay, every sample evaluated (no critic)
``fnas``           UAC + AEB (:func:`~agents.fnas_ppo.make_fnas_controller`)
``fnas-transfer``  ``fnas`` whose critic (V and U) starts from a critic saved by another
                   search over the same space (:func:`configure` ``transfer_critic``), re-scaled
                   to this task's rewards and trained on in this one; optionally the AEB
                   contents too
=================  ==========================================================================

Every method runs until ``budget`` activated samples (real evaluations, see
:mod:`agents.harness`) are recorded; trusted (surrogate) and replayed samples
never spend budget.

The FNAS methods share one set of hyperparameters, :data:`FNAS_SETTINGS`
(the same for every env); :func:`configure` changes them and sets where the
critic and experience buffer of each run are saved (``save_dir``) and where
``fnas-transfer`` loads them from. Paths may hold ``{seed}``, so that seed *s*
of a transfer search starts from seed *s* of the source search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agents.baselines import nas_env
from agents.harness import METHODS, register_method

__all__ = ["FNASSettings", "FNAS_SETTINGS", "configure", "run_fnas", "LAST_RUN", "FNAS_METHODS"]

#: Methods this module registers.
FNAS_METHODS = ("mnas", "uac", "aeb", "fnas", "fnas-transfer")


@dataclass(frozen=True)
class FNASSettings:
    """Hyperparameters of the FNAS methods and where their state is saved/loaded.

    Args:
        warmup: real evaluations before the critic is trusted (default 20).
        trusted_fraction: adaptive threshold: the fraction of recent architectures
            whose U is low enough to trust (default 0.5, the paper's).
        max_trusted_fraction: UAC batch rule, most trusted episodes per batch
            (default 0.5, the paper's). Measured (``benchmarks/uac_ceiling.py``): the
            rule, not the critic, caps UAC's gain. Both fractions at 0.75 gave 2.37x on
            NB201 cifar10 (1.14x at 0.5). Keep this below 1.0: uncapped, a converged
            search trusts every repeat and stops measuring.
        max_replay_fraction: AEB, most replayed episodes per batch (default 0.5).
        replay_mode: AEB, ``"share"`` (default, the paper's: replays take slots of the
            fixed-size batch, so an update needs fewer new samples) or ``"extra"``
            (replays appended to a full batch of new samples; the setting of the
            ablation runs before session 4), see
            :class:`~agents.fnas_ppo.FNASRecurrentPPO`. Measured: neither wins everywhere;
            ``"extra"`` is better on Accel-NASBench (28 decisions per architecture),
            see ``benchmarks/results/fnas_ablation.md``.
        buffer_capacity: AEB entries (default 10, the paper's).
        critic_ensemble: uncertainty of new critics: 0 (default) the paper's U, K >= 2
            the spread of K extra V networks (``UncertaintyCritic(ensemble=K)``).
        verify_best: the gate evaluates every architecture whose V beats the best
            evaluated reward (:class:`~wrappers.uac.UncertaintyGate`; default True).
        learning_rate: controller's Adam step of the FNAS methods (default 1e-3, as
            ``make_controller``; ``mnas`` always keeps make_controller's default).
        transfer_warmup: warm-up of ``fnas-transfer`` after ``clear_replay`` (only used
            when ``transfer_clear_replay``; default 10).
        transfer_clear_replay: forget the source search's samples after loading the
            critic, keeping V's and U's weights (default True). The source's rewards are
            in the source task's scale (NB201 cifar10 accuracies are 20-50 points above
            cifar100's and ImageNet16-120's): kept in the replay they pull V back to
            the old scale at every minibatch.
        transfer_restandardize: the new task's first rewards that re-scale V's
            standardised output to the new task (``UncertaintyCritic.clear_replay``'s
            ``restandardize``; default 5, only with ``transfer_clear_replay``).
        save_dir: folder where ``uac``/``fnas`` runs save ``critic-{seed}.pt`` and
            ``fnas``/``aeb`` runs ``aeb-{seed}/`` (default None: nothing saved).
        transfer_critic: path (may hold ``{seed}``) of the critic ``fnas-transfer``
            loads (default None: ``fnas-transfer`` raises).
        transfer_buffer: path (may hold ``{seed}``) of an experience buffer folder to
            start ``fnas-transfer``'s AEB with (default None: empty buffer). Only
            meaningful when the source search had the same space and reward.
    """

    warmup: int = 20
    trusted_fraction: float = 0.5
    max_trusted_fraction: float = 0.5
    max_replay_fraction: float = 0.5
    replay_mode: str = "share"
    buffer_capacity: int = 10
    critic_ensemble: int = 0
    verify_best: bool = True
    learning_rate: float = 1e-3
    transfer_warmup: int = 10
    transfer_clear_replay: bool = True
    transfer_restandardize: int = 5
    save_dir: str | None = None
    transfer_critic: str | None = None
    transfer_buffer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: The settings every FNAS method reads (replace with :func:`configure`).
FNAS_SETTINGS = FNASSettings()

#: The last run's objects, for callers that inspect them: ``model``, ``gate``, ``critic``,
#: ``buffer``, ``metrics`` (the gate's metrics), ``counters`` (FNASCounters as a dict).
LAST_RUN: dict[str, Any] = {}


def configure(**changes: Any) -> FNASSettings:
    """Replace fields of :data:`FNAS_SETTINGS` (keyword arguments of :class:`FNASSettings`).

    Raises:
        TypeError: an unknown setting.
    """
    global FNAS_SETTINGS
    unknown = set(changes) - set(FNASSettings.__dataclass_fields__)
    if unknown:
        raise TypeError(
            f"unknown FNAS settings {sorted(unknown)}; "
            f"accepted: {sorted(FNASSettings.__dataclass_fields__)}"
        )
    FNAS_SETTINGS = replace(FNAS_SETTINGS, **changes)
    return FNAS_SETTINGS


def _path(template: str, seed: int) -> Path:
    return Path(os.fspath(template).format(seed=seed))


def _learn(model, env, budget: int, progress_bar: bool) -> None:
    from agents.callbacks import SearchBudgetCallback

    # budget stops learn exactly; trusted and replayed episodes need more timesteps than
    # T x budget, so the timestep bound is only a backstop
    model.learn(
        total_timesteps=nas_env(env).horizon * budget * 100,
        callback=SearchBudgetCallback(budget),
        progress_bar=progress_bar,
    )


def run_fnas(
    env,
    budget: int,
    seed: int,
    uac: bool,
    aeb: bool,
    logdir=None,
    progress_bar: bool = False,
    critic=None,
    buffer=None,
    warmup: int | None = None,
) -> None:
    """Run an FNAS search (UAC and/or AEB) on ``env`` for ``budget`` activated samples.

    The registered methods ``uac``, ``aeb``, ``fnas`` and ``fnas-transfer`` call this
    with :data:`FNAS_SETTINGS`; ``critic`` (default: a new
    :class:`~wrappers.critic.UncertaintyCritic`) may be any object the gate accepts,
    ``buffer`` a pre-filled :class:`~wrappers.aeb.ExperienceBuffer`, ``warmup`` the
    gate's warm-up (default: the settings'). Fills :data:`LAST_RUN`.
    """
    from agents.fnas_ppo import make_fnas_controller
    from wrappers.aeb import ExperienceBuffer

    s = FNAS_SETTINGS
    gate = None
    if uac:
        from wrappers.critic import UncertaintyCritic
        from wrappers.uac import UncertaintyGate

        if critic is None:
            critic = UncertaintyCritic(
                nas_env(env).search_space.embedding_dim, seed=seed, ensemble=s.critic_ensemble
            )
        gate = UncertaintyGate(
            env,
            critic,
            trusted_fraction=s.trusted_fraction,
            warmup=s.warmup if warmup is None else warmup,
            verify_best=s.verify_best,
        )
    overrides: dict[str, Any] = {"learning_rate": s.learning_rate, **s.extra}
    if uac:
        overrides["max_trusted_fraction"] = s.max_trusted_fraction
    if aeb:
        overrides["max_replay_fraction"] = s.max_replay_fraction
        overrides["replay_mode"] = s.replay_mode
        overrides["experience_buffer"] = buffer or ExperienceBuffer(s.buffer_capacity, seed=seed)
    model = make_fnas_controller(
        gate if gate is not None else env,
        uac=uac,
        aeb=aeb,
        seed=seed,
        tensorboard_log=None if logdir is None else os.fspath(logdir),
        **overrides,
    )
    LAST_RUN.clear()
    LAST_RUN.update(model=model, gate=gate, critic=critic, buffer=model.experience_buffer)
    try:
        _learn(model, gate if gate is not None else env, budget, progress_bar)
    finally:
        LAST_RUN["metrics"] = gate.metrics() if gate is not None else {}
        LAST_RUN["counters"] = vars(model.fnas_counters).copy()
        if s.save_dir is not None:
            folder = Path(s.save_dir)
            folder.mkdir(parents=True, exist_ok=True)
            if critic is not None:
                critic.save(folder / f"critic-{seed}.pt")
            if model.experience_buffer is not None:
                model.experience_buffer.save(folder / f"aeb-{seed}")


@register_method("mnas")
def _mnas(env, budget, seed, logdir=None, progress_bar=False):
    """MnasNet: RecurrentPPO with make_controller's defaults, every sample trained."""
    METHODS["ppo-lstm"](env, budget, seed, logdir=logdir, progress_bar=progress_bar)


@register_method("mnas-2")
def _mnas_2(env, budget, seed, logdir=None, progress_bar=False):
    """mnas with a PPO update every 2 architectures (fnas: 8 slots - 4 replays - 2 trusted)."""
    from agents.controller import make_controller

    model = make_controller(env, seed=seed, tensorboard_log=logdir, architectures_per_update=2)
    LAST_RUN.clear()
    LAST_RUN["model"] = model
    _learn(model, env, budget, progress_bar)


@register_method("uac")
def _uac(env, budget, seed, logdir=None, progress_bar=False):
    """UAC only: critic-scored (trusted) samples, at most max_trusted_fraction per batch."""
    run_fnas(env, budget, seed, uac=True, aeb=False, logdir=logdir, progress_bar=progress_bar)


@register_method("aeb")
def _aeb(env, budget, seed, logdir=None, progress_bar=False):
    """AEB only: replayed episodes in every batch, every new sample evaluated."""
    run_fnas(env, budget, seed, uac=False, aeb=True, logdir=logdir, progress_bar=progress_bar)


@register_method("fnas")
def _fnas(env, budget, seed, logdir=None, progress_bar=False):
    """FNAS without the knowledge pool: UAC + AEB."""
    run_fnas(env, budget, seed, uac=True, aeb=True, logdir=logdir, progress_bar=progress_bar)


@register_method("fnas-transfer")
def _fnas_transfer(env, budget, seed, logdir=None, progress_bar=False):
    """FNAS whose critic (and optionally AEB) starts from another search's over the same space."""
    from wrappers.aeb import ExperienceBuffer
    from wrappers.critic import UncertaintyCritic

    s = FNAS_SETTINGS
    if s.transfer_critic is None:
        raise ValueError(
            "fnas-transfer needs a pretrained critic: call agents.fnas_methods.configure("
            "transfer_critic='path/critic-{seed}.pt') (saved by a 'fnas' run with save_dir)"
        )
    path = _path(s.transfer_critic, seed)
    if not path.is_file():
        raise FileNotFoundError(f"fnas-transfer: no pretrained critic at {path}")
    critic = UncertaintyCritic.load(path)
    warmup = None
    if s.transfer_clear_replay:
        critic.clear_replay(restandardize=s.transfer_restandardize)
        warmup = s.transfer_warmup
    buffer = None
    if s.transfer_buffer is not None:
        base = nas_env(env)
        buffer = ExperienceBuffer.load(
            _path(s.transfer_buffer, seed),
            space=base.search_space.name,
            obs_dim=int(base.observation_space.shape[-1]),
        )
    run_fnas(
        env,
        budget,
        seed,
        uac=True,
        aeb=True,
        logdir=logdir,
        progress_bar=progress_bar,
        critic=critic,
        buffer=buffer,
        warmup=warmup,
    )
