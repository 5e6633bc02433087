"""The knowledge pool's folder: locked, durable, readable by many processes at once.

On disk (a folder, shareable between searches, tasks and processes)::

    index.json          entries: space, position, key, label, file, iterations, ...
    pool.lock           fcntl.flock lock file (shared for reads, exclusive for writes)
    tensors/<id>.safetensors   one block's tensors (safetensors: no code runs on load)

A store writes and fsyncs the tensor files first, then writes the new index to a
temporary file, fsyncs it and ``os.replace``-s it over ``index.json``: a process
killed at any point leaves the previous or the new index, never a torn one, and
at most the entries of the interrupted store are lost (their orphan files are
removed by the next store). Every operation re-reads the index when another
process changed it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

__all__ = ["PoolEntry", "PoolStore", "INDEX_NAME", "LOCK_NAME", "TENSOR_DIR", "FORMAT", "VERSION"]

INDEX_NAME = "index.json"
LOCK_NAME = "pool.lock"
TENSOR_DIR = "tensors"
FORMAT = "fnas-akp"
VERSION = 1


@dataclass(frozen=True)
class PoolEntry:
    """One stored block: where it sits (space, position), its key, and its file."""

    id: str
    space: str
    position: str
    key: tuple[float, ...]
    label: str
    file: str
    arch: str
    iterations: int
    seq: int
    time: float
    nbytes: int
    task: str | None = None


class PoolStore:
    """The files of one pool folder: the lock, the index and the tensor files.

    Remembers which version of ``index.json`` it read or wrote last, so
    :meth:`read_index` parses the index only when another process (or object)
    changed it.

    Args:
        path: the pool's folder.
        durable: fsync every file a write makes, and the folder after the index is
            replaced (default True); False skips the fsyncs. The index is replaced
            atomically either way.
    """

    def __init__(self, path: Path, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self._signature: tuple[int, int, int] | None = None

    def create(self) -> None:
        """Make the folder and its ``tensors/`` subfolder (no error if they exist)."""
        (self.path / TENSOR_DIR).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self, exclusive: bool = False) -> Iterator[None]:
        """Hold ``pool.lock``: shared (readers) or exclusive (a writer)."""
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # ---- the index -------------------------------------------------------------------
    def read_index(self) -> dict[str, Any] | None:
        """The index's data if it changed since this store last read or wrote it, else None.

        A missing index reads as an empty one (the first time it is found missing).

        Raises:
            RuntimeError: ``index.json`` cannot be read or is not a pool index.
        """
        index = self.path / INDEX_NAME
        try:
            st = os.stat(index)
        except FileNotFoundError:
            removed = self._signature is not None
            self._signature = None
            return {"entries": [], "iterations": None, "next_seq": 0} if removed else None
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self._signature:
            return None
        try:
            data = json.loads(index.read_text())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read the knowledge pool index {index}: {exc}") from exc
        if data.get("format") != FORMAT:
            raise RuntimeError(f"{index} is not a knowledge pool index (format {FORMAT!r})")
        self._signature = signature
        return data

    def write_index(
        self, entries: Iterable[PoolEntry], iterations: int, next_seq: int
    ) -> dict[str, Any]:
        """Replace ``index.json`` atomically with ``entries``; returns the data written."""
        data = {
            "format": FORMAT,
            "version": VERSION,
            "iterations": iterations,
            "next_seq": next_seq,
            "entries": [asdict(e) for e in entries],
        }
        index = self.path / INDEX_NAME
        tmp = self.path / f".{INDEX_NAME}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        _write_durable(tmp, json.dumps(data, separators=(",", ":")).encode(), self.durable)
        os.replace(tmp, index)
        if self.durable:
            _fsync_dir(self.path)
        st = os.stat(index)
        self._signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        return data

    # ---- tensor files ----------------------------------------------------------------
    @staticmethod
    def encode(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
        """One block's tensors as safetensors bytes, with string ``metadata``."""
        return safetensors_save(tensors, metadata)

    def write_tensors(self, data: bytes) -> tuple[str, str]:
        """Write one block's :meth:`encode`-d tensors to a new file.

        Returns:
            ``(id, file)``: the new entry's id and its file, relative to the folder.
        """
        entry_id = uuid.uuid4().hex
        file = f"{TENSOR_DIR}/{entry_id}.safetensors"
        _write_durable(self.path / file, data, self.durable)
        return entry_id, file

    def load_tensors(self, file: str) -> dict[str, torch.Tensor]:
        """The tensors of ``file`` (relative to the folder; safetensors: no code runs)."""
        return safetensors_load((self.path / file).read_bytes())

    def remove_unreferenced(self, entries: Iterable[PoolEntry]) -> None:
        """Delete tensor files no entry references (replaced, evicted, or orphans of a
        killed store) and temporary index files."""
        live = {Path(e.file).name for e in entries}
        for f in (self.path / TENSOR_DIR).iterdir():
            if f.name not in live:
                f.unlink(missing_ok=True)
        for f in self.path.glob(f".{INDEX_NAME}.*.tmp"):
            f.unlink(missing_ok=True)


def _write_durable(path: Path, data: bytes, fsync: bool = True) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
