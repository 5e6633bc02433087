"""The evaluator interface: ``evaluate(arch) -> Evaluation``."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fnas_env.arch import Architecture
from fnas_env.spaces import SearchSpace, get_space

__all__ = ["Evaluation", "Evaluator", "find_benchmark_file", "MissingBenchmarkData"]


@dataclass(frozen=True)
class Evaluation:
    """What an evaluation of one architecture found.

    ``accuracy`` is in percent (0-100). ``latency`` in ms and ``throughput`` in
    images/s where known. ``cost`` is the seconds of training/measurement the
    evaluation stands for (a table's recorded training time, the real wall time
    of proxy training; 0 for a trusted prediction). ``trusted`` is True for a
    critic's prediction the UAC gate trusted (nothing was trained or looked
    up), False for a real result (trained or looked up as trained). ``failed``
    marks an evaluation that could not produce a valid result (diverged
    training, NaN); its accuracy is then 0. ``cached`` is True for a
    result served from the search's own record (an architecture this search
    already evaluated): no new evaluation was run and ``cost`` is 0.0.
    ``extras`` holds space-specific values (e.g. test accuracy) as plain
    JSON-able values.
    """

    accuracy: float
    latency: float | None = None
    throughput: float | None = None
    macs: float | None = None
    params: float | None = None
    cost: float | None = None
    trusted: bool = False
    failed: bool = False
    cached: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Evaluation:
        return replace(self, **changes)


class Evaluator(ABC):
    """Scores architectures of one search space.

    Subclasses set ``space_name`` and implement ``_evaluate``; ``evaluate``
    checks the architecture belongs to the space first.
    """

    space_name: str = ""
    #: the cost measure the reward divides by target: "latency", "throughput" or None
    objective: str | None = None

    @property
    def space(self) -> SearchSpace:
        return get_space(self.space_name)

    def evaluate(self, arch: Architecture) -> Evaluation:
        if not isinstance(arch, Architecture):
            raise TypeError(f"evaluate() takes an Architecture, got {type(arch).__name__}")
        if arch.space != self.space_name:
            raise ValueError(
                f"{type(self).__name__} evaluates architectures of space "
                f"{self.space_name!r}, got one of space {arch.space!r}"
            )
        self.space.validate(arch)
        return self._evaluate(arch)

    def close(self) -> None:
        """Release what the evaluator holds (default: nothing; ``NASEnv.close`` calls it)."""
        return None

    @abstractmethod
    def _evaluate(self, arch: Architecture) -> Evaluation: ...


class MissingBenchmarkData(FileNotFoundError):
    """A benchmark file is not where it was looked for."""


def default_benchmark_dir() -> Path | None:
    env = os.environ.get("FNAS_BENCHMARK_DIR")
    if env:
        return Path(env)
    here = Path.cwd() / ".." / "shared" / "benchmarks"
    if here.is_dir():
        return here.resolve()
    repo = Path(__file__).resolve().parents[2] / ".." / "shared" / "benchmarks"
    return repo.resolve() if repo.is_dir() else None


def find_benchmark_file(
    relative: str, benchmark_dir: str | os.PathLike | None, upstream: str
) -> Path:
    """Locate ``relative`` under ``benchmark_dir`` or ``$FNAS_BENCHMARK_DIR``.

    Raises :class:`MissingBenchmarkData` naming the file, where it was looked
    for, and where upstream publishes it.
    """
    base = Path(benchmark_dir) if benchmark_dir is not None else default_benchmark_dir()
    path = base / relative if base is not None else None
    if path is None or not path.is_file():
        where = str(path) if path is not None else f"<benchmark_dir>/{relative}"
        raise MissingBenchmarkData(
            f"benchmark file {relative!r} not found (looked at {where}). Pass "
            f"benchmark_dir=... or set FNAS_BENCHMARK_DIR to the folder that holds "
            f"{relative}. Upstream publishes it at: {upstream}"
        )
    return path
