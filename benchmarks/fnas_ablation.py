"""FNAS ablation (the paper's Tables 4 and 5): what UAC and AEB buy over MnasNet's controller.

Runs the methods of :mod:`benchmarks.methods` (``mnas``, ``fnas-off``, ``uac``, ``aeb``,
``fnas``, ``evolution``, and ``fnas-transfer`` from the NB201 cifar10 ``fnas`` critics)
on the tabular envs, same seeds, and reports per env and method:

- **the strict metric**: activated samples until the best reward reaches ``mnas``'s
  final best (the lower median over seeds of mnas's final best reward at the budget),
  the speed-up mnas median / method median with a 90% bootstrap interval (seeds of both
  resampled; a run that never gets there counts as infinite);
- **the paper's metric** (Table 4 compares at equal PPO samples): after 400 and 1000
  PPO samples (episodes PPO trained on: activated, cached, trusted and replayed),
  the activated samples and the mean true accuracy of the top-10 architectures by
  recorded reward (trusted ones with their predicted reward, as the search saw them),
  with the 90% bootstrap interval of the difference to mnas;
- activated samples to the top-0.1% accuracy (tables) against regularized evolution;
- PPO samples per activated sample, trusted and replayed fractions, cached repeats.

Every run continues past the activated budget until PPO has trained on at least
``--ppo-samples`` episodes, so both metrics come from the same runs.

    python benchmarks/fnas_ablation.py --quick
    python benchmarks/fnas_ablation.py --envs macro --seeds 20 --first-seed 1000 --jsonl a.jsonl
    python benchmarks/fnas_ablation.py --tables a.jsonl,b.jsonl.gz   # tables of saved records
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
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmarks.envs import ABLATION, env_spec, parse_names
from benchmarks.harness import make_search_env, reaching, table_thresholds
from benchmarks.methods import PPO_CHECKPOINTS, FNASSettings, RunResult, run, top_accuracy

__all__ = [
    "ENV_NAMES",
    "METHODS",
    "TARGETS",
    "PAPER_TARGETS",
    "env_targets",
    "summarize",
    "add_mnas_targets",
    "run_all",
    "tables",
    "paper_tables",
    "main",
    "load_records",
    "parse_settings",
    "lower_median",
    "speedup_interval",
    "mean_difference_interval",
    "compact_table",
]

#: The envs this benchmark runs (names of :data:`benchmarks.envs.ENVS`).
ENV_NAMES = ABLATION
#: Methods run on every env; fnas-transfer runs on TRANSFER_TARGETS.
METHODS = ("mnas", "fnas-off", "uac", "aeb", "fnas", "evolution")
TRANSFER_SOURCE = "nb201-cifar10"
TRANSFER_TARGETS = ("nb201-cifar100", "nb201-imagenet16")
#: Strict-metric targets: mnas activated samples / method's, to mnas's final best reward.
TARGETS = {
    "uac": 1.8,
    "fnas": 3.0,
    "fnas-transfer": 3.0,
    "fnas-screen-transfer": 3.0,
    "fnas-screen": 3.0,
    "fnas-screen-keep": 3.0,
    "uac-screen": 1.8,
    "uac-screen-keep": 1.8,
}
#: Transfer methods and the method whose NB201 cifar10 runs leave the critics they load.
TRANSFER_METHODS = {"fnas-transfer": "fnas", "fnas-screen-transfer": "fnas-screen"}
#: Methods whose median activated samples to the top-0.1% (to evolution's final level
#: where the env is not a table) are compared with regularized evolution's.
EVOLUTION_RIVALS = (
    "fnas",
    "uac",
    "fnas-fast",
    "fnas-screen-proposals",
    "fnas-screen",
    "fnas-screen-keep",
)
#: Paper-metric targets: method's activated / mnas's at equal PPO samples (at most).
PAPER_TARGETS = {
    "uac": 0.5,
    "fnas": 0.25,
    "uac-screen": 0.5,
    "uac-screen-keep": 0.5,
    "fnas-screen": 0.25,
    "fnas-screen-keep": 0.25,
}


def env_targets(env_id: str, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Top-1% / top-0.1% accuracies of a tabular env (None where the space is not a table)."""
    table = table_thresholds(env_id, env_kwargs)
    return {key: None if table is None else table[key] for key in ("top1pct", "top01pct")}


