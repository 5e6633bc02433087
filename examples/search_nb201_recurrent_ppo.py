"""Search NAS-Bench-201 with the MnasNet controller: RecurrentPPO, one LSTM layer of 100 units.

The controller picks the cell's six operations one token per step; the env looks
the finished cell up in NAS-Bench-201 (validation accuracy is the reward) and
records it. The search stops after ``--total-architectures`` activated samples.

    python examples/search_nb201_recurrent_ppo.py --total-architectures 300 --seed 0
    tensorboard --logdir runs/
"""

from __future__ import annotations

import argparse
import os

import gymnasium as gym
import torch

import fnas_env  # noqa: F401 - registers FNAS-NB201-v0
from agents.controller import make_controller
from agents.search import run_search


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--total-architectures",
        type=int,
        default=300,
        help="activated samples (architectures looked up) to spend",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the controller and env")
    parser.add_argument(
        "--logdir",
        default="runs/nb201-recurrent-ppo",
        help="folder for TensorBoard logs and the search record",
    )
    parser.add_argument(
        "--dataset",
        default="cifar10",
        choices=["cifar10", "cifar100", "ImageNet16-120"],
        help="NAS-Bench-201 dataset",
    )
    parser.add_argument(
        "--benchmark-dir", default=None, help="benchmark data folder (default: $FNAS_BENCHMARK_DIR)"
    )
    parser.add_argument(
        "--progress-bar",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show SB3's progress bar",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.total_architectures < 1:
        raise SystemExit("--total-architectures must be at least 1")
    torch.set_num_threads(1)  # a 100-unit LSTM is fastest on one thread
    record_path = os.path.join(args.logdir, "record.jsonl")

    # 1. the environment: one token per step, one architecture per episode
    env = gym.make(
        "FNAS-NB201-v0",
        dataset=args.dataset,
        benchmark_dir=args.benchmark_dir,
        record_path=record_path,
    )

    # 2. the controller: RecurrentPPO, LSTM(100), a few architectures per update
    model = make_controller(env, seed=args.seed, tensorboard_log=args.logdir)

    # 3. search until --total-architectures are really evaluated (repeats are served free)
    run_search(
        model,
        budget=args.total_architectures,
        progress_bar=args.progress_bar,
        tb_log_name="recurrent_ppo",
    )

    # 4. the best architecture found
    record = env.unwrapped.record
    best = max(record.evaluated(), key=lambda e: e.reward)
    print(f"activated samples: {record.counters.activated}")
    print(f"best architecture: {best.arch}")
    print(f"validation accuracy: {best.accuracy:.2f}")
    print(f"test accuracy: {best.extras['test_accuracy']:.2f}")
    print(f"search record: {record_path}")
    print(f"tensorboard logs: {args.logdir}")


if __name__ == "__main__":
    main()
