"""Search spaces as data: ordered decisions, grouped into blocks. No torch here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fnas_env.arch import Architecture

__all__ = ["Decision", "BlockEmbedding", "SearchSpace"]


@dataclass(frozen=True)
class Decision:
    """One decision of a space: a name (``"b3.kernel"``) and its choices."""

    name: str
    choices: tuple[Any, ...]

    @property
    def n(self) -> int:
        return len(self.choices)


@dataclass(frozen=True)
class BlockEmbedding:
    """One block of an architecture as the knowledge pool keys it.

    ``index`` is the block's position in the network (so a pool only matches
    blocks that play the same role), ``embedding`` the concatenated one-hot of the
    block's decisions, ``label`` its compact string.
    """

    index: int
    embedding: np.ndarray
    label: str


class SearchSpace:
    """A search space: an ordered list of decisions, each with its choices.

    Subclasses give ``name``, ``decisions``, ``blocks`` (the decision indices of
    each block, in network order) and the compact string format
    (``_format_block``/``_parse_block`` with a ``separator``, or override
    ``to_string``/``from_string`` whole).
    """

    name: str = ""
    decisions: tuple[Decision, ...] = ()
    blocks: tuple[tuple[int, ...], ...] = ()
    separator: str = "|"

    # ---- sizes -----------------------------------------------------------
    @property
    def num_decisions(self) -> int:
        return len(self.decisions)

    @property
    def num_choices(self) -> tuple[int, ...]:
        return tuple(d.n for d in self.decisions)

    @property
    def max_choices(self) -> int:
        return max(self.num_choices)

    @property
    def embedding_dim(self) -> int:
        return sum(self.num_choices)

    @property
    def size(self) -> int:
        """Number of distinct architectures."""
        return int(np.prod(self.num_choices, dtype=object))

    # ---- validation --------------------------------------------------------
    def validate(self, arch: Architecture) -> Architecture:
        """Return ``arch`` if it belongs to this space, else raise ``ValueError``."""
        if not isinstance(arch, Architecture):
            raise TypeError(f"expected an Architecture, got {type(arch).__name__}")
        if arch.space != self.name:
            raise ValueError(
                f"architecture of space {arch.space!r} given to space {self.name!r}; "
                f"build it with get_space({arch.space!r}) or use a {arch.space!r} evaluator"
            )
        if len(arch.choices) != self.num_decisions:
            raise ValueError(
                f"space {self.name!r} has {self.num_decisions} decisions, "
                f"got {len(arch.choices)} choices"
            )
        for i, (c, d) in enumerate(zip(arch.choices, self.decisions)):
            if not 0 <= c < d.n:
                raise ValueError(
                    f"decision {i} ({d.name}) of space {self.name!r} accepts choice "
                    f"indices 0..{d.n - 1} ({list(d.choices)}), got {c}"
                )
        return arch

    def from_choices(self, choices: Sequence[int]) -> Architecture:
        """Architecture from choice indices (validated)."""
        return self.validate(Architecture(self.name, tuple(int(c) for c in choices)))

    def values(self, arch: Architecture) -> tuple[Any, ...]:
        """The chosen value of each decision (``(6, 3, 1, True, ...)``)."""
        self.validate(arch)
        return tuple(d.choices[c] for d, c in zip(self.decisions, arch.choices))

    # ---- sampling ------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniformly random architecture."""
        return Architecture(self.name, tuple(int(rng.integers(n)) for n in self.num_choices))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one uniformly chosen decision to a different choice."""
        self.validate(arch)
        choices = list(arch.choices)
        i = int(rng.integers(self.num_decisions))
        n = self.decisions[i].n
        choices[i] = (choices[i] + 1 + int(rng.integers(n - 1))) % n
        return Architecture(self.name, tuple(choices))

    # ---- encodings -------------------------------------------------------------
    def one_hot(self, arch: Architecture) -> np.ndarray:
        """Expanded embedding: concatenated one-hot vector per decision (float32)."""
        self.validate(arch)
        out = np.zeros(self.embedding_dim, dtype=np.float32)
        offset = 0
        for c, n in zip(arch.choices, self.num_choices):
            out[offset + c] = 1.0
            offset += n
        return out

    @property
    def feature_dim(self) -> int:
        """Length of :meth:`features`."""
        return self.embedding_dim

    def features(self, arch: Architecture) -> np.ndarray:
        """An encoding for reward predictors (float32): the one-hot embedding here; a space
        may add structure that predicts accuracy better (NB201: its cell's paths)."""
        return self.one_hot(arch)

    def from_one_hot(self, vector: np.ndarray) -> Architecture:
        """Inverse of :meth:`one_hot` (argmax per decision)."""
        vector = np.asarray(vector)
        if vector.shape != (self.embedding_dim,):
            raise ValueError(f"expected shape ({self.embedding_dim},), got {vector.shape}")
        choices, offset = [], 0
        for n in self.num_choices:
            choices.append(int(np.argmax(vector[offset : offset + n])))
            offset += n
        return Architecture(self.name, tuple(choices))

    def block_embeddings(self, arch: Architecture) -> list[BlockEmbedding]:
        """Per-block one-hot embeddings, in network order (for the knowledge pool)."""
        self.validate(arch)
        out = []
        for b, idx in enumerate(self.blocks):
            parts = []
            for i in idx:
                v = np.zeros(self.decisions[i].n, dtype=np.float32)
                v[arch.choices[i]] = 1.0
                parts.append(v)
            out.append(BlockEmbedding(b, np.concatenate(parts), self._format_block(arch, b)))
        return out

    def to_tokens(self, arch: Architecture) -> tuple[int, ...]:
        """The episode's token (action) sequence that builds ``arch``."""
        return self.validate(arch).choices

    # ---- compact strings ------------------------------------------------------
    def to_string(self, arch: Architecture) -> str:
        self.validate(arch)
        return self.separator.join(self._format_block(arch, b) for b in range(len(self.blocks)))

    def from_string(self, text: str) -> Architecture:
        parts = text.split(self.separator)
        if len(parts) != len(self.blocks):
            raise ValueError(
                f"space {self.name!r} expects {len(self.blocks)} blocks separated by "
                f"{self.separator!r}, e.g. {self.example_string()!r}; got {text!r}"
            )
        choices = [0] * self.num_decisions
        for b, part in enumerate(parts):
            try:
                values = self._parse_block(part, b)
            except (ValueError, KeyError, IndexError) as exc:
                raise ValueError(
                    f"cannot parse block {b} {part!r} of space {self.name!r} "
                    f"(expected e.g. {self.example_string()!r}): {exc}"
                ) from None
            for i, value in zip(self.blocks[b], values):
                choices_i = self.decisions[i].choices
                if value not in choices_i:
                    raise ValueError(
                        f"block {b} of {text!r}: {self.decisions[i].name} accepts "
                        f"{list(choices_i)}, got {value!r}"
                    )
                choices[i] = choices_i.index(value)
        return self.from_choices(choices)

    def example_string(self) -> str:
        return self.to_string(Architecture(self.name, (0,) * self.num_decisions))

    def _format_block(self, arch: Architecture, block: int) -> str:
        raise NotImplementedError

    def _parse_block(self, text: str, block: int) -> tuple[Any, ...]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, decisions={self.num_decisions})"
