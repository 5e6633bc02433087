"""Shared fixtures: the benchmark data folder and temporary record paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from fnas_env.evaluators.base import default_benchmark_dir


@pytest.fixture(scope="session")
def benchmark_dir() -> Path:
    """``$FNAS_BENCHMARK_DIR`` or ``../shared/benchmarks``; a missing folder fails the test."""
    path = default_benchmark_dir()
    assert path is not None and path.is_dir(), (
        "benchmark data not found: set FNAS_BENCHMARK_DIR or place it at ../shared/benchmarks"
    )
    return path


@pytest.fixture(scope="session", autouse=True)
def _single_torch_thread():
    """Tiny models run far faster on one thread than on two contended ones (2-core CI)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
