"""What FNAS costs in wall time next to ``mnas`` on a table lookup, and where the time goes.

On a tabular benchmark an evaluation is a lookup, so a search's wall time is the
controller's and the critic's. This script runs ``mnas`` and ``fnas`` alternately
(same seeds, same budget of activated samples, one torch thread) and prints each
run's wall time, the median ratio fnas / mnas measured in the same process, and a
profile of one ``fnas`` run grouped by component (critic training, critic
prediction, the gate's threshold window, PPO's update, the rollout's policy steps,
AEB replay, the env).

    python benchmarks/fnas_cost.py --env nb201-cifar10 --budget 400 --seeds 5
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np

from benchmarks.envs import ABLATION, env_spec
from benchmarks.methods import run

__all__ = ["COMPONENTS", "profile_components", "main"]

#: component -> (file suffix, function name) of the functions whose cumulative time it is
COMPONENTS = {
    "critic training": ("wrappers/critic.py", "update"),
    "critic prediction": ("wrappers/critic.py", "predict"),
    "gate threshold window": ("wrappers/uac.py", "_remember_uncertainty"),
    "PPO update (train)": ("agents/fnas_loss.py", "train"),
    "AEB replay": ("agents/fnas_replay.py", "_replay"),
    "env lookups": ("fnas_env/env.py", "evaluate"),
    "whole search (learn)": ("on_policy_algorithm.py", "learn"),
}


def profile_components(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each :data:`COMPONENTS` entry in a cProfile run."""
    out = dict.fromkeys(COMPONENTS, 0.0)
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        for name, (suffix, fn) in COMPONENTS.items():
            if function == fn and filename.endswith(suffix):
                out[name] = max(out[name], row[3])  # row[3]: cumulative time
    return out


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="nb201-cifar10", choices=list(ABLATION))
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=2000)
    parser.add_argument("--methods", default="mnas,fnas")
    args = parser.parse_args(argv)
    env_id, kwargs = env_spec(args.env)
    methods = args.methods.split(",")
    walls: dict[str, list[float]] = {m: [] for m in methods}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for method in methods:
            start = time.perf_counter()
            run(method, env_id, kwargs, budget=args.budget, seed=seed)
            walls[method].append(time.perf_counter() - start)
            print(f"{method:6s} seed {seed}: {walls[method][-1]:.1f} s", flush=True)
    print("\n| method | runs | median wall s | ratio to mnas (median of per-seed ratios) |")
    print("| --- | --- | --- | --- |")
    for method in methods:
        ratio = "-"
        if "mnas" in walls and method != "mnas":
            ratio = f"{np.median(np.array(walls[method]) / np.array(walls['mnas'])):.2f}"
        print(f"| {method} | {len(walls[method])} | {np.median(walls[method]):.1f} | {ratio} |")
    profiler = cProfile.Profile()
    profiler.enable()
    run("fnas", env_id, kwargs, budget=args.budget, seed=args.first_seed)
    profiler.disable()
    parts = profile_components(pstats.Stats(profiler))
    total = parts["whole search (learn)"] or 1.0
    print("\n| component of one fnas run (cProfile) | s | share of learn |")
    print("| --- | --- | --- |")
    for name, seconds in parts.items():
        print(f"| {name} | {seconds:.2f} | {seconds / total:.0%} |")
    return walls


if __name__ == "__main__":
    main()
