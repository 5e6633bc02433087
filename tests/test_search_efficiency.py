"""The search-efficiency benchmark: JSON schema, and reaching figures that match the traces."""

from __future__ import annotations

import json

import pytest

from benchmarks.harness import TracePoint, run_method
from benchmarks.search_efficiency import main, summarize_run, tables, thresholds

KEYS = {
    "env",
    "method",
    "seed",
    "budget",
    "activated_to_top1pct",
    "activated_to_top01pct",
    "top1pct_accuracy",
    "top01pct_accuracy",
    "best_accuracy",
    "best_arch",
    "best_test_accuracy",
    "unique",
    "sampled",
    "wall_s",
    "eval_s",
    "overhead_ms_per_arch",
    "best_accuracy_trace",
    "best_at_100",
    "best_at_500",
}


def first_reach(trace: list[float], threshold: float) -> int | None:
    hits = [i + 1 for i, best in enumerate(trace) if best >= threshold]
    return hits[0] if hits else None


def test_tiny_benchmark_json(tmp_path, benchmark_dir, capsys):
    path = tmp_path / "out.json"
    main(
        [
            "--methods",
            "random,evolution,ppo-lstm",
            "--envs",
            "macro",
            "--seeds",
            "2",
            "--budget",
            "24",
            "--json",
            str(path),
            "--benchmark-dir",
            str(benchmark_dir),
        ]
    )
    printed = capsys.readouterr().out
    records = json.loads(path.read_text())
    assert len(records) == 3 * 2
    assert {(r["method"], r["seed"]) for r in records} == {
        (m, s) for m in ("random", "evolution", "ppo-lstm") for s in (0, 1)
    }
    targets = thresholds("FNAS-Macro-v0", {"benchmark_dir": benchmark_dir})
    assert targets["n"] == 6561 and targets["best"] >= targets["top01pct"] >= targets["top1pct"]
    for r in records:
        assert KEYS <= set(r), KEYS - set(r)
        assert r["env"] == "macro" and r["budget"] == 24 and len(r["best_accuracy_trace"]) == 24
        trace = r["best_accuracy_trace"]
        assert all(b >= a for a, b in zip(trace, trace[1:]))
        assert r["best_accuracy"] == trace[-1]
        assert r["top1pct_accuracy"] == targets["top1pct"]
        assert r["activated_to_top1pct"] == first_reach(trace, r["top1pct_accuracy"])
        assert r["activated_to_top01pct"] == first_reach(trace, r["top01pct_accuracy"])
        assert r["best_at_100"] is None and r["best_at_500"] is None  # budget < 100
        assert r["overhead_ms_per_arch"] >= 0 and r["wall_s"] >= r["eval_s"] >= 0
        # every activated sample is a new architecture; repeats are cached, sampled apart
        assert r["unique"] == 24 and r["sampled"] >= 24
    # the harness reproduces a seed's run, so the reaching figures are those of its trace
    again = run_method(
        "evolution", "FNAS-Macro-v0", {"benchmark_dir": benchmark_dir}, budget=24, seed=1
    )
    rec = next(r for r in records if r["method"] == "evolution" and r["seed"] == 1)
    assert [p.best_accuracy for p in again] == rec["best_accuracy_trace"]
    assert "### macro" in printed and "| ppo-lstm | 2 | 24 |" in printed


def point(n: int, best: float) -> TracePoint:
    return TracePoint(
        activated=n,
        arch="a",
        accuracy=best,
        reward=best,
        best_accuracy=best,
        best_reward=best,
        wall_time=0.1 * n,
        eval_time=0.01 * n,
        sampled=n,
        unique=n,
        test_accuracy=None,
    )


def test_summarize_reaching_and_checkpoints():
    bests = [50.0] * 99 + [80.0] * 400 + [95.0] * 101
    trace = [point(i + 1, b) for i, b in enumerate(bests)]
    rec = summarize_run("e", "m", 0, trace, {"top1pct": 80.0, "top01pct": 95.0})
    assert rec["activated_to_top1pct"] == 100 and rec["activated_to_top01pct"] == 500
    assert rec["best_at_100"] == 80.0 and rec["best_at_500"] == 95.0
    assert rec["overhead_ms_per_arch"] == pytest.approx(1000 * (60.0 - 6.0) / 600)
    never = summarize_run("e", "m", 1, trace[:50], {"top1pct": 80.0, "top01pct": 95.0})
    assert never["activated_to_top1pct"] is None and never["best_at_100"] is None
    text = tables([rec, never])
    # median of (100, never) and (500, never) is infinite: not reached within the budget
    assert "| m | 2 | 50 | >50 | 1/2 | >50 | 1/2 |" in text
