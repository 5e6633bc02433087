"""Networks of found architectures: their settings, export files and full training.

A search's record names architectures; this module turns them into networks a user
can deploy or train, for ``fnas export`` and ``fnas train``:

- :func:`network_config`: the :class:`~fnas_env.models.ProxyModelConfig` of a run's
  networks. ``FNAS-MNAS-v0`` follows the search's dataset (channels, classes,
  resolution) and width with the proxy rules of
  :func:`fnas_env.evaluators.proxy.proxy_model_config`. The table envs use their
  benchmark's own network (:data:`BENCHMARK_NETWORKS`).
- :func:`export_architecture`: one network as a ``torch.export`` program (``.pt2``),
  an ONNX file where the exporter manages, and a JSON file of what it is (the
  architecture, config, parameters, MACs, batch-1 CPU latency on this machine, the
  search's result).
- :func:`train_architecture`: full training of one architecture with resumable
  checkpoints (:class:`~fnas_env.training.ProxyTrainer`), then its export.
- :func:`load_weights`: the architecture, config and trained weights of a file that
  ``fnas train`` wrote.

Why ``torch.export`` (``.pt2``) and not TorchScript: in this torch ``torch.jit.script``
and ``torch.jit.trace`` are deprecated (they warn on every call), and scripting
fails on these networks (optional submodules such as the ``pool`` skip op's
shortcut), while ``torch.export`` captures them whole, keeps the batch dimension
dynamic, and loads with plain torch (``torch.export.load(path).module()``) in a
process that has never seen this project. The ONNX file is made from the same
exported program. Exports are in inference mode: BatchNorm uses its running
statistics and dropout is off.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import inspect
import io
import json
import math
import os
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fnas_env.arch import Architecture
from fnas_env.models.config import ProxyModelConfig
from fnas_env.run import RunFolder, RunSettings
from fnas_env.spaces import get_space

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fnas_env.record import RecordEntry
    from fnas_env.training import EpochStats, ImageDataset, TrainConfig, TrainResult

__all__ = [
    "BENCHMARK_NETWORKS",
    "DATASET_SHAPES",
    "ENV_SPACES",
    "WEIGHTS_FORMAT",
    "DataShape",
    "ExportResult",
    "TrainedWeights",
    "TrainOutcome",
    "arch_name",
    "dataset_shape",
    "export_architecture",
    "find_entry",
    "load_weights",
    "network_config",
    "parse_architecture",
    "space_of",
    "train_architecture",
]

#: the search space of each registered env
ENV_SPACES = {
    "FNAS-MNAS-v0": "mnas",
    "FNAS-NB201-v0": "nb201",
    "FNAS-Macro-v0": "macro",
    "FNAS-ANB-v0": "anb",
}

#: ``(in_channels, resolution, num_classes)`` of the datasets known by name
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 10),
    "mnist": (1, 28, 10),
    "fashion_mnist": (1, 28, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "imagenet16_120": (3, 16, 120),
    "imagenet": (3, 224, 1000),
}

#: The networks of the table benchmarks, as the tables' numbers were obtained:
#:
#: - ``FNAS-NB201-v0``: NAS-Bench-201's ``TinyNetwork``: C = 16 channels, N = 5 cells
#:   per stage, two stride-2 reductions; 32x32 RGB with 10 (cifar10) or 100
#:   (cifar100) classes, or 16x16 with 120 classes (ImageNet16-120, the env's
#:   ``dataset``).
#: - ``FNAS-Macro-v0``: NAS-Bench-Macro's CIFAR-10 network (stem 32, stages 64, 128,
#:   256, head 1280; 32x32 RGB, 10 classes); its parameters and MACs equal the table's.
#: - ``FNAS-ANB-v0``: Accel-NASBench's EfficientNet-B0 skeleton on ImageNet (224x224
#:   RGB, 1000 classes, head 1280); its parameters equal the benchmark's.
BENCHMARK_NETWORKS: dict[str, dict[str, Any]] = {
    "FNAS-NB201-v0": dict(width_mult=1.0, nb201_cells=5, nb201_channels=16),
    "FNAS-Macro-v0": dict(width_mult=1.0, resolution=32, num_classes=10, in_channels=3),
    "FNAS-ANB-v0": dict(width_mult=1.0, resolution=224, num_classes=1000, in_channels=3),
}

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


# ---- architectures and their networks ---------------------------------------------------


def space_of(settings: RunSettings) -> str:
    """The search space of a run's env.

    Raises:
        ValueError: the env id is not one of :data:`ENV_SPACES`.
    """
    try:
        return ENV_SPACES[settings.env_id]
    except KeyError:
        raise ValueError(
            f"the run's env {settings.env_id!r} has no networks to export; "
            f"supported: {sorted(ENV_SPACES)}"
        ) from None


def parse_architecture(text: str, space: str | None = None) -> Architecture:
    """The architecture a string names, in ``space`` or in the one space that parses it.

    Raises:
        ValueError: the string is no architecture of ``space`` (or of any space),
            or of several spaces when ``space`` is None.
    """
    if space is not None:
        try:
            return get_space(space).from_string(text)
        except (ValueError, KeyError, IndexError) as err:
            raise ValueError(
                f"--arch is not an architecture of the {space!r} space: {err}"
            ) from None
    found = []
    for name in ENV_SPACES.values():
        with contextlib.suppress(ValueError, KeyError, IndexError):
            found.append(get_space(name).from_string(text))
    if len(found) != 1:
        examples = "; ".join(f"{s}: {get_space(s).example_string()}" for s in ENV_SPACES.values())
        what = "no" if not found else "more than one"
        raise ValueError(f"{text!r} is an architecture of {what} search space (e.g. {examples})")
    return found[0]


def arch_name(arch: Architecture) -> str:
    """A short file-name-safe name: ``<space>_<8 hex digits of the architecture string>``."""
    text = get_space(arch.space).to_string(arch)
    return f"{arch.space}_{hashlib.sha1(f'{arch.space}:{text}'.encode()).hexdigest()[:8]}"


def find_entry(run: RunFolder, arch: Architecture) -> RecordEntry | None:
    """The run's evaluated record entry of ``arch`` (None when the search never evaluated it)."""
    for entry in run.evaluated():
        if entry.space == arch.space and tuple(entry.choices) == tuple(arch.choices):
            return entry
    return None


