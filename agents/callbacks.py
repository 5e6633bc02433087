"""SB3 callback: ``search/`` scalars to TensorBoard and a budget of activated samples."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.baselines import search_scalars

__all__ = ["SearchBudgetCallback", "check_count"]


def check_count(name: str, value: int | None) -> int | None:
    """``value`` as an int if it is None or a positive int, else a ValueError naming ``name``."""
    if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
        raise ValueError(f"{name} must be None or a positive int, got {value!r}")
    return None if value is None else int(value)


class SearchBudgetCallback(BaseCallback):
    """Log the search counters and stop training after ``budget`` activated samples.

    The counters are read from each env's search record (``get_attr("counters")``)
    whenever an episode ends, so they count what the env really evaluated
    (activated; repeats served from the record, trusted rewards and replays are
    counted apart, and never spend budget). Scalars (``search/best_reward``,
    ``search/best_accuracy``, ``search/activated``, ``search/sampled``,
    ``search/cached``, ``search/trusted``, ``search/replayed``, ``search/cost``)
    go to the model's logger: TensorBoard when the model has ``tensorboard_log``.

    Args:
        budget: activated samples (summed over envs) after which ``learn`` stops,
            counted from the start of training (default None: never stop).
        max_samples: sampled architectures (summed over envs, cached repeats
            included) after which ``learn`` stops even if the budget is not spent,
            counted from the start of training (default None: no bound).
        verbose: 1 prints a line when the budget or the bound stops training
            (default 0).
    """

    def __init__(self, budget: int | None = None, verbose: int = 0, max_samples: int | None = None):
        super().__init__(verbose)
        self.budget = check_count("budget", budget)
        self.max_samples = check_count("max_samples", max_samples)
        self.scalars: dict[str, float] = {}
        self._start = 0
        self._start_sampled = 0

    def _counters(self) -> dict[str, float]:
        from agents.seam import SearchEnvs

        # the search's one record (envs spread over workers), else each env's
        return search_scalars(SearchEnvs(self.training_env).counters())

    @property
    def activated(self) -> int:
        """Activated samples since training started (as of the last episode end)."""
        return int(self.scalars.get("search/activated", self._start)) - self._start

    @property
    def sampled(self) -> int:
        """Sampled architectures since training started (as of the last episode end)."""
        return int(self.scalars.get("search/sampled", self._start_sampled)) - self._start_sampled

    def _on_training_start(self) -> None:
        self.scalars = self._counters()
        self._start = int(self.scalars["search/activated"])
        self._start_sampled = int(self.scalars["search/sampled"])

    def _on_step(self) -> bool:
        dones = self.locals.get("dones")
        if dones is None or not np.any(dones):
            return True
        self.scalars = self._counters()
        for key, value in self.scalars.items():
            self.logger.record(key, value)
        if self.budget is not None and self.activated >= self.budget:
            if self.verbose:
                print(f"search budget reached: {self.activated} activated samples")
            return False
        if self.max_samples is not None and self.sampled >= self.max_samples:
            if self.verbose:
                print(
                    f"search sample bound reached: {self.sampled} sampled architectures, "
                    f"{self.activated} activated"
                )
            return False
        return True

    def _on_training_end(self) -> None:
        self.scalars = self._counters()
        for key, value in self.scalars.items():
            self.logger.record(key, value)
        self.logger.dump(self.num_timesteps)
