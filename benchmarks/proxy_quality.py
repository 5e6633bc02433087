"""Proxy quality: how well short proxy trainings rank architectures, with and without AKP.

What it measures (MnasNet space, scikit-learn digits, CPU):

1. Rank quality. ``--archs`` random ``mnas`` architectures are trained on the
   search task (digits classes 5-9) for ``--long-epochs`` (the reference
   ranking) and for each of ``--proxy-epochs`` (1, 2, 4) epochs:
   - from scratch;
   - with AKP initialisation from a *same-task* pool: ``--pool-archs`` other
     random architectures trained on classes 5-9 for a fixed number of
     iterations (``--pool-epochs`` worth);
   - with AKP initialisation from a *cross-task* pool: the same number of other
     architectures trained on classes 0-4 (another task), for
     ``--cross-epochs``.
   Spearman's rank correlation (``scipy.stats.spearmanr``) of each proxy's
   validation accuracy with the long training's, with a 90% bootstrap interval
   over architectures. The pools stay fixed while the search architectures are
   measured (their proxy checkpoints have other iteration counts, so the pool's
   fairness rule would refuse them anyway).
   The paper's claim tested: with AKP, E/2 epochs rank at least as well as E
   epochs from scratch.
2. Trainer throughput (images/s) of ``ProxyTrainer`` against a minimal plain
   PyTorch loop on the same model and data (target ratio >= 0.9).
3. Pool lookup time: the vectorised similarity search at 10,000 stored keys per
   position, and ``KnowledgePool.lookup`` on a real pool holding every distinct
   ``mnas`` block at every position (432 x 9 = 3,888 blocks; duplicates of a key
   replace each other, so no mnas pool holds more). Target <= 10 ms.
4. Latency repeatability: ``LatencyModel("measured")`` on the same
   architectures repeated in fresh models (no cache): spread of the repeated
   medians and the rank agreement between repeats.

Usage::

    python benchmarks/proxy_quality.py --quick            # under 10 minutes
    python benchmarks/proxy_quality.py --json runs/proxy_quality.json

    # the less saturated setting (all 10 classes, 720 training images, 360 validation),
    # 30-architecture pool, AKP at the from-scratch lr and at 0.2x (init_learning_rate_scale),
    # rank quality only; one process per seed, then the summary over seeds:
    python benchmarks/proxy_quality.py --archs 16 --pool-archs 30 --pool-epochs 3 \
        --long-epochs 12 --proxy-epochs 1 2 4 --akp-epochs 1 2 --cross-epochs \
        --search-classes 0 1 2 3 4 5 6 7 8 9 --max-train 720 --init-learning-rate-scales 1.0 0.2 \
        --rank-only true --seed 0 --json runs/pq_seed0.json
    python benchmarks/proxy_quality.py --summarise runs/pq_seed0.json runs/pq_seed1.json

Timings on a shared machine are noisy: report them as measured under load.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import bootstrap, spearmanr
from torch import nn

from fnas_env.arch import Architecture
from fnas_env.knowledge_pool import KnowledgePool, best_match
from fnas_env.latency import LatencyModel
from fnas_env.models import ProxyModelConfig, build_model
from fnas_env.spaces import get_space
from fnas_env.training import ImageDataset, ProxyTrainer, TrainConfig, load_dataset

__all__ = ["main", "Settings"]

SPACE = get_space("mnas")
SEARCH_CLASSES = tuple(range(5, 10))
OTHER_CLASSES = tuple(range(5))


@dataclass
class Settings:
    """Sizes of one run (``--quick`` shrinks them).

    ``search_classes``: digits labels of the search task (default 5-9); the cross-task
    pool is trained on the other labels, and is skipped when there are none or
    ``cross_epochs`` is empty. ``max_train``: stratified cap on training images (0: no
    cap; validation keeps its full 20% split). ``init_learning_rate_scales``: each value gives one
    same-task AKP method trained with ``TrainConfig.init_learning_rate_scale`` set to it (1.0 is
    the original ``akp_same``; others are named ``akp_same_lr<scale>``); the cross-task
    pool uses the first. ``akp_epochs``: proxy lengths of the same-task AKP methods
    (default empty: ``proxy_epochs``). ``rank_only``: skip throughput, lookup and latency sections.
    """

    archs: int = 20
    pool_archs: int = 12
    long_epochs: int = 16
    proxy_epochs: tuple[int, ...] = (1, 2, 4)
    cross_epochs: tuple[int, ...] = (1, 2)
    pool_epochs: int = 4
    batch_size: int = 64
    width_mult: float = 0.25
    channels_last: bool = True
    num_threads: int = 1
    seed: int = 0
    throughput_archs: int = 2
    lookup_combos: int = 432
    latency_archs: int = 8
    latency_repeats: int = 4
    # the less saturated setting (the defaults are the saturated one)
    search_classes: tuple[int, ...] = SEARCH_CLASSES
    max_train: int = 0
    init_learning_rate_scales: tuple[float, ...] = (1.0,)
    akp_epochs: tuple[int, ...] = ()
    rank_only: bool = False


QUICK = dict(
    archs=4,
    pool_archs=3,
    long_epochs=4,
    proxy_epochs=(1, 2),
    cross_epochs=(1,),
    pool_epochs=2,
    throughput_archs=1,
    lookup_combos=60,
    latency_archs=4,
    latency_repeats=3,
)


@dataclass
class Run:
    """One training: accuracy, seconds, and the pool's statistics if AKP initialised it."""

    accuracy: float
    seconds: float
    iterations: int
    init: dict[str, Any] = field(default_factory=dict)