@dataclass(frozen=True)
class DataShape:
    """Input and output of a dataset's networks: what :func:`proxy_model_config` reads."""

    in_channels: int
    resolution: int
    num_classes: int


def dataset_shape(
    dataset: str | os.PathLike,
    resolution: int | None = None,
    classes: list | tuple | None = None,
) -> DataShape:
    """Channels, resolution and classes of a dataset, without loading it.

    Args:
        dataset: a name of :data:`DATASET_SHAPES` (ImageNet16-120 and ImageNet
            included) or an ImageFolder path (3 channels, its class folders, the
            smaller side of its first image, as :func:`~fnas_env.training.load_dataset`
            reads it).
        resolution: images resized to this side (default: the dataset's own).
        classes: a class subset (its length is the number of classes).

    Raises:
        ValueError: an unknown name.
        FileNotFoundError: a path that is no ImageFolder.
    """
    key = str(dataset).lower().replace("-", "_")
    if not isinstance(dataset, os.PathLike) and key in DATASET_SHAPES:
        channels, native, num_classes = DATASET_SHAPES[key]
    elif isinstance(dataset, os.PathLike) or os.sep in str(dataset) or Path(dataset).is_dir():
        channels, native, num_classes = _image_folder_shape(Path(dataset))
    else:
        raise ValueError(
            f"unknown dataset {str(dataset)!r}: use one of {sorted(DATASET_SHAPES)} "
            "or the path of an ImageFolder directory (root/<class>/<image>.png)"
        )
    if classes:
        num_classes = len(classes)
    return DataShape(channels, int(resolution or native), num_classes)


