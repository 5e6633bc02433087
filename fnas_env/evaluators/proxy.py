"""Real proxy training: build, initialise from the knowledge pool, train, measure, store.

The evaluator behind ``FNAS-MNAS-v0``. Each architecture is built as a small
network (:func:`fnas_env.models.build_model`), optionally initialised block by
block from the Architecture Knowledge Pool (:class:`~fnas_env.knowledge_pool.
KnowledgePool`), trained for a few epochs on a proxy dataset
(:class:`~fnas_env.training.ProxyTrainer`), scored on the held-out split and
timed (:class:`~fnas_env.latency.LatencyModel`); its trained blocks then go back
into the pool for later architectures, searches and tasks.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
import warnings
import weakref
from typing import Any

import torch

from fnas_env.arch import Architecture
from fnas_env.evaluators.base import Evaluation, Evaluator
from fnas_env.knowledge_pool import KnowledgePool
from fnas_env.latency import LatencyModel
from fnas_env.models import BLOCK_SPACES, ProxyModelConfig, build_model, count_macs_params
from fnas_env.spaces import get_space
from fnas_env.training import ImageDataset, ProxyTrainer, TrainConfig, load_dataset

__all__ = [
    "ProxyEvaluator",
    "base_architecture",
    "proxy_model_config",
    "TEMPORARY_POOL",
]

#: ``pool`` value for a knowledge pool in a temporary folder, deleted with the evaluator
TEMPORARY_POOL = "temporary"


def base_architecture(space: str = "mnas") -> Architecture:
    """MobileNetV2 in the ``mnas`` space: MBConv6 k3 (first block: depthwise conv), no SE,
    identity residual, base filters and layers. The reference for the default target.
    """
    if space != "mnas":
        raise ValueError(f"base_architecture is defined for the 'mnas' space, got {space!r}")
    first = "dwconv_k3_se0_id_x1_l+0"
    rest = "mb6_k3_se0_id_x1_l+0"
    return get_space("mnas").from_string("|".join([first] + [rest] * 6))


def proxy_model_config(
    data: ImageDataset, width: float = 0.5, head_channels: int | None = 256, **changes: Any
) -> ProxyModelConfig:
    """The proxy network settings that fit ``data`` (channels, classes, resolution).

    ``max_stride`` defaults to half the resolution (capped at 32), so the last
    feature map is 2x2: an 8x8 digit is downsampled 4x, a 32x32 image 16x.
    ``changes`` override any :class:`ProxyModelConfig` field.
    """
    fields = dict(
        width_mult=width,
        resolution=data.resolution,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        max_stride=min(32, max(1, data.resolution // 2)),
        head_channels=head_channels,
    )
    fields.update(changes)
    return ProxyModelConfig(**fields)  # type: ignore[arg-type]


class ProxyEvaluator(Evaluator):
    """Scores architectures by training them on a proxy task and measuring their latency.

    Args:
        space: search space, one of ``BLOCK_SPACES`` (default ``"mnas"``).
        dataset: an :class:`~fnas_env.training.ImageDataset`, or a name/path for
            :func:`~fnas_env.training.load_dataset` (default ``"digits"``).
        model_config: network settings (default :func:`proxy_model_config` of the
            dataset with ``width``). Its ``resolution``, ``in_channels`` and ``num_classes`` are
            always taken from the dataset (after ``train_config.resolution``).
        train_config: proxy-training settings (default ``TrainConfig()``). Its
            ``init_learning_rate_scale`` multiplies the peak lr of candidates the pool
            initialised (default 1.0: the from-scratch lr).
        latency_model: cost model for the reward (default
            ``LatencyModel("measured")``: batch-1 CPU latency in ms, cached per
            architecture, so a repeated architecture gets the same value). Latency
            is measured on the CPU whatever ``device`` trains.
        pool: Architecture Knowledge Pool: None (default, train from scratch), a
            folder path, a :class:`KnowledgePool`, or ``"temporary"``
            (:data:`TEMPORARY_POOL`: a pool in a new temporary folder, deleted by
            :meth:`close` or when the evaluator is garbage collected; to use a
            folder named ``temporary``, pass ``"./temporary"``). Candidates are
            initialised from it and stored back after training (only converged
            runs with the full iteration count, the pool's fairness rule).
        seed: seeds the dataset split, weight initialisation and shuffling
            (default 0). The same architecture and seed give the same result when
            no pool is used.
        data_kwargs: extra :func:`load_dataset` arguments when ``dataset`` is a
            name (``root``, ``download``, ``classes``, ``max_train``, ...).
        cache: return the stored result for an architecture evaluated before
            (default True), unchanged: a search does not pay twice, and the reward
            and info of a repeated architecture stay the same (``cost`` is the
            seconds that result stands for, as a table's recorded training time
            is). ``cache_hits`` counts these.
        device: where to train: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or
            ``"auto"`` (CUDA when available); see
            :func:`~fnas_env.training.resolve_device`. On CUDA the trainer uses
            mixed precision unless ``train_config.amp`` is False.
        width: channel multiplier when ``model_config`` is None (default 0.5).

    The :class:`Evaluation` holds accuracy (validation top-1, %), latency (ms, or
    MMACs for the ``"macs"`` cost model), MACs and params of the proxy network,
    ``cost`` (wall seconds of building, training, measuring and storing),
    ``failed`` (training diverged) and ``extras``: ``diverged``, ``iterations``,
    ``train_seconds``, ``final_loss``, and with a pool ``pool_hit_ratio``,
    ``pool_exact_ratio`` (0.0 on an empty pool), ``pool_lookup_ms``, ``pool_stored``.
    """

    objective = "latency"

    def __init__(
        self,
        space: str = "mnas",
        dataset: str | os.PathLike | ImageDataset = "digits",
        model_config: ProxyModelConfig | None = None,
        train_config: TrainConfig | None = None,
        latency_model: LatencyModel | None = None,
        pool: str | os.PathLike | KnowledgePool | None = None,
        seed: int = 0,
        data_kwargs: dict[str, Any] | None = None,
        cache: bool = True,
        device: str | torch.device = "cpu",
        width: float = 0.5,
    ) -> None:
        if space not in BLOCK_SPACES:
            raise ValueError(
                f"ProxyEvaluator trains networks of the spaces {BLOCK_SPACES}, got {space!r}"
            )
        self.space_name = space
        self.seed = int(seed)
        self.train_config = dataclasses.replace(train_config or TrainConfig(), seed=self.seed)
        if isinstance(dataset, ImageDataset):
            if data_kwargs:
                raise ValueError("data_kwargs apply only when dataset is a name or path")
            self.data = dataset
        else:
            kwargs = dict(data_kwargs or {})
            kwargs.setdefault("seed", self.seed)
            self.data = load_dataset(dataset, **kwargs)
        resolution = self.train_config.resolution or self.data.resolution
        base = model_config or proxy_model_config(self.data, width=width)
        self.model_config = dataclasses.replace(
            base,
            resolution=resolution,
            in_channels=self.data.in_channels,
            num_classes=self.data.num_classes,
        )
        self.latency_model = latency_model or LatencyModel("measured")
        self.trainer = ProxyTrainer(self.train_config, device=device)
        self._pool_cleanup: weakref.finalize | None = None
        if pool is None or isinstance(pool, KnowledgePool):
            self.pool = pool
        elif isinstance(pool, str) and pool == TEMPORARY_POOL:
            folder = tempfile.mkdtemp(prefix="fnas-akp-")
            self._pool_cleanup = weakref.finalize(self, _remove_folder, folder)
            self.pool = KnowledgePool(folder, durable=False)
        elif isinstance(pool, str | os.PathLike):
            self.pool = KnowledgePool(pool)
        else:
            raise TypeError(
                "pool must be None, a folder path, a KnowledgePool or "
                f"{TEMPORARY_POOL!r}, got {type(pool).__name__}"
            )
        self.cache = bool(cache)
        self._results: dict[Architecture, Evaluation] = {}
        #: evaluations answered from the cache
        self.cache_hits = 0
        self._warned_refused = False

    @property
    def device(self) -> torch.device:
        """The device proxy training runs on."""
        return self.trainer.device

    def close(self) -> None:
        """Delete a temporary knowledge pool (``pool="temporary"``); other pools stay.

        The evaluator can still train afterwards, without the pool.
        """
        if self._pool_cleanup is not None and self._pool_cleanup.alive:
            self._pool_cleanup()
            self.pool = None

    @property
    def unit(self) -> str:
        """Unit of ``Evaluation.latency``: ``"ms"`` or ``"MMACs"``."""
        return self.latency_model.unit

    def cost_of(self, arch: Architecture) -> float:
        """Latency (or MACs) of ``arch`` under the proxy config, without training it."""
        self.space.validate(arch)
        return self.latency_model.latency(arch, self.model_config)

    def _evaluate(self, arch: Architecture) -> Evaluation:
        if self.cache and arch in self._results:
            self.cache_hits += 1
            return self._results[arch]
        start = time.perf_counter()
        torch.manual_seed(self.seed)
        model = build_model(arch, self.model_config)
        pool = self.pool
        init_fn = (lambda m: pool.initialise(m, arch)) if pool is not None else None
        result = self.trainer.train(model, self.data, init_fn=init_fn)
        extras: dict[str, Any] = {
            "diverged": result.diverged,
            "iterations": result.iterations,
            "train_seconds": result.train_seconds,
            "final_loss": result.final_loss,
        }
        if pool is not None:
            stats = result.init
            extras.update(
                pool_hit_ratio=float(getattr(stats, "hit_ratio", 0.0)),
                pool_exact_ratio=float(getattr(stats, "exact_ratio", 0.0)),
                pool_lookup_ms=float(getattr(stats, "lookup_ms", 0.0)),
            )
            extras["pool_stored"] = self._store(model, arch, result)
        # the trained network names the parts for the cost model: no second build
        cost = self.latency_model.latency(arch, self.model_config, model=model)
        if self.latency_model.cost_model == "macs":
            macs = cost * 1e6
        else:
            macs = count_macs_params(model, self.model_config).macs
        evaluation = Evaluation(
            accuracy=result.accuracy,
            latency=cost,
            macs=float(macs),
            params=float(sum(p.numel() for p in model.parameters())),
            cost=time.perf_counter() - start,
            failed=result.diverged,
            extras=extras,
        )
        if self.cache:
            self._results[arch] = evaluation
        return evaluation

    def _store(self, model: torch.nn.Module, arch: Architecture, result) -> bool:
        """Store converged, full-length runs (equal iterations: the pool's fairness rule)."""
        if result.diverged:
            return False
        stored = self.pool.store(model, arch, iterations=result.iterations, task=self.data.name)
        if not stored and not self._warned_refused:
            self._warned_refused = True
            warnings.warn(
                f"the knowledge pool at {self.pool.path} holds checkpoints trained for "
                f"{self.pool.iterations} iterations, this proxy trains for "
                f"{result.iterations}: its blocks initialise candidates but new ones are "
                "not stored (use another pool path to keep both)",
                RuntimeWarning,
                stacklevel=3,
            )
        return stored

    def __repr__(self) -> str:
        return (
            f"ProxyEvaluator(space={self.space_name!r}, data={self.data!r}, "
            f"cost_model={self.latency_model.cost_model!r}, device={str(self.device)!r}, "
            f"pool={str(self.pool.path) if self.pool is not None else None!r})"
        )


def _remove_folder(folder: str) -> None:
    """Delete a temporary pool folder (a finalizer: never raises)."""
    shutil.rmtree(folder, ignore_errors=True)
