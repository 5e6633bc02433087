"""MnasNet's factorized hierarchical search space (Tan et al., CVPR 2019).

Seven blocks over MobileNetV2's stages. Per block: conv op, kernel, squeeze-excite
ratio, skip op, output filters relative to MobileNetV2 and number of layers
relative to MobileNetV2. The base configuration (MobileNetV2, Sandler et al. 2018,
Table 2) is ``BASE_STAGES``: (expansion, out channels, layers, first stride).

Conv ops: ``conv`` (regular 3x3/5x5 conv), ``dwconv`` (depthwise separable conv),
``mb3`` and ``mb6`` (mobile inverted bottleneck with expansion 3 or 6), MnasNet's
"MBConv with various expansion ratios". Skip ops: ``pool`` (pooling shortcut,
average-pool plus 1x1 projection when shapes change), ``id`` (identity residual
when shapes match; none otherwise), ``none``. Layers are ``base + {-1, 0, +1}``,
at least 1.

String: one block per ``|``-separated part, e.g. ``mb6_k3_se0.25_id_x1.0_l+0``.
"""

from __future__ import annotations

from fnas_env.arch import Architecture
from fnas_env.spaces.base import Decision, SearchSpace

__all__ = ["MnasSpace", "BASE_STAGES"]

#: MobileNetV2 stages used as the base: (expansion, out channels, layers, stride).
BASE_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
CONV_OPS = ("conv", "dwconv", "mb3", "mb6")
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIP_OPS = ("pool", "id", "none")
FILTER_MULTS = (0.75, 1.0, 1.25)
LAYER_DELTAS = (-1, 0, 1)
FIELDS = ("op", "kernel", "se", "skip", "filters", "layers")


class MnasSpace(SearchSpace):
    name = "mnas"
    decisions = tuple(
        Decision(f"b{b}.{field}", choices)
        for b in range(len(BASE_STAGES))
        for field, choices in zip(
            FIELDS, (CONV_OPS, KERNELS, SE_RATIOS, SKIP_OPS, FILTER_MULTS, LAYER_DELTAS)
        )
    )
    blocks = tuple(tuple(range(6 * b, 6 * b + 6)) for b in range(len(BASE_STAGES)))

    def block_config(self, arch: Architecture, block: int) -> dict:
        """Decoded block: op, kernel, se, skip, out_channels, layers, stride, expansion."""
        op, k, se, skip, mult, dl = self.values(arch)[6 * block : 6 * block + 6]
        t, c, n, s = BASE_STAGES[block]
        return {
            "op": op,
            "kernel": k,
            "se": se,
            "skip": skip,
            "filters": mult,
            # nearest multiple of 8, halves up (round() would send 20 to 16, making
            # x1.25 of the 16-channel stage equal to x1.0)
            "out_channels": max(8, int(c * mult / 8 + 0.5) * 8),
            "layers": max(1, n + dl),
            "stride": s,
            "expansion": {"mb3": 3, "mb6": 6}.get(op, 1),
        }

    def _format_block(self, arch: Architecture, block: int) -> str:
        op, k, se, skip, mult, dl = (
            self.decisions[i].choices[arch.choices[i]] for i in self.blocks[block]
        )
        return f"{op}_k{k}_se{se:g}_{skip}_x{mult:g}_l{dl:+d}"

    def _parse_block(self, text: str, block: int) -> tuple:
        op, k, se, skip, mult, layers = text.split("_")
        if not (k[0] == "k" and se[:2] == "se" and mult[0] == "x" and layers[0] == "l"):
            raise ValueError("fields are op_k{kernel}_se{ratio}_{skip}_x{filters}_l{layers}")
        return op, int(k[1:]), float(se[2:]), skip, float(mult[1:]), int(layers[1:])