def _image_folder_shape(path: Path) -> tuple[int, int, int]:
    from PIL import Image
    from torchvision.datasets import ImageFolder

    from fnas_env.training import DatasetNotFound

    if not path.is_dir():
        raise DatasetNotFound(
            f"ImageFolder directory {str(path)!r} does not exist (expected "
            "<dir>/<class name>/<image files>)"
        )
    layout = "<dir>/<class name>/<image files>, e.g. flowers/rose/0001.jpg"
    try:
        folder = ImageFolder(str(path))
    except FileNotFoundError as err:  # no class folders, or no image files in them
        raise DatasetNotFound(
            f"{str(path)!r} is not an ImageFolder ({err}); expected {layout}"
        ) from None
    if not folder.samples:
        raise DatasetNotFound(f"no images found under {str(path)!r}; expected {layout}")
    with Image.open(folder.samples[0][0]) as im:
        return 3, min(im.size), len(folder.classes)


def _mnas_defaults() -> dict[str, Any]:
    from fnas_env.envs import make_mnas_env

    params = inspect.signature(make_mnas_env).parameters
    return {name: p.default for name, p in params.items()}


def network_config(
    settings: RunSettings | None = None,
    *,
    space: str | None = None,
    dataset: str | os.PathLike | None = None,
    width: float | None = None,
    resolution: int | None = None,
    data: ImageDataset | DataShape | None = None,
) -> ProxyModelConfig:
    """The network settings of a run's architectures (or of a space's, without a run).

    ``FNAS-MNAS-v0`` (and the ``mnas`` space without a run): the search's proxy
    network, :func:`~fnas_env.evaluators.proxy.proxy_model_config` of the search's
    dataset (its ``dataset``, ``resolution`` and ``classes`` kwargs; digits by
    default) at the search's ``width`` (default 0.5): the stride is capped at half the
    resolution and the head has 256 channels. The table envs (and the ``nb201``,
    ``macro`` and ``anb`` spaces): their benchmark's network
    (:data:`BENCHMARK_NETWORKS`; NAS-Bench-201's dataset from the env's ``dataset``).

    Args:
        settings: the run's settings (None: give ``space``).
        space: the search space when there is no run.
        dataset: another dataset's channels, classes and resolution (a name of
            :data:`DATASET_SHAPES` or an ImageFolder path).
        width: another channel multiplier.
        resolution: another input side length.
        data: the loaded dataset the network will train on (its channels, classes
            and resolution win over ``dataset``).

    Raises:
        ValueError: no settings and no space, an unknown env, dataset or a bad value.
    """
    if settings is not None:
        env_id = settings.env_id
        space_name = space_of(settings)
        kwargs = dict(settings.env_kwargs)
    elif space is not None:
        env_id = {v: k for k, v in ENV_SPACES.items()}.get(space)
        if env_id is None:
            raise ValueError(
                f"no networks for space {space!r}; supported: {sorted(ENV_SPACES.values())}"
            )
        space_name, kwargs = space, {}
    else:
        raise ValueError("network_config needs the run's settings or a space")
    if width is not None and not (width > 0 and math.isfinite(width)):
        raise ValueError(f"width must be a positive number, got {width}")
    if resolution is not None and resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution}")

    shape: DataShape | None = None
    if data is not None:
        shape = DataShape(data.in_channels, data.resolution, data.num_classes)
    elif dataset is not None:
        shape = dataset_shape(dataset, resolution)

    if space_name == "mnas":
        from fnas_env.evaluators.proxy import proxy_model_config

        defaults = _mnas_defaults()
        if shape is None:
            shape = dataset_shape(
                kwargs.get("dataset", defaults["dataset"]),
                kwargs.get("resolution", defaults["resolution"]),
                kwargs.get("classes", defaults["classes"]),
            )
        if resolution is not None:
            shape = dataclasses.replace(shape, resolution=int(resolution))
        w = width if width is not None else float(kwargs.get("width", defaults["width"]))
        # proxy_model_config reads only the shape fields of its dataset argument
        return proxy_model_config(shape, width=w)  # type: ignore[arg-type]

    fields = dict(BENCHMARK_NETWORKS[env_id])
    if env_id == "FNAS-NB201-v0" and shape is None:
        channels, native, num_classes = DATASET_SHAPES[
            str(kwargs.get("dataset", "cifar10")).lower().replace("-", "_")
        ]
        fields.update(in_channels=channels, resolution=native, num_classes=num_classes)
    if shape is not None:
        fields.update(
            in_channels=shape.in_channels,
            resolution=shape.resolution,
            num_classes=shape.num_classes,
        )
    if resolution is not None:
        fields["resolution"] = int(resolution)
    if width is not None:
        fields["width_mult"] = float(width)
    return ProxyModelConfig(**fields)


