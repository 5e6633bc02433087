"""FNAS's wrappers: the uncertainty-aware critic gate (UAC) and the search record of a
VecEnv; the experience buffer (AEB, :mod:`agents.experience`) is importable from here too.

Names load lazily, so ``from wrappers import ExperienceBuffer`` does not import
torch (only the critic builds models).
"""

from __future__ import annotations

from fnas_env.lazy import lazy_attributes

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
    "Experience": "agents.experience",
    "ExperienceBuffer": "agents.experience",
    "UncertaintyCritic": "wrappers.critic",
    "UncertaintyGate": "wrappers.uac",
    "TrustRule": "wrappers.uac",
    "VecUncertaintyGate": "wrappers.uac",
    "VecSearchRecord": "wrappers.record",
}


__getattr__, __dir__ = lazy_attributes(__name__, _HOME)
