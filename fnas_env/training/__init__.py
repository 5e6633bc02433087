"""Proxy training: in-memory datasets and a tight, deterministic training loop."""

from __future__ import annotations

from fnas_env.training.data import (
    DATASETS,
    TEST_SPLITS,
    DatasetNotFound,
    ImageDataset,
    has_test_split,
    load_dataset,
    load_test_split,
)
from fnas_env.training.trainer import (
    CHECKPOINT_FORMAT,
    DEVICES,
    EpochStats,
    ProxyTrainer,
    TrainConfig,
    TrainResult,
    read_checkpoint,
    resolve_device,
)

__all__ = [
    "DATASETS",
    "TEST_SPLITS",
    "DatasetNotFound",
    "ImageDataset",
    "has_test_split",
    "load_dataset",
    "load_test_split",
    "ProxyTrainer",
    "TrainConfig",
    "TrainResult",
    "EpochStats",
    "read_checkpoint",
    "CHECKPOINT_FORMAT",
    "DEVICES",
    "resolve_device",
]
