"""Proxy training: in-memory datasets and a tight, deterministic training loop."""

from __future__ import annotations

from fnas_env.training.data import DATASETS, DatasetNotFound, ImageDataset, load_dataset
from fnas_env.training.trainer import (
    DEVICES,
    ProxyTrainer,
    TrainConfig,
    TrainResult,
    resolve_device,
)

__all__ = [
    "DATASETS",
    "DatasetNotFound",
    "ImageDataset",
    "load_dataset",
    "ProxyTrainer",
    "TrainConfig",
    "TrainResult",
    "DEVICES",
    "resolve_device",
]
