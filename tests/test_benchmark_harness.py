"""The benchmarks' harness (benchmarks/harness.py): traces, the method table, counting."""

from __future__ import annotations

import numpy as np
import pytest
from test_agents import assert_repeats_are_cached

from benchmarks.harness import METHODS, reach, run_method
from fnas_env.record import read_record


def test_harness_trace_and_methods(benchmark_dir):
    trace = run_method(
        "evolution", "FNAS-Macro-v0", {"benchmark_dir": benchmark_dir}, budget=30, seed=0
    )
    assert [p.activated for p in trace] == list(range(1, 31))
    best = np.maximum.accumulate([p.accuracy for p in trace])
    assert np.allclose([p.best_accuracy for p in trace], best)
    assert all(p.eval_time <= p.wall_time + 1e-6 for p in trace)
    assert [p.unique for p in trace] == list(range(1, 31))
    assert reach(trace, trace[-1].best_accuracy) == int(np.argmax(best >= best[-1])) + 1
    assert reach(trace, 101.0) is None
    with pytest.raises(ValueError, match="unknown method"):
        run_method("nope", "FNAS-Macro-v0", budget=1)
    with pytest.raises(TypeError, match="does not support item assignment"):
        METHODS["random"] = lambda *a, **k: None  # a method name is never replaced
    assert {"random", "evolution", "reinforce", "ppo-lstm"} <= set(METHODS)


def test_harness_ppo_lstm_respects_budget(benchmark_dir):
    trace = run_method(
        "ppo-lstm", "FNAS-NB201-v0", {"benchmark_dir": benchmark_dir}, budget=12, seed=0
    )
    assert len(trace) == 12 and [p.unique for p in trace] == list(range(1, 13))
    assert all(p.sampled == p.activated + p.cached for p in trace)
    assert trace[-1].test_accuracy is not None


def test_harness_trace_counts_repeats_as_cached(benchmark_dir, tmp_path):
    path = tmp_path / "record.jsonl"
    kwargs = {"benchmark_dir": benchmark_dir, "record_path": path}
    trace = run_method("evolution", "FNAS-NB201-v0", kwargs, budget=30, seed=0)
    assert [p.activated for p in trace] == [p.unique for p in trace] == list(range(1, 31))
    assert len({p.arch for p in trace}) == 30
    entries = list(read_record(path))
    assert_repeats_are_cached(entries)
    assert [e.arch for e in entries if e.kind == "activated"] == [p.arch for p in trace]
    for point in trace:  # cached and sampled so far, as the record has them
        upto = entries[: point.sampled]
        assert upto[-1].arch == point.arch and upto[-1].kind == "activated"
        assert point.cached == sum(e.kind == "cached" for e in upto)
        assert point.sampled == point.activated + point.cached
