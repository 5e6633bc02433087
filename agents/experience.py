"""FNAS's architecture experience buffer (AEB): a small prioritised replay of episodes.

A few past architectures (about 10) with their rewards, the observations the
controller saw and the behaviour policy's log-probabilities of its tokens, so
that later PPO updates can reuse them (exploited samples) with importance
weights and an off-policy correction: :class:`~agents.fnas_ppo.FNASRecurrentPPO`
replays them into its :class:`~agents.fnas_buffer.WeightedRecurrentRolloutBuffer`.
Pure numpy, no torch.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fnas_env.arch import Architecture
from fnas_env.spaces import get_space

__all__ = ["Experience", "ExperienceBuffer", "PRIORITIES"]

#: Priority rules of :class:`ExperienceBuffer`.
PRIORITIES = ("paper", "standardized")

_FORMAT = "fnas-aeb-v1"
_JSON, _NPZ = "buffer.json", "arrays.npz"


def _frozen_array(value: Any, dtype: type, name: str, ndim: int) -> np.ndarray:
    array = np.array(value, dtype=dtype)  # a copy, made read-only below
    if array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Experience:
    """One stored episode: an architecture, how the controller produced it, its reward.

    - ``arch``: the architecture.
    - ``tokens``: the episode's actions (one token per step; in one-shot mode the
      single ``MultiDiscrete`` action).
    - ``observations``: ``(T, obs_dim)`` float32, the observations the policy saw.
    - ``reward``: the episode's reward (the last step's).
    - ``log_probs``: ``(T,)`` behaviour-policy log-probabilities of the actions,
      for the off-policy correction.

    Arrays are copied and read-only. Equality is identity (arrays have no
    single truth value); compare ``arch``/``reward`` for content.
    """

    arch: Architecture
    tokens: tuple[int, ...]
    observations: np.ndarray
    reward: float
    log_probs: np.ndarray
    _steps: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.arch, Architecture):
            raise TypeError(f"arch must be an Architecture, got {type(self.arch).__name__}")
        tokens = tuple(int(t) for t in self.tokens)
        if not tokens:
            raise ValueError("tokens must not be empty")
        obs = _frozen_array(self.observations, np.float32, "observations", 2)
        logp = _frozen_array(self.log_probs, np.float32, "log_probs", 1)
        steps = len(obs)
        if len(logp) != steps:
            raise ValueError(
                f"observations has {steps} steps but log_probs has {len(logp)}; "
                "both need one row per step of the episode"
            )
        if len(tokens) != steps and steps != 1:
            raise ValueError(
                f"{len(tokens)} tokens for {steps} steps: give one token per step, or "
                "one step whose action is the whole architecture (one-shot mode)"
            )
        if (logp > 0).any():
            raise ValueError("log_probs must be <= 0 (log-probabilities of the actions)")
        reward = float(self.reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {self.reward!r}")
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "observations", obs)
        object.__setattr__(self, "log_probs", logp)
        object.__setattr__(self, "reward", reward)
        object.__setattr__(self, "_steps", steps)

    @property
    def num_steps(self) -> int:
        """Steps T of the episode."""
        return self._steps


class ExperienceBuffer:
    """At most ``capacity`` past episodes, diverse in reward, sampled by priority.

    Diversity rule (``add``):

    - one entry per architecture: an architecture already stored is replaced by
      the new experience (its behaviour log-probs are fresher, its reward the
      latest);
    - while not full, every new architecture is added;
    - when full, of the ``capacity + 1`` candidates the lower-reward member of
      the closest pair of rewards is dropped (among equal gaps: the pair lowest
      in reward; among equal rewards: the older entry). This spreads the
      rewards out, never drops the best one, and rejects a newcomer whose
      reward is already represented by a better entry.

    Priorities (``priority``):

    - ``"paper"`` (default, FNAS's): ``P_i = exp(r_i / T) / sum_j exp(r_j / T)`` on the
      rewards as stored (the controller's training rewards: accuracy as a fraction
      with :func:`agents.controller.make_controller`'s ``reward_scale=0.01``, so over
      10 entries the draws are nearly uniform), with importance weights
      ``S_i = (N P_i)^-beta``.
    - ``"standardized"``: the softmax of rewards standardised over the buffer
      (mean 0, standard deviation 1), ``z_i / T``, which favours the best entries
      whatever the reward scale, with weights normalised by their maximum,
      ``S_i = (N P_i)^-beta / max_j (N P_j)^-beta`` (prioritised replay's form).

    ``T = temperature`` (default 1). ``beta`` is annealed linearly from ``beta0`` to 1
    over the search: callers pass the search's progress in [0, 1].

    Args:
        capacity: most entries kept (default 10, the paper's).
        temperature: softmax temperature (default 1.0).
        beta0: ``beta`` at the start of the search (default 0.0).
        seed: seeds the buffer's own generator, used by :meth:`sample` when no
            ``rng`` is given (default 0).
        priority: ``"paper"`` (default) or ``"standardized"`` (see above).
    """

    def __init__(
        self,
        capacity: int = 10,
        temperature: float = 1.0,
        beta0: float = 0.0,
        seed: int = 0,
        priority: str = "paper",
    ):
        if int(capacity) < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if not 0.0 <= beta0 <= 1.0:
            raise ValueError(f"beta0 must be in [0, 1], got {beta0!r}")
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}, got {priority!r}")
        self.capacity = int(capacity)
        self.temperature = float(temperature)
        self.beta0 = float(beta0)
        self.seed = int(seed)
        self.priority = priority
        self.rng = np.random.default_rng(seed)
        self._entries: list[Experience] = []
        self._ages: list[int] = []  # insertion counter of each entry (older = smaller)
        self._added = 0

    # ---- contents --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Experience]:
        return iter(list(self._entries))

    @property
    def entries(self) -> tuple[Experience, ...]:
        return tuple(self._entries)

    @property
    def rewards(self) -> np.ndarray:
        return np.asarray([e.reward for e in self._entries], dtype=np.float64)

    @property
    def best(self) -> Experience | None:
        """The highest-reward entry (None when empty)."""
        return max(self._entries, key=lambda e: e.reward, default=None)

    def add(self, exp: Experience) -> bool:
        """Offer an experience; True if it is now stored (see the diversity rule)."""
        if not isinstance(exp, Experience):
            raise TypeError(f"add() takes an Experience, got {type(exp).__name__}")
        if self._entries and exp.arch.space != self._entries[0].arch.space:
            raise ValueError(
                f"buffer holds architectures of space {self._entries[0].arch.space!r}, "
                f"got one of {exp.arch.space!r}"
            )
        self._added += 1
        for i, old in enumerate(self._entries):
            if old.arch == exp.arch:
                self._entries[i], self._ages[i] = exp, self._added
                return True
        self._entries.append(exp)
        self._ages.append(self._added)
        if len(self._entries) <= self.capacity:
            return True
        drop = self._crowded()
        kept = drop != len(self._entries) - 1
        del self._entries[drop], self._ages[drop]
        return kept

    def _crowded(self) -> int:
        """Index of the lower-reward member of the closest pair of rewards."""
        order = sorted(
            range(len(self._entries)), key=lambda i: (self._entries[i].reward, self._ages[i])
        )
        rewards = [self._entries[i].reward for i in order]
        gaps = [rewards[k + 1] - rewards[k] for k in range(len(order) - 1)]
        k = int(np.argmin(gaps))  # first (lowest in reward) among equal gaps
        return order[k]

    # ---- priorities and importance weights ---------------------------------------------
    def priorities(self) -> np.ndarray:
        """``P_i``: the softmax of the rewards (see ``priority``) over the temperature."""
        r = self.rewards
        if len(r) == 0:
            return r
        if self.priority == "standardized":
            std = r.std()
            r = (r - r.mean()) / std if std > 1e-12 else np.zeros_like(r)
        logits = r / self.temperature
        p = np.exp(logits - logits.max())
        return p / p.sum()

    def beta(self, progress: float) -> float:
        """``beta`` at ``progress`` of the search (0 start, 1 end; clipped to [0, 1])."""
        progress = float(progress)
        if math.isnan(progress):
            raise ValueError("progress must be a number in [0, 1], got NaN")
        progress = min(max(progress, 0.0), 1.0)
        return self.beta0 + (1.0 - self.beta0) * progress

    def weights(self, progress: float) -> np.ndarray:
        """Importance weights ``S_i = (N P_i)^-beta`` of all entries (``"standardized"``:
        divided by their maximum)."""
        p = self.priorities()
        if len(p) == 0:
            return p
        s = (len(p) * p) ** -self.beta(progress)
        return s / s.max() if self.priority == "standardized" else s

    def sample(
        self, k: int, progress: float, rng: np.random.Generator | None = None
    ) -> list[tuple[Experience, float]]:
        """``k`` entries drawn with replacement by priority, each with its IS weight.

        ``rng`` defaults to the buffer's own seeded generator. An empty buffer
        gives an empty list.
        """
        if int(k) < 0:
            raise ValueError(f"k must be >= 0, got {k!r}")
        if not self._entries or k == 0:
            return []
        rng = self.rng if rng is None else rng
        p = self.priorities()
        w = self.weights(progress)
        idx = rng.choice(len(p), size=int(k), replace=True, p=p)
        return [(self._entries[i], float(w[i])) for i in idx]

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the buffer to the folder ``path`` (``buffer.json`` + ``arrays.npz``, no pickle)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        entries = []
        for i, e in enumerate(self._entries):
            arrays[f"observations_{i}"] = e.observations
            arrays[f"log_probs_{i}"] = e.log_probs
            entries.append(
                {
                    "arch": get_space(e.arch.space).to_string(e.arch),
                    "space": e.arch.space,
                    "choices": list(e.arch.choices),
                    "tokens": list(e.tokens),
                    "reward": e.reward,
                    "age": self._ages[i],
                }
            )
        meta = {
            "format": _FORMAT,
            "capacity": self.capacity,
            "temperature": self.temperature,
            "beta0": self.beta0,
            "seed": self.seed,
            "priority": self.priority,
            "added": self._added,
            "rng": self.rng.bit_generator.state,
            "entries": entries,
        }
        np.savez(folder / _NPZ, **arrays)
        (folder / _JSON).write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(
        cls, path: str | os.PathLike, space: str | None = None, obs_dim: int | None = None
    ) -> ExperienceBuffer:
        """A buffer saved with :meth:`save`.

        ``space``/``obs_dim``, when given, must match the stored entries (a buffer
        seeds another search only over the same space and observation layout).
        """
        folder = Path(path)
        if not (folder / _JSON).is_file() or not (folder / _NPZ).is_file():
            raise FileNotFoundError(
                f"{folder} is not a saved ExperienceBuffer (expected {_JSON} and {_NPZ} in it)"
            )
        meta = json.loads((folder / _JSON).read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{folder / _JSON} is not an ExperienceBuffer file ({_FORMAT})")
        buffer = cls(
            meta["capacity"],
            meta["temperature"],
            meta["beta0"],
            meta["seed"],
            priority=meta.get("priority", "standardized"),  # files without it: the old rule
        )
        buffer.rng.bit_generator.state = meta["rng"]
        with np.load(folder / _NPZ, allow_pickle=False) as arrays:
            for i, d in enumerate(meta["entries"]):
                if space is not None and d["space"] != space:
                    raise ValueError(
                        f"buffer entry {d['arch']!r} is of space {d['space']!r}, expected {space!r}"
                    )
                exp = Experience(
                    arch=get_space(d["space"]).from_choices(d["choices"]),
                    tokens=tuple(d["tokens"]),
                    observations=arrays[f"observations_{i}"],
                    reward=d["reward"],
                    log_probs=arrays[f"log_probs_{i}"],
                )
                if obs_dim is not None and exp.observations.shape[1] != obs_dim:
                    raise ValueError(
                        f"buffer entry {d['arch']!r} has {exp.observations.shape[1]}-dim "
                        f"observations, expected {obs_dim}"
                    )
                buffer._entries.append(exp)
                buffer._ages.append(int(d["age"]))
        buffer._added = int(meta["added"])
        return buffer

    def __repr__(self) -> str:
        return f"ExperienceBuffer(capacity={self.capacity}, entries={len(self)})"
