"""How much weight AEB's replayed episodes keep: their off-policy ratio and PPO's clipping.

Runs the ``aeb`` method (:mod:`agents.fnas_methods`) with TensorBoard logging and reads
back, per rollout, ``fnas/mean_rho`` (the mean truncated ratio ``min(1, prod_t
pi_t/mu_t)`` of the replayed episodes, the factor on their loss weight) and
``train/clip_fraction`` (the fraction of PPO samples whose ratio was clipped).
Prints their 10/50/90% quantiles over the rollouts of each env.

    python benchmarks/replay_ratio.py --envs nb201-cifar10,macro,anb-zcu102 --budget 200
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import agents.fnas_methods  # noqa: F401 - registers aeb
from agents.harness import run_method
from benchmarks.fnas_ablation import ENVS

__all__ = ["replay_ratios", "main"]


def replay_ratios(name: str, budget: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-rollout ``mean_rho`` and ``clip_fraction`` of one ``aeb`` run on env ``name``."""
    env_id, kwargs = ENVS[name]
    with tempfile.TemporaryDirectory() as logdir:
        run_method("aeb", env_id, kwargs, budget=budget, seed=seed, logdir=logdir)
        (run,) = Path(logdir).iterdir()
        events = EventAccumulator(str(run))
        events.Reload()
        return {
            "rho": np.array([e.value for e in events.Scalars("fnas/mean_rho")]),
            "clip": np.array([e.value for e in events.Scalars("train/clip_fraction")]),
        }


def main(argv: list[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="nb201-cifar10,macro,anb-zcu102")
    parser.add_argument("--budget", type=int, default=200, help="activated samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = {}
    print("| env | rollouts with replays | mean rho q10 / q50 / q90 | clip fraction median |")
    print("| --- | --- | --- | --- |")
    for name in args.envs.split(","):
        if name not in ENVS:
            parser.error(f"unknown env {name!r}; choose from {list(ENVS)}")
        r = results[name] = replay_ratios(name, args.budget, args.seed)
        q = " / ".join(f"{x:.2f}" for x in np.quantile(r["rho"], [0.1, 0.5, 0.9]))
        print(f"| {name} | {len(r['rho'])} | {q} | {np.median(r['clip']):.3f} |", flush=True)
    return results


if __name__ == "__main__":
    main()
