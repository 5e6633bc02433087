"""Durable, append-only search record (JSON lines, fsynced per entry).

Every scored architecture is one line: a search killed with SIGKILL loses no
completed evaluation, and :func:`read_record` reads it back (a torn last line
is skipped) to resume a search or to train the critic.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fnas_env.arch import Architecture
from fnas_env.evaluators.base import Evaluation
from fnas_env.files import jsonable

__all__ = [
    "RecordEntry",
    "SearchRecord",
    "SearchCounters",
    "read_record",
    "record_kind",
    "KINDS",
]

#: activated: really evaluated (trained / looked up as trained); cached: a repeat
#: of an architecture this record already holds, served its recorded result at no
#: cost; trusted: rewarded by the critic's prediction (UAC), nothing evaluated;
#: replayed: a stored episode reused by the controller (AEB), no evaluation.
KINDS = ("activated", "cached", "trusted", "replayed")

#: Records written before the kinds had these names say "evaluated" and
#: "surrogate"; reading maps them to "activated" and "trusted".
LEGACY_KINDS = {"evaluated": "activated", "surrogate": "trusted"}


@dataclass(frozen=True)
class RecordEntry:
    """One line of the record."""

    arch: str
    space: str
    choices: tuple[int, ...]
    reward: float
    kind: str
    accuracy: float | None
    latency: float | None
    throughput: float | None
    macs: float | None
    params: float | None
    cost: float | None
    failed: bool
    wall_time: float
    seed: int | None
    timestamp: float
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def activated(self) -> bool:
        """Really evaluated (kind ``"activated"``)."""
        return self.kind == "activated"

    @property
    def architecture(self) -> Architecture:
        return Architecture(self.space, tuple(self.choices))

    def to_evaluation(self) -> Evaluation:
        """The Evaluation this entry recorded (``cached=False``; extras as stored)."""
        return Evaluation(
            accuracy=float("nan") if self.accuracy is None else self.accuracy,
            latency=self.latency,
            throughput=self.throughput,
            macs=self.macs,
            params=self.params,
            cost=self.cost,
            trusted=self.kind == "trusted",
            failed=self.failed,
            extras=dict(self.extras),
        )

    def to_json(self) -> str:
        return json.dumps(jsonable(asdict(self)), allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecordEntry:
        d = dict(d)
        d["choices"] = tuple(d["choices"])
        d["kind"] = LEGACY_KINDS.get(d["kind"], d["kind"])
        return cls(**d)


def record_kind(evaluation: Evaluation) -> str:
    """Record kind of an evaluation: served from a record, trusted prediction, or real."""
    if evaluation.cached:
        return "cached"
    return "trusted" if evaluation.trusted else "activated"


@dataclass
class SearchCounters:
    """Sample counters of a search and its running best.

    ``sampled`` counts every architecture the search produced (activated,
    cached and trusted entries; replays are counted apart). ``activated``
    counts real evaluations only; ``trusted`` counts rewards the critic
    predicted; ``cached`` counts repeats served from the record, which cost
    nothing and cannot change the best values (their result was counted when it
    was first activated).
    """

    sampled: int = 0
    activated: int = 0
    cached: int = 0
    trusted: int = 0
    replayed: int = 0
    failed: int = 0
    cost: float = 0.0
    best_reward: float = -math.inf
    best_accuracy: float = -math.inf
    best_arch: str | None = None

    def update(self, entry: RecordEntry) -> None:
        if entry.kind == "replayed":
            self.replayed += 1
            return
        self.sampled += 1
        if entry.kind == "trusted":
            self.trusted += 1
            return
        if entry.kind == "cached":
            self.cached += 1
            return
        self.activated += 1
        self.failed += int(entry.failed)
        self.cost += entry.cost or 0.0
        if entry.reward > self.best_reward:
            self.best_reward, self.best_arch = entry.reward, entry.arch
        if entry.accuracy is not None:
            self.best_accuracy = max(self.best_accuracy, entry.accuracy)


class SearchRecord:
    """Append-only record of a search, with counters.

    Args:
        path: JSON-lines file; ``None`` keeps the record in memory only. An
            existing file is read first, so counters resume where it stopped.
        seed: stored with every entry.
    """

    def __init__(self, path: str | os.PathLike | None = None, seed: int | None = None):
        self.path = Path(path) if path is not None else None
        self.seed = seed
        self.counters = SearchCounters()
        self.entries: list[RecordEntry] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                for entry in read_record(self.path):
                    self._keep(entry)
                _end_torn_line(self.path)

    def _keep(self, entry: RecordEntry) -> None:
        self.entries.append(entry)
        self.counters.update(entry)

    def append(
        self,
        arch: Architecture,
        evaluation: Evaluation | None,
        reward: float,
        kind: str,
        wall_time: float = 0.0,
    ) -> RecordEntry:
        """Add one entry and make it durable before returning."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        from fnas_env.spaces import get_space

        ev = evaluation or Evaluation(accuracy=float("nan"))
        entry = RecordEntry(
            arch=get_space(arch.space).to_string(arch),
            space=arch.space,
            choices=arch.choices,
            reward=float(reward),
            kind=kind,
            accuracy=None if ev.accuracy is None or math.isnan(ev.accuracy) else float(ev.accuracy),
            latency=ev.latency,
            throughput=ev.throughput,
            macs=ev.macs,
            params=ev.params,
            cost=ev.cost,
            failed=bool(ev.failed),
            wall_time=float(wall_time),
            seed=self.seed,
            timestamp=time.time(),
            extras=dict(ev.extras),
        )
        if self.path is not None:
            line = entry.to_json() + "\n"
            # O_APPEND single write: concurrent writers never interleave a line.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        self._keep(entry)
        return entry

    def results(self) -> dict[Architecture, Evaluation]:
        """The latest successful real evaluation of each architecture (what a repeat is served)."""
        return {
            e.architecture: e.to_evaluation()
            for e in self.entries
            if e.kind == "activated" and not e.failed and e.accuracy is not None
        }

    def activated(self) -> list[RecordEntry]:
        """Activated (really evaluated) entries: the critic's training data."""
        return [e for e in self.entries if e.kind == "activated"]

    def __len__(self) -> int:
        return len(self.entries)


def _end_torn_line(path: Path) -> None:
    """End a torn last line (killed writer) so the next entry starts a line of its own."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_record(path: str | os.PathLike) -> Iterator[RecordEntry]:
    """Entries of a record file; a torn (partially written) line is skipped.

    Kinds written as ``"evaluated"`` / ``"surrogate"`` are read as ``"activated"``
    / ``"trusted"`` (:data:`LEGACY_KINDS`).
    """
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn last write of a killed process
            try:
                yield RecordEntry.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError, KeyError):
                continue
