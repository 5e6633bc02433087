"""What FNAS costs in wall time next to ``mnas`` on a table lookup, and where the time goes.

On a tabular benchmark an evaluation is a lookup, so a search's wall time is the
controller's and the critic's. This script runs the methods alternately (same seeds,
same budget of activated samples, one torch thread) and prints each run's wall and CPU
time, the median ratios to ``mnas`` measured in the same process, and a profile of one
run grouped by component (critic training, the gate's decisions and their threshold
window, PPO's update, the rollout's policy steps, AEB replay, the env's lookups).

Besides plain methods (``--methods``), ``--variant 'LABEL|METHOD|N_ENVS|SETTINGS'``
adds a labelled run of ``METHOD`` with ``n_envs`` envs (:func:`benchmarks.methods.run`)
and FNAS settings (:func:`benchmarks.fnas_ablation.parse_settings` syntax), e.g. the
vectorised rollout with a cheaper critic:

    python benchmarks/fnas_cost.py --env nb201-cifar10 --budget 400 --seeds 5 \\
        --variant 'fnas-n4-c2|fnas|4|critic_kwargs.steps_per_sample=2,critic_kwargs.u_every=2'
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.envs import ABLATION, env_spec
from benchmarks.fnas_ablation import parse_settings
from benchmarks.methods import FNASSettings, run

__all__ = ["COMPONENTS", "Variant", "parse_variant", "profile_components", "main"]

#: component -> (file suffix, function name) of the function whose cumulative time it is;
#: the first five (and the env's lookups) are disjoint parts of ``learn``
COMPONENTS = {
    "critic training": ("wrappers/critic.py", "update"),
    "gate decisions (V/U, threshold)": ("wrappers/uac.py", "decide"),
    "  of which the threshold window": ("wrappers/uac.py", "_remember_score"),
    "PPO update (train)": ("agents/fnas_loss.py", "train"),
    "policy steps (rollouts)": ("sb3_contrib/common/recurrent/policies.py", "forward"),
    "AEB replay": ("agents/fnas_replay.py", "_replay"),
    "env lookups": ("fnas_env/env.py", "evaluate"),
    "whole search (learn)": ("on_policy_algorithm.py", "learn"),
}
#: the disjoint parts of ``learn`` whose remainder is the rest of the rollout loop
_PARTS = (
    "critic training",
    "gate decisions (V/U, threshold)",
    "PPO update (train)",
    "policy steps (rollouts)",
    "AEB replay",
    "env lookups",
)


@dataclass(frozen=True)
class Variant:
    """One timed configuration: ``method`` with ``n_envs`` envs and FNAS ``settings``."""

    label: str
    method: str
    n_envs: int = 1
    settings: FNASSettings | None = None


def parse_variant(text: str) -> Variant:
    """``"LABEL|METHOD|N_ENVS|SETTINGS"`` (the last two optional) -> :class:`Variant`."""
    parts = text.split("|")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"--variant is 'LABEL|METHOD|N_ENVS|SETTINGS', got {text!r}")
    n_envs = int(parts[2]) if len(parts) > 2 and parts[2] else 1
    settings = parse_settings(parts[3]) if len(parts) > 3 and parts[3] else None
    return Variant(parts[0], parts[1], n_envs, settings)


def profile_components(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each :data:`COMPONENTS` entry in a cProfile run, plus
    ``"rest of the rollout loop"``: ``learn`` less the disjoint parts."""
    out = dict.fromkeys(COMPONENTS, 0.0)
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        for name, (suffix, fn) in COMPONENTS.items():
            if function == fn and filename.endswith(suffix):
                out[name] = max(out[name], row[3])  # row[3]: cumulative time
    rest = out["whole search (learn)"] - sum(out[name] for name in _PARTS)
    return {**out, "rest of the rollout loop": max(rest, 0.0)}


def _run(variant: Variant, env_id: str, kwargs: dict, budget: int, seed: int) -> None:
    run(
        variant.method,
        env_id,
        kwargs,
        budget=budget,
        seed=seed,
        settings=variant.settings,
        n_envs=variant.n_envs,
    )


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="nb201-cifar10", choices=list(ABLATION))
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=2000)
    parser.add_argument("--methods", default="mnas,fnas")
    parser.add_argument("--variant", action="append", default=[], type=parse_variant)
    parser.add_argument("--profile", default="fnas", help="label of the variant profiled")
    args = parser.parse_args(argv)
    env_id, kwargs = env_spec(args.env)
    variants = [Variant(m, m) for m in args.methods.split(",") if m] + args.variant
    walls: dict[str, list[float]] = {v.label: [] for v in variants}
    cpus: dict[str, list[float]] = {v.label: [] for v in variants}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for variant in variants:
            start, cpu = time.perf_counter(), time.process_time()
            _run(variant, env_id, dict(kwargs), args.budget, seed)
            walls[variant.label].append(time.perf_counter() - start)
            cpus[variant.label].append(time.process_time() - cpu)
            print(
                f"{variant.label:12s} seed {seed}: {walls[variant.label][-1]:.1f} s wall, "
                f"{cpus[variant.label][-1]:.1f} s CPU",
                flush=True,
            )
    print(
        "\n| method | runs | median wall s | wall / mnas (median of per-seed ratios) "
        "| CPU / mnas (same) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for label in walls:
        ratios = ["-", "-"]
        if "mnas" in walls and label != "mnas":
            for i, times in enumerate((walls, cpus)):
                ratios[i] = f"{np.median(np.array(times[label]) / np.array(times['mnas'])):.2f}"
        print(
            f"| {label} | {len(walls[label])} | {np.median(walls[label]):.1f} | "
            f"{ratios[0]} | {ratios[1]} |"
        )
    profiled = next((v for v in variants if v.label == args.profile), None)
    if profiled is not None:
        profiler = cProfile.Profile()
        profiler.enable()
        _run(profiled, env_id, dict(kwargs), args.budget, args.first_seed)
        profiler.disable()
        parts = profile_components(pstats.Stats(profiler))
        total = parts["whole search (learn)"] or 1.0
        print(f"\n| component of one {profiled.label} run (cProfile) | s | share of learn |")
        print("| --- | --- | --- |")
        for name, seconds in parts.items():
            print(f"| {name} | {seconds:.2f} | {seconds / total:.0%} |")
    return walls


if __name__ == "__main__":
    main()
