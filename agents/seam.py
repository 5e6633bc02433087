"""The env/agent seam: everything the FNAS controller needs from the envs it steps.

An algorithm steps a ``VecEnv`` and reads the last-step ``info`` of each episode,
which carries values, not strings: ``info["architecture"]`` (the
:class:`~fnas_env.arch.Architecture`), ``info["evaluation"]`` and the flags that say
how the reward came (trusted, cached, really evaluated). Beyond that, FNAS needs
a few things from the envs, and :class:`SearchEnvs` is the one place that gets them:

- :attr:`SearchEnvs.search_space`: the space the architectures belong to;
- :meth:`SearchEnvs.counters`: the search's counters (activated, trusted, ...);
- :meth:`SearchEnvs.set_trust`: turn the UAC gate's trust off (a batch's trusted
  quota is full and resampling hit its bound) and on again;
- :meth:`SearchEnvs.gate_metrics`: the gate's metrics, for logging;
- :meth:`SearchEnvs.log_replay`: the algorithm's own log of the replays it makes,
  in the search's record (a ``"replayed"`` entry at no cost).

Where the pieces live: with the VecEnv wrappers of a multi-worker search
(:class:`~wrappers.uac.VecUncertaintyGate`, :class:`~wrappers.record.VecSearchRecord`)
the gate and the record are objects in this process and are used directly. With
the single-env gym wrappers (``UncertaintyGate(gym.make(...))`` in a
``DummyVecEnv``) the gate and the record live inside the envs and are reached
through ``VecEnv.env_method``, which is this module's business alone.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_wrapper

from fnas_env.arch import Architecture
from fnas_env.evaluators.base import Evaluation

__all__ = ["SearchEnvs", "episode_kind"]


def episode_kind(info: dict[str, Any]) -> str:
    """How an episode's reward came: ``"trusted"`` (the critic's prediction), ``"cached"``
    (served from the search record) or ``"activated"`` (really evaluated)."""
    if info.get("trusted", False):
        return "trusted"
    return "cached" if info.get("cached", False) else "activated"


class SearchEnvs:
    """The FNAS view of a ``VecEnv`` of NAS envs (wrappers allowed).

    Args:
        venv: the VecEnv the algorithm steps.
    """

    def __init__(self, venv: VecEnv):
        from wrappers.record import VecSearchRecord
        from wrappers.uac import VecUncertaintyGate

        self.venv = venv
        #: the gate in the VecEnv wrapper chain (one critic for all workers), or None
        self.gate = unwrap_vec_wrapper(venv, VecUncertaintyGate)
        #: the search record in the VecEnv wrapper chain (one record for all workers), or None
        self.record = unwrap_vec_wrapper(venv, VecSearchRecord)
        self._space: Any = None

    @property
    def search_space(self) -> Any:
        """The envs' search space (env 0's, looked up once), or None if they have none."""
        if self._space is None:
            has = self.venv.has_attr("search_space")
            self._space = self.venv.get_attr("search_space", indices=[0])[0] if has else False
        return self._space or None

    def counters(self) -> list[Any]:
        """The search's counters: the one record's, else each env's (``SearchCounters``)."""
        if self.record is not None:
            return [self.record.counters]
        return list(self.venv.get_attr("counters"))

    def set_trust(self, enabled: bool) -> bool:
        """Allow or forbid the UAC gate to trust; False when the envs have no gate."""
        if self.gate is not None:
            self.gate.set_trust_enabled(bool(enabled))
            return True
        if not self.venv.has_attr("set_trust_enabled"):
            return False
        self.venv.env_method("set_trust_enabled", bool(enabled))
        return True

    def gate_metrics(self) -> list[dict[str, Any]]:
        """The gate's metrics (one dict per gate: one for a VecEnv gate, one per env else)."""
        if self.gate is not None:
            return [self.gate.metrics()]
        if not self.venv.has_attr("metrics"):
            return []
        return [m for m in self.venv.env_method("metrics") if isinstance(m, dict)]

    def log_replay(self, arch: Architecture, reward: float) -> None:
        """Add a ``"replayed"`` entry (no evaluation, no cost) to the search's record."""
        if self.record is not None:
            self.record.record_replay(arch, reward)
            return
        if self.venv.has_attr("score"):  # the record inside env 0 (a single-env search)
            evaluation = Evaluation(accuracy=float("nan"), cost=0.0)
            self.venv.env_method(
                "score", arch, evaluation, kind="replayed", reward=reward, indices=[0]
            )
