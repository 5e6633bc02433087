"""FNAS methods in the harness registry and the ablation benchmark's records."""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import replace

import numpy as np
import pytest

import agents.fnas_methods as fm
from agents.harness import METHODS, TracePoint, run_method
from benchmarks import fnas_ablation as fa
from fnas_env.spaces import get_space

# past the second PPO batch (8 + 4 new architectures), whose replays take half the slots
BUDGET = 14


@pytest.fixture
def settings():
    """Small warm-up so trust starts within a tiny budget; restored afterwards."""
    before = fm.FNAS_SETTINGS
    fm.configure(warmup=4)
    yield
    fm.FNAS_SETTINGS = before


def test_registered():
    for name in fm.FNAS_METHODS:
        assert name in METHODS


@pytest.mark.parametrize("method", ["mnas", "uac", "aeb", "fnas"])
def test_method_respects_budget(method, settings):
    fm.LAST_RUN.clear()
    trace = run_method(method, "FNAS-Macro-v0", budget=BUDGET, seed=0)
    assert [p.activated for p in trace] == list(range(1, BUDGET + 1))
    assert all(p.sampled >= p.activated for p in trace)
    if method == "mnas":
        assert fm.LAST_RUN == {}  # the plain controller, no FNAS machinery
        return
    counters = fm.LAST_RUN["counters"]
    if method in ("uac", "fnas"):
        assert fm.LAST_RUN["metrics"]["trusted"] > 0  # the critic scored some samples
        assert trace[-1].sampled > BUDGET  # trusted samples did not spend budget
    else:
        assert fm.LAST_RUN["gate"] is None
    if method in ("aeb", "fnas"):
        assert counters["replayed"] > 0
    else:
        assert counters["replayed"] == 0


def test_settings_reach_the_critic_and_gate(settings):
    fm.configure(critic_ensemble=3, verify_best=False)
    run_method("fnas", "FNAS-Macro-v0", budget=6, seed=0)
    assert len(fm.LAST_RUN["critic"].e_nets) == 3
    assert fm.LAST_RUN["gate"].verify_best is False
    assert fm.LAST_RUN["metrics"]["verified"] == 0


def test_mnas_is_ppo_lstm():
    a = run_method("mnas", "FNAS-Macro-v0", budget=8, seed=3)
    b = run_method("ppo-lstm", "FNAS-Macro-v0", budget=8, seed=3)
    assert [p.arch for p in a] == [p.arch for p in b]


def test_mnas_2_updates_after_two_architectures():
    a = run_method("mnas", "FNAS-Macro-v0", budget=8, seed=3)
    b = run_method("mnas-2", "FNAS-Macro-v0", budget=8, seed=3)
    assert [p.activated for p in b] == list(range(1, 9))
    # the same policy and sampling until mnas-2's first update, then a different policy
    assert [p.arch for p in b[:2]] == [p.arch for p in a[:2]]
    model = fm.LAST_RUN["model"]
    assert model.n_steps == 2 * 8  # Macro: 8 tokens per architecture
    # updates after architectures 2, 4 and 6 at least (mnas: none before the 8th)
    assert model._n_updates >= 3 * model.n_epochs


def test_configure_rejects_unknown():
    with pytest.raises(TypeError, match="unknown FNAS settings"):
        fm.configure(warm_up=3)


def test_transfer_needs_critic(settings):
    fm.configure(transfer_critic=None)
    with pytest.raises(ValueError, match="pretrained critic"):
        run_method("fnas-transfer", "FNAS-Macro-v0", budget=4, seed=0)


