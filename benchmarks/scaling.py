"""Wall-clock scaling of one search over Ray workers (real training, and a simulated cluster).

Two questions:

- ``--env mnas``: how much faster does the same FNAS-MNAS-v0 search (real proxy
  training on digits, method ``mnas``: every architecture trained) run with 2 Ray
  workers than with 1 on this machine?
- ``--env anb``: past this machine, on FNAS-ANB-v0 where every evaluation waits for
  its benchmark training time (Accel-NASBench's ``train_time`` x ``--time-scale``),
  on a local Ray with 8 logical workers: the speed-up at 8 workers against 1, and
  whether the larger parallel batch wastes samples (activated samples to the
  1-worker runs' median final best).

Every run is ``--updates`` PPO updates of ``--batch`` architectures, the same seeds.
By default each worker runs one env and the batch is split over them; with
``--envs N`` every run has ``N`` envs that share the workers (list scheduling, see
:class:`~fnas_env.ray_vec_env.RayVecEnv`), so with ``--envs`` equal to ``--batch``
the search is the same at every worker count and only the wall time changes. One
JSON line per run (``--jsonl``); ``--table`` prints the report from those lines,
one table per env, batch and ``--envs``.

    python benchmarks/scaling.py --env mnas --workers 1 2 --seeds 3000 3001 --updates 4 \\
        --jsonl benchmarks/results/records/scaling.jsonl
    python benchmarks/scaling.py --env anb --workers 8 1 --seeds 3000 3001 3002 3003 3004 \\
        --updates 7 --batch 32 --envs 32 --jsonl benchmarks/results/records/scaling.jsonl
    python benchmarks/scaling.py --table benchmarks/results/records/scaling.jsonl
    python benchmarks/scaling.py --bound --batch 32 --workers 8   # list-scheduling bound
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from benchmarks.envs import env_spec
from fnas_env import threads

#: The envs this benchmark runs (names of :data:`benchmarks.envs.ENVS`).
ENV_NAMES = ("anb", "mnas")


class SimulatedTrainingTime(gym.Wrapper):
    """Sleep for an evaluation's ``cost`` x ``scale`` seconds: a table's training time as
    wall time, so a tabular env behaves like a cluster that trains every candidate."""

    def __init__(self, env: gym.Env, scale: float) -> None:
        super().__init__(env)
        self.scale = float(scale)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated and info.get("activated"):
            time.sleep(max(0.0, float(info.get("cost") or 0.0)) * self.scale)
        return obs, reward, terminated, truncated, info


def _wrapper(scale: float | None):
    if not scale:
        return None
    return lambda env: SimulatedTrainingTime(env, scale)


def run_one(args: argparse.Namespace, workers: int, seed: int) -> dict[str, Any]:
    """One search of ``args.env`` on ``workers`` Ray workers: its JSON line."""
    from benchmarks.parallel import build_search

    env_id, env_kwargs = env_spec(args.env)
    if args.env == "mnas":
        env_kwargs.update(pool=None, seed=seed)  # the same work at any worker count
        if args.target is not None:
            env_kwargs["target"] = args.target
    with threads.torch_threads(1):
        search = build_search(
            env_id,
            env_kwargs,
            args.method,
            workers,
            seed,
            args.batch,
            env_wrapper=_wrapper(args.time_scale if args.env == "anb" else None),
            envs=args.envs,
        )
        wall = search.run_updates(args.updates)
    entries = search.record.record.entries
    activated = [e for e in entries if e.kind == "activated"]
    return {
        "bench": "scaling",
        "env": args.env,
        "method": args.method,
        "workers": workers,
        "seed": seed,
        "updates": args.updates,
        "batch": args.batch,
        "envs": args.envs,
        "time_scale": args.time_scale if args.env == "anb" else None,
        "wall_s": wall,
        "activated": len(activated),
        "cached": sum(e.kind == "cached" for e in entries),
        "eval_seconds": float(sum(e.cost or 0.0 for e in activated)),
        "rewards": [e.reward for e in activated],
        "final_best": max((e.reward for e in activated), default=math.nan),
        "load_avg": os.getloadavg()[0],
    }


def activated_to(rewards: list[float], target: float) -> float:
    """Activated samples until a reward >= target (inf if never)."""
    for i, r in enumerate(rewards, start=1):
        if r >= target:
            return float(i)
    return math.inf


def anb_train_times(n: int = 8000, seed: int = 0) -> np.ndarray:
    """Accel-NASBench's training time (s, the surrogate's) of ``n`` random architectures."""
    from fnas_env.evaluators.anb import AnbSurrogateEvaluator
    from fnas_env.spaces import get_space

    space, rng = get_space("anb"), np.random.default_rng(seed)
    evaluations = AnbSurrogateEvaluator().evaluate_many(space.sample(rng) for _ in range(n))
    return np.asarray([e.cost for e in evaluations])


def list_schedule_speedup(
    times: np.ndarray, batch: int, workers: int, draws: int = 4000, seed: int = 0
) -> float:
    """Speed-up bound of ``workers`` over one worker for steps of ``batch`` evaluations
    drawn from ``times``, each started on the first worker to come free:
    E[sum] / E[makespan] (the driver's own time not counted)."""
    rng = np.random.default_rng(seed)
    total = makespan = 0.0
    for _ in range(draws):
        draw = rng.choice(times, batch)
        busy = np.zeros(workers)
        for t in draw:
            busy[busy.argmin()] += t
        total += draw.sum()
        makespan += busy.max()
    return total / makespan


def table(path: str) -> str:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["env"], r["method"], r["updates"], r["batch"], r.get("envs") or 0)
        groups.setdefault(key, []).append(r)
    out = []
    for (env, method, updates, batch, envs), runs in sorted(groups.items()):
        by_workers: dict[int, list[dict]] = {}
        for r in runs:
            by_workers.setdefault(r["workers"], []).append(r)
        base_w = min(by_workers)
        base = {r["seed"]: r for r in by_workers[base_w]}
        lower = sorted(r["final_best"] for r in by_workers[base_w])[
            (len(by_workers[base_w]) - 1) // 2
        ]
        sharing = f"{envs} envs share the workers" if envs else "one env per worker"
        out.append(
            f"#### {env} (method {method}, {updates} updates of {batch} architectures, {sharing})"
        )
        out.append("")
        out.append(
            "| workers | seeds | wall s (median) | speed-up vs 1 worker, per seed (median "
            "[min, max]) | activated | activated to the 1-worker lower median final best "
            f"({lower:.2f}): median [min, max] | load |"
        )
        out.append("| --- | --- | --- | --- | --- | --- | --- |")
        for w in sorted(by_workers):
            rs = by_workers[w]
            speed = [base[r["seed"]]["wall_s"] / r["wall_s"] for r in rs if r["seed"] in base]
            reach = [activated_to(r["rewards"], lower) for r in rs]
            finite = [x for x in reach if math.isfinite(x)]
            reach_txt = (
                f"{np.median(reach):.0f} [{min(reach):.0f}, {max(reach):.0f}]"
                f" ({len(finite)}/{len(reach)} reached)"
            )
            out.append(
                f"| {w} | {len(rs)} | {np.median([r['wall_s'] for r in rs]):.1f} | "
                f"{np.median(speed):.2f}x [{min(speed):.2f}, {max(speed):.2f}] | "
                f"{np.median([r['activated'] for r in rs]):.0f} | {reach_txt} | "
                f"{np.mean([r['load_avg'] for r in rs]):.1f} |"
            )
        out.append("")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", choices=ENV_NAMES, default="mnas")
    p.add_argument("--method", default="mnas", choices=["mnas", "uac", "fnas"])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seeds", type=int, nargs="+", default=[3000])
    p.add_argument("--updates", type=int, default=4, help="PPO updates per search")
    p.add_argument("--batch", type=int, default=8, help="architectures per PPO update")
    p.add_argument(
        "--envs",
        type=int,
        default=None,
        help="envs sharing the workers (default: one env per worker)",
    )
    p.add_argument("--time-scale", type=float, default=5e-4, help="ANB: seconds per train_time s")
    p.add_argument("--target", type=float, default=None, help="MNAS: fixed latency target T")
    p.add_argument("--ray-cpus", type=int, default=None, help="logical CPUs of the local Ray")
    p.add_argument("--jsonl", default=None, help="append one JSON line per run")
    p.add_argument("--table", default=None, help="print the report of a JSON-lines file")
    p.add_argument(
        "--bound",
        action="store_true",
        help="ANB: print the speed-up bound of --batch evaluations per step on --workers",
    )
    args = p.parse_args()
    if args.table:
        print(table(args.table))
        return
    if args.bound:
        times = anb_train_times()
        print(f"ANB training time: mean {times.mean():.0f} s, CV {times.std() / times.mean():.2f}")
        for workers in args.workers:
            bound = list_schedule_speedup(times, args.batch, workers)
            print(f"{args.batch} evaluations per step on {workers} workers: <= {bound:.2f}x")
        return
    from benchmarks.parallel import append_jsonl, start_ray

    cpus = args.ray_cpus or (max(args.workers) if args.env == "anb" else os.cpu_count())
    start_ray(cpus, __name__)
    for seed in args.seeds:
        for workers in args.workers:
            row = run_one(args, workers, seed)
            print(
                f"{args.env} workers={workers} seed={seed}: wall {row['wall_s']:.1f} s, "
                f"{row['activated']} activated, best {row['final_best']:.2f}",
                flush=True,
            )
            append_jsonl(args.jsonl, row)


if __name__ == "__main__":
    main()
