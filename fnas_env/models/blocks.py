"""Layers and blocks the builder assembles networks from (timm-style typed constructors).

Every layer takes explicit channel/kernel/stride arguments, so a decoded block
config maps one-to-one onto constructor calls. Key names in a layer's
``state_dict`` depend only on its kind, on whether it has squeeze-excite and on
its skip op (never on its position or channels), which the knowledge pool relies
on to copy trained layers into new networks:

- :class:`ConvLayer`: ``conv.*`` [``se.*``] [``shortcut.*``]
- :class:`DepthwiseSeparableLayer`: ``dw.*`` [``se.*``] ``pw.*`` [``shortcut.*``]
- :class:`InvertedResidualLayer`: [``expand.*``, absent when expansion is 1]
  ``dw.*`` [``se.*``] ``project.*`` [``shortcut.*``]
- :class:`IdentityLayer`: nothing, or ``downsample.*`` where the shape changes
  (NAS-Bench-Macro's identity at a reduction layer).

``shortcut.*`` exists only for the ``pool`` skip op; ``id`` and ``none`` have no
parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation

__all__ = [
    "SKIP_OPS",
    "Block",
    "ConvLayer",
    "DepthwiseSeparableLayer",
    "Head",
    "IdentityLayer",
    "InvertedResidualLayer",
    "NB201Cell",
    "ReLUConvBN",
    "ResNetBasicBlock",
    "Zero",
    "nb201_op",
]

ActLayer = Callable[..., nn.Module]
#: skip ops: ``pool`` (pooled, projected shortcut, always present), ``id`` (identity
#: residual where input and output shapes match), ``none`` (no shortcut).
SKIP_OPS = ("pool", "id", "none")


def _check_skip(skip: str) -> str:
    if skip not in SKIP_OPS:
        raise ValueError(f"skip op must be one of {SKIP_OPS}, got {skip!r}")
    return skip


def _se(channels: int, se_ratio: float, ref_channels: int, act_layer: ActLayer) -> nn.Module | None:
    """torchvision's SE with ``max(1, int(ref_channels * se_ratio))`` squeeze channels."""
    if se_ratio <= 0:
        return None
    squeeze = max(1, int(ref_channels * se_ratio))
    return SqueezeExcitation(channels, squeeze, activation=act_layer)


