"""The Architecture Knowledge Pool (AKP): lookup, initialise, store.

A new architecture is initialised block by block from the stored block of the same
space and position with the highest cosine similarity of keys (one-hot block
embeddings), shape-adapted (:mod:`fnas_env.knowledge_pool.adapt`); a trained
model is stored block by block into the pool's folder
(:mod:`fnas_env.knowledge_pool.store`).

Keys: block ``i`` at position ``"i"``; the stem at position ``"stem"`` keyed by
the first block's embedding and the head at ``"head"`` keyed by the last block's
(the stem/head trained together with the most similar first/last block).

Fairness: a pool holds checkpoints trained for one number of iterations, set
when it is created or fixed at its first store; stores with another number are
refused (``store`` returns False and ``counters.refused`` counts them).

Capacity: at most ``capacity`` blocks per (space, position). Eviction rule: the
oldest stored block goes first (re-storing a key replaces the old entry, so it
counts as new); later checkpoints come from later in a search, where the
controller samples the region that matters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fnas_env.arch import Architecture
from fnas_env.knowledge_pool.adapt import load_into
from fnas_env.knowledge_pool.store import PoolEntry, PoolStore
from fnas_env.models import BLOCK_SPACES
from fnas_env.spaces import SearchSpace, get_space

__all__ = [
    "KnowledgePool",
    "PoolNotWritable",
    "InitStats",
    "PoolCounters",
    "Match",
    "best_match",
    "EXACT_TOL",
]

#: cosine similarity at or above ``1 - EXACT_TOL`` counts as an exact match
EXACT_TOL = 1e-6


@dataclass(frozen=True)
class Match:
    """The stored entry most similar to a queried block (``entry`` None: nothing stored)."""

    position: str
    label: str
    entry: PoolEntry | None
    similarity: float

    @property
    def exact(self) -> bool:
        return self.entry is not None and self.similarity >= 1.0 - EXACT_TOL


@dataclass(frozen=True)
class InitStats:
    """What one :meth:`KnowledgePool.initialise` call did.

    ``hit_ratio`` and ``exact_ratio`` count the search-space blocks (not stem/head):
    blocks initialised from a stored block / from one with the same key
    (similarity 1). ``lookup_ms`` is the similarity search, ``load_ms`` reading and
    adapting the tensors. ``tensors_*`` count target tensors copied unchanged,
    shape-adapted, or left at their initial values.
    """

    hit_ratio: float
    exact_ratio: float
    lookup_ms: float
    load_ms: float = 0.0
    blocks: int = 0
    hits: int = 0
    exact: int = 0
    mean_similarity: float = 0.0
    stem: bool = False
    head: bool = False
    tensors_copied: int = 0
    tensors_adapted: int = 0
    tensors_kept: int = 0
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (for ``Evaluation.extras`` and TensorBoard)."""
        d = asdict(self)
        d["sources"] = list(self.sources)
        return d


@dataclass
class PoolCounters:
    """Running totals of one pool object (this process only)."""

    stores: int = 0
    refused: int = 0
    stored_blocks: int = 0
    initialised: int = 0
    queried: int = 0
    hits: int = 0
    exact: int = 0

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.queried if self.queried else 0.0

    @property
    def exact_ratio(self) -> float:
        return self.exact / self.queried if self.queried else 0.0


@dataclass
class _Table:
    """Keys of one (space, position), L2-normalised rows, in store order."""

    keys: np.ndarray
    entries: list[PoolEntry] = field(default_factory=list)


# ---- similarity ----------------------------------------------------------------


def best_match(keys: np.ndarray, query: np.ndarray) -> tuple[int, float]:
    """Row of ``keys`` (L2-normalised, shape (n, d)) most cosine-similar to ``query``.

    Ties go to the last row (the newest entry). Returns ``(row, similarity)``;
    ``(-1, 0.0)`` for an empty table.
    """
    n = keys.shape[0]
    if n == 0:
        return -1, 0.0
    norm = float(np.linalg.norm(query))
    if norm == 0.0:
        return -1, 0.0
    sims = keys @ (query.astype(np.float32, copy=False) / norm)
    row = n - 1 - int(np.argmax(sims[::-1]))
    return row, float(sims[row])