# ---- training helpers ------------------------------------------------------------------


def make_model(arch: Architecture, cfg: ProxyModelConfig, s: Settings, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(arch, cfg)
    return model.to(memory_format=torch.channels_last) if s.channels_last else model


def train(
    arch: Architecture,
    data: ImageDataset,
    cfg: ProxyModelConfig,
    s: Settings,
    epochs: int,
    model_seed: int,
    pool: KnowledgePool | None = None,
    max_iterations: int | None = None,
    init_learning_rate_scale: float = 1.0,
) -> tuple[Run, nn.Module]:
    model = make_model(arch, cfg, s, model_seed)
    trainer = ProxyTrainer(
        TrainConfig(
            epochs=epochs,
            batch_size=s.batch_size,
            seed=s.seed,
            max_iterations=max_iterations,
            init_learning_rate_scale=init_learning_rate_scale,
        )
    )
    init_fn = (lambda m: pool.initialise(m, arch)) if pool is not None else None
    result = trainer.train(model, data, init_fn=init_fn)
    init = result.init.as_dict() if result.init is not None else {}
    return Run(result.accuracy, result.cost, result.iterations, init), model


def distinct_archs(n: int, rng: np.random.Generator, exclude: set[Architecture]) -> list:
    out: list[Architecture] = []
    while len(out) < n:
        arch = SPACE.sample(rng)
        if arch not in exclude:
            exclude.add(arch)
            out.append(arch)
    return out


def build_pool(
    path: Path,
    archs: list[Architecture],
    data: ImageDataset,
    cfg: ProxyModelConfig,
    s: Settings,
    iterations: int,
    task: str,
) -> tuple[KnowledgePool, float]:
    pool = KnowledgePool(path, iterations=iterations)
    start = time.perf_counter()
    for i, arch in enumerate(archs):
        run, model = train(arch, data, cfg, s, s.pool_epochs, 10_000 + i, None, iterations)
        if not pool.store(model, arch, iterations=run.iterations, task=task):
            raise RuntimeError(f"pool refused a checkpoint of {run.iterations} iterations")
        print(f"  pool[{task}] {i + 1}/{len(archs)} acc {run.accuracy:5.1f}", flush=True)
    return pool, time.perf_counter() - start


# ---- rank statistics --------------------------------------------------------------------


def spearman(x: list[float], y: list[float]) -> dict[str, float | None]:
    """Spearman's rho, its p-value and a 90% bootstrap interval over architectures."""
    x_arr, y_arr = np.asarray(x), np.asarray(y)
    if len(x_arr) < 3 or np.ptp(x_arr) == 0 or np.ptp(y_arr) == 0:
        return {"rho": None, "p": None, "ci_low": None, "ci_high": None}
    res = spearmanr(x_arr, y_arr)

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        r = spearmanr(a, b).statistic
        return 0.0 if not np.isfinite(r) else float(r)

    ci = bootstrap(
        (x_arr, y_arr),
        stat,
        paired=True,
        vectorized=False,
        n_resamples=1000,
        confidence_level=0.9,
        method="percentile",
        random_state=0,
    ).confidence_interval
    return {
        "rho": float(res.statistic),
        "p": float(res.pvalue),
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
    }


def method_name(scale: float) -> str:
    """Result key of the same-task AKP method trained with ``init_learning_rate_scale=scale``."""
    return "akp_same" if scale == 1.0 else f"akp_same_lr{scale:g}"


def methods(s: Settings, cross: bool) -> list[tuple[str, tuple[int, ...]]]:
    """(result key, proxy epochs) of every measured method."""
    out = [("scratch", s.proxy_epochs)]
    out += [
        (method_name(scale), s.akp_epochs or s.proxy_epochs)
        for scale in s.init_learning_rate_scales
    ]
    if cross:
        out.append(("akp_cross", s.cross_epochs))
    return out


def rank_quality(s: Settings, results: dict[str, Any]) -> dict[str, Any]:
    truth = [r["long"]["accuracy"] for r in results["archs"]]
    table: dict[str, dict[str, Any]] = {}
    measured = methods(s, "akp_cross" in results["archs"][0])
    for method, epochs in measured:
        for e in epochs:
            accs = [r[method][str(e)]["accuracy"] for r in results["archs"]]
            row = spearman(accs, truth)
            row["mean_accuracy"] = float(np.mean(accs))
            row["mean_seconds"] = float(
                np.mean([r[method][str(e)]["seconds"] for r in results["archs"]])
            )
            if method != "scratch":
                inits = [r[method][str(e)]["init"] for r in results["archs"]]
                row["hit_ratio"] = float(np.mean([i["hit_ratio"] for i in inits]))
                row["exact_ratio"] = float(np.mean([i["exact_ratio"] for i in inits]))
                row["mean_similarity"] = float(np.mean([i["mean_similarity"] for i in inits]))
                row["lookup_ms"] = float(np.median([i["lookup_ms"] for i in inits]))
                row["load_ms"] = float(np.median([i["load_ms"] for i in inits]))
            table[f"{method}/{e}"] = row
    claims = []
    for method, epochs in measured[1:]:
        for e in s.proxy_epochs:
            half = e // 2
            if e % 2 or half not in epochs:
                continue
            akp, scratch = table[f"{method}/{half}"]["rho"], table[f"scratch/{e}"]["rho"]
            holds = akp is not None and scratch is not None and akp >= scratch
            claims.append(
                {"method": method, "akp_epochs": half, "scratch_epochs": e, "akp_rho": akp,
                 "scratch_rho": scratch, "holds": bool(holds)}
            )  # fmt: skip
    return {"spearman": table, "claims": claims}


# ---- throughput: trainer versus a plain loop --------------------------------------------


def plain_loop(model: nn.Module, data: ImageDataset, batch_size: int, epochs: int) -> float:
    """Images/s of a minimal PyTorch loop (same optimiser, no checks, no schedule)."""
    opt = torch.optim.SGD(
        model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=4e-5
    )
    x, y = data.x_train, data.y_train
    n = x.shape[0]
    steps = n // batch_size
    g = torch.Generator().manual_seed(0)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return epochs * steps * batch_size / (time.perf_counter() - start)


def throughput(s: Settings, data: ImageDataset, cfg: ProxyModelConfig, archs: list) -> dict:
    rows = []
    for arch in archs[: s.throughput_archs]:
        best_trainer = best_plain = 0.0
        for _ in range(2):  # alternate, best of two: less sensitive to other load
            model = make_model(arch, cfg, s, 0)
            trainer = ProxyTrainer(TrainConfig(epochs=1, batch_size=s.batch_size, seed=s.seed))
            best_trainer = max(best_trainer, trainer.train(model, data).images_per_second)
            best_plain = max(
                best_plain, plain_loop(make_model(arch, cfg, s, 0), data, s.batch_size, 1)
            )
        rows.append({"arch": str(arch), "trainer": best_trainer, "plain": best_plain,
                     "ratio": best_trainer / best_plain})  # fmt: skip
    return {
        "rows": rows,
        "median_ratio": float(np.median([r["ratio"] for r in rows])),
        "target": 0.9,
    }


# ---- lookup time --------------------------------------------------------------------------


class _TinyBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(1, 1)])


