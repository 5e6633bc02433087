"""ProxyTrainer on tiny data: accuracy range, learning, seed determinism, divergence."""

from __future__ import annotations

import math
from pathlib import Path

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
    result = ProxyTrainer(
        TrainConfig(epochs=3, batch_size=32, learning_rate=0.1, num_threads=1)
    ).train(small_cnn(), digits)
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
    cfg = TrainConfig(
        epochs=1, optimizer="adam", learning_rate=3e-3, resolution=12, schedule="constant"
    )
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
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"schedule": "step"}, "schedule"),
        ({"max_iterations": 0}, "max_iterations"),
        ({"init_learning_rate_scale": 0.0}, "init_learning_rate_scale"),
        ({"init_learning_rate_scale": float("inf")}, "init_learning_rate_scale"),
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
        learning_rate=0.1,
        momentum=0.0,
        weight_decay=0.0,
        schedule="constant",
        num_threads=1,
        init_learning_rate_scale=scale,
    )
    ProxyTrainer(cfg).train(model, digits, init_fn)
    return model[-1].weight.detach() - before


def test_init_learning_rate_scale_applies_only_when_init_fn_loaded_something(digits):
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
        TrainConfig(epochs=3, batch_size=32, learning_rate=0.1, amp_dtype=amp_dtype), device="cuda"
    )
    assert trainer.amp and trainer.amp_dtype == getattr(torch, amp_dtype)
    result = trainer.train(small_cnn(), digits)
    assert not result.diverged and result.accuracy > 50.0


# ---- checkpoints and per-epoch callbacks --------------------------------------------


def dropout_cnn(seed: int = 0) -> nn.Module:
    """small_cnn with dropout: resuming must restore the torch RNG as well."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


class _Stop(Exception):
    pass


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_checkpoint_resume_equals_uninterrupted(digits, tmp_path):
    from fnas_env.training import read_checkpoint

    cfg = TrainConfig(epochs=3, batch_size=32, seed=2, num_threads=1)
    plain_model = dropout_cnn()
    plain = ProxyTrainer(cfg).train(plain_model, digits)

    path = tmp_path / "ckpt.pt"

    def stop_after_first(stats):
        if stats.epoch == 1:
            raise _Stop  # the process dies after the first epoch's checkpoint

    with pytest.raises(_Stop):
        ProxyTrainer(cfg).train(dropout_cnn(), digits, checkpoint=path, on_epoch=stop_after_first)
    saved = read_checkpoint(path)
    assert saved["state"]["epoch"] == 1 and saved["state"]["step"] == 320 // 32
    resumed_model = dropout_cnn(seed=9)  # other initial weights: the checkpoint's win
    resumed = ProxyTrainer(cfg).train(resumed_model, digits, checkpoint=path)
    assert resumed.resumed_epoch == 1 and len(resumed.history) == 3
    assert (resumed.accuracy, resumed.final_loss, resumed.iterations) == (
        plain.accuracy,
        plain.final_loss,
        plain.iterations,
    )
    assert resumed.epochs == pytest.approx(plain.epochs)
    assert _same_weights(resumed_model, plain_model)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary files left


def test_callbacks_report_epochs_and_leave_training_unchanged(digits):
    cfg = TrainConfig(epochs=2, batch_size=32, num_threads=1)
    plain_model, hooked_model = small_cnn(), small_cnn()
    plain = ProxyTrainer(cfg).train(plain_model, digits)
    epochs, steps = [], []
    trainer = ProxyTrainer(cfg)
    hooked = trainer.train(
        hooked_model,
        digits,
        on_epoch=epochs.append,
        on_step=lambda step, total: steps.append((step, total)),
        epoch_eval=True,
    )
    assert (hooked.accuracy, hooked.final_loss) == (plain.accuracy, plain.final_loss)
    assert _same_weights(hooked_model, plain_model)
    assert plain.history == () and hooked.history == tuple(epochs)
    assert [e.epoch for e in epochs] == [1, 2] and {e.epochs for e in epochs} == {2}
    assert [e.step for e in epochs] == [10, 20] and epochs[-1].loss == hooked.final_loss
    assert all(0.0 <= e.accuracy <= 100.0 and e.seconds > 0 for e in epochs)
    assert steps == [(s, 20) for s in range(1, 21)]
    # evaluate() on the validation split gives the reported accuracy
    assert trainer.evaluate(hooked_model, digits.x_val, digits.y_val) == hooked.accuracy


def test_checkpoint_of_another_training_or_file_is_refused(digits, tmp_path):
    from fnas_env.training import read_checkpoint

    path = tmp_path / "ckpt.pt"
    ProxyTrainer(TrainConfig(epochs=1, batch_size=32)).train(small_cnn(), digits, checkpoint=path)
    with pytest.raises(ValueError, match="another training.*epochs: 1 there, 2 now"):
        ProxyTrainer(TrainConfig(epochs=2, batch_size=32)).train(
            small_cnn(), digits, checkpoint=path
        )
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        read_checkpoint(junk)
    torch.save({"weights": torch.zeros(2)}, junk)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        read_checkpoint(junk)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_failed_checkpoint_write_keeps_the_previous_one(digits, tmp_path, monkeypatch):
    from fnas_env.training import read_checkpoint
    from fnas_env.training import trainer as trainer_module

    path = tmp_path / "ckpt.pt"
    cfg = TrainConfig(epochs=2, batch_size=32)
    real_save = torch.save
    calls = []

    def save_fails_second_time(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            Path(f).write_bytes(b"half a checkpoint")  # f: the temporary file's path
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(trainer_module.torch, "save", save_fails_second_time)
    with pytest.raises(OSError, match="disk full"):
        ProxyTrainer(cfg).train(small_cnn(), digits, checkpoint=path)
    assert read_checkpoint(path)["state"]["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
