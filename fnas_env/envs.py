"""Factories behind the registered ids (``gym.make`` passes its kwargs here)."""

from __future__ import annotations

import os

from fnas_env.env import NASEnv
from fnas_env.reward import RewardConfig, reward_config

__all__ = ["make_nb201_env", "make_macro_env", "make_anb_env"]

PathLike = str | os.PathLike | None


def make_nb201_env(
    dataset: str = "cifar10",
    benchmark_dir: PathLike = None,
    one_shot: bool = False,
    record_path: PathLike = None,
    render_mode: str | None = None,
) -> NASEnv:
    """NAS-Bench-201 (``dataset`` in cifar10, cifar100, ImageNet16-120); accuracy reward."""
    from fnas_env.evaluators.tabular import NB201Evaluator

    return NASEnv(
        NB201Evaluator(dataset, benchmark_dir),
        RewardConfig(target=None),
        one_shot=one_shot,
        record_path=record_path,
        render_mode=render_mode,
    )


def make_macro_env(
    benchmark_dir: PathLike = None,
    one_shot: bool = False,
    record_path: PathLike = None,
    render_mode: str | None = None,
) -> NASEnv:
    """NAS-Bench-Macro (CIFAR-10); accuracy reward."""
    from fnas_env.evaluators.tabular import MacroEvaluator

    return NASEnv(
        MacroEvaluator(benchmark_dir),
        RewardConfig(target=None),
        one_shot=one_shot,
        record_path=record_path,
        render_mode=render_mode,
    )


def make_anb_env(
    device: str = "zcu102",
    target: float | str | None = "default",
    constraint: str = "soft",
    benchmark_dir: PathLike = None,
    surrogate_seed: int = 0,
    one_shot: bool = False,
    record_path: PathLike = None,
    render_mode: str | None = None,
) -> NASEnv:
    """Accel-NASBench surrogate on ``device``; MnasNet reward against ``target``.

    ``target="default"`` uses the evaluator's default target for the device (the
    median over upstream's measured architectures); ``None`` gives accuracy only.
    Latency (ms) on devices that report it (zcu102, vck190), else throughput.
    """
    from fnas_env.evaluators.anb import AnbSurrogateEvaluator

    evaluator = AnbSurrogateEvaluator(
        device=device, benchmark_dir=benchmark_dir, seed=surrogate_seed
    )
    if target == "default":
        target = evaluator.default_target
    return NASEnv(
        evaluator,
        reward_config(constraint, target, evaluator.objective),
        one_shot=one_shot,
        record_path=record_path,
        render_mode=render_mode,
    )
