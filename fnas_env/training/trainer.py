"""Proxy training: a short, deterministic, tight training loop for one candidate.

MnasNet trains each sampled architecture for a few epochs on a proxy task and
uses its validation accuracy as the reward's accuracy term. This loop is the
plain PyTorch one (shuffle, forward, cross-entropy, backward, step) with the
data already in memory, so its throughput stays close to a minimal hand-written
loop: no per-step host syncs (the divergence check reads the loss every
``check_every`` steps), no copies beyond the batch gather.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import pickle
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fnas_env.files import atomic_write
from fnas_env.threads import torch_threads
from fnas_env.training.data import ImageDataset

__all__ = [
    "TrainConfig",
    "TrainResult",
    "EpochStats",
    "ProxyTrainer",
    "DEVICES",
    "resolve_device",
    "read_checkpoint",
    "CHECKPOINT_FORMAT",
]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "constant")
AMP_DTYPES = ("bfloat16", "float16")
#: the device strings :func:`resolve_device` accepts (N: a CUDA device index)
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
#: ``format`` field of the checkpoints :meth:`ProxyTrainer.train` writes
CHECKPOINT_FORMAT = "fnas-trainer-checkpoint"
_CHECKPOINT_VERSION = 1


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device a proxy training runs on.

    Args:
        device: ``"auto"`` (``"cuda"`` when ``torch.cuda.is_available()``, else
            ``"cpu"``), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (``N`` a CUDA device
            index), or a ``torch.device`` of those types.

    Returns:
        The ``torch.device``.

    Raises:
        ValueError: ``device`` is none of the above, names CUDA while torch sees no
            CUDA device, or names a CUDA index this machine does not have.
    """
    if isinstance(device, torch.device):
        text = str(device)
    elif isinstance(device, str):
        text = device.strip().lower()
    else:
        raise ValueError(
            f"device must be one of {', '.join(map(repr, DEVICES))} (N: a CUDA device index) "
            f"or a torch.device, got {device!r}"
        )
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ValueError(
            f"device must be one of {', '.join(map(repr, DEVICES))} (N: a CUDA device index), "
            f"got {device!r}"
        )
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} needs CUDA, but torch.cuda.is_available() is False here "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
            "use device='cpu', or 'auto' to take a GPU only when there is one"
        )
    if match.group(1) is None:
        return torch.device("cuda")
    index, count = int(match.group(1)), torch.cuda.device_count()
    if index >= count:
        raise ValueError(
            f"device={device!r}: this machine has {count} CUDA device(s), indices 0-{count - 1}"
        )
    return torch.device("cuda", index)


