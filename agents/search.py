"""Run any SB3 model as a NAS search: until a budget of activated samples is spent.

An SB3 ``learn`` call counts environment steps; a search counts activated samples
(architectures really evaluated). Trusted (critic-scored), cached (repeats served
from the record) and discarded episodes cost steps but no evaluation, so no fixed
``total_timesteps`` matches a budget. :func:`run_search` stops ``learn`` with
:class:`~agents.callbacks.SearchBudgetCallback` once ``budget`` more activated samples
are recorded (or ``max_samples`` sampled architectures, a bound for a search that can
only repeat what it has already evaluated), and tells an
:class:`~agents.fnas_ppo.FNASRecurrentPPO` its budget so that its schedules follow the
search's progress.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from agents.callbacks import SearchBudgetCallback, check_count

__all__ = ["run_search", "DEFAULT_SAMPLE_FACTOR"]

#: ``max_samples`` defaults to this many times the budget.
DEFAULT_SAMPLE_FACTOR = 20


def run_search(
    model: BaseAlgorithm,
    budget: int,
    max_samples: int | None = None,
    callback: BaseCallback | list[BaseCallback] | None = None,
    **learn_kwargs: Any,
) -> SearchBudgetCallback:
    """``model.learn`` until ``budget`` more activated samples are recorded.

    Args:
        model: an SB3 model on a NAS env or a VecEnv of them (wrappers allowed).
        budget: activated samples to spend (a positive int).
        max_samples: stop after this many sampled architectures of any kind, cached,
            trusted and discarded ones included (default ``20 x budget``).
        callback: more callbacks, run before the budget callback.
        **learn_kwargs: other ``learn`` arguments (``progress_bar``, ``tb_log_name``,
            ``reset_num_timesteps``, ...).

    Returns:
        The :class:`~agents.callbacks.SearchBudgetCallback` (its ``activated`` and
        ``scalars`` tell what the search did).

    Raises:
        ValueError: a budget or ``max_samples`` that is not a positive int.
    """
    if budget is None:
        raise ValueError("budget must be a positive int (activated samples), got None")
    check_count("budget", budget)
    check_count("max_samples", max_samples)
    if "total_timesteps" in learn_kwargs:
        raise TypeError("run_search sets total_timesteps from budget and max_samples")
    max_samples = int(max_samples or DEFAULT_SAMPLE_FACTOR * budget)
    env = model.get_env()
    if env is None:
        raise ValueError("the model has no env: pass one to the model or call set_env()")
    horizon = max(env.get_attr("horizon")) if env.has_attr("horizon") else 1
    one_shot = any(env.get_attr("one_shot")) if env.has_attr("one_shot") else False
    steps_per_sample = 1 if one_shot else int(horizon)
    if hasattr(model, "search_budget") and hasattr(model, "fnas_counters"):
        model.search_budget = model.fnas_counters.evaluations + int(budget)
    stop = SearchBudgetCallback(int(budget), max_samples=max_samples)
    if callback is None:
        callbacks = []
    else:
        callbacks = list(callback) if isinstance(callback, list) else [callback]
    model.learn(
        total_timesteps=steps_per_sample * max_samples,
        callback=CallbackList([*callbacks, stop]),
        **learn_kwargs,
    )
    return stop
