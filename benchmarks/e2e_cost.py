"""The paper's end-to-end cost table (its Tables 4 and 5) on real proxy training.

On FNAS-MNAS-v0 with digits, every method runs the same number of PPO updates
(``--updates`` of ``--batch`` architectures: equal PPO samples) on 2 Ray workers:

- ``mnas``: every sampled architecture trained for E epochs (from scratch);
- ``fnas``: UAC + AEB, E epochs, from scratch;
- ``fnas-akp``: UAC + AEB with the knowledge pool, E/2 epochs;
- ``fnas-fast-akp``, ``scratch-fast``, ``transfer-fast`` (beyond the paper, on
  request with ``--runs``): those runs with 75% of each batch trusted instead of 50%;
- ``fnas-screen-akp`` (on request): ``fnas-akp`` with ``fnas search --method
  fnas-screen``'s gate and controller (:data:`agents.methods.SCREEN_GATE`,
  ``SCREEN_CONTROLLER``: the critic screens the proposals and the incumbents'
  neighbours, up to 75% of a batch trusted); ``fnas-screen-keep-akp``: the same whose
  controller keeps the episodes of proposals replaced by a neighbour outside the trusted
  quota (``keep_replaced=True``);
- ``scratch-quick``, ``transfer-quick`` (on request): the critic trusted after 5
  evaluations with an 8-sample quality check instead of 20 and 20;
- ``scratch-screen-keep``, ``transfer-screen-keep`` (on request): ``scratch`` and
  ``transfer`` with ``fnas-screen-keep-akp``'s gate and controller;
- transfer (Table 5): ``source`` (``fnas-akp`` on digits 0-4) leaves its critic, pool
  and experience buffer; ``transfer`` (``fnas-akp`` on digits 5-9) starts from them;
  ``scratch`` is the same search on digits 5-9 from nothing.

Per run: total evaluation seconds (the record's ``cost`` of every trained
architecture), wall seconds, activated samples, and the accuracy of the top-5
architectures by recorded reward, each re-trained from scratch for 4 x E epochs
(validation split of the same task). One JSON line per run (``--jsonl``);
``--table`` prints the report.

    python benchmarks/e2e_cost.py --seeds 4000 4001 4002 \\
        --jsonl benchmarks/results/records/e2e_cost.jsonl --run-dir runs/e2e
    python benchmarks/e2e_cost.py --table benchmarks/results/records/e2e_cost.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

RUNS = (
    "mnas",
    "fnas",
    "fnas-akp",
    "fnas-fast-akp",
    "fnas-screen-akp",
    "fnas-screen-keep-akp",
    "source",
    "scratch",
    "transfer",
    "scratch-fast",
    "transfer-fast",
    "scratch-quick",
    "transfer-quick",
    "scratch-screen-keep",
    "transfer-screen-keep",
)
FAST_RUNS = ("fnas-fast-akp", "scratch-fast", "transfer-fast")
#: ``-quick``: the critic may be trusted after 5 evaluations of this search, its quality
#: checked over the last 8 (the defaults: 20 and 20), so a transferred critic, whose
#: replay starts empty on the new task, is trusted sooner
QUICK_RUNS = ("scratch-quick", "transfer-quick")
QUICK_GATE = {"warmup": 5, "quality_window": 8}
#: the runs made by default (the ``-fast`` ones, beyond the paper, on request)
DEFAULT_RUNS = ("mnas", "fnas", "fnas-akp", "source", "scratch", "transfer")
#: ``fnas-fast-akp``: the gate trusts 90% of the architectures and a batch may hold 75%
#: trusted ones (``benchmarks/methods.py``'s FAST preset)
FAST_GATE, FAST_CONTROLLER = {"trusted_fraction": 0.9}, {"max_trusted_fraction": 0.75}
SCREEN_RUNS = (
    "fnas-screen-akp",
    "fnas-screen-keep-akp",
    "scratch-screen-keep",
    "transfer-screen-keep",
)
ALL_DIGITS = None
FIRST, SECOND = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]


def retrain(arch: str, classes: list[int] | None, epochs: int, seed: int) -> float:
    """Validation accuracy of ``arch`` trained from scratch for ``epochs`` (digits)."""
    import torch

    from fnas_env.evaluators.proxy import ProxyEvaluator
    from fnas_env.latency import LatencyModel
    from fnas_env.spaces import get_space
    from fnas_env.training import TrainConfig

    torch.set_num_threads(1)
    evaluator = ProxyEvaluator(
        "mnas",
        "digits",
        train_config=TrainConfig(epochs=epochs, batch_size=128, learning_rate=0.1, num_threads=1),
        latency_model=LatencyModel("macs"),
        pool=None,
        seed=seed,
        data_kwargs={"classes": classes},
        device="cpu",
    )
    return float(evaluator.evaluate(get_space("mnas").from_string(arch)).accuracy)


def env_kwargs_for(run: str, args: argparse.Namespace, seed: int, run_dir: Path) -> dict:
    akp = run != "mnas" and run != "fnas"
    second = tuple(r for r in RUNS if r.startswith(("scratch", "transfer")))
    classes = FIRST if run == "source" else SECOND if run in second else ALL_DIGITS
    return dict(
        dataset="digits",
        classes=classes,
        epochs=args.half_epochs if akp else args.epochs,
        pool=str(run_dir / "pool") if akp else None,
        seed=seed,
        latency_cache=str(run_dir / "latency.json"),
    )


def run_one(run: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    import gymnasium as gym
    import ray
    import torch

    import fnas_env  # noqa: F401 - registers the ids
    from agents.experience import ExperienceBuffer
    from agents.methods import SCREEN_CONTROLLER, SCREEN_GATE, SCREEN_KEEP_CONTROLLER
    from benchmarks.parallel import build_search
    from wrappers.critic import UncertaintyCritic

    torch.set_num_threads(1)
    root = Path(args.run_dir) / f"seed{seed}"
    run_dir = root / run
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    kwargs = env_kwargs_for(run, args, seed, run_dir)
    critic = buffer = None
    if run.startswith("transfer"):  # start from the source search's critic, pool and buffer
        source = root / "source"
        shutil.copytree(source / "pool", run_dir / "pool")
        critic = UncertaintyCritic.load(source / "critic.pt")
        critic.clear_replay()  # keep the weights, re-scale V on this task's rewards
        buffer = ExperienceBuffer.load(source / "aeb")
    # one reward definition for every worker: T measured once, here
    probe = gym.make("FNAS-MNAS-v0", **{**kwargs, "pool": None, "target": "base"})
    kwargs["target"] = probe.unwrapped.reward_config.target
    probe.close()
    method = "mnas" if run == "mnas" else "fnas"
    gate_kwargs = controller_kwargs = None
    if run in FAST_RUNS:
        gate_kwargs, controller_kwargs = FAST_GATE, FAST_CONTROLLER
    elif run in SCREEN_RUNS:
        gate_kwargs = dict(SCREEN_GATE)
        controller_kwargs = dict(SCREEN_KEEP_CONTROLLER if "keep" in run else SCREEN_CONTROLLER)
    elif run in QUICK_RUNS:
        gate_kwargs = QUICK_GATE
    search = build_search(
        "FNAS-MNAS-v0",
        kwargs,
        method,
        args.workers,
        seed,
        args.batch,
        record_path=run_dir / "record.jsonl",
        critic=critic,
        buffer=buffer,
        gate_kwargs=gate_kwargs,
        controller_kwargs=controller_kwargs,
    )
    wall = search.run_updates(args.updates)
    if search.critic is not None:
        search.critic.save(run_dir / "critic.pt")
    if search.buffer is not None:
        search.buffer.save(run_dir / "aeb")
    entries = search.record.record.entries
    succeeded = [e for e in entries if e.kind == "activated" and not e.failed]
    top: list[str] = []
    for e in sorted(succeeded, key=lambda e: e.reward, reverse=True):
        if e.arch not in top:
            top.append(e.arch)
        if len(top) == args.top:
            break
    retrain_remote = ray.remote(num_cpus=1)(retrain)
    accuracies = ray.get(
        [
            retrain_remote.remote(a, kwargs["classes"], args.retrain_factor * args.epochs, seed)
            for a in top
        ]
    )
    counters = search.model.fnas_counters
    return {
        "bench": "e2e_cost",
        "run": run,
        "seed": seed,
        "updates": args.updates,
        "batch": args.batch,
        "workers": args.workers,
        "epochs": kwargs["epochs"],
        "classes": kwargs["classes"],
        "target": kwargs["target"],
        "wall_s": wall,
        "eval_seconds": float(sum(e.cost or 0.0 for e in succeeded)),
        "activated": sum(e.kind == "activated" for e in entries),
        "aside": counters.aside,
        "cached": sum(e.kind == "cached" for e in entries),
        "trusted": counters.trusted,
        "replayed": counters.replayed,
        "ppo_samples": counters.ppo_samples,
        "best_reward": max((e.reward for e in succeeded), default=math.nan),
        "top": top,
        "top_proxy_accuracy": [next(e.accuracy for e in succeeded if e.arch == a) for a in top],
        "top_retrained_accuracy": accuracies,
        "pool_hit_ratio": float(
            np.mean([e.extras.get("pool_hit_ratio", 0.0) for e in succeeded] or [math.nan])
        ),
        "load_avg": os.getloadavg()[0],
    }


def _ratio(a: list[float], b: list[float]) -> str:
    r = [x / y for x, y in zip(a, b)]
    return f"{np.median(r):.2f}x [{min(r):.2f}, {max(r):.2f}]"


def table(path: str) -> str:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    by: dict[str, dict[int, dict]] = {}
    for r in rows:
        by.setdefault(r["run"], {})[r["seed"]] = r
    first = rows[0]
    out = [
        f"{first['updates']} PPO updates of {first['batch']} architectures "
        f"({first['updates'] * first['batch']} PPO samples) per run, {first['workers']} Ray "
        "workers; top-5 re-trained from scratch for 4 x E epochs.",
        "",
        "| run | task | E | seeds | activated | trusted | replayed | eval s (mean) | wall s "
        "(mean) | eval-time saving vs mnas / scratch, per seed (median [min, max]) | "
        "training-epoch saving (activated x E), per seed | top-5 re-trained acc % (mean of "
        "seed means; seed range) | pool hit ratio | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in RUNS:
        if run not in by:
            continue
        rs = by[run]
        seeds = sorted(rs)
        ref_name = run.replace("transfer", "scratch") if run.startswith("transfer") else "mnas"
        ref = by.get(ref_name, {})
        common = [s for s in seeds if s in ref]
        saving = (
            _ratio(
                [ref[s]["eval_seconds"] for s in common], [rs[s]["eval_seconds"] for s in common]
            )
            if common and run != "mnas" and not run.startswith(("scratch", "source"))
            else "-"
        )
        epochs_saving = (
            _ratio(
                [ref[s]["activated"] * ref[s]["epochs"] for s in common],
                [rs[s]["activated"] * rs[s]["epochs"] for s in common],
            )
            if common and run != "mnas" and not run.startswith(("scratch", "source"))
            else "-"
        )
        means = [float(np.mean(rs[s]["top_retrained_accuracy"])) for s in seeds]
        task = (
            "all"
            if rs[seeds[0]]["classes"] is None
            else "-".join(str(c) for c in rs[seeds[0]]["classes"][::4])
        )
        out.append(
            f"| {run} | digits {task} | {rs[seeds[0]]['epochs']} | {len(seeds)} | "
            f"{np.mean([rs[s]['activated'] for s in seeds]):.1f} | "
            f"{np.mean([rs[s]['trusted'] for s in seeds]):.1f} | "
            f"{np.mean([rs[s]['replayed'] for s in seeds]):.1f} | "
            f"{np.mean([rs[s]['eval_seconds'] for s in seeds]):.0f} | "
            f"{np.mean([rs[s]['wall_s'] for s in seeds]):.0f} | {saving} | {epochs_saving} | "
            f"{np.mean(means):.2f} ({min(means):.2f}-{max(means):.2f}) | "
            f"{np.nanmean([rs[s]['pool_hit_ratio'] for s in seeds]):.2f} | "
            f"{np.mean([rs[s]['load_avg'] for s in seeds]):.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), choices=RUNS)
    p.add_argument("--seeds", type=int, nargs="+", default=[4000])
    p.add_argument("--updates", type=int, default=20, help="PPO updates per search")
    p.add_argument("--batch", type=int, default=8, help="architectures per PPO update")
    p.add_argument("--workers", type=int, default=2, help="Ray workers")
    p.add_argument("--epochs", type=int, default=4, help="proxy epochs E")
    p.add_argument("--half-epochs", type=int, default=2, help="proxy epochs with AKP")
    p.add_argument("--top", type=int, default=5, help="architectures re-trained per run")
    p.add_argument("--retrain-factor", type=int, default=4, help="re-training epochs / E")
    p.add_argument("--run-dir", default="runs/e2e", help="records, critics, pools")
    p.add_argument("--jsonl", default=None, help="append one JSON line per run")
    p.add_argument("--table", default=None, help="print the report of a JSON-lines file")
    args = p.parse_args()
    if args.table:
        print(table(args.table))
        return
    from benchmarks.parallel import append_jsonl, start_ray

    start_ray(args.workers, __name__)
    for seed in args.seeds:
        for run in args.runs:
            row = run_one(run, args, seed)
            print(
                f"{run} seed={seed}: {row['activated']} activated, eval "
                f"{row['eval_seconds']:.0f} s, wall {row['wall_s']:.0f} s, top-5 re-trained "
                f"{np.mean(row['top_retrained_accuracy']):.2f}%",
                flush=True,
            )
            append_jsonl(args.jsonl, row)


if __name__ == "__main__":
    main()
