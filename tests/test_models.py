"""Model builder: forward shapes, the block contract, MAC/parameter counts, upstream parity."""

from __future__ import annotations

import json
import tarfile
from itertools import product

import numpy as np
import pytest
import torch
from torch import nn

from fnas_env.arch import Architecture
from fnas_env.models import (
    Block,
    BlockNet,
    NB201Net,
    ProxyModelConfig,
    build_model,
    count_macs_params,
)
from fnas_env.spaces import get_space
from fnas_env.spaces.mnas import CONV_OPS, SE_RATIOS, SKIP_OPS

SPACES = ("mnas", "anb", "macro", "nb201")
CONFIGS = {
    "digits": ProxyModelConfig.digits(),
    "tiny-rgb": ProxyModelConfig(
        width_mult=0.25, resolution=16, num_classes=5, head_channels=0, max_stride=8
    ),
    "odd-2ch": ProxyModelConfig(
        width_mult=0.5, resolution=11, num_classes=3, in_channels=2, dropout=0.1, nb201_cells=2
    ),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: with 2 threads on a loaded 2-core machine OpenMP waits dominate."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _forward(model: nn.Module, config: ProxyModelConfig, batch: int = 2) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.randn(config.input_shape(batch)))


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_random_architectures_build_and_run(space_name: str, config_name: str) -> None:
    config = CONFIGS[config_name]
    space = get_space(space_name)
    rng = np.random.default_rng(hash((space_name, config_name)) % 2**32)
    for _ in range(3):
        arch = space.sample(rng)
        y = _forward(build_model(arch, config), config)
        assert y.shape == (2, config.num_classes)
        assert torch.isfinite(y).all()


def test_extreme_architectures_run() -> None:
    config = ProxyModelConfig.digits()
    for name in SPACES:
        space = get_space(name)
        for c in (0, -1):
            choices = [c % n for n in space.num_choices]
            y = _forward(build_model(space.from_choices(choices), config), config)
            assert y.shape == (2, 10)
            assert torch.isfinite(y).all()


def test_in_channels_and_num_classes_knobs() -> None:
    config = ProxyModelConfig(in_channels=1, num_classes=10, resolution=8, width_mult=0.25)
    for name in SPACES:
        model = build_model(get_space(name).sample(np.random.default_rng(1)), config)
        first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        assert first_conv.in_channels == 1
        assert last_linear.out_features == 10
        assert _forward(model, config).shape == (2, 10)


def _head_input_hw(model: nn.Module, config: ProxyModelConfig) -> tuple[int, int]:
    seen: list[tuple[int, int]] = []
    model.head.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    _forward(model, config, batch=1)
    return seen[0]


@pytest.mark.parametrize(
    ("space_name", "native"), [("mnas", 32), ("anb", 32), ("macro", 8), ("nb201", 4)]
)
def test_max_stride_caps_downsampling(space_name: str, native: int) -> None:
    arch = get_space(space_name).sample(np.random.default_rng(2))
    full = ProxyModelConfig(resolution=64, width_mult=0.25, num_classes=4)
    assert _head_input_hw(build_model(arch, full), full) == (64 // native,) * 2
    capped = ProxyModelConfig(resolution=64, width_mult=0.25, num_classes=4, max_stride=2)
    assert _head_input_hw(build_model(arch, capped), capped) == (32, 32)
    digits = ProxyModelConfig.digits()
    expected = 8 // min(4, native)
    assert _head_input_hw(build_model(arch, digits), digits) == (expected, expected)


@pytest.mark.parametrize("space_name", ["mnas", "anb", "macro"])
def test_block_contract(space_name: str) -> None:
    space = get_space(space_name)
    config = ProxyModelConfig.digits()
    rng = np.random.default_rng(3)
    for _ in range(3):
        arch = space.sample(rng)
        model = build_model(arch, config)
        assert isinstance(model, BlockNet)
        assert isinstance(model.stem, nn.Module) and isinstance(model.head, nn.Module)
        assert isinstance(model.blocks, nn.ModuleList)
        assert len(model.blocks) == len(space.blocks)
        for block in model.blocks:
            assert isinstance(block, Block)
            assert isinstance(block.layers, nn.ModuleList) and len(block.layers) >= 1
        model.eval()
        x = torch.randn(config.input_shape(2))
        with torch.no_grad():
            h = model.stem(x)
            for block in model.blocks:
                h = block(h)
            torch.testing.assert_close(model.head(h), model(x))
        # every parameter belongs to the stem, a block or the head
        prefixes = ("stem.", "blocks.", "head.")
        assert all(k.startswith(prefixes) for k in model.state_dict())


def test_mnas_blocks_follow_block_config() -> None:
    space = get_space("mnas")
    arch = space.sample(np.random.default_rng(4))
    model = build_model(arch, ProxyModelConfig(resolution=32, num_classes=10))
    for b, block in enumerate(model.blocks):
        bc = space.block_config(arch, b)
        assert len(block.layers) == bc["layers"]
        convs = [m for m in block.layers[-1].modules() if isinstance(m, nn.Conv2d)]
        assert convs[-1].out_channels == bc["out_channels"]
        kernels = {m.kernel_size[0] for m in block.modules() if isinstance(m, nn.Conv2d)}
        assert bc["kernel"] in kernels
        has_se = any(type(m).__name__ == "SqueezeExcitation" for m in block.modules())
        assert has_se == (bc["se"] > 0)


def _layer_keys(layer: nn.Module) -> tuple[str, ...]:
    return tuple(sorted(layer.state_dict()))


def test_mnas_same_op_same_keys() -> None:
    """Every layer with the same (op, se, skip) has the same keys, wherever it sits."""
    space = get_space("mnas")
    config = ProxyModelConfig(width_mult=0.25, resolution=8, num_classes=10)
    rng = np.random.default_rng(5)
    keys_by_op: dict[tuple, set[tuple[str, ...]]] = {}
    for op, se, skip in product(range(len(CONV_OPS)), range(len(SE_RATIOS)), range(len(SKIP_OPS))):
        choices = []
        for _ in space.blocks:  # same op/se/skip everywhere, kernel/filters/layers random
            choices += [op, int(rng.integers(2)), se, skip, int(rng.integers(3)), 2]
        model = build_model(space.from_choices(choices), config)
        keys = {_layer_keys(layer) for block in model.blocks for layer in block.layers}
        assert len(keys) == 1, (CONV_OPS[op], SE_RATIOS[se], SKIP_OPS[skip], keys)
        keys_by_op[(op, se, skip)] = keys
    # keys tell ops apart where parameters differ: conv / dwconv / mb (mb3 and mb6
    # differ only in shapes), SE or not, pool (projection) or parameter-free skip
    distinct = {
        frozenset(k) for (op, se, skip), k in keys_by_op.items() if SKIP_OPS[skip] != "none"
    }
    assert len(distinct) == 3 * len(SE_RATIOS) * 2


def test_anb_same_op_same_keys() -> None:
    space = get_space("anb")
    config = ProxyModelConfig(width_mult=0.25, resolution=8, num_classes=10)
    rng = np.random.default_rng(6)
    for e, se in product(range(3), range(2)):
        choices = []
        for _ in space.blocks:
            choices += [e, int(rng.integers(2)), 1, se]
        model = build_model(space.from_choices(choices), config)
        keys = {_layer_keys(layer) for block in model.blocks for layer in block.layers}
        assert len(keys) == 1
        (only,) = keys
        assert any(k.startswith("se.") for k in only) == bool(se)
        assert any(k.startswith("expand.") for k in only) == (e != 0)


def test_macs_and_params_positive_and_grow_with_width() -> None:
    arch = get_space("mnas").sample(np.random.default_rng(7))
    small = ProxyModelConfig(width_mult=0.5, resolution=32, num_classes=10)
    wide = ProxyModelConfig(width_mult=1.0, resolution=32, num_classes=10)
    a = count_macs_params(build_model(arch, small), small)
    b = count_macs_params(build_model(arch, wide), wide)
    assert a.macs > 0 and a.params > 0
    assert b.macs > a.macs and b.params > a.params
    model = build_model(arch, small)
    model.train()
    count_macs_params(model, small)
    assert model.training  # mode restored


@pytest.mark.parametrize("space_name", ["mnas", "anb", "macro", "nb201"])
def test_hook_macs_equal_torch_flop_counter(space_name) -> None:
    """The forward-hook count equals FlopCounterMode's FLOPs / 2 (convs and matmuls only)."""
    from torch.utils.flop_counter import FlopCounterMode

    config = ProxyModelConfig(width_mult=0.5, resolution=32, num_classes=10)
    rng = np.random.default_rng(11)
    for _ in range(3):
        model = build_model(get_space(space_name).sample(rng), config).eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(config.input_shape(1)))
        assert count_macs_params(model, config).macs == counter.get_total_flops() // 2


def test_macs_grow_with_resolution_params_do_not() -> None:
    arch = get_space("nb201").from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"
    )
    c16 = ProxyModelConfig(resolution=16, num_classes=10)
    c32 = ProxyModelConfig(resolution=32, num_classes=10)
    a = count_macs_params(build_model(arch, c16), c16)
    b = count_macs_params(build_model(arch, c32), c32)
    assert b.params == a.params
    assert b.macs > 3 * a.macs


