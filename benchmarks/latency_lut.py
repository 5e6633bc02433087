"""Latency lookup table versus measurement, and the repeatability of measurement.

Samples architectures of a space, times each whole network (batch 1, the
``LatencyModel("measured")`` defaults) and predicts it with a
:class:`~fnas_env.latency.LatencyTable` (sum of per-part timings, raw and
calibrated on separate architectures). Prints and optionally writes as JSON:

- LUT error against measurement: MAE (ms), MAPE, Spearman and Kendall rank
  correlation, raw and calibrated; the same ranks for MACs;
- the noise ceiling: the rank correlation between two independent measurement
  rounds of the same architectures;
- repeatability: coefficient of variation of repeated measurements of one
  architecture (each a fresh build and timing);
- cost: seconds per measured architecture and per LUT prediction (table fill
  included), and the new parts timed per architecture as the table fills.

    python benchmarks/latency_lut.py --quick
    python benchmarks/latency_lut.py --space mnas --config digits --archs 30 --json lut.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error

from fnas_env.latency import LatencyModel, LatencyTable, measure_times
from fnas_env.models import ProxyModelConfig
from fnas_env.spaces import get_space

__all__ = ["CONFIGS", "errors", "run", "main"]

#: Model configs by name: FNAS-MNAS-v0's digits proxy and a CIFAR-size proxy.
CONFIGS: dict[str, ProxyModelConfig] = {
    "digits": ProxyModelConfig.digits(),
    "cifar": ProxyModelConfig(resolution=32, num_classes=10, width_mult=0.5, max_stride=8),
}


def errors(predicted: list[float], measured: list[float]) -> dict[str, float]:
    """MAE (ms), MAPE (fraction), Spearman and Kendall of ``predicted`` against ``measured``."""
    return {
        "mae_ms": float(mean_absolute_error(measured, predicted)),
        "mape": float(mean_absolute_percentage_error(measured, predicted)),
        "spearman": float(spearmanr(predicted, measured).statistic),
        "kendall": float(kendalltau(predicted, measured).statistic),
    }


def _measure(arch, config, timing: dict[str, Any], num_threads: int) -> float:
    return float(statistics.median(measure_times(arch, config, num_threads=num_threads, **timing)))


def run(
    space_name: str = "mnas",
    config_name: str = "digits",
    n_archs: int = 30,
    calibration: int = 5,
    spread_archs: int = 3,
    spread_repeats: int = 5,
    num_threads: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the comparison; returns the figures (see the module docstring)."""
    config = CONFIGS[config_name]
    space = get_space(space_name)
    rng = np.random.default_rng(seed)
    archs, seen = [], set()
    while len(archs) < n_archs + calibration:
        arch = space.sample(rng)
        if arch not in seen:
            seen.add(arch)
            archs.append(arch)
    calib, evaluated = archs[:calibration], archs[calibration:]
    defaults = LatencyModel()
    timing = dict(
        warmup=defaults.warmup, repeats=defaults.repeats, max_seconds=defaults.max_seconds
    )

    table = LatencyTable(
        num_threads=num_threads, calibration_archs=calibration, network_timing=timing
    )
    t0 = time.perf_counter()
    for arch in calib:
        table.predict(arch, config)
    calibration_s = time.perf_counter() - t0

    measured, measured2, raw, misses = [], [], [], []
    t_measure = t_lut = 0.0
    for arch in evaluated:
        t0 = time.perf_counter()
        measured.append(_measure(arch, config, timing, num_threads))
        t_measure += time.perf_counter() - t0
        t0, before = time.perf_counter(), table.measurements
        raw.append(table.raw(arch, config))
        t_lut += time.perf_counter() - t0
        misses.append(table.measurements - before)
    for arch in evaluated:  # second, independent round: the noise ceiling
        measured2.append(_measure(arch, config, timing, num_threads))
    scale = table.scale(config)
    calibrated = [scale * r for r in raw]
    macs_model = LatencyModel("macs")
    macs = [macs_model.latency(a, config) for a in evaluated]

    spread = []
    for arch in evaluated[:spread_archs]:
        values = [_measure(arch, config, timing, num_threads) for _ in range(spread_repeats)]
        mean = statistics.fmean(values)
        spread.append(
            {
                "arch": space.to_string(arch),
                "median_ms": statistics.median(values),
                "cv": statistics.stdev(values) / mean,
                "range_over_median": (max(values) - min(values)) / statistics.median(values),
                "values_ms": values,
            }
        )

    return {
        "space": space_name,
        "config": config_name,
        "config_fields": json.loads(config.key()),
        "num_threads": num_threads,
        "archs": len(evaluated),
        "calibration_archs": calibration,
        "scale": scale,
        "measured_median_ms": statistics.median(measured),
        "lut_raw": errors(raw, measured),
        "lut_calibrated": errors(calibrated, measured),
        "macs_rank": {
            "spearman": float(spearmanr(macs, measured).statistic),
            "kendall": float(kendalltau(macs, measured).statistic),
        },
        "measurement_rounds": errors(measured2, measured),
        "spread": spread,
        "spread_median_cv": statistics.median(s["cv"] for s in spread) if spread else None,
        "seconds_per_measured_arch": t_measure / len(evaluated),
        "seconds_per_lut_prediction": t_lut / len(evaluated),
        "calibration_seconds": calibration_s,
        "table_entries": len(table),
        "table_misses_per_arch": misses,
        "torch": torch.__version__,
    }


