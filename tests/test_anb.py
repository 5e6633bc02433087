"""Accel-NASBench surrogate: data loading, fit quality, caching, determinism, errors."""

from __future__ import annotations

import io
import json
import os
import tarfile

import gymnasium as gym
import numpy as np
import pytest
from scipy.stats import kendalltau

import fnas_env  # noqa: F401  (registers the ids)
from fnas_env.evaluators import MissingBenchmarkData, anb
from fnas_env.evaluators.anb import (
    ANB_DEVICES,
    ANB_FILE,
    AnbDataset,
    AnbSurrogateEvaluator,
    fit_target,
    load_anb_dataset,
)
from fnas_env.spaces import get_space

SPACE = get_space("anb")


@pytest.fixture(scope="module", autouse=True)
def surrogate_cache(tmp_path_factory):
    """Fitted surrogates go to this session's temp folder, never to ``~/.cache``."""
    old = os.environ.get("FNAS_CACHE_DIR")
    os.environ["FNAS_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "fnas-cache")
    yield
    if old is None:
        os.environ.pop("FNAS_CACHE_DIR", None)
    else:
        os.environ["FNAS_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def dataset(benchmark_dir) -> AnbDataset:
    return load_anb_dataset(benchmark_dir / ANB_FILE)


@pytest.fixture(scope="module")
def zcu102(benchmark_dir) -> AnbSurrogateEvaluator:
    return AnbSurrogateEvaluator("zcu102", benchmark_dir)


# ---- upstream data ----------------------------------------------------------------------
def test_dataset_matches_the_archive(benchmark_dir, dataset):
    assert len(dataset) == 5138
    assert dataset.features.shape == (5138, SPACE.embedding_dim)
    with tarfile.open(benchmark_dir / ANB_FILE) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        first = json.load(tar.extractfile(names[0]))
    arch = SPACE.from_upstream(first["architecture"])
    assert dataset.archs[0] == arch
    np.testing.assert_array_equal(dataset.features[0], SPACE.one_hot(arch))
    assert dataset.targets["accuracy"][0] == first["metrics"]["val_top1"]
    assert dataset.targets["train_time"][0] == first["metrics"]["train_time"]
    assert dataset.targets["macs"][0] == first["model_info"]["macs"]
    perf = first["platform_perf"]
    assert dataset.targets["latency_zcu102"][0] == perf["latency_zcu102"]["latency_mean"]
    assert dataset.targets["throughput_a100"][0] == perf["throughput_a100"]["throughput_mean"]
    # null measurements are NaN, per target (about 50 records lack one)
    missing = {t: int(np.isnan(v).sum()) for t, v in dataset.targets.items()}
    assert missing["accuracy"] == missing["train_time"] == 0
    assert 0 < missing["throughput_tpuv3"] < 100 and 0 < missing["latency_zcu102"] < 100
    assert sum(missing.values()) < 200


# ---- the fitted surrogate ---------------------------------------------------------------
def test_evaluation_fields(zcu102, dataset):
    rng = np.random.default_rng(0)
    for arch in [SPACE.sample(rng) for _ in range(20)]:
        ev = zcu102.evaluate(arch)
        assert 0 < ev.accuracy <= 100 and ev.latency > 0 and ev.throughput is None
        assert ev.cost > 0 and ev.macs > 0 and ev.params > 0
        assert ev.trusted is False and ev.failed is False
        assert ev.extras == {"device": "zcu102", "surrogate_seed": 0}
    assert zcu102.objective == "latency"
    assert zcu102.default_target == pytest.approx(np.nanmedian(dataset.targets["latency_zcu102"]))


def test_surrogate_follows_the_data(zcu102, dataset):
    """Fitted on all records: ranks and values of the data are reproduced closely."""
    idx = np.random.default_rng(1).choice(len(dataset), 1000, replace=False)
    archs = [dataset.archs[i] for i in idx]
    evs = zcu102.evaluate_many(archs)
    acc = np.array([e.accuracy for e in evs])
    lat = np.array([e.latency for e in evs])
    y_acc, y_lat = dataset.targets["accuracy"][idx], dataset.targets["latency_zcu102"][idx]
    ok = np.isfinite(y_lat)
    assert kendalltau(acc, y_acc).statistic > 0.9
    assert np.mean(np.abs(acc - y_acc)) < 0.5
    assert kendalltau(lat[ok], y_lat[ok]).statistic > 0.95
    assert np.mean(np.abs(lat[ok] - y_lat[ok]) / y_lat[ok]) < 0.05
    # the batched and single predictions agree
    single = zcu102.evaluate(archs[3])
    assert single.accuracy == pytest.approx(acc[3], rel=1e-12)
    np.testing.assert_allclose(zcu102.predict(archs[:5], "accuracy"), acc[:5], rtol=1e-12)


def test_throughput_device(benchmark_dir, dataset):
    ev = AnbSurrogateEvaluator("a100", benchmark_dir)
    assert ev.objective == "throughput"
    assert ev.default_target == pytest.approx(np.nanmedian(dataset.targets["throughput_a100"]))
    result = ev.evaluate(dataset.archs[0])
    assert result.latency is None and result.throughput > 0
    y = dataset.targets["throughput_a100"][0]
    assert abs(result.throughput - y) / y < 0.1


def test_refuses_other_space_and_bad_target(zcu102):
    with pytest.raises(ValueError, match="evaluates architectures of space 'anb'"):
        zcu102.evaluate(get_space("macro").from_string("00000000"))
    with pytest.raises(ValueError, match="target must be one of"):
        zcu102.predict([SPACE.from_choices([0] * 28)], "energy")


def test_errors(tmp_path):
    with pytest.raises(ValueError, match=r"accepted devices: \['zcu102', 'vck190', 'a100'"):
        AnbSurrogateEvaluator("tpu", tmp_path)
    with pytest.raises(MissingBenchmarkData, match=ANB_FILE) as info:
        AnbSurrogateEvaluator("zcu102", tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "https://github.com/afzalxo/Accel-NASBench" in str(info.value)


def test_env_accuracy_only_and_default_target(benchmark_dir, zcu102):
    env = gym.make("FNAS-ANB-v0", benchmark_dir=benchmark_dir, target=None, one_shot=True)
    arch = SPACE.sample(np.random.default_rng(4))
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.array(arch.choices))
    assert terminated
    assert reward == info["accuracy"] == pytest.approx(zcu102.evaluate(arch).accuracy)
    default = gym.make("FNAS-ANB-v0", benchmark_dir=benchmark_dir).unwrapped
    assert default.reward_config.target == zcu102.default_target
    assert default.reward_config.objective == "latency"


# ---- a small archive made here: null handling, caching, determinism ---------------------
@pytest.fixture
def quick_trees(monkeypatch):
    """30 boosting rounds instead of 1,000: these tests check logic, not fit quality."""
    make = anb.make_regressor
    monkeypatch.setattr(
        anb, "make_regressor", lambda t, seed=0: make(t, seed).set_params(max_iter=30)
    )


def _small_archive(folder, n=80, seed=0):
    """Upstream's layout with synthetic values; every 10th record lacks zcu102 latency."""
    rng = np.random.default_rng(seed)
    path = folder / "accel-nasbench" / "anb_dataset_jsons.tar.gz"
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tar:
        for i in range(n):
            arch = SPACE.sample(rng)
            v = np.array(SPACE.values(arch), dtype=float)
            lat = None if i % 10 == 0 else float(1 + v[0::4].sum() * v[2::4].sum() / 10)
            thr = 2000.0 / (5 + float(v[0::4].sum()))
            record = {
                "architecture": SPACE.to_upstream(arch),
                "metrics": {"val_top1": 50 + float(v[0::4].sum()), "train_time": 100.0 + i},
                "model_info": {"macs": 300 + float(v[1::4].sum()), "params": 2 + v[3::4].sum()},
                "platform_perf": {
                    f"{o}_{d}": {f"{o}_mean": (lat if d == "zcu102" else thr)}
                    for d, o in ANB_DEVICES.items()
                },
            }
            data = json.dumps(record).encode()
            info = tarfile.TarInfo(f"./anb_dataset_jsons/result_{i}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_null_measurements_dropped_from_that_target_only(tmp_path, quick_trees):
    path = _small_archive(tmp_path)
    data = load_anb_dataset(path)
    assert len(data) == 80 and np.isnan(data.targets["latency_zcu102"]).sum() == 8
    lat = fit_target(data, "latency_zcu102", seed=0)
    acc = fit_target(data, "accuracy", seed=0)
    assert (lat.n_train, acc.n_train) == (72, 80)
    assert np.isfinite(lat.predict(data.features)).all()
    thr = fit_target(data, "throughput_a100", seed=0)
    assert thr.transform == "reciprocal"
    y = data.targets["throughput_a100"]
    assert kendalltau(thr.predict(data.features), y).statistic > 0.8


def test_cache_round_trip_and_determinism(tmp_path, monkeypatch, quick_trees):
    _small_archive(tmp_path / "bench")
    monkeypatch.setattr(anb, "_MEMORY", {})
    first = AnbSurrogateEvaluator("zcu102", tmp_path / "bench", seed=3, cache_dir=tmp_path / "c")
    files = sorted(p.name for p in (tmp_path / "c" / "anb").iterdir())
    assert len(files) == 5 and all(f.endswith(".npz") and "-seed3-" in f for f in files)
    archs = [SPACE.sample(np.random.default_rng(9)) for _ in range(30)]
    expected = first.evaluate_many(archs)

    # a new process would load the files: no fit may happen
    monkeypatch.setattr(anb, "_MEMORY", {})

    def no_fit(*args, **kwargs):
        raise AssertionError("refitted although the cache holds the model")

    real_fit = anb.fit_target
    monkeypatch.setattr(anb, "fit_target", no_fit)
    loaded = AnbSurrogateEvaluator("zcu102", tmp_path / "bench", seed=3, cache_dir=tmp_path / "c")
    assert loaded.evaluate_many(archs) == expected
    assert loaded.default_target == first.default_target
    monkeypatch.setattr(anb, "fit_target", real_fit)

    # equal seeds fit equal surrogates; another seed gives another one
    monkeypatch.setattr(anb, "_MEMORY", {})
    again = AnbSurrogateEvaluator("zcu102", tmp_path / "bench", seed=3, cache_dir=tmp_path / "d")
    assert again.evaluate_many(archs) == expected
    other = AnbSurrogateEvaluator("zcu102", tmp_path / "bench", seed=4, cache_dir=tmp_path / "d")
    assert [e.accuracy for e in other.evaluate_many(archs)] != [e.accuracy for e in expected]
    assert other.evaluate(archs[0]).extras["surrogate_seed"] == 4


def test_broken_cache_file_is_refitted(tmp_path, monkeypatch, quick_trees):
    _small_archive(tmp_path / "bench")
    monkeypatch.setattr(anb, "_MEMORY", {})
    ev = AnbSurrogateEvaluator("zcu102", tmp_path / "bench", cache_dir=tmp_path / "c")
    arch = SPACE.from_choices([1] * 28)
    expected = ev.evaluate(arch)
    for f in (tmp_path / "c" / "anb").iterdir():
        f.write_bytes(b"not an npz file")
    monkeypatch.setattr(anb, "_MEMORY", {})
    ev2 = AnbSurrogateEvaluator("zcu102", tmp_path / "bench", cache_dir=tmp_path / "c")
    assert ev2.evaluate(arch) == expected
    with np.load(next((tmp_path / "c" / "anb").iterdir()), allow_pickle=False) as data:
        assert json.loads(str(data["key"]))["seed"] == 0
