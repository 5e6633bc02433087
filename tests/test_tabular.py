"""Tabular evaluators answer what the published tables say."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fnas_env.evaluators import MissingBenchmarkData
from fnas_env.evaluators.tabular import (
    MACRO_FILE,
    NB201_DATASETS,
    NB201_FILE,
    MacroEvaluator,
    NB201Evaluator,
)
from fnas_env.spaces import get_space


@pytest.fixture(scope="module")
def nb201_rows(benchmark_dir):
    with open(benchmark_dir / NB201_FILE, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def macro_table(benchmark_dir):
    with open(benchmark_dir / MACRO_FILE) as f:
        return json.load(f)


@pytest.mark.parametrize(("dataset", "prefix"), list(NB201_DATASETS.items()))
def test_nb201_matches_csv_rows(benchmark_dir, nb201_rows, dataset, prefix):
    ev = NB201Evaluator(dataset, benchmark_dir)
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    for k in rng.choice(len(nb201_rows), 60, replace=False):
        row = nb201_rows[k]
        result = ev.evaluate(space.from_string(row["arch_str"]))
        assert result.accuracy == float(row[f"{prefix}_valid"])  # the search sees validation
        assert result.extras == {"test_accuracy": float(row[f"{prefix}_test"]), "dataset": dataset}
        assert not result.trusted and not result.failed
        assert result.latency is None and result.throughput is None
    assert len(ev.all_accuracies()) == len(nb201_rows) == space.size
    assert ev.all_accuracies().max() == max(float(r[f"{prefix}_valid"]) for r in nb201_rows)


def test_nb201_datasets_differ(benchmark_dir, nb201_rows):
    arch = get_space("nb201").from_string(nb201_rows[1]["arch_str"])
    accs = {d: NB201Evaluator(d, benchmark_dir).evaluate(arch).accuracy for d in NB201_DATASETS}
    assert accs == {"cifar10": 82.834, "cifar100": 57.8, "ImageNet16-120": 35.4333}


def test_macro_matches_json(benchmark_dir, macro_table):
    ev = MacroEvaluator(benchmark_dir)
    space = get_space("macro")
    keys = sorted(macro_table)
    rng = np.random.default_rng(1)
    for k in rng.choice(len(keys), 60, replace=False):
        key = keys[k]
        row = macro_table[key]
        result = ev.evaluate(space.from_string(key))
        assert result.accuracy == pytest.approx(row["mean_acc"])
        assert result.params == pytest.approx(row["params"] / 1e6)
        assert result.macs == pytest.approx(row["flops"] / 1e6)
        assert result.extras["test_acc_runs"] == pytest.approx(row["test_acc"])
        assert result.extras["std"] == pytest.approx(row["std"])
    assert len(ev.all_accuracies()) == len(macro_table) == space.size


@pytest.mark.parametrize(
    ("make", "other"),
    [
        (lambda d: NB201Evaluator("cifar10", d), "macro"),
        (lambda d: MacroEvaluator(d), "nb201"),
        (lambda d: MacroEvaluator(d), "anb"),
    ],
)
def test_refuses_other_space(benchmark_dir, make, other):
    ev = make(benchmark_dir)
    arch = get_space(other).sample(np.random.default_rng(0))
    with pytest.raises(
        ValueError, match=f"evaluates architectures of space .*got one of space '{other}'"
    ):
        ev.evaluate(arch)
    with pytest.raises(TypeError, match="takes an Architecture"):
        ev.evaluate(arch.choices)


def test_unknown_dataset(benchmark_dir):
    with pytest.raises(
        ValueError, match=r"dataset must be one of \['cifar10', 'cifar100', 'ImageNet16-120'\]"
    ):
        NB201Evaluator("imagenet", benchmark_dir)


@pytest.mark.parametrize(
    ("make", "file"),
    [(lambda d: NB201Evaluator("cifar10", d), NB201_FILE), (MacroEvaluator, MACRO_FILE)],
)
def test_missing_data_names_the_file(tmp_path, make, file):
    with pytest.raises(MissingBenchmarkData, match=file) as info:
        make(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "FNAS_BENCHMARK_DIR" in message
    assert "github.com" in message


def test_small_tables_made_here(tmp_path):
    (tmp_path / "nas-bench-201").mkdir()
    cell = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    (tmp_path / NB201_FILE).write_text(
        "index,arch_str,cifar10_valid,cifar10_test,cifar100_valid,cifar100_test,"
        f"imagenet16_120_valid,imagenet16_120_test\n0,{cell},1.5,2.5,3.5,4.5,5.5,6.5\n"
    )
    ev = NB201Evaluator("cifar100", tmp_path)
    result = ev.evaluate(get_space("nb201").from_string(cell))
    assert (result.accuracy, result.extras["test_accuracy"]) == (3.5, 4.5)
    with pytest.raises(KeyError, match="not in the NAS-Bench-201 table"):
        ev.evaluate(get_space("nb201").from_choices([0] * 6))

    (tmp_path / "nas-bench-macro").mkdir()
    row = {
        "test_acc": [90.0, 91.0, 92.0],
        "mean_acc": 91.0,
        "std": 0.8,
        "params": 5e5,
        "flops": 4e7,
    }
    (tmp_path / MACRO_FILE).write_text(json.dumps({"01201201": row}))
    result = MacroEvaluator(tmp_path).evaluate(get_space("macro").from_string("01201201"))
    assert (result.accuracy, result.params, result.macs) == (91.0, 0.5, 40.0)
    with pytest.raises(KeyError, match="not in the NAS-Bench-Macro table"):
        MacroEvaluator(tmp_path).evaluate(get_space("macro").from_string("00000000"))


def test_benchmark_dir_from_environment(monkeypatch, benchmark_dir, tmp_path):
    monkeypatch.setenv("FNAS_BENCHMARK_DIR", str(benchmark_dir))
    assert MacroEvaluator().evaluate(get_space("macro").from_string("00000000")).accuracy > 0
    monkeypatch.setenv("FNAS_BENCHMARK_DIR", str(tmp_path))
    with pytest.raises(MissingBenchmarkData, match="nas-bench-macro_cifar10.json"):
        MacroEvaluator()
