"""Search spaces (pure Python/numpy): ``mnas``, ``anb``, ``macro``, ``nb201``."""

from __future__ import annotations

from fnas_env.spaces.anb import AnbSpace
from fnas_env.spaces.base import BlockEmbedding, Decision, SearchSpace
from fnas_env.spaces.macro import MacroSpace
from fnas_env.spaces.mnas import MnasSpace
from fnas_env.spaces.nb201 import NB201Space

__all__ = [
    "AnbSpace",
    "BlockEmbedding",
    "Decision",
    "MacroSpace",
    "MnasSpace",
    "NB201Space",
    "SearchSpace",
    "SPACES",
    "get_space",
]

SPACES: dict[str, SearchSpace] = {
    s.name: s for s in (MnasSpace(), AnbSpace(), MacroSpace(), NB201Space())
}


def get_space(name: str) -> SearchSpace:
    """The search space called ``name`` (one of ``mnas``, ``anb``, ``macro``, ``nb201``)."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; choose one of {sorted(SPACES)}") from None
