"""The search methods a run folder can hold (``fnas search --method``); no imports beyond Python.

:func:`agents.runner.run_in_folder` runs them; the command lists them without
loading torch or Stable-Baselines3.
"""

from __future__ import annotations

__all__ = ["METHODS", "RL_METHODS", "FNAS_METHODS", "SCREEN_GATE", "SCREEN_CONTROLLER"]

#: method -> what it is
METHODS: dict[str, str] = {
    "fnas": "RecurrentPPO controller with UAC and AEB (and AKP inside FNAS-MNAS-v0)",
    "fnas-screen": "fnas beyond the paper: the critic screens the controller's proposals "
    "and only the most promising tenth is trained",
    "mnas": "the plain RecurrentPPO controller (MnasNet's), every sample evaluated",
    "evolution": "regularized evolution (Real et al., 2019)",
    "random": "random search",
    "reinforce": "REINFORCE with a moving-average baseline",
}
#: methods that step the env token by token with an RL controller (any number of workers)
RL_METHODS = ("fnas", "fnas-screen", "mnas")
#: methods with the UAC gate and AEB replay
FNAS_METHODS = ("fnas", "fnas-screen")

#: ``fnas-screen``'s UAC gate (:class:`wrappers.uac.TrustRule` arguments), beyond the
#: paper: the gate activates the sampled architectures whose optimistic score V + U is
#: in the top tenth of the recent ones and trusts the rest, so each trained architecture
#: is the most promising of about ten proposals (the paper's rule activates the most
#: uncertain ones). Chosen on NB201 cifar10 and Macro tuning seeds (BENCHMARKS.md).
SCREEN_GATE: dict[str, object] = {
    "selection": "ucb",
    "kappa": 1.0,
    "trusted_fraction": 0.9,
    "max_relative_error": 1.0,
}
#: ``fnas-screen``'s controller (:class:`agents.fnas_ppo.FNASRecurrentPPO` arguments): a
#: PPO batch may hold 75% trusted samples (the paper's rule: 50%).
SCREEN_CONTROLLER: dict[str, object] = {"max_trusted_fraction": 0.75}
