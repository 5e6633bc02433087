"""``ProxyModelConfig``: how an architecture becomes a concrete (proxy-size) network.

Pure Python (no torch), so caches and evaluators can key on it without building
anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["ProxyModelConfig", "make_divisible"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing over 10%.

    The rounding rule of MobileNetV2/EfficientNet (and torchvision's private
    ``_make_divisible``).
    """
    min_value = divisor if min_value is None else min_value
    out = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


@dataclass(frozen=True)
class ProxyModelConfig:
    """Network-level settings shared by every architecture of a search.

    The architecture decides the blocks; this config decides the input, the
    output and how large everything is, so a search can train small proxies of
    the architectures it samples (MnasNet trains on a proxy task).

    Args:
        width_mult: scales every channel count (stem, blocks, head), rounded to a
            multiple of ``channel_divisor``. Default 1.0 (the space's own widths).
        resolution: input height and width in pixels. Default 224.
        num_classes: classifier outputs. Default 1000.
        in_channels: input image channels (1 for grey digits). Default 3.
        max_stride: cap on the network's total downsampling. Stride-2 layers
            (stem included, in network order) keep stride 2 while the running
            stride is below the cap and become stride 1 after it, keeping their
            channel change. Tiny inputs need it: an 8x8 digit through MnasNet's
            32x downsampling would be 1x1 after the second stage. ``None``
            (default) keeps the space's strides (32 for mnas/anb, 8 for macro,
            4 for nb201).
        head_channels: channels of the final 1x1 conv before pooling for
            mnas/anb/macro. ``None`` (default) uses the space's 1280 (scaled up,
            never down, by ``width_mult`` as in MobileNetV2); ``0`` drops that conv
            (pool then classify), which keeps tiny proxies from being dominated by
            the head. Ignored by nb201 (its head has no conv).
        dropout: dropout probability before the classifier. Default 0.0.
        nb201_cells: cells per stage ``N`` of the NAS-Bench-201 network (upstream
            uses 5; the default 1 keeps proxies cheap).
        nb201_channels: channels ``C`` of the first NAS-Bench-201 stage (upstream
            16), before ``width_mult``.
        channel_divisor: channel counts are multiples of this. Default 8.
    """

    width_mult: float = 1.0
    resolution: int = 224
    num_classes: int = 1000
    in_channels: int = 3
    max_stride: int | None = None
    head_channels: int | None = None
    dropout: float = 0.0
    nb201_cells: int = 1
    nb201_channels: int = 16
    channel_divisor: int = 8

    def __post_init__(self) -> None:
        checks = [
            (self.width_mult > 0, "width_mult must be > 0"),
            (self.resolution >= 1, "resolution must be >= 1 pixel"),
            (self.num_classes >= 1, "num_classes must be >= 1"),
            (self.in_channels >= 1, "in_channels must be >= 1"),
            (
                self.max_stride is None or self.max_stride >= 1,
                "max_stride must be None or an integer >= 1",
            ),
            (
                self.head_channels is None or self.head_channels >= 0,
                "head_channels must be None (space default), 0 (no head conv) or > 0",
            ),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.nb201_cells >= 1, "nb201_cells must be >= 1"),
            (self.nb201_channels >= 1, "nb201_channels must be >= 1"),
            (self.channel_divisor >= 1, "channel_divisor must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"ProxyModelConfig: {message}; got {self!r}")

    @classmethod
    def digits(cls, **changes: object) -> ProxyModelConfig:
        """Proxy for scikit-learn's 8x8 grey digits (10 classes), FNAS-MNAS-v0's default.

        Half width, 4x total downsampling (8x8 -> 2x2), a 256-channel head.
        ``changes`` override any field.
        """
        base = dict(
            width_mult=0.5,
            resolution=8,
            num_classes=10,
            in_channels=1,
            max_stride=4,
            head_channels=256,
        )
        base.update(changes)
        return cls(**base)  # type: ignore[arg-type]

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """``(batch, in_channels, resolution, resolution)``."""
        return (batch, self.in_channels, self.resolution, self.resolution)

    def key(self) -> str:
        """Stable string of all fields (for caches)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
