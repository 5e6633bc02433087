"""FNAS ablation (the paper's Tables 4 and 5): what UAC and AEB buy over MnasNet's controller.

Runs ``mnas`` (RecurrentPPO, every sample trained), ``uac``, ``aeb``, ``fnas``
(UAC + AEB, :mod:`agents.fnas_methods`) and regularized ``evolution`` through
:func:`agents.harness.run_method` (so activated samples are counted as for every
other method: every real evaluation, repeats included; trusted and replayed
samples are free), plus ``fnas-transfer`` (critic pretrained by the ``fnas``
search on NB201 cifar10, same seed, then searching cifar100 / ImageNet16-120).

Per env and method it prints the median over seeds of:

- activated samples and cost (summed ``Evaluation.cost`` of the activated samples,
  where the benchmark gives one: Accel-NASBench's training time) to reach the
  ``mnas`` target: the **lower median over seeds of mnas's final best reward** (one
  target per env; the middle value, with an even number of seeds the lower of the
  two middle ones, so at least half of the mnas runs reach it and mnas's own median
  is defined; seeds that never reach it count as infinite);
- activated samples to the top-1% / top-0.1% accuracy where the space is tabular;
- the best reward after 50, 100 and ``budget`` activated samples;
- the trusted fraction (trusted / completed architectures, the gate's) and the
  replayed fraction (replayed / episodes in PPO batches);
- the speed-up: mnas's median activated samples to the target / the method's, with
  a 90% bootstrap interval (seeds of both resampled; a run that never reaches the
  target counts as infinite), and the same speed-up to a second, less noisy
  target: the level mnas reaches after 100 samples (lower median over seeds).

and whether the targets hold (UAC >= 2x, AEB >= 1.5x, FNAS >= 4x, transfer >= 4x
fewer activated samples than mnas to mnas's final best; FNAS reaching the top-0.1%
with no more activated samples than evolution).

    python benchmarks/fnas_ablation.py --quick
    python benchmarks/fnas_ablation.py --envs macro,anb-zcu102 --seeds 5 --budget 100 --json a.json
    python benchmarks/fnas_ablation.py --tables a.json,b.json   # tables of saved records
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

import agents.fnas_methods as fm
from agents.harness import TracePoint, make_search_env, reach, run_method

__all__ = [
    "ENVS",
    "METHODS",
    "TARGETS",
    "env_targets",
    "activated_to_reward",
    "summarize",
    "add_mnas_targets",
    "run",
    "tables",
    "main",
    "load_records",
    "curve_tables",
    "parse_settings",
    "lower_median",
    "speedup_interval",
]

#: Env names -> (gym id, gym.make kwargs).
ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "macro": ("FNAS-Macro-v0", {}),
    "nb201-cifar10": ("FNAS-NB201-v0", {"dataset": "cifar10"}),
    "nb201-cifar100": ("FNAS-NB201-v0", {"dataset": "cifar100"}),
    "nb201-imagenet16": ("FNAS-NB201-v0", {"dataset": "ImageNet16-120"}),
    "anb-zcu102": ("FNAS-ANB-v0", {"device": "zcu102"}),
}
#: Methods run on every env; fnas-transfer runs on TRANSFER_TARGETS.
METHODS = ("mnas", "uac", "aeb", "fnas", "evolution")
TRANSFER_SOURCE = "nb201-cifar10"
TRANSFER_TARGETS = ("nb201-cifar100", "nb201-imagenet16")
#: Speed-up targets (mnas activated samples / method's, to mnas's final best reward).
TARGETS = {"uac": 2.0, "aeb": 1.5, "fnas": 4.0, "fnas-transfer": 4.0}
CHECKPOINTS = (100, 250)
#: The tables' second target: the median best reward mnas reaches after this many samples.
EARLY_LEVEL = 100
#: Activated budgets whose best reward the tables show (besides the final one).
TABLE_CHECKPOINTS = (50, 100)


def env_targets(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Top-1% / top-0.1% accuracies of a tabular env (None where the space is not a table)."""
    env = make_search_env(env_id, env_kwargs)
    evaluator = env.unwrapped.evaluator
    out: dict[str, Any] = {"top1pct": None, "top01pct": None}
    if hasattr(evaluator, "all_accuracies"):
        acc = np.sort(np.asarray(evaluator.all_accuracies(), dtype=float))[::-1]
        out = {
            "top1pct": float(acc[math.ceil(0.01 * len(acc)) - 1]),
            "top01pct": float(acc[math.ceil(0.001 * len(acc)) - 1]),
        }
    env.close()
    return out


