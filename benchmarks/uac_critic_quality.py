"""How good and how costly is the uncertainty-aware critic on real tabular benchmarks?

Trains an :class:`~wrappers.critic.UncertaintyCritic` online (one ``update`` per
architecture, as the gate does) on ``n`` uniformly sampled architectures of a
benchmark, then reports on ``--held-out`` (default 500) other architectures:

- V's Spearman with the true reward and its mean absolute error (against the
  spread of the rewards: the MAE of predicting their mean);
- U's Spearman and Pearson with V's actual error on them (does U know where V
  is wrong on architectures it has not seen?), U's scale (mean U over V's
  MAE: 1.0 when U predicts errors of the right size, which a fixed threshold or
  ``max_uncertainty`` in reward units relies on), and V's error on the half
  with the lowest U (the half an adaptive gate with ``trusted_fraction=0.5``
  would trust) against the other half;
- the median CPU time (``time.process_time``: what the critic costs, less
  sensitive than wall time to other work on a shared machine) of one ``update``
  and of one ``predict`` of a single new architecture (what the gate calls per
  sampled architecture) and of a 200-architecture window (the gate's adaptive
  threshold recomputation), and the median wall time of one ``update``.

Each configuration runs for every ``--u-target`` (U's training target:
``heldout``, V's error on each sample before training on it; ``insample``, the
paper's), benchmark, ``n`` and seed; a summary table gives the mean and
standard deviation over seeds.

    .venv/bin/python benchmarks/uac_critic_quality.py --bench macro nb201 --n 100 300 \\
        --seeds 0 1 2 3 4 --u-target heldout insample
    .venv/bin/python benchmarks/uac_critic_quality.py --steps-per-sample 2   # cheaper training
    .venv/bin/python benchmarks/uac_critic_quality.py --ensemble 5   # U = 5 V networks' spread
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from scipy import stats

from wrappers.critic import U_TARGETS, UncertaintyCritic

KEYS = [
    "v_spearman",
    "v_mae",
    "spread",
    "u_err_spearman",
    "u_err_pearson",
    "u_scale",
    "mae_low_u",
    "mae_high_u",
    "update_ms",
    "update_wall_ms",
    "predict_ms",
    "window_ms",
]
HEADERS = [
    "V Spearman",
    "V MAE",
    "reward spread",
    "U~err Spearman",
    "U~err Pearson",
    "mean U / V MAE",
    "MAE low-U half",
    "MAE high-U half",
    "ms/update",
    "wall ms/update",
    "ms/predict",
    "ms/predict 200",
]


def evaluator_of(name: str):
    """The tabular evaluator of a benchmark name (``macro`` or ``nb201``: cifar10)."""
    from fnas_env.evaluators.tabular import MacroEvaluator, NB201Evaluator

    if name not in ("macro", "nb201"):
        raise ValueError(f"bench must be 'macro' or 'nb201', got {name!r}")
    return MacroEvaluator() if name == "macro" else NB201Evaluator("cifar10")


def run(
    name: str,
    n: int,
    seed: int,
    held_out: int = 500,
    evaluator: Any = None,
    **critic_kwargs: Any,
) -> dict[str, float]:
    """Train a critic online on ``n`` sampled architectures; its quality and cost.

    ``critic_kwargs`` go to :class:`~wrappers.critic.UncertaintyCritic`. The
    architectures depend on ``seed`` only, so configurations run on the same data.
    """
    evaluator = evaluator or evaluator_of(name)
    space = evaluator.space
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n + held_out)]
    x = np.stack([space.one_hot(a) for a in archs])
    r = np.array([evaluator.evaluate(a).accuracy for a in archs])
    critic = UncertaintyCritic(space.embedding_dim, seed=seed, **critic_kwargs)
    update_s, update_wall_s = [], []
    for i in range(n):
        start, wall = time.process_time(), time.perf_counter()
        critic.update(x[i : i + 1], r[i : i + 1])
        update_s.append(time.process_time() - start)
        update_wall_s.append(time.perf_counter() - wall)
    predict_s, window_s = [], []
    for i in range(n, n + 50):  # new architectures: no cached answer
        start = time.process_time()
        critic.predict(x[i : i + 1])
        predict_s.append(time.process_time() - start)
    for i in range(10):
        start = time.process_time()
        critic.predict(x[n + i : n + i + 200])
        window_s.append(time.process_time() - start)
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
        "u_scale": u.mean() / error.mean(),
        "mae_low_u": error[low].mean(),
        "mae_high_u": error[~low].mean(),
        "update_ms": 1000 * float(np.median(update_s)),
        "update_wall_ms": 1000 * float(np.median(update_wall_s)),
        "predict_ms": 1000 * float(np.median(predict_s)),
        "window_ms": 1000 * float(np.median(window_s)),
    }


def _cell(key: str, value: float) -> str:
    return f"{value:.2f}" if key.endswith("_ms") else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", nargs="+", default=["macro", "nb201"])
    parser.add_argument("--n", nargs="+", type=int, default=[100, 300])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--held-out", type=int, default=500)
    parser.add_argument(
        "--u-target",
        nargs="+",
        default=list(U_TARGETS),
        choices=list(U_TARGETS),
        help="U's training targets to compare (default: both)",
    )
    parser.add_argument(
        "--ensemble",
        type=int,
        default=0,
        help="0: U is the uncertainty; K >= 2: K V networks' spread",
    )
    parser.add_argument("--steps-per-sample", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--learning-rate", "--lr", type=float, default=None)
    parser.add_argument("--u-every", type=int, default=None)
    args = parser.parse_args()
    kwargs: dict[str, Any] = {"ensemble": args.ensemble}
    for key in ("steps_per_sample", "batch_size", "learning_rate", "u_every"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    print(f"critic settings (others default): {kwargs}\n")
    print("| bench | n | u_target | seed | " + " | ".join(HEADERS) + " |")
    print("|" + " --- |" * (4 + len(KEYS)))
    results: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    for name in args.bench:
        evaluator = evaluator_of(name)
        for n in args.n:
            for seed in args.seeds:
                for target in args.u_target:  # interleaved: same load for both targets
                    m = run(name, n, seed, args.held_out, evaluator, u_target=target, **kwargs)
                    results.setdefault((name, n, target), []).append(m)
                    cells = " | ".join(_cell(k, m[k]) for k in KEYS)
                    print(f"| {name} | {n} | {target} | {seed} | {cells} |", flush=True)
    print(f"\nmean +- standard deviation over seeds {args.seeds}:\n")
    print("| bench | n | u_target | " + " | ".join(HEADERS) + " |")
    print("|" + " --- |" * (3 + len(KEYS)))
    for (name, n, target), runs in results.items():
        cells = []
        for k in KEYS:
            values = np.array([m[k] for m in runs])
            cells.append(f"{_cell(k, values.mean())} +- {_cell(k, values.std())}")
        print(f"| {name} | {n} | {target} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
