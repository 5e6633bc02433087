"""Proxy-task datasets, held as normalised tensors in memory.

A proxy task is small: a search trains thousands of candidate networks on it,
so the whole split lives in memory as one float32 ``(N, C, H, W)`` tensor and a
batch is a slice of it (no ``DataLoader`` workers, no per-image decoding).

Sources (:func:`load_dataset`):

- ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1,797 images,
  10 classes, grayscale). Ships with scikit-learn, so it works offline on a
  fresh machine; the default proxy task.
- ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"cifar100"``: the
  torchvision datasets under ``root`` (their training split). Nothing is
  downloaded unless ``download=True``; missing files raise
  :class:`DatasetNotFound` naming the folder and the flag.
- a directory path: an ``ImageFolder`` tree (``root/class_x/*.png``), decoded
  once.

Validation comes from the training split (stratified, fixed per ``seed``): the
search never looks at a test set, as in MnasNet's held-out proxy set. The official
test split of the torchvision datasets is read only on request, by
:func:`load_test_split` (for a final evaluation after full training).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

__all__ = [
    "ImageDataset",
    "DatasetNotFound",
    "load_dataset",
    "load_test_split",
    "has_test_split",
    "DATASETS",
    "TEST_SPLITS",
]

#: Named datasets (anything else is taken as an ImageFolder path).
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")
#: Named datasets with an official test split (:func:`load_test_split`).
TEST_SPLITS = ("mnist", "fashion_mnist", "cifar10", "cifar100")


class DatasetNotFound(FileNotFoundError):
    """The files of a dataset are not under the given root."""


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A train/validation split held as tensors.

    ``x_*`` are float32 ``(N, C, H, W)``, normalised per channel with the
    training split's mean and std; ``y_*`` are int64 labels in
    ``0..num_classes-1``. ``class_names[i]`` names label ``i`` (after a class
    subset was remapped). ``mean`` and ``std`` are the per-channel statistics the
    images were normalised with (in the source's pixel scale: 0..255, or 0..16 for
    digits), ``None`` for a dataset built by hand.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    in_channels: int
    resolution: int
    class_names: tuple[str, ...]
    seed: int = 0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def num_train(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def num_val(self) -> int:
        return int(self.y_val.shape[0])

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, train={self.num_train}, val={self.num_val}, "
            f"classes={self.num_classes}, channels={self.in_channels}, "
            f"resolution={self.resolution})"
        )


def load_dataset(
    name: str | os.PathLike = "digits",
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    resolution: int | None = None,
    classes: Sequence[int | str] | None = None,
    max_train: int | None = None,
    max_val: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> ImageDataset:
    """Load a proxy dataset into memory and split it into train and validation.

    Args:
        name: one of ``DATASETS`` or the path of an ImageFolder directory
            (default ``"digits"``).
        root: folder that holds (or receives) a torchvision dataset's files
            (default ``~/.cache/fnas/data``). Unused by ``digits`` and paths.
        download: let torchvision download a missing dataset into ``root``
            (default False: nothing is fetched without asking).
        resolution: square side length the images are resized to (bilinear,
            antialiased); default None keeps the native size (8 for digits, 28
            for MNIST, 32 for CIFAR; an ImageFolder's first image).
        classes: keep only these labels (indices or class names), remapped to
            ``0..k-1`` in the given order, e.g. ``range(5)`` for digits 0-4
            (used to move a knowledge pool between tasks). Default: all.
        max_train: cap on training images (stratified subsample; default no cap).
        max_val: cap on validation images (default no cap).
        val_fraction: share of the training split held out for validation
            (default 0.2).
        seed: seed of the split and of the caps (default 0); the same seed gives
            the same split.

    Raises:
        DatasetNotFound: a named dataset's files are missing under ``root`` and
            ``download`` is False, or a path does not exist.
        ValueError: an unknown name, bad class subset or bad option.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    for label, cap in (("max_train", max_train), ("max_val", max_val)):
        if cap is not None and cap < 1:
            raise ValueError(f"{label} must be a positive int or None, got {cap}")
    if resolution is not None and (int(resolution) != resolution or resolution < 1):
        raise ValueError(f"resolution must be a positive int or None, got {resolution}")

    key = str(name).lower().replace("-", "_") if not isinstance(name, os.PathLike) else ""
    if key in DATASETS:
        root_path = Path(root).expanduser() if root is not None else _default_root()
        images, labels, class_names = _LOADERS[key](root_path, download)
        label = key
    elif isinstance(name, os.PathLike) or os.sep in str(name) or Path(str(name)).is_dir():
        images, labels, class_names = _load_image_folder(Path(name), resolution)
        label = str(name)
    else:
        raise ValueError(
            f"unknown dataset {name!r}: use one of {list(DATASETS)} or the path of an "
            "ImageFolder directory (root/<class>/<image>.png)"
        )

    images, labels, class_names = _select_classes(images, labels, class_names, classes)
    train_idx, val_idx = _split(labels, val_fraction, max_train, max_val, seed)
    x = torch.from_numpy(np.ascontiguousarray(images))
    x_train, x_val = x[train_idx].float(), x[val_idx].float()
    if resolution is not None and x_train.shape[-1] != resolution:
        x_train, x_val = _resize(x_train, resolution), _resize(x_val, resolution)
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(
        name=label,
        x_train=((x_train - mean) / std).contiguous(),
        y_train=y[train_idx].contiguous(),
        x_val=((x_val - mean) / std).contiguous(),
        y_val=y[val_idx].contiguous(),
        num_classes=len(class_names),
        in_channels=int(x_train.shape[1]),
        resolution=int(x_train.shape[-1]),
        class_names=tuple(class_names),
        seed=seed,
        mean=tuple(float(v) for v in mean.flatten()),
        std=tuple(float(v) for v in std.flatten()),
    )


def has_test_split(name: str | os.PathLike) -> bool:
    """Whether :func:`load_test_split` can read ``name``'s official test split."""
    if isinstance(name, os.PathLike):
        return False
    return str(name).lower().replace("-", "_") in TEST_SPLITS


def load_test_split(
    name: str,
    like: ImageDataset,
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official test split of a torchvision dataset, prepared like ``like``.

    The images are resized to ``like.resolution`` and normalised with ``like``'s
    training statistics; only ``like``'s classes are kept, remapped to its labels.
    The search never reads it: it is for the final evaluation of a fully trained
    network.

    Args:
        name: one of :data:`TEST_SPLITS`.
        like: the training data (from :func:`load_dataset` on the same dataset).
        root: folder of the dataset's files (default ``~/.cache/fnas/data``).
        download: let torchvision download missing files (default False).

    Returns:
        ``(x, y)``: float32 ``(N, C, H, W)`` images and int64 labels.

    Raises:
        ValueError: ``name`` has no official test split (digits, ImageFolder
            paths), or ``like`` carries no normalisation statistics.
        DatasetNotFound: the test files are missing and ``download`` is False.
    """
    key = str(name).lower().replace("-", "_")
    if key not in TEST_SPLITS:
        raise ValueError(
            f"dataset {str(name)!r} has no official test split (those of {list(TEST_SPLITS)} do)"
        )
    if like.mean is None or like.std is None:
        raise ValueError("like must come from load_dataset (it has no mean/std)")
    root_path = Path(root).expanduser() if root is not None else _default_root()
    images, labels, class_names = _LOADERS[key](root_path, download, train=False)
    images, labels, _ = _select_classes(images, labels, class_names, list(like.class_names))
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    if x.shape[-1] != like.resolution:
        x = _resize(x, like.resolution)
    mean = torch.tensor(like.mean).view(1, -1, 1, 1)
    std = torch.tensor(like.std).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous(), torch.from_numpy(labels.astype(np.int64))


# ---- splitting and class subsets -------------------------------------------------


def _select_classes(images, labels, class_names, classes):
    if classes is None:
        return images, labels, list(class_names)
    wanted: list[int] = []
    for c in classes:
        if isinstance(c, str) and c in class_names:
            wanted.append(list(class_names).index(c))
        elif isinstance(c, str) and not c.isdigit():
            raise ValueError(f"unknown class {c!r}; the dataset has {list(class_names)}")
        else:
            i = int(c)
            if not 0 <= i < len(class_names):
                raise ValueError(
                    f"class index {i} out of range: the dataset has labels "
                    f"0..{len(class_names) - 1} ({list(class_names)})"
                )
            wanted.append(i)
    if len(set(wanted)) != len(wanted) or len(wanted) < 2:
        raise ValueError(f"classes must name at least 2 distinct labels, got {list(classes)}")
    remap = np.full(len(class_names), -1, dtype=np.int64)
    remap[wanted] = np.arange(len(wanted))
    keep = remap[labels] >= 0
    return images[keep], remap[labels[keep]], [class_names[i] for i in wanted]


def _split(labels, val_fraction, max_train, max_val, seed):
    index = np.arange(len(labels))
    train_idx, val_idx = train_test_split(
        index, test_size=val_fraction, stratify=labels, random_state=seed
    )
    train_idx = _cap(train_idx, labels, max_train, seed)
    val_idx = _cap(val_idx, labels, max_val, seed + 1)
    return torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(val_idx))


def _cap(idx, labels, cap, seed):
    if cap is None or cap >= len(idx):
        return idx
    strata = labels[idx]
    stratify = strata if cap >= len(np.unique(strata)) else None
    kept, _ = train_test_split(idx, train_size=cap, stratify=stratify, random_state=seed)
    return kept


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


# ---- sources -------------------------------------------------------------------------


def _default_root() -> Path:
    return Path(os.environ.get("FNAS_DATA_DIR", "~/.cache/fnas/data")).expanduser()


def _missing(name: str, root: Path, looked_for: Path) -> DatasetNotFound:
    return DatasetNotFound(
        f"dataset {name!r} not found under root {str(root)!r} (looked for {str(looked_for)!r}). "
        f"Pass download=True to fetch it into that root with torchvision, or root=... "
        f"pointing at the folder that holds it."
    )


def _load_digits(root: Path, download: bool, train: bool = True):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32)[:, None]  # (N, 1, 8, 8), values 0..16
    return images, bunch.target.astype(np.int64), [str(t) for t in bunch.target_names]


def _load_mnist_like(cls_name: str, key: str):
    def load(root: Path, download: bool, train: bool = True):
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        try:
            ds = cls(str(root), train=train, download=download)
        except RuntimeError as exc:
            if download:
                raise
            raise _missing(key, root, root / cls_name / "raw") from exc
        images = ds.data.numpy()[:, None].astype(np.uint8)
        return images, ds.targets.numpy().astype(np.int64), list(ds.classes)

    return load


def _load_cifar(key: str):
    folder, train_files, test_files, label_key, meta_file, names_key, tv_name = {
        "cifar10": (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            ["test_batch"],
            "labels",
            "batches.meta",
            "label_names",
            "CIFAR10",
        ),
        "cifar100": (
            "cifar-100-python",
            ["train"],
            ["test"],
            "fine_labels",
            "meta",
            "fine_label_names",
            "CIFAR100",
        ),
    }[key]

    def load(root: Path, download: bool, train: bool = True):
        files = train_files if train else test_files
        base = root / folder
        if not all((base / f).is_file() for f in files):
            if not download:
                raise _missing(key, root, base)
            import torchvision.datasets as tvd

            getattr(tvd, tv_name)(str(root), train=train, download=True)
        # Read the python-format batches directly: torchvision's class also
        # md5-checks every file of both splits on each load.
        data, labels = [], []
        for f in files:
            with open(base / f, "rb") as fh:
                batch = pickle.load(fh, encoding="latin1")
            data.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch[label_key])
        labels_arr = np.asarray(labels, dtype=np.int64)
        meta = base / meta_file
        if meta.is_file():
            with open(meta, "rb") as fh:
                names = list(pickle.load(fh, encoding="latin1")[names_key])
        else:
            names = [str(i) for i in range(int(labels_arr.max()) + 1)]
        return np.concatenate(data), labels_arr, names

    return load


def open_image_folder(path: str | os.PathLike) -> Any:
    """The torchvision ``ImageFolder`` at ``path`` (file list only, nothing decoded).

    Raises:
        DatasetNotFound: ``path`` is not a folder, has no class folders, or no images,
            with the layout that is expected.
    """
    from torchvision.datasets import ImageFolder

    path = Path(path)
    layout = "<dir>/<class name>/<image files>, e.g. flowers/rose/0001.jpg"
    if not path.is_dir():
        raise DatasetNotFound(
            f"ImageFolder directory {str(path)!r} does not exist; expected {layout}"
        )
    try:
        folder = ImageFolder(str(path))
    except FileNotFoundError as err:  # no class folders, or no image files in them
        raise DatasetNotFound(
            f"{str(path)!r} is not an ImageFolder ({err}); expected {layout}"
        ) from None
    if not folder.samples:
        raise DatasetNotFound(f"no images found under {str(path)!r}; expected {layout}")
    return folder


def _load_image_folder(path: Path, resolution: int | None):
    from PIL import Image

    folder = open_image_folder(path)
    images, size = [], None
    for file, _ in folder.samples:
        with Image.open(file) as im:
            im = im.convert("RGB")
            if size is None:
                size = resolution or min(im.size)
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            images.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
    labels = np.asarray(folder.targets, dtype=np.int64)
    return np.stack(images), labels, list(folder.classes)


_LOADERS = {
    "digits": _load_digits,
    "mnist": _load_mnist_like("MNIST", "mnist"),
    "fashion_mnist": _load_mnist_like("FashionMNIST", "fashion_mnist"),
    "cifar10": _load_cifar("cifar10"),
    "cifar100": _load_cifar("cifar100"),
}
