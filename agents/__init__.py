"""Search agents for the FNAS envs: the RecurrentPPO controller, baselines, callbacks.

Names load lazily, so ``agents.baselines`` (random search, evolution) imports
without torch or Stable-Baselines3.
"""

from __future__ import annotations

from fnas_env.lazy import lazy_attributes

__all__ = [
    "make_controller",
    "SearchBudgetCallback",
    "random_search",
    "regularized_evolution",
    "reinforce",
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
    "FNASRecurrentPPO": "agents.fnas_ppo",
    "make_fnas_controller": "agents.fnas_ppo",
    "run_search": "agents.search",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
