"""A critic that knows the answer, for measuring the ceiling of UAC and FNAS on tables.

:class:`OracleCritic` gives the benchmark's true reward as V and uniform noise as U.
With it the gate trusts a random share of the architectures and every trusted reward
is exact, so a speed-up the oracle runs do not reach is out of reach of any critic for
this controller under the batch rule. Run it through the ablation with
``--fnas-settings critic=oracle`` (:class:`benchmarks.methods.FNASSettings`)::

    python benchmarks/fnas_ablation.py --envs nb201-cifar10 --methods uac,fnas \
        --fnas-settings critic=oracle --seeds 20 --jsonl oracle.jsonl
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.baselines import nas_env

__all__ = ["OracleCritic"]


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