def test_macro_matches_upstream_params_and_flops(benchmark_dir) -> None:
    """At upstream's setting (32x32, 10 classes) parameters and MACs equal NAS-Bench-Macro's."""
    table = json.loads(
        (benchmark_dir / "nas-bench-macro" / "nas-bench-macro_cifar10.json").read_text()
    )
    space = get_space("macro")
    config = ProxyModelConfig(resolution=32, num_classes=10)
    rng = np.random.default_rng(8)
    keys = ["00000000", "22222222"] + [space.to_string(space.sample(rng)) for _ in range(4)]
    for key in keys:
        cost = count_macs_params(build_model(space.from_string(key), config), config)
        assert cost.params == table[key]["params"], key
        assert cost.macs == table[key]["flops"], key


def test_anb_matches_upstream_params(benchmark_dir) -> None:
    """At 224x224 and 1000 classes parameter counts equal Accel-NASBench's ``model_info``.

    (Upstream's MACs also count element-wise work and are about 10% higher.)
    """
    space = get_space("anb")
    config = ProxyModelConfig()
    records = []
    with tarfile.open(benchmark_dir / "accel-nasbench" / "anb_dataset_jsons.tar.gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                record = json.load(tar.extractfile(member))
                if any(record["architecture"][f"block{i}_se"] for i in range(7)) or not records:
                    records.append(record)
            if len(records) >= 3:
                break
    assert len(records) == 3
    for record in records:
        arch = space.from_upstream(record["architecture"])
        cost = count_macs_params(build_model(arch, config), config)
        assert cost.params / 1e6 == pytest.approx(record["model_info"]["params"], abs=1e-5)
        assert cost.macs / 1e6 == pytest.approx(record["model_info"]["macs"], rel=0.2)


def test_nb201_network_structure() -> None:
    space = get_space("nb201")
    config = ProxyModelConfig(resolution=16, num_classes=10, nb201_cells=2)
    model = build_model(space.sample(np.random.default_rng(9)), config)
    assert isinstance(model, NB201Net)
    assert len(model.cells) == 3 * 2 + 2
    all_none = space.from_choices([0] * 6)
    y = _forward(build_model(all_none, config), config)
    assert y.shape == (2, 10) and torch.isfinite(y).all()


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(TypeError, match="Architecture"):
        build_model("mb6_k3", ProxyModelConfig())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no network builder"):
        build_model(Architecture("nope", (0,)), ProxyModelConfig())
    with pytest.raises(ValueError, match="accepts choice"):
        build_model(Architecture("macro", (0,) * 7 + (5,)), ProxyModelConfig())
    with pytest.raises(TypeError, match="ProxyModelConfig"):
        build_model(get_space("macro").from_string("01201201"), {"resolution": 8})  # type: ignore[arg-type]
    for bad in (
        dict(width_mult=0),
        dict(resolution=0),
        dict(max_stride=0),
        dict(head_channels=-1),
        dict(dropout=1.0),
        dict(nb201_cells=0),
    ):
        with pytest.raises(ValueError, match="ProxyModelConfig"):
            ProxyModelConfig(**bad)


def test_config_key_is_stable_and_distinct() -> None:
    assert ProxyModelConfig.digits().key() == ProxyModelConfig.digits().key()
    assert ProxyModelConfig.digits().key() != ProxyModelConfig.digits(width_mult=1.0).key()
    assert ProxyModelConfig.digits(num_classes=3).num_classes == 3
