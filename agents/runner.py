"""A search in a run folder: the steps ``fnas search`` and ``examples/fnas_search.py`` share.

A search is fixed by its :class:`~fnas_env.run.RunSettings` (env id and kwargs,
method, seed) and lives in a :class:`~fnas_env.run.RunFolder`. The steps:

1. :func:`fix_target`: the reward's target ``T`` becomes a number once (for
   ``FNAS-MNAS-v0``, ``"base"`` is MobileNetV2's latency on this machine) and is
   kept in ``search.json``, so a resumed search and every worker score alike.
2. :func:`make_search_venv`: the envs, in this process or in Ray actors.
3. :func:`open_critic` and :func:`open_buffer`: UAC's critic and AEB's buffer from
   the run folder (or another task's), else new; the controller's policy from its
   last checkpoint (:class:`ControllerCheckpoint`).
4. :func:`run_in_folder`: any method of :data:`METHODS` until the search's budget
   of activated samples is spent; a folder with a record resumes it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

import fnas_env  # noqa: F401 - registers the env ids
from agents.methods import (
    CONTROLLERS,
    FNAS_METHODS,
    METHODS,
    RL_METHODS,
    SCREEN_CRITIC,
    SCREEN_GATE,
    SCREEN_METHODS,
)
from fnas_env.record import RecordEntry, SearchCounters
from fnas_env.run import RunFolder, RunSettings

__all__ = [
    "METHODS",
    "RL_METHODS",
    "SearchOutcome",
    "SearchProgress",
    "ControllerCheckpoint",
    "check_env_kwargs",
    "check_search",
    "fix_target",
    "make_search_venv",
    "open_critic",
    "open_buffer",
    "run_in_folder",
]

#: env ids whose reward target ``"base"`` is measured on this machine
MEASURED_TARGET_ENVS = ("FNAS-MNAS-v0",)


def check_env_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` for an unknown env id or a keyword its factory does not take."""
    from fnas_env.envs import env_options

    accepted = env_options(env_id)
    unknown = sorted(set(env_kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"{env_id} takes no option {', '.join(map(repr, unknown))}; "
            f"it accepts {', '.join(sorted(accepted))}"
        )


def fix_target(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` with a machine-measured target (``"base"``) replaced by its number.

    Builds the env once (``FNAS-MNAS-v0`` loads its data and times MobileNetV2 with
    the per-machine latency table); other envs and numeric targets pass unchanged.
    """
    if env_id not in MEASURED_TARGET_ENVS or env_kwargs.get("target", "base") != "base":
        return dict(env_kwargs)
    probe_kwargs = {**env_kwargs, "pool": None, "record_path": None}
    probe = gym.make(env_id, **probe_kwargs)
    try:
        target = float(probe.unwrapped.reward_config.target)
    finally:
        probe.close()
    return {**env_kwargs, "target": target}


def make_search_venv(
    env_id: str,
    env_kwargs: dict[str, Any],
    workers: int = 1,
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    seed: int | None = None,
) -> VecEnv:
    """The search's envs: a ``DummyVecEnv`` for one worker, else a Ray ``VecEnv``.

    Args:
        env_id: a registered FNAS env id.
        env_kwargs: its ``gym.make`` keyword arguments.
        workers: architectures evaluated at once (default 1; more: Ray actors).
        ray_address: a Ray cluster to join (default None: ``RAY_ADDRESS`` or a
            local Ray on this machine's cores).
        gpus_per_worker: GPUs per Ray worker (fractions allowed; default 0).
        seed: seed of the Ray workers' envs (default None).
    """
    if workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if workers == 1:
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv

        return DummyVecEnv([lambda: Monitor(gym.make(env_id, **env_kwargs))])
    from fnas_env.ray_vec_env import make_ray_vec_env

    return make_ray_vec_env(
        env_id,
        n_envs=workers,
        env_kwargs=env_kwargs,
        seed=seed,
        address=ray_address,
        num_gpus=gpus_per_worker,
    )


def open_critic(
    run: RunFolder,
    space_name: str,
    seed: int = 0,
    path: str | Path | None = None,
    transfer: str | Path | None = None,
    critic_kwargs: dict[str, Any] | None = None,
) -> Any:
    """UAC's critic for the search in ``run``.

    In order: the critic file (``path``, default ``run/critic.pt``) of an earlier
    run of this search; else the critic of a search on another task
    (``transfer``), its weights kept and re-scaled to this task's rewards; else a
    new one (with ``critic_kwargs``, e.g. ``fnas-screen``'s ensemble). Either of the
    last two is fitted on the run's record, so a search killed before it saved its
    critic loses nothing.
    """
    from fnas_env.spaces import get_space
    from wrappers.critic import UncertaintyCritic

    path = Path(path or run.critic_path)
    if path.exists():
        return UncertaintyCritic.load(path)
    if transfer is not None:
        critic = UncertaintyCritic.load(transfer)
        critic.clear_replay()  # forget the old task's rewards, re-scale V on this task's
    else:
        critic = UncertaintyCritic(
            get_space(space_name).embedding_dim, seed=seed, **(critic_kwargs or {})
        )
    if run.record_path.exists():
        critic.fit_record(run.record_path)
    return critic


def open_buffer(run: RunFolder) -> Any:
    """AEB's experience buffer kept in ``run`` (``run/aeb``), else a new one."""
    from agents.experience import ExperienceBuffer

    if (run.aeb_dir / "buffer.json").exists():
        return ExperienceBuffer.load(run.aeb_dir)
    return ExperienceBuffer()


class SearchProgress(BaseCallback):
    """A progress bar per activated sample, the running best, and proxy means in TensorBoard.

    Trusted architectures (``info["trusted"]``) and repeats served from the
    record (``info["cached"]``) are not trained: they count in the bar's postfix,
    not in its progress.

    Args:
        counters: the search's counters (read for the running best).
        total: activated samples the bar counts to.
        show: draw the bar (default True).
    """

    def __init__(self, counters: Callable[[], SearchCounters], total: int, show: bool = True):
        super().__init__()
        from tqdm import tqdm

        self.counters = counters
        self.bar = tqdm(total=total, unit="arch", disable=not show, dynamic_ncols=True)

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if not done or "arch" not in info:
                continue
            if not info["activated"]:
                continue
            for key in ("accuracy", "latency", "reward"):
                if info.get(key) is not None:
                    self.logger.record_mean(f"proxy/{key}", info[key])
            if "pool_hit_ratio" in info:
                self.logger.record_mean("akp/hit_ratio", info["pool_hit_ratio"])
                self.logger.record_mean("akp/exact_ratio", info["pool_exact_ratio"])
            counters = self.counters()
            self.bar.set_postfix(
                best_reward=f"{counters.best_reward:.3f}",
                best_acc=f"{counters.best_accuracy:.2f}",
                trusted=counters.trusted,
                cached=counters.cached,
            )
            self.bar.update(1)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


class ControllerCheckpoint(BaseCallback):
    """Keeps the controller's policy and optimizer in ``path`` after every PPO update.

    A resumed search loads them (:meth:`restore`), so the controller goes on from
    what it learnt instead of starting over; written atomically, so a killed search
    leaves the last complete checkpoint.

    Args:
        path: the checkpoint file (``run/controller.pt``).
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    @staticmethod
    def restore(model: Any, path: Path) -> bool:
        """Load a checkpoint into ``model``'s policy and optimizer; False when there is none."""
        import torch

        if not Path(path).is_file():
            return False
        state = torch.load(path, map_location=model.device, weights_only=True)
        model.policy.load_state_dict(state["policy"])
        model.policy.optimizer.load_state_dict(state["optimizer"])
        return True

    def save(self) -> None:
        import torch

        from fnas_env.files import atomic_write

        state = {
            "policy": self.model.policy.state_dict(),
            "optimizer": self.model.policy.optimizer.state_dict(),
        }
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))

    def _on_rollout_start(self) -> None:  # the previous rollout's update is done
        if self.model.num_timesteps > 0:
            self.save()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.save()


@dataclass(frozen=True)
class SearchOutcome:
    """What a run of :func:`run_in_folder` did.

    ``counters`` are the whole search's (earlier runs of a resumed search
    included); ``new_activated`` the activated samples this run spent; ``best``
    the best activated record entry (None before the first evaluation).
    """

    run: RunFolder
    settings: RunSettings
    counters: SearchCounters
    new_activated: int
    wall_seconds: float
    best: RecordEntry | None
    resumed: bool


def _best(run: RunFolder) -> RecordEntry | None:
    entries = run.activated()
    return max(entries, key=lambda e: e.reward) if entries else None


def check_search(
    settings: RunSettings, workers: int = 1, runtime_kwargs: dict[str, Any] | None = None
) -> None:
    """Raise ``ValueError`` for a search :func:`run_in_folder` cannot run, saying why.

    An unknown method or env, an option the env does not take, a budget that is not
    a positive int, or several workers for a method that evaluates one architecture
    at a time.
    """
    if settings.method not in METHODS:
        raise ValueError(f"unknown method {settings.method!r}; choose one of {', '.join(METHODS)}")
    budget = settings.budget
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int (activated samples), got {budget!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if workers > 1 and settings.method not in RL_METHODS:
        raise ValueError(
            f"method {settings.method!r} evaluates one architecture at a time; "
            f"--workers > 1 needs one of {', '.join(RL_METHODS)}"
        )
    check_env_kwargs(settings.env_id, {**settings.env_kwargs, **(runtime_kwargs or {})})


def run_in_folder(
    run: RunFolder,
    settings: RunSettings,
    workers: int = 1,
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    runtime_kwargs: dict[str, Any] | None = None,
    progress_bar: bool = True,
    log: Callable[[str], None] = print,
) -> SearchOutcome:
    """Run (or resume) the search ``settings`` describes in ``run`` until its budget is spent.

    Args:
        run: the run folder. If it holds this search, the search resumes: its record,
            target, critic, buffer and pool are reused and only the rest of the
            budget is spent.
        settings: the search. ``settings.budget`` counts activated samples over all
            runs; ``settings.options`` may hold ``pool`` (a folder, or None for no
            pool; default ``run/pool`` for ``FNAS-MNAS-v0``), ``uac_warmup`` and
            ``transfer_critic`` (the methods of :data:`~agents.methods.FNAS_METHODS`).
        workers: architectures evaluated at once (more than 1: Ray workers; methods
            of :data:`RL_METHODS` only).
        ray_address: a Ray cluster to join (default: ``RAY_ADDRESS`` or local).
        gpus_per_worker: GPUs per Ray worker.
        runtime_kwargs: env kwargs that do not change the search (``device``,
            ``data_root``, ``download``); not compared on resume.
        progress_bar: draw a progress bar (default True).
        log: where progress lines go (default ``print``).

    Raises:
        RunMismatch: the folder holds another search's record.
        ValueError: an unknown env, method or env option, a bad budget, or several
            workers for a method that evaluates one architecture at a time.
    """
    check_search(settings, workers, runtime_kwargs)
    resumed = run.has_settings()
    if resumed:
        settings = _with_stored_target(settings, run.settings())
    run.check_same_search(settings)
    env_kwargs = {**settings.env_kwargs, **(runtime_kwargs or {})}
    env_kwargs = _run_local_kwargs(run, settings, env_kwargs)
    if not resumed and settings.env_id in MEASURED_TARGET_ENVS:
        env_kwargs = fix_target(settings.env_id, env_kwargs)
        target = env_kwargs.get("target")
        settings = replace(settings, env_kwargs={**settings.env_kwargs, "target": target})
    run.save_settings(settings)

    start = time.perf_counter()
    if settings.method in RL_METHODS:
        counters, before = _run_rl(
            run, settings, env_kwargs, workers, ray_address, gpus_per_worker, progress_bar, log
        )
    else:
        counters, before = _run_baseline(run, settings, env_kwargs, progress_bar, log)
    return SearchOutcome(
        run=run,
        settings=settings,
        counters=counters,
        new_activated=counters.activated - before,
        wall_seconds=time.perf_counter() - start,
        best=_best(run),
        resumed=resumed,
    )


def _with_stored_target(settings: RunSettings, stored: RunSettings) -> RunSettings:
    """``settings`` asking for the machine-measured target take the number the search fixed."""
    asked = settings.env_kwargs.get("target", "base")
    if (
        settings.env_id in MEASURED_TARGET_ENVS
        and asked == "base"
        and "target" in stored.env_kwargs
    ):
        return replace(
            settings, env_kwargs={**settings.env_kwargs, "target": stored.env_kwargs["target"]}
        )
    return settings


def _run_local_kwargs(
    run: RunFolder, settings: RunSettings, env_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Env kwargs plus what lives in the run folder (latencies used, the pool) and the seed."""
    kwargs = dict(env_kwargs)
    if settings.env_id in MEASURED_TARGET_ENVS:
        kwargs.setdefault("seed", settings.seed)
        kwargs["latency_cache"] = str(run.latency_path)
        pool = settings.options.get("pool", str(run.pool_dir))
        kwargs["pool"] = None if pool is None else str(pool)
    return kwargs


def _remaining(settings: RunSettings, activated: int, log: Callable[[str], None]) -> int:
    remaining = int(settings.budget) - activated
    if activated:
        log(
            f"resuming: {activated} architectures already evaluated, "
            f"{max(0, remaining)} to go (budget {settings.budget})"
        )
    return remaining


def _run_rl(
    run: RunFolder,
    settings: RunSettings,
    env_kwargs: dict[str, Any],
    workers: int,
    ray_address: str | None,
    gpus_per_worker: float,
    progress_bar: bool,
    log: Callable[[str], None],
) -> tuple[SearchCounters, int]:
    from agents.controller import make_controller
    from agents.fnas_ppo import make_fnas_controller
    from agents.search import run_search
    from wrappers.record import VecSearchRecord
    from wrappers.uac import VecUncertaintyGate

    venv = make_search_venv(
        settings.env_id, env_kwargs, workers, ray_address, gpus_per_worker, settings.seed
    )
    record = VecSearchRecord(venv, run.record_path, seed=settings.seed)
    before = record.counters.activated
    remaining = _remaining(settings, before, log)
    if remaining <= 0:
        venv.close()
        return record.counters, before
    options = settings.options
    # a PPO update learns from 8 architectures however many workers sample them
    per_update = max(1, 8 // workers)
    critic = buffer = None
    try:
        if settings.method in FNAS_METHODS:
            from agents.seam import SearchEnvs

            space = SearchEnvs(venv).search_space
            screen = settings.method in SCREEN_METHODS
            critic = open_critic(
                run,
                space.name,
                settings.seed,
                transfer=options.get("transfer_critic"),
                critic_kwargs=SCREEN_CRITIC if screen else None,
            )
            gate: dict[str, Any] = dict(SCREEN_GATE) if screen else {}
            # the gate's own warm-up unless the search sets one
            if "uac_warmup" in options:
                gate["warmup"] = int(options["uac_warmup"])
            env = VecUncertaintyGate(record, critic, **gate)
            buffer = open_buffer(run)
            model = make_fnas_controller(
                env,
                experience_buffer=buffer,
                seed=settings.seed,
                tensorboard_log=str(run.tb_dir),
                architectures_per_update=per_update,
                **CONTROLLERS.get(settings.method, {}),
            )
        else:
            model = make_controller(
                record,
                seed=settings.seed,
                tensorboard_log=str(run.tb_dir),
                architectures_per_update=per_update,
            )
        if ControllerCheckpoint.restore(model, run.controller_path):
            log(f"controller restored from {run.controller_path}")
        callbacks = [
            SearchProgress(lambda: record.counters, remaining, progress_bar),
            ControllerCheckpoint(run.controller_path),
        ]
        run_search(model, budget=remaining, callback=callbacks, tb_log_name=settings.method)
    finally:
        if critic is not None:
            critic.save(run.critic_path)
        if buffer is not None:
            buffer.save(run.aeb_dir)
        venv.close()
    return record.counters, before


def _run_baseline(
    run: RunFolder,
    settings: RunSettings,
    env_kwargs: dict[str, Any],
    progress_bar: bool,
    log: Callable[[str], None],
) -> tuple[SearchCounters, int]:
    from agents.baselines import random_search, regularized_evolution, reinforce

    search = {"evolution": regularized_evolution, "random": random_search, "reinforce": reinforce}
    env = gym.make(settings.env_id, **env_kwargs, record_path=str(run.record_path))
    base = env.unwrapped
    base.record.seed = settings.seed
    before = base.record.counters.activated
    remaining = _remaining(settings, before, log)
    try:
        if remaining > 0:
            env.reset(seed=settings.seed)
            search[settings.method](
                env,
                remaining,
                seed=settings.seed,
                logdir=str(run.tb_dir),
                progress_bar=progress_bar,
            )
    finally:
        env.close()
    return base.record.counters, before


def parse_env_kwarg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as a pair, the value read as JSON when it is JSON (else a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"env options are KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def check_target(value: str | float | None) -> str | float | None:
    """A latency target: ``"base"``, ``"default"``, None/``"none"`` or a positive number."""
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if isinstance(value, str) and value in ("base", "default"):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(
            f"the latency target must be a positive number (in the env's unit, e.g. ms), "
            f"'base' (MobileNetV2's latency, FNAS-MNAS-v0), 'default' (FNAS-ANB-v0) or "
            f"'none', got {value!r}"
        )
    return number


def summary_lines(outcome: SearchOutcome, unit: str | None = None) -> list[str]:
    """What a finished run prints: counts, the best architecture, where everything is."""
    c = outcome.counters
    run = outcome.run
    lines = [
        f"architectures: {c.sampled} sampled, {c.activated} activated ({c.failed} failed), "
        f"{c.trusted} trusted (rewarded by the critic), {c.cached} cached repeats, "
        f"{c.replayed} replayed; this run activated {outcome.new_activated} "
        f"in {outcome.wall_seconds:.0f} s",
    ]
    best = outcome.best
    if best is not None:
        lines.append(f"best architecture: {best.arch}")
        parts = [f"reward {best.reward:.4f}"]
        if best.accuracy is not None:
            parts.append(f"accuracy {best.accuracy:.2f}%")
        if best.latency is not None:
            parts.append(f"latency {best.latency:.3f}{' ' + unit if unit else ''}")
        lines.append("  " + "  ".join(parts))
    target = outcome.settings.env_kwargs.get("target")
    if isinstance(target, int | float) and np.isfinite(target):
        lines.append(f"  target latency T = {target:.3f}{' ' + unit if unit else ''}")
    lines.append(f"search record: {run.record_path}")
    return lines