def _costs(env_id: str, env_kwargs: dict[str, Any], trace: list[TracePoint]) -> list[float] | None:
    """Evaluation.cost of every activated sample (re-looked up: benchmarks are deterministic)."""
    env = make_search_env(env_id, env_kwargs)
    base = env.unwrapped
    space = base.search_space
    cache: dict[str, float | None] = {}
    costs = []
    for p in trace:
        if p.arch not in cache:
            cache[p.arch] = base.evaluator.evaluate(space.from_string(p.arch)).cost
        if cache[p.arch] is None:  # the benchmark gives no cost
            break
        costs.append(cache[p.arch])
    env.close()
    return [float(c) for c in costs] if len(costs) == len(trace) else None


def activated_to_reward(trace: list[TracePoint], threshold: float) -> int | None:
    """Activated samples until the best reward is >= ``threshold`` (None: never)."""
    for point in trace:
        if point.best_reward >= threshold:
            return point.activated
    return None


def summarize(
    env: str,
    method: str,
    seed: int,
    trace: list[TracePoint],
    targets: dict[str, Any],
    costs: list[float] | None,
    fnas_stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One JSON record (the foundation benchmark's keys plus the FNAS figures)."""
    last = trace[-1]
    best = max(trace, key=lambda p: p.reward)

    def to(th):
        return None if th is None else reach(trace, th)

    stats = fnas_stats or {}
    metrics, counters = stats.get("metrics", {}), stats.get("counters", {})
    batch_eps = sum(counters.get(k, 0) for k in ("accepted_trusted", "evaluated", "replayed"))
    rec: dict[str, Any] = {
        "env": env,
        "method": method,
        "seed": seed,
        "budget": len(trace),
        "activated_to_top1pct": to(targets["top1pct"]),
        "activated_to_top01pct": to(targets["top01pct"]),
        "top1pct_accuracy": targets["top1pct"],
        "top01pct_accuracy": targets["top01pct"],
        "best_accuracy": last.best_accuracy,
        "best_reward": last.best_reward,
        "best_arch": best.arch,
        "unique": last.unique,
        "sampled": last.sampled,
        "wall_s": last.wall_time,
        "eval_s": last.eval_time,
        "best_reward_trace": [p.best_reward for p in trace],
        "unique_trace": [p.unique for p in trace],
        "cost_trace": None if costs is None else np.cumsum(costs).tolist(),
        "trusted_fraction": metrics.get("trusted_fraction"),
        "replayed_fraction": counters.get("replayed", 0) / batch_eps if batch_eps else None,
        "fnas_counters": counters or None,
        "activated_to_mnas_best": None,
        "distinct_to_mnas_best": None,
        "cost_to_mnas_best": None,
        "mnas_best_reward": None,
    }
    for k in CHECKPOINTS:
        rec[f"best_reward_at_{k}"] = trace[k - 1].best_reward if len(trace) >= k else None
    if rec["trusted_fraction"] is not None and not math.isfinite(rec["trusted_fraction"]):
        rec["trusted_fraction"] = None
    return rec


def lower_median(values: list[float]) -> float:
    """The middle value; of an even number, the lower of the two middle ones."""
    if not values:
        raise ValueError("lower_median of no values")
    return float(np.sort(np.asarray(values, dtype=float))[(len(values) - 1) // 2])


def add_mnas_targets(records: list[dict[str, Any]]) -> None:
    """Fill ``activated_to_mnas_best``/``cost_to_mnas_best``: target = lower median of mnas's
    final bests."""
    for env in dict.fromkeys(r["env"] for r in records):
        rows = [r for r in records if r["env"] == env]
        mnas = [r["best_reward"] for r in rows if r["method"] == "mnas"]
        if not mnas:
            continue
        target = lower_median(mnas)
        for r in rows:
            r["mnas_best_reward"] = target
            n = _activated_to(r, target)
            r["activated_to_mnas_best"] = n
            r["distinct_to_mnas_best"] = _distinct_at(r, n)
            r["cost_to_mnas_best"] = (
                None if n is None or r["cost_trace"] is None else r["cost_trace"][n - 1]
            )


def run(
    envs: list[str],
    methods: list[str],
    seeds: list[int],
    budget: int,
    benchmark_dir: str | None = None,
    work_dir: str | None = None,
    log=print,
    jsonl: str | None = None,
) -> list[dict[str, Any]]:
    """Run every (env, method, seed); ``fnas-transfer`` loads the NB201 cifar10 fnas critics.

    ``work_dir`` keeps the critics the NB201 cifar10 ``fnas`` runs save (default: a
    temporary folder); several processes may share it. Before a ``fnas-transfer`` seed,
    a missing source critic is made by a ``fnas`` run on NB201 cifar10 (not reported).
    ``jsonl``: append every record to this file as soon as its run ends (partial runs
    keep what finished).
    """
    work = work_dir or tempfile.mkdtemp(prefix="fnas-ablation-")
    source_dir = f"{work}/{TRANSFER_SOURCE}"
    records: list[dict[str, Any]] = []

    def one(name: str, method: str, seed: int, report: bool = True) -> None:
        env_id, kwargs = ENVS[name]
        kwargs = dict(kwargs, **({"benchmark_dir": benchmark_dir} if benchmark_dir else {}))
        targets = env_targets(env_id, kwargs)
        save = method == "fnas" and name == TRANSFER_SOURCE
        fm.configure(
            save_dir=source_dir if save else None,
            transfer_critic=f"{source_dir}/critic-{{seed}}.pt",
        )
        start = time.perf_counter()
        fm.LAST_RUN.clear()
        trace = run_method(method, env_id, kwargs, budget=budget, seed=seed)
        stats = dict(fm.LAST_RUN) if "counters" in fm.LAST_RUN else None  # FNAS runs
        rec = summarize(name, method, seed, trace, targets, _costs(env_id, kwargs, trace), stats)
        rec["reported"] = report
        rec["fnas_settings"] = {
            k: v
            for k, v in vars(fm.FNAS_SETTINGS).items()
            if k not in ("save_dir", "transfer_critic", "transfer_buffer")
        }
        if report:
            records.append(rec)
        if jsonl:
            with open(jsonl, "a") as f:
                f.write(json.dumps(rec) + "\n")
        log(
            f"{name:16s} {method:13s} seed {seed}: best reward {rec['best_reward']:.2f} "
            f"top1% @ {rec['activated_to_top1pct']} top0.1% @ "
            f"{rec['activated_to_top01pct']} trusted {rec['trusted_fraction']} "
            f"({time.perf_counter() - start:.1f} s)"
        )

    try:
        for name in envs:
            for method in methods:
                if method == "fnas-transfer" and name not in TRANSFER_TARGETS:
                    continue
                for seed in seeds:
                    if method == "fnas-transfer" and not os.path.isfile(
                        f"{source_dir}/critic-{seed}.pt"
                    ):
                        one(TRANSFER_SOURCE, "fnas", seed, report=False)
                    one(name, method, seed)
    finally:
        fm.configure(save_dir=None, transfer_critic=None)
    add_mnas_targets(records)
    return records


def _mnas_level(mnas: list[dict[str, Any]], k: int) -> float:
    """Median over mnas seeds of the best reward after ``k`` activated samples (NaN: none)."""
    values = [r["best_reward_trace"][k - 1] for r in mnas if len(r["best_reward_trace"]) >= k]
    return lower_median(values) if values else math.nan


def _activated_to(record: dict[str, Any], level: float) -> int | None:
    """Activated samples until the record's best reward reaches ``level`` (None: never)."""
    if math.isnan(level):
        return None
    return next((i + 1 for i, b in enumerate(record["best_reward_trace"]) if b >= level), None)


def _distinct_at(record: dict[str, Any], n: int | None) -> int | None:
    """Distinct architectures among the first ``n`` activated samples (None: unknown/never).

    On a deterministic benchmark this is what the run would have paid with a result
    cache (each architecture trained once, a repeat looked up at no cost).
    """
    trace = record.get("unique_trace")
    return None if n is None or not trace else trace[n - 1]


def _counts_to(
    records: list[dict[str, Any]], level: float
) -> tuple[list[int | None], list[int | None]]:
    """Activated samples and distinct architectures of each record until ``level``."""
    activated = [_activated_to(r, level) for r in records]
    return activated, [_distinct_at(r, n) for r, n in zip(records, activated)]


def _speed(reference: float, counts: list[int | None]) -> float:
    """reference median / the method's median (0: never reached; NaN: no reference)."""
    median = _median(counts)
    if not math.isfinite(reference):
        return math.nan
    return reference / median if math.isfinite(median) else 0.0


def _median(values: list[float | None]) -> float:
    return float(np.median([math.inf if v is None else v for v in values]))


def _fmt(x: float, budget: int | None = None, digits: str = "g") -> str:
    if math.isinf(x):
        return f">{budget}" if budget is not None else "never"
    return format(x, digits)


def speedup_interval(
    reference: list[int | None],
    counts: list[int | None],
    level: float = 0.9,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap interval of median(reference) / median(counts), seeds resampled independently.

    ``None`` (never reached) counts as infinite, so a resampled ratio may be 0 (the
    method's median never reached) or inf (the reference's). Quantiles are taken
    without interpolation (``method="lower"/"higher"``), which keeps 0 and inf exact.
    """
    rng = np.random.default_rng(seed)
    ref = np.array([math.inf if v is None else v for v in reference], dtype=float)
    cnt = np.array([math.inf if v is None else v for v in counts], dtype=float)
    a = np.median(rng.choice(ref, size=(resamples, len(ref))), axis=1)
    b = np.median(rng.choice(cnt, size=(resamples, len(cnt))), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isinf(b), 0.0, a / b)
    ratio = np.where(np.isnan(ratio), 0.0, ratio)
    tail = (1.0 - level) / 2
    return (
        float(np.quantile(ratio, tail, method="lower")),
        float(np.quantile(ratio, 1.0 - tail, method="higher")),
    )


def _fmt_interval(interval: tuple[float, float]) -> str:
    return "[" + ", ".join("inf" if math.isinf(x) else f"{x:.2f}" for x in interval) + "]"


def _fmt_speed(speed: float, mnas_median: float, budget: int) -> str:
    """``1.50x``; ``<0.92x`` when the method's median never got there (it needs > budget)."""
    if math.isnan(speed):
        return "-"
    if speed > 0:
        return f"{speed:.2f}x"
    return f"<{mnas_median / budget:.2f}x" if math.isfinite(mnas_median) else "-"


def tables(records: list[dict[str, Any]]) -> str:
    """Markdown tables, one per env, and the targets' verdicts."""
    lines: list[str] = []
    verdicts: list[str] = []
    for env in dict.fromkeys(r["env"] for r in records):
        rows = [r for r in records if r["env"] == env]
        first = rows[0]
        target = first["mnas_best_reward"]
        title = f"### {env} (mnas target: " + (
            "no mnas runs" if target is None else f"lower median final best reward {target:.3f}"
        )
        if first["top1pct_accuracy"] is not None:
            title += (
                f"; top-1% >= {first['top1pct_accuracy']:.2f}, "
                f"top-0.1% >= {first['top01pct_accuracy']:.2f}"
            )
        lines += [
            title + ")",
            "",
            "| method | seeds | budget | to mnas best | reached | cost to mnas best | "
            "speed-up vs mnas | 90% CI | speed-up to mnas@100 | to top-1% | to top-0.1% | "
            "best @50 | best @100 | final best | trusted | replayed | wall s |",
            "| " + " | ".join(["---"] * 17) + " |",
        ]
        by_method = {
            m: [r for r in rows if r["method"] == m]
            for m in dict.fromkeys(r["method"] for r in rows)
        }
        mnas_med = (
            _median([r["activated_to_mnas_best"] for r in by_method["mnas"]])
            if "mnas" in by_method
            else math.nan
        )
        # a second, less noisy target: mnas's lower-median best after EARLY_LEVEL samples
        level = _mnas_level(by_method.get("mnas", []), EARLY_LEVEL)
        mnas_early = _median([_activated_to(r, level) for r in by_method.get("mnas", [])])
        medians: dict[str, dict[str, float]] = {}
        for method, rs in by_method.items():
            budget = min(r["budget"] for r in rs)
            to_best = _median([r["activated_to_mnas_best"] for r in rs])
            costs = [r["cost_to_mnas_best"] for r in rs]
            has_cost = any(r["cost_trace"] is not None for r in rs)
            # undefined (nan) when mnas's own median never reaches its target (e.g. 2 seeds)
            speed = (
                math.nan
                if not math.isfinite(mnas_med)
                else (mnas_med / to_best if math.isfinite(to_best) else 0.0)
            )
            top1 = _median([r["activated_to_top1pct"] for r in rs])
            top01 = _median([r["activated_to_top01pct"] for r in rs])
            medians[method] = {
                "speed": speed,
                "top01": top01,
                "shown": _fmt_speed(speed, mnas_med, budget),
                "seeds": len(rs),
            }

            def at(k, rs=rs):
                v = [r["best_reward_trace"][k - 1] for r in rs if len(r["best_reward_trace"]) >= k]
                return f"{np.median(v):.3f}" if v else "-"

            def med(key, rs=rs):
                v = [r[key] for r in rs if r.get(key) is not None]
                return f"{np.median(v):.3f}" if v else "-"

            cells = [
                method,
                str(len(rs)),
                str(budget),
                _fmt(to_best, budget),
                f"{sum(r['activated_to_mnas_best'] is not None for r in rs)}/{len(rs)}",
                _fmt(_median(costs), None, ".3g") if has_cost else "-",
                _fmt_speed(speed, mnas_med, budget),
                _fmt_interval(
                    speedup_interval(
                        [r["activated_to_mnas_best"] for r in by_method.get("mnas", [])],
                        [r["activated_to_mnas_best"] for r in rs],
                    )
                )
                if "mnas" in by_method
                else "-",
                _fmt_speed(
                    _speed(mnas_early, [_activated_to(r, level) for r in rs]), mnas_early, budget
                ),
                _fmt(top1, budget) if first["top1pct_accuracy"] is not None else "-",
                _fmt(top01, budget) if first["top1pct_accuracy"] is not None else "-",
                *(at(k, rs) for k in TABLE_CHECKPOINTS),
                med("best_reward"),
                med("trusted_fraction"),
                med("replayed_fraction"),
                f"{np.median([r['wall_s'] for r in rs]):.0f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for method, goal in TARGETS.items():
            if method in medians:
                m = medians[method]
                ok = "MET" if m["speed"] >= goal else "MISSED"
                if math.isnan(m["speed"]):
                    ok = "UNDEFINED (mnas's median run never reaches its target)"
                verdicts.append(
                    f"| {env} | {method} >= {goal:g}x fewer than mnas | {m['shown']} "
                    f"({m['seeds']} seeds) | {ok} |"
                )
        if "fnas" in medians and "evolution" in medians and first["top1pct_accuracy"] is not None:
            f, e = medians["fnas"]["top01"], medians["evolution"]["top01"]
            ok = "MET" if math.isfinite(f) and f <= e else "MISSED"
            verdicts.append(
                f"| {env} | fnas to top-0.1% <= evolution | fnas {_fmt(f, None)} vs "
                f"evolution {_fmt(e, None)} ({medians['fnas']['seeds']} seeds) | {ok} |"
            )
    lines += [
        "### Targets",
        "",
        "| env | target | measured | verdict |",
        "| --- | --- | --- | --- |",
    ]
    lines += verdicts
    return "\n".join(lines) + "\n"


def distinct_tables(records: list[dict[str, Any]]) -> str:
    """Speed-ups counted in activated samples and in distinct architectures trained.

    Only runs whose records carry ``unique_trace``; the mnas target is the lower
    median of *those* mnas runs' final bests, so a subset of seeds is compared on
    its own terms. Every method is counted the same way: the distinct column is
    "every method with a result cache".
    """
    lines = [
        "| env | mnas target | method | seeds | to mnas best | speed-up | "
        "distinct to mnas best | speed-up (distinct) | distinct to top-0.1% |",
        "| " + " | ".join(["---"] * 9) + " |",
    ]
    for env in dict.fromkeys(r["env"] for r in records):
        rows = [r for r in records if r["env"] == env and r.get("unique_trace")]
        mnas = [r for r in rows if r["method"] == "mnas"]
        if not mnas:
            continue
        level = lower_median([r["best_reward"] for r in mnas])
        ref, ref_distinct = (_median(c) for c in _counts_to(mnas, level))
        for method in dict.fromkeys(r["method"] for r in rows):
            rs = [r for r in rows if r["method"] == method]
            budget = min(r["budget"] for r in rs)
            activated, distinct = _counts_to(rs, level)
            top01 = [_distinct_at(r, r["activated_to_top01pct"]) for r in rs]
            cells = [
                env,
                f"{level:.3f}",
                method,
                str(len(rs)),
                _fmt(_median(activated), budget),
                _fmt_speed(_speed(ref, activated), ref, budget),
                _fmt(_median(distinct), budget),
                _fmt_speed(_speed(ref_distinct, distinct), ref_distinct, budget),
                _fmt(_median(top01), budget) if rs[0]["top1pct_accuracy"] is not None else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: mnas checkpoints of :func:`curve_tables` (activated samples).
CURVE_LEVELS = (25, 50, 100, 200, 300, 400, 600, 800, 1000)


def curve_tables(records: list[dict[str, Any]], levels: tuple[int, ...] = CURVE_LEVELS) -> str:
    """Speed-ups to the level mnas has reached after k samples, for every k in ``levels``.

    The level of k is the lower median over mnas seeds of the best reward after k
    activated samples; a cell is mnas's median activated samples to that level / the
    method's (``<x``: the method's median run never got there). One target level
    moves by a rank of the tabular space when a single mnas seed changes, so a speed-up
    measured at one level alone can swing by 0.5x; the row shows whether a method is
    ahead along the whole search or only at one point of it. Levels beyond the
    shortest mnas run are left out.
    """
    envs = {}
    for env in dict.fromkeys(r["env"] for r in records):
        mnas = [r for r in records if r["env"] == env and r["method"] == "mnas"]
        shown = [k for k in levels if mnas and all(len(r["best_reward_trace"]) >= k for r in mnas)]
        if shown:
            envs[env] = (mnas, shown)
    if not envs:
        return "(no mnas runs, so no levels to compare with)\n"
    columns = [k for k in levels if any(k in shown for _, shown in envs.values())]
    lines = [
        "| env | method | seeds | " + " | ".join(f"to mnas@{k}" for k in columns) + " |",
        "| " + " | ".join(["---"] * (3 + len(columns))) + " |",
    ]
    for env, (mnas, shown) in envs.items():
        refs = {}
        for k in shown:
            level = _mnas_level(mnas, k)
            refs[k] = (level, _median([_activated_to(r, level) for r in mnas]))
        rows = [r for r in records if r["env"] == env]
        for method in dict.fromkeys(r["method"] for r in rows):
            rs = [r for r in rows if r["method"] == method]
            budget = min(r["budget"] for r in rs)
            cells = [env, method, str(len(rs))]
            for k in columns:
                if k not in refs:
                    cells.append("-")  # beyond this env's mnas runs
                    continue
                level, ref = refs[k]
                counts = [_activated_to(r, level) for r in rs]
                cells.append(_fmt_speed(_speed(ref, counts), ref, budget))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_settings(text: str) -> dict[str, Any]:
    """``"learning_rate=3e-3,n_epochs=8"`` -> FNASSettings changes (unknown keys go to ``extra``).

    Values are parsed as JSON where possible (numbers, ``true``/``false``), else kept as
    strings. Raises ValueError on an item without ``=``.
    """
    changes: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--fnas-settings items are key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target = changes if key.strip() in fm.FNASSettings.__dataclass_fields__ else extra
        target[key.strip()] = value
    if extra:
        changes["extra"] = {**fm.FNAS_SETTINGS.extra, **extra}
    return changes


def load_records(paths: list[str]) -> list[dict[str, Any]]:
    """Reported records of saved runs, with their mnas targets (see :func:`add_mnas_targets`).

    ``paths``: ``--json`` files (a list) or ``--jsonl`` files (one record per line),
    ``.gz``-compressed or not. A run (env, method, seed) found in several files counts
    once (the last one read).
    """
    records: list[dict[str, Any]] = []
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            text = f.read()
        if path.removesuffix(".gz").endswith(".jsonl"):
            records += [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records += json.loads(text)
    unique = {(r["env"], r["method"], r["seed"]): r for r in records if r.get("reported", True)}
    records = list(unique.values())
    add_mnas_targets(records)
    return records


def _print_tables(records: list[dict[str, Any]]) -> None:
    """The per-env tables with the targets' verdicts, then the speed-up curve."""
    print(tables(records))
    print("### Speed-up to the level mnas reaches after k samples\n")
    print(curve_tables(records))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="3 seeds, budget 50, macro (about a minute)"
    )
    parser.add_argument("--envs", default=",".join(ENVS), help=f"comma-separated of {list(ENVS)}")
    parser.add_argument(
        "--methods",
        default=",".join((*METHODS, "fnas-transfer")),
        help="comma-separated methods (default: mnas, uac, aeb, fnas, evolution, fnas-transfer)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first..first+N-1 (default 0)"
    )
    parser.add_argument("--budget", type=int, default=300, help="activated samples per run")
    parser.add_argument("--json", default=None, help="write the per-run records here")
    parser.add_argument(
        "--jsonl", default=None, help="append each record here as soon as its run ends"
    )
    parser.add_argument("--benchmark-dir", default=None, help="default: $FNAS_BENCHMARK_DIR")
    parser.add_argument("--work-dir", default=None, help="where pretrained critics are saved")
    parser.add_argument(
        "--tables",
        default=None,
        help="comma-separated .json/.jsonl(.gz) record files: print their tables only",
    )
    parser.add_argument(
        "--fnas-settings",
        default="",
        help="comma-separated key=value changes of agents.fnas_methods.FNAS_SETTINGS, e.g. "
        "learning_rate=3e-3,max_replay_fraction=0.25 (keys of extra go to the controller: "
        "n_epochs=8)",
    )
    args = parser.parse_args(argv)
    if args.tables:
        records = load_records(args.tables.split(","))
        _print_tables(records)
        if any(r.get("unique_trace") for r in records):
            print("### Counting distinct architectures (a result cache for every method)\n")
            print(distinct_tables(records))
        return records
    envs = [e for e in args.envs.split(",") if e]
    methods = [m for m in args.methods.split(",") if m]
    for e in envs:
        if e not in ENVS:
            parser.error(f"unknown env {e!r}; choose from {list(ENVS)}")
    from agents.harness import METHODS as REGISTRY

    for m in methods:
        if m not in REGISTRY:
            parser.error(f"unknown method {m!r}; choose from {sorted(REGISTRY)}")
    if args.seeds < 1 or args.budget < 1:
        parser.error("--seeds and --budget must be positive")
    try:
        settings = parse_settings(args.fnas_settings)
    except ValueError as exc:
        parser.error(str(exc))
    fm.configure(**settings)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    budget = args.budget
    if args.quick:
        seeds, budget, envs = [0, 1, 2], 50, ["macro"]
        methods = [m for m in methods if m != "fnas-transfer"]
    records = run(
        envs,
        methods,
        seeds,
        budget,
        args.benchmark_dir,
        args.work_dir,
        log=lambda s: print(s, file=sys.stderr, flush=True),
        jsonl=args.jsonl,
    )
    _print_tables(records)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
        print(f"records written to {args.json}")
    return records


if __name__ == "__main__":
    main()