class _Shortcut(nn.Module):
    """The ``pool`` skip op: average-pool by the stride, then a 1x1 conv-BN projection.

    Present even when shapes match (then the pool is a no-op), so the layer's
    keys do not depend on where it sits.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        self.pool = (
            nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
            if stride > 1
            else nn.Identity()
        )
        self.proj = Conv2dNormActivation(in_chs, out_chs, 1, activation_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x))


class _Residual(nn.Module):
    """Base of the searchable layers: ``body(x)`` plus the skip op's shortcut."""

    def _init_skip(self, in_chs: int, out_chs: int, stride: int, skip: str) -> None:
        self.skip = _check_skip(skip)
        self.has_residual = skip == "pool" or (skip == "id" and stride == 1 and in_chs == out_chs)
        if skip == "pool":
            self.shortcut = _Shortcut(in_chs, out_chs, stride)

    def extra_repr(self) -> str:
        # part of repr, which keys the latency table: two layers that differ only
        # in the residual addition must not share an entry
        return f"skip={self.skip!r}, residual={self.has_residual}"

    def body(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if not self.has_residual:
            return out
        return out + (self.shortcut(x) if self.skip == "pool" else x)


class ConvLayer(_Residual):
    """Regular ``kernel`` x ``kernel`` conv-BN-act, optional SE, skip op (MnasNet ``conv``).

    Args:
        in_chs: input channels.
        out_chs: output channels.
        kernel: conv kernel size (odd).
        stride: conv stride (1 or 2).
        se_ratio: squeeze-excite ratio of ``out_chs``; 0 (default) for no SE.
        skip: ``"pool"``, ``"id"`` (default) or ``"none"`` (see :data:`SKIP_OPS`).
        act_layer: activation class. Default ``nn.ReLU``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
        skip: str = "id",
        act_layer: ActLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv = Conv2dNormActivation(
            in_chs, out_chs, kernel, stride, activation_layer=act_layer
        )
        self.se = _se(out_chs, se_ratio, out_chs, act_layer)
        self._init_skip(in_chs, out_chs, stride, skip)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.se(x) if self.se is not None else x


class DepthwiseSeparableLayer(_Residual):
    """Depthwise ``kernel`` conv-BN-act, optional SE, pointwise linear conv-BN (``dwconv``).

    Args:
        in_chs: input channels.
        out_chs: output channels.
        kernel: depthwise kernel size (odd).
        stride: depthwise stride (1 or 2).
        se_ratio: squeeze-excite ratio of ``in_chs``; 0 (default) for no SE.
        skip: ``"pool"``, ``"id"`` (default) or ``"none"``.
        act_layer: activation class. Default ``nn.ReLU``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
        skip: str = "id",
        act_layer: ActLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        self.dw = Conv2dNormActivation(
            in_chs, in_chs, kernel, stride, groups=in_chs, activation_layer=act_layer
        )
        self.se = _se(in_chs, se_ratio, in_chs, act_layer)
        self.pw = Conv2dNormActivation(in_chs, out_chs, 1, activation_layer=None)
        self._init_skip(in_chs, out_chs, stride, skip)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw(x)


class InvertedResidualLayer(_Residual):
    """Mobile inverted bottleneck (MBConv): 1x1 expand, depthwise, SE, 1x1 linear project.

    Args:
        in_chs: input channels.
        out_chs: output channels.
        kernel: depthwise kernel size (odd).
        stride: depthwise stride (1 or 2).
        expansion: hidden channels are ``in_chs * expansion``; 1 drops the expand conv.
        se_ratio: squeeze-excite ratio of ``in_chs`` (EfficientNet's rule); 0 for no SE.
        skip: ``"pool"``, ``"id"`` (default) or ``"none"``.
        act_layer: activation class. Default ``nn.ReLU``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        expansion: float = 6,
        se_ratio: float = 0.0,
        skip: str = "id",
        act_layer: ActLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        if expansion < 1:
            raise ValueError(f"expansion must be >= 1, got {expansion}")
        hidden = int(round(in_chs * expansion))
        self.expand = (
            Conv2dNormActivation(in_chs, hidden, 1, activation_layer=act_layer)
            if expansion != 1
            else None
        )
        self.dw = Conv2dNormActivation(
            hidden, hidden, kernel, stride, groups=hidden, activation_layer=act_layer
        )
        self.se = _se(hidden, se_ratio, in_chs, act_layer)
        self.project = Conv2dNormActivation(hidden, out_chs, 1, activation_layer=None)
        self._init_skip(in_chs, out_chs, stride, skip)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        if self.expand is not None:
            x = self.expand(x)
        x = self.dw(x)
        if self.se is not None:
            x = self.se(x)
        return self.project(x)


class IdentityLayer(nn.Module):
    """NAS-Bench-Macro's identity choice: pass-through, or 1x1 conv-BN where shapes change.

    Args:
        in_chs: input channels.
        out_chs: output channels.
        stride: stride of the position (a reduction layer has 2).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.downsample = (
            Conv2dNormActivation(in_chs, out_chs, 1, stride, activation_layer=None)
            if stride != 1 or in_chs != out_chs
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) if self.downsample is not None else x


class Block(nn.Module):
    """One search-space block: its repeated layers, run in order.

    Args:
        layers: the block's layers; the first carries the stride/channel change.
    """

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a block needs at least one layer")
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class Head(nn.Module):
    """Final 1x1 conv-BN-act (optional), global average pool, dropout, linear classifier.

    Args:
        in_chs: channels of the last block.
        head_chs: channels of the 1x1 conv; 0 drops the conv.
        num_classes: classifier outputs.
        dropout: dropout probability before the classifier. Default 0.
        act_layer: activation class. Default ``nn.ReLU``.
    """

    def __init__(
        self,
        in_chs: int,
        head_chs: int,
        num_classes: int,
        dropout: float = 0.0,
        act_layer: ActLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv = (
            Conv2dNormActivation(in_chs, head_chs, 1, activation_layer=act_layer)
            if head_chs > 0
            else None
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(head_chs if head_chs > 0 else in_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        x = torch.flatten(self.pool(x), 1)
        return self.classifier(self.dropout(x))


# ---- NAS-Bench-201 -------------------------------------------------------------------


class ReLUConvBN(nn.Sequential):
    """NAS-Bench-201's ReLU -> conv -> BN."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(in_chs, out_chs, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_chs),
        )


class Zero(nn.Module):
    """NAS-Bench-201's ``none`` edge: zeros of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def nb201_op(op: str, channels: int) -> nn.Module:
    """The module of a NAS-Bench-201 edge op (stride 1, ``channels`` in and out)."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(
        f"unknown NAS-Bench-201 op {op!r}; expected none, skip_connect, nor_conv_1x1, "
        "nor_conv_3x3 or avg_pool_3x3"
    )


class NB201Cell(nn.Module):
    """NAS-Bench-201 cell: 4 nodes, node ``j`` sums ``op(node i)`` over its edges ``i < j``.

    Args:
        ops: the op name of each edge in upstream order (1<-0, 2<-0, 2<-1, 3<-0,
            3<-1, 3<-2).
        channels: channels of every node.
    """

    EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        if len(ops) != len(self.EDGES):
            raise ValueError(f"a NAS-Bench-201 cell has 6 edges, got {len(ops)} ops")
        self.edges = nn.ModuleList(nb201_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for dst in (1, 2, 3):
            nodes.append(
                sum(edge(nodes[src]) for (d, src), edge in zip(self.EDGES, self.edges) if d == dst)
            )
        return nodes[3]


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's reduction block: two ReLU-conv-BN plus a pooled 1x1 shortcut.

    Args:
        in_chs: input channels.
        out_chs: output channels.
        stride: 2 in upstream; 1 where ``max_stride`` removed the reduction.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 2) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(in_chs, out_chs, 3, stride)
        self.conv_b = ReLUConvBN(out_chs, out_chs, 3, 1)
        if stride == 2:
            self.downsample: nn.Module = nn.Sequential(
                nn.AvgPool2d(2, 2, ceil_mode=True),
                nn.Conv2d(in_chs, out_chs, 1, bias=False),
            )
        elif in_chs != out_chs:
            self.downsample = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        else:
            self.downsample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))
