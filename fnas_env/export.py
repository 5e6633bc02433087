"""Networks of found architectures: their settings and export files.

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

Full training of a found architecture (``fnas train``) is :mod:`fnas_env.full_training`.

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
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fnas_env import ENV_SPACES
from fnas_env.arch import Architecture
from fnas_env.files import atomic_write, jsonable, write_json
from fnas_env.models.config import ProxyModelConfig
from fnas_env.run import RunFolder, RunSettings
from fnas_env.spaces import get_space

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fnas_env.record import RecordEntry
    from fnas_env.training import ImageDataset

__all__ = [
    "BENCHMARK_NETWORKS",
    "DATASET_SHAPES",
    "ENV_SPACES",
    "DataShape",
    "ExportResult",
    "arch_name",
    "dataset_shape",
    "export_architecture",
    "find_entry",
    "network_config",
    "parse_architecture",
    "space_of",
]


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
    """The run's activated record entry of ``arch`` (None when the search never evaluated it)."""
    for entry in run.activated():
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

    from fnas_env.training.data import open_image_folder

    folder = open_image_folder(path)
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


def entry_summary(entry: RecordEntry | None) -> dict[str, Any] | None:
    """What the export and training files keep of a record entry (None: no entry)."""
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
        atomic_write(path, write)
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
    atomic_write(paths["pt2"], lambda tmp: torch.export.save(program, tmp))
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
        "record": entry_summary(record),
        "files": {k: p.name for k, p in paths.items()},
        "load": "torch.export.load(PT2).module()(x)  # x: float32 (N, C, H, W), eval mode",
        "torch": torch.__version__,
        "export_seconds": round(export_seconds, 3),
        "notes": notes,
    }
    if extra:
        metadata.update(extra)
    metadata = jsonable(metadata)
    write_json(paths["json"], metadata)
    return ExportResult(paths=paths, metadata=metadata, notes=notes)
