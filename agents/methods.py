"""The search methods a run folder can hold (``fnas search --method``); no imports beyond Python.

:func:`agents.runner.run_in_folder` runs them; the command lists them without
loading torch or Stable-Baselines3.
"""

from __future__ import annotations

__all__ = [
    "METHODS",
    "RL_METHODS",
    "FNAS_METHODS",
    "SCREEN_GATE",
    "SCREEN_CRITIC",
    "SCREEN_CONTROLLER",
    "SCREEN_KEEP_CONTROLLER",
    "SCREEN_METHODS",
    "CONTROLLERS",
]

#: method -> what it is
METHODS: dict[str, str] = {
    "fnas": "RecurrentPPO controller with UAC and AEB (and AKP inside FNAS-MNAS-v0)",
    "fnas-screen": "fnas beyond the paper: the critic screens the controller's proposals "
    "and the best architectures' neighbours, and only the most promising are trained",
    "fnas-screen-keep": "fnas-screen whose PPO batches keep a proposal the critic replaced "
    "by a neighbour outside the trusted quota: fewer evaluations per PPO sample",
    "mnas": "the plain RecurrentPPO controller (MnasNet's), every sample evaluated",
    "evolution": "regularized evolution (Real et al., 2019)",
    "random": "random search",
    "reinforce": "REINFORCE with a moving-average baseline",
}
#: methods that step the env token by token with an RL controller (any number of workers)
RL_METHODS = ("fnas", "fnas-screen", "fnas-screen-keep", "mnas")
#: methods with the UAC gate and AEB replay
FNAS_METHODS = ("fnas", "fnas-screen", "fnas-screen-keep")
#: methods with ``fnas-screen``'s gate, critic and controller
SCREEN_METHODS = ("fnas-screen", "fnas-screen-keep")

#: ``fnas-screen``'s UAC gate (:class:`wrappers.uac.TrustRule` arguments), beyond the
#: paper: the gate activates the sampled architectures whose optimistic score V + U / 2
#: is in the top tenth of the recent ones and trusts the rest, so each trained
#: architecture is the most promising of about ten proposals (the paper's rule
#: activates the most uncertain ones); each time it would train a proposal it trains the
#: best-scoring neighbour of the three best architectures instead where that scores
#: higher; it may trust after 10 evaluations. Chosen on NB201 cifar10 and Macro tuning
#: seeds (BENCHMARKS.md, "Screening settings").
SCREEN_GATE: dict[str, object] = {
    "selection": "ucb",
    "kappa": 0.5,
    "trusted_fraction": 0.9,
    "max_relative_error": 1.0,
    "incumbents": 3,
    "warmup": 10,
    "quality_window": 10,
}
#: ``fnas-screen``'s critic (:class:`wrappers.critic.UncertaintyCritic` arguments): U is
#: the spread of an ensemble of 5 V networks.
SCREEN_CRITIC: dict[str, object] = {"ensemble": 5}
#: ``fnas-screen``'s controller (:class:`agents.fnas_ppo.FNASRecurrentPPO` arguments): a
#: PPO batch may hold 75% trusted samples (the paper's rule: 50%).
SCREEN_CONTROLLER: dict[str, object] = {"max_trusted_fraction": 0.75}
#: ``fnas-screen-keep``'s controller: ``fnas-screen``'s, and a trusted episode whose
#: proposal the gate replaced by a neighbour (evaluated aside) is kept in the batch
#: outside the trusted quota (``FNASRecurrentPPO(keep_replaced=True)``).
SCREEN_KEEP_CONTROLLER: dict[str, object] = {**SCREEN_CONTROLLER, "keep_replaced": True}
#: FNASRecurrentPPO arguments of each FNAS method beyond the library's defaults
CONTROLLERS: dict[str, dict[str, object]] = {
    "fnas-screen": SCREEN_CONTROLLER,
    "fnas-screen-keep": SCREEN_KEEP_CONTROLLER,
}
