"""The one value passed between modules: an immutable, hashable architecture."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Architecture"]


@dataclass(frozen=True, slots=True)
class Architecture:
    """An architecture of a named search space, as one choice index per decision.

    ``choices[i]`` indexes the choices of the space's ``i``-th decision. The value
    is immutable and hashable, so it can key caches, tables and sets. Convert it
    with the space it belongs to (``get_space(arch.space)``): to a compact string,
    a one-hot embedding, per-block embeddings, or the token sequence of an episode.
    """

    space: str
    choices: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(int(c) for c in self.choices))

    def __str__(self) -> str:
        """The space's compact string; for an architecture its space rejects (or an unknown
        space), the dataclass form and why, so printing one in an error path never raises."""
        from fnas_env.spaces import get_space

        try:
            return get_space(self.space).to_string(self)
        except (ValueError, TypeError, IndexError) as err:
            return f"{self!r} (not a valid architecture: {err})"
