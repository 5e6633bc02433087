"""FNAS search on FNAS-MNAS-v0: RecurrentPPO controller with UAC, AEB and AKP.

The controller (one LSTM layer of 100 units, PPO) picks an architecture of
MnasNet's search space token by token; the env trains it for a few epochs on
scikit-learn's bundled digits (offline), initialised from the Architecture
Knowledge Pool (AKP), measures its CPU latency, and rewards ACC x (LAT/T)^-0.07.
The uncertainty-aware critic (UAC) gives the reward of architectures it is sure
about without training them (at most half of each PPO batch), and the
architecture experience buffer (AEB) replays good past architectures in PPO
updates. The pool, the critic and the buffer are kept in the run folder (or
given with ``--pool``/``--critic``), so a later search, also on another task,
starts from them: ``--transfer-critic`` takes another task's critic, keeps its
weights and re-scales it to this task's rewards (the paper's Table 5 transfer).

    python examples/fnas_search.py --architectures 30 --seed 0 --run-dir runs/fnas-mnas
    python examples/fnas_search.py --workers 2 --run-dir runs/fnas-mnas-2  # on Ray
    tensorboard --logdir runs/fnas-mnas/tb
    python examples/fnas_search.py --dataset mnist --data-root data --download \
        --run-dir runs/mnist --pool runs/fnas-mnas/pool --transfer-critic runs/fnas-mnas/critic.pt

With ``--workers N`` the architectures are trained by N Ray workers at once
(``--ray-address`` joins a cluster; default: a local Ray on this machine's cores);
the controller, the critic and the record stay in this process.

Everything lands in ``--run-dir``: ``record.jsonl`` (every evaluated
architecture, append-only; rerunning with the same folder resumes the search),
``search.json`` (the search's settings and its reward's target T, reused by a
resumed search; ``fnas search --run-dir`` resumes it too, ``fnas export``,
``fnas train`` and ``fnas report`` read it),
``tb/`` (TensorBoard), ``pool/`` (the knowledge pool, unless ``--pool`` points
elsewhere), ``critic.pt`` (UAC's V and U), ``aeb/`` (the experience buffer) and
``latency.json`` (the latencies this search used, T included). ``--architectures`` counts trained
(activated) architectures; trusted ones come on top at no training cost.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

import fnas_env  # noqa: F401 - registers FNAS-MNAS-v0
from agents.fnas_ppo import make_fnas_controller
from agents.runner import (
    SearchProgress,
    fix_target,
    make_search_venv,
    open_buffer,
    open_critic,
)
from agents.search import run_search
from fnas_env.run import RunFolder, RunSettings
from wrappers.record import VecSearchRecord
from wrappers.uac import VecUncertaintyGate


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--architectures", type=int, default=30, help="architectures to train")
    p.add_argument("--seed", type=int, default=0, help="seed of controller, data split, init")
    p.add_argument(
        "--workers", type=int, default=1, help="architectures trained at once (>1: Ray workers)"
    )
    p.add_argument("--ray-address", default=None, help="Ray cluster to join (default: local)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Ray worker")
    p.add_argument("--run-dir", default="runs/fnas-mnas", help="folder for all outputs")
    p.add_argument(
        "--pool",
        default=None,
        help="knowledge pool folder (default <run-dir>/pool; 'none' trains from scratch)",
    )
    p.add_argument(
        "--critic",
        default=None,
        help="UAC critic file to start from and save to (default <run-dir>/critic.pt)",
    )
    p.add_argument(
        "--transfer-critic",
        default=None,
        help="critic.pt of a search on another task (dataset, device): start from its V and U, "
        "re-scaled to this task's rewards (used when the run has no critic.pt yet)",
    )
    p.add_argument("--uac", action=argparse.BooleanOptionalAction, default=True, help="UAC on")
    p.add_argument("--aeb", action=argparse.BooleanOptionalAction, default=True, help="AEB on")
    p.add_argument(
        "--uac-warmup",
        type=int,
        default=None,
        help="trained architectures the critic learns from before it trusts any "
        "(default: the gate's, 20)",
    )
    proxy = p.add_argument_group("proxy task (FNAS-MNAS-v0 arguments)")
    proxy.add_argument("--dataset", default="digits", help="digits, mnist, cifar10, ... or a path")
    proxy.add_argument("--data-root", default=None, help="folder of torchvision datasets")
    proxy.add_argument("--download", action="store_true", help="let torchvision download data")
    proxy.add_argument("--epochs", type=int, default=3, help="proxy-training epochs")
    proxy.add_argument("--batch-size", type=int, default=128, help="proxy-training batch size")
    proxy.add_argument(
        "--learning-rate", "--lr", type=float, default=0.1, help="peak learning rate (SGD)"
    )
    proxy.add_argument("--width", type=float, default=0.5, help="channel multiplier")
    proxy.add_argument("--resolution", type=int, default=None, help="input size (default native)")
    proxy.add_argument("--max-train", type=int, default=None, help="cap on training images")
    proxy.add_argument("--max-val", type=int, default=None, help="cap on validation images")
    proxy.add_argument(
        "--cost-model",
        default="lut",
        choices=["lut", "measured", "macs"],
        help="latency: per-layer lookup table (default), live measurement, or MACs",
    )
    proxy.add_argument(
        "--target",
        default="base",
        help="target latency T (number, or 'base': MobileNetV2's latency at the proxy config)",
    )
    proxy.add_argument("--constraint", default="soft", choices=["soft", "hard"])
    p.add_argument(
        "--progress-bar", action=argparse.BooleanOptionalAction, default=True, help="tqdm bar"
    )
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.architectures < 1:
        raise SystemExit("--architectures must be at least 1")
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    start = time.perf_counter()
    torch.set_num_threads(1)  # proxy networks and a 100-unit LSTM: one thread is fastest
    run = RunFolder(args.run_dir)
    no_pool = args.pool is not None and args.pool.lower() == "none"
    pool = None if no_pool else Path(args.pool or run.pool_dir)
    search_kwargs = dict(
        dataset=args.dataset,
        constraint=args.constraint,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        width=args.width,
        resolution=args.resolution,
        max_train=args.max_train,
        max_val=args.max_val,
        cost_model=args.cost_model,
        target=args.target if args.target == "base" else float(args.target),
    )
    # where it runs and what it keeps, not what it searches
    local_kwargs = dict(
        data_root=args.data_root,
        download=args.download,
        pool=None if pool is None else str(pool),
        seed=args.seed,
        latency_cache=str(run.latency_path),
    )

    # 1. one reward definition per search: the target T is fixed once and kept in the run
    #    folder (search.json), so a resumed search (and every worker) scores with the same T
    if run.has_settings():
        settings = run.settings()
        search_kwargs["target"] = settings.env_kwargs["target"]
    else:
        fixed = fix_target("FNAS-MNAS-v0", {**search_kwargs, **local_kwargs})
        search_kwargs["target"] = fixed["target"]
        settings = RunSettings("FNAS-MNAS-v0", search_kwargs, method="fnas", seed=args.seed)
    run.check_same_search(replace(settings, env_kwargs=search_kwargs))
    target = search_kwargs["target"]

    # 2. the environments: one token per step; the last token trains the architecture.
    #    Several workers: each env in a Ray actor, all sharing the pool folder
    venv = make_search_venv(
        "FNAS-MNAS-v0",
        {**search_kwargs, **local_kwargs},
        workers=args.workers,
        ray_address=args.ray_address,
        gpus_per_worker=args.gpus_per_worker,
        seed=args.seed,
    )
    # the search's one durable record, in this process (a rerun resumes from it)
    record = VecSearchRecord(venv, run.record_path, seed=args.seed)
    unit = venv.get_attr("evaluator", indices=[0])[0].unit

    # 3. UAC: the critic of an earlier run of this search, else one transferred from a
    #    search on another task (its weights, this task's reward scale), else new; the
    #    gate, in this process, skips training of the architectures it is sure about
    critic_path = Path(args.critic or run.critic_path)
    critic = open_critic(run, "mnas", args.seed, path=critic_path, transfer=args.transfer_critic)
    gate = {} if args.uac_warmup is None else {"warmup": args.uac_warmup}
    env = VecUncertaintyGate(record, critic, **gate) if args.uac else record

    # 4. AEB: a small prioritized replay of past architectures, kept between runs
    buffer = open_buffer(run) if args.aeb else None

    # 5. the controller: RecurrentPPO, one LSTM layer of 100 units, FNAS batch rules;
    #    a PPO update learns from 8 architectures however many workers sample them
    model = make_fnas_controller(
        env,
        uac=args.uac,
        aeb=args.aeb,
        experience_buffer=buffer,
        seed=args.seed,
        tensorboard_log=str(run.tb_dir),
        architectures_per_update=max(1, 8 // args.workers),
    )

    # 6. search: stop after --architectures trained architectures (trusted, cached and
    #    replayed samples are free); AEB's beta follows this budget
    run_search(
        model,
        budget=args.architectures,
        callback=SearchProgress(lambda: record.counters, args.architectures, args.progress_bar),
        tb_log_name="fnas",
    )

    if args.uac:
        critic.save(critic_path)
    if buffer is not None:
        buffer.save(run.aeb_dir)
    venv.close()
    counters = record.counters
    run.save_settings(replace(settings, budget=counters.activated))  # `fnas search` resumes it

    # 7. the best architecture found
    best = max(record.record.activated(), key=lambda e: e.reward)
    wall = time.perf_counter() - start
    print(
        f"architectures: {counters.sampled} sampled, {counters.activated} activated "
        f"({counters.failed} failed), {counters.trusted} trusted (rewarded by the critic), "
        f"{counters.cached} cached (repeats served from the record), "
        f"{counters.replayed} replayed"
    )
    print(f"best architecture: {best.arch}")
    print(f"  accuracy {best.accuracy:.2f}%", end="  ")
    print(f"latency {best.latency:.3f} {unit}  reward {best.reward:.3f}")
    print(f"  target latency T = {target:.3f} {unit} ({args.constraint})")
    per_arch = counters.cost / max(1, counters.activated)
    print(
        f"wall time {wall:.0f} s with {args.workers} worker(s); mean evaluation cost "
        f"{per_arch:.1f} s per architecture"
    )
    print(f"search record: {run.record_path}")
    print(f"tensorboard logs: {run.tb_dir}")
    if args.uac:
        print(f"UAC critic: {critic_path}")
    if buffer is not None:
        print(f"experience buffer: {run.aeb_dir} ({len(buffer)} entries)")
    if pool is not None:
        from fnas_env.knowledge_pool import KnowledgePool

        print(f"knowledge pool: {pool} ({len(KnowledgePool(pool))} blocks)")
    else:
        print("knowledge pool: off")
    print(f"next: fnas export {run.path}   fnas train {run.path}   fnas report {run.path}")


if __name__ == "__main__":
    main()
