"""The search methods a run folder can hold (``fnas search --method``); no imports beyond Python.

:func:`agents.runner.run_in_folder` runs them; the command lists them without
loading torch or Stable-Baselines3.
"""

from __future__ import annotations

__all__ = ["METHODS", "RL_METHODS"]

#: method -> what it is
METHODS: dict[str, str] = {
    "fnas": "RecurrentPPO controller with UAC and AEB (and AKP inside FNAS-MNAS-v0)",
    "mnas": "the plain RecurrentPPO controller (MnasNet's), every sample evaluated",
    "evolution": "regularized evolution (Real et al., 2019)",
    "random": "random search",
    "reinforce": "REINFORCE with a moving-average baseline",
}
#: methods that step the env token by token with an RL controller (any number of workers)
RL_METHODS = ("fnas", "mnas")
