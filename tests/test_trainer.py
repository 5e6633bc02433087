"""ProxyTrainer on tiny data: accuracy range, learning, seed determinism, divergence."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fnas_env.training import ProxyTrainer, TrainConfig, load_dataset


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", max_train=320, max_val=200)


def small_cnn(seed: int = 0, in_channels: int = 1, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, classes),
    )


class NaNModel(nn.Module):
    """Produces NaN logits: training must report divergence, not raise."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")


def test_training_learns_and_reports(digits):
    result = ProxyTrainer(TrainConfig(epochs=3, batch_size=32, lr=0.1, num_threads=1)).train(
        small_cnn(), digits
    )
    assert 0.0 <= result.accuracy <= 100.0
    assert result.accuracy > 50.0  # chance is 10%
    assert not result.diverged and math.isfinite(result.final_loss)
    assert result.iterations == 3 * (320 // 32)
    assert result.cost >= result.train_seconds > 0
    assert result.epochs == pytest.approx(3 * (320 // 32) * 32 / 320)


def test_same_seed_same_result_other_seed_differs(digits):
    cfg = TrainConfig(epochs=2, batch_size=32, seed=5, num_threads=1)
    a = ProxyTrainer(cfg).train(small_cnn(), digits)
    b = ProxyTrainer(cfg).train(small_cnn(), digits)
    assert (a.accuracy, a.final_loss, a.iterations) == (b.accuracy, b.final_loss, b.iterations)
    c = ProxyTrainer(TrainConfig(epochs=2, batch_size=32, seed=6, num_threads=1)).train(
        small_cnn(), digits
    )
    assert c.final_loss != a.final_loss


def test_max_iterations_caps_steps_and_init_fn_runs_first(digits):
    seen = {}

    def init_fn(model):
        seen["weight"] = next(model.parameters()).detach().clone()
        return "pool-stats"

    model = small_cnn()
    before = next(model.parameters()).detach().clone()
    result = ProxyTrainer(TrainConfig(epochs=5, max_iterations=7)).train(model, digits, init_fn)
    assert result.iterations == 7 and result.init == "pool-stats"
    assert torch.equal(seen["weight"], before)


def test_nan_model_diverges_without_exception(digits):
    result = ProxyTrainer(TrainConfig(epochs=2, batch_size=64)).train(NaNModel(), digits)
    assert result.diverged and result.accuracy == 0.0 and math.isnan(result.final_loss)
    assert result.iterations <= TrainConfig().check_every  # stopped at the first check


def test_adam_and_resolution_resize(digits):
    cfg = TrainConfig(epochs=1, optimizer="adam", lr=3e-3, resolution=12, schedule="constant")
    trainer = ProxyTrainer(cfg)
    result = trainer.train(small_cnn(), digits)
    assert 0.0 <= result.accuracy <= 100.0 and not result.diverged
    assert trainer._resized is not None and trainer._resized[2].shape[-1] == 12


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"schedule": "step"}, "schedule"),
        ({"max_iterations": 0}, "max_iterations"),
        ({"init_lr_scale": 0.0}, "init_lr_scale"),
        ({"init_lr_scale": float("inf")}, "init_lr_scale"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def _first_step_update(digits, scale: float, init_fn=None) -> torch.Tensor:
    """Change of the classifier weight after one plain SGD step (no momentum, no decay)."""
    model = small_cnn()
    before = model[-1].weight.detach().clone()
    cfg = TrainConfig(
        epochs=1,
        max_iterations=1,
        batch_size=32,
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
        schedule="constant",
        num_threads=1,
        init_lr_scale=scale,
    )
    ProxyTrainer(cfg).train(model, digits, init_fn)
    return model[-1].weight.detach() - before


def test_init_lr_scale_applies_only_when_init_fn_loaded_something(digits):
    from fnas_env.knowledge_pool import InitStats

    loaded = InitStats(hit_ratio=1.0, exact_ratio=0.0, lookup_ms=0.0, blocks=1, hits=1)
    empty = InitStats(hit_ratio=0.0, exact_ratio=0.0, lookup_ms=0.0, blocks=1, hits=0)
    full = _first_step_update(digits, 1.0)
    assert full.abs().sum() > 0
    # no init_fn, or an init_fn that loaded nothing: the from-scratch lr
    assert torch.allclose(_first_step_update(digits, 0.25), full)
    assert torch.allclose(_first_step_update(digits, 0.25, lambda m: empty), full)
    # initialised by the pool (or by an init_fn that reports nothing): lr * 0.25
    scaled = _first_step_update(digits, 0.25, lambda m: loaded)
    assert torch.allclose(scaled, 0.25 * full, atol=1e-7)
    assert torch.allclose(_first_step_update(digits, 0.25, lambda m: None), 0.25 * full, atol=1e-7)
