"""Where the seconds of one FNAS-MNAS-v0 evaluation go: a profile by part.

Builds ``gym.make("FNAS-MNAS-v0", ...)`` (default settings unless overridden),
samples ``--architectures`` random ``mnas`` architectures and evaluates each with
the env's :class:`~fnas_env.evaluators.proxy.ProxyEvaluator`, timing these parts
of ``ProxyEvaluator._evaluate`` (wall time and the process's CPU time,
``time.process_time``, the closer figure on a shared machine):

- ``build``: building the network (``build_model``);
- ``pool_init``: knowledge-pool initialisation (``KnowledgePool.initialise``);
- ``train``: the SGD steps (``ProxyTrainer._fit``);
- ``bn_val``: BatchNorm recalibration and validation;
- ``latency``: the reward's cost (``LatencyModel.latency``);
- ``macs``: MAC and parameter count;
- ``pool_store``: storing the trained blocks (``KnowledgePool.store``);
- ``other``: the rest of the evaluation (moving to the device, bookkeeping).

The parts are timed by wrapping those functions, so the script profiles the code
as it is, whatever the evaluator does inside. It prints a table of the mean
seconds per part and the fraction of an evaluation that is not training (every
part but ``train``), and the load average before and after (the machine may be
shared). ``--jsonl`` writes one line per architecture.

``--bn-check N`` instead measures what the number of BatchNorm recalibration
images does to the proxy's ranking: ``N`` random architectures are trained once
with the default proxy (from scratch), then recalibrated on copies with each of
``--bn-sizes`` training images and validated; a ``--long-epochs`` training of
each (all images recalibrated) is the reference ranking. Prints Spearman's rank
correlation of each size's accuracies with the reference's and with the
all-images accuracies, the mean absolute accuracy change and the seconds.

``--target-spread N`` instead measures how repeatable the reward's target ``T``
(MobileNetV2's cost, ``target="base"``) is: ``N`` fresh processes each build the
env and print ``T``, for the ``measured`` cost model, for ``lut`` with a new
table in every process (``latency_table=None``), and for ``lut`` with one table
file shared by the processes (the default per-machine file; here a new
temporary one, so the first process builds it).

Usage::

    python benchmarks/eval_profile.py --architectures 10 --seed 0 --jsonl profile.jsonl
    python benchmarks/eval_profile.py --cost-model measured --pool none   # other settings
    python benchmarks/eval_profile.py --bn-check 20 --seed 0 --jsonl bn_check.jsonl
    python benchmarks/eval_profile.py --target-spread 10
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import fnas_env  # noqa: F401  (registers the ids)
import fnas_env.evaluators.proxy as proxy_module
from fnas_env.knowledge_pool import KnowledgePool
from fnas_env.latency import LatencyModel
from fnas_env.training.trainer import ProxyTrainer

PARTS = ("build", "pool_init", "train", "bn_val", "latency", "macs", "pool_store", "other")


class PartTimer:
    """Accumulates wall and CPU seconds per part; nested timed calls count once, outermost."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._depth = 0

    def reset(self) -> None:
        self.wall = {p: 0.0 for p in PARTS}
        self.cpu = {p: 0.0 for p in PARTS}

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:  # already inside a timed part: counted there
                return fn(*args, **kwargs)
            self._depth += 1
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[part] += time.perf_counter() - w
                self.cpu[part] += time.process_time() - c
                self._depth -= 1

        return timed


def _patch(stack: ExitStack, owner: Any, name: str, part: str, timer: PartTimer) -> None:
    """Replace ``owner.name`` by a timed wrapper for the life of ``stack`` (if it exists)."""
    original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if original is None:
        return
    setattr(owner, name, timer.wrap(part, original))
    stack.callback(setattr, owner, name, original)


