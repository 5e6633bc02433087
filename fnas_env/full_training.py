"""Full training of a found architecture (``fnas train``), resumable, then its export.

- :func:`train_architecture`: trains one architecture on a dataset with
  :class:`~fnas_env.training.ProxyTrainer` (the search's training loop, with a
  checkpoint after every epoch), writes its weights and result, and exports the
  trained network (:func:`fnas_env.export.export_architecture`).
- :func:`load_weights`: the architecture, config and trained weights of a file that
  ``fnas train`` wrote (``fnas export --weights``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fnas_env.arch import Architecture
from fnas_env.export import ExportResult, arch_name, entry_summary, export_architecture
from fnas_env.files import atomic_write, jsonable, write_json
from fnas_env.models.config import ProxyModelConfig
from fnas_env.spaces import get_space

if TYPE_CHECKING:
    import torch

    from fnas_env.record import RecordEntry
    from fnas_env.training import EpochStats, ImageDataset, TrainConfig, TrainResult

__all__ = [
    "WEIGHTS_FORMAT",
    "TrainedWeights",
    "TrainOutcome",
    "load_weights",
    "train_architecture",
]

#: ``format`` field of the weights files :func:`train_architecture` writes
WEIGHTS_FORMAT = "fnas-trained-weights"
_WEIGHTS_VERSION = 1
#: the checkpoint, weights and result files of a training folder
CHECKPOINT_FILE, WEIGHTS_FILE, RESULT_FILE, SPEC_FILE = (
    "checkpoint.pt",
    "weights.pt",
    "result.json",
    "train.json",
)


# ---- trained weights -------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedWeights:
    """What a file written by ``fnas train`` holds.

    Attributes:
        arch: the architecture.
        config: its network settings.
        state_dict: the weights (CPU tensors).
        meta: the rest (dataset, accuracy, normalisation, epochs, ...).
    """

    arch: Architecture
    config: ProxyModelConfig
    state_dict: dict[str, Any]
    meta: dict[str, Any]


def load_weights(path: str | os.PathLike) -> TrainedWeights:
    """The weights file (``weights.pt``) or checkpoint (``checkpoint.pt``) of ``fnas train``.

    A checkpoint gives the weights of its last completed epoch.

    Raises:
        FileNotFoundError: no such file.
        ValueError: neither kind of file.
    """
    import torch

    from fnas_env.training import CHECKPOINT_FORMAT, read_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors have many types
        raise ValueError(
            f"{str(path)!r} is not a weights file or checkpoint of fnas train "
            f"(torch.load cannot read it: {type(err).__name__})"
        ) from None
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        data = read_checkpoint(path)
        meta = dict(data.get("meta") or {})
        state, epoch = data["model"], data["state"]["epoch"]
        meta["checkpoint_epoch"] = epoch
    elif isinstance(data, dict) and data.get("format") == WEIGHTS_FORMAT:
        meta = dict(data.get("meta") or {})
        state = data["state_dict"]
    else:
        raise ValueError(f"{str(path)!r} is not a weights file or checkpoint written by fnas train")
    try:
        arch = get_space(meta["space"]).from_string(meta["arch"])
        config = ProxyModelConfig(**meta["config"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"{str(path)!r} does not say which network it holds ({err})") from None
    return TrainedWeights(arch=arch, config=config, state_dict=state, meta=meta)


# ---- full training ---------------------------------------------------------------------


@dataclass
class TrainOutcome:
    """What :func:`train_architecture` produced.

    Attributes:
        result: the trainer's :class:`~fnas_env.training.TrainResult`.
        accuracy: final validation accuracy (%), BatchNorm recalibrated.
        test_accuracy: accuracy on the dataset's official test split, or None.
        latency: batch-1 CPU latency (ms) on this machine.
        summary: the content of ``result.json``.
        paths: ``"weights"``, ``"checkpoint"``, ``"result"`` and the export's files.
        export: the export of the trained network.
    """

    result: TrainResult
    accuracy: float
    test_accuracy: float | None
    latency: float | None
    summary: dict[str, Any]
    paths: dict[str, Path]
    export: ExportResult


def _spec_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    train = old.get("train_config")
    if isinstance(train, dict) and "lr" in train:  # train.json files that say "lr"
        train = dict(train)
        train["learning_rate"] = train.pop("lr")
        old = {**old, "train_config": train}
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k)
    ]


def train_architecture(
    arch: Architecture,
    data: ImageDataset,
    config: ProxyModelConfig,
    out_dir: str | os.PathLike,
    *,
    train_config: TrainConfig | None = None,
    device: str = "auto",
    test_split: tuple[torch.Tensor, torch.Tensor] | None = None,
    record: RecordEntry | None = None,
    run: str | None = None,
    onnx: bool = True,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainOutcome:
    """Train ``arch`` fully on ``data``, resumably, and export the trained network.

    ``out_dir`` receives ``train.json`` (what is trained: a later call with other
    settings is refused), ``checkpoint.pt`` (after every epoch, atomically: a second
    call continues from the last completed epoch and ends with the same weights and
    accuracy as an uninterrupted run), ``weights.pt`` (the trained network, for
    :func:`load_weights` and ``fnas export --weights``), ``result.json`` and the
    export (:func:`export_architecture`) in ``out_dir/export``.

    Args:
        arch: the architecture.
        data: the training and validation data.
        config: the network settings (:func:`network_config` with ``data=data``).
        out_dir: the training's folder.
        train_config: training settings (default ``TrainConfig(epochs=30)``); its
            ``seed`` also seeds the weight initialisation.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        test_split: ``(x, y)`` of an official test split to report as well
            (:func:`~fnas_env.training.load_test_split`).
        record: the search's record entry of ``arch``.
        run: the run folder it came from (for the result file).
        onnx: also export ONNX.
        on_epoch: called after every completed epoch.
        on_step: called after every optimiser step with ``(step, total)``.

    Raises:
        ValueError: ``out_dir`` holds another training, or a bad setting.
    """
    import torch

    from fnas_env.models import build_model
    from fnas_env.training import ProxyTrainer, TrainConfig

    train_config = train_config or TrainConfig(epochs=30)
    trainer = ProxyTrainer(train_config, device=device)  # a bad device fails here
    space = get_space(arch.space)
    arch_text = space.to_string(arch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = jsonable(
        {
            "arch": arch_text,
            "space": arch.space,
            "dataset": data.name,
            "train_images": data.num_train,
            "val_images": data.num_val,
            "classes": list(data.class_names),
            "config": asdict(config),
            "train_config": asdict(train_config),
        }
    )
    spec_path = out / SPEC_FILE
    if spec_path.is_file():
        try:
            old = json.loads(spec_path.read_text())
        except json.JSONDecodeError:
            old = None
        differences = _spec_differences(old, spec) if isinstance(old, dict) else ["unreadable"]
        if differences:
            raise ValueError(
                f"{out} holds another training ({'; '.join(differences)}): "
                "give another --out, or the same settings to resume it"
            )
    else:
        write_json(spec_path, spec)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)
        model = build_model(arch, config)
    meta = {"arch": arch_text, "space": arch.space, "config": asdict(config), "dataset": data.name}
    started = time.perf_counter()
    result = trainer.train(
        model,
        data,
        checkpoint=out / CHECKPOINT_FILE,
        checkpoint_meta=meta,
        on_epoch=on_epoch,
        on_step=on_step,
        epoch_eval=on_epoch is not None,
    )
    model = model.to("cpu", memory_format=torch.contiguous_format)
    if result.diverged:
        raise ValueError(
            f"training diverged (non-finite loss at step {result.iterations}); "
            "try a lower --learning-rate"
        )
    test_accuracy = None
    if test_split is not None:
        test_accuracy = trainer.evaluate(model, *test_split)
        model = model.to("cpu", memory_format=torch.contiguous_format)
    normalisation = {"mean": list(data.mean or ()), "std": list(data.std or ())}
    weights_meta = dict(
        meta,
        accuracy=result.accuracy,
        test_accuracy=test_accuracy,
        normalisation=normalisation,
        epochs=len(result.history),
    )
    weights = {
        "format": WEIGHTS_FORMAT,
        "version": _WEIGHTS_VERSION,
        "meta": jsonable(weights_meta),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    weights_path = out / WEIGHTS_FILE
    atomic_write(weights_path, lambda tmp: torch.save(weights, tmp))

    training = {
        "dataset": data.name,
        "classes": list(data.class_names),
        "normalisation": normalisation,
        "accuracy": result.accuracy,
        "accuracy_split": (
            f"validation: {data.num_val} images held out of the training split "
            f"(seed {data.seed}), BatchNorm recalibrated"
        ),
        "test_accuracy": test_accuracy,
        "epochs": len(result.history),
    }
    exported = export_architecture(
        arch,
        config,
        out / "export",
        f"trained_{arch_name(arch)}",
        model=model,
        onnx=onnx,
        record=record,
        extra={"training": training},
    )
    latency = exported.metadata.get("latency_ms")
    paths = {
        "weights": weights_path,
        "checkpoint": out / CHECKPOINT_FILE,
        "result": out / RESULT_FILE,
        **{f"export_{k}": v for k, v in exported.paths.items()},
    }
    summary = jsonable(
        {
            "arch": arch_text,
            "space": arch.space,
            "run": run,
            "record": entry_summary(record),
            **training,
            "latency_ms": latency,
            "params": exported.metadata["params"],
            "macs": exported.metadata["macs"],
            "config": asdict(config),
            "train_config": asdict(train_config),
            "device": str(trainer.device),
            "resumed_epoch": result.resumed_epoch,
            "iterations": result.iterations,
            "final_loss": result.final_loss,
            "train_seconds_this_call": result.train_seconds,
            "seconds_this_call": time.perf_counter() - started,
            "history": [asdict(h) for h in result.history],
            "files": {k: str(v.relative_to(out)) for k, v in paths.items()},
            "export_notes": exported.notes,
            "torch": torch.__version__,
        }
    )
    write_json(out / RESULT_FILE, summary)
    return TrainOutcome(
        result=result,
        accuracy=result.accuracy,
        test_accuracy=test_accuracy,
        latency=latency,
        summary=summary,
        paths=paths,
        export=exported,
    )
