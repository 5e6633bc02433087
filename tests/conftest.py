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


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    """Machine-level caches (the latency lookup table) go to a temporary folder, not the
    user's home; subprocesses and Ray workers started by tests inherit it."""
    import os

    previous = os.environ.get("FNAS_CACHE_DIR")
    os.environ["FNAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("fnas-cache"))
    yield
    if previous is None:
        os.environ.pop("FNAS_CACHE_DIR", None)
    else:
        os.environ["FNAS_CACHE_DIR"] = previous
