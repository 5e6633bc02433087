"""Factories behind the registered ids (``gym.make`` passes its kwargs here)."""

from __future__ import annotations

import inspect
import os

from fnas_env.env import NASEnv
from fnas_env.evaluators.base import Evaluator
from fnas_env.reward import RewardConfig, reward_config

__all__ = ["make_nb201_env", "make_macro_env", "make_anb_env", "make_mnas_env", "env_options"]

PathLike = str | os.PathLike | None


def env_options(env_id: str) -> tuple[str, ...]:
    """The keyword arguments ``gym.make(env_id, ...)`` takes, for an FNAS env id.

    Raises:
        ValueError: ``env_id`` is not an FNAS env (``fnas_env.ENV_SPACES``).
    """
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    from fnas_env import ENV_SPACES

    if env_id not in ENV_SPACES:
        raise ValueError(f"unknown env {env_id!r}; the FNAS envs are {', '.join(ENV_SPACES)}")
    factory = load_env_creator(gym.registry[env_id].entry_point)
    return tuple(inspect.signature(factory).parameters)


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
    return _rewarded_env(evaluator, constraint, target, one_shot, record_path, render_mode, cache)


def make_mnas_env(
    dataset: str | os.PathLike = "digits",
    target: float | str | None = "base",
    constraint: str = "soft",
    epochs: int = 3,
    batch_size: int = 128,
    learning_rate: float = 0.1,
    resolution: int | None = None,
    width: float = 0.5,
    cost_model: str = "lut",
    pool: PathLike | str = "temporary",
    seed: int = 0,
    data_root: PathLike = None,
    download: bool = False,
    classes: list[int] | None = None,
    max_train: int | None = None,
    max_val: int | None = None,
    num_threads: int | None = 1,
    latency_cache: PathLike = None,
    latency_table: PathLike | str = "machine",
    device: str = "auto",
    one_shot: bool = False,
    record_path: PathLike = None,
    render_mode: str | None = None,
    cache: bool = True,
) -> NASEnv:
    """MnasNet search space with real proxy training (``FNAS-MNAS-v0``).

    Each architecture is initialised from the Architecture Knowledge Pool, trained
    for ``epochs`` on ``dataset`` (default: scikit-learn's bundled 8x8 digits,
    offline) and scored with MnasNet's reward against ``target``. The defaults
    (3 epochs of batch 128 at learning rate 0.1, SGD Nesterov with cosine decay, width 0.5,
    8x8 inputs, one thread, BatchNorm statistics recalibrated on 512 training
    images before validation) train one candidate in 33 steps; see
    ``benchmarks/results/mnas_env.md`` for the measured seconds per architecture
    and what each part of an evaluation costs.

    The last step's info has the evaluation's extras; with a pool (the default)
    ``pool_hit_ratio`` and ``pool_exact_ratio`` (0.0 for the first architecture,
    on an empty pool) among them.

    Args:
        dataset: ``"digits"``, ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``,
            ``"cifar100"`` or an ImageFolder path (default ``"digits"``).
        target: the reward's target ``T`` in the cost model's unit. ``"base"``
            (default): the cost of MobileNetV2 (``base_architecture()``) under the
            same proxy config on this machine; a number; or None (accuracy only).
        constraint: ``"soft"`` (default; alpha = beta = -0.07) or ``"hard"``.
        epochs: proxy-training epochs (default 3).
        batch_size: training batch size (default 128).
        learning_rate: peak learning rate of SGD with Nesterov momentum (default 0.1).
        resolution: input side length (default None: the dataset's, 8 for digits).
        width: channel multiplier of the proxy networks (default 0.5).
        cost_model: ``"lut"`` (default: batch-1 CPU latency in ms predicted from a
            per-layer lookup table that is measured once per machine and kept in
            ``latency_table``, so the same architecture gets the same latency, and
            ``T`` the same value, in every search on this machine),
            ``"measured"`` (batch-1 CPU latency in ms, timed live for each
            architecture; varies a few percent or more between runs) or ``"macs"``
            (millions of MACs, deterministic across machines). Latency is measured
            on the CPU whatever ``device`` trains.
        pool: the Architecture Knowledge Pool candidates are initialised from and
            stored into. ``"temporary"`` (default): a new pool in a temporary
            folder for the env's life, deleted when the env is closed or garbage
            collected; a folder path: a persistent pool (shared by the searches and
            tasks that use it; ``"./temporary"`` for a folder of that name); None:
            no pool, every candidate trains from scratch (then the same
            architecture and seed give the same accuracy).
        seed: dataset split, weight initialisation and shuffling (default 0).
        data_root: folder of torchvision datasets (default ``$FNAS_DATA_DIR`` or
            ``~/.cache/fnas/data``).
        download: let torchvision download a missing dataset (default False).
        classes: keep only these class labels (default all), e.g. ``[0, 1, 2, 3, 4]``.
        max_train: cap on training images (default None).
        max_val: cap on validation images (default None).
        num_threads: torch threads for training (default 1: proxy networks are
            too small to gain from more, and parallel envs each get one core).
        latency_cache: JSON file of every cost this search used, the target ``T``
            included (default None: in memory). A later env given the same file
            (e.g. a resumed search) reuses those values exactly, without measuring.
        latency_table: JSON file of the ``"lut"`` cost model's part latencies and
            calibration. ``"machine"`` (default): the per-machine file
            ``$FNAS_CACHE_DIR/latency_lut.json`` (``~/.cache/fnas`` by default); a
            path; or None (in memory: timed again by every env).
        device: where proxy training runs: ``"auto"`` (default: ``"cuda"`` when
            ``torch.cuda.is_available()``, else ``"cpu"``), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``. On CUDA, training uses mixed precision (bfloat16, or
            float16 with loss scaling); the CPU path is float32.
        one_shot: one action is a whole architecture (``MultiDiscrete``).
        record_path: JSON-lines file of the durable search record (default None).
        cache: serve an architecture this search already trained its recorded result,
            at no cost (default True; False trains repeats again).
        render_mode: None or ``"ansi"``.

    Raises:
        ValueError: an unknown ``device`` (or ``"cuda"`` on a machine without
            CUDA), ``cost_model``, ``target`` or ``constraint``.
    """

    from fnas_env.evaluators.proxy import ProxyEvaluator, base_architecture
    from fnas_env.latency import LatencyModel, default_table_path
    from fnas_env.training import TrainConfig, resolve_device

    resolved = resolve_device(device)  # fails fast, before the data is loaded
    if isinstance(latency_table, str) and latency_table == "machine":
        latency_table = default_table_path()
    train = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        num_threads=num_threads,
        bn_recalibration=512,  # as good a ranking as 2048 images, a third of the time
    )
    data_kwargs = dict(root=data_root, download=download, classes=classes)
    data_kwargs.update(max_train=max_train, max_val=max_val, resolution=resolution)
    latency = LatencyModel(cost_model, cache_path=latency_cache, table_path=latency_table)
    evaluator = ProxyEvaluator(
        "mnas",
        dataset,
        train_config=train,
        latency_model=latency,
        pool=pool,
        seed=seed,
        data_kwargs=data_kwargs,
        device=resolved,
        width=width,
    )
    try:
        if target == "base":
            target = evaluator.cost_of(base_architecture())
        elif isinstance(target, str):
            raise ValueError(f"target must be a number, 'base' or None, got {target!r}")
        env = _rewarded_env(
            evaluator, constraint, target, one_shot, record_path, render_mode, cache
        )
    except BaseException:
        evaluator.close()  # a temporary pool does not outlive a failed construction
        raise

    return env  # env.close() closes the evaluator: a temporary pool is deleted


def _rewarded_env(
    evaluator: Evaluator,
    constraint: str,
    target: float | None,
    one_shot: bool,
    record_path: PathLike,
    render_mode: str | None,
    cache: bool,
) -> NASEnv:
    """A NASEnv scoring ``evaluator``'s results with MnasNet's reward against ``target``."""
    return NASEnv(
        evaluator,
        reward_config(constraint, target, evaluator.objective),
        one_shot=one_shot,
        record_path=record_path,
        render_mode=render_mode,
        cache=cache,
    )
