"""Search NAS-Bench-201 with MaskablePPO, token by token with action masks.

The env's ``action_masks()`` allows exactly one token per choice of the current
decision, so MaskablePPO never spends probability on aliases of a choice.
(MaskablePPO has no recurrent policy: the MLP sees the previous token and the
position in the observation.)

    python examples/search_nb201_maskable_ppo.py --total-architectures 300 --seed 0
    tensorboard --logdir runs/
"""

from __future__ import annotations

import argparse
import os

import gymnasium as gym
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import fnas_env  # noqa: F401 - registers FNAS-NB201-v0
from agents.controller import ScaleReward
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
        default="runs/nb201-maskable-ppo",
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
    torch.set_num_threads(1)  # a small policy network is fastest on one thread
    record_path = os.path.join(args.logdir, "record.jsonl")

    # 1. the environment: one token per step; action_masks() marks the valid tokens
    env = gym.make(
        "FNAS-NB201-v0",
        dataset=args.dataset,
        benchmark_dir=args.benchmark_dir,
        record_path=record_path,
    )
    horizon = env.unwrapped.horizon  # T tokens per architecture
    # rewards (accuracy in percent) as fractions for training; the record keeps percent
    venv = ScaleReward(DummyVecEnv([lambda: Monitor(env)]), scale=0.01)

    # 2. the agent: MaskablePPO, 8 architectures per update, no discount
    model = MaskablePPO(
        "MlpPolicy",
        venv,
        n_steps=8 * horizon,
        batch_size=8 * horizon,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=1.0,
        gae_lambda=1.0,
        ent_coef=1e-4,
        seed=args.seed,
        tensorboard_log=args.logdir,
    )

    # 3. search until --total-architectures are really evaluated (repeats are served free)
    run_search(
        model,
        budget=args.total_architectures,
        progress_bar=args.progress_bar,
        tb_log_name="maskable_ppo",
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