def _print(result: dict[str, Any]) -> None:
    print(
        f"space={result['space']} config={result['config']} num_threads={result['num_threads']} "
        f"archs={result['archs']} (median measured {result['measured_median_ms']:.2f} ms)"
    )
    print(f"{'':22s} {'MAE ms':>8s} {'MAPE':>7s} {'Spearman':>9s} {'Kendall':>8s}")
    for name in ("lut_raw", "lut_calibrated", "measurement_rounds"):
        e = result[name]
        print(
            f"{name:22s} {e['mae_ms']:8.2f} {e['mape']:7.1%} {e['spearman']:9.3f} "
            f"{e['kendall']:8.3f}"
        )
    m = result["macs_rank"]
    print(f"{'macs (ranks only)':22s} {'':8s} {'':7s} {m['spearman']:9.3f} {m['kendall']:8.3f}")
    print(
        f"calibration scale {result['scale']:.2f} from {result['calibration_archs']} archs; "
        f"repeatability: median CV {result['spread_median_cv'] or 0:.1%} over "
        f"{len(result['spread'])} archs"
    )
    print(
        f"cost: {result['seconds_per_measured_arch']:.2f} s per measured arch, "
        f"{result['seconds_per_lut_prediction']:.2f} s per LUT prediction "
        f"({result['table_entries']} table entries)"
    )
    m = result["table_misses_per_arch"]
    third = max(1, len(m) // 3)
    print(
        f"new parts timed per arch: {statistics.fmean(m[:third]):.1f} (first third), "
        f"{statistics.fmean(m[-third:]):.1f} (last third)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mnas", choices=["mnas", "anb", "macro", "nb201"])
    parser.add_argument("--config", default="digits", choices=sorted(CONFIGS))
    parser.add_argument("--archs", type=int, default=30, help="evaluated architectures")
    parser.add_argument("--calibration", type=int, default=5, help="calibration architectures")
    parser.add_argument("--spread-archs", type=int, default=3)
    parser.add_argument("--spread-repeats", type=int, default=5)
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="8 archs, 2x3 spread")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.archs, args.spread_archs, args.spread_repeats = 8, 2, 3
    result = run(
        args.space,
        args.config,
        args.archs,
        args.calibration,
        args.spread_archs,
        args.spread_repeats,
        args.num_threads,
        args.seed,
    )
    _print(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
