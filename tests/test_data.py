"""Proxy datasets: built-in digits, files the test writes (ImageFolder, CIFAR, MNIST)."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from fnas_env.training.data import DatasetNotFound, ImageDataset, load_dataset


def test_digits_default_split_shapes_and_normalisation():
    d = load_dataset("digits")
    assert isinstance(d, ImageDataset)
    assert d.num_train + d.num_val == 1797
    assert d.num_val == pytest.approx(0.2 * 1797, abs=1)
    assert d.x_train.shape[1:] == (1, 8, 8) and d.x_train.dtype == torch.float32
    assert d.num_classes == 10 and d.in_channels == 1 and d.resolution == 8
    assert d.x_train.mean().abs() < 1e-4 and d.x_train.std() == pytest.approx(1.0, abs=1e-3)
    assert set(d.y_train.tolist()) == set(range(10)) == set(d.y_val.tolist())
    # stratified: every class's share of validation within one image of its share overall
    full = np.bincount(np.concatenate([d.y_train.numpy(), d.y_val.numpy()]))
    np.testing.assert_allclose(np.bincount(d.y_val.numpy()), full * d.num_val / 1797, atol=1)


def test_digits_split_is_fixed_per_seed_and_changes_with_it():
    a, b, c = load_dataset(seed=3), load_dataset(seed=3), load_dataset(seed=4)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_val, c.x_val)


def test_class_subset_is_remapped_and_caps_apply():
    d = load_dataset("digits", classes=[7, 2, 5], max_train=60, max_val=30, resolution=16)
    assert d.num_classes == 3 and d.class_names == ("7", "2", "5")
    assert d.num_train == 60 and d.num_val == 30
    assert set(d.y_train.tolist()) == {0, 1, 2}
    assert np.bincount(d.y_train.numpy()).tolist() == [20, 20, 20]
    assert d.x_train.shape[1:] == (1, 16, 16) and d.resolution == 16
    # remapped label 0 holds all the sevens, label 1 all the twos
    from sklearn.datasets import load_digits

    target = load_digits().target
    pair = load_dataset("digits", classes=[7, 2])
    counts = np.bincount(np.concatenate([pair.y_train.numpy(), pair.y_val.numpy()]))
    assert counts.tolist() == [(target == 7).sum(), (target == 2).sum()]


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet-21k")
    with pytest.raises(ValueError, match="out of range"):
        load_dataset("digits", classes=[0, 12])
    with pytest.raises(ValueError, match="at least 2 distinct"):
        load_dataset("digits", classes=[1, 1])
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("digits", val_fraction=1.5)


def _write_image_folder(root, n_per_class=6, size=(10, 12)):
    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog", "emu"]):
        (root / name).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = np.full((*size[::-1], 3), 40 * c, dtype=np.uint8)
            pixels += rng.integers(0, 20, pixels.shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_image_folder_tree_of_pngs(tmp_path):
    _write_image_folder(tmp_path / "tiny")
    d = load_dataset(tmp_path / "tiny", resolution=8, seed=1)
    assert d.class_names == ("cat", "dog", "emu") and d.num_classes == 3
    assert d.num_train + d.num_val == 18
    assert d.x_train.shape[1:] == (3, 8, 8) and d.in_channels == 3
    assert set(d.y_val.tolist()) == {0, 1, 2}
    sub = load_dataset(str(tmp_path / "tiny"), classes=["emu", "cat"], resolution=8)
    assert sub.class_names == ("emu", "cat") and sub.num_train + sub.num_val == 12
    with pytest.raises(DatasetNotFound, match="does not exist"):
        load_dataset(tmp_path / "missing")


def _write_cifar10(root, n_per_batch=20):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        labels = [(j + i) % 10 for j in range(n_per_batch)]
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        with open(base / f"data_batch_{i}", "wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh)
    names = [f"class{k}" for k in range(10)]
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": names}, fh)


def test_cifar10_batches_read_offline(tmp_path):
    _write_cifar10(tmp_path)
    d = load_dataset("cifar10", root=tmp_path, download=False, val_fraction=0.2)
    assert d.num_train + d.num_val == 100
    assert d.x_train.shape[1:] == (3, 32, 32) and d.num_classes == 10
    assert d.class_names[3] == "class3"
    small = load_dataset("cifar10", root=tmp_path, resolution=16, classes=range(4))
    assert small.x_val.shape[1:] == (3, 16, 16) and small.num_classes == 4


def test_missing_torchvision_dataset_names_root_and_flag(tmp_path):
    for name in ("cifar10", "cifar100", "mnist", "fashion_mnist"):
        with pytest.raises(DatasetNotFound) as err:
            load_dataset(name, root=tmp_path / "empty")
        assert str(tmp_path / "empty") in str(err.value)
        assert "download=True" in str(err.value)


def test_mnist_idx_files_read_offline(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = 30
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 3).astype(np.uint8)
    for prefix, n_items in (("train", n), ("t10k", 5)):
        img_head = struct.pack(">IIII", 0x803, n_items, 28, 28)
        lab_head = struct.pack(">II", 0x801, n_items)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(img_head + images[:n_items].tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(lab_head + labels[:n_items].tobytes())
    d = load_dataset("mnist", root=tmp_path, classes=[0, 1, 2])
    assert d.num_train + d.num_val == n and d.x_train.shape[1:] == (1, 28, 28)
