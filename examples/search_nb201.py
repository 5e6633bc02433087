"""Search NAS-Bench-201 with any SB3 / sb3-contrib algorithm.

Each algorithm samples cells of NAS-Bench-201 (six operations), the env looks
each finished cell up in the table (validation accuracy is the reward) and
records it; the search stops after ``--total-architectures`` activated samples
(repeats are served from the record for free).

============  ===========================  =========================================
--algo        algorithm                    env mode
============  ===========================  =========================================
ppo_lstm      RecurrentPPO, LSTM(100)      one token per step (the MnasNet
              (``agents.make_controller``)  controller; the default)
ppo           PPO                          one-shot: one MultiDiscrete action per cell
a2c           A2C                          one token per step (``Discrete(5)``)
dqn           DQN                          one token per step (``Discrete(5)``)
maskable_ppo  MaskablePPO                  one token per step, ``action_masks()``
============  ===========================  =========================================

The settings are rl-baselines3-zoo's for ``FNAS-NB201-v0`` (``fnas_env.hyperparams``),
so this script and ``python -m rl_zoo3.train`` train the same agents.

    python examples/search_nb201.py --total-architectures 300 --seed 0
    python examples/search_nb201.py --algo maskable_ppo --dataset cifar100
    tensorboard --logdir runs/
"""

from __future__ import annotations

import argparse
import copy
import os
from types import ModuleType

import gymnasium as gym
import torch
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import fnas_env  # noqa: F401 - registers FNAS-NB201-v0
from agents.controller import ScaleReward, make_controller
from agents.search import run_search
from fnas_env.hyperparams import REWARD_SCALE, a2c, dqn, ppo, ppo_lstm, ppo_mask

ENV_ID = "FNAS-NB201-v0"

#: --algo -> (algorithm class, module of its zoo hyperparameters)
ALGOS: dict[str, tuple[type[BaseAlgorithm], ModuleType]] = {
    "ppo_lstm": (RecurrentPPO, ppo_lstm),
    "ppo": (PPO, ppo),
    "a2c": (A2C, a2c),
    "dqn": (DQN, dqn),
    "maskable_ppo": (MaskablePPO, ppo_mask),
}

#: Entries of the zoo's files the zoo acts on itself; the rest are the algorithm's arguments.
#: Here run_search stops the search (budget) and ScaleReward scales the rewards.
ZOO_ONLY = ("policy", "env_kwargs", "n_envs", "n_timesteps", "callback", "vec_env_wrapper")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo_lstm", choices=list(ALGOS), help="RL algorithm")
    parser.add_argument(
        "--total-architectures",
        type=int,
        default=300,
        help="activated samples (architectures looked up in the table) to spend",
    )
    parser.add_argument(
        "--dataset",
        default="cifar10",
        choices=["cifar10", "cifar100", "ImageNet16-120"],
        help="NAS-Bench-201 dataset",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the agent and the env")
    parser.add_argument(
        "--logdir",
        default=None,
        help="folder for TensorBoard logs and the search record (default runs/nb201-<algo>)",
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
    torch.set_num_threads(1)  # small policy networks are fastest on one thread
    logdir = args.logdir or os.path.join("runs", f"nb201-{args.algo}")
    record_path = os.path.join(logdir, "record.jsonl")

    # 1. the settings: the zoo's hyperparameters for FNAS-NB201-v0
    algorithm, zoo_module = ALGOS[args.algo]
    settings = copy.deepcopy(zoo_module.hyperparams[ENV_ID])
    policy, env_kwargs = settings["policy"], settings["env_kwargs"]
    algo_kwargs = {key: value for key, value in settings.items() if key not in ZOO_ONLY}

    # 2. the environment: sequential (one token per step) or one-shot, as env_kwargs say
    env = gym.make(
        ENV_ID,
        dataset=args.dataset,
        benchmark_dir=args.benchmark_dir,
        record_path=record_path,
        **env_kwargs,
    )

    # 3. the agent
    if args.algo == "ppo_lstm":
        # the MnasNet controller; make_controller's defaults are the zoo's ppo_lstm settings
        model = make_controller(env, seed=args.seed, tensorboard_log=logdir)
    else:
        # rewards (accuracy in percent) as fractions for training; the record keeps percent
        venv = ScaleReward(DummyVecEnv([lambda: Monitor(env)]), scale=REWARD_SCALE)
        model = algorithm(policy, venv, seed=args.seed, tensorboard_log=logdir, **algo_kwargs)

    # 4. search until --total-architectures are activated (no total_timesteps to guess)
    run_search(
        model,
        budget=args.total_architectures,
        progress_bar=args.progress_bar,
        tb_log_name=args.algo,
    )

    # 5. what the search found
    record = env.unwrapped.record
    counters = record.counters
    best = max(record.activated(), key=lambda entry: entry.reward)
    print(f"algorithm: {args.algo} ({algorithm.__name__}) on NAS-Bench-201 {args.dataset}")
    print(f"activated samples: {counters.activated}")
    print(f"cached samples: {counters.cached}")
    print(f"best architecture: {best.arch}")
    print(f"validation accuracy: {best.accuracy:.2f}")
    print(f"test accuracy: {best.extras['test_accuracy']:.2f}")
    print(f"search record: {record_path}")
    print(f"tensorboard logs: {logdir}")


if __name__ == "__main__":
    main()
