"""MnasNet's multi-objective reward, as pure functions.

``R = ACC x (LAT / T) ** w`` with ``w = alpha`` if ``LAT <= T`` else ``beta``
(Tan et al., MnasNet, Eq. 2). Soft constraint: ``alpha = beta = -0.07``; hard
constraint: ``alpha = 0, beta = -1``. With no target, the reward is the accuracy.

Throughput objectives (Accel-NASBench): higher is better, so the ratio is
inverted, ``R = ACC x (THR / T) ** -w``; i.e. below the target throughput the
reward is penalised as a latency above target would be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = [
    "RewardConfig",
    "SOFT",
    "HARD",
    "ACCURACY_ONLY",
    "PRESETS",
    "mnas_reward",
    "reward_config",
]


@dataclass(frozen=True)
class RewardConfig:
    """Reward settings: target ``T`` (None = accuracy only), exponents, objective.

    ``objective`` is ``"latency"`` (lower is better; ms, or MACs when the cost
    model is MACs) or ``"throughput"`` (higher is better, images/s).
    """

    target: float | None = None
    alpha: float = -0.07
    beta: float = -0.07
    objective: str = "latency"

    def __post_init__(self) -> None:
        if self.objective not in ("latency", "throughput"):
            raise ValueError(f"objective must be 'latency' or 'throughput', got {self.objective!r}")
        if self.target is not None and not (self.target > 0 and math.isfinite(self.target)):
            raise ValueError(f"target must be a positive finite number or None, got {self.target}")


SOFT = RewardConfig(alpha=-0.07, beta=-0.07)
HARD = RewardConfig(alpha=0.0, beta=-1.0)
ACCURACY_ONLY = RewardConfig(target=None)
#: the constraints :func:`reward_config` knows by name
PRESETS = {"soft": SOFT, "hard": HARD}


def reward_config(
    constraint: str = "soft", target: float | None = None, objective: str = "latency"
) -> RewardConfig:
    """Preset by name: ``"soft"`` (:data:`SOFT`, -0.07/-0.07) or ``"hard"`` (:data:`HARD`, 0/-1)."""
    if constraint not in PRESETS:
        raise ValueError(f"constraint must be one of {sorted(PRESETS)}, got {constraint!r}")
    return replace(PRESETS[constraint], target=target, objective=objective)


def mnas_reward(accuracy: float, cost: float | None, config: RewardConfig) -> float:
    """``ACC x (LAT/T)^w``; the accuracy alone when ``config.target`` is None.

    ``accuracy`` is a fraction or percentage (returned on the same scale).

    Raises:
        ValueError: a target is set but ``cost`` is None (the evaluation measured no
            latency or throughput) or not positive.
    """
    if config.target is None:
        return float(accuracy)
    if cost is None:
        raise ValueError(
            "a target was given but the evaluation has no latency/throughput; "
            "use target=None for accuracy-only reward"
        )
    if not cost > 0:
        raise ValueError(f"latency/throughput must be positive, got {cost}")
    ratio = cost / config.target
    if config.objective == "latency":
        w = config.alpha if cost <= config.target else config.beta
        return float(accuracy * ratio**w)
    # throughput: meeting the target means cost >= target
    w = config.alpha if cost >= config.target else config.beta
    return float(accuracy * ratio ** (-w))
