"""The ceiling of UAC and FNAS here: the same search with a perfect critic.

The ablation (``benchmarks/fnas_ablation.py``) measures UAC and FNAS with the
learnt critic (V, U). How much of the gap to the targets (UAC >= 2x, FNAS >= 4x
fewer activated samples than ``mnas``) is the critic's error, and how much the
controller and the 50% batch rule? This script runs the same methods with an
:class:`OracleCritic` on the tabular benchmarks: V is the benchmark's true reward
of the architecture and U is uninformative (uniform noise), so the gate trusts a
random half of the architectures (its adaptive threshold, ``trusted_fraction``
0.5) and every trusted reward is exact. Everything else (the gate's warm-up and
``verify_best``, the batch rule, AEB) is :data:`agents.fnas_methods.FNAS_SETTINGS`.

- ``uac-oracle``: ``uac`` with the oracle critic;
- ``fnas-oracle``: ``fnas`` (UAC + AEB) with the oracle critic.

A speed-up these runs do not reach is out of reach of any critic for this
controller under the batch rule. Records are the ablation's (same keys), so the
tables come from the ablation with the ``mnas`` records of the same seeds::

    python benchmarks/uac_ceiling.py --envs nb201-cifar10,macro --seeds 20 --budget 400 \\
        --jsonl oracle.jsonl
    python benchmarks/fnas_ablation.py --tables \\
        benchmarks/results/records/fnas_ablation_share.jsonl.gz,oracle.jsonl

``--leaks`` instead counts, for the learnt critic (method ``uac`` or ``fnas``), the
architectures the gate trusted (so never measured) whose true reward reaches a
level, and how many of them came before the run first measured one::

    python benchmarks/uac_ceiling.py --leaks --envs nb201-cifar10 --methods uac \\
        --level 84.676 --seeds 5 --first-seed 100
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import agents.fnas_methods as fm
from agents.baselines import nas_env
from agents.harness import METHODS, make_search_env, register_method
from benchmarks import fnas_ablation

__all__ = ["OracleCritic", "ORACLE_METHODS", "trusted_at_level", "main"]

#: Methods this module registers.
ORACLE_METHODS = ("uac-oracle", "fnas-oracle")


class OracleCritic:
    """A critic that knows: V = the benchmark's reward of the architecture, U = noise.

    For benchmarks only (it looks the answer up in the table the search is run on).
    ``predict`` decodes each one-hot embedding, evaluates it with the env's
    evaluator (outside the search record, so nothing is counted) and returns the
    env's reward; U is uniform on [0, 1), independent of the architecture, so the
    gate's adaptive threshold trusts a random ``trusted_fraction`` of them.
    ``update`` only counts samples (the gate's warm-up reads ``num_samples``).

    Args:
        env: the search env (its unwrapped NASEnv's space, evaluator and reward).
        seed: seed of U's noise.
    """

    #: constant: the gate recomputes its window's U only when this changes
    num_updates = 0

    def __init__(self, env: Any, seed: int = 0):
        self._base = nas_env(env)
        self.embedding_dim = self._base.search_space.embedding_dim
        self._rng = np.random.default_rng(seed)
        self._cache: dict[bytes, float] = {}
        self.num_samples = 0

    def true_reward(self, embedding: np.ndarray) -> float:
        """The env's reward of the architecture with this one-hot embedding."""
        key = np.asarray(embedding, dtype=np.float32).tobytes()
        if key not in self._cache:
            base = self._base
            evaluator = getattr(base.evaluator, "inner", base.evaluator)  # no timing
            arch = base.search_space.from_one_hot(np.asarray(embedding))
            self._cache[key] = float(base.reward_of(evaluator.evaluate(arch)))
        return self._cache[key]

    def predict(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V (the true reward) and U (uniform noise) of a batch of embeddings."""
        x = np.atleast_2d(np.asarray(embeddings))
        v = np.array([self.true_reward(row) for row in x], dtype=np.float64)
        return v, self._rng.random(len(x))

    def update(self, embeddings: np.ndarray, rewards, steps: int | None = None) -> dict:
        """Count the samples (there is nothing to learn)."""
        self.num_samples += len(np.atleast_2d(np.asarray(embeddings)))
        return {}


@register_method("uac-oracle")
def _uac_oracle(env, budget, seed, **run_kwargs):
    """``uac`` with an :class:`OracleCritic` (exact trusted rewards, uninformative U)."""
    fm.run_fnas(
        env, budget, seed, uac=True, aeb=False, critic=OracleCritic(env, seed), **run_kwargs
    )


@register_method("fnas-oracle")
def _fnas_oracle(env, budget, seed, **run_kwargs):
    """``fnas`` with an :class:`OracleCritic` (exact trusted rewards, uninformative U)."""
    fm.run_fnas(env, budget, seed, uac=True, aeb=True, critic=OracleCritic(env, seed), **run_kwargs)


def trusted_at_level(
    name: str, method: str, seed: int, level: float, budget: int = 400
) -> dict[str, int | None]:
    """Run ``method`` on ablation env ``name``; count trusted architectures at ``level``.

    Returns ``first_hit`` (activated samples until one measured reward >= level, None:
    never), ``trusted`` (trusted architectures), ``trusted_at_level`` (trusted ones
    whose true reward is >= level) and ``before_first_hit`` (those trusted before
    ``first_hit``: a search that had sampled the level and did not know it).
    Runs with torch's thread setting as it is (not :func:`~agents.harness.run_method`'s
    one thread), so its trajectories can differ from the ablation's records.
    """
    env_id, kwargs = fnas_ablation.ENVS[name]
    env = make_search_env(env_id, kwargs)
    base = nas_env(env)
    env.reset(seed=seed)
    oracle = OracleCritic(env)
    try:
        METHODS[method](env, budget, seed)
    finally:
        env.close()
    out: dict[str, int | None] = {
        "first_hit": None,
        "trusted": 0,
        "trusted_at_level": 0,
        "before_first_hit": 0,
    }
    activated = 0
    for entry in base.record.entries:
        if entry.kind == "evaluated":
            activated += 1
            if out["first_hit"] is None and entry.reward >= level:
                out["first_hit"] = activated
        elif entry.kind == "surrogate":
            out["trusted"] += 1
            arch = base.search_space.from_string(entry.arch)
            if oracle.true_reward(base.search_space.one_hot(arch)) >= level:
                out["trusted_at_level"] += 1
                out["before_first_hit"] += out["first_hit"] is None
    return out


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="nb201-cifar10,nb201-cifar100,nb201-imagenet16,macro")
    parser.add_argument("--methods", default=",".join(ORACLE_METHODS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--jsonl", default=None, help="append each run's record here")
    parser.add_argument(
        "--fnas-settings", default="", help="as fnas_ablation.py's (e.g. trusted_fraction=0.75)"
    )
    parser.add_argument("--leaks", action="store_true", help="count trusted runs at --level")
    parser.add_argument("--level", type=float, default=None, help="reward level of --leaks")
    args = parser.parse_args(argv)
    if not args.leaks:
        forwarded = [
            f"--envs={args.envs}",
            f"--methods={args.methods}",
            f"--seeds={args.seeds}",
            f"--first-seed={args.first_seed}",
            f"--budget={args.budget}",
            f"--fnas-settings={args.fnas_settings}",
        ] + ([f"--jsonl={args.jsonl}"] if args.jsonl else [])
        return fnas_ablation.main(forwarded)
    if args.level is None:
        parser.error("--leaks needs --level (a reward, e.g. the mnas target of the env)")
    fm.configure(**fnas_ablation.parse_settings(args.fnas_settings))
    rows = []
    print(
        "| env | method | seed | first measured >= level | trusted | trusted >= level "
        "| of them before the first measured |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.envs.split(","):
        if name not in fnas_ablation.ENVS:
            parser.error(f"unknown env {name!r}; choose from {list(fnas_ablation.ENVS)}")
        for method in args.methods.split(","):
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                r = trusted_at_level(name, method, seed, args.level, args.budget)
                rows.append({"env": name, "method": method, "seed": seed, **r})
                print(
                    f"| {name} | {method} | {seed} | {r['first_hit']} | {r['trusted']} | "
                    f"{r['trusted_at_level']} | {r['before_first_hit']} |",
                    flush=True,
                )
    return rows


if __name__ == "__main__":
    main()
