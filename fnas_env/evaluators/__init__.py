"""Evaluators: ``evaluate(arch) -> Evaluation`` for tables, surrogates and training."""

from __future__ import annotations

from fnas_env.evaluators.base import Evaluation, Evaluator, MissingBenchmarkData

__all__ = ["Evaluation", "Evaluator", "MissingBenchmarkData"]
