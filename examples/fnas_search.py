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
``search.json`` (the reward's target T, reused by a resumed search),
``tb/`` (TensorBoard), ``pool/`` (the knowledge pool, unless ``--pool`` points
elsewhere), ``critic.pt`` (UAC's V and U), ``aeb/`` (the experience buffer) and
``latency.json`` (the latencies this search used, T included). ``--architectures`` counts trained
(activated) architectures; trusted ones come on top at no training cost.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv
from tqdm import tqdm

import fnas_env  # noqa: F401 - registers FNAS-MNAS-v0
from agents.fnas_ppo import make_fnas_controller
from agents.search import run_search
from fnas_env.spaces import get_space
from wrappers.aeb import ExperienceBuffer
from wrappers.critic import UncertaintyCritic
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
        default=12,
        help="trained architectures the critic learns from before it trusts any",
    )
    proxy = p.add_argument_group("proxy task (FNAS-MNAS-v0 arguments)")
    proxy.add_argument("--dataset", default="digits", help="digits, mnist, cifar10, ... or a path")
    proxy.add_argument("--data-root", default=None, help="folder of torchvision datasets")
    proxy.add_argument("--download", action="store_true", help="let torchvision download data")
    proxy.add_argument("--epochs", type=int, default=3, help="proxy-training epochs")
    proxy.add_argument("--batch-size", type=int, default=128, help="proxy-training batch size")
    proxy.add_argument("--lr", type=float, default=0.1, help="peak learning rate (SGD)")
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


class ProxyLog(BaseCallback):
    """Progress bar per trained architecture; TensorBoard means of the proxy results.

    Architectures rewarded by the critic (``info["evaluated"]`` False) are not
    trained: they count in the bar's postfix, not in its progress.
    """

    def __init__(self, record: VecSearchRecord, total: int, show: bool = True):
        super().__init__()
        self.record = record
        self.bar = tqdm(total=total, unit="arch", disable=not show, dynamic_ncols=True)
        self.trusted = 0

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if not done or "arch" not in info:
                continue
            if not info["evaluated"]:
                self.trusted += 1
                continue
            self.logger.record_mean("proxy/accuracy", info["accuracy"])
            self.logger.record_mean("proxy/latency", info["latency"])
            self.logger.record_mean("proxy/reward", info["reward"])
            self.logger.record_mean("proxy/cost_s", info["cost"] or 0.0)
            if "pool_hit_ratio" in info:
                self.logger.record_mean("akp/hit_ratio", info["pool_hit_ratio"])
                self.logger.record_mean("akp/exact_ratio", info["pool_exact_ratio"])
                self.logger.record_mean("akp/lookup_ms", info["pool_lookup_ms"])
            best = self.record.counters.best_reward
            self.bar.set_postfix(
                acc=f"{info['accuracy']:.1f}", best=f"{best:.2f}", trusted=self.trusted
            )
            self.bar.update(1)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def main() -> None:
    args = parse_args()
    if args.architectures < 1:
        raise SystemExit("--architectures must be at least 1")
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    start = time.perf_counter()
    torch.set_num_threads(1)  # proxy networks and a 100-unit LSTM: one thread is fastest
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    no_pool = args.pool is not None and args.pool.lower() == "none"
    pool = None if no_pool else Path(args.pool or run_dir / "pool")
    record_path = run_dir / "record.jsonl"
    env_kwargs = dict(
        dataset=args.dataset,
        data_root=args.data_root,
        download=args.download,
        constraint=args.constraint,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        width=args.width,
        resolution=args.resolution,
        max_train=args.max_train,
        max_val=args.max_val,
        cost_model=args.cost_model,
        pool=None if pool is None else str(pool),
        seed=args.seed,
        latency_cache=str(run_dir / "latency.json"),
    )

    # 1. one reward definition per search: the target T is fixed once and kept in the run
    #    folder, so a resumed search (and every worker) scores with the same T
    settings_path = run_dir / "search.json"
    if settings_path.exists():
        target = json.loads(settings_path.read_text())["target"]
    else:
        target = args.target if args.target == "base" else float(args.target)
        if target == "base":  # MobileNetV2's cost under this proxy config
            probe = gym.make("FNAS-MNAS-v0", **env_kwargs, target="base")
            target = probe.unwrapped.reward_config.target
            probe.close()
        settings_path.write_text(json.dumps({**vars(args), "target": target}, indent=1))
    env_kwargs["target"] = target

    # 2. the environments: one token per step; the last token trains the architecture.
    #    Several workers: each env in a Ray actor, all sharing the pool folder
    if args.workers > 1:
        from fnas_env.ray_vec_env import make_ray_vec_env

        venv = make_ray_vec_env(
            "FNAS-MNAS-v0",
            n_envs=args.workers,
            env_kwargs=env_kwargs,
            address=args.ray_address,
            num_gpus=args.gpus_per_worker,
        )
    else:
        venv = DummyVecEnv([lambda: Monitor(gym.make("FNAS-MNAS-v0", **env_kwargs))])
    # the search's one durable record, in this process (a rerun resumes from it)
    record = VecSearchRecord(venv, record_path, seed=args.seed)
    unit = venv.get_attr("evaluator", indices=[0])[0].unit
    space = get_space("mnas")

    # 3. UAC: a critic from an earlier search (file), else one transferred from a search
    #    on another task (its weights, this task's reward scale), else rebuilt from this
    #    run's record (a killed search loses nothing), else new; the gate, in this
    #    process, skips training of the architectures it is sure about
    critic_path = Path(args.critic or run_dir / "critic.pt")
    if critic_path.exists():
        critic = UncertaintyCritic.load(critic_path)
    elif args.transfer_critic:
        critic = UncertaintyCritic.load(args.transfer_critic)
        critic.clear_replay()  # forget the old task's rewards, re-scale V on this task's
        if record_path.exists():
            critic.fit_record(record_path)
    else:
        critic = UncertaintyCritic(space.embedding_dim, seed=args.seed)
        if record_path.exists():
            critic.fit_record(record_path)
    env = VecUncertaintyGate(record, critic, warmup=args.uac_warmup) if args.uac else record

    # 4. AEB: a small prioritized replay of past architectures, kept between runs
    aeb_path = run_dir / "aeb"
    buffer = None
    if args.aeb:
        has_buffer = (aeb_path / "buffer.json").exists()
        buffer = ExperienceBuffer.load(aeb_path) if has_buffer else ExperienceBuffer()

    # 5. the controller: RecurrentPPO, one LSTM layer of 100 units, FNAS batch rules;
    #    a PPO update learns from 8 architectures however many workers sample them
    model = make_fnas_controller(
        env,
        uac=args.uac,
        aeb=args.aeb,
        experience_buffer=buffer,
        seed=args.seed,
        tensorboard_log=str(run_dir / "tb"),
        architectures_per_update=max(1, 8 // args.workers),
    )

    # 6. search: stop after --architectures trained architectures (trusted, cached and
    #    replayed samples are free); AEB's beta follows this budget
    run_search(
        model,
        budget=args.architectures,
        callback=ProxyLog(record, args.architectures, args.progress_bar),
        tb_log_name="fnas",
    )

    if args.uac:
        critic.save(critic_path)
    if buffer is not None:
        buffer.save(aeb_path)
    venv.close()

    # 7. the best architecture found
    best = max(record.record.evaluated(), key=lambda e: e.reward)
    wall = time.perf_counter() - start
    counters = record.counters
    print(
        f"architectures: {counters.sampled} sampled, {counters.activated} trained "
        f"({counters.failed} failed), {counters.surrogate} rewarded by the critic, "
        f"{counters.cached} repeats served from the record, {counters.replayed} replayed"
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
    print(f"search record: {record_path}")
    print(f"tensorboard logs: {run_dir / 'tb'}")
    if args.uac:
        print(f"UAC critic: {critic_path}")
    if buffer is not None:
        print(f"experience buffer: {aeb_path} ({len(buffer)} entries)")
    if pool is not None:
        from fnas_env.knowledge_pool import KnowledgePool

        print(f"knowledge pool: {pool} ({len(KnowledgePool(pool))} blocks)")
    else:
        print("knowledge pool: off")


if __name__ == "__main__":
    main()
