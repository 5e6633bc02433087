"""FNAS's wrappers: the uncertainty-aware critic gate (UAC), the experience buffer (AEB)
and the search record of a VecEnv.

Names load lazily, so ``from wrappers import ExperienceBuffer`` does not import
torch (only the critic builds models).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "Experience",
    "ExperienceBuffer",
    "TrustRule",
    "UncertaintyCritic",
    "UncertaintyGate",
    "VecSearchRecord",
    "VecUncertaintyGate",
]

_HOME = {
    "Experience": "wrappers.aeb",
    "ExperienceBuffer": "wrappers.aeb",
    "UncertaintyCritic": "wrappers.critic",
    "UncertaintyGate": "wrappers.uac",
    "TrustRule": "wrappers.uac",
    "VecUncertaintyGate": "wrappers.uac",
    "VecSearchRecord": "wrappers.record",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'wrappers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
