"""The benchmarks' search methods (benchmarks/methods.py) and the ablation's records and tables."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from benchmarks import fnas_ablation as fa
from benchmarks.harness import TracePoint
from benchmarks.methods import FNASSettings, RunResult, run, top_accuracy
from benchmarks.oracle import OracleCritic
from fnas_env.record import RecordEntry
from fnas_env.spaces import get_space

# past the second PPO batch, whose replays take half the slots
BUDGET = 14
#: trust within a tiny budget: short warm-up, no quality check
EAGER = FNASSettings(warmup=4, max_relative_error=None)


@pytest.mark.parametrize("method", ["mnas", "fnas-off", "uac", "aeb", "fnas", "evolution"])
def test_method_respects_budget(method):
    result = run(method, "FNAS-Macro-v0", budget=BUDGET, seed=0, settings=EAGER)
    trace = result.trace
    assert [p.activated for p in trace] == list(range(1, BUDGET + 1))
    assert all(p.sampled >= p.activated for p in trace)
    assert trace[-1].unique == BUDGET  # repeats are cached, never activated
    counters = result.counters
    if method in ("mnas", "evolution"):
        assert counters == {} and result.metrics == {}
        return
    assert counters["activated"] >= BUDGET - 1  # the last may end learn before it is counted
    if method in ("uac", "fnas"):
        assert result.metrics["trusted"] > 0 and counters["trusted"] > 0
        assert trace[-1].sampled > BUDGET  # trusted samples did not spend budget
    else:
        assert result.metrics == {} and counters["trusted"] == 0
    assert (counters["replayed"] > 0) == (method in ("aeb", "fnas"))


@pytest.mark.parametrize("method", ["mnas", "fnas"])
def test_vectorised_rollouts_share_one_record_and_respect_the_budget(method):
    """``n_envs=2``: two envs under one record (and one gate), batches of 8 architectures."""
    result = run(method, "FNAS-Macro-v0", budget=BUDGET, seed=0, settings=EAGER, n_envs=2)
    trace = result.trace
    assert [p.activated for p in trace] == list(range(1, BUDGET + 1))
    assert trace[-1].unique == BUDGET  # one cache for both envs
    assert result.entries and result.record_start == 0
    if method == "fnas":
        assert result.counters["trusted"] > 0 and result.counters["replayed"] > 0
        assert result.metrics["trusted"] > 0 and trace[-1].sampled > BUDGET
    with pytest.raises(ValueError, match="split over 3 envs"):
        run(method, "FNAS-Macro-v0", budget=2, seed=0, n_envs=3)
    with pytest.raises(ValueError, match="n_envs"):
        run("evolution", "FNAS-Macro-v0", budget=2, seed=0, n_envs=2)


def test_fnas_off_is_mnas():
    """The control: FNASRecurrentPPO with UAC and AEB off samples what RecurrentPPO does."""
    a = run("mnas", "FNAS-Macro-v0", budget=24, seed=3)
    b = run("fnas-off", "FNAS-Macro-v0", budget=24, seed=3)
    assert [p.arch for p in a.trace] == [p.arch for p in b.trace]


def test_runs_go_on_to_the_ppo_samples_the_paper_metric_needs():
    result = run("fnas", "FNAS-Macro-v0", budget=10, seed=1, settings=EAGER, min_ppo_samples=48)
    ppo = [c[0] for c in result.ppo_checkpoints]
    assert ppo == sorted(ppo) and ppo[-1] >= 48
    assert result.counters["ppo_samples"] == ppo[-1]
    assert len(result.trace) == 10  # the trace stops at the budget all the same
    entries = [c[1] for c in result.ppo_checkpoints]
    assert entries[-1] <= result.record_start + len(result.entries)


def test_a_converged_search_stops_after_patience():
    """A learning rate of 1 collapses the policy onto a few architectures: all repeats."""
    settings = FNASSettings(controller={"learning_rate": 1.0})
    result = run("fnas-off", "FNAS-Macro-v0", budget=300, seed=0, settings=settings, patience=40)
    assert result.converged and len(result.trace) < 300
    tail = [e.kind for e in result.entries[-40:]]
    assert set(tail) == {"cached"}


def test_settings_reach_the_gate_and_are_checked():
    result = run(
        "uac", "FNAS-Macro-v0", budget=6, seed=0, settings=EAGER.changed(verify_best=False)
    )
    assert result.metrics["verified"] == 0
    with pytest.raises(TypeError, match="warm_up"):
        EAGER.changed(warm_up=3)
    with pytest.raises(ValueError, match="unknown method"):
        run("nope", "FNAS-Macro-v0")


def test_transfer_loads_the_saved_critic_and_keeps_training(tmp_path):
    with pytest.raises(ValueError, match="transfer_critic"):
        run("fnas-transfer", "FNAS-Macro-v0", budget=4, seed=0)
    settings = EAGER.changed(transfer_critic=str(tmp_path / "critic-{seed}.pt"))
    with pytest.raises(FileNotFoundError, match="no critic"):
        run("fnas-transfer", "FNAS-Macro-v0", budget=4, seed=0, settings=settings)
    run("fnas", "FNAS-Macro-v0", budget=30, seed=2, settings=EAGER, save_dir=str(tmp_path))
    assert (tmp_path / "critic-2.pt").is_file()
    result = run("fnas-transfer", "FNAS-Macro-v0", budget=20, seed=2, settings=settings)
    assert len(result.trace) == 20 and result.metrics["critic_samples"] > 0


def test_parse_settings_sets_fields_and_nested_dicts():
    s = fa.parse_settings("trusted_fraction=0.5,controller.n_epochs=8,critic=oracle")
    assert s.trusted_fraction == 0.5 and s.controller == {"n_epochs": 8} and s.critic == "oracle"
    assert fa.parse_settings("max_relative_error=null").max_relative_error is None
    with pytest.raises(ValueError, match="key=value"):
        fa.parse_settings("trusted_fraction")
    with pytest.raises(TypeError, match="unknown"):
        fa.parse_settings("nope=1")


# ---- the oracle ------------------------------------------------------------------------------
def test_oracle_critic_predicts_the_true_reward(benchmark_dir):
    import gymnasium as gym

    env = gym.make("FNAS-NB201-v0", benchmark_dir=benchmark_dir)
    space = env.unwrapped.search_space
    archs = [space.sample(np.random.default_rng(i)) for i in range(3)]
    oracle = OracleCritic(env, seed=0)
    v, u = oracle.predict(np.stack([space.one_hot(a) for a in archs]))
    truth = [env.unwrapped.evaluator.evaluate(a).accuracy for a in archs]
    np.testing.assert_allclose(v, truth)
    assert ((0 <= u) & (u < 1)).all()
    oracle.update(np.zeros((2, space.embedding_dim)), [1.0, 2.0])
    assert oracle.num_samples == 2 and oracle.num_updates == 0


def test_oracle_setting_trusts_exact_rewards(benchmark_dir):
    result = run(
        "uac",
        "FNAS-NB201-v0",
        {"benchmark_dir": benchmark_dir},
        budget=20,
        seed=0,
        settings=EAGER.changed(critic="oracle"),
    )
    lookup = fa.TrueValues("FNAS-NB201-v0", {"benchmark_dir": benchmark_dir})
    trusted = [e for e in result.entries if e.kind == "trusted"]
    assert trusted and all(e.reward == pytest.approx(lookup(e.arch)[1]) for e in trusted)


# ---- records and tables ----------------------------------------------------------------------
def _trace(best: list[float]) -> list[TracePoint]:
    return [
        TracePoint(i + 1, f"a{i}", b, b, float(b), float(b), 0.0, 0.0, i + 1, i + 1)
        for i, b in enumerate(best)
    ]


SPACE = get_space("macro")


def _entry(i: int, reward: float, kind: str = "activated") -> RecordEntry:
    arch = SPACE.from_choices([(i // 3**k) % 3 for k in range(SPACE.num_decisions)])
    return RecordEntry(
        arch=SPACE.to_string(arch),
        space="macro",
        choices=arch.choices,
        reward=reward,
        kind=kind,
        accuracy=reward,
        latency=None,
        throughput=None,
        macs=None,
        params=None,
        cost=None,
        failed=False,
        wall_time=0.0,
        seed=0,
        timestamp=0.0,
    )


def test_top_accuracy_takes_the_best_recorded_rewards_and_true_values():
    entries = [_entry(i, float(i)) for i in range(12)]
    entries.append(_entry(11, 50.0, "replayed"))  # replays are not candidates
    entries.append(_entry(0, 99.0, "trusted"))  # a trusted reward counts as the search saw it
    truth = {e.arch: (100.0 + k, 200.0 + k) for k, e in enumerate(entries[:12])}
    acc, reward = top_accuracy(entries, truth.__getitem__, k=3)
    # top 3 by recorded reward: arch 0 (99, trusted), 11, 10 -> true 100, 111, 110
    assert acc == pytest.approx(np.mean([100, 111, 110]))
    assert reward == pytest.approx(np.mean([200, 211, 210]))
    assert top_accuracy([], truth.__getitem__) == (None, None)


def _result(best: list[float], ppo_per_activated: int = 1, **kwargs) -> RunResult:
    """A run whose i-th entry is evaluated with reward best[i] (or cached where named)."""
    entries = [_entry(i, b) for i, b in enumerate(best)]
    checkpoints = [(ppo_per_activated * (i + 1), i + 1) for i in range(len(best))]
    return RunResult(trace=_trace(best), entries=entries, ppo_checkpoints=checkpoints, **kwargs)


def test_record_schema_targets_and_paper_metric():
    targets = {"top1pct": 90.0, "top01pct": 95.0}

    def lookup(arch):
        return (1.0, 1.0)

    mnas = [
        fa.summarize("e", "mnas", s, _result(b), targets, lookup)
        for s, b in enumerate([[80, 85, 90, 90], [70, 88, 88, 88], [91, 91, 91, 91]])
    ]
    counters = {"ppo_samples": 16, "replayed": 4, "trusted": 4, "activated": 4, "cached": 0}
    fnas = fa.summarize(
        "e",
        "fnas",
        0,
        _result([89, 90, 96, 96], ppo_per_activated=4, counters=counters),
        targets,
        lookup,
        FNASSettings(),
    )
    records = [*mnas, fnas]
    fa.add_mnas_targets(records)
    json.loads(json.dumps(records))
    for key in ("ppo_samples", "activated", "cached", "top10_accuracy", "at_ppo"):
        assert all(key in r for r in records)
    assert all(r["mnas_best_reward"] == 90.0 for r in records)  # median of 90, 88, 91
    assert [r["activated_to_mnas_best"] for r in mnas] == [3, None, 1]
    assert fnas["activated_to_mnas_best"] == 2 and fnas["activated_to_top01pct"] == 3
    assert fnas["ppo_per_activated"] == 4.0 and fnas["replayed_fraction"] == 0.25
    assert fnas["top10_accuracy"] == 1.0
    table = fa.tables(records)
    assert "| e | fnas >= 3x fewer than mnas | 1.50x (1 seeds) | MISSED |" in table
    assert "| e | fnas never worse than mnas | 1.50x | MET |" in table
    # at 4 PPO samples mnas has activated 4, fnas 1 (a quarter)
    assert mnas[0]["at_ppo"]["400"] is None
    paper = fa.paper_tables(records)
    assert paper.count("| e |") == 0  # 400 / 1000 PPO samples were never reached


def test_paper_metric_counts_activated_at_equal_ppo_samples():
    targets = {"top1pct": None, "top01pct": None}
    truth = {}

    def lookup(arch):
        return truth.setdefault(arch, (50.0 + len(truth), 0.0))

    mnas = [fa.summarize("e", "mnas", s, _result([1.0] * 1000), targets, lookup) for s in range(3)]
    fnas = [
        fa.summarize("e", "fnas", s, _result([1.0] * 400, ppo_per_activated=4), targets, lookup)
        for s in range(3)
    ]
    assert mnas[0]["at_ppo"]["400"]["activated"] == 400
    assert fnas[0]["at_ppo"]["1000"]["activated"] == 250
    paper = fa.paper_tables([*mnas, *fnas])
    row = next(line for line in paper.splitlines() if "| fnas |" in line and "| 1000 |" in line)
    assert "| 250 | 0.25 |" in row and "MET" in row
    compact = fa.compact_table([*mnas, *fnas])
    row = next(line for line in compact.splitlines() if "| fnas |" in line)
    assert "| 4.00 | 250 (0.25) |" in row  # PPO per activated; activated @1000 and its ratio


def test_screening_and_evolution_verdicts_on_tables_and_on_envs_without_one():
    """fnas-screen is compared with evolution at the top-0.1% on a table, and at the level
    evolution's runs reach halfway (lower median) where the env has no table."""

    def records(env, targets, traces):
        out = [
            fa.summarize(env, m, s, _result(t), targets, lambda a: (1.0, 1.0))
            for m, runs in traces.items()
            for s, t in enumerate(runs)
        ]
        fa.add_mnas_targets(out)
        return out

    traces = {
        "evolution": [[80, 90, 96, 96], [80, 85, 90, 96], [90, 90, 90, 90]],
        "fnas-screen": [[96, 96, 96, 96], [80, 96, 96, 96], [80, 80, 80, 80]],
    }
    table = fa.tables(records("t", {"top1pct": 90.0, "top01pct": 95.0}, traces))
    assert "fnas-screen to top-0.1% <= evolution | fnas-screen 2 vs evolution 4" in table
    assert "| MET |" in table.splitlines()[-1]
    # halfway (after 2 of 4) evolution's bests are 90, 85, 90: lower median 90
    table = fa.tables(records("n", {"top1pct": None, "top01pct": None}, traces))
    line = table.splitlines()[-1]
    assert "evolution's halfway level (90.000)" in line and "| MET |" in line
    assert "fnas-screen 2 vs evolution 2" in line


