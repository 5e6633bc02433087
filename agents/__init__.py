"""Search agents for the FNAS envs: the RecurrentPPO controller, baselines, callbacks, harness.

Names load lazily, so ``agents.baselines`` (random search, evolution) imports
without torch or Stable-Baselines3.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "make_controller",
    "SearchBudgetCallback",
    "random_search",
    "regularized_evolution",
    "reinforce",
    "run_method",
    "register_method",
    "METHODS",
    "FNASRecurrentPPO",
    "make_fnas_controller",
    "run_search",
]

_LAZY = {
    "make_controller": "agents.controller",
    "SearchBudgetCallback": "agents.callbacks",
    "random_search": "agents.baselines",
    "regularized_evolution": "agents.baselines",
    "reinforce": "agents.baselines",
    "run_method": "agents.harness",
    "register_method": "agents.harness",
    "METHODS": "agents.harness",
    "FNASRecurrentPPO": "agents.fnas_ppo",
    "make_fnas_controller": "agents.fnas_ppo",
    "run_search": "agents.search",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
