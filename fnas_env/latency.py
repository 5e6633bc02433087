"""Latency of architectures on this machine, the target hardware of a real search.

MnasNet's reward needs each sampled architecture's latency on the target
device. :class:`LatencyModel` gives it in one of three ways (``cost_model``):

- ``"measured"``: build the network and time batch-1 forward passes on the CPU
  (``torch.inference_mode()``, warm-up runs, median of repeated runs, a fixed
  thread count restored afterwards). Milliseconds.
- ``"lut"``: a :class:`LatencyTable` (lookup table): the stem, every layer (or
  cell) and the head are timed once per distinct configuration and input shape,
  and an architecture's latency is predicted as the sum of its parts, so most
  architectures of a search need no timing at all. Milliseconds.
- ``"macs"``: multiply-accumulates (``count_macs_params``), a
  hardware-independent cost. Millions of MACs.

Results are cached per architecture and model config, in memory and optionally
in a JSON file (written to a temporary file then ``os.replace``-d, so a killed
process never leaves a half-written cache; a corrupt file is reported with a
warning and replaced on the next write). A cache file belongs to one machine
and one thread count (the count is part of each key).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fnas_env.arch import Architecture
from fnas_env.models import ProxyModelConfig, build_model, count_macs_params
from fnas_env.spaces import get_space

__all__ = [
    "COST_MODELS",
    "LatencyCache",
    "LatencyModel",
    "LatencyTable",
    "measure_times",
    "model_parts",
    "time_module",
]

COST_MODELS = ("measured", "lut", "macs")
_CACHE_VERSION = 1
_SECTIONS = ("measured", "lut", "calibration", "macs", "configs")


def _check_timing_args(threads: int, warmup: int, repeats: int, max_seconds: float) -> None:
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")


def time_module(
    module: nn.Module,
    x: torch.Tensor,
    *,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 15,
    min_repeats: int = 5,
    max_seconds: float = 0.4,
) -> list[float]:
    """Times in ms of ``repeats`` forward passes of ``module`` on ``x``, after ``warmup``.

    Runs in eval mode under ``torch.inference_mode()`` with ``threads`` intra-op
    threads and the garbage collector paused; the previous thread count, module
    mode and collector state are restored. Stops early, after at least
    ``min_repeats`` timed runs, once ``max_seconds`` have passed since the first
    warm-up run, so large models cannot stall a search.

    Args:
        module: the module to time.
        x: its input (batch 1 for latency).
        threads: ``torch.set_num_threads`` value while timing. Default 1.
        warmup: untimed runs first (allocator, oneDNN kernel selection). Default 3.
        repeats: timed runs at most. Default 15.
        min_repeats: timed runs at least, whatever the time budget. Default 5.
        max_seconds: time budget for warm-up plus timed runs. Default 0.4.
    """
    _check_timing_args(threads, warmup, repeats, max_seconds)
    previous_threads = torch.get_num_threads()
    was_training = module.training
    gc_enabled = gc.isenabled()
    times: list[float] = []
    try:
        torch.set_num_threads(threads)
        module.eval()
        gc.disable()
        with torch.inference_mode():
            start = time.perf_counter()
            for _ in range(warmup):
                module(x)
            while len(times) < repeats:
                t0 = time.perf_counter_ns()
                module(x)
                times.append((time.perf_counter_ns() - t0) / 1e6)
                if len(times) >= min(min_repeats, repeats) and (
                    time.perf_counter() - start > max_seconds
                ):
                    break
    finally:
        if gc_enabled:
            gc.enable()
        module.train(was_training)
        torch.set_num_threads(previous_threads)
    return times


def measure_times(
    arch: Architecture,
    config: ProxyModelConfig,
    *,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 15,
    max_seconds: float = 0.4,
    seed: int = 0,
) -> list[float]:
    """Batch-1 forward times (ms) of ``arch``'s network under ``config``.

    Builds the network and times it with :func:`time_module` (same arguments);
    ``seed`` fixes the random input.
    """
    model = build_model(arch, config)
    x = torch.randn(config.input_shape(1), generator=torch.Generator().manual_seed(seed))
    return time_module(
        model, x, threads=threads, warmup=warmup, repeats=repeats, max_seconds=max_seconds
    )


def model_parts(model: nn.Module) -> list[nn.Module]:
    """The parts a :class:`LatencyTable` times: stem, each layer (or cell), head, in order.

    Works for the models of :func:`fnas_env.models.build_model`: ``blocks`` whose
    modules have ``layers`` (mnas, anb, macro) or ``cells`` (nb201).
    """
    parts: list[nn.Module] = [model.stem]
    if hasattr(model, "blocks"):
        for block in model.blocks:
            parts.extend(block.layers)
    elif hasattr(model, "cells"):
        parts.extend(model.cells)
    else:
        raise ValueError(
            f"{type(model).__name__} has neither 'blocks' nor 'cells'; "
            "model_parts needs a model from fnas_env.models.build_model"
        )
    parts.append(model.head)
    return parts


def _part_shapes(model: nn.Module, parts: list[nn.Module], config: ProxyModelConfig) -> list:
    """Input shape of each part, from one forward pass with pre-hooks."""
    shapes: dict[int, tuple[int, ...]] = {}

    def recorder(i: int):
        def hook(module: nn.Module, args: tuple) -> None:
            shapes.setdefault(i, tuple(args[0].shape))

        return hook

    hooks = [p.register_forward_pre_hook(recorder(i)) for i, p in enumerate(parts)]
    try:
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(config.input_shape(1)))
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return [shapes[i] for i in range(len(parts))]


class LatencyCache:
    """Latency values by key, in memory and (if ``path``) in a JSON file.

    The file is re-read and merged before each write, so processes sharing it
    lose at most what they wrote at the same instant; writes go to a temporary
    file in the same folder, then ``os.replace`` it. An unreadable file gives a
    warning and an empty cache (replaced on the next write).

    Args:
        path: JSON file, created on the first write; ``None`` (default) keeps
            values in memory only.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._data: dict[str, dict] = {s: {} for s in _SECTIONS}
        if self.path is not None:
            self._merge(self._read())

    def _read(self) -> dict[str, dict]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
                raise ValueError(f"not a version-{_CACHE_VERSION} latency cache")
            return {s: data[s] for s in _SECTIONS if isinstance(data.get(s), dict)}
        except (OSError, ValueError) as exc:
            warnings.warn(
                f"latency cache {self.path} is unreadable ({exc}); starting empty, "
                "the file will be replaced on the next write",
                RuntimeWarning,
                stacklevel=3,
            )
            return {}

    def _merge(self, data: dict[str, dict]) -> None:
        for section, values in data.items():
            self._data[section].update(values)

    def get(self, section: str, key: str) -> Any:
        """Cached value of ``key`` in ``section`` (``measured``, ``lut``, ``macs``...) or None."""
        return self._data[section].get(key)

    def put(
        self,
        section: str,
        key: str,
        value: Any,
        config: ProxyModelConfig | None = None,
        save: bool = True,
    ) -> None:
        """Store ``value`` (and the config its key refers to); write the file if ``save``."""
        self._data[section][key] = float(value) if isinstance(value, int | float) else value
        if config is not None:
            self._data["configs"][_config_id(config)] = json.loads(config.key())
        if save:
            self.save()

    def __len__(self) -> int:
        return sum(len(self._data[s]) for s in ("measured", "lut", "macs"))

    def save(self) -> None:
        """Write the cache atomically (no-op without a path)."""
        if self.path is None:
            return
        on_disk = self._read() if self.path.exists() else {}
        for section, values in on_disk.items():
            for key, value in values.items():
                self._data[section].setdefault(key, value)
        payload = {
            "version": _CACHE_VERSION,
            "host": platform.node(),
            "torch": torch.__version__,
            **self._data,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _config_id(config: ProxyModelConfig) -> str:
    return hashlib.sha1(config.key().encode()).hexdigest()[:12]


def _arch_key(arch: Architecture, config: ProxyModelConfig, threads: int | None) -> str:
    key = f"{arch.space}:{get_space(arch.space).to_string(arch)}@{_config_id(config)}"
    return key if threads is None else f"{key}@t{threads}"


class LatencyTable:
    """Lookup table of part latencies: predicts an architecture's latency from their sum.

    The parts are the stem, every layer of every block (every cell for nb201)
    and the head (:func:`model_parts`). A part is identified by its module's
    ``repr`` (which spells out every channel, kernel, stride, SE and skip
    setting) and its input shape, and timed once; later architectures that
    reuse it cost no timing.

    A part timed alone, over and over, runs with warm caches; inside a whole
    network it does not, so the plain sum underestimates (by about 3x for
    digits-size proxies on the development machine). The table therefore
    calibrates one scale factor per model config: the first
    ``calibration_archs`` architectures it sees are also timed whole, their
    measured latency is returned as is, and later predictions are
    ``scale * sum(parts)`` with ``scale = sum(measured) / sum(part sums)``. The
    scale does not change rankings; ``benchmarks/latency_lut.py`` reports the
    error with and without it.

    Args:
        threads: torch intra-op threads while timing. Default 1.
        warmup: untimed runs per part. Default 2.
        repeats: timed runs per part at most. Default 10.
        max_seconds: time budget per part. Default 0.1.
        calibration_archs: architectures per config timed whole to fit the
            scale; 0 turns calibration off (scale 1). Default 5.
        network_timing: keyword arguments of :func:`measure_times` for the
            calibration timings (default: its defaults).
        cache: where part latencies and calibration pairs are kept; ``None``
            (default) keeps them in memory.
    """

    def __init__(
        self,
        threads: int = 1,
        warmup: int = 2,
        repeats: int = 10,
        max_seconds: float = 0.1,
        calibration_archs: int = 5,
        network_timing: dict[str, Any] | None = None,
        cache: LatencyCache | None = None,
    ) -> None:
        _check_timing_args(threads, warmup, repeats, max_seconds)
        if calibration_archs < 0:
            raise ValueError(f"calibration_archs must be >= 0, got {calibration_archs}")
        self.threads = threads
        self.warmup = warmup
        self.repeats = repeats
        self.max_seconds = max_seconds
        self.calibration_archs = calibration_archs
        self.network_timing = dict(network_timing or {})
        self.cache = cache if cache is not None else LatencyCache()
        #: number of parts timed so far (table misses)
        self.measurements = 0
        #: number of whole networks timed for calibration
        self.calibrations = 0
        self._predictions: dict[str, float] = {}

    def _part_key(self, part: nn.Module, shape: tuple[int, ...]) -> str:
        digest = hashlib.sha1(f"{part!r}|{shape}".encode()).hexdigest()[:20]
        return f"{digest}@t{self.threads}"

    def part_latencies(self, arch: Architecture, config: ProxyModelConfig) -> list[float]:
        """Latency (ms) of each part of ``arch``'s network; times parts not yet in the table."""
        model = build_model(arch, config)
        parts = model_parts(model)
        out, dirty = [], False
        for part, shape in zip(parts, _part_shapes(model, parts, config)):
            key = self._part_key(part, shape)
            value = self.cache.get("lut", key)
            if value is None:
                x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
                value = statistics.median(
                    time_module(
                        part,
                        x,
                        threads=self.threads,
                        warmup=self.warmup,
                        repeats=self.repeats,
                        max_seconds=self.max_seconds,
                    )
                )
                self.measurements += 1
                self.cache.put("lut", key, value, save=False)
                dirty = True
            out.append(value)
        if dirty:  # one file write per architecture, not per part
            self.cache.save()
        return out

    def raw(self, arch: Architecture, config: ProxyModelConfig) -> float:
        """Uncalibrated prediction (ms): the plain sum of the part latencies."""
        return float(sum(self.part_latencies(arch, config)))

    def _calibration_key(self, config: ProxyModelConfig) -> str:
        return f"{_config_id(config)}@t{self.threads}"

    def calibration_pairs(self, config: ProxyModelConfig) -> list[tuple[str, float, float]]:
        """``(arch string, measured ms, part sum ms)`` of the calibration architectures."""
        pairs = self.cache.get("calibration", self._calibration_key(config)) or []
        return [(str(a), float(m), float(r)) for a, m, r in pairs]

    def scale(self, config: ProxyModelConfig) -> float:
        """The calibration factor for ``config`` (1.0 until calibrated or with calibration off)."""
        pairs = self.calibration_pairs(config)
        if self.calibration_archs == 0 or not pairs:
            return 1.0
        return sum(m for _, m, _ in pairs) / sum(r for _, _, r in pairs)

    def calibrated(self, config: ProxyModelConfig) -> bool:
        """Whether the scale for ``config`` rests on ``calibration_archs`` architectures."""
        return len(self.calibration_pairs(config)) >= self.calibration_archs

    def calibrate(self, arch: Architecture, config: ProxyModelConfig) -> float:
        """Time ``arch`` whole, add it to ``config``'s calibration pairs; its latency (ms)."""
        measured = float(
            statistics.median(
                measure_times(arch, config, threads=self.threads, **self.network_timing)
            )
        )
        self.calibrations += 1
        label = f"{arch.space}:{get_space(arch.space).to_string(arch)}"
        pairs = [list(p) for p in self.calibration_pairs(config) if p[0] != label]
        pairs.append([label, measured, self.raw(arch, config)])
        self.cache.put("calibration", self._calibration_key(config), pairs, config)
        return measured

    def predict(self, arch: Architecture, config: ProxyModelConfig) -> float:
        """Predicted batch-1 latency (ms) of ``arch`` under ``config``.

        While ``config`` is not yet calibrated, ``arch`` is timed whole (and its
        measured latency returned) to calibrate it.
        """
        key = _arch_key(arch, config, self.threads)
        if key in self._predictions:
            return self._predictions[key]
        if not self.calibrated(config):
            value = self.calibrate(arch, config)
        else:
            value = self.scale(config) * self.raw(arch, config)
        self._predictions[key] = value
        return value

    def __len__(self) -> int:
        """Number of part entries in the table."""
        return len(self.cache._data["lut"])


class LatencyModel:
    """Cost of an architecture for the reward: measured latency, table latency, or MACs.

    Args:
        cost_model: ``"measured"`` (default; time the whole network, ms),
            ``"lut"`` (sum of per-part timings from a :class:`LatencyTable`, ms) or
            ``"macs"`` (millions of multiply-accumulates).
        threads: torch intra-op threads while timing (restored after). Default 1,
            the most repeatable on a shared machine.
        warmup: untimed runs before timing a network. Default 3.
        repeats: timed runs at most; the median is the result. Default 15.
        max_seconds: time budget per network (warm-up plus timed runs, at least
            5 timed runs). Default 0.4, so a proxy-size network costs about half a
            second with its construction.
        cache_path: JSON file caching results across processes (one per machine);
            ``None`` (default) caches in memory only.

    Example:
        >>> lat = LatencyModel("measured", cache_path="runs/latency.json")  # doctest: +SKIP
        >>> lat.latency(arch, ProxyModelConfig.digits())  # doctest: +SKIP
        3.1
    """

    def __init__(
        self,
        cost_model: str = "measured",
        threads: int = 1,
        warmup: int = 3,
        repeats: int = 15,
        max_seconds: float = 0.4,
        cache_path: str | os.PathLike | None = None,
    ) -> None:
        if cost_model not in COST_MODELS:
            raise ValueError(f"cost_model must be one of {COST_MODELS}, got {cost_model!r}")
        _check_timing_args(threads, warmup, repeats, max_seconds)
        self.cost_model = cost_model
        self.threads = threads
        self.warmup = warmup
        self.repeats = repeats
        self.max_seconds = max_seconds
        self.cache = LatencyCache(cache_path)
        timing = dict(warmup=warmup, repeats=repeats, max_seconds=max_seconds)
        self.table = (
            LatencyTable(threads=threads, network_timing=timing, cache=self.cache)
            if cost_model == "lut"
            else None
        )
        #: number of whole networks timed or counted so far (cache misses)
        self.measurements = 0

    @property
    def unit(self) -> str:
        """``"ms"``, or ``"MMACs"`` for the ``macs`` cost model."""
        return "MMACs" if self.cost_model == "macs" else "ms"

    def latency(self, arch: Architecture, config: ProxyModelConfig) -> float:
        """Cost of ``arch`` under ``config`` in :attr:`unit` (cached)."""
        if not isinstance(arch, Architecture):
            raise TypeError(f"latency() takes an Architecture, got {type(arch).__name__}")
        if not isinstance(config, ProxyModelConfig):
            raise TypeError(f"config must be a ProxyModelConfig, got {type(config).__name__}")
        if self.table is not None:
            return self.table.predict(arch, config)
        section = self.cost_model
        key = _arch_key(arch, config, self.threads if section == "measured" else None)
        value = self.cache.get(section, key)
        if value is None:
            value = self._measure(arch, config)
            self.measurements += 1
            self.cache.put(section, key, value, config)
        return value

    def _measure(self, arch: Architecture, config: ProxyModelConfig) -> float:
        if self.cost_model == "macs":
            return count_macs_params(build_model(arch, config), config).macs / 1e6
        times = measure_times(
            arch,
            config,
            threads=self.threads,
            warmup=self.warmup,
            repeats=self.repeats,
            max_seconds=self.max_seconds,
        )
        return float(statistics.median(times))

    def __repr__(self) -> str:
        return (
            f"LatencyModel(cost_model={self.cost_model!r}, threads={self.threads}, "
            f"cache_path={str(self.cache.path) if self.cache.path else None!r})"
        )
