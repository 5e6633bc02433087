"""The envs the benchmarks run, by name: one table for every benchmark script.

Each benchmark names the ones it runs (:data:`TABLES` for the search-efficiency
benchmark, :data:`ABLATION` for the FNAS ablation and its cost, ``mnas`` and ``anb``
for scaling), builds a run's ``gym.make`` arguments with :func:`env_spec` and reads
its command line's lists of env or method names with :func:`parse_names`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

__all__ = ["ENVS", "TABLES", "ABLATION", "env_spec", "parse_names"]

#: Benchmark env names -> (gym id, gym.make kwargs) (read-only).
ENVS: Mapping[str, tuple[str, Mapping[str, Any]]] = MappingProxyType(
    {
        "macro": ("FNAS-Macro-v0", MappingProxyType({})),
        "nb201-cifar10": ("FNAS-NB201-v0", MappingProxyType({"dataset": "cifar10"})),
        "nb201-cifar100": ("FNAS-NB201-v0", MappingProxyType({"dataset": "cifar100"})),
        "nb201-imagenet16": ("FNAS-NB201-v0", MappingProxyType({"dataset": "ImageNet16-120"})),
        "anb-zcu102": ("FNAS-ANB-v0", MappingProxyType({"device": "zcu102"})),
        "anb": ("FNAS-ANB-v0", MappingProxyType({})),
        "mnas": ("FNAS-MNAS-v0", MappingProxyType({})),
    }
)
#: The envs whose evaluator is a whole table (top-1% / top-0.1% thresholds).
TABLES = ("macro", "nb201-cifar10", "nb201-cifar100", "nb201-imagenet16")
#: The envs of the FNAS ablation: the tables and Accel-NASBench on the ZCU102.
ABLATION = (*TABLES, "anb-zcu102")


def env_spec(name: str, benchmark_dir: str | None = None) -> tuple[str, dict[str, Any]]:
    """``(gym id, gym.make kwargs)`` of the env ``name``: a fresh dict, with
    ``benchmark_dir`` when given (else the evaluator's default, ``$FNAS_BENCHMARK_DIR``)."""
    env_id, kwargs = ENVS[name]
    return env_id, dict(kwargs, **({"benchmark_dir": benchmark_dir} if benchmark_dir else {}))


def parse_names(
    parser: argparse.ArgumentParser, text: str, known: Sequence[str], kind: str
) -> list[str]:
    """The comma-separated names of ``text`` (empty items skipped); a name not in ``known``
    is a ``parser.error`` ("unknown ``kind`` ...") that lists ``known``."""
    names = [name for name in text.split(",") if name]
    for name in names:
        if name not in known:
            parser.error(f"unknown {kind} {name!r}; choose from {list(known)}")
    return names
