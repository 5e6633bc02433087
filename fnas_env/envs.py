"""Factories behind the registered ids (``gym.make`` passes its kwargs here)."""

from __future__ import annotations

import os

from fnas_env.env import NASEnv
from fnas_env.reward import RewardConfig, reward_config

__all__ = ["make_nb201_env", "make_macro_env", "make_anb_env", "make_mnas_env"]

PathLike = str | os.PathLike | None


def make_nb201_env(
    dataset: str = "cifar10",
    benchmark_dir: PathLike = None,
    one_shot: bool = False,
    record_path: PathLike = None,
    render_mode: str | None = None,
    cache: bool = True,
) -> NASEnv:
    """NAS-Bench-201 (``dataset`` in cifar10, cifar100, ImageNet16-120); accuracy reward.

    Every factory takes ``cache`` (default True): a repeated architecture is served its
    recorded result at no cost (see :class:`~fnas_env.env.NASEnv`).
    """
    from fnas_env.evaluators.tabular import NB201Evaluator

    return NASEnv(
        NB201Evaluator(dataset, benchmark_dir),
        RewardConfig(target=None),
        one_shot=one_shot,
        record_path=record_path,
        render_mode=render_mode,
        cache=cache,
    )


def make_macro_env(
    benchmark_dir: PathLike = None,
    one_shot: bool = False,
    record_path: PathLike = None,
    render_mode: str | None = None,
    cache: bool = True,
) -> NASEnv:
    """NAS-Bench-Macro (CIFAR-10); accuracy reward."""
    from fnas_env.evaluators.tabular import MacroEvaluator

    return NASEnv(
        MacroEvaluator(benchmark_dir),
        RewardConfig(target=None),
        one_shot=one_shot,
        record_path=record_path,
        render_mode=render_mode,
        cache=cache,
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
    cache: bool = True,
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
        cache=cache,
    )


def make_mnas_env(
    dataset: str | os.PathLike = "digits",
    target: float | str | None = "base",
    constraint: str = "soft",
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 0.1,
    resolution: int | None = None,
    width: float = 0.5,
    cost_model: str = "measured",
    pool: PathLike = None,
    seed: int = 0,
    data_root: PathLike = None,
    download: bool = False,
    classes: list[int] | None = None,
    max_train: int | None = None,
    max_val: int | None = None,
    num_threads: int | None = 1,
    latency_cache: PathLike = None,
    one_shot: bool = False,
    record_path: PathLike = None,
    render_mode: str | None = None,
    cache: bool = True,
) -> NASEnv:
    """MnasNet search space with real proxy training (``FNAS-MNAS-v0``).

    Each architecture is trained for ``epochs`` on ``dataset`` (default:
    scikit-learn's bundled 8x8 digits, offline) and scored with MnasNet's reward
    against ``target``. The defaults (3 epochs of batch 128 at lr 0.1, SGD
    Nesterov with cosine decay, width 0.5, 8x8 inputs, one thread) train one
    candidate in about 33 steps; see ``benchmarks/results/mnas_env.md`` for the
    measured seconds per architecture.

    Args:
        dataset: ``"digits"``, ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``,
            ``"cifar100"`` or an ImageFolder path (default ``"digits"``).
        target: the reward's target ``T`` in the cost model's unit. ``"base"``
            (default): the cost of MobileNetV2 (``base_architecture()``) under the
            same proxy config on this machine; a number; or None (accuracy only).
        constraint: ``"soft"`` (default; alpha = beta = -0.07) or ``"hard"``.
        epochs: proxy-training epochs (default 3).
        batch_size: training batch size (default 128).
        lr: peak learning rate of SGD with Nesterov momentum (default 0.1).
        resolution: input side length (default None: the dataset's, 8 for digits).
        width: channel multiplier of the proxy networks (default 0.5).
        cost_model: ``"measured"`` (batch-1 CPU latency, ms; default),
            ``"lut"`` (per-layer lookup table, ms) or ``"macs"`` (millions of MACs,
            deterministic across machines).
        pool: folder of an Architecture Knowledge Pool to initialise candidates
            from and store them into (default None: train from scratch).
        seed: dataset split, weight initialisation and shuffling (default 0).
        data_root: folder of torchvision datasets (default ``$FNAS_DATA_DIR`` or
            ``~/.cache/fnas/data``).
        download: let torchvision download a missing dataset (default False).
        classes: keep only these class labels (default all), e.g. ``[0, 1, 2, 3, 4]``.
        max_train: cap on training images (default None).
        max_val: cap on validation images (default None).
        num_threads: torch threads for training (default 1: proxy networks are
            too small to gain from more, and parallel envs each get one core).
        latency_cache: JSON file that keeps measured latencies across runs
            (default None: in memory).
        one_shot: one action is a whole architecture (``MultiDiscrete``).
        record_path: JSON-lines file of the durable search record (default None).
        cache: serve an architecture this search already trained its recorded result,
            at no cost (default True; False trains repeats again).
        render_mode: None or ``"ansi"``.
    """
    from fnas_env.evaluators.proxy import ProxyEvaluator, base_architecture
    from fnas_env.latency import LatencyModel
    from fnas_env.training import TrainConfig

    train = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        num_threads=num_threads,
    )
    data_kwargs = dict(root=data_root, download=download, classes=classes)
    data_kwargs.update(max_train=max_train, max_val=max_val, resolution=resolution)
    evaluator = ProxyEvaluator(
        "mnas",
        dataset,
        train_config=train,
        latency_model=LatencyModel(cost_model, cache_path=latency_cache),
        pool=pool,
        seed=seed,
        data_kwargs=data_kwargs,
        width=width,
    )
    if target == "base":
        target = evaluator.cost_of(base_architecture())
    elif isinstance(target, str):
        raise ValueError(f"target must be a number, 'base' or None, got {target!r}")
    return NASEnv(
        evaluator,
        reward_config(constraint, target, evaluator.objective),
        one_shot=one_shot,
        record_path=record_path,
        render_mode=render_mode,
        cache=cache,
    )