class _TinyNet(nn.Module):
    """Smallest model of the pool's contract: the lookup does not depend on tensor sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(1, 1)
        self.blocks = nn.ModuleList(_TinyBlock() for _ in SPACE.blocks)
        self.head = nn.Linear(1, 1)


def lookup_time(s: Settings, workdir: Path) -> dict:
    rng = np.random.default_rng(s.seed)
    # (a) the similarity kernel at 10,000 stored keys per position (9 positions per query)
    dim = len(SPACE.block_embeddings(SPACE.sample(rng))[0].embedding)
    tables = []
    for _ in range(9):
        keys = np.zeros((10_000, dim), np.float32)
        for arch_i in range(10_000):
            offset = 0
            for d in SPACE.blocks[0]:
                n = SPACE.decisions[d].n
                keys[arch_i, offset + rng.integers(n)] = 1.0
                offset += n
        tables.append(keys / np.linalg.norm(keys, axis=1, keepdims=True))
    times = []
    for _ in range(200):
        embs = SPACE.block_embeddings(SPACE.sample(rng))
        queries = [embs[0].embedding, *(e.embedding for e in embs), embs[-1].embedding]
        t0 = time.perf_counter()
        for table, q in zip(tables, queries):
            best_match(table, q)
        times.append((time.perf_counter() - t0) * 1e3)
    kernel_ms = float(np.median(times))

    # (b) a real pool with every distinct block at every position (tiny tensors)
    sizes = [SPACE.decisions[d].n for d in SPACE.blocks[0]]
    combos = [tuple(int(c) for c in np.unravel_index(i, sizes)) for i in range(int(np.prod(sizes)))]
    order = rng.permutation(len(combos))[: s.lookup_combos]
    path = workdir / "lookup_pool"
    pool = KnowledgePool(path, capacity=1000)
    t0 = time.perf_counter()
    items = [
        (_TinyNet(), SPACE.from_choices([c for _ in SPACE.blocks for c in combos[i]]))
        for i in order
    ]
    pool.store_many(items, iterations=1)
    fill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reopened = KnowledgePool(path)
    open_ms = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(200):
        arch = SPACE.sample(rng)
        t0 = time.perf_counter()
        reopened.lookup(arch)
        times.append((time.perf_counter() - t0) * 1e3)
    return {
        "kernel_keys_per_position": 10_000,
        "kernel_ms_per_arch": kernel_ms,
        "pool_blocks": len(reopened),
        "pool_lookup_ms_per_arch": float(np.median(times)),
        "pool_lookup_ms_p95": float(np.percentile(times, 95)),
        "pool_open_ms": open_ms,
        "pool_fill_seconds": fill_s,
        "target_ms": 10.0,
    }


# ---- latency repeatability ------------------------------------------------------------


def latency_repeatability(s: Settings, cfg: ProxyModelConfig, rng: np.random.Generator) -> dict:
    archs = [SPACE.sample(rng) for _ in range(s.latency_archs)]
    runs = []  # runs[r][a]: median ms of arch a in repeat r (fresh model, no cache)
    for _ in range(s.latency_repeats):
        model = LatencyModel("measured", num_threads=1)
        runs.append([model.latency(a, cfg) for a in archs])
    values = np.asarray(runs)
    cv = values.std(axis=0, ddof=1) / values.mean(axis=0)
    spread = (values.max(axis=0) - values.min(axis=0)) / np.median(values, axis=0)
    rhos = [spearmanr(values[i], values[j]).statistic
            for i in range(len(values)) for j in range(i + 1, len(values))]  # fmt: skip
    return {
        "archs": s.latency_archs,
        "repeats": s.latency_repeats,
        "median_ms": float(np.median(values)),
        "cv_median": float(np.median(cv)),
        "cv_max": float(cv.max()),
        "spread_median": float(np.median(spread)),
        "spread_max": float(spread.max()),
        "rank_rho_between_repeats_mean": float(np.mean(rhos)),
        "rank_rho_between_repeats_min": float(np.min(rhos)),
    }


# ---- main ----------------------------------------------------------------------------------


def _save(path: Path | None, results: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=_json_default))
        tmp.replace(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def _fmt(v: float | None, spec: str = "+.2f") -> str:
    return "  n/a" if v is None else format(v, spec)


def report(s: Settings, results: dict) -> None:
    rq = results["rank_quality"]
    task = f"digits {list(s.search_classes)}"
    print("\n== Rank quality (Spearman vs "
          f"{s.long_epochs}-epoch training, {s.archs} archs, {task}) ==")  # fmt: skip
    print(
        f"{'proxy':<16}{'rho':>7}{'90% CI':>17}{'mean acc':>10}{'s/arch':>8}{'hit':>6}{'exact':>7}"
    )
    for name, row in rq["spearman"].items():
        ci = f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
        hit = f"{row['hit_ratio']:.2f}" if "hit_ratio" in row else "-"
        exact = f"{row['exact_ratio']:.2f}" if "exact_ratio" in row else "-"
        print(f"{name:<16}{_fmt(row['rho']):>7}{ci:>17}{row['mean_accuracy']:>10.1f}"
              f"{row['mean_seconds']:>8.1f}{hit:>6}{exact:>7}")  # fmt: skip
    print("\nClaim: with AKP, E/2 epochs rank at least as well as E epochs from scratch")
    for c in rq["claims"]:
        verdict = "HOLDS" if c["holds"] else "does NOT hold"
        print(f"  {c['method']}: AKP {c['akp_epochs']} ep rho {_fmt(c['akp_rho'])} vs scratch "
              f"{c['scratch_epochs']} ep rho {_fmt(c['scratch_rho'])}: {verdict}")  # fmt: skip
    print(f"reference accuracies: {results['reference']}")
    if "throughput" in results:
        t = results["throughput"]
        print(
            f"\nTrainer throughput / plain loop: median ratio {t['median_ratio']:.2f} "
            "(target >= 0.9)"
        )
        for r in t["rows"]:
            print(f"  trainer {r['trainer']:.0f} img/s, plain {r['plain']:.0f} img/s")
    if "lookup" in results:
        lk = results["lookup"]
        print(
            f"\nLookup: kernel at 10,000 keys x 9 positions {lk['kernel_ms_per_arch']:.3f} "
            f"ms/arch; pool of {lk['pool_blocks']} blocks {lk['pool_lookup_ms_per_arch']:.3f} "
            f"ms/arch (p95 {lk['pool_lookup_ms_p95']:.3f}); open {lk['pool_open_ms']:.0f} ms "
            "(target <= 10 ms)"
        )
    if "latency" in results:
        la = results["latency"]
        print(f"\nLatency repeatability ({la['archs']} archs x {la['repeats']} repeats, median "
              f"{la['median_ms']:.2f} ms): CV median {la['cv_median']:.1%} max {la['cv_max']:.1%}; "
              f"rank rho between repeats mean {la['rank_rho_between_repeats_mean']:.2f} "
              f"min {la['rank_rho_between_repeats_min']:.2f}")  # fmt: skip


def summarise(paths: list[Path]) -> dict:
    """Rank quality of saved (possibly partial) ``--json`` results, per file and averaged.

    A run stopped early keeps the architectures it finished; the Spearman table is
    computed over those. With several files (e.g. one per ``--seed``), the mean rho of
    each proxy over the files is printed too.
    """
    per_file = {}
    for path in paths:
        results = json.loads(path.read_text())
        saved = dict(results["settings"])
        # results files that use the short names "threads" and "init_lr_scales"
        for short, name in (
            ("threads", "num_threads"),
            ("init_lr_scales", "init_learning_rate_scales"),
        ):
            if short in saved:
                saved[name] = saved.pop(short)
        s = Settings(**{k: tuple(v) if isinstance(v, list) else v
                        for k, v in saved.items()})  # fmt: skip
        done = len(results["archs"])
        s.archs = done
        results["rank_quality"] = rank_quality(s, results)
        truth = np.asarray([r["long"]["accuracy"] for r in results["archs"]])
        results["reference"] = {"min": float(truth.min()), "max": float(truth.max()),
                                "distinct": int(len(np.unique(truth))), "archs": done}  # fmt: skip
        print(f"\n##### {path} ({done} architectures finished)")
        report(s, results)
        per_file[str(path)] = results["rank_quality"]
    if len(paths) > 1:
        print("\n##### mean rho over files")
        names = list(next(iter(per_file.values()))["spearman"])
        for name in names:
            rhos = [rq["spearman"][name]["rho"] for rq in per_file.values()]
            shown = " ".join(_fmt(r) for r in rhos)
            valid = [r for r in rhos if r is not None]
            mean = _fmt(float(np.mean(valid)) if valid else None)
            print(f"{name:<18} mean {mean}  ({shown})")
    return per_file


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, under 10 minutes")
    p.add_argument("--json", type=Path, default=None, help="write results (also partial) here")
    p.add_argument("--workdir", type=Path, default=None, help="pools go here (default: temp dir)")
    p.add_argument("--summarise", type=Path, nargs="+", default=None,
                   help="only report the rank quality of these saved --json files")  # fmt: skip
    for name, default in asdict(Settings()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=None)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else int
            p.add_argument(flag, type=kind, nargs="*", default=None)
        else:
            p.add_argument(flag, type=type(default), default=None)
    args = p.parse_args(argv)
    if args.summarise:
        return summarise(args.summarise)
    s = Settings(**(QUICK if args.quick else {}))
    for name in asdict(s):
        value = getattr(args, name)
        if value is not None:
            setattr(s, name, tuple(value) if isinstance(value, list) else value)

    torch.set_num_threads(s.num_threads)
    start = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fnas_proxy_quality_"))
    for sub in ("pool_same", "pool_cross", "lookup_pool"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    cap = s.max_train or None
    other_classes = tuple(c for c in range(10) if c not in s.search_classes)
    cross = bool(other_classes) and bool(s.cross_epochs)
    search = load_dataset("digits", classes=s.search_classes, seed=s.seed, max_train=cap)
    other = (
        load_dataset("digits", classes=other_classes, seed=s.seed, max_train=cap)
        if cross
        else search
    )
    cfg = ProxyModelConfig.digits(width_mult=s.width_mult, num_classes=len(s.search_classes))
    steps = min(search.num_train, other.num_train) // s.batch_size
    pool_iterations = s.pool_epochs * steps
    results: dict[str, Any] = {
        "command": " ".join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
        "settings": asdict(s),
        "model_config": asdict(cfg),
        "train_config": asdict(TrainConfig(batch_size=s.batch_size, seed=s.seed)),
        "search_task": f"digits classes {list(s.search_classes)} "
        f"({search.num_train} train / {search.num_val} val)",
        "other_task": f"digits classes {list(other_classes)} ({other.num_train} train)"
        if cross else None,
        "pool_iterations": pool_iterations,
        "archs": [],
    }  # fmt: skip
    print(f"settings: {asdict(s)}\nworkdir: {workdir}", flush=True)

    rng = np.random.default_rng(s.seed)
    seen: set[Architecture] = set()
    search_archs = distinct_archs(s.archs, rng, seen)
    same_archs = distinct_archs(s.pool_archs, rng, seen)
    cross_archs = distinct_archs(s.pool_archs, rng, seen)

    print(f"building pools ({s.pool_archs} archs each, {pool_iterations} iterations)", flush=True)
    same_task = "digits" + "".join(map(str, s.search_classes))
    pool_same, t_same = build_pool(workdir / "pool_same", same_archs, search, cfg, s,
                                   pool_iterations, same_task)  # fmt: skip
    results["pool_seconds_per_arch"] = t_same / max(1, s.pool_archs)
    results["pools"] = {"same": pool_same.summary()}
    pool_cross = None
    if cross:
        build_pool(workdir / "pool_cross", cross_archs, other, cfg, s, pool_iterations,
                   "digits" + "".join(map(str, other_classes)))  # fmt: skip
        # the cross-task pool is reopened as another search would open a shared pool
        pool_cross = KnowledgePool(workdir / "pool_cross")
        results["pools"]["cross"] = pool_cross.summary()
    runs: list[tuple[str, KnowledgePool | None, tuple[int, ...], float]] = [
        ("scratch", None, s.proxy_epochs, 1.0)
    ]
    akp_epochs = s.akp_epochs or s.proxy_epochs
    runs += [(method_name(k), pool_same, akp_epochs, k) for k in s.init_learning_rate_scales]
    if cross:
        runs.append(("akp_cross", pool_cross, s.cross_epochs, s.init_learning_rate_scales[0]))

    for i, arch in enumerate(search_archs):
        row: dict[str, Any] = {"arch": str(arch)}
        run, _ = train(arch, search, cfg, s, s.long_epochs, i)
        row["long"] = asdict(run)
        for method, pool, epochs, scale in runs:
            row[method] = {
                str(e): asdict(train(arch, search, cfg, s, e, i, pool, None, scale)[0])
                for e in epochs
            }
        results["archs"].append(row)
        short = " ".join(
            f"{m}/{e}={row[m][e]['accuracy']:.0f}" for m, *_ in runs for e in row[m]
        )  # fmt: skip
        print(f"[{i + 1}/{s.archs}] {time.perf_counter() - start:6.0f}s long={run.accuracy:.1f} "
              f"{short}", flush=True)  # fmt: skip
        _save(args.json, results)

    results["rank_quality"] = rank_quality(s, results)
    truth = np.asarray([r["long"]["accuracy"] for r in results["archs"]])
    results["reference"] = {
        "min": float(truth.min()),
        "max": float(truth.max()),
        "distinct": int(len(np.unique(truth))),
        "val_images": search.num_val,
    }
    _save(args.json, results)
    if s.rank_only:
        results["wall_seconds"] = time.perf_counter() - start
        _save(args.json, results)
        report(s, results)
        print(f"\ntotal {results['wall_seconds']:.0f} s")
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        return results
    print("measuring trainer throughput", flush=True)
    results["throughput"] = throughput(s, search, cfg, search_archs)
    print("measuring pool lookup time", flush=True)
    results["lookup"] = lookup_time(s, workdir)
    print("measuring latency repeatability", flush=True)
    results["latency"] = latency_repeatability(s, cfg, np.random.default_rng(s.seed + 1))
    results["wall_seconds"] = time.perf_counter() - start
    _save(args.json, results)
    report(s, results)
    print(f"\ntotal {results['wall_seconds']:.0f} s")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