@pytest.mark.parametrize("clear_replay", [True, False])
def test_transfer_loads_and_keeps_training(tmp_path, settings, monkeypatch, clear_replay):
    from wrappers.critic import UncertaintyCritic

    space = get_space("macro")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(64)]
    x = np.stack([space.one_hot(a) for a in archs])
    source = UncertaintyCritic(space.embedding_dim, seed=1)
    source.update(x[:32], 80.0 + 10 * x[:32, :8].sum(axis=1))
    source.save(tmp_path / "critic-0.pt")
    expected = source.predict(x)
    n_source = source.num_samples

    loaded = {}
    original = UncertaintyCritic.load

    def spy(path, *args, **kwargs):
        critic = original(path, *args, **kwargs)
        loaded["critic"], loaded["before"] = critic, critic.predict(x)
        return critic

    monkeypatch.setattr(UncertaintyCritic, "load", spy)
    fm.configure(
        transfer_critic=str(tmp_path / "critic-{seed}.pt"),
        transfer_clear_replay=clear_replay,
        transfer_warmup=4,
    )
    trace = run_method("fnas-transfer", "FNAS-Macro-v0", budget=BUDGET, seed=0)
    assert len(trace) == BUDGET
    np.testing.assert_array_equal(loaded["before"][0], expected[0])
    np.testing.assert_array_equal(loaded["before"][1], expected[1])
    critic = fm.LAST_RUN["critic"]
    assert critic is loaded["critic"]
    # every new real evaluation was learnt from; the source's replay is kept unless cleared
    kept = 0 if clear_replay else n_source
    assert critic.num_samples == kept + fm.LAST_RUN["metrics"]["evaluated"]
    assert critic.num_samples > kept
    assert not np.allclose(critic.predict(x)[0], expected[0])
    # kept replay: the warm-up is already satisfied; cleared: transfer_warmup new samples
    assert fm.LAST_RUN["metrics"]["trusted"] > 0


def _trace(rewards: list[float]) -> list[TracePoint]:
    best = np.maximum.accumulate(rewards)
    return [
        TracePoint(i + 1, f"a{i}", r, r, float(b), float(b), 0.0, 0.0, i + 1, i + 1)
        for i, (r, b) in enumerate(zip(rewards, best))
    ]


def test_record_schema_and_mnas_target():
    targets = {"top1pct": 90.0, "top01pct": 95.0}
    mnas = [
        fa.summarize("e", "mnas", s, _trace(r), targets, None)
        for s, r in enumerate([[80, 85, 90], [70, 88, 86], [91, 60, 60]])
    ]
    fnas = fa.summarize(
        "e",
        "fnas",
        0,
        _trace([89, 70, 96]),
        targets,
        [1.0, 2.0, 4.0],
        {"metrics": {"trusted_fraction": 0.4}, "counters": {"evaluated": 3, "replayed": 1}},
    )
    records = [*mnas, fnas]
    fa.add_mnas_targets(records)
    for key in (
        "env",
        "method",
        "seed",
        "activated_to_top1pct",
        "activated_to_top01pct",
        "activated_to_mnas_best",
        "cost_to_mnas_best",
    ):
        assert all(key in r for r in records)
    json.loads(json.dumps(records))
    # target: median of mnas's final bests (90, 88, 91) = 90
    assert all(r["mnas_best_reward"] == 90.0 for r in records)
    assert [r["activated_to_mnas_best"] for r in mnas] == [3, None, 1]
    assert fnas["activated_to_mnas_best"] == 3 and fnas["cost_to_mnas_best"] == 7.0
    assert fnas["activated_to_top01pct"] == 3 and fnas["activated_to_top1pct"] == 3
    assert fnas["trusted_fraction"] == 0.4 and fnas["replayed_fraction"] == 0.25
    table = fa.tables(records)
    assert "| e | fnas >= 4x fewer than mnas | 1.00x (1 seeds) | MISSED |" in table


@pytest.mark.parametrize(
    "values, expected", [([3.0, 1.0, 2.0], 2.0), ([4.0, 1.0, 3.0, 2.0], 2.0), ([5.0], 5.0)]
)
def test_lower_median_is_reached_by_at_least_half(values, expected):
    assert fa.lower_median(values) == expected
    assert sum(v >= expected for v in values) >= len(values) / 2


def test_speedup_interval_brackets_the_ratio_and_keeps_never_reached():
    low, high = fa.speedup_interval([100, 110, 120, 130, 140], [40, 50, 60, 70, 80])
    assert low <= 120 / 60 <= high and low > 1.0
    assert fa.speedup_interval([100] * 5, [None] * 5) == (0.0, 0.0)  # never reached
    low, high = fa.speedup_interval([None] * 5, [50] * 5)
    assert math.isinf(low) and math.isinf(high)


