"""Held-out quality of the Accel-NASBench surrogate (``AnbSurrogateEvaluator``).

Fits every target (accuracy, each device's latency/throughput, train time, MACs,
params) on a fixed random split of upstream's 5,138 records and prints Kendall
tau, Spearman rho and MAE on the held-out part, next to upstream's XGBoost
figures for accuracy (README of https://github.com/afzalxo/Accel-NASBench: test
Kendall tau 0.917, MAE 0.317, on a 0.8/0.1/0.1 split, seed 3).

``--candidates`` also compares a few regressors on accuracy and one device
measure (how the evaluator's model was chosen).

Usage::

    python benchmarks/anb_surrogate.py [--benchmark-dir DIR] [--test-size 0.1]
        [--split-seed 0] [--seed 0] [--candidates] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
from scipy.stats import kendalltau, spearmanr
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from fnas_env.evaluators.anb import (
    ANB_DEVICES,
    ANB_FILE,
    ANB_UPSTREAM,
    fit_target,
    load_anb_dataset,
    make_regressor,
    target_transform,
)
from fnas_env.evaluators.base import find_benchmark_file

UPSTREAM_XGB = {"accuracy": {"kendall_tau": 0.917, "mae": 0.317, "spearman": 0.990}}
UNITS = {"accuracy": "%", "train_time": "s", "macs": "M", "params": "M"}


def _metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "kendall_tau": float(kendalltau(y_true, y_pred).statistic),
        "spearman": float(spearmanr(y_true, y_pred).statistic),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "mape": float(np.mean(np.abs(y_pred - y_true) / np.abs(y_true))),
    }


def _split(y: np.ndarray, train: np.ndarray, test: np.ndarray):
    train, test = train[np.isfinite(y[train])], test[np.isfinite(y[test])]
    return train, test


def evaluate_targets(dataset, train, test, seed: int) -> dict[str, dict]:
    """Evaluator's regressor per target, fitted on ``train``, scored on ``test``."""
    targets = ["accuracy", *(f"{o}_{d}" for d, o in ANB_DEVICES.items())]
    targets += ["train_time", "macs", "params"]
    out = {}
    for target in targets:
        y = dataset.targets[target]
        tr, te = _split(y, train, test)
        start = time.perf_counter()
        fitted = fit_target(dataset, target, seed, rows=tr)
        fit_s = time.perf_counter() - start
        row = _metrics(y[te], fitted.predict(dataset.features[te]))
        row.update(n_train=int(len(tr)), n_test=int(len(te)), fit_s=fit_s)
        out[target] = row
        print(
            f"{target:20s} tau {row['kendall_tau']:.4f}  rho {row['spearman']:.4f}  "
            f"MAE {row['mae']:10.4f} {UNITS.get(target, 'ms' if 'lat' in target else 'img/s')}"
            f"  MAPE {100 * row['mape']:5.2f}%  (n={len(tr)}/{len(te)}, fit {fit_s:.1f} s)",
            flush=True,
        )
    return out


def _hgb(**kw) -> Callable[[int], object]:
    return lambda seed: HistGradientBoostingRegressor(early_stopping=False, random_state=seed, **kw)


CANDIDATES: dict[str, Callable[[int], object]] = {
    "ridge (one-hot, linear)": lambda seed: RidgeCV(alphas=np.logspace(-3, 3, 13)),
    "hgb default (100 rounds, 31 leaves)": _hgb(),
    "hgb depth 3, 300 rounds, lr 0.2, mf 0.5": _hgb(
        max_iter=300, learning_rate=0.2, max_depth=3, max_features=0.5
    ),
    "hgb depth 3, 1000 rounds, lr 0.1, mf 1.0": _hgb(max_iter=1000, learning_rate=0.1, max_depth=3),
    "hgb depth 3, 1000 rounds, lr 0.1, mf 0.5 (used)": lambda seed: make_regressor(
        "accuracy", seed
    ),
    "hgb depth 4, 1000 rounds, lr 0.05, mf 0.5": _hgb(
        max_iter=1000, learning_rate=0.05, max_depth=4, max_features=0.5
    ),
}


def compare_candidates(dataset, train, test, seed: int, targets: list[str]) -> dict:
    """Each candidate regressor on each target, fitted as the evaluator fits it.

    Throughput targets are fitted on time per image (``1000 / throughput``); the
    evaluator's regressor is also shown fitted on raw throughput.
    """
    out: dict[str, dict] = {}
    for target in targets:
        y = dataset.targets[target]
        tr, te = _split(y, train, test)
        variants = [(name, make, target_transform(target)) for name, make in CANDIDATES.items()]
        if target_transform(target) == "reciprocal":
            variants.append(
                (
                    "hgb (used) fitted on raw throughput",
                    lambda seed, target=target: make_regressor(target, seed),
                    "identity",
                )
            )
        for name, make, transform in variants:
            y_fit = 1e3 / y[tr] if transform == "reciprocal" else y[tr]
            start = time.perf_counter()
            with threadpool_limits(limits=1, user_api="openmp"):
                model = make(seed).fit(dataset.features[tr], y_fit)
            fit_s = time.perf_counter() - start
            pred = model.predict(dataset.features[te])
            pred = 1e3 / np.maximum(pred, 1e-9) if transform == "reciprocal" else pred
            row = _metrics(y[te], pred)
            row["fit_s"] = fit_s
            out.setdefault(target, {})[name] = row
            print(
                f"{target:16s} {name:48s} tau {row['kendall_tau']:.4f}  "
                f"rho {row['spearman']:.4f}  MAE {row['mae']:.4f}  fit {fit_s:.1f} s",
                flush=True,
            )
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark-dir", default=None, help="folder with accel-nasbench/")
    parser.add_argument("--test-size", type=float, default=0.1, help="held-out fraction")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split")
    parser.add_argument("--seed", type=int, default=0, help="surrogate seed")
    parser.add_argument("--candidates", action="store_true", help="compare regressors")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)

    archive = find_benchmark_file(ANB_FILE, args.benchmark_dir, ANB_UPSTREAM)
    dataset = load_anb_dataset(archive)
    index = np.arange(len(dataset))
    train, test = train_test_split(index, test_size=args.test_size, random_state=args.split_seed)
    print(
        f"Accel-NASBench: {len(dataset)} records, train {len(train)} / test {len(test)} "
        f"(split seed {args.split_seed}), surrogate seed {args.seed}"
    )
    result = {
        "records": len(dataset),
        "test_size": args.test_size,
        "split_seed": args.split_seed,
        "seed": args.seed,
        "targets": evaluate_targets(dataset, train, test, args.seed),
        "upstream_xgb": UPSTREAM_XGB,
    }
    up = UPSTREAM_XGB["accuracy"]
    print(f"upstream XGBoost accuracy: tau {up['kendall_tau']}, MAE {up['mae']}")
    if args.candidates:
        result["candidates"] = compare_candidates(
            dataset, train, test, args.seed, ["accuracy", "latency_zcu102", "throughput_a100"]
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
