"""``fnas train``: resumable full training, ImageFolder data, test splits, clear errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fnas_env.cli import main
from fnas_env.evaluators.base import Evaluation
from fnas_env.evaluators.proxy import base_architecture
from fnas_env.export import arch_name
from fnas_env.full_training import load_weights
from fnas_env.models import build_model
from fnas_env.record import SearchRecord
from fnas_env.run import RunFolder, RunSettings
from fnas_env.spaces import get_space
from fnas_env.training import load_dataset, load_test_split
from fnas_env.training import trainer as trainer_module

FAST = ["--width", "0.25", "--batch-size", "128", "--no-progress-bar", "--no-onnx"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A digits search's run folder with three evaluated architectures."""
    path = tmp_path_factory.mktemp("run")
    folder = RunFolder(path)
    kwargs = {"dataset": "digits", "width": 0.5, "target": 1.0}
    folder.save_settings(RunSettings(env_id="FNAS-MNAS-v0", env_kwargs=kwargs, seed=3))
    record = SearchRecord(folder.record_path)
    rng = np.random.default_rng(1)
    archs = [base_architecture()] + [get_space("mnas").sample(rng) for _ in range(2)]
    for i, arch in enumerate(archs):
        evaluation = Evaluation(accuracy=90.0 - i, latency=1.0, macs=1e6, params=1e5)
        record.append(arch, evaluation, 1.0 - 0.1 * i, "activated")
    return path


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def weights_equal(a: Path, b: Path) -> bool:
    sa, sb = load_weights(a).state_dict, load_weights(b).state_dict
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def uninterrupted(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full")
    assert main(["train", str(run_dir), "--epochs", "2", "--out", str(out), *FAST]) == 0
    return out


def test_train_writes_result_weights_and_export(run_dir, uninterrupted, capsys):
    out = uninterrupted
    result = json.loads((out / "result.json").read_text())
    base = get_space("mnas").to_string(base_architecture())
    assert result["arch"] == base and result["run"] == str(run_dir)  # the best by reward
    assert result["epochs"] == 2 and len(result["history"]) == 2
    assert 0.0 <= result["accuracy"] <= 100.0 and result["test_accuracy"] is None
    assert result["latency_ms"] > 0 and result["params"] > 0 and result["macs"] > 0
    assert result["config"]["width_mult"] == 0.25 and result["config"]["resolution"] == 8
    assert result["train_config"]["seed"] == 3  # the run's seed
    assert result["record"]["reward"] == pytest.approx(1.0)
    assert len(result["normalisation"]["mean"]) == 1
    meta = json.loads(next((out / "export").glob("trained_*.json")).read_text())
    assert meta["weights"] == "trained" and meta["training"]["accuracy"] == result["accuracy"]
    assert {"checkpoint.pt", "weights.pt", "result.json", "train.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_resume_after_interruption_equals_uninterrupted(
    run_dir, uninterrupted, tmp_path, monkeypatch
):
    out = tmp_path / "resumed"
    args = ["train", str(run_dir), "--epochs", "2", "--out", str(out), *FAST]
    save = trainer_module._EpochHooks.save

    def save_then_die(self, signature, objects, generator, running, state):
        save(self, signature, objects, generator, running, state)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(trainer_module._EpochHooks, "save", save_then_die)
    assert main(args) == 130
    assert (out / "checkpoint.pt").is_file() and not (out / "weights.pt").exists()
    monkeypatch.setattr(trainer_module._EpochHooks, "save", save)
    assert main(args) == 0
    resumed = json.loads((out / "result.json").read_text())
    full = json.loads((uninterrupted / "result.json").read_text())
    assert resumed["resumed_epoch"] == 1 and full["resumed_epoch"] == 0
    assert resumed["accuracy"] == full["accuracy"]
    assert resumed["final_loss"] == full["final_loss"]
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in full["history"]]
    assert weights_equal(out / "weights.pt", uninterrupted / "weights.pt")
    # a third call finds the training complete: same result, nothing trained
    assert main(args) == 0
    again = json.loads((out / "result.json").read_text())
    assert again["resumed_epoch"] == 2 and again["accuracy"] == full["accuracy"]
    assert weights_equal(out / "weights.pt", uninterrupted / "weights.pt")