def test_activated_to_mnas_best_matches_trace():
    traces = {m: run_method(m, "FNAS-Macro-v0", budget=10, seed=1) for m in ("mnas", "evolution")}
    targets = {"top1pct": None, "top01pct": None}
    records = [fa.summarize("macro", m, 1, t, targets, None) for m, t in traces.items()]
    fa.add_mnas_targets(records)
    target = traces["mnas"][-1].best_reward
    for rec, trace in zip(records, traces.values()):
        n = rec["activated_to_mnas_best"]
        assert n == fa.activated_to_reward(trace, target)
        if n is None:
            assert trace[-1].best_reward < target
        else:
            assert trace[n - 1].best_reward >= target
            assert n == 1 or trace[n - 2].best_reward < target
    assert records[0]["activated_to_mnas_best"] is not None  # mnas reaches its own best


def test_tables_from_saved_records(tmp_path, capsys):
    targets = {"top1pct": None, "top01pct": None}
    recs = [
        fa.summarize("e", m, s, _trace(r), targets, None)
        for m, s, r in [
            ("mnas", 0, [50, 60, 80, 80, 80, 80, 80, 80]),
            ("uac", 0, [50, 80, 80, 80, 80, 80, 80, 80]),
        ]
    ]
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:  # records kept compressed
        f.write("\n".join(json.dumps(r) for r in recs) + "\n")
    (tmp_path / "b.json").write_text(json.dumps(recs[:1]))  # a repeated run counts once
    records = fa.main(["--tables", f"{tmp_path / 'a.jsonl.gz'},{tmp_path / 'b.json'}"])
    assert len(records) == 2
    out = capsys.readouterr().out
    # mnas reaches its final best 80 at sample 3, uac at 2: 1.5x, under the 2x target
    assert "| e | uac >= 2x fewer than mnas | 1.50x (1 seeds) | MISSED |" in out
    # mnas's level after 100 samples: traces of 8 samples give none, so "-"
    row = next(line for line in out.splitlines() if line.startswith("| uac |"))
    assert row.split(" | ")[6:9] == ["1.50x", "[1.50, 1.50]", "-"]


def test_tables_speed_up_to_mnas_level_after_100(capsys):
    """Second target: mnas's median best after 100 samples (here 70, reached at 100)."""
    targets = {"top1pct": None, "top01pct": None}
    mnas = [50.0] * 99 + [70.0] * 21
    uac = [50.0] * 24 + [70.0] * 96
    records = [
        fa.summarize("e", "mnas", 0, _trace(mnas), targets, None),
        fa.summarize("e", "uac", 0, _trace(uac), targets, None),
    ]
    fa.add_mnas_targets(records)
    out = fa.tables(records)
    row = next(line for line in out.splitlines() if line.startswith("| uac |"))
    assert row.split(" | ")[8] == "4.00x"


