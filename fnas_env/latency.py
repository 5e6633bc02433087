"""Latency of architectures on this machine, the target hardware of a real search.

MnasNet's reward needs each sampled architecture's latency on the target
device. :class:`LatencyModel` gives it in one of three ways (``cost_model``):

- ``"measured"``: build the network and time batch-1 forward passes on the CPU
  (``torch.inference_mode()``, warm-up runs, median of repeated runs, a fixed
  thread count restored afterwards). Milliseconds.
- ``"lut"``: a :class:`LatencyTable` (lookup table): the stem, every layer (or
  cell) and the head are timed once per distinct configuration and input shape,
  and an architecture's latency is predicted as the sum of its parts times one
  calibration scale per model config (fitted once on a fixed set of
  architectures), so most architectures of a search need no timing at all.
  Kept in a per-machine file (``FNAS-MNAS-v0`` default:
  :func:`default_table_path`), the table gives the same number for the same
  architecture in every process on that machine. Milliseconds.
- ``"macs"``: multiply-accumulates (``count_macs_params``), a
  hardware-independent cost. Millions of MACs.

Results are cached per architecture and model config, in memory and optionally
in a JSON file (written to a temporary file then ``os.replace``-d, so a killed
process never leaves a half-written cache; a corrupt file is reported with a
warning and replaced on the next write). A cache file belongs to one machine
and one thread count (the count is part of each key).

Latency is always a batch-1 forward pass on this machine's CPU, whatever device
the proxy training uses.

Cache file format (JSON, ``"version": 1``): ``host`` and ``torch`` (provenance)
and one object per section, each mapping a key to a value:

- ``measured``, ``predicted``, ``macs``: the cost of one architecture under the
  ``measured``, ``lut`` and ``macs`` cost models; key
  ``"<space>:<architecture string>@<config id>[@t<num_threads>]"``;
- ``lut``: one part's latency (ms); key ``"<sha1 of part repr and input
  shape>@t<num_threads>"``;
- ``calibration``: ``[architecture, measured ms, part sum ms]`` triples; key
  ``"<space>:<config id>@t<num_threads>"``;
- ``configs``: the :class:`ProxyModelConfig` fields behind each config id.

A search's cache file (``LatencyModel(cache_path=...)``, ``FNAS-MNAS-v0``'s
``latency_cache``) thus keeps every cost the search used, the target ``T`` (the
base architecture's entry) included, and a resumed search reads them back
instead of measuring again.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fnas_env.arch import Architecture
from fnas_env.models import ProxyModelConfig, build_model, count_macs_params
from fnas_env.spaces import get_space
from fnas_env.threads import torch_threads

__all__ = [
    "COST_MODELS",
    "LatencyCache",
    "LatencyModel",
    "LatencyTable",
    "default_table_path",
    "measure_times",
    "model_parts",
    "time_module",
]

COST_MODELS = ("measured", "lut", "macs")
_CACHE_VERSION = 1
_SECTIONS = ("measured", "predicted", "lut", "calibration", "macs", "configs")
#: the cache section of each cost model's per-architecture values
_ARCH_SECTIONS = {"measured": "measured", "lut": "predicted", "macs": "macs"}
#: seed of the fixed calibration architectures of a :class:`LatencyTable` (not 0, the
#: seed benchmarks tend to sample their architectures with)
CALIBRATION_SEED = 20_417


def default_table_path() -> Path:
    """The per-machine lookup-table file: ``$FNAS_CACHE_DIR/latency_lut.json``.

    ``FNAS_CACHE_DIR`` defaults to ``~/.cache/fnas``. One file per machine: point
    ``FNAS_CACHE_DIR`` elsewhere where a home folder is shared between machines.
    """
    root = os.environ.get("FNAS_CACHE_DIR") or "~/.cache/fnas"
    return Path(root).expanduser() / "latency_lut.json"


def _check_timing_args(num_threads: int, warmup: int, repeats: int, max_seconds: float) -> None:
    if not (isinstance(num_threads, int) and num_threads >= 1):
        raise ValueError(f"num_threads must be an integer >= 1, got {num_threads!r}")
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
    num_threads: int = 1,
    warmup: int = 3,
    repeats: int = 15,
    min_repeats: int = 5,
    max_seconds: float = 0.4,
) -> list[float]:
    """Times in ms of ``repeats`` forward passes of ``module`` on ``x``, after ``warmup``.

    Runs in eval mode under ``torch.inference_mode()`` with ``num_threads`` intra-op
    threads and the garbage collector paused; the previous thread count, module
    mode and collector state are restored. Stops early, after at least
    ``min_repeats`` timed runs, once ``max_seconds`` have passed since the first
    warm-up run, so large models cannot stall a search.

    Args:
        module: the module to time.
        x: its input (batch 1 for latency).
        num_threads: ``torch.set_num_threads`` value while timing. Default 1.
        warmup: untimed runs first (allocator, oneDNN kernel selection). Default 3.
        repeats: timed runs at most. Default 15.
        min_repeats: timed runs at least, whatever the time budget. Default 5.
        max_seconds: time budget for warm-up plus timed runs. Default 0.4.
    """
    _check_timing_args(num_threads, warmup, repeats, max_seconds)
    was_training = module.training
    gc_enabled = gc.isenabled()
    times: list[float] = []
    with torch_threads(num_threads):
        try:
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
    return times


def measure_times(
    arch: Architecture,
    config: ProxyModelConfig,
    *,
    num_threads: int = 1,
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
        model, x, num_threads=num_threads, warmup=warmup, repeats=repeats, max_seconds=max_seconds
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

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    hooks = [p.register_forward_pre_hook(recorder(i)) for i, p in enumerate(parts)]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(config.input_shape(1), device=device))
    finally:
        model.train(was_training)
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
        self._lock_depth = 0
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
        return sum(len(self._data[s]) for s in ("measured", "predicted", "lut", "macs"))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the file (``<file>.lock``, ``fcntl.flock``); reentrant.

        Processes that time values under this lock, after :meth:`refresh`, never time
        the same value twice, so every process reads the first one. No-op in memory.
        """
        if self.path is None or self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent / f"{self.path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
        finally:
            os.close(fd)  # closing releases the lock

    def refresh(self) -> None:
        """Merge in what other processes wrote to the file (values held here win)."""
        if self.path is None or not self.path.exists():
            return
        for section, values in self._read().items():
            for key, value in values.items():
                self._data[section].setdefault(key, value)

    def save(self) -> None:
        """Write the cache atomically (no-op without a path)."""
        if self.path is None:
            return
        self.refresh()
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


