"""A search's run folder: what it searched (``search.json``) and what it found (the record).

Every search the ``fnas`` command or ``examples/fnas_search.py`` runs keeps all it
produces in one folder::

    RUN/
      search.json    the search's settings: env id and kwargs (the reward's target T
                     resolved to a number), method, seed, budget
      record.jsonl   every scored architecture, append-only (fnas_env.record)
      latency.json   every latency the search used, T included (FNAS-MNAS-v0)
      tb/            TensorBoard logs
      pool/          the knowledge pool (FNAS-MNAS-v0, unless another folder was given)
      critic.pt      UAC's V and U;  aeb/  the experience buffer (method fnas)
      controller.pt  the RL controller's policy and optimizer after its last update

:class:`RunFolder` reads and writes the settings, refuses to mix two searches in one
folder, and picks the architectures a search found (by reward, or on the accuracy /
latency front). Pure Python: nothing here imports torch.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fnas_env.files import atomic_write
from fnas_env.record import RecordEntry, read_record

__all__ = ["RunSettings", "RunFolder", "RunMismatch", "NotARunFolder", "pareto_front", "RANKINGS"]

#: how :meth:`RunFolder.top` ranks architectures
RANKINGS = ("reward", "front")


class NotARunFolder(FileNotFoundError):
    """The folder holds no search (no ``search.json``)."""


class RunMismatch(ValueError):
    """The folder holds a record of another search than the one asked for."""


@dataclass(frozen=True)
class RunSettings:
    """What a search searched: enough to resume it and to rebuild its networks.

    Args:
        env_id: the registered env id (``"FNAS-MNAS-v0"``).
        env_kwargs: the ``gym.make`` keyword arguments (JSON values; for
            ``FNAS-MNAS-v0`` the target ``T`` as a number, so a resumed search scores
            with the same reward).
        method: the search method (``"fnas"``, ``"mnas"``, ``"evolution"``, ...).
        seed: the search's seed.
        budget: activated samples the search spends in all (resumed runs included).
        options: the method's other settings (JSON values), kept for the record.
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    method: str = "fnas"
    seed: int = 0
    budget: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        known = {
            k: data[k]
            for k in ("env_id", "env_kwargs", "method", "seed", "budget", "options")
            if k in data
        }
        if "env_id" not in known:
            raise ValueError("search settings have no 'env_id'")
        kwargs = known.get("env_kwargs")
        if isinstance(kwargs, dict) and "lr" in kwargs:  # settings that say "lr"
            kwargs = dict(kwargs)
            kwargs["learning_rate"] = kwargs.pop("lr")
            known["env_kwargs"] = kwargs
        return cls(**known)

    def differences(self, other: RunSettings) -> list[str]:
        """What makes ``other`` another search: env id, env kwargs, method or seed.

        The budget and the method's options may change between runs of one search.
        """
        out = []
        for name in ("env_id", "method", "seed"):
            if getattr(self, name) != getattr(other, name):
                out.append(f"{name}: {getattr(self, name)!r} here, {getattr(other, name)!r} asked")
        keys = sorted(set(self.env_kwargs) | set(other.env_kwargs))
        for key in keys:
            mine, theirs = self.env_kwargs.get(key), other.env_kwargs.get(key)
            if mine != theirs:
                out.append(f"env {key}: {mine!r} here, {theirs!r} asked")
        return out


