"""NAS-Bench-Macro's space (Su et al., CVPR 2021): 8 layers, 3 choices each.

Layer choices: ``0`` identity, ``1`` MobileNetV2 block k3 e3, ``2`` MobileNetV2
block k5 e6. The string is upstream's key, one digit per layer (``"02012100"``).
"""

from __future__ import annotations

from fnas_env.arch import Architecture
from fnas_env.spaces.base import Decision, SearchSpace

__all__ = ["MacroSpace", "LAYER_OPS"]

LAYER_OPS = ("identity", "mb_k3_e3", "mb_k5_e6")
NUM_LAYERS = 8


class MacroSpace(SearchSpace):
    name = "macro"
    decisions = tuple(Decision(f"layer{i}", LAYER_OPS) for i in range(NUM_LAYERS))
    blocks = tuple((i,) for i in range(NUM_LAYERS))
    separator = ""

    def to_string(self, arch: Architecture) -> str:
        return "".join(str(c) for c in self.validate(arch).choices)

    def from_string(self, text: str) -> Architecture:
        if len(text) != NUM_LAYERS or any(ch not in "012" for ch in text):
            raise ValueError(
                f"space 'macro' expects {NUM_LAYERS} digits in 0-2 "
                f"(0 identity, 1 MB k3 e3, 2 MB k5 e6), e.g. '02012100'; got {text!r}"
            )
        return self.from_choices([int(ch) for ch in text])

    def _format_block(self, arch: Architecture, block: int) -> str:
        return str(arch.choices[block])