def _normalise(keys: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(keys, axis=1, keepdims=True)
    return keys / np.where(norms == 0.0, 1.0, norms)


class PoolNotWritable(OSError):
    """The pool's folder cannot be created, locked or read."""


class KnowledgePool:
    """A persistent, process-safe key-value table of trained blocks (AKP).

    Args:
        path: folder of the pool (created if missing). Open the same folder in
            another search, task or process to share the pool.
        capacity: most blocks kept per (space, position); the oldest go first.
            Default 1000.
        iterations: training iterations of the checkpoints this pool accepts.
            None (default) takes the pool's value, or fixes it at the first store.
            A value that differs from the one an existing pool holds raises
            ``ValueError``.
        durable: fsync every file a store writes (default True), so a crash or
            power loss never leaves a torn pool; False skips the fsyncs (a
            throw-away pool, e.g. ``FNAS-MNAS-v0``'s temporary one). The index is
            replaced atomically either way.

    Example::

        pool = KnowledgePool("runs/akp", iterations=500)
        stats = pool.initialise(model, arch)     # before training
        ...train for 500 iterations...
        pool.store(model, arch, iterations=500)  # after training
    """

    def __init__(
        self,
        path: str | os.PathLike,
        capacity: int = 1000,
        iterations: int | None = None,
        durable: bool = True,
    ) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(
                f"capacity must be a positive int (blocks per position), got {capacity!r}"
            )
        if iterations is not None:
            iterations = _check_iterations(iterations)
        self._disk = PoolStore(Path(path), bool(durable))
        self.capacity = capacity
        self.counters = PoolCounters()
        self._iterations = iterations
        self._index_iterations: int | None = None
        self._entries: list[PoolEntry] = []
        self._tables: dict[tuple[str, str], _Table] = {}
        self._next_seq = 0
        try:
            self._disk.create()
            with self._disk.lock():
                self._refresh()
        except OSError as exc:
            raise PoolNotWritable(
                f"the knowledge pool folder {self.path} cannot be used ({exc}); give a "
                "folder this process can create and write (for Ray workers on several "
                "machines: one on a filesystem every worker sees, with POSIX locks), or "
                "pool=None to train from scratch"
            ) from exc
        if (
            iterations is not None
            and self._index_iterations is not None
            and iterations != self._index_iterations
        ):
            raise ValueError(
                f"the pool at {self.path} holds checkpoints trained for "
                f"{self._index_iterations} iterations; open it with iterations="
                f"{self._index_iterations} or None, or use another path"
            )

    # ---- reading -------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The pool's folder."""
        return self._disk.path

    @property
    def durable(self) -> bool:
        """Whether a store fsyncs every file it writes (see ``durable`` above)."""
        return self._disk.durable

    @durable.setter
    def durable(self, value: bool) -> None:
        self._disk.durable = bool(value)

    @property
    def iterations(self) -> int | None:
        """Training iterations of the stored checkpoints (None until fixed)."""
        self.refresh()
        return self._index_iterations if self._index_iterations is not None else self._iterations

    def refresh(self) -> None:
        """Re-read the index if another process (or object) changed it."""
        with self._disk.lock():
            self._refresh()

    def entries(
        self, space: str | None = None, position: str | int | None = None
    ) -> list[PoolEntry]:
        """Stored entries (oldest first), optionally of one space and position."""
        self.refresh()
        pos = None if position is None else str(position)
        return [
            e
            for e in self._entries
            if (space is None or e.space == space) and (pos is None or e.position == pos)
        ]

    def __len__(self) -> int:
        self.refresh()
        return len(self._entries)

    def summary(self) -> dict[str, Any]:
        """Entries per ``space/position``, total bytes, iterations and counters."""
        self.refresh()
        per: dict[str, int] = {}
        for e in self._entries:
            per[f"{e.space}/{e.position}"] = per.get(f"{e.space}/{e.position}", 0) + 1
        return {
            "path": str(self.path),
            "entries": len(self._entries),
            "bytes": sum(e.nbytes for e in self._entries),
            "iterations": self.iterations,
            "per_position": per,
            "counters": asdict(self.counters),
        }

    def load_tensors(self, entry: PoolEntry) -> dict[str, torch.Tensor]:
        """The stored tensors of ``entry`` (safetensors; no code runs on load)."""
        return self._disk.load_tensors(entry.file)

    def lookup(self, arch: Architecture) -> list[Match]:
        """Most similar stored block for the stem, each block and the head of ``arch``."""
        space = _pool_space(arch)
        with self._disk.lock():
            self._refresh()
            return self._match(space, arch)

    # ---- initialise ----------------------------------------------------------------
    def initialise(self, model: nn.Module, arch: Architecture) -> InitStats:
        """Initialise ``model`` (built for ``arch``) in place from the most similar stored blocks.

        Every block (and the stem and head) takes the stored block of the same
        space and position with the highest cosine similarity, shape-adapted.
        Returns :class:`InitStats`; an empty pool leaves the model unchanged.
        """
        space = _pool_space(arch)
        parts = _model_parts(model, space)
        copied = adapted = kept = 0
        with self._disk.lock():
            self._refresh()
            t0 = time.perf_counter()
            matches = self._match(space, arch)
            t1 = time.perf_counter()
            for match in matches:
                if match.entry is None:
                    continue
                module = parts[match.position]
                try:
                    source = self.load_tensors(match.entry)
                except FileNotFoundError:  # removed by hand; keep the block's init
                    continue
                # state_dict() tensors share storage with the module: written in place
                c, a, k = load_into(source, module.state_dict(keep_vars=False))
                copied, adapted, kept = copied + c, adapted + a, kept + k
            t2 = time.perf_counter()
        blocks = [m for m in matches if m.position not in ("stem", "head")]
        hits = sum(m.entry is not None for m in blocks)
        exact = sum(m.exact for m in blocks)
        n = len(blocks)
        self.counters.initialised += 1
        self.counters.queried += n
        self.counters.hits += hits
        self.counters.exact += exact
        by_pos = {m.position: m for m in matches}
        return InitStats(
            hit_ratio=hits / n if n else 0.0,
            exact_ratio=exact / n if n else 0.0,
            lookup_ms=(t1 - t0) * 1e3,
            load_ms=(t2 - t1) * 1e3,
            blocks=n,
            hits=hits,
            exact=exact,
            mean_similarity=float(np.mean([m.similarity for m in blocks])) if n else 0.0,
            stem=by_pos["stem"].entry is not None,
            head=by_pos["head"].entry is not None,
            tensors_copied=copied,
            tensors_adapted=adapted,
            tensors_kept=kept,
            sources=tuple(f"{m.entry.arch}#{m.position}" if m.entry else "" for m in blocks),
        )

    # ---- store ---------------------------------------------------------------------
    def store(
        self, model: nn.Module, arch: Architecture, iterations: int, task: str | None = None
    ) -> bool:
        """Save the trained ``model`` of ``arch`` into the pool, block by block.

        Args:
            model: the trained model (stem/blocks/head contract).
            arch: its architecture.
            iterations: training iterations of this checkpoint; must equal the
                pool's (fairness), else the store is refused.
            task: optional provenance label (dataset name), kept in the index.

        Returns True if stored, False if refused for a different ``iterations``.
        Blocks with the key of a stored block replace it.
        """
        return self.store_many([(model, arch)], iterations, task=task) == 1

    def store_many(
        self,
        items: Iterable[tuple[nn.Module, Architecture]],
        iterations: int,
        task: str | None = None,
    ) -> int:
        """Store several trained ``(model, arch)`` pairs with one index write.

        Same rules as :meth:`store`; returns the number of architectures stored
        (0 when refused).
        """
        iterations = _check_iterations(iterations)
        payloads: list[tuple[Architecture, list[tuple[str, np.ndarray, str, bytes]]]] = []
        for model, arch in items:
            space = _pool_space(arch)
            parts = _model_parts(model, space)
            embeddings = space.block_embeddings(arch)
            keys = {"stem": embeddings[0], "head": embeddings[-1]}
            keys.update({str(e.index): e for e in embeddings})
            blocks = []
            for position, module in parts.items():
                tensors = {
                    k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()
                }
                meta = {"space": space.name, "position": position, "arch": space.to_string(arch)}
                emb = keys[position]
                label = emb.label if position not in ("stem", "head") else f"{position}:{emb.label}"
                blocks.append((position, emb.embedding, label, PoolStore.encode(tensors, meta)))
            payloads.append((arch, blocks))
        if not payloads:
            return 0
        with self._disk.lock(exclusive=True):
            self._refresh()
            fixed = (
                self._index_iterations if self._index_iterations is not None else self._iterations
            )
            if fixed is not None and iterations != fixed:
                self.counters.refused += len(payloads)
                return 0
            self._commit(payloads, iterations, task)
        self._iterations = iterations
        self.counters.stores += len(payloads)
        self.counters.stored_blocks += sum(len(b) for _, b in payloads)
        return len(payloads)

    # ---- internals -------------------------------------------------------------------
    def _refresh(self) -> None:
        data = self._disk.read_index()
        if data is not None:
            self._load(data)

    def _load(self, data: dict[str, Any]) -> None:
        self._index_iterations = data.get("iterations")
        self._next_seq = int(data.get("next_seq", 0))
        self._entries = [
            PoolEntry(**{**e, "key": tuple(e["key"])}) for e in data.get("entries", [])
        ]
        self._entries.sort(key=lambda e: e.seq)
        self._rebuild_tables()

    def _rebuild_tables(self) -> None:
        grouped: dict[tuple[str, str], list[PoolEntry]] = {}
        for e in self._entries:
            grouped.setdefault((e.space, e.position), []).append(e)
        self._tables = {
            k: _Table(_normalise(np.asarray([e.key for e in v], dtype=np.float32)), v)
            for k, v in grouped.items()
        }

    def _match(self, space: SearchSpace, arch: Architecture) -> list[Match]:
        embeddings = space.block_embeddings(arch)
        queries = [("stem", embeddings[0])]
        queries += [(str(e.index), e) for e in embeddings]
        queries.append(("head", embeddings[-1]))
        out = []
        for position, emb in queries:
            table = self._tables.get((space.name, position))
            row, sim = best_match(table.keys, emb.embedding) if table else (-1, 0.0)
            entry = table.entries[row] if table is not None and row >= 0 else None
            out.append(Match(position, emb.label, entry, sim if entry else 0.0))
        return out

    def _commit(
        self,
        payloads: list[tuple[Architecture, list[tuple[str, np.ndarray, str, bytes]]]],
        iterations: int,
        task: str | None,
    ) -> None:
        """Write tensor files, then the index atomically; delete replaced files last."""
        entries = {(e.space, e.position, e.key): e for e in self._entries}
        seq = self._next_seq
        now = time.time()
        for arch, blocks in payloads:
            arch_str = get_space(arch.space).to_string(arch)
            for position, embedding, label, data in blocks:
                entry_id, file = self._disk.write_tensors(data)
                key = tuple(float(x) for x in embedding)
                entries[(arch.space, position, key)] = PoolEntry(
                    entry_id, arch.space, position, key, label, file, arch_str,
                    iterations, seq, now, len(data), task,
                )  # fmt: skip
                seq += 1
        kept = sorted(entries.values(), key=lambda e: e.seq)
        count: dict[tuple[str, str], int] = {}
        for e in kept:
            count[(e.space, e.position)] = count.get((e.space, e.position), 0) + 1
        survivors = []
        for e in kept:  # oldest first: evict while a position is over capacity
            if count[(e.space, e.position)] > self.capacity:
                count[(e.space, e.position)] -= 1
                continue
            survivors.append(e)
        self._load(self._disk.write_index(survivors, iterations, seq))
        self._disk.remove_unreferenced(survivors)

    def __repr__(self) -> str:
        return (
            f"KnowledgePool(path={str(self.path)!r}, entries={len(self._entries)}, "
            f"capacity={self.capacity}, iterations={self._index_iterations or self._iterations})"
        )


# ---- helpers --------------------------------------------------------------------------


def _check_iterations(iterations: Any) -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, int | np.integer):
        raise TypeError(f"iterations must be a positive int, got {iterations!r}")
    if iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations}")
    return int(iterations)