class RunFolder:
    """The folder of one search.

    Args:
        path: the folder (need not exist yet).
    """

    SETTINGS = "search.json"
    RECORD = "record.jsonl"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # ---- where things are ------------------------------------------------------------

    @property
    def settings_path(self) -> Path:
        return self.path / self.SETTINGS

    @property
    def record_path(self) -> Path:
        return self.path / self.RECORD

    @property
    def latency_path(self) -> Path:
        return self.path / "latency.json"

    @property
    def tb_dir(self) -> Path:
        return self.path / "tb"

    @property
    def pool_dir(self) -> Path:
        return self.path / "pool"

    @property
    def critic_path(self) -> Path:
        return self.path / "critic.pt"

    @property
    def aeb_dir(self) -> Path:
        return self.path / "aeb"

    @property
    def controller_path(self) -> Path:
        return self.path / "controller.pt"

    # ---- settings ---------------------------------------------------------------------

    def has_settings(self) -> bool:
        return self.settings_path.is_file()

    def settings(self) -> RunSettings:
        """The search's settings.

        Raises:
            NotARunFolder: the folder has no ``search.json`` (not a run folder).
            ValueError: ``search.json`` is not a settings file.
        """
        if not self.settings_path.is_file():
            raise NotARunFolder(
                f"{self.path} is not a search run folder: it has no {self.SETTINGS} "
                "(run folders are made by 'fnas search --run-dir ...' or examples/fnas_search.py)"
            )
        try:
            data = json.loads(self.settings_path.read_text())
            return RunSettings.from_dict(data)
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise ValueError(f"{self.settings_path} is not a search settings file: {err}") from None

    def save_settings(self, settings: RunSettings) -> None:
        """Write ``search.json`` (atomically: a killed process leaves the old or the new file)."""
        text = settings.to_json() + "\n"
        atomic_write(self.settings_path, lambda tmp: Path(tmp).write_text(text))

    def check_same_search(self, settings: RunSettings) -> None:
        """Raise :class:`RunMismatch` if the folder holds another search's record.

        A folder without settings but with a record is another search too (made by
        something that is not ``fnas``); an empty or new folder matches anything.
        """
        if self.has_settings():
            differences = self.settings().differences(settings)
            if differences:
                raise RunMismatch(
                    f"{self.path} holds the record of another search ("
                    + "; ".join(differences)
                    + "); give another --run-dir, or the same settings to resume it"
                )
        elif self.record_path.exists() and self.record_path.stat().st_size > 0:
            raise RunMismatch(
                f"{self.path} holds a record ({self.RECORD}) but no {self.SETTINGS}: "
                "it is not a search this command can resume; give another --run-dir"
            )

    # ---- what the search found --------------------------------------------------------

    def entries(self) -> list[RecordEntry]:
        """Every record entry, in order (an empty list when there is no record yet)."""
        if not self.record_path.exists():
            return []
        return list(read_record(self.record_path))

    def activated(self) -> list[RecordEntry]:
        """Each activated (really evaluated) architecture once (its first success)."""
        seen: dict[tuple[str, tuple[int, ...]], RecordEntry] = {}
        for entry in self.entries():
            if entry.kind != "activated" or entry.failed:
                continue
            if entry.accuracy is None or not math.isfinite(entry.reward):
                continue
            seen.setdefault((entry.space, entry.choices), entry)
        return list(seen.values())

    def top(self, k: int = 1, by: str = "reward") -> list[RecordEntry]:
        """The ``k`` best activated architectures.

        Args:
            k: how many (a positive int).
            by: ``"reward"`` (highest recorded reward first) or ``"front"`` (the
                accuracy/latency Pareto front, by reward; entries without latency
                rank by reward alone).

        Raises:
            ValueError: a bad ``k`` or ``by``, or a record with no activated
                architecture.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if by not in RANKINGS:
            raise ValueError(f"by must be one of {RANKINGS}, got {by!r}")
        entries = self.activated()
        if not entries:
            raise ValueError(
                f"the search in {self.path} has no activated architecture yet "
                f"({len(self.entries())} record entries): run or resume the search first"
            )
        if by == "front":
            entries = pareto_front(entries)
        return sorted(entries, key=lambda e: e.reward, reverse=True)[:k]


def pareto_front(entries: list[RecordEntry]) -> list[RecordEntry]:
    """The entries no other entry beats on both accuracy (higher) and latency (lower).

    Entries without a latency are kept only when none has one (then all are kept).
    Returned in order of increasing latency.
    """
    timed = [e for e in entries if e.latency is not None and e.accuracy is not None]
    if not timed:
        return list(entries)
    front: list[RecordEntry] = []
    best = -math.inf
    for entry in sorted(timed, key=lambda e: (e.latency, -e.accuracy)):
        if entry.accuracy > best:
            front.append(entry)
            best = entry.accuracy
    return front
