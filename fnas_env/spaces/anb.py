"""Accel-NASBench's MnasNet/EfficientNet-style space (Ahmad et al.).

Seven blocks; per block expansion e in {1, 4, 6}, kernel k in {3, 5}, layers l in
{1, 2, 3} ({1, 2, 3, 4} for block index 5, as in upstream's data), squeeze-excite
on/off. String: ``e6_k3_l2_se1|...`` (one part per block, upstream's
``block{i}_e/_k/_l/_se`` fields).
"""

from __future__ import annotations

from fnas_env.arch import Architecture
from fnas_env.spaces.base import Decision, SearchSpace

__all__ = ["AnbSpace"]

NUM_BLOCKS = 7


def _layers(block: int) -> tuple[int, ...]:
    return (1, 2, 3, 4) if block == 5 else (1, 2, 3)


class AnbSpace(SearchSpace):
    name = "anb"
    decisions = tuple(
        d
        for b in range(NUM_BLOCKS)
        for d in (
            Decision(f"block{b}_e", (1, 4, 6)),
            Decision(f"block{b}_k", (3, 5)),
            Decision(f"block{b}_l", _layers(b)),
            Decision(f"block{b}_se", (False, True)),
        )
    )
    blocks = tuple(tuple(range(4 * b, 4 * b + 4)) for b in range(NUM_BLOCKS))

    def to_upstream(self, arch: Architecture) -> dict:
        """Upstream's ``architecture`` dict (``block0_e`` ... ``block6_se``)."""
        return {d.name: v for d, v in zip(self.decisions, self.values(arch))}

    def from_upstream(self, record: dict) -> Architecture:
        return self.from_choices([d.choices.index(record[d.name]) for d in self.decisions])

    def _format_block(self, arch: Architecture, block: int) -> str:
        e, k, layers, se = (self.decisions[i].choices[arch.choices[i]] for i in self.blocks[block])
        return f"e{e}_k{k}_l{layers}_se{int(se)}"

    def _parse_block(self, text: str, block: int) -> tuple:
        e, k, layers, se = text.split("_")
        if not (
            e[0] == "e"
            and k[0] == "k"
            and layers[0] == "l"
            and se[:2] == "se"
            and se[2:] in ("0", "1")
        ):
            raise ValueError("fields are e{expansion}_k{kernel}_l{layers}_se{0|1}")
        return int(e[1:]), int(k[1:]), int(layers[1:]), bool(int(se[2:]))