class TrueValues:
    """``lookup(arch_string) -> (accuracy, reward)`` of an env's benchmark (memoised)."""

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any]):
        self.env = make_search_env(env_id, env_kwargs)
        self.base = self.env.unwrapped
        self.cache: dict[str, tuple[float, float]] = {}

    def __call__(self, arch: str) -> tuple[float, float]:
        if arch not in self.cache:
            evaluator = self.base.evaluator.inner  # the TimedEvaluator's: not timed, not recorded
            ev = evaluator.evaluate(self.base.search_space.from_string(arch))
            self.cache[arch] = (float(ev.accuracy), float(self.base.reward_of(ev)))
        return self.cache[arch]


def _at_ppo(result: RunResult, n: int, lookup) -> dict[str, Any] | None:
    """Activated / cached samples and the top-10 after ``n`` PPO samples (None: not reached).

    A run that stopped because it converged (its policy only repeated activated
    architectures) counts with its final state: more PPO samples would add no activated one.
    """
    end = next((entries for ppo, entries in result.ppo_checkpoints if ppo >= n), None)
    if end is None and result.converged:
        end = result.record_start + len(result.entries)
    if end is None:
        return None
    entries = result.entries[: end - result.record_start]
    acc, reward = top_accuracy(entries, lookup)
    return {
        "activated": sum(e.kind == "activated" for e in entries),
        "cached": sum(e.kind == "cached" for e in entries),
        "top10_accuracy": acc,
        "top10_reward": reward,
    }


def summarize(
    env: str,
    method: str,
    seed: int,
    result: RunResult,
    targets: dict[str, Any],
    lookup,
    settings: FNASSettings | None = None,
) -> dict[str, Any]:
    """One JSON record of a run (see the module docstring for the figures)."""
    trace = result.trace
    last = trace[-1]
    best = max(trace, key=lambda p: p.reward)
    counters, metrics = result.counters, result.metrics
    kinds = [e.kind for e in result.entries]
    activated, cached = kinds.count("activated"), kinds.count("cached")
    ppo = counters.get("ppo_samples") if counters else None
    if ppo is None and result.ppo_checkpoints:
        ppo = result.ppo_checkpoints[-1][0]
    acc, reward = top_accuracy(result.entries, lookup)
    trusted_fraction = metrics.get("trusted_fraction")
    rec: dict[str, Any] = {
        "env": env,
        "method": method,
        "seed": seed,
        **reaching(trace, targets),
        "best_accuracy": last.best_accuracy,
        "best_reward": last.best_reward,
        "best_arch": best.arch,
        "unique": last.unique,
        "sampled": last.sampled,
        "wall_s": result.wall_s,
        "converged": result.converged,
        "best_reward_trace": [p.best_reward for p in trace],
        "unique_trace": [p.unique for p in trace],
        "ppo_samples": ppo,
        "activated": activated,
        "cached": cached,
        "ppo_per_activated": None if not ppo or not activated else ppo / activated,
        "top10_accuracy": acc,
        "top10_reward": reward,
        "at_ppo": {str(n): _at_ppo(result, n, lookup) for n in PPO_CHECKPOINTS},
        "trusted_fraction": None
        if trusted_fraction is None or not math.isfinite(trusted_fraction)
        else trusted_fraction,
        "replayed_fraction": counters.get("replayed", 0) / ppo if counters and ppo else None,
        "fnas_counters": counters or None,
        "gate_metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()} or None,
        "activated_to_mnas_best": None,
        "mnas_best_reward": None,
        "settings": None if settings is None else _settings_dict(settings),
    }
    return rec


def _settings_dict(settings: FNASSettings) -> dict[str, Any]:
    return {k: v for k, v in vars(settings).items() if k != "transfer_critic"}


