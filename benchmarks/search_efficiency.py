"""Search efficiency: activated samples to reach the benchmark's top accuracies.

Runs random search, regularized evolution, REINFORCE and the MnasNet-style
RecurrentPPO controller (``ppo-lstm``) through :func:`benchmarks.harness.run_method`
on tabular benchmarks, over several seeds, with a budget of activated samples
(every real evaluation counts, repeated architectures included). Prints per env
and method:

- how many seeds reached the top-1% / top-0.1% accuracy of the whole table
  (thresholds from the evaluator's ``all_accuracies()``: the accuracy of the
  ``ceil(p N)``-th best architecture) and the median activated samples to get
  there (seeds that never reach it count as infinite: ``>B`` when the median is
  not reached within the budget B);
- the median best accuracy after 100 and 500 activated samples;
- the controller overhead in ms per sampled architecture: wall time minus the
  time spent inside the evaluator, divided by the sampled architectures.

    python benchmarks/search_efficiency.py --quick
    python benchmarks/search_efficiency.py --seeds 5 --budget 1000 --json results.json
    python benchmarks/search_efficiency.py --profile   # where RecurrentPPO's time goes
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmarks.envs import TABLES, env_spec, parse_names
from benchmarks.harness import (
    METHODS,
    TracePoint,
    make_search_env,
    reaching,
    run_method,
    table_thresholds,
)
from fnas_env import threads

__all__ = ["ENV_NAMES", "thresholds", "summarize_run", "run_benchmark", "main"]

#: The envs this benchmark runs (names of :data:`benchmarks.envs.ENVS`): the tables.
ENV_NAMES = TABLES
DEFAULT_METHODS = ("random", "evolution", "reinforce", "ppo-lstm")
CHECKPOINTS = (100, 500)


def thresholds(env_id: str, env_kwargs: Mapping[str, Any]) -> dict[str, float]:
    """Top-1% and top-0.1% accuracy of the env's whole table, its best and its size.

    Raises ValueError when the env's evaluator is not a table.
    """
    targets = table_thresholds(env_id, env_kwargs)
    if targets is None:
        raise ValueError(f"{env_id} has no table of accuracies to rank against")
    return targets


def summarize_run(
    env: str, method: str, seed: int, trace: list[TracePoint], targets: dict[str, float]
) -> dict[str, Any]:
    """One JSON record of a run: reaching figures, checkpoints, overhead, the best trace."""
    last = trace[-1]
    best = max(trace, key=lambda p: p.reward)
    record: dict[str, Any] = {
        "env": env,
        "method": method,
        "seed": seed,
        **reaching(trace, targets),
        "best_accuracy": last.best_accuracy,
        "best_arch": best.arch,
        "best_test_accuracy": best.test_accuracy,
        "unique": last.unique,
        "sampled": last.sampled,
        "wall_s": last.wall_time,
        "eval_s": last.eval_time,
        "overhead_ms_per_arch": 1000.0 * (last.wall_time - last.eval_time) / last.sampled,
        "best_accuracy_trace": [p.best_accuracy for p in trace],
    }
    for k in CHECKPOINTS:
        record[f"best_at_{k}"] = trace[k - 1].best_accuracy if len(trace) >= k else None
    return record


def run_benchmark(
    envs: list[str],
    methods: list[str],
    seeds: list[int],
    budget: int,
    benchmark_dir: str | None = None,
    log=print,
) -> list[dict[str, Any]]:
    """Run every (env, method, seed) and return the JSON records."""
    records = []
    for name in envs:
        env_id, kwargs = env_spec(name, benchmark_dir)
        targets = thresholds(env_id, kwargs)
        for method in methods:
            for seed in seeds:
                start = time.perf_counter()
                trace = run_method(method, env_id, kwargs, budget=budget, seed=seed)
                rec = summarize_run(name, method, seed, trace, targets)
                records.append(rec)
                log(
                    f"{name:16s} {method:10s} seed {seed}: best {rec['best_accuracy']:.2f} "
                    f"top1% @ {rec['activated_to_top1pct']} top0.1% @ "
                    f"{rec['activated_to_top01pct']} ({time.perf_counter() - start:.1f} s)"
                )
    return records


def _median_reach(values: list[int | None]) -> float:
    return float(np.median([math.inf if v is None else v for v in values]))


def _fmt_reach(median: float, budget: int) -> str:
    return f">{budget}" if math.isinf(median) else f"{median:g}"


def tables(records: list[dict[str, Any]]) -> str:
    """Markdown tables, one per env."""
    lines = []
    for env in dict.fromkeys(r["env"] for r in records):
        rows = [r for r in records if r["env"] == env]
        first = rows[0]
        lines += [
            f"### {env} (top-1% >= {first['top1pct_accuracy']:.2f}, "
            f"top-0.1% >= {first['top01pct_accuracy']:.2f})",
            "",
            "| method | seeds | budget | median to top-1% | reached | median to top-0.1% | "
            "reached | best @100 | best @500 | final best | overhead ms/arch |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for method in dict.fromkeys(r["method"] for r in rows):
            rs = [r for r in rows if r["method"] == method]
            budget = min(r["budget"] for r in rs)
            cells = [method, str(len(rs)), str(budget)]
            for key in ("activated_to_top1pct", "activated_to_top01pct"):
                values = [r[key] for r in rs]
                cells += [
                    _fmt_reach(_median_reach(values), budget),
                    f"{sum(v is not None for v in values)}/{len(rs)}",
                ]
            for key in ("best_at_100", "best_at_500", "best_accuracy"):
                values = [r[key] for r in rs if r[key] is not None]
                cells.append(f"{np.median(values):.2f}" if values else "-")
            cells.append(f"{np.median([r['overhead_ms_per_arch'] for r in rs]):.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def profile_controller(env_name: str, architectures: int, benchmark_dir: str | None) -> str:
    """Where RecurrentPPO's time per sampled architecture goes (cProfile, ms/arch)."""
    import cProfile
    import pstats

    from agents.callbacks import SearchBudgetCallback
    from agents.controller import make_controller

    env = make_search_env(*env_spec(env_name, benchmark_dir))
    with threads.torch_threads(1):
        model = make_controller(env, seed=0)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        model.learn(
            env.unwrapped.horizon * architectures * 10,
            callback=SearchBudgetCallback(architectures),
        )
        profiler.disable()
        total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats
    parts = [
        ("collect_rollouts (sampling)", "collect_rollouts", "ppo_recurrent.py"),
        ("  policy forward in rollouts", "forward", "recurrent/policies.py"),
        ("  env.step (NASEnv, Monitor, VecEnv)", "step", "vec_env/base_vec_env.py"),
        ("  evaluator lookups", "_evaluate", "harness.py"),
        ("train (PPO update)", "train", "ppo_recurrent.py"),
        ("  torch LSTM kernel (rollout + train)", "torch.lstm", "~"),
        ("  backward", "run_backward", "~"),
        ("  Adam step", "step", "optim/adam.py"),
    ]
    n = env.unwrapped.record.counters.sampled
    rows = [("total learn()", total)]
    for label, func, path_part in parts:
        seconds = sum(
            v[3]
            for (path, _, name), v in stats.items()
            if (name == func or (path == "~" and func in name)) and path_part in path
        )
        rows.append((label, seconds))
    out = [f"RecurrentPPO on {env_name}, {n} architectures (ms per sampled architecture):", ""]
    out += ["| part | ms/arch |", "| --- | --- |"]
    out += [f"| {name} | {1000 * t / n:.2f} |" for name, t in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 seeds, budget 150, macro and nb201-cifar10 (a few minutes)",
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated methods of {sorted(METHODS)}",
    )
    parser.add_argument(
        "--envs", default="macro,nb201-cifar10", help=f"comma-separated envs of {list(ENV_NAMES)}"
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per method")
    parser.add_argument("--budget", type=int, default=1000, help="activated samples per run")
    parser.add_argument("--json", default=None, help="write the per-run records here")
    parser.add_argument("--benchmark-dir", default=None, help="default: $FNAS_BENCHMARK_DIR")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile RecurrentPPO's overhead instead of benchmarking",
    )
    args = parser.parse_args(argv)

    methods = parse_names(parser, args.methods, sorted(METHODS), "method")
    envs = parse_names(parser, args.envs, ENV_NAMES, "env")
    if args.seeds < 1 or args.budget < 1:
        parser.error("--seeds and --budget must be positive")
    if args.profile:
        print(profile_controller(envs[0], 200 if not args.quick else 50, args.benchmark_dir))
        return []
    seeds, budget = list(range(args.seeds)), args.budget
    if args.quick:
        seeds, budget = [0, 1], 150
        envs = [e for e in envs if e in ("macro", "nb201-cifar10")] or envs[:1]

    records = run_benchmark(
        envs, methods, seeds, budget, args.benchmark_dir, log=lambda s: print(s, file=sys.stderr)
    )
    print(tables(records))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
        print(f"records written to {args.json}")
    return records


if __name__ == "__main__":
    main()
