"""Latency: timing, the JSON cache (reload, corrupt files), the lookup table, MACs cost."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from fnas_env.latency import (
    LatencyCache,
    LatencyModel,
    LatencyTable,
    _part_shapes,
    default_table_path,
    measure_times,
    model_parts,
    time_module,
)
from fnas_env.models import ProxyModelConfig, build_model, count_macs_params
from fnas_env.spaces import get_space

CONFIG = ProxyModelConfig(width_mult=0.25, resolution=8, num_classes=10, head_channels=64)
FAST = dict(num_threads=1, warmup=1, repeats=5, max_seconds=0.1)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: with 2 threads on a loaded 2-core machine OpenMP waits dominate."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def archs():
    space = get_space("mnas")
    rng = np.random.default_rng(0)
    return [space.sample(rng) for _ in range(3)]


def test_time_module_restores_state_and_returns_positive_times() -> None:
    module = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    module.train()
    before = torch.get_num_threads()
    times = time_module(module, torch.randn(1, 3, 8, 8), num_threads=1, warmup=1, repeats=4)
    assert 1 <= len(times) <= 4
    assert all(isinstance(t, float) and t > 0 for t in times)
    assert module.training
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads"):
        time_module(module, torch.randn(1, 3, 8, 8), num_threads=0)


def test_measure_times_respects_repeats(archs) -> None:
    times = measure_times(archs[0], CONFIG, num_threads=1, warmup=0, repeats=3, max_seconds=10.0)
    assert len(times) == 3 and min(times) > 0


def test_measured_latency_is_cached(archs, monkeypatch) -> None:
    model = LatencyModel("measured", **FAST)
    first = model.latency(archs[0], CONFIG)
    assert isinstance(first, float) and first > 0
    assert model.measurements == 1
    calls = []
    monkeypatch.setattr(model, "_measure", lambda a, c, m=None: calls.append(a) or 123.0)
    assert model.latency(archs[0], CONFIG) == first  # hit: no new measurement
    assert calls == [] and model.measurements == 1
    # another config is another entry
    assert model.latency(archs[0], ProxyModelConfig.digits()) == 123.0
    assert len(calls) == 1 and model.measurements == 2


def test_cache_file_survives_reload(archs, tmp_path, monkeypatch) -> None:
    path = tmp_path / "cache" / "latency.json"
    first = LatencyModel("measured", cache_path=path, **FAST)
    values = [first.latency(a, CONFIG) for a in archs[:2]]
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["latency.json"]  # no temp files left
    data = json.loads(path.read_text())
    assert data["version"] == 1 and len(data["measured"]) == 2 and len(data["configs"]) == 1

    second = LatencyModel("measured", cache_path=path, **FAST)

    def boom(a, c, m=None):
        raise AssertionError("should be a cache hit")

    monkeypatch.setattr(second, "_measure", boom)
    assert [second.latency(a, CONFIG) for a in archs[:2]] == values
    assert second.measurements == 0
    # another thread count is another key
    other = LatencyModel("measured", cache_path=path, **{**FAST, "num_threads": 2})
    monkeypatch.setattr(other, "_measure", lambda a, c, m=None: 7.0)
    assert other.latency(archs[0], CONFIG) == 7.0


def test_concurrent_writers_merge(tmp_path) -> None:
    path = tmp_path / "latency.json"
    a, b = LatencyCache(path), LatencyCache(path)
    a.put("measured", "x", 1.0)
    b.put("measured", "y", 2.0)  # b never saw x, but merges it from disk
    reloaded = LatencyCache(path)
    assert reloaded.get("measured", "x") == 1.0 and reloaded.get("measured", "y") == 2.0


@pytest.mark.parametrize(
    "content", ['{"version": 1, "measured": {"a": 1.0', "not json at all", "[1, 2]", ""]
)
def test_corrupt_or_partial_cache_is_replaced(content, archs, tmp_path, monkeypatch) -> None:
    path = tmp_path / "latency.json"
    path.write_text(content)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        model = LatencyModel("measured", cache_path=path, **FAST)
    monkeypatch.setattr(model, "_measure", lambda a, c, m=None: 5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the save re-reads the bad file once
        assert model.latency(archs[0], CONFIG) == 5.0
    data = json.loads(path.read_text())  # valid again
    assert list(data["measured"].values()) == [5.0]


def test_macs_cost_model(archs) -> None:
    model = LatencyModel("macs")
    assert model.unit == "MMACs"
    value = model.latency(archs[1], CONFIG)
    expected = count_macs_params(build_model(archs[1], CONFIG), CONFIG).macs / 1e6
    assert value == pytest.approx(expected) and value > 0
    assert model.latency(archs[1], CONFIG) == value and model.measurements == 1
    given = LatencyModel("macs").latency(archs[1], CONFIG, model=build_model(archs[1], CONFIG))
    assert given == value


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cost_model"):
        LatencyModel("flops")
    with pytest.raises(ValueError, match="repeats"):
        LatencyModel(repeats=0)
    with pytest.raises(TypeError, match="Architecture"):
        LatencyModel().latency("mb6", CONFIG)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="calibration_archs"):
        LatencyTable(calibration_archs=-1)


def test_model_parts_cover_the_network(archs) -> None:
    model = build_model(archs[0], CONFIG)
    parts = model_parts(model)
    n_layers = sum(len(b.layers) for b in model.blocks)
    assert len(parts) == 1 + n_layers + 1
    assert sum(p.numel() for m in parts for p in m.parameters()) == sum(
        p.numel() for p in model.parameters()
    )
    nb201 = build_model(get_space("nb201").sample(np.random.default_rng(1)), CONFIG)
    assert len(model_parts(nb201)) == 1 + len(nb201.cells) + 1


def test_lut_reuses_parts_and_calibrates_on_a_fixed_set(archs) -> None:
    table = LatencyTable(
        calibration_archs=2, network_timing=dict(warmup=1, repeats=3, max_seconds=0.1), **FAST
    )
    table.repeats, table.max_seconds = 3, 0.05
    a, b, c = archs
    pa = table.predict(a, CONFIG)
    n_parts = table.measurements
    # the two fixed calibration architectures were timed whole first, not ``a``
    assert pa > 0 and table.calibrations == 2 and n_parts >= 3
    assert table.calibrated(CONFIG)
    labels = [p[0] for p in table.calibration_pairs(CONFIG)]
    space = get_space("mnas")
    assert labels == [f"mnas:{space.to_string(x)}" for x in table.calibration_set("mnas")]
    assert table.calibration_set("mnas") == LatencyTable(calibration_archs=2).calibration_set(
        "mnas"
    )  # the same set in every table: not the search's first samples
    assert pa == table.scale(CONFIG) * table.raw(a, CONFIG)  # exact: same table values
    assert table.predict(a, CONFIG) == pa and table.measurements == n_parts  # no new timing
    n_before = table.measurements
    pc = table.predict(c, CONFIG)
    assert table.calibrations == 2  # calibrated once per space and config
    # the stem (same for every mnas architecture at one config) is reused at least
    n_parts_c = len(model_parts(build_model(c, CONFIG)))
    assert 0 <= table.measurements - n_before < n_parts_c
    assert pc == table.scale(CONFIG) * table.raw(c, CONFIG)
    assert pc > 0 and table.scale(CONFIG) > 0
    assert table.predict(b, CONFIG) > 0 and table.calibrations == 2


def test_lut_repeated_parts_of_one_network_are_timed_once(monkeypatch) -> None:
    """Identical layers with identical inputs share one entry, read back as timed."""
    arch = get_space("mnas").from_string("|".join(["mb6_k3_se0_id_x1_l+1"] * 7))
    table = LatencyTable(calibration_archs=0, **FAST)
    model = build_model(arch, CONFIG)
    keys = {
        table._part_key(p, s)
        for p, s in zip(model_parts(model), _part_shapes(model, model_parts(model), CONFIG))
    }
    first = table.part_latencies(arch, CONFIG)
    assert table.measurements == len(keys) < len(first)
    assert table.part_latencies(arch, CONFIG) == first and table.measurements == len(keys)


def test_lut_reads_parts_from_a_given_model(archs) -> None:
    table = LatencyTable(calibration_archs=0, **FAST)
    trained = build_model(archs[0], CONFIG).to(memory_format=torch.channels_last)
    with_model = table.raw(archs[0], CONFIG, trained)
    n = table.measurements
    assert table.raw(archs[0], CONFIG) == with_model and table.measurements == n
    with pytest.raises(ValueError, match="not its network"):
        table.raw(archs[1], CONFIG, build_model(archs[2], CONFIG))


def test_lut_table_file_gives_the_same_prediction_in_a_new_model(archs, tmp_path) -> None:
    table = tmp_path / "machine" / "latency_lut.json"
    first = LatencyModel("lut", table_path=table, **FAST)
    first.table.calibration_archs = 1
    values = [first.latency(a, CONFIG) for a in archs]
    assert first.measurements == 3 and first.table.calibrations == 1
    second = LatencyModel("lut", table_path=table, **FAST)  # a new process, same machine
    second.table.calibration_archs = 1
    assert [second.latency(a, CONFIG) for a in archs] == values
    assert second.table.measurements == 0 and second.table.calibrations == 0
    data = json.loads(table.read_text())
    assert "predicted" not in data or not data["predicted"]  # per-search values: cache_path


def test_default_table_path_follows_fnas_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FNAS_CACHE_DIR", str(tmp_path))
    assert default_table_path() == tmp_path / "latency_lut.json"
    monkeypatch.delenv("FNAS_CACHE_DIR")
    assert default_table_path() == Path("~/.cache/fnas/latency_lut.json").expanduser()


def test_lut_prediction_tracks_measurement() -> None:
    """Part sums rank clearly different networks like whole-network timings (sanity)."""
    space = get_space("macro")
    config = ProxyModelConfig(width_mult=0.5, resolution=16, num_classes=10)
    archs = [space.from_string(s) for s in ("00000000", "10000001", "11111111", "22222222")]
    table = LatencyTable(calibration_archs=0, num_threads=1, warmup=1, repeats=5, max_seconds=0.1)
    predicted = [table.predict(a, config) for a in archs]
    measured = [
        float(
            np.median(measure_times(a, config, num_threads=1, warmup=2, repeats=7, max_seconds=1))
        )
        for a in archs
    ]
    assert all(p > 0 for p in predicted) and all(m > 0 for m in measured)
    assert predicted[0] < predicted[-1] and measured[0] < measured[-1]
    assert spearmanr(predicted, measured).statistic > 0


def test_lut_cost_model_through_latency_model(tmp_path, archs) -> None:
    path = tmp_path / "lat.json"
    model = LatencyModel("lut", cache_path=path, **FAST)
    model.table.calibration_archs = 1
    value = model.latency(archs[0], CONFIG)
    assert value > 0 and model.unit == "ms"
    data = json.loads(path.read_text())
    assert len(data["lut"]) == model.table.measurements > 0
    assert len(data["calibration"]) == 1
    assert list(data["predicted"].values()) == [value]


def test_lut_scale_ignores_pairs_outside_the_calibration_set(archs) -> None:
    timing = dict(network_timing=dict(warmup=1, repeats=3, max_seconds=0.1), **FAST)
    table = LatencyTable(calibration_archs=1, **timing)
    with pytest.raises(ValueError, match="pass space"):
        table.scale(CONFIG)  # nothing predicted yet: which space's calibration?
    scale = table.scale(CONFIG, "mnas")
    key = table._calibration_key("mnas", CONFIG)
    stale = [list(p) for p in table.calibration_pairs(CONFIG, "mnas")]
    stale.append(["mnas:" + get_space("mnas").to_string(archs[0]), 1000.0, 1.0])
    table.cache.put("calibration", key, stale)  # e.g. left by another calibration seed
    again = LatencyTable(calibration_archs=1, cache=table.cache, **timing)
    assert again.scale(CONFIG, "mnas") == scale and again.calibrations == 0


def _predict_into(table_path: str, out: str, start) -> None:
    """In another process: predict three architectures from a shared table file."""
    torch.set_num_threads(1)
    space = get_space("mnas")
    rng = np.random.default_rng(0)
    table = LatencyTable(calibration_archs=1, cache=LatencyCache(table_path), **FAST)
    table.network_timing = dict(warmup=1, repeats=3, max_seconds=0.1)
    start.wait(timeout=60)  # both processes start filling the empty table together
    values = [table.predict(space.sample(rng), CONFIG) for _ in range(3)]
    Path(out).write_text(json.dumps(values))


def test_processes_sharing_a_table_file_time_each_part_once(tmp_path) -> None:
    """Two processes fill one table at once: both get the same values (the file's lock)."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["fnas_env.latency"])
    table = tmp_path / "latency_lut.json"
    outs = [tmp_path / f"out{i}.json" for i in range(2)]
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_predict_into, args=(str(table), str(o), start)) for o in outs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    first, second = (json.loads(o.read_text()) for o in outs)
    assert first == second and all(v > 0 for v in first)
    data = json.loads(table.read_text())
    assert len(data["calibration"]) == 1 and len(data["calibration"].popitem()[1]) == 1