def test_other_settings_in_the_same_folder_are_refused(run_dir, uninterrupted, capsys):
    # the cosine schedule spans all epochs: 1 epoch then 2 is not one 2-epoch training
    args = ["train", str(run_dir), "--epochs", "3", "--out", str(uninterrupted), *FAST]
    assert main(args) == 2
    line = error_line(capsys)
    assert "holds another training" in line and "epochs" in line


def test_export_of_trained_weights_matches_the_trained_network(run_dir, uninterrupted, tmp_path):
    out = tmp_path / "exp"
    weights = uninterrupted / "weights.pt"
    args = ["export", str(run_dir), "--weights", str(weights), "--no-onnx", "--out", str(out)]
    assert main(args) == 0
    trained = load_weights(weights)
    model = build_model(trained.arch, trained.config).eval()
    model.load_state_dict(trained.state_dict)
    meta = json.loads((out / f"trained_{arch_name(trained.arch)}.json").read_text())
    assert meta["weights"] == "trained" and meta["record"]["reward"] == pytest.approx(1.0)
    program = torch.export.load(str(out / f"trained_{arch_name(trained.arch)}.pt2")).module()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(program(x), model(x), atol=1e-5)
    # a checkpoint is accepted too (the weights of its last completed epoch)
    checkpoint = load_weights(uninterrupted / "checkpoint.pt")
    assert checkpoint.arch == trained.arch and checkpoint.meta["checkpoint_epoch"] == 2


def make_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 12) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, (10, 10, 3)) + 120 * c
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_image_folder_trains_without_a_run(tmp_path, monkeypatch):
    data = make_image_folder(tmp_path / "pets")
    monkeypatch.chdir(tmp_path)
    text = get_space("mnas").to_string(base_architecture())
    args = ["train", "--arch", text, "--dataset", str(data), "--epochs", "1", "--seed", "0"]
    assert main(args + FAST) == 0
    out = tmp_path / f"train_{arch_name(base_architecture())}"
    result = json.loads((out / "result.json").read_text())
    assert result["classes"] == ["cat", "dog"] and result["run"] is None
    assert result["config"]["in_channels"] == 3 and result["config"]["num_classes"] == 2
    assert result["config"]["resolution"] == 10 and 0.0 <= result["accuracy"] <= 100.0


