"""Architecture Knowledge Pool: persistence, lookup, shape adaptation, fairness, safety."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from fnas_env.arch import Architecture
from fnas_env.knowledge_pool import (
    InitStats,
    KnowledgePool,
    adapt_state_dict,
    adapt_tensor,
    best_match,
)
from fnas_env.spaces import get_space

SPACE = get_space("mnas")
FIELDS = 6  # decisions per mnas block: op, kernel, se, skip, filters, layers
COMBOS = [  # every (op, kernel, se, skip, filters, layers) choice tuple of a block
    (op, k, se, sk, f, ly)
    for op in range(4)
    for k in range(2)
    for se in range(2)
    for sk in range(3)
    for f in range(3)
    for ly in range(3)
]


def arch_of(*blocks: tuple[int, ...]) -> Architecture:
    """mnas architecture from 7 block choice tuples (or one tuple repeated)."""
    if len(blocks) == 1:
        blocks = blocks * 7
    return SPACE.from_choices([c for b in blocks for c in b])


def uniform_arch(i: int) -> Architecture:
    """Architecture whose 7 blocks all use block combination ``i`` (distinct keys per i)."""
    return arch_of(COMBOS[i])


# ---- a tiny model following the builder contract (stem, blocks[i].layers, head) ----


class ToyLayer(nn.Module):
    def __init__(self, op: str, cin: int, cout: int, k: int, se: bool) -> None:
        super().__init__()
        if op == "conv":
            self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        elif op == "dwconv":
            self.dw = nn.Conv2d(cin, cin, k, padding=k // 2, groups=cin, bias=False)
            self.project = nn.Conv2d(cin, cout, 1, bias=False)
        else:
            mid = cin * (3 if op == "mb3" else 6)
            self.expand = nn.Conv2d(cin, mid, 1, bias=False)
            self.dw = nn.Conv2d(mid, mid, k, padding=k // 2, groups=mid, bias=False)
            self.project = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        if se:
            self.se = nn.Sequential(nn.Conv2d(cout, 4, 1), nn.Conv2d(4, cout, 1))


class ToyBlock(nn.Module):
    def __init__(self, cfg: dict, cin: int) -> None:
        super().__init__()
        cout = cfg["out_channels"] // 4
        self.layers = nn.ModuleList(
            ToyLayer(cfg["op"], cin if j == 0 else cout, cout, cfg["kernel"], cfg["se"] > 0)
            for j in range(cfg["layers"])
        )
        self.out = cout


class ToyNet(nn.Module):
    def __init__(self, arch: Architecture, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8))
        blocks, cin = [], 8
        for b in range(7):
            block = ToyBlock(SPACE.block_config(arch, b), cin)
            blocks.append(block)
            cin = block.out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(cin, 10)


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- persistence and lookup -------------------------------------------------------


def test_round_trip_reopen_and_safetensors(tmp_path: Path) -> None:
    arch = SPACE.sample(np.random.default_rng(0))
    trained = ToyNet(arch, seed=1)
    pool = KnowledgePool(tmp_path / "akp", iterations=50)
    assert pool.store(trained, arch, iterations=50)

    reopened = KnowledgePool(tmp_path / "akp")
    assert len(reopened) == 9  # stem, 7 blocks, head
    assert reopened.iterations == 50
    entry = reopened.entries("mnas", 3)[0]
    assert entry.label == SPACE.block_embeddings(arch)[3].label
    stored = load_file(tmp_path / "akp" / entry.file)  # plain safetensors file
    expected = trained.blocks[3].state_dict()
    assert stored.keys() == expected.keys()
    assert all(torch.equal(stored[k], expected[k]) for k in expected)

    fresh = ToyNet(arch, seed=2)
    assert not states_equal(fresh, trained)
    stats = reopened.initialise(fresh, arch)
    assert states_equal(fresh, trained)
    assert isinstance(stats, InitStats)
    assert (stats.hit_ratio, stats.exact_ratio, stats.stem, stats.head) == (1.0, 1.0, True, True)
    assert stats.tensors_adapted == stats.tensors_kept == 0
    assert stats.lookup_ms >= 0 and json.dumps(stats.as_dict())


def test_non_durable_pool_skips_fsync_and_round_trips(tmp_path: Path, monkeypatch) -> None:
    import fnas_env.knowledge_pool.store as kp

    synced = []
    monkeypatch.setattr(kp.os, "fsync", lambda fd: synced.append(fd))
    arch = SPACE.sample(np.random.default_rng(4))
    trained = ToyNet(arch, seed=1)
    assert KnowledgePool(tmp_path / "fast", durable=False).store(trained, arch, iterations=5)
    assert synced == []
    fresh = ToyNet(arch, seed=2)
    assert KnowledgePool(tmp_path / "fast").initialise(fresh, arch).hit_ratio == 1.0
    assert states_equal(fresh, trained)
    assert KnowledgePool(tmp_path / "durable").store(trained, arch, iterations=5)
    assert len(synced) >= 9 + 2  # every tensor file, the index and the folder


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_initialise_a_model_on_the_gpu(tmp_path: Path) -> None:
    arch = SPACE.sample(np.random.default_rng(5))
    trained = ToyNet(arch, seed=1)
    pool = KnowledgePool(tmp_path / "akp")
    pool.store(trained, arch, iterations=5)
    other = SPACE.sample(np.random.default_rng(6))
    fresh = ToyNet(other, seed=2).cuda()
    assert pool.initialise(fresh, other).hits > 0
    assert all(p.is_cuda for p in fresh.parameters())


def test_lookup_picks_most_similar_block(tmp_path: Path) -> None:
    a = arch_of((0, 0, 0, 0, 0, 0))
    b = arch_of((3, 1, 1, 2, 2, 2))
    pool = KnowledgePool(tmp_path / "akp")
    pool.store(ToyNet(a), a, 10)
    pool.store(ToyNet(b), b, 10)
    # block 0 one decision from a; block 1 one decision from b; rest equal to b
    query = arch_of((0, 0, 0, 0, 0, 1), (3, 1, 1, 2, 2, 0), *[(3, 1, 1, 2, 2, 2)] * 5)
    matches = {m.position: m for m in pool.lookup(query)}
    assert matches["0"].entry.arch == str(a)
    assert matches["0"].similarity == pytest.approx(5 / 6)
    assert matches["1"].entry.arch == str(b)
    assert matches["stem"].entry.arch == str(a)  # keyed by the first block
    assert matches["head"].entry.arch == str(b) and matches["head"].exact
    assert [matches[str(i)].exact for i in range(7)] == [False, False] + [True] * 5


def test_best_match_vectorised() -> None:
    keys = np.eye(4, dtype=np.float32)[[0, 1, 2, 1]]
    assert best_match(keys, np.array([0, 1, 0, 0], np.float32)) == (3, pytest.approx(1.0))
    row, sim = best_match(keys, np.array([0.1, 0, 1, 0], np.float32))
    assert row == 2 and 0.99 < sim < 1.0
    assert best_match(keys[:0], np.ones(4, np.float32)) == (-1, 0.0)


def test_hit_ratio_is_full_once_blocks_are_stored(tmp_path: Path) -> None:
    pool = KnowledgePool(tmp_path / "akp")
    target = arch_of((2, 1, 1, 1, 1, 1))
    empty = pool.initialise(ToyNet(target), target)
    assert (empty.hit_ratio, empty.exact_ratio, empty.stem) == (0.0, 0.0, False)

    # three of seven blocks equal the stored architecture's
    stored = arch_of(*[(2, 1, 1, 1, 1, 1)] * 3, *[(0, 0, 0, 0, 0, 0)] * 4)
    pool.store(ToyNet(stored), stored, 10)
    stats = pool.initialise(ToyNet(target), target)
    assert stats.hit_ratio == 1.0
    assert stats.exact == 3 and stats.exact_ratio == pytest.approx(3 / 7)
    assert pool.counters.queried == 14 and pool.counters.hits == 7


# ---- shape adaptation --------------------------------------------------------------


def test_adapt_channels_slice_and_pad() -> None:
    src = torch.randn(6, 4, 3, 3)
    small = adapt_tensor(src, torch.zeros(4, 2, 3, 3))
    assert torch.equal(small, src[:4, :2])
    init = torch.randn(8, 5, 3, 3)
    big = adapt_tensor(src, init)
    assert torch.equal(big[:6, :4], src)
    assert torch.equal(big[6:], init[6:]) and torch.equal(big[:, 4:], init[:, 4:])
    vec = adapt_tensor(torch.ones(3), torch.full((5,), 7.0))
    assert vec.tolist() == [1, 1, 1, 7, 7]


def test_adapt_kernel_crop_and_pad_preserve_function() -> None:
    k5 = torch.randn(2, 2, 5, 5)
    assert torch.equal(adapt_tensor(k5, torch.zeros(2, 2, 3, 3)), k5[:, :, 1:4, 1:4])
    k3 = torch.randn(2, 2, 3, 3)
    padded = adapt_tensor(k3, torch.randn(2, 2, 5, 5))
    assert torch.equal(padded[:, :, 1:4, 1:4], k3)
    frame = padded.clone()
    frame[:, :, 1:4, 1:4] = 0
    assert not frame.any()  # zeros around the copied kernel
    x = torch.randn(1, 2, 9, 9)
    out3 = nn.functional.conv2d(x, k3, padding=1)
    out5 = nn.functional.conv2d(x, padded, padding=2)
    assert torch.allclose(out3, out5, atol=1e-5)


def test_layer_count_mapping_and_missing_keys_keep_init() -> None:
    source = ToyBlock({"op": "mb6", "kernel": 3, "se": 0.0, "out_channels": 32, "layers": 2}, 8)
    target = ToyBlock({"op": "mb6", "kernel": 5, "se": 0.25, "out_channels": 40, "layers": 4}, 8)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    state, (copied, adapted, kept) = adapt_state_dict(source.state_dict(), target.state_dict())
    target.load_state_dict(state)
    src = source.state_dict()
    # target layers 1, 2, 3 all read source layer 1 (the last one)
    for j in (1, 2, 3):
        w = target.state_dict()[f"layers.{j}.expand.weight"]
        assert torch.equal(w[:48, :8], src["layers.1.expand.weight"])
    # SE does not exist in the source: kept at init
    se_keys = [k for k in before if ".se." in k]
    assert se_keys and all(torch.equal(target.state_dict()[k], before[k]) for k in se_keys)
    assert kept == len(se_keys) and copied + adapted + kept == len(before)

    # a dwconv source has no expansion conv: the target's stays at init
    dw = ToyBlock({"op": "dwconv", "kernel": 3, "se": 0.0, "out_channels": 32, "layers": 1}, 8)
    state, _ = adapt_state_dict(dw.state_dict(), before)
    assert torch.equal(state["layers.0.expand.weight"], before["layers.0.expand.weight"])
    assert torch.equal(state["layers.0.dw.weight"][:8, :, 1:4, 1:4], dw.layers[0].dw.weight)


def test_initialise_adapts_a_different_architecture(tmp_path: Path) -> None:
    source = arch_of((3, 0, 0, 1, 2, 2))  # mb6 k3, no SE, wide, +1 layer
    target = arch_of((3, 1, 1, 1, 0, 0))  # mb6 k5, SE, narrow, -1 layer
    pool = KnowledgePool(tmp_path / "akp")
    trained = ToyNet(source, seed=1)
    pool.store(trained, source, 10)
    model = ToyNet(target, seed=2)
    stats = pool.initialise(model, target)
    assert stats.hit_ratio == 1.0 and stats.exact_ratio == 0.0
    assert stats.tensors_adapted > 0 and stats.tensors_kept > 0
    w_src = trained.blocks[2].layers[0].project.weight
    w_tgt = model.blocks[2].layers[0].project.weight
    n_out, n_in = w_tgt.shape[:2]
    assert torch.equal(w_tgt, w_src[:n_out, :n_in])


# ---- fairness, capacity, duplicates -------------------------------------------------


def test_fairness_refuses_other_iterations(tmp_path: Path) -> None:
    a, b = uniform_arch(0), uniform_arch(1)
    pool = KnowledgePool(tmp_path / "akp")
    assert pool.iterations is None
    assert pool.store(ToyNet(a), a, iterations=100)
    assert pool.iterations == 100
    assert not pool.store(ToyNet(b), b, iterations=200)
    assert pool.counters.refused == 1 and len(pool) == 9
    other = KnowledgePool(tmp_path / "akp")  # takes the pool's value from disk
    assert not other.store(ToyNet(b), b, iterations=99)
    with pytest.raises(ValueError, match="100 iterations"):
        KnowledgePool(tmp_path / "akp", iterations=200)
    with pytest.raises(ValueError, match="positive int"):
        pool.store(ToyNet(b), b, iterations=0)
    # a batch store follows the same rule: all refused, or all stored with one index write
    batch = [(ToyNet(uniform_arch(i)), uniform_arch(i)) for i in (2, 3)]
    assert pool.store_many(batch, iterations=7) == 0 and len(pool) == 9
    assert pool.store_many(batch, iterations=100) == 2 and len(pool) == 27
    assert pool.counters.refused == 3 and pool.counters.stores == 3


def test_capacity_evicts_oldest_and_duplicates_replace(tmp_path: Path) -> None:
    pool = KnowledgePool(tmp_path / "akp", capacity=2)
    archs = [uniform_arch(i) for i in range(3)]
    for arch in archs:
        pool.store(ToyNet(arch), arch, 10)
    for position in ["stem", *range(7), "head"]:
        assert [e.arch for e in pool.entries("mnas", position)] == [str(archs[1]), str(archs[2])]
    files = {p.name for p in (tmp_path / "akp" / "tensors").iterdir()}
    assert files == {Path(e.file).name for e in pool.entries()}

    # re-storing archs[1] replaces its entries (new tensors) and makes them the newest
    retrained = ToyNet(archs[1], seed=5)
    pool.store(retrained, archs[1], 10)
    assert len(pool) == 18
    assert [e.arch for e in pool.entries("mnas", 0)] == [str(archs[2]), str(archs[1])]
    model = ToyNet(archs[1], seed=6)
    pool.initialise(model, archs[1])
    assert states_equal(model, retrained)
    pool.store(ToyNet(archs[0]), archs[0], 10)  # evicts archs[2], now the oldest
    assert [e.arch for e in pool.entries("mnas", 0)] == [str(archs[1]), str(archs[0])]


def test_bad_input_raises_clear_errors(tmp_path: Path) -> None:
    pool = KnowledgePool(tmp_path / "akp")
    nb = get_space("nb201").sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="spaces"):
        pool.lookup(nb)
    arch = uniform_arch(0)
    with pytest.raises(ValueError, match="stem, blocks"):
        pool.store(nn.Linear(2, 2), arch, 10)
    with pytest.raises(ValueError, match="capacity"):
        KnowledgePool(tmp_path / "other", capacity=0)


# ---- two processes, and a process killed mid-write ----------------------------------


def _context() -> mp.context.BaseContext:
    """Fresh processes forked from one server that imported torch once (fast, fork-safe)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["fnas_env.knowledge_pool"])
    return ctx