def _arch_key(arch: Architecture, config: ProxyModelConfig, num_threads: int | None) -> str:
    key = f"{arch.space}:{get_space(arch.space).to_string(arch)}@{_config_id(config)}"
    return key if num_threads is None else f"{key}@t{num_threads}"


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
    calibrates one scale factor per space and model config: before its first
    prediction, ``calibration_archs`` fixed architectures (sampled with seed
    :data:`CALIBRATION_SEED`, whatever the search samples) are timed whole, and
    every prediction is ``scale * sum(parts)`` with
    ``scale = sum(measured) / sum(part sums)``. Every architecture, the
    calibration ones included, is predicted the same way, so a table kept in a
    file gives the same number for the same architecture in every process. The
    scale does not change rankings; ``benchmarks/latency_lut.py`` reports the
    error with and without it.

    Args:
        num_threads: torch intra-op threads while timing. Default 1.
        warmup: untimed runs per part. Default 2.
        repeats: timed runs per part at most. Default 10.
        max_seconds: time budget per part. Default 0.1.
        calibration_archs: fixed architectures per space and config timed whole
            to fit the scale; 0 turns calibration off (scale 1). Default 5.
        network_timing: keyword arguments of :func:`measure_times` for the
            calibration timings (default: its defaults).
        cache: where part latencies and calibration pairs are kept; ``None``
            (default) keeps them in memory. Processes sharing a cache file take its
            lock (:meth:`LatencyCache.lock`) to time a part or calibrate, so each
            value is timed once and all of them read the same one.
    """

    def __init__(
        self,
        num_threads: int = 1,
        warmup: int = 2,
        repeats: int = 10,
        max_seconds: float = 0.1,
        calibration_archs: int = 5,
        network_timing: dict[str, Any] | None = None,
        cache: LatencyCache | None = None,
    ) -> None:
        _check_timing_args(num_threads, warmup, repeats, max_seconds)
        if calibration_archs < 0:
            raise ValueError(f"calibration_archs must be >= 0, got {calibration_archs}")
        self.num_threads = num_threads
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
        self._scales: dict[str, float] = {}
        self._spaces: dict[str, set[str]] = {}

    def _part_key(self, part: nn.Module, shape: tuple[int, ...]) -> str:
        digest = hashlib.sha1(f"{part!r}|{shape}".encode()).hexdigest()[:20]
        return f"{digest}@t{self.num_threads}"

    def part_latencies(
        self, arch: Architecture, config: ProxyModelConfig, model: nn.Module | None = None
    ) -> list[float]:
        """Latency (ms) of each part of ``arch``'s network; times parts not yet in the table.

        ``model``, if given, must be ``arch``'s network under ``config`` (e.g. the one
        just trained, on any device): it only names the parts, so the table needs no
        network of its own unless a part is missing. Parts are always timed on a
        freshly built CPU network.
        """
        named = model if model is not None else build_model(arch, config)
        parts = model_parts(named)
        keys = [
            self._part_key(part, shape)
            for part, shape in zip(parts, _part_shapes(named, parts, config))
        ]
        values = [self.cache.get("lut", key) for key in keys]
        if all(v is not None for v in values):
            return values
        with self.cache.lock():  # other processes sharing the file time each part once
            self.cache.refresh()
            values = [self.cache.get("lut", key) for key in keys]
            missing = [i for i, v in enumerate(values) if v is None]
            if missing:
                fresh = named if model is None else build_model(arch, config)
                self._time_parts(arch, config, fresh, keys, values, missing)
        return values

    def _time_parts(
        self,
        arch: Architecture,
        config: ProxyModelConfig,
        fresh: nn.Module,
        keys: list[str],
        values: list[Any],
        missing: list[int],
    ) -> None:
        """Time the ``missing`` parts on ``fresh`` (a new CPU network of ``arch``)."""
        fresh_parts = model_parts(fresh)
        shapes = _part_shapes(fresh, fresh_parts, config)
        for i in missing:
            if self._part_key(fresh_parts[i], shapes[i]) != keys[i]:
                raise ValueError(
                    f"the model given for {arch} is not its network under this config "
                    f"(part {i} differs)"
                )
            timed = self.cache.get("lut", keys[i])
            if timed is not None:  # a repeat of a part timed above (same layer, same input)
                values[i] = timed
                continue
            x = torch.randn(shapes[i], generator=torch.Generator().manual_seed(0))
            value = statistics.median(
                time_module(
                    fresh_parts[i],
                    x,
                    num_threads=self.num_threads,
                    warmup=self.warmup,
                    repeats=self.repeats,
                    max_seconds=self.max_seconds,
                )
            )
            self.measurements += 1
            self.cache.put("lut", keys[i], value, save=False)
            values[i] = value
        self.cache.save()  # one file write per architecture, not per part

    def raw(
        self, arch: Architecture, config: ProxyModelConfig, model: nn.Module | None = None
    ) -> float:
        """Uncalibrated prediction (ms): the plain sum of the part latencies."""
        return float(sum(self.part_latencies(arch, config, model)))

    def _calibration_key(self, space: str, config: ProxyModelConfig) -> str:
        return f"{space}:{_config_id(config)}@t{self.num_threads}"

    def _space(self, config: ProxyModelConfig, space: str | None) -> str:
        """``space``, or the one space this table has predicted for at ``config``."""
        if space is not None:
            return space
        seen = self._spaces.get(_config_id(config), set())
        if len(seen) != 1:
            raise ValueError(
                "pass space=...: calibration is per search space, and this table has "
                f"predicted for {sorted(seen) or 'no'} space(s) at this config"
            )
        return next(iter(seen))

    def calibration_set(self, space: str) -> list[Architecture]:
        """The fixed architectures of ``space`` the scale is fitted on (seeded sampling)."""
        rng = np.random.default_rng(CALIBRATION_SEED)
        search_space = get_space(space)
        return [search_space.sample(rng) for _ in range(self.calibration_archs)]

    def calibration_pairs(
        self, config: ProxyModelConfig, space: str | None = None
    ) -> list[tuple[str, float, float]]:
        """``(arch string, measured ms, part sum ms)`` of the calibration architectures.

        ``space`` defaults to the one space this table has predicted for at ``config``.
        """
        key = self._calibration_key(self._space(config, space), config)
        pairs = self.cache.get("calibration", key) or []
        return [(str(a), float(m), float(r)) for a, m, r in pairs]

    def scale(self, config: ProxyModelConfig, space: str | None = None) -> float:
        """The calibration factor (1.0 with calibration off); calibrates first if needed.

        ``sum(measured) / sum(part sums)`` over the calibration set's pairs; fixed for
        the life of the table. ``space`` as in :meth:`calibration_pairs`.
        """
        if self.calibration_archs == 0:
            return 1.0
        space = self._space(config, space)
        key = self._calibration_key(space, config)
        if key not in self._scales:
            self.calibrate(config, space)
            labels = {_label(a) for a in self.calibration_set(space)}
            pairs = [p for p in self.calibration_pairs(config, space) if p[0] in labels]
            self._scales[key] = sum(m for _, m, _ in pairs) / sum(r for _, _, r in pairs)
        return self._scales[key]

    def calibrated(self, config: ProxyModelConfig, space: str | None = None) -> bool:
        """Whether every calibration architecture is timed for ``config``."""
        space = self._space(config, space)
        done = {a for a, _, _ in self.calibration_pairs(config, space)}
        return all(_label(a) in done for a in self.calibration_set(space))

    def calibrate(self, config: ProxyModelConfig, space: str) -> None:
        """Time ``space``'s calibration architectures not yet timed for ``config``.

        Each is timed whole (:func:`measure_times` with ``network_timing``) and by
        part; the pairs go to the cache (one write).
        """
        if self.calibrated(config, space):
            return
        with self.cache.lock():  # one process calibrates, the others read its pairs
            self.cache.refresh()
            pairs = [list(p) for p in self.calibration_pairs(config, space)]
            done = {p[0] for p in pairs}
            todo = [a for a in self.calibration_set(space) if _label(a) not in done]
            if not todo:
                return
            for arch in todo:
                measured = float(
                    statistics.median(
                        measure_times(
                            arch, config, num_threads=self.num_threads, **self.network_timing
                        )
                    )
                )
                self.calibrations += 1
                pairs.append([_label(arch), measured, self.raw(arch, config)])
            self.cache.put("calibration", self._calibration_key(space, config), pairs, config)

    def predict(
        self, arch: Architecture, config: ProxyModelConfig, model: nn.Module | None = None
    ) -> float:
        """Predicted batch-1 latency (ms) of ``arch`` under ``config``: scale x part sum.

        ``model``: optionally ``arch``'s network under ``config`` (see
        :meth:`part_latencies`), which saves building one.
        """
        key = _arch_key(arch, config, self.num_threads)
        if key not in self._predictions:
            self._spaces.setdefault(_config_id(config), set()).add(arch.space)
            scale = self.scale(config, arch.space)
            self._predictions[key] = scale * self.raw(arch, config, model)
        return self._predictions[key]

    def __len__(self) -> int:
        """Number of part entries in the table."""
        return len(self.cache._data["lut"])


def _label(arch: Architecture) -> str:
    return f"{arch.space}:{get_space(arch.space).to_string(arch)}"


class LatencyModel:
    """Cost of an architecture for the reward: measured latency, table latency, or MACs.

    Args:
        cost_model: ``"measured"`` (default; time the whole network, ms),
            ``"lut"`` (calibrated sum of per-part timings from a
            :class:`LatencyTable`, ms) or ``"macs"`` (millions of multiply-accumulates).
        num_threads: torch intra-op threads while timing (restored after). Default 1,
            the most repeatable on a shared machine.
        warmup: untimed runs before timing a network. Default 3.
        repeats: timed runs at most; the median is the result. Default 15.
        max_seconds: time budget per network (warm-up plus timed runs, at least
            5 timed runs). Default 0.4, so a proxy-size network costs about half a
            second with its construction.
        cache_path: JSON file of every architecture's cost (the search's record of
            the costs it used; see the module docstring for the format); ``None``
            (default) caches in memory only. A value found there is returned as is,
            never measured again.
        table_path: JSON file of the ``lut`` model's part latencies and calibration
            (one per machine, shared by every search on it, e.g.
            :func:`default_table_path`). Default None: kept with ``cache_path``.

    Example:
        >>> lat = LatencyModel("lut", cache_path="runs/latency.json",
        ...                    table_path=default_table_path())  # doctest: +SKIP
        >>> lat.latency(arch, ProxyModelConfig.digits())  # doctest: +SKIP
        3.1
    """

    def __init__(
        self,
        cost_model: str = "measured",
        num_threads: int = 1,
        warmup: int = 3,
        repeats: int = 15,
        max_seconds: float = 0.4,
        cache_path: str | os.PathLike | None = None,
        table_path: str | os.PathLike | None = None,
    ) -> None:
        if cost_model not in COST_MODELS:
            raise ValueError(f"cost_model must be one of {COST_MODELS}, got {cost_model!r}")
        _check_timing_args(num_threads, warmup, repeats, max_seconds)
        self.cost_model = cost_model
        self.num_threads = num_threads
        self.warmup = warmup
        self.repeats = repeats
        self.max_seconds = max_seconds
        self.cache = LatencyCache(cache_path)
        timing = dict(warmup=warmup, repeats=repeats, max_seconds=max_seconds)
        self.table = None
        if cost_model == "lut":
            same = table_path is None or (
                cache_path is not None and Path(table_path) == Path(cache_path)
            )
            table_cache = self.cache if same else LatencyCache(table_path)
            self.table = LatencyTable(
                num_threads=num_threads, network_timing=timing, cache=table_cache
            )
        #: number of architecture costs computed so far (cache misses: timed, predicted
        #: or counted)
        self.measurements = 0

    @property
    def unit(self) -> str:
        """``"ms"``, or ``"MMACs"`` for the ``macs`` cost model."""
        return "MMACs" if self.cost_model == "macs" else "ms"

    def latency(
        self, arch: Architecture, config: ProxyModelConfig, model: nn.Module | None = None
    ) -> float:
        """Cost of ``arch`` under ``config`` in :attr:`unit` (cached per architecture).

        Args:
            arch: the architecture.
            config: the proxy network settings.
            model: optionally ``arch``'s network under ``config`` (trained or not,
                on any device); the ``lut`` and ``macs`` models then read its parts
                instead of building a network. ``measured`` always times a fresh
                CPU network.
        """
        if not isinstance(arch, Architecture):
            raise TypeError(f"latency() takes an Architecture, got {type(arch).__name__}")
        if not isinstance(config, ProxyModelConfig):
            raise TypeError(f"config must be a ProxyModelConfig, got {type(config).__name__}")
        section = _ARCH_SECTIONS[self.cost_model]
        key = _arch_key(arch, config, None if self.cost_model == "macs" else self.num_threads)
        value = self.cache.get(section, key)
        if value is None:
            value = self._measure(arch, config, model)
            self.measurements += 1
            self.cache.put(section, key, value, config)
        return value

    def _measure(
        self, arch: Architecture, config: ProxyModelConfig, model: nn.Module | None = None
    ) -> float:
        if self.table is not None:
            return float(self.table.predict(arch, config, model))
        if self.cost_model == "macs":
            net = model if model is not None else build_model(arch, config)
            return count_macs_params(net, config).macs / 1e6
        times = measure_times(
            arch,
            config,
            num_threads=self.num_threads,
            warmup=self.warmup,
            repeats=self.repeats,
            max_seconds=self.max_seconds,
        )
        return float(statistics.median(times))

    def __repr__(self) -> str:
        table = self.table.cache.path if self.table is not None else None
        return (
            f"LatencyModel(cost_model={self.cost_model!r}, num_threads={self.num_threads}, "
            f"cache_path={str(self.cache.path) if self.cache.path else None!r}"
            + (f", table_path={str(table)!r})" if table is not None else ")")
        )