def test_a_converged_run_counts_its_final_state_at_later_ppo_samples():
    targets = {"top1pct": None, "top01pct": None}
    rec = fa.summarize(
        "e", "mnas", 0, _result([1.0] * 300, converged=True), targets, lambda a: (1.0, 1.0)
    )
    assert rec["converged"] and rec["at_ppo"]["1000"]["activated"] == 300


@pytest.mark.parametrize(
    "values, expected", [([3.0, 1.0, 2.0], 2.0), ([4.0, 1.0, 3.0, 2.0], 2.0), ([5.0], 5.0)]
)
def test_lower_median_is_reached_by_at_least_half(values, expected):
    assert fa.lower_median(values) == expected
    assert sum(v >= expected for v in values) >= len(values) / 2


def test_intervals_bracket_the_estimate_and_keep_never_reached():
    low, high = fa.speedup_interval([100, 110, 120, 130, 140], [40, 50, 60, 70, 80])
    assert low <= 120 / 60 <= high and low > 1.0
    assert fa.speedup_interval([100] * 5, [None] * 5) == (0.0, 0.0)  # never reached
    low, high = fa.speedup_interval([None] * 5, [50] * 5)
    assert math.isinf(low) and math.isinf(high)
    d, low, high = fa.mean_difference_interval([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert d == pytest.approx(1.0) and low <= 1.0 <= high


def test_tables_from_saved_records(tmp_path, capsys):
    targets = {"top1pct": None, "top01pct": None}
    recs = [
        fa.summarize("e", m, 0, _result(b), targets, lambda a: (1.0, 1.0))
        for m, b in [("mnas", [50, 60, 80, 80]), ("uac", [50, 80, 80, 80])]
    ]
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:  # records kept compressed
        f.write("\n".join(json.dumps(r) for r in recs) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(recs[0]) + "\n")  # a repeated run counts once
    records = fa.main(["--tables", f"{tmp_path / 'a.jsonl.gz'},{tmp_path / 'b.jsonl'}"])
    assert len(records) == 2
    out = capsys.readouterr().out
    # mnas reaches its final best 80 at sample 3, uac at 2: 1.5x, under the 1.8x target
    assert "| e | uac >= 1.8x fewer than mnas | 1.50x (1 seeds) | MISSED |" in out


def test_quick_ablation_end_to_end(tmp_path, capsys):
    path = tmp_path / "runs.jsonl"
    records = fa.main(["--quick", "--methods", "mnas,fnas,evolution", "--jsonl", str(path)])
    assert len(records) == 9 and len(path.read_text().splitlines()) == 9
    out = capsys.readouterr().out
    assert "Strict metric" in out and "Paper's metric" in out
    assert all(r["ppo_samples"] for r in records if r["method"] != "evolution")


def test_cost_benchmark_times_both_methods_and_profiles_fnas(capsys):
    from benchmarks import fnas_cost

    walls = fnas_cost.main(["--env", "macro", "--budget", "12", "--seeds", "1"])
    assert [len(w) for w in walls.values()] == [1, 1] and all(w[0] > 0 for w in walls.values())
    out = capsys.readouterr().out
    assert "| critic training |" in out and "| whole search (learn) |" in out


def test_oracle_runs_are_reported_under_their_own_name(benchmark_dir, tmp_path):
    records = fa.run_all(
        ["nb201-cifar10"],
        ["uac"],
        [0],
        budget=8,
        settings=EAGER.changed(critic="oracle"),
        min_ppo_samples=0,
        benchmark_dir=str(benchmark_dir),
        work_dir=str(tmp_path),
        log=lambda s: None,
    )
    assert [r["method"] for r in records] == ["uac-oracle"]


def test_screen_transfer_starts_from_the_critic_of_its_own_source_method(benchmark_dir, tmp_path):
    """fnas-screen-transfer loads the critic a fnas-screen run on cifar10 saved (made first,
    not reported); fnas-transfer's source is fnas, in a folder of its own."""
    records = fa.run_all(
        ["nb201-cifar100"],
        ["fnas-screen-transfer"],
        [0],
        budget=12,
        settings=FNASSettings(),
        min_ppo_samples=0,
        benchmark_dir=str(benchmark_dir),
        work_dir=str(tmp_path),
        log=lambda s: None,
    )
    assert [(r["env"], r["method"]) for r in records] == [
        ("nb201-cifar100", "fnas-screen-transfer")
    ]
    assert (tmp_path / "nb201-cifar10" / "fnas-screen" / "critic-0.pt").is_file()
    assert not (tmp_path / "nb201-cifar10" / "fnas").exists()
    assert records[0]["activated"] == 12


def test_screen_variants_reach_the_controller(monkeypatch):
    """fnas-screen-keep adds keep_replaced; uac-screen is the same gate without AEB."""
    import agents.fnas_ppo as fnas_ppo

    seen: list[dict] = []
    make = fnas_ppo.make_fnas_controller

    def spy(env, **kwargs):
        seen.append(kwargs)
        return make(env, **kwargs)

    monkeypatch.setattr(fnas_ppo, "make_fnas_controller", spy)
    counters = [
        run(method, "FNAS-Macro-v0", budget=30, seed=0).counters
        for method in ("fnas-screen", "fnas-screen-keep", "uac-screen", "uac-screen-keep")
    ]
    assert [s.get("keep_replaced", False) for s in seen] == [False, True, False, True]
    assert [(s["uac"], s["aeb"]) for s in seen] == [(True, True)] * 2 + [(True, False)] * 2
    assert all(s["max_trusted_fraction"] == 0.75 for s in seen)
    assert counters[0]["replayed"] > 0 and counters[2]["replayed"] == 0
    assert counters[2]["trusted"] > 0  # the screening gate trusts once warm
