"""Screening settings of the FNAS gate against regularized evolution: activated samples
to a table's top-0.1%.

One run per (env, method, settings, seed): the activated samples until the best true
accuracy reaches the table's top-0.1% (None: not within ``--budget``), the PPO samples,
trusted and cached counts and the wall time, one JSON line each (``--jsonl``, appended as
each run ends). ``--table`` prints the medians per (env, label) from such files. Used to
choose the beyond-the-paper option's settings on tuning seeds before
:mod:`benchmarks.fnas_ablation` measures it on the reported seeds.

    python benchmarks/screening.py --env nb201-cifar10 --method fnas-fast \\
        --settings selection=ucb,kappa=1.0 --label ucb-k1 --seeds 100-109 --budget 200 \\
        --jsonl screening.jsonl
    python benchmarks/screening.py --table screening.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np

from benchmarks.envs import env_spec
from benchmarks.fnas_ablation import env_targets, parse_settings
from benchmarks.harness import reach
from benchmarks.methods import METHODS, run


def parse_seeds(text: str) -> list[int]:
    """``"100-104"`` or ``"1,5,7"`` -> list of seeds."""
    if "-" in text:
        first, last = (int(x) for x in text.split("-"))
        return list(range(first, last + 1))
    return [int(x) for x in text.split(",")]


def run_one(env: str, method: str, settings_text: str, seed: int, budget: int) -> dict:
    """One run's screening figures."""
    env_id, env_kwargs = env_spec(env)
    targets = env_targets(env_id, env_kwargs)
    settings = parse_settings(settings_text)
    start = time.perf_counter()
    result = run(method, env_id, dict(env_kwargs), budget=budget, seed=seed, settings=settings)
    counters = result.counters
    return {
        "env": env,
        "method": method,
        "settings": settings_text,
        "seed": seed,
        "budget": budget,
        "activated_to_top01pct": reach(result.trace, targets["top01pct"]),
        "activated_to_top1pct": reach(result.trace, targets["top1pct"]),
        "final_best_accuracy": result.trace[-1].best_accuracy if result.trace else None,
        "ppo_samples": counters.get("ppo_samples"),
        "trusted": result.metrics.get("trusted"),
        "cached": result.trace[-1].cached if result.trace else None,
        "wall_s": round(time.perf_counter() - start, 2),
    }


def table(paths: list[str]) -> str:
    """Median activated samples to the top-0.1% per (env, label), unreached as infinite."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in paths:
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                groups[(rec["env"], rec["label"])].append(rec)
    lines = [
        "| env | label | seeds | to top-0.1% (median) | reached | to top-1% | PPO / activated "
        "| wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (env, label), recs in sorted(groups.items()):
        top01 = [r["activated_to_top01pct"] or np.inf for r in recs]
        top1 = [r["activated_to_top1pct"] or np.inf for r in recs]
        ppo = [r["ppo_samples"] / r["budget"] for r in recs if r["ppo_samples"]]
        lines.append(
            f"| {env} | {label} | {len(recs)} | {np.median(top01):.1f} | "
            f"{sum(np.isfinite(top01))}/{len(recs)} | {np.median(top1):.1f} | "
            f"{f'{np.median(ppo):.2f}' if ppo else '-'} | "
            f"{np.median([r['wall_s'] for r in recs]):.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="nb201-cifar10")
    parser.add_argument("--method", default="fnas-fast", choices=METHODS)
    parser.add_argument("--settings", default="", help="FNASSettings changes, key=value,...")
    parser.add_argument("--label", default=None, help="name of this configuration")
    parser.add_argument("--seeds", default="100-109", help="'100-109' or '1,2,3'")
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--jsonl", default=None)
    parser.add_argument("--table", nargs="*", default=None, help="print medians of files")
    args = parser.parse_args(argv)
    if args.table is not None:
        print(table(args.table))
        return
    label = args.label or f"{args.method}:{args.settings}"
    for seed in parse_seeds(args.seeds):
        rec = run_one(args.env, args.method, args.settings, seed, args.budget)
        rec["label"] = label
        print(json.dumps(rec), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