# ---- export ----------------------------------------------------------------------------


@dataclass
class ExportResult:
    """What :func:`export_architecture` wrote.

    Attributes:
        paths: ``"pt2"``, ``"json"`` and, when it was written, ``"onnx"`` -> file.
        metadata: the JSON file's content.
        notes: what was skipped and why (e.g. no ONNX exporter installed).
    """

    paths: dict[str, Path]
    metadata: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _entry_summary(entry: RecordEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "reward": entry.reward,
        "accuracy": entry.accuracy,
        "latency": entry.latency,
        "macs": entry.macs,
        "params": entry.params,
        "kind": entry.kind,
        "cost": entry.cost,
    }


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then ``os.replace`` it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the same suffix as the file (torch.export.save wants .pt2), the umask's permissions
    tmp = str(path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=1, sort_keys=False, allow_nan=False, default=str) + "\n"
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _export_onnx(program: Any, example: torch.Tensor, path: Path) -> str | None:
    """Write the ONNX file of an exported program; a note instead when that is impossible."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        return (
            f"ONNX skipped: {err.name or 'onnx'} is not installed "
            "(pip install onnx onnxscript, or the project's 'export' extra)"
        )
    import torch

    def write(tmp: str) -> None:
        sink = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                program, (example,), tmp, dynamo=True, external_data=False, verbose=False
            )
        import onnx

        onnx.checker.check_model(tmp)

    try:
        _atomic_write(path, write)
    except Exception as err:  # noqa: BLE001 - any exporter failure only skips the ONNX file
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"ONNX skipped: the exporter failed ({type(err).__name__}: {first[:200]})"
    return None


def export_architecture(
    arch: Architecture,
    config: ProxyModelConfig,
    out_dir: str | os.PathLike,
    name: str | None = None,
    *,
    model: nn.Module | None = None,
    state_dict: dict[str, Any] | None = None,
    seed: int = 0,
    onnx: bool = True,
    record: RecordEntry | None = None,
    extra: dict[str, Any] | None = None,
    measure_latency: bool = True,
) -> ExportResult:
    """Export ``arch``'s network under ``config``: ``NAME.pt2``, ``NAME.onnx``, ``NAME.json``.

    The ``.pt2`` file is a ``torch.export`` program with a dynamic batch dimension;
    load it without this project as ``torch.export.load(path).module()`` and call it
    on float32 ``(N, C, H, W)`` images normalised as in training. Both files are in
    inference mode (BatchNorm running statistics, no dropout).

    Args:
        arch: the architecture.
        config: its network settings (:func:`network_config`).
        out_dir: folder of the files (created).
        name: file name stem (default :func:`arch_name`).
        model: the network to export (e.g. trained; copied to the CPU, not changed).
            Default: a new network (``build_model``) with ``state_dict`` loaded, or
            freshly initialised with ``seed``.
        state_dict: trained weights for the new network.
        seed: initialisation seed of a new network without ``state_dict``.
        onnx: also write the ONNX file (skipped with a note when onnx/onnxscript is
            missing or the exporter fails).
        record: the search's record entry of ``arch`` (reward, accuracy, ...).
        extra: more JSON values for the metadata (e.g. training results).
        measure_latency: time batch-1 forward passes on this machine's CPU
            (``LatencyModel("measured")``, one thread, median ms).

    Returns:
        The written paths, the metadata and notes.

    Raises:
        ValueError: ``arch`` is not in its space, or ``state_dict`` does not fit.
    """
    import torch

    from fnas_env.latency import LatencyModel
    from fnas_env.models import build_model, count_macs_params

    space = get_space(arch.space)
    space.validate(arch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or arch_name(arch)
    started = time.perf_counter()
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(arch, config)
        if state_dict is not None:
            try:
                model.load_state_dict(state_dict)
            except RuntimeError as err:
                raise ValueError(
                    f"the weights do not fit {space.to_string(arch)!r} under this config: "
                    + str(err).splitlines()[0]
                ) from None
        weights = "trained" if state_dict is not None else "initialised"
    else:
        model = copy.deepcopy(model)
        weights = "trained"
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    cost = count_macs_params(model, config)

    example = torch.randn(config.input_shape(2), generator=torch.Generator().manual_seed(0))
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            batch = torch.export.Dim("batch", min=1)
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        except Exception:  # noqa: BLE001 - fall back to a fixed batch of 1
            example = example[:1]
            program = torch.export.export(model, (example,))
            notes.append("the .pt2 program takes batches of 1 only (no dynamic batch)")
    paths = {"pt2": out / f"{name}.pt2", "json": out / f"{name}.json"}
    _atomic_write(paths["pt2"], lambda tmp: torch.export.save(program, tmp))
    export_seconds = time.perf_counter() - started
    if onnx:
        note = _export_onnx(program, example, out / f"{name}.onnx")
        if note is None:
            paths["onnx"] = out / f"{name}.onnx"
        else:
            notes.append(note)

    latency = None
    if measure_latency:
        latency = LatencyModel("measured").latency(arch, config)
    metadata: dict[str, Any] = {
        "arch": space.to_string(arch),
        "space": arch.space,
        "config": asdict(config),
        "input_shape": list(config.input_shape(1)),
        "weights": weights,
        "params": cost.params,
        "macs": cost.macs,
        "latency_ms": latency,
        "latency_note": "median batch-1 forward pass on this machine's CPU, 1 thread",
        "record": _entry_summary(record),
        "files": {k: p.name for k, p in paths.items()},
        "load": "torch.export.load(PT2).module()(x)  # x: float32 (N, C, H, W), eval mode",
        "torch": torch.__version__,
        "export_seconds": round(export_seconds, 3),
        "notes": notes,
    }
    if extra:
        metadata.update(extra)
    metadata = _jsonable(metadata)
    _write_json(paths["json"], metadata)
    return ExportResult(paths=paths, metadata=metadata, notes=notes)


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
    spec = _jsonable(
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
        _write_json(spec_path, spec)

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
            f"training diverged (non-finite loss at step {result.iterations}); try a lower --lr"
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
        "meta": _jsonable(weights_meta),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    weights_path = out / WEIGHTS_FILE
    _atomic_write(weights_path, lambda tmp: torch.save(weights, tmp))

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
    summary = _jsonable(
        {
            "arch": arch_text,
            "space": arch.space,
            "run": run,
            "record": _entry_summary(record),
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
    _write_json(out / RESULT_FILE, summary)
    return TrainOutcome(
        result=result,
        accuracy=result.accuracy,
        test_accuracy=test_accuracy,
        latency=latency,
        summary=summary,
        paths=paths,
        export=exported,
    )
