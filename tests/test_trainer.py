"""ProxyTrainer on tiny data: accuracy range, learning, seed determinism, divergence."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fnas_env.training import DEVICES, ProxyTrainer, TrainConfig, load_dataset, resolve_device


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
    x_train, _, x_val, _ = trainer._tensors(digits)
    assert x_train.shape[-1] == x_val.shape[-1] == 12
    assert trainer._tensors(digits)[0] is x_train  # resized once, kept for the next run


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
        ({"amp_dtype": "float64"}, "amp_dtype"),
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


def test_auto_device_is_cpu_without_cuda_and_cpu_trains_in_float32(digits, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("CPU") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    trainer = ProxyTrainer(TrainConfig(epochs=1, batch_size=64, num_threads=1), device="auto")
    assert trainer.device == torch.device("cpu") and trainer.amp is False
    seen = []
    model = small_cnn()
    model[-1].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    trainer.train(model, digits)
    assert seen and set(seen) == {torch.float32}  # no autocast on the CPU


def test_auto_device_matches_torch_here():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected == resolve_device().type


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:x", "cpu:0", "", 3])
def test_unknown_device_names_the_accepted_ones(device):
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda', 'cuda:N'"):
        resolve_device(device)
    assert DEVICES == ("auto", "cpu", "cuda", "cuda:N")


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0", "CUDA:1"):
        with pytest.raises(ValueError, match="needs CUDA.*is_available\\(\\) is False"):
            resolve_device(device)
    with pytest.raises(ValueError, match="needs CUDA"):
        ProxyTrainer(device="cuda")


def test_cuda_index_beyond_the_machine_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match="2 CUDA device"):
        resolve_device("cuda:2")


def test_amp_on_cpu_is_refused():
    with pytest.raises(ValueError, match="amp=True needs a CUDA device"):
        ProxyTrainer(TrainConfig(amp=True), device="cpu")
    assert ProxyTrainer(TrainConfig(amp=False), device="cpu").amp is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_cuda_training_with_mixed_precision_learns(digits, amp_dtype):
    trainer = ProxyTrainer(
        TrainConfig(epochs=3, batch_size=32, lr=0.1, amp_dtype=amp_dtype), device="cuda"
    )
    assert trainer.amp and trainer.amp_dtype == getattr(torch, amp_dtype)
    result = trainer.train(small_cnn(), digits)
    assert not result.diverged and result.accuracy > 50.0