@dataclass(frozen=True)
class TrainConfig:
    """Proxy-training settings.

    Attributes:
        epochs: passes over the training split (default 5, MnasNet's proxy length).
        batch_size: images per step (default 64).
        learning_rate: peak learning rate (default 0.05, for SGD; use about 1e-3
            with Adam).
        optimizer: ``"sgd"`` (Nesterov momentum, the MobileNet/MnasNet recipe;
            default) or ``"adam"``.
        momentum: SGD momentum (default 0.9).
        weight_decay: L2 penalty (default 4e-5, MobileNetV2's).
        schedule: ``"cosine"`` (decay to 0 over the run, per step; default) or
            ``"constant"``.
        label_smoothing: cross-entropy label smoothing (default 0.0).
        resolution: resize inputs to this side length once before training
            (default None: the dataset's resolution).
        seed: seeds shuffling and any randomness in the model's forward
            (default 0). Weight initialisation is seeded by whoever builds the model.
        max_iterations: stop after this many optimiser steps (default None: all
            epochs). Gives every candidate equal iterations (the knowledge pool's
            fairness condition).
        eval_batch_size: images per validation forward pass (default 512).
        bn_recalibration: training images passed forward (no gradients) to
            recompute BatchNorm running statistics before validation (default
            2048, i.e. all of digits' training split; 0 disables). A proxy
            training of a few dozen steps leaves the running averages far from
            the final weights' statistics, and validation accuracy then says
            little about the architecture; recalibration fixes that for about
            one third of a training step per batch.
        check_every: steps between divergence checks (default 10); the only host
            reads of the loss during training.
        deterministic: run under ``torch.use_deterministic_algorithms`` (restored
            afterwards). Default None: only on non-CPU devices; the CPU kernels a
            proxy model uses are deterministic for a fixed thread count, and the
            switch's first call imports torch's compiler stack (seconds).
        num_threads: torch intra-op threads while training (default None: leave
            torch's setting).
        channels_last: train in the NHWC memory format (default True). On CPU,
            oneDNN's depthwise-convolution backward is about 2x faster in it for
            MnasNet-like proxies (measured on this project's 8x8 digits proxy).
        amp: mixed precision (``torch.autocast``) for training, BatchNorm
            recalibration and validation. Default None: on for CUDA devices, off
            elsewhere (the CPU path runs in float32, unchanged). True on a
            non-CUDA device raises ``ValueError`` when the trainer is made.
        amp_dtype: ``"bfloat16"`` or ``"float16"`` (with a ``GradScaler``). Default
            None: bfloat16 where the GPU supports it, else float16.
        init_learning_rate_scale: multiplies the peak ``learning_rate`` of a run whose ``init_fn``
            initialised the model (e.g. from the knowledge pool), so that inherited
            trained weights are fine-tuned rather than washed out by the
            from-scratch learning rate (default 1.0: the same rate; 0 < scale). A
            run counts as initialised when ``init_fn`` was given, unless it returned
            statistics saying nothing was loaded (``hits == 0`` and neither
            ``stem`` nor ``head``, as :class:`~fnas_env.knowledge_pool.InitStats`
            reports for an empty pool). See ``benchmarks/results/proxy_quality.md``
            for what it does to rank quality.
    """

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 4e-5
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    resolution: int | None = None
    seed: int = 0
    max_iterations: int | None = None
    eval_batch_size: int = 512
    bn_recalibration: int = 2048
    check_every: int = 10
    deterministic: bool | None = None
    num_threads: int | None = None
    channels_last: bool = True
    amp: bool | None = None
    amp_dtype: str | None = None
    init_learning_rate_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.amp_dtype is not None and self.amp_dtype not in AMP_DTYPES:
            raise ValueError(
                f"amp_dtype must be None or one of {AMP_DTYPES}, got {self.amp_dtype!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "check_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(
                f"learning_rate must be a positive finite number, got {self.learning_rate}"
            )
        if not (self.init_learning_rate_scale > 0 and math.isfinite(self.init_learning_rate_scale)):
            raise ValueError(
                "init_learning_rate_scale must be a positive finite number, "
                f"got {self.init_learning_rate_scale}"
            )
        if self.max_iterations is not None and self.max_iterations < 1:
            raise ValueError(
                f"max_iterations must be a positive int or None, got {self.max_iterations}"
            )
        if self.bn_recalibration < 0:
            raise ValueError(f"bn_recalibration must be >= 0, got {self.bn_recalibration}")
        if self.resolution is not None and self.resolution < 1:
            raise ValueError(f"resolution must be a positive int or None, got {self.resolution}")


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one proxy training.

    ``accuracy`` is validation top-1 in percent (0 if training diverged);
    ``cost`` the wall seconds of initialisation, training and validation;
    ``final_loss`` the mean training loss over the last epoch (NaN if diverged);
    ``init`` whatever ``init_fn`` returned (e.g. the knowledge pool's statistics).
    With a checkpoint or an ``on_epoch`` callback, ``history`` has one
    :class:`EpochStats` per completed epoch (resumed ones included) and
    ``resumed_epoch`` the epochs a checkpoint had already completed (0: none).
    ``train_seconds`` and ``images_per_second`` count this call's training only.
    """

    accuracy: float
    cost: float
    iterations: int
    diverged: bool
    final_loss: float
    epochs: float
    train_seconds: float
    eval_seconds: float
    init_seconds: float
    images_per_second: float
    init: Any = None
    history: tuple[EpochStats, ...] = ()
    resumed_epoch: int = 0


@dataclass(frozen=True)
class EpochStats:
    """One completed epoch of a :meth:`ProxyTrainer.train` call with a checkpoint or callback.

    Attributes:
        epoch: epochs completed (1 for the first).
        epochs: epochs in the whole training (the last may be partial under
            ``max_iterations``).
        step: optimiser steps completed.
        total_steps: optimiser steps of the whole training.
        loss: mean training loss over the epoch.
        accuracy: validation top-1 in percent with the running BatchNorm statistics
            (no recalibration), or None when ``epoch_eval`` is off.
        seconds: wall seconds of the epoch (training and its validation).
    """

    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float
    accuracy: float | None = None
    seconds: float = 0.0


@dataclass
class _FitState:
    """What :meth:`ProxyTrainer._fit` saves at an epoch boundary and restores on resume."""

    epoch: int = 0
    step: int = 0
    seen: int = 0
    final_loss: float = math.nan
    history: list[EpochStats] = field(default_factory=list)


class ProxyTrainer:
    """Trains a model on an :class:`ImageDataset` and reports validation accuracy.

    Args:
        config: a :class:`TrainConfig` (default ``TrainConfig()``).
        device: where to train: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``,
            ``"auto"`` or a ``torch.device`` (see :func:`resolve_device`). On CUDA,
            training, recalibration and validation run under mixed precision
            unless ``config.amp`` is False.

    Training that produces a non-finite loss stops at the next check and returns
    ``diverged=True`` with accuracy 0; it never raises for that.

    Example:
        >>> trainer = ProxyTrainer(TrainConfig(epochs=1))
        >>> result = trainer.train(model, load_dataset("digits"))
    """

    def __init__(self, config: TrainConfig | None = None, device: str | torch.device = "cpu"):
        self.config = config or TrainConfig()
        self.device = resolve_device(device)
        is_cuda = self.device.type == "cuda"
        if self.config.amp and not is_cuda:
            raise ValueError(
                f"TrainConfig.amp=True needs a CUDA device, got device {str(self.device)!r} "
                "(mixed precision runs on CUDA only; leave amp=None to get it there)"
            )
        #: whether training runs under ``torch.autocast`` (CUDA only)
        self.amp = bool(self.config.amp if self.config.amp is not None else is_cuda)
        dtype = self.config.amp_dtype
        if dtype is None:
            dtype = "bfloat16" if self.amp and torch.cuda.is_bf16_supported() else "float16"
        #: the autocast dtype when :attr:`amp` is on
        self.amp_dtype = getattr(torch, dtype)
        self._autocast: Callable[[], Any] = (
            functools.partial(torch.autocast, device_type="cuda", dtype=self.amp_dtype)
            if self.amp
            else contextlib.nullcontext
        )
        self._tensor_cache: tuple[tuple, tuple[torch.Tensor, ...]] | None = None

    def train(
        self,
        model: nn.Module,
        data: ImageDataset,
        init_fn: Callable[[nn.Module], Any] | None = None,
        *,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_meta: dict[str, Any] | None = None,
        on_epoch: Callable[[EpochStats], None] | None = None,
        on_step: Callable[[int, int], None] | None = None,
        epoch_eval: bool = False,
    ) -> TrainResult:
        """Train ``model`` in place on ``data`` and evaluate it on the validation split.

        ``init_fn(model)`` runs first (e.g. initialise blocks from a knowledge
        pool); its return value is passed through as ``TrainResult.init``. A model
        it initialised trains with peak learning rate ``learning_rate * init_learning_rate_scale``.

        Without the keyword arguments below the loop is the plain proxy loop (one
        host read of the loss per epoch, nothing written).

        Args:
            model: the network (moved to the trainer's device, trained in place).
            data: training and validation tensors.
            init_fn: optional initialiser, run before training.
            checkpoint: file that makes the training resumable. After every
                completed epoch the model, optimiser, scheduler, loss scaler,
                shuffling generator, torch RNG and step counters are written to it
                atomically (a temporary file, fsynced, then ``os.replace``), so a
                process killed mid-epoch loses at most that epoch. If the file
                exists, training continues from it and ends with the same weights
                and accuracy as an uninterrupted run (same device and thread
                count). A checkpoint of another training (other data size or
                settings) raises ``ValueError``.
            checkpoint_meta: JSON-like values stored in the checkpoint under
                ``"meta"`` (e.g. the architecture; read back with
                :func:`read_checkpoint`).
            on_epoch: called with an :class:`EpochStats` after every completed
                epoch (after the checkpoint is written).
            on_step: called with ``(step, total_steps)`` after every optimiser step
                (no host synchronisation; meant for progress bars).
            epoch_eval: measure validation accuracy after every epoch (running
                BatchNorm statistics) for ``EpochStats.accuracy``; it does not
                change the training.

        Raises:
            ValueError: ``checkpoint`` holds another training or is not a
                checkpoint file.
        """
        cfg = self.config
        start = time.perf_counter()
        prev_det = torch.are_deterministic_algorithms_enabled()
        prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        deterministic = (
            cfg.deterministic if cfg.deterministic is not None else self.device.type != "cpu"
        )
        with torch_threads(cfg.num_threads):
            try:
                if deterministic:
                    torch.use_deterministic_algorithms(True, warn_only=True)
                model = model.to(self.device)
                if cfg.channels_last:
                    model = model.to(memory_format=torch.channels_last)
                init = init_fn(model) if init_fn is not None else None
                init_seconds = time.perf_counter() - start
                x_train, y_train, x_val, y_val = self._tensors(data)

                t0 = time.perf_counter()
                lr = cfg.learning_rate
                if init_fn is not None and _initialised(init):
                    lr = cfg.learning_rate * cfg.init_learning_rate_scale
                hooks = None
                if checkpoint is not None or on_epoch is not None or on_step is not None:
                    hooks = _EpochHooks(
                        path=Path(checkpoint) if checkpoint is not None else None,
                        meta=dict(checkpoint_meta or {}),
                        on_epoch=on_epoch,
                        on_step=on_step,
                        validate=(lambda: self._accuracy(model, x_val, y_val))
                        if epoch_eval
                        else None,
                    )
                iterations, final_loss, diverged, seen = self._fit(
                    model, x_train, y_train, lr, hooks
                )
                train_seconds = time.perf_counter() - t0
                t1 = time.perf_counter()
                if not diverged and cfg.bn_recalibration:
                    self._recalibrate_bn(model, x_train)
                accuracy = 0.0 if diverged else self._accuracy(model, x_val, y_val)
                if not math.isfinite(accuracy):
                    accuracy, diverged = 0.0, True
                eval_seconds = time.perf_counter() - t1
            finally:
                if deterministic:
                    torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        return TrainResult(
            accuracy=accuracy,
            cost=time.perf_counter() - start,
            iterations=iterations,
            diverged=diverged,
            final_loss=final_loss,
            epochs=seen / max(1, x_train.shape[0]),
            train_seconds=train_seconds,
            eval_seconds=eval_seconds,
            init_seconds=init_seconds,
            images_per_second=(
                (seen - (hooks.resumed_seen if hooks else 0)) / train_seconds
                if train_seconds > 0
                else 0.0
            ),
            init=init,
            history=tuple(hooks.history) if hooks else (),
            resumed_epoch=hooks.resumed_epoch if hooks else 0,
        )

    def evaluate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        """Top-1 accuracy (%) of ``model`` on images ``x`` and labels ``y`` (NaN if non-finite).

        Runs on the trainer's device in eval mode (mixed precision where training
        uses it), in batches of ``eval_batch_size``; ``x`` is normalised like the
        training data (e.g. :func:`~fnas_env.training.load_test_split`).
        """
        fmt = torch.channels_last if self.config.channels_last else torch.contiguous_format
        model = model.to(self.device)
        return self._accuracy(model, x.to(self.device, memory_format=fmt), y.to(self.device))

    # ---- internals -------------------------------------------------------------------

    def _tensors(self, data: ImageDataset) -> tuple[torch.Tensor, ...]:
        """Training and validation tensors on the device, resized once if asked.

        Kept for the next call with the same dataset object, so a search copies
        (and resizes) its data once, not once per architecture.
        """
        cfg = self.config
        size = cfg.resolution if cfg.resolution != data.resolution else None
        key = (id(data), size, str(self.device), cfg.channels_last)
        cached = self._tensor_cache
        if cached is not None and cached[0] == key and cached[1][0] is data:
            return cached[1][1:]
        x_train, x_val = data.x_train, data.x_val
        if size is not None:
            resize = lambda x: F.interpolate(  # noqa: E731
                x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
            x_train, x_val = resize(x_train), resize(x_val)
        dev = self.device
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        tensors = (
            x_train.to(dev, memory_format=fmt),
            data.y_train.to(dev),
            x_val.to(dev, memory_format=fmt),
            data.y_val.to(dev),
        )
        self._tensor_cache = (key, (data, *tensors))
        return tensors

    def _optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        cfg = self.config
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.momentum > 0,
        )

    def _fit(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        lr: float,
        hooks: _EpochHooks | None = None,
    ):
        cfg = self.config
        n = x.shape[0]
        bs = min(cfg.batch_size, n)
        steps_per_epoch = n // bs  # drop the ragged last batch (BatchNorm, equal steps)
        total = cfg.epochs * steps_per_epoch
        if cfg.max_iterations is not None:
            total = min(total, cfg.max_iterations)
        optimizer = self._optimizer(model, lr)
        autocast = self._autocast
        scaler = (
            torch.amp.GradScaler(self.device.type)
            if self.amp and self.amp_dtype == torch.float16
            else None
        )
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total))
            if cfg.schedule == "cosine"
            else None
        )
        generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)  # dropout / stochastic depth in the forward pass
        model.train()
        step, seen = 0, 0
        running = torch.zeros((), device=x.device)
        epoch_loss = torch.zeros((), device=x.device)
        epoch_steps = 0
        final_loss = math.nan
        if hooks is not None:
            signature = self._signature(model, n, bs, total, lr)
            objects = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
            state = hooks.restore(signature, objects, generator, running)
            step, seen, final_loss = state.step, state.seen, state.final_loss
            epoch_started = time.perf_counter()
        while step < total:
            order = torch.randperm(n, generator=generator).to(x.device)
            epoch_loss.zero_()
            epoch_steps = 0
            for i in range(steps_per_epoch):
                if step >= total:
                    break
                idx = order[i * bs : (i + 1) * bs]
                with autocast():
                    logits = model(x[idx])
                loss = F.cross_entropy(logits.float(), y[idx], label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                if scheduler is not None:
                    scheduler.step()
                step += 1
                seen += bs
                epoch_steps += 1
                detached = loss.detach()
                running += detached
                epoch_loss += detached
                if step % cfg.check_every == 0 or step == total:
                    if not torch.isfinite(running).item():
                        return step, math.nan, True, seen
                    running.zero_()
                if hooks is not None and hooks.on_step is not None:
                    hooks.on_step(step, total)
            final_loss = (epoch_loss / max(1, epoch_steps)).item()
            if hooks is not None:
                if not math.isfinite(final_loss):
                    return step, math.nan, True, seen
                accuracy = hooks.validate() if hooks.validate is not None else None
                model.train()
                epochs = -(-total // steps_per_epoch)
                stats = EpochStats(
                    epoch=len(hooks.history) + 1,
                    epochs=epochs,
                    step=step,
                    total_steps=total,
                    loss=final_loss,
                    accuracy=accuracy,
                    seconds=time.perf_counter() - epoch_started,
                )
                hooks.history.append(stats)
                state = _FitState(len(hooks.history), step, seen, final_loss, hooks.history)
                hooks.save(signature, objects, generator, running, state)
                if hooks.on_epoch is not None:
                    hooks.on_epoch(stats)
                epoch_started = time.perf_counter()
        if not math.isfinite(final_loss) and total > 0:
            return step, math.nan, True, seen
        return step, final_loss, False, seen

    def _signature(
        self, model: nn.Module, n: int, batch: int, total: int, lr: float
    ) -> dict[str, Any]:
        """What a checkpoint must match to continue this training."""
        cfg = asdict(self.config)
        for name in ("eval_batch_size", "check_every", "deterministic", "num_threads", "amp"):
            cfg.pop(name)  # do not change the trajectory (or are checked below)
        cfg.update(
            train_images=n,
            batch=batch,
            total_steps=total,
            peak_lr=lr,
            amp=self.amp,
            amp_dtype=str(self.amp_dtype) if self.amp else None,
            parameters=sum(p.numel() for p in model.parameters()),
        )
        return cfg

    @torch.no_grad()
    def _recalibrate_bn(self, model: nn.Module, x: torch.Tensor) -> None:
        """Recompute BatchNorm running statistics as exact averages over training images."""
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        norms = [m for m in norms if m.track_running_stats]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the batches below
        model.train()
        n = min(x.shape[0], self.config.bn_recalibration)
        bs = self.config.eval_batch_size
        try:
            with self._autocast():
                for i in range(0, n, bs):
                    model(x[i : min(i + bs, n)])
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum

    @torch.inference_mode()
    def _accuracy(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=x.device)
        finite = torch.ones((), dtype=torch.bool, device=x.device)
        bs = self.config.eval_batch_size
        for i in range(0, x.shape[0], bs):
            with self._autocast():
                logits = model(x[i : i + bs])
            finite &= torch.isfinite(logits).all()
            correct += (logits.argmax(dim=1) == y[i : i + bs]).sum()
        if not finite.item():
            return math.nan
        return 100.0 * correct.item() / max(1, x.shape[0])


def _initialised(init: Any) -> bool:
    """Whether an ``init_fn`` result says it loaded anything (unknown results count as yes)."""
    hits = getattr(init, "hits", None)
    if hits is None:
        return True
    return bool(hits) or bool(getattr(init, "stem", False)) or bool(getattr(init, "head", False))


@dataclass
class _EpochHooks:
    """The optional per-epoch work of :meth:`ProxyTrainer._fit`: checkpoint and callbacks."""

    path: Path | None
    meta: dict[str, Any]
    on_epoch: Callable[[EpochStats], None] | None
    on_step: Callable[[int, int], None] | None
    validate: Callable[[], float] | None
    history: list[EpochStats] = field(default_factory=list)
    resumed_epoch: int = 0
    resumed_seen: int = 0

    def restore(
        self,
        signature: dict[str, Any],
        objects: dict[str, Any],
        generator: torch.Generator,
        running: torch.Tensor,
    ) -> _FitState:
        """Load the checkpoint into the training objects (a fresh state when there is none)."""
        if self.path is None or not self.path.exists():
            return _FitState()
        data = read_checkpoint(self.path)
        if data["signature"] != signature:
            theirs = data["signature"]
            diffs = [
                f"{k}: {theirs.get(k)!r} there, {signature.get(k)!r} now"
                for k in sorted(set(theirs) | set(signature))
                if theirs.get(k) != signature.get(k)
            ]
            raise ValueError(
                f"checkpoint {str(self.path)!r} belongs to another training ("
                + "; ".join(diffs)
                + "): use another checkpoint file, or the same settings to resume it"
            )
        for name, obj in objects.items():
            if obj is not None:
                obj.load_state_dict(data[name])
        generator.set_state(data["generator"])
        torch.set_rng_state(data["torch_rng"])
        if data.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(data["cuda_rng"])
        running.copy_(data["running"].to(running.device))
        state = data["state"]
        self.history = [EpochStats(**h) for h in state["history"]]
        self.resumed_epoch = int(state["epoch"])
        self.resumed_seen = int(state["seen"])
        return _FitState(
            epoch=int(state["epoch"]),
            step=int(state["step"]),
            seen=int(state["seen"]),
            final_loss=float(state["final_loss"]),
            history=self.history,
        )

    def save(
        self,
        signature: dict[str, Any],
        objects: dict[str, Any],
        generator: torch.Generator,
        running: torch.Tensor,
        state: _FitState,
    ) -> None:
        """Write the checkpoint atomically (no-op without a path)."""
        if self.path is None:
            return
        data: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "version": _CHECKPOINT_VERSION,
            "signature": signature,
            "meta": self.meta,
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "running": running.detach().cpu(),
            "state": {
                "epoch": state.epoch,
                "step": state.step,
                "seen": state.seen,
                "final_loss": state.final_loss,
                "history": [asdict(h) for h in state.history],
            },
        }
        for name, obj in objects.items():
            data[name] = obj.state_dict() if obj is not None else None
        _atomic_save(data, self.path)


def _atomic_save(data: Any, path: Path) -> None:
    """``torch.save`` atomically (:func:`fnas_env.files.atomic_write`)."""
    atomic_write(path, lambda tmp: torch.save(data, tmp))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by :meth:`ProxyTrainer.train` (tensors on the CPU).

    Keys: ``format``, ``version``, ``signature`` (the settings it belongs to),
    ``meta`` (the caller's ``checkpoint_meta``), ``state`` (``epoch``, ``step``,
    ``seen``, ``final_loss``, ``history``), ``model`` (the state dict), and the
    optimiser, scheduler, scaler and RNG states.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not such a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise ValueError(
            f"{str(path)!r} is not a training checkpoint "
            f"(torch.load cannot read it: {type(err).__name__})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a training checkpoint (no format {CHECKPOINT_FORMAT!r})"
        )
    if data.get("version") != _CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has version {data.get('version')!r}; "
            f"this version reads {_CHECKPOINT_VERSION}"
        )
    return data
