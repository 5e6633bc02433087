"""Build the torch network of any architecture of the mnas, anb, macro and nb201 spaces.

``build_model(arch, config)`` is the project's only entry point to torch modules
of architectures; ``count_macs_params(model, config)`` measures their cost (MACs of
convolutions and linear layers, counted with forward hooks).

The networks
------------
- ``mnas``: MnasNet's space over MobileNetV2's stages (``fnas_env.spaces.mnas``):
  stem 3x3 conv (32 channels, stride 2), the 7 searched blocks, head 1x1 conv to
  1280, average pool, linear. ReLU throughout (MnasNet). Per block: the op
  (``conv`` :class:`ConvLayer`, ``dwconv`` :class:`DepthwiseSeparableLayer`,
  ``mb3``/``mb6`` :class:`InvertedResidualLayer` with expansion 3/6), kernel, SE
  ratio, skip op (``pool``, ``id``, ``none``; see :mod:`fnas_env.models.blocks`),
  output channels and layer count; only the first layer has the block's stride.
- ``anb``: Accel-NASBench's space on EfficientNet-B0's skeleton: stem 3x3 conv 32
  stride 2; 7 stages of MBConv with output channels 16, 24, 40, 80, 112, 192, 320
  and first strides 1, 2, 2, 2, 1, 2, 1; head 1x1 conv 1280. SiLU activations, SE
  ratio 0.25 of the layer's input channels, identity residual where shapes
  match. Expansion, kernel, layers and SE come from the architecture. At 224x224
  and 1000 classes the parameter counts equal Accel-NASBench's ``model_info``
  (upstream's MACs are about 10% higher: they count more than convolutions and
  matrix products).
- ``macro``: NAS-Bench-Macro's network (upstream ``train/model.py``): stem 3x3
  conv 32 stride 1; 8 searched layers in stages of 2, 3, 3 whose first layer has
  stride 2 and doubles the channels (64, 128, 256); identity (1x1 conv-BN where
  the shape changes), MBConv k3 e3 or MBConv k5 e6 (ReLU, no SE); head 1x1 conv
  1280, pool, linear. With the default config at 32x32 and 10 classes the
  parameter and MAC counts equal upstream's table.
- ``nb201``: NAS-Bench-201's cell network (upstream ``TinyNetwork``): stem 3x3
  conv ``C`` + BN; 3 stages of ``N`` cells with channels C, 2C, 4C joined by
  stride-2 residual reduction blocks; BN, ReLU, pool, linear. ``C`` and ``N`` come
  from the config (``nb201_channels``, ``nb201_cells``; upstream 16 and 5).

Block contract (relied on by the architecture knowledge pool)
-------------------------------------------------------------
For ``mnas``, ``anb`` and ``macro`` the built model is a :class:`BlockNet` with

- ``stem``: ``nn.Module``;
- ``blocks``: ``nn.ModuleList`` with exactly one :class:`~fnas_env.models.blocks.Block`
  per search-space block, in the order of ``space.blocks``;
- ``head``: ``nn.Module`` holding the final conv, pooling and classifier;
- ``forward(x) == head(blocks(stem(x)))`` (blocks applied in order).

Each block has ``layers: nn.ModuleList`` (its repeated layers; the first may
change stride and channels). A layer's ``state_dict`` key names depend only on
its op, whether it has SE and its skip op, never on its position: the same op
elsewhere has the same keys with other shapes. (For ``macro``, the identity op
carries upstream's ``downsample`` conv only at the three reduction positions,
which are fixed per block index.) ``nb201`` models are :class:`NB201Net` (``stem``,
``cells``, ``head``) and need not follow the contract.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from fnas_env.arch import Architecture
from fnas_env.models.blocks import (
    Block,
    ConvLayer,
    DepthwiseSeparableLayer,
    Head,
    IdentityLayer,
    InvertedResidualLayer,
    NB201Cell,
    ResNetBasicBlock,
)
from fnas_env.models.config import ProxyModelConfig, make_divisible
from fnas_env.spaces import get_space
from fnas_env.spaces.nb201 import OPS as NB201_OPS

__all__ = [
    "ANB_STAGES",
    "BLOCK_SPACES",
    "BlockNet",
    "ModelCost",
    "NB201Net",
    "build_model",
    "count_macs_params",
]

#: Spaces whose networks follow the block contract (``stem``, ``blocks``, ``head``): the
#: spaces the knowledge pool stores and the proxy evaluator trains.
BLOCK_SPACES = ("mnas", "anb", "macro")
#: EfficientNet-B0's stages as used for ``anb``: (output channels, first stride).
ANB_STAGES: tuple[tuple[int, int], ...] = (
    (16, 1),
    (24, 2),
    (40, 2),
    (80, 2),
    (112, 1),
    (192, 2),
    (320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
#: NAS-Bench-Macro: searched layers per stage; each stage starts with stride 2.
MACRO_STAGES = (2, 3, 3)


class ModelCost(NamedTuple):
    """Multiply-accumulates of one forward pass at batch 1, and parameter count."""

    macs: int
    params: int


class BlockNet(nn.Module):
    """``head(blocks(stem(x)))``: the network of the ``mnas``, ``anb`` and ``macro`` spaces.

    Args:
        stem: the input layers.
        blocks: one module per search-space block, in network order.
        head: final conv, pooling and classifier.
    """

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class NB201Net(nn.Module):
    """NAS-Bench-201's network: ``head(cells(stem(x)))`` (reduction blocks among ``cells``).

    Args:
        stem: 3x3 conv + BN.
        cells: the cells and reduction blocks, in network order.
        head: BN, ReLU, pooling and classifier.
    """

    def __init__(self, stem: nn.Module, cells: list[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.cells = nn.ModuleList(cells)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x)


def _strider(max_stride: int | None) -> Callable[[int], int]:
    """Stride of each reduction in network order under the ``max_stride`` cap."""
    total = 1

    def take(stride: int) -> int:
        nonlocal total
        if stride > 1 and max_stride is not None and total * stride > max_stride:
            return 1
        total *= stride
        return stride

    return take


def _head_channels(config: ProxyModelConfig) -> int:
    if config.head_channels is not None:
        return config.head_channels
    return make_divisible(HEAD_CHANNELS * max(1.0, config.width_mult), config.channel_divisor)


def _channels(config: ProxyModelConfig) -> Callable[[float], int]:
    return lambda c: make_divisible(c * config.width_mult, config.channel_divisor)


def _build_mnas(arch: Architecture, config: ProxyModelConfig) -> BlockNet:
    space = get_space("mnas")
    ch, stride_of = _channels(config), _strider(config.max_stride)
    act = nn.ReLU
    in_chs = ch(STEM_CHANNELS)
    stem = Conv2dNormActivation(config.in_channels, in_chs, 3, stride_of(2), activation_layer=act)
    blocks = []
    for b in range(len(space.blocks)):
        bc = space.block_config(arch, b)  # type: ignore[attr-defined]
        out_chs = ch(bc["out_channels"])
        layers: list[nn.Module] = []
        for i in range(bc["layers"]):
            stride = stride_of(bc["stride"]) if i == 0 else 1
            common = dict(
                in_chs=in_chs,
                out_chs=out_chs,
                kernel=bc["kernel"],
                stride=stride,
                se_ratio=bc["se"],
                skip=bc["skip"],
                act_layer=act,
            )
            if bc["op"] == "conv":
                layers.append(ConvLayer(**common))
            elif bc["op"] == "dwconv":
                layers.append(DepthwiseSeparableLayer(**common))
            else:
                layers.append(InvertedResidualLayer(expansion=bc["expansion"], **common))
            in_chs = out_chs
        blocks.append(Block(layers))
    head = Head(in_chs, _head_channels(config), config.num_classes, config.dropout, act)
    return BlockNet(stem, blocks, head)


def _build_anb(arch: Architecture, config: ProxyModelConfig) -> BlockNet:
    space = get_space("anb")
    ch, stride_of = _channels(config), _strider(config.max_stride)
    act = nn.SiLU
    values = space.values(arch)
    in_chs = ch(STEM_CHANNELS)
    stem = Conv2dNormActivation(config.in_channels, in_chs, 3, stride_of(2), activation_layer=act)
    blocks = []
    for b, (out_c, first_stride) in enumerate(ANB_STAGES):
        e, k, n_layers, se = values[4 * b : 4 * b + 4]
        out_chs = ch(out_c)
        layers: list[nn.Module] = []
        for i in range(n_layers):
            stride = stride_of(first_stride) if i == 0 else 1
            layers.append(
                InvertedResidualLayer(
                    in_chs,
                    out_chs,
                    kernel=k,
                    stride=stride,
                    expansion=e,
                    se_ratio=0.25 if se else 0.0,
                    skip="id",
                    act_layer=act,
                )
            )
            in_chs = out_chs
        blocks.append(Block(layers))
    head = Head(in_chs, _head_channels(config), config.num_classes, config.dropout, act)
    return BlockNet(stem, blocks, head)


def _build_macro(arch: Architecture, config: ProxyModelConfig) -> BlockNet:
    ch, stride_of = _channels(config), _strider(config.max_stride)
    act = nn.ReLU
    in_chs = ch(STEM_CHANNELS)
    stem = Conv2dNormActivation(config.in_channels, in_chs, 3, 1, activation_layer=act)
    blocks = []
    layer = 0
    for stage, n in enumerate(MACRO_STAGES):
        out_chs = ch(STEM_CHANNELS * 2 ** (stage + 1))
        for i in range(n):
            stride = stride_of(2) if i == 0 else 1
            choice = arch.choices[layer]
            if choice == 0:
                module: nn.Module = IdentityLayer(in_chs, out_chs, stride)
            else:
                k, e = (3, 3) if choice == 1 else (5, 6)
                module = InvertedResidualLayer(
                    in_chs, out_chs, k, stride, expansion=e, skip="id", act_layer=act
                )
            blocks.append(Block([module]))
            in_chs = out_chs
            layer += 1
    head = Head(in_chs, _head_channels(config), config.num_classes, config.dropout, act)
    return BlockNet(stem, blocks, head)


def _build_nb201(arch: Architecture, config: ProxyModelConfig) -> NB201Net:
    stride_of = _strider(config.max_stride)
    ops = [NB201_OPS[c] for c in arch.choices]
    c = max(1, int(round(config.nb201_channels * config.width_mult)))
    stem = nn.Sequential(
        nn.Conv2d(config.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
    )
    cells: list[nn.Module] = []
    in_chs = c
    for stage in range(3):
        if stage > 0:
            out_chs = in_chs * 2
            cells.append(ResNetBasicBlock(in_chs, out_chs, stride_of(2)))
            in_chs = out_chs
        cells.extend(NB201Cell(ops, in_chs) for _ in range(config.nb201_cells))
    head = nn.Sequential(
        OrderedDict(
            bn=nn.BatchNorm2d(in_chs),
            act=nn.ReLU(inplace=True),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(1),
            dropout=nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity(),
            classifier=nn.Linear(in_chs, config.num_classes),
        )
    )
    return NB201Net(stem, cells, head)


_BUILDERS: dict[str, Callable[[Architecture, ProxyModelConfig], nn.Module]] = {
    "mnas": _build_mnas,
    "anb": _build_anb,
    "macro": _build_macro,
    "nb201": _build_nb201,
}


def build_model(arch: Architecture, config: ProxyModelConfig | None = None) -> nn.Module:
    """The network of ``arch`` under ``config`` (randomly initialised, train mode).

    Args:
        arch: an architecture of the ``mnas``, ``anb``, ``macro`` or ``nb201`` space.
        config: input/output/width settings; ``None`` uses ``ProxyModelConfig()``
            (224x224 RGB, 1000 classes, full width).

    Returns:
        A :class:`BlockNet` (mnas, anb, macro; see the block contract above) or a
        :class:`NB201Net` (nb201).
    """
    if not isinstance(arch, Architecture):
        raise TypeError(f"build_model() takes an Architecture, got {type(arch).__name__}")
    config = ProxyModelConfig() if config is None else config
    if not isinstance(config, ProxyModelConfig):
        raise TypeError(f"config must be a ProxyModelConfig, got {type(config).__name__}")
    if arch.space not in _BUILDERS:
        raise ValueError(
            f"no network builder for space {arch.space!r}; supported: {sorted(_BUILDERS)}"
        )
    get_space(arch.space).validate(arch)
    return _BUILDERS[arch.space](arch, config)


def count_macs_params(model: nn.Module, config: ProxyModelConfig) -> ModelCost:
    """MACs of one batch-1 forward pass at ``config``'s input, and the parameter count.

    Counted with forward hooks on every ``nn.Conv2d`` (output elements x
    ``in_channels / groups`` x kernel area) and ``nn.Linear`` (output elements x
    ``in_features``), so element-wise work (BN, activations, additions, pooling)
    and biases are not included, the usual convention of NAS papers and tables
    (the same figure as ``torch.utils.flop_counter.FlopCounterMode`` / 2, without
    its import of ``torch._dynamo`` and its per-operator dispatch). The model's
    train/eval mode is restored afterwards.
    """
    params = sum(p.numel() for p in model.parameters())
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(config.input_shape(1), device=device)
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * (module.in_channels // module.groups) * kernel

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return ModelCost(macs=int(total), params=params)