def lower_median(values: list[float]) -> float:
    """The middle value; of an even number, the lower of the two middle ones."""
    if not values:
        raise ValueError("lower_median of no values")
    return float(np.sort(np.asarray(values, dtype=float))[(len(values) - 1) // 2])


def _activated_to(record: dict[str, Any], level: float) -> int | None:
    """Activated samples until the record's best reward reaches ``level`` (None: never)."""
    if math.isnan(level):
        return None
    return next((i + 1 for i, b in enumerate(record["best_reward_trace"]) if b >= level), None)


def add_mnas_targets(records: list[dict[str, Any]]) -> None:
    """Fill ``activated_to_mnas_best``: the target is the lower median of mnas's final bests."""
    for env in dict.fromkeys(r["env"] for r in records):
        rows = [r for r in records if r["env"] == env]
        mnas = [r["best_reward"] for r in rows if r["method"] == "mnas"]
        if not mnas:
            continue
        target = lower_median(mnas)
        for r in rows:
            r["mnas_best_reward"] = target
            r["activated_to_mnas_best"] = _activated_to(r, target)


def _median(values: list[float | None]) -> float:
    return float(np.median([math.inf if v is None else v for v in values]))


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


def mean_difference_interval(
    values: list[float], reference: list[float], level: float = 0.9, resamples: int = 2000
) -> tuple[float, float, float]:
    """mean(values) - mean(reference) and its bootstrap interval (seeds resampled apart)."""
    rng = np.random.default_rng(0)
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    diffs = rng.choice(a, size=(resamples, len(a))).mean(axis=1) - rng.choice(
        b, size=(resamples, len(b))
    ).mean(axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return float(a.mean() - b.mean()), float(low), float(high)


def _fmt(x: float, budget: int | None = None, digits: str = "g") -> str:
    if math.isinf(x):
        return f">{budget}" if budget is not None else "never"
    return format(x, digits)


def _fmt_speed(speed: float, mnas_median: float, budget: int) -> str:
    """``1.50x``; ``<0.92x`` when the method's median never got there (it needs > budget)."""
    if math.isnan(speed):
        return "-"
    if speed > 0:
        return f"{speed:.2f}x"
    return f"<{mnas_median / budget:.2f}x" if math.isfinite(mnas_median) else "-"


def _fmt_interval(interval: tuple[float, float]) -> str:
    return "[" + ", ".join("inf" if math.isinf(x) else f"{x:.2f}" for x in interval) + "]"


def _med(rs: list[dict[str, Any]], key: str, digits: str = ".2f") -> str:
    values = [r[key] for r in rs if r.get(key) is not None]
    return format(float(np.median(values)), digits) if values else "-"


def _at_ppo_of(rs: list[dict[str, Any]], n: str) -> list[dict[str, Any]]:
    """The paper's-metric figures after ``n`` PPO samples of the runs that got there."""
    return [r["at_ppo"][n] for r in rs if (r.get("at_ppo") or {}).get(n)]


def _by_method(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        m: [r for r in rows if r["method"] == m] for m in dict.fromkeys(r["method"] for r in rows)
    }


def tables(records: list[dict[str, Any]]) -> str:
    """The strict metric per env (Markdown), then the verdicts of :data:`TARGETS`."""
    lines: list[str] = []
    verdicts: list[str] = []
    for env in dict.fromkeys(r["env"] for r in records):
        rows = [r for r in records if r["env"] == env]
        first = rows[0]
        target = first["mnas_best_reward"]
        title = f"#### {env} (mnas target: " + (
            "no mnas runs" if target is None else f"lower median final best reward {target:.3f}"
        )
        if first["top1pct_accuracy"] is not None:
            title += f"; top-0.1% >= {first['top01pct_accuracy']:.2f}"
        lines += [
            title + ")",
            "",
            "| method | seeds | to mnas best | reached | speed-up vs mnas | 90% CI | "
            "to top-0.1% | final best | PPO / activated | trusted | replayed | cached | wall s |",
            "| " + " | ".join(["---"] * 13) + " |",
        ]
        by_method = _by_method(rows)
        mnas_counts = [r["activated_to_mnas_best"] for r in by_method.get("mnas", [])]
        mnas_med = _median(mnas_counts) if mnas_counts else math.nan
        medians: dict[str, dict[str, Any]] = {}
        for method, rs in by_method.items():
            budget = max(r["budget"] for r in rs)  # a converged run stopped short of it
            counts = [r["activated_to_mnas_best"] for r in rs]
            to_best = _median(counts)
            speed = (
                math.nan
                if not math.isfinite(mnas_med)
                else (mnas_med / to_best if math.isfinite(to_best) else 0.0)
            )
            top01 = _median([r["activated_to_top01pct"] for r in rs])
            medians[method] = {"speed": speed, "top01": top01, "seeds": len(rs)}
            medians[method]["shown"] = _fmt_speed(speed, mnas_med, budget)
            interval = _fmt_interval(speedup_interval(mnas_counts, counts)) if mnas_counts else "-"
            cached = [
                r["cached"] / max(r["activated"], 1) for r in rs if r.get("cached") is not None
            ]
            cells = [
                method,
                str(len(rs)),
                _fmt(to_best, budget),
                f"{sum(c is not None for c in counts)}/{len(rs)}",
                medians[method]["shown"],
                interval,
                _fmt(top01, budget) if first["top1pct_accuracy"] is not None else "-",
                _med(rs, "best_reward", ".3f"),
                _med(rs, "ppo_per_activated"),
                _med(rs, "trusted_fraction"),
                _med(rs, "replayed_fraction"),
                f"{np.median(cached):.2f}" if cached else "-",
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
        if "fnas" in medians and "mnas" in medians:
            m = medians["fnas"]
            ok = "MET" if m["speed"] >= 1.0 else "MISSED"
            verdicts.append(f"| {env} | fnas never worse than mnas | {m['shown']} | {ok} |")
        for method in EVOLUTION_RIVALS:
            if method not in medians or "evolution" not in medians:
                continue
            if first["top1pct_accuracy"]:
                what = "top-0.1%"
                f, e = medians[method]["top01"], medians["evolution"]["top01"]
            else:  # no table: the level evolution's runs reach halfway (lower median)
                evolution = by_method["evolution"]
                level = lower_median(
                    [
                        r["best_reward_trace"][len(r["best_reward_trace"]) // 2 - 1]
                        for r in evolution
                    ]
                )
                what = f"evolution's halfway level ({level:.3f})"
                f, e = (
                    _median([_activated_to(r, level) for r in by_method[name]])
                    for name in (method, "evolution")
                )
            ok = "MET" if math.isfinite(f) and f <= e else "MISSED"
            verdicts.append(
                f"| {env} | {method} to {what} <= evolution | {method} {_fmt(f, None)} vs "
                f"evolution {_fmt(e, None)} ({medians[method]['seeds']} seeds) | {ok} |"
            )
    lines += ["#### Targets (strict metric)", "", "| env | target | measured | verdict |"]
    lines += ["| --- | --- | --- | --- |", *verdicts]
    return "\n".join(lines) + "\n"


def paper_tables(records: list[dict[str, Any]]) -> str:
    """The paper's metric: activated samples and top-10 true accuracy at equal PPO samples."""
    lines = [
        "| env | method | seeds | PPO samples | activated | activated / mnas's | "
        "top-10 accuracy | difference to mnas [90% CI] | verdict |",
        "| " + " | ".join(["---"] * 9) + " |",
    ]
    for env in dict.fromkeys(r["env"] for r in records):
        by_method = _by_method([r for r in records if r["env"] == env and r.get("at_ppo")])
        for n in map(str, PPO_CHECKPOINTS):
            mnas = _at_ppo_of(by_method.get("mnas", []), n)
            mnas_act = float(np.median([m["activated"] for m in mnas])) if mnas else math.nan
            for method, rs in by_method.items():
                at = _at_ppo_of(rs, n)
                if not at:
                    continue
                act = float(np.median([a["activated"] for a in at]))
                acc = [a["top10_accuracy"] for a in at]
                ratio = act / mnas_act if mnas else math.nan
                diff = "-"
                verdict = ""
                if mnas and method != "mnas":
                    d, low, high = mean_difference_interval(
                        acc, [m["top10_accuracy"] for m in mnas]
                    )
                    diff = f"{d:+.2f} [{low:+.2f}, {high:+.2f}]"
                    goal = PAPER_TARGETS.get(method)
                    if goal is not None:
                        ok = ratio <= goal and high >= 0
                        verdict = f"{'MET' if ok else 'MISSED'} (<= {goal:g}, not worse)"
                cells = [
                    env,
                    method,
                    str(len(at)),
                    n,
                    f"{act:.0f}",
                    f"{ratio:.2f}" if math.isfinite(ratio) else "-",
                    f"{np.mean(acc):.2f}",
                    diff,
                    verdict,
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_all(
    envs: list[str],
    methods: list[str],
    seeds: list[int],
    budget: int,
    settings: FNASSettings,
    min_ppo_samples: int = max(PPO_CHECKPOINTS),
    benchmark_dir: str | None = None,
    work_dir: str | None = None,
    log=print,
    jsonl: str | None = None,
) -> list[dict[str, Any]]:
    """Run every (env, method, seed); a transfer method loads NB201 cifar10 critics.

    A transfer method (:data:`TRANSFER_METHODS`) starts from the critic its source
    method's NB201 cifar10 run of the same seed saved in ``work_dir`` (default: a
    temporary folder); a missing source critic is made by such a run first (not
    reported). ``jsonl``: append every record to this file as soon as its run ends.
    """
    work = work_dir or tempfile.mkdtemp(prefix="fnas-ablation-")
    sources = set(TRANSFER_METHODS.values())
    records: list[dict[str, Any]] = []

    def source_dir(source: str) -> str:
        return f"{work}/{TRANSFER_SOURCE}/{source}"

    def one(name: str, method: str, seed: int, report: bool = True) -> None:
        env_id, kwargs = env_spec(name, benchmark_dir)
        save = method in sources and name == TRANSFER_SOURCE
        source = TRANSFER_METHODS.get(method)
        run_settings = settings
        if source is not None:
            run_settings = settings.changed(
                transfer_critic=f"{source_dir(source)}/critic-{{seed}}.pt"
            )
        start = time.perf_counter()
        result = run(
            method,
            env_id,
            kwargs,
            budget=budget,
            seed=seed,
            settings=run_settings,
            min_ppo_samples=min_ppo_samples,
            save_dir=source_dir(method) if save else None,
        )
        lookup = TrueValues(env_id, kwargs)
        # runs with the oracle critic are reported apart from the learnt critic's
        label = f"{method}-oracle" if settings.critic == "oracle" and method != "mnas" else method
        rec = summarize(name, label, seed, result, env_targets(env_id, kwargs), lookup, settings)
        rec["reported"] = report
        if report:
            records.append(rec)
        if jsonl:
            with open(jsonl, "a") as f:
                f.write(json.dumps(rec) + "\n")
        log(
            f"{name:16s} {method:13s} seed {seed}: best {rec['best_reward']:.2f} "
            f"top0.1% @ {rec['activated_to_top01pct']} ppo/act {rec['ppo_per_activated']} "
            f"trusted {rec['trusted_fraction']} ({time.perf_counter() - start:.1f} s)"
        )

    for name in envs:
        for method in methods:
            source = TRANSFER_METHODS.get(method)
            if source is not None and name not in TRANSFER_TARGETS:
                continue
            for seed in seeds:
                if source is not None and not os.path.isfile(
                    f"{source_dir(source)}/critic-{seed}.pt"
                ):
                    one(TRANSFER_SOURCE, source, seed, report=False)
                one(name, method, seed)
    add_mnas_targets(records)
    return records


def parse_settings(text: str, base: FNASSettings | None = None) -> FNASSettings:
    """``"trusted_fraction=0.5,controller.n_epochs=8"`` -> :class:`FNASSettings`.

    Values are parsed as JSON where possible (numbers, ``true``/``false``/``null``),
    else kept as strings; ``controller.KEY`` and ``critic_kwargs.KEY`` set entries of
    those dicts. Raises ValueError on an item without ``=`` and TypeError on an
    unknown setting.
    """
    settings = base or FNASSettings()
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {"controller": {}, "critic_kwargs": {}}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--fnas-settings items are key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        group, dot, sub = key.partition(".")
        if dot and group in nested:
            nested[group][sub] = value
        else:
            changes[key] = value
    for group, values in nested.items():
        if values:
            changes[group] = {**getattr(settings, group), **values}
    return settings.changed(**changes)


def load_records(paths: list[str]) -> list[dict[str, Any]]:
    """Reported records of ``--jsonl``/``--json`` files (``.gz`` or not), with mnas targets.

    A run (env, method, seed) found in several files counts once (the last one read).
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


def compact_table(records: list[dict[str, Any]], ppo: int = max(PPO_CHECKPOINTS)) -> str:
    """One row per env and method with both metrics (the report's table).

    Columns: seeds; median activated samples to mnas's final best (seeds reaching it);
    the strict speed-up with its 90% interval; median to the top-0.1% (tables); median
    final best reward; trusted share of PPO samples; PPO samples per activated one;
    after ``ppo`` PPO samples the median activated samples (and their ratio to
    mnas's) and the mean top-10 true accuracy with its difference to mnas's.
    """
    lines = [
        "| env | method | seeds | to mnas best (reached) | strict speed-up [90% CI] | "
        f"to top-0.1% | final best | trusted share | PPO / activated | activated @{ppo} PPO "
        f"(/ mnas) | top-10 acc @{ppo} PPO | vs mnas [90% CI] |",
        "| " + " | ".join(["---"] * 12) + " |",
    ]
    key = str(ppo)
    for env in dict.fromkeys(r["env"] for r in records):
        by_method = _by_method([r for r in records if r["env"] == env])
        mnas = by_method.get("mnas", [])
        mnas_counts = [r["activated_to_mnas_best"] for r in mnas]
        mnas_med = _median(mnas_counts) if mnas else math.nan
        mnas_at = _at_ppo_of(mnas, key)
        mnas_act = float(np.median([a["activated"] for a in mnas_at])) if mnas_at else math.nan
        for method, rs in by_method.items():
            budget = max(r["budget"] for r in rs)
            counts = [r["activated_to_mnas_best"] for r in rs]
            to_best = _median(counts)
            speed = "-"
            if mnas:
                ratio = mnas_med / to_best if math.isfinite(to_best) else 0.0
                speed = _fmt_speed(ratio, mnas_med, budget) + " "
                speed += _fmt_interval(speedup_interval(mnas_counts, counts))
            at = _at_ppo_of(rs, key)
            act = float(np.median([a["activated"] for a in at])) if at else math.nan
            acc = [a["top10_accuracy"] for a in at]
            if at and mnas_at and method != "mnas":
                d, low, high = mean_difference_interval(acc, [m["top10_accuracy"] for m in mnas_at])
                diff = f"{d:+.2f} [{low:+.2f}, {high:+.2f}]"
            else:
                diff = "-"
            top01 = _median([r["activated_to_top01pct"] for r in rs])
            cells = [
                env,
                method,
                str(len(rs)),
                f"{_fmt(to_best, budget)} ({sum(c is not None for c in counts)}/{len(rs)})",
                speed,
                _fmt(top01, budget) if rs[0]["top1pct_accuracy"] is not None else "-",
                _med(rs, "best_reward", ".3f"),
                _med(rs, "trusted_fraction"),
                _med(rs, "ppo_per_activated"),
                f"{act:.0f} ({act / mnas_act:.2f})" if at and mnas_at else "-",
                f"{np.mean(acc):.2f}" if at else "-",
                diff,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _print_tables(records: list[dict[str, Any]]) -> None:
    print("### One row per env and method\n")
    print(compact_table(records))
    print("### Strict metric: activated samples to mnas's final best\n")
    print(tables(records))
    print("### Paper's metric: equal PPO samples\n")
    print(paper_tables(records))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="3 seeds, budget 50, macro (about a minute)"
    )
    parser.add_argument(
        "--envs", default=",".join(ENV_NAMES), help=f"comma-separated of {list(ENV_NAMES)}"
    )
    parser.add_argument(
        "--methods",
        default=",".join((*METHODS, "fnas-transfer")),
        help="comma-separated methods of benchmarks.methods.METHODS",
    )
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    parser.add_argument(
        "--first-seed", type=int, default=1000, help="seeds first..first+N-1 (default 1000)"
    )
    parser.add_argument("--budget", type=int, default=400, help="activated samples per run")
    parser.add_argument(
        "--ppo-samples",
        type=int,
        default=max(PPO_CHECKPOINTS),
        help=f"PPO samples every PPO run reaches (default {max(PPO_CHECKPOINTS)})",
    )
    parser.add_argument("--jsonl", default=None, help="append each record here as its run ends")
    parser.add_argument("--benchmark-dir", default=None, help="default: $FNAS_BENCHMARK_DIR")
    parser.add_argument("--work-dir", default=None, help="where the transfer critics are saved")
    parser.add_argument(
        "--tables", default=None, help="comma-separated .jsonl(.gz) record files: tables only"
    )
    parser.add_argument(
        "--fnas-settings",
        default="",
        help="comma-separated key=value of benchmarks.methods.FNASSettings, e.g. "
        "trusted_fraction=0.5,controller.n_epochs=8",
    )
    args = parser.parse_args(argv)
    if args.tables:
        records = load_records(args.tables.split(","))
        _print_tables(records)
        return records
    from benchmarks.methods import METHODS as KNOWN

    envs = parse_names(parser, args.envs, ENV_NAMES, "env")
    methods = parse_names(parser, args.methods, KNOWN, "method")
    if args.seeds < 1 or args.budget < 1 or args.ppo_samples < 0:
        parser.error("--seeds and --budget must be positive, --ppo-samples >= 0")
    try:
        settings = parse_settings(args.fnas_settings)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    budget, ppo = args.budget, args.ppo_samples
    if args.quick:
        seeds, budget, ppo, envs = [0, 1, 2], 50, 100, ["macro"]
        methods = [m for m in methods if m not in TRANSFER_METHODS]
    records = run_all(
        envs,
        methods,
        seeds,
        budget,
        settings,
        min_ppo_samples=ppo,
        benchmark_dir=args.benchmark_dir,
        work_dir=args.work_dir,
        log=lambda s: print(s, file=sys.stderr, flush=True),
        jsonl=args.jsonl,
    )
    _print_tables(records)
    return records


if __name__ == "__main__":
    main()