def instrument(stack: ExitStack, timer: PartTimer) -> None:
    """Time the parts of an evaluation (see the module docstring)."""
    _patch(stack, proxy_module, "build_model", "build", timer)
    _patch(stack, KnowledgePool, "initialise", "pool_init", timer)
    _patch(stack, ProxyTrainer, "_fit", "train", timer)
    _patch(stack, ProxyTrainer, "_recalibrate_bn", "bn_val", timer)
    _patch(stack, ProxyTrainer, "_accuracy", "bn_val", timer)
    _patch(stack, LatencyModel, "latency", "latency", timer)
    _patch(stack, proxy_module, "count_macs_params", "macs", timer)
    _patch(stack, proxy_module, "count_cost", "macs", timer)
    _patch(stack, KnowledgePool, "store", "pool_store", timer)


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"seed": args.seed, "num_threads": args.num_threads}
    if args.cost_model is not None:
        kwargs["cost_model"] = args.cost_model
    if args.device is not None:
        kwargs["device"] = args.device
    if args.pool is not None:
        kwargs["pool"] = None if args.pool.lower() == "none" else args.pool
    if args.latency_cache is not None:
        kwargs["latency_cache"] = args.latency_cache
    if args.dataset is not None:
        kwargs["dataset"] = args.dataset
    return kwargs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--architectures", type=int, default=10, help="architectures to evaluate")
    p.add_argument("--seed", type=int, default=0, help="env seed and architecture sampling seed")
    p.add_argument("--jsonl", type=Path, default=None, help="one JSON line per architecture")
    p.add_argument("--num-threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--dataset", default=None, help="env dataset (default: the env's, digits)")
    p.add_argument("--cost-model", default=None, help="env cost_model (default: the env's)")
    p.add_argument("--device", default=None, help="env device (default: the env's)")
    p.add_argument(
        "--pool", default=None, help="env pool: a folder, or 'none' (default: the env's)"
    )
    p.add_argument("--latency-cache", default=None, help="env latency_cache (default: env's)")
    p.add_argument("--bn-check", type=int, default=0, help="run the recalibration check instead")
    p.add_argument("--bn-sizes", type=int, nargs="+", default=[2048, 1024, 512, 256])
    p.add_argument("--long-epochs", type=int, default=12, help="reference training epochs")
    p.add_argument("--target-spread", type=int, default=0, help="T in this many processes")
    args = p.parse_args(argv)
    if args.target_spread:
        return target_spread(args.target_spread)
    if args.bn_check:
        torch.set_num_threads(args.num_threads)
        return bn_check(args)
    if args.architectures < 1:
        p.error("--architectures must be at least 1")
    torch.set_num_threads(args.num_threads)
    load_before = os.getloadavg()
    kwargs = _env_kwargs(args)

    t0, c0 = time.perf_counter(), time.process_time()
    env = gym.make("FNAS-MNAS-v0", **kwargs)
    setup_wall, setup_cpu = time.perf_counter() - t0, time.process_time() - c0
    evaluator = env.unwrapped.evaluator
    space = env.unwrapped.search_space
    rng = np.random.default_rng(args.seed)
    timer = PartTimer()
    rows: list[dict[str, Any]] = []
    out = args.jsonl.open("w", encoding="utf-8") if args.jsonl is not None else None
    try:
        with ExitStack() as stack:
            instrument(stack, timer)
            for i in range(args.architectures):
                arch = space.sample(rng)
                timer.reset()
                w, c = time.perf_counter(), time.process_time()
                ev = evaluator.evaluate(arch)
                wall, cpu = time.perf_counter() - w, time.process_time() - c
                timer.wall["other"] = max(0.0, wall - sum(timer.wall.values()))
                timer.cpu["other"] = max(0.0, cpu - sum(timer.cpu.values()))
                row = {
                    "index": i,
                    "arch": space.to_string(arch),
                    "accuracy": ev.accuracy,
                    "latency": ev.latency,
                    "wall": wall,
                    "cpu": cpu,
                    "parts_wall": dict(timer.wall),
                    "parts_cpu": dict(timer.cpu),
                    "pool_hit_ratio": ev.extras.get("pool_hit_ratio"),
                    "loadavg": os.getloadavg()[0],
                }
                rows.append(row)
                if out is not None:
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                print(
                    f"[{i + 1}/{args.architectures}] acc {ev.accuracy:5.1f}%  "
                    f"lat {ev.latency:7.3f} {evaluator.unit}  wall {wall:5.2f} s  "
                    f"cpu {cpu:5.2f} s",
                    flush=True,
                )
    finally:
        if out is not None:
            out.close()
        described = repr(evaluator)
        env.close()
    load_after = os.getloadavg()

    def mean(key: str, part: str) -> float:
        return float(np.mean([r[key][part] for r in rows]))

    total_wall = float(np.mean([r["wall"] for r in rows]))
    total_cpu = float(np.mean([r["cpu"] for r in rows]))
    print()
    print(f"env: {kwargs}; evaluator: {described}")
    print(f"env creation (data, target T): {setup_wall:.2f} s wall, {setup_cpu:.2f} s CPU")
    print(
        f"load average before {load_before}, after {load_after}; torch threads {args.num_threads}"
    )
    print()
    print("| part | wall s | CPU s | share of CPU |\n| --- | --- | --- | --- |")
    for part in PARTS:
        wall_s, cpu_s = mean("parts_wall", part), mean("parts_cpu", part)
        print(f"| {part} | {wall_s:.3f} | {cpu_s:.3f} | {cpu_s / total_cpu:.1%} |")
    print(f"| **evaluation** | **{total_wall:.3f}** | **{total_cpu:.3f}** | 100% |")
    not_train_wall = 1.0 - mean("parts_wall", "train") / total_wall
    not_train_cpu = 1.0 - mean("parts_cpu", "train") / total_cpu
    print()
    print(
        f"not training: {not_train_cpu:.1%} of CPU time, {not_train_wall:.1%} of wall time "
        f"(mean of {len(rows)} architectures)"
    )
    return {
        "rows": rows,
        "mean_wall": total_wall,
        "mean_cpu": total_cpu,
        "not_train_cpu": not_train_cpu,
        "not_train_wall": not_train_wall,
        "load_before": load_before,
        "load_after": load_after,
    }


