"""How good is the uncertainty-aware critic on real tabular benchmarks?

Trains an :class:`~wrappers.critic.UncertaintyCritic` online (one ``update`` per
architecture, as the gate does) on ``n`` uniformly sampled architectures of a
benchmark, then reports on 500 held-out architectures: V's Spearman with the
true reward and its mean absolute error (against the spread of the rewards,
the MAE of predicting the mean), U's Spearman/Pearson with V's actual error,
and V's error on the half of the architectures with the lowest U (the half an
adaptive gate with ``trusted_fraction=0.5`` would trust) against the other
half. Also the mean wall time of one ``update`` and one ``predict``.

    .venv/bin/python benchmarks/uac_critic_quality.py --bench macro nb201 --n 100 300 --seeds 0 1
    .venv/bin/python benchmarks/uac_critic_quality.py --ensemble 5   # U = 5 V networks' spread
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from wrappers.critic import UncertaintyCritic


def evaluator_of(name: str):
    from fnas_env.evaluators.tabular import MacroEvaluator, NB201Evaluator

    return MacroEvaluator() if name == "macro" else NB201Evaluator("cifar10")


def run(name: str, n: int, seed: int, held_out: int = 500, ensemble: int = 0) -> dict[str, float]:
    evaluator = evaluator_of(name)
    space = evaluator.space
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n + held_out)]
    x = np.stack([space.one_hot(a) for a in archs])
    r = np.array([evaluator.evaluate(a).accuracy for a in archs])
    critic = UncertaintyCritic(space.embedding_dim, seed=seed, ensemble=ensemble)
    start = time.perf_counter()
    for i in range(n):
        critic.update(x[i : i + 1], r[i : i + 1])
    update_s = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for i in range(n, n + 50):
        critic.predict(x[i : i + 1])
    predict_s = (time.perf_counter() - start) / 50
    v, u = critic.predict(x[n:])
    truth = r[n:]
    error = np.abs(v - truth)
    low = u <= np.median(u)
    return {
        "v_spearman": stats.spearmanr(v, truth)[0],
        "v_mae": error.mean(),
        "spread": np.abs(truth - truth.mean()).mean(),
        "u_err_spearman": stats.spearmanr(u, error)[0],
        "u_err_pearson": stats.pearsonr(u, error)[0],
        "mae_low_u": error[low].mean(),
        "mae_high_u": error[~low].mean(),
        "update_ms": 1000 * update_s,
        "predict_ms": 1000 * predict_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", nargs="+", default=["macro", "nb201"])
    parser.add_argument("--n", nargs="+", type=int, default=[100, 300])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument(
        "--ensemble", type=int, default=0, help="0: the paper's U; K >= 2: K V networks' spread"
    )
    args = parser.parse_args()
    print(
        "| bench | n | seed | V Spearman | V MAE | reward spread | U~err Spearman | "
        "U~err Pearson | MAE low-U half | MAE high-U half | update ms | predict ms |"
    )
    print("|" + " --- |" * 12)
    for name in args.bench:
        for n in args.n:
            for seed in args.seeds:
                m = run(name, n, seed, ensemble=args.ensemble)
                keys = [
                    "v_spearman",
                    "v_mae",
                    "spread",
                    "u_err_spearman",
                    "u_err_pearson",
                    "mae_low_u",
                    "mae_high_u",
                    "update_ms",
                    "predict_ms",
                ]
                cells = " | ".join(f"{m[k]:.3f}" if "ms" not in k else f"{m[k]:.1f}" for k in keys)
                print(f"| {name} | {n} | {seed} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