def _store_range(path: str, start: int, stop: int) -> None:
    pool = KnowledgePool(path)
    for i in range(start, stop):
        assert pool.store(ToyNet(uniform_arch(i), seed=i), uniform_arch(i), 10)


def test_two_processes_store_into_one_pool(tmp_path: Path) -> None:
    path = str(tmp_path / "akp")
    ctx = _context()
    procs = [ctx.Process(target=_store_range, args=(path, s, s + 5)) for s in (0, 5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    pool = KnowledgePool(path)
    assert len(pool) == 10 * 9
    assert {e.arch for e in pool.entries()} == {str(uniform_arch(i)) for i in range(10)}
    files = {p.name for p in (tmp_path / "akp" / "tensors").iterdir()}
    assert files == {Path(e.file).name for e in pool.entries()}
    model = ToyNet(uniform_arch(7), seed=0)
    pool.initialise(model, uniform_arch(7))
    assert states_equal(model, ToyNet(uniform_arch(7), seed=7))


def _store_then_hang(path: str, hang_in: str, ready) -> None:  # noqa: ANN001
    import os

    pool = KnowledgePool(path)
    pool.store(ToyNet(uniform_arch(0)), uniform_arch(0), 10)

    def hang(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        ready.set()
        time.sleep(120)

    setattr(os, hang_in, hang)  # the next store stops inside this call
    pool.store(ToyNet(uniform_arch(1)), uniform_arch(1), 10)


@pytest.mark.parametrize("hang_in", ["fsync", "replace"])  # a tensor file / the index
def test_sigkill_mid_write_leaves_a_loadable_pool(tmp_path: Path, hang_in: str) -> None:
    path = tmp_path / "akp"
    ctx = _context()
    ready = ctx.Event()
    proc = ctx.Process(target=_store_then_hang, args=(str(path), hang_in, ready))
    proc.start()
    assert ready.wait(120), "child never reached the write"
    proc.kill()
    proc.join(30)
    assert proc.exitcode == -9

    pool = KnowledgePool(path)  # loads; the interrupted store is lost, the first kept
    assert {e.arch for e in pool.entries()} == {str(uniform_arch(0))} and len(pool) == 9
    for e in pool.entries():
        assert pool.load_tensors(e)
    # the next store removes the orphans of the killed one
    assert pool.store(ToyNet(uniform_arch(2)), uniform_arch(2), 10)
    files = {p.name for p in (path / "tensors").iterdir()}
    assert files == {Path(e.file).name for e in pool.entries()} and len(files) == 18
    assert not list(path.glob(".index.json.*.tmp"))


def test_a_pool_folder_that_cannot_be_created_gets_a_clear_error(tmp_path: Path) -> None:
    from fnas_env.knowledge_pool import PoolNotWritable

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(PoolNotWritable, match="pool=None"):
        KnowledgePool(blocker / "pool")