def test_not_an_image_folder_is_one_clear_line(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes(b"")
    text = get_space("mnas").to_string(base_architecture())
    assert main(["train", "--arch", text, "--dataset", str(flat), *FAST]) == 2
    line = error_line(capsys)
    assert line.startswith("fnas train: error:") and "is not an ImageFolder" in line
    assert "<class name>" in line
    assert main(["train", "--arch", text, "--dataset", str(tmp_path / "nothing/here")]) == 2
    assert "does not exist" in error_line(capsys)
    broken = make_image_folder(tmp_path / "broken", per_class=2)
    (broken / "cat" / "bad.png").write_bytes(b"not a png")
    assert main(["train", "--arch", text, "--dataset", str(broken), *FAST]) == 2
    assert "cannot read dataset" in error_line(capsys)


def test_bad_input_is_a_clear_error(run_dir, tmp_path, capsys, monkeypatch):
    out = ["--out", str(tmp_path / "o")]
    assert main(["train", str(run_dir), "--device", "tpu", *out]) == 2
    assert "device must be one of" in error_line(capsys)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", str(run_dir), "--device", "cuda", *out]) == 2
    assert "needs CUDA" in error_line(capsys)
    checks = (("--epochs", "0"), ("--epochs", "-3"), ("--rank", "0"), ("--learning-rate", "0"))
    for flag, value in checks:
        assert main(["train", str(run_dir), flag, value, *out]) == 2
        assert flag in error_line(capsys)
    assert main(["train", str(run_dir), "--lr", "0", *out]) == 2  # a second spelling
    assert "--learning-rate" in error_line(capsys)
    assert main(["train", str(run_dir), "--rank", "9", *out]) == 2
    assert "--rank 9" in error_line(capsys)
    assert main(["train"]) == 2
    assert "--arch and --dataset" in error_line(capsys)
    assert main(["train", str(tmp_path)]) == 2
    assert "not a search run folder" in error_line(capsys)
    assert main(["train", str(run_dir), "--arch", "nonsense", *out]) == 2
    assert "not an architecture" in error_line(capsys)
    assert main(["train", str(run_dir), "--dataset", "imagenet", *out]) == 2
    assert "unknown dataset" in error_line(capsys)
    assert not (tmp_path / "o").exists()  # nothing written for bad input


def write_fake_cifar10(root: Path, n_train: int = 100, n_test: int = 20) -> None:
    """A tiny CIFAR-10 folder in the python-pickle layout torchvision downloads."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(n: int, offset: int) -> dict:
        labels = [(i + offset) % 10 for i in range(n)]
        data = np.stack([rng.integers(0, 40, 3072) + 20 * y for y in labels]).astype(np.uint8)
        return {"data": data, "labels": labels}

    for i in range(1, 6):
        with open(base / f"data_batch_{i}", "wb") as fh:
            pickle.dump(batch(n_train // 5, i), fh)
    with open(base / "test_batch", "wb") as fh:
        pickle.dump(batch(n_test, 0), fh)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)


def test_official_test_split_is_reported(tmp_path):
    root = tmp_path / "data"
    write_fake_cifar10(root)
    train = load_dataset("cifar10", root=root, seed=0, resolution=16)
    x, y = load_test_split("cifar10", train, root=root)
    assert x.shape == (20, 3, 16, 16) and y.tolist() == [i % 10 for i in range(20)]
    # resized like the training images and normalised with the training statistics
    with open(root / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        raw = torch.from_numpy(pickle.load(fh)["data"]).view(-1, 3, 32, 32).float()
    resized = torch.nn.functional.interpolate(raw, size=(16, 16), mode="bilinear", antialias=True)
    mean, std = torch.tensor(train.mean).view(1, 3, 1, 1), torch.tensor(train.std).view(1, 3, 1, 1)
    assert torch.allclose(x, (resized - mean) / std, atol=1e-4)
    subset = load_dataset("cifar10", root=root, classes=[3, 1], max_val=None)
    xs, ys = load_test_split("cifar10", subset, root=root)
    assert ys.tolist() == [1, 0] * 2 and xs.shape[0] == 4  # classes 3 -> 0, 1 -> 1
    with pytest.raises(ValueError, match="no official test split"):
        load_test_split("digits", train)

    text = get_space("mnas").to_string(base_architecture())
    out = tmp_path / "out"
    args = ["train", "--arch", text, "--dataset", "cifar10", "--data-root", str(root)]
    assert main(args + ["--epochs", "1", "--out", str(out), *FAST]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["test_accuracy"] is not None and 0.0 <= result["test_accuracy"] <= 100.0
    assert result["config"]["resolution"] == 32 and result["config"]["max_stride"] == 16


def test_a_training_spec_that_says_lr_matches_learning_rate():
    from fnas_env.full_training import _spec_differences

    new = {"arch": "a", "train_config": {"epochs": 3, "learning_rate": 0.1}}
    old = {"arch": "a", "train_config": {"epochs": 3, "lr": 0.1}}
    assert _spec_differences(old, new) == []
    assert _spec_differences({**old, "train_config": {"epochs": 3, "lr": 0.2}}, new)
