"""Durable search record: round trip, counters, SIGKILL safety, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fnas_env import Architecture
from fnas_env.evaluators import Evaluation
from fnas_env.record import SearchCounters, SearchRecord, read_record
from fnas_env.spaces import get_space

MACRO = get_space("macro")


def _arch(i: int) -> Architecture:
    """The i-th macro architecture (base-3 digits)."""
    digits = np.base_repr(i, 3).zfill(8)[-8:]
    return MACRO.from_string(digits)


def test_entries_round_trip(tmp_path):
    path = tmp_path / "sub" / "record.jsonl"
    record = SearchRecord(path, seed=7)
    ev = Evaluation(
        accuracy=np.float32(91.25),
        latency=np.float64(3.5),
        macs=12.0,
        params=0.5,
        cost=120.0,
        extras={"test_accuracy": 90.0, "runs": [1.0, 2.0], "nested": {"a": np.int64(3)}},
    )
    written = [
        record.append(_arch(1), ev, 91.25, "activated", wall_time=2.5),
        record.append(_arch(2), ev.replace(trusted=True), 88.0, "trusted"),
        record.append(_arch(3), None, 80.0, "replayed"),
        record.append(_arch(4), ev.replace(accuracy=math.nan, failed=True), 0.0, "activated"),
    ]
    back = list(read_record(path))
    assert len(back) == 4
    for w, b in zip(written, back):
        assert b.arch == w.arch == MACRO.to_string(b.architecture)
        assert b.architecture == Architecture("macro", w.choices)
        assert (b.kind, b.reward, b.seed, b.failed) == (w.kind, w.reward, 7, w.failed)
        assert b.timestamp == w.timestamp
    first = back[0]
    assert first.accuracy == 91.25 and first.latency == 3.5 and first.cost == 120.0
    assert first.wall_time == 2.5 and first.activated
    assert first.extras == {"test_accuracy": 90.0, "runs": [1.0, 2.0], "nested": {"a": 3}}
    assert back[2].accuracy is None and not back[2].activated  # replayed: no evaluation
    assert back[3].accuracy is None and back[3].failed
    assert [e.arch for e in record.activated()] == [back[0].arch, back[3].arch]


def test_records_with_the_legacy_kinds_still_load(tmp_path):
    """Lines that say "evaluated" / "surrogate" read as "activated" / "trusted"."""
    common = {
        "space": "macro", "reward": 90.0, "accuracy": 90.0, "latency": None,
        "throughput": None, "macs": None, "params": None, "cost": 1.0, "failed": False,
        "wall_time": 1.0, "seed": 0, "timestamp": 0.0, "extras": {},
    }  # fmt: skip
    lines = [
        {**common, "arch": str(_arch(1)), "choices": list(_arch(1).choices), "kind": "evaluated"},
        {**common, "arch": str(_arch(2)), "choices": list(_arch(2).choices), "kind": "surrogate"},
        {**common, "arch": str(_arch(1)), "choices": list(_arch(1).choices), "kind": "cached"},
    ]
    path = tmp_path / "record.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [e.kind for e in read_record(path)] == ["activated", "trusted", "cached"]
    record = SearchRecord(path)
    c = record.counters
    assert (c.sampled, c.activated, c.trusted, c.cached) == (3, 1, 1, 1)
    assert [e.arch for e in record.activated()] == [str(_arch(1))]
    assert set(record.results()) == {_arch(1)}  # a repeat of it is served from the record
    assert record.entries[1].to_evaluation().trusted


def test_run_settings_read_lr_as_learning_rate():
    from fnas_env.run import RunSettings

    settings = RunSettings.from_dict({"env_id": "FNAS-MNAS-v0", "env_kwargs": {"lr": 0.2}})
    assert settings.env_kwargs == {"learning_rate": 0.2}


def test_append_rejects_unknown_kind(tmp_path):
    record = SearchRecord(tmp_path / "r.jsonl")
    with pytest.raises(ValueError, match="kind must be one of"):
        record.append(_arch(0), Evaluation(accuracy=1.0), 1.0, "guessed")
    assert len(record) == 0


def test_counters():
    record = SearchRecord(None)
    ev = Evaluation(accuracy=70.0, cost=10.0)
    record.append(_arch(0), ev, 70.0, "activated")
    record.append(_arch(1), ev.replace(accuracy=75.0, cost=5.0), 72.0, "activated")
    record.append(_arch(2), ev.replace(trusted=True, accuracy=99.0), 99.0, "trusted")
    record.append(_arch(3), None, 98.0, "replayed")
    record.append(_arch(4), ev.replace(accuracy=0.0, failed=True, cost=1.0), 0.0, "activated")
    c = record.counters
    assert (c.sampled, c.activated, c.trusted, c.replayed, c.failed) == (4, 3, 1, 1, 1)
    assert c.cost == pytest.approx(16.0)
    # trusted and replayed rewards never count as the best found
    assert (c.best_reward, c.best_arch, c.best_accuracy) == (72.0, _arch(1).__str__(), 75.0)
    assert SearchCounters().best_reward == -math.inf


def test_cached_entries_are_sampled_but_neither_activated_nor_paid(tmp_path):
    path = tmp_path / "r.jsonl"
    record = SearchRecord(path)
    ev = Evaluation(accuracy=70.0, cost=10.0)
    record.append(_arch(0), ev, 70.0, "activated")
    record.append(_arch(0), ev.replace(cached=True, cost=0.0), 70.0, "cached")
    record.append(_arch(0), ev.replace(cached=True, cost=0.0), 70.0, "cached")
    c = record.counters
    assert (c.sampled, c.activated, c.cached, c.trusted, c.failed) == (3, 1, 2, 0, 0)
    assert c.cost == 10.0 and (c.best_reward, c.best_accuracy) == (70.0, 70.0)
    # a cached entry never moves the best: its result was counted when first evaluated
    record.append(_arch(1), ev.replace(accuracy=99.0, cached=True, cost=0.0), 99.0, "cached")
    assert (c.best_reward, c.best_accuracy, c.best_arch) == (70.0, 70.0, str(_arch(0)))
    back = list(read_record(path))
    assert [e.kind for e in back] == ["activated", "cached", "cached", "cached"]
    assert [e.activated for e in back] == [True, False, False, False]
    assert back[1].cost == 0.0 and back[1].wall_time == 0.0
    assert [e.arch for e in record.activated()] == [str(_arch(0))]  # critic data: no repeats
    assert SearchRecord(path).counters == c


def test_reopen_resumes_counters(tmp_path):
    path = tmp_path / "r.jsonl"
    record = SearchRecord(path)
    for i in range(5):
        record.append(_arch(i), Evaluation(accuracy=60.0 + i, cost=1.0), 60.0 + i, "activated")
    record.append(_arch(9), None, 1.0, "replayed")
    resumed = SearchRecord(path)
    assert resumed.counters == record.counters
    assert len(resumed) == 6
    resumed.append(_arch(10), Evaluation(accuracy=99.0, cost=1.0), 99.0, "activated")
    again = SearchRecord(path)
    assert (again.counters.activated, again.counters.best_reward) == (6, 99.0)


def test_torn_last_line_is_skipped_and_resume_appends_cleanly(tmp_path):
    path = tmp_path / "r.jsonl"
    record = SearchRecord(path)
    for i in range(3):
        record.append(_arch(i), Evaluation(accuracy=50.0, cost=1.0), 50.0, "activated")
    full = path.read_bytes()
    with open(path, "ab") as f:  # a killed writer's half line
        f.write(full.splitlines()[0][:40])
    assert len(list(read_record(path))) == 3
    resumed = SearchRecord(path)
    assert resumed.counters.activated == 3
    resumed.append(_arch(7), Evaluation(accuracy=77.0, cost=1.0), 77.0, "activated")
    back = list(read_record(path))
    assert [e.arch for e in back] == [_arch(i).__str__() for i in (0, 1, 2, 7)]


WRITER = textwrap.dedent(
    """
    import sys
    from fnas_env.evaluators import Evaluation
    from fnas_env.record import SearchRecord
    from fnas_env.spaces import get_space

    space = get_space("macro")
    record = SearchRecord(sys.argv[1])
    i = 0
    while True:
        digits = "".join(str((i // 3**k) % 3) for k in range(8))
        ev = Evaluation(accuracy=float(i % 97), cost=1.0, extras={"i": i, "pad": "x" * 300})
        record.append(space.from_string(digits), ev, float(i), "activated")
        i += 1
        print(i, flush=True)
    """
)


def test_sigkill_loses_no_completed_entry(tmp_path):
    path = tmp_path / "killed.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        completed = 0
        while completed < 30:
            line = proc.stdout.readline()
            assert line, f"writer died: {proc.stderr.read()}"
            completed = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    entries = list(read_record(path))
    # every append that returned (and was reported) is on disk, in order
    assert len(entries) >= completed
    assert [e.extras["i"] for e in entries] == list(range(len(entries)))
    assert all(e.reward == float(e.extras["i"]) for e in entries)
    resumed = SearchRecord(path)
    assert resumed.counters.activated == len(entries)