def _pool_space(arch: Architecture) -> SearchSpace:
    if not isinstance(arch, Architecture):
        raise TypeError(f"expected an Architecture, got {type(arch).__name__}")
    if arch.space not in BLOCK_SPACES:
        raise ValueError(
            f"the knowledge pool stores blocks of spaces {list(BLOCK_SPACES)} (models with "
            f"stem/blocks/head); got an architecture of space {arch.space!r}"
        )
    space = get_space(arch.space)
    space.validate(arch)
    return space


def _model_parts(model: nn.Module, space: SearchSpace) -> dict[str, nn.Module]:
    """``{"stem": ..., "0": block 0, ..., "head": ...}`` of a contract model."""
    missing = [
        a for a in ("stem", "blocks", "head") if not isinstance(getattr(model, a, None), nn.Module)
    ]
    if missing:
        raise ValueError(
            f"model {type(model).__name__} lacks {missing}: the knowledge pool needs a model "
            "with stem, blocks (nn.ModuleList, one module per search-space block) and head"
        )
    blocks = model.blocks
    if not isinstance(blocks, nn.ModuleList) or len(blocks) != len(space.blocks):
        raise ValueError(
            f"model.blocks must be an nn.ModuleList of {len(space.blocks)} modules (one per "
            f"block of space {space.name!r}), got {type(blocks).__name__} of "
            f"{len(blocks) if hasattr(blocks, '__len__') else '?'}"
        )
    parts: dict[str, nn.Module] = {"stem": model.stem}
    parts.update({str(i): b for i, b in enumerate(blocks)})
    parts["head"] = model.head
    return parts