def bn_check(args: argparse.Namespace) -> dict[str, Any]:
    """Rank quality of the default proxy with fewer BatchNorm recalibration images."""
    import copy
    import dataclasses

    from scipy.stats import spearmanr

    from fnas_env.evaluators.proxy import proxy_model_config
    from fnas_env.models import build_model
    from fnas_env.spaces import get_space
    from fnas_env.training import TrainConfig, load_dataset

    load_before = os.getloadavg()
    data = load_dataset(args.dataset or "digits", seed=args.seed)
    config = proxy_model_config(data)
    proxy = TrainConfig(epochs=3, batch_size=128, learning_rate=0.1, seed=args.seed, num_threads=1)
    long = dataclasses.replace(proxy, epochs=args.long_epochs, bn_recalibration=10**9)
    space, rng = get_space("mnas"), np.random.default_rng(args.seed)
    sizes = list(args.bn_sizes)
    rows: list[dict[str, Any]] = []
    for i in range(args.bn_check):
        arch = space.sample(rng)
        torch.manual_seed(args.seed)
        model = build_model(arch, config)
        trainer = ProxyTrainer(dataclasses.replace(proxy, bn_recalibration=0))
        trainer.train(model, data)
        x_train, _, x_val, y_val = trainer._tensors(data)
        row: dict[str, Any] = {"arch": space.to_string(arch), "acc": {}, "seconds": {}}
        for n in sizes:
            trained = copy.deepcopy(model)
            sized = ProxyTrainer(dataclasses.replace(proxy, bn_recalibration=n))
            c = time.process_time()
            sized._recalibrate_bn(trained, x_train)
            row["seconds"][n] = time.process_time() - c
            row["acc"][n] = sized._accuracy(trained, x_val, y_val)
        torch.manual_seed(args.seed)
        row["reference"] = ProxyTrainer(long).train(build_model(arch, config), data).accuracy
        rows.append(row)
        print(
            f"[{i + 1}/{args.bn_check}] reference {row['reference']:.1f}%  "
            + "  ".join(f"{n}: {row['acc'][n]:.1f}%" for n in sizes),
            flush=True,
        )
        if args.jsonl is not None:
            with args.jsonl.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    reference = [r["reference"] for r in rows]
    full = [r["acc"][sizes[0]] for r in rows]
    print(f"\nload average before {load_before}, after {os.getloadavg()}")
    print(
        f"| recalibration images | Spearman vs {args.long_epochs}-epoch reference | "
        f"Spearman vs {sizes[0]} | mean abs change vs {sizes[0]} (points) | CPU s |"
    )
    print("| --- | --- | --- | --- | --- |")
    summary = {}
    for n in sizes:
        acc = [r["acc"][n] for r in rows]
        rho_ref = float(spearmanr(acc, reference).statistic)
        rho_full = float(spearmanr(acc, full).statistic)
        change = float(np.mean(np.abs(np.subtract(acc, full))))
        sec = float(np.mean([r["seconds"][n] for r in rows]))
        summary[n] = dict(rho_reference=rho_ref, rho_full=rho_full, change=change, seconds=sec)
        print(f"| {n} | {rho_ref:.3f} | {rho_full:.3f} | {change:.2f} | {sec:.3f} |")
    return {"rows": rows, "summary": summary}


_TARGET_CODE = """
import json, sys
import gymnasium as gym
import fnas_env
env = gym.make("FNAS-MNAS-v0", pool=None, **json.loads(sys.argv[1]))
print(repr(env.unwrapped.reward_config.target))
"""


def target_spread(n: int) -> dict[str, list[float]]:
    """T of FNAS-MNAS-v0 in ``n`` fresh processes per cost-model setting."""
    load_before = os.getloadavg()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        modes = {
            "measured (live)": {"cost_model": "measured"},
            "lut, new table per process": {"cost_model": "lut", "latency_table": None},
            "lut, one table file": {
                "cost_model": "lut",
                "latency_table": str(Path(folder) / "latency_lut.json"),
            },
        }
        for name, kwargs in modes.items():
            values = []
            for _ in range(n):
                proc = subprocess.run(
                    [sys.executable, "-c", _TARGET_CODE, json.dumps(kwargs)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                values.append(float(proc.stdout.strip().splitlines()[-1]))
            results[name] = values
            print(f"{name}: {[round(v, 4) for v in values]}", flush=True)
    print(f"\nload average before {load_before}, after {os.getloadavg()}")
    print("| T from | processes | mean ms | min-max ms | CV | distinct values |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, values in results.items():
        arr = np.asarray(values)
        print(
            f"| {name} | {len(arr)} | {arr.mean():.3f} | {arr.min():.3f}-{arr.max():.3f} | "
            f"{arr.std(ddof=1) / arr.mean():.1%} | {len(set(values))} |"
        )
    return results


if __name__ == "__main__":
    main()