def test_curve_tables_speed_up_at_each_mnas_checkpoint():
    """mnas climbs 1 point per 10 samples; fnas gets to each level in half the samples."""
    targets = {"top1pct": None, "top01pct": None}
    mnas = [float(i // 10) for i in range(120)]
    fnas = [float(i // 5) for i in range(60)] + [11.0] * 60
    slow = [0.0] * 120  # never gets anywhere
    records = [
        fa.summarize("e", m, 0, _trace(r), targets, None)
        for m, r in [("mnas", mnas), ("fnas", fnas), ("slow", slow)]
    ]
    short = fa.summarize("short", "mnas", 0, _trace(mnas[:60]), targets, None)
    out = fa.curve_tables([*records, short], levels=(25, 50, 100, 200)).splitlines()
    assert out[0] == "| env | method | seeds | to mnas@25 | to mnas@50 | to mnas@100 |"  # no 200
    # an env with shorter runs: the levels past its mnas runs are "-"
    assert out[-1] == "| short | mnas | 1 | 1.00x | 1.00x | - |"
    fnas_row = next(line for line in out if "| fnas |" in line).split(" | ")
    # level after 25 samples is 2.0: mnas reaches it at 21, fnas at 11
    assert fnas_row[3:] == [f"{21 / 11:.2f}x", f"{41 / 21:.2f}x", f"{91 / 46:.2f}x |"]
    slow_row = next(line for line in out if "| slow |" in line).split(" | ")
    assert slow_row[3] == f"<{21 / 120:.2f}x"
    assert "no mnas runs" in fa.curve_tables(records[1:])


def test_distinct_counts_each_architecture_once():
    """A repeat costs nothing under a result cache: distinct counts replace activated ones."""

    def trace(archs: list[str], rewards: list[float]) -> list[TracePoint]:
        points, seen = _trace(rewards), set()
        for i, arch in enumerate(archs):
            seen.add(arch)
            points[i] = replace(points[i], arch=arch, unique=len(seen))
        return points

    targets = {"top1pct": None, "top01pct": None}
    # mnas: 4 distinct architectures to reach 80 at sample 4; fnas: sample 6, but only 3 distinct
    mnas = trace(["a", "b", "c", "d"], [50, 60, 70, 80])
    fnas = trace(["a", "b", "a", "b", "a", "e"], [50, 60, 50, 60, 50, 80])
    records = [
        fa.summarize("e", "mnas", 0, mnas, targets, None),
        fa.summarize("e", "fnas", 0, fnas, targets, None),
    ]
    fa.add_mnas_targets(records)
    assert [r["activated_to_mnas_best"] for r in records] == [4, 6]
    assert [r["distinct_to_mnas_best"] for r in records] == [4, 3]
    row = next(line for line in fa.distinct_tables(records).splitlines() if "| fnas |" in line)
    # activated: 4/6 = 0.67x (slower); distinct: 4/3 = 1.33x (faster)
    assert row.split(" | ")[4:8] == ["6", "0.67x", "3", "1.33x"]


def test_replay_ratio_reads_the_replays_weights_back(benchmark_dir, capsys):
    from benchmarks import replay_ratio

    results = replay_ratio.main(["--envs", "macro", "--budget", "24"])
    r = results["macro"]
    # replays start in the second rollout (8 architectures per update)
    assert len(r["rho"]) >= 1 and len(r["clip"]) >= 2
    assert ((r["rho"] > 0) & (r["rho"] <= 1.0)).all()  # truncated at rho_max = 1
    assert ((r["clip"] >= 0) & (r["clip"] <= 1)).all()
    assert "| macro |" in capsys.readouterr().out


def test_oracle_critic_predicts_the_true_reward(benchmark_dir):
    import gymnasium as gym

    from benchmarks.uac_ceiling import OracleCritic

    env = gym.make("FNAS-Macro-v0")
    base = env.unwrapped
    oracle = OracleCritic(env, seed=0)
    rng = np.random.default_rng(0)
    archs = [base.search_space.sample(rng) for _ in range(5)]
    x = np.stack([base.search_space.one_hot(a) for a in archs])
    v, u = oracle.predict(x)
    assert v.tolist() == [base.reward_of(base.evaluator.evaluate(a)) for a in archs]
    assert u.shape == (5,) and ((u >= 0) & (u < 1)).all()
    assert len(set(u.tolist())) == 5  # noise, not a function of the architecture
    oracle.update(x[:2], [1.0, 2.0])
    assert oracle.num_samples == 2 and oracle.num_updates == 0
    env.close()


@pytest.mark.parametrize("method", ["uac-oracle", "fnas-oracle"])
def test_oracle_methods_trust_exact_rewards(benchmark_dir, method, settings):
    import benchmarks.uac_ceiling  # noqa: F401 - registers the oracle methods

    fm.configure(warmup=5)
    trace = run_method(method, "FNAS-Macro-v0", budget=24, seed=0)
    assert len(trace) == 24
    counters = fm.LAST_RUN["counters"]
    assert counters["accepted_trusted"] > 0  # the oracle's rewards were used
    assert 0.0 < fm.LAST_RUN["metrics"]["trusted_fraction"] < 1.0
    # V is exact on every really evaluated sample: its measured error is 0
    assert fm.LAST_RUN["metrics"]["v_mae"] == pytest.approx(0.0, abs=1e-9)
    assert (counters["replayed"] > 0) == (method == "fnas-oracle")


def test_leaks_count_trusted_architectures_at_the_level(benchmark_dir, settings):
    from benchmarks.uac_ceiling import trusted_at_level

    fm.configure(warmup=5)
    low = trusted_at_level("macro", "uac", 0, level=-1e9, budget=24)
    # every architecture reaches a level below all rewards: the first measured one
    # hits it, and every trusted architecture counts (none before the first hit)
    assert low["first_hit"] == 1
    assert low["trusted"] > 0 and low["trusted_at_level"] == low["trusted"]
    assert low["before_first_hit"] == 0
    high = trusted_at_level("macro", "uac", 0, level=1e9, budget=24)
    assert high == {
        "first_hit": None,
        "trusted": high["trusted"],
        "trusted_at_level": 0,
        "before_first_hit": 0,
    }
