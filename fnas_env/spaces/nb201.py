"""NAS-Bench-201's cell space (Dong & Yang, ICLR 2020): 6 edges, 5 ops each.

Edges in upstream order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2. The string is
upstream's ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``. Each edge is one block.
"""

from __future__ import annotations

import re

import numpy as np

from fnas_env.arch import Architecture
from fnas_env.spaces.base import Decision, SearchSpace

__all__ = ["NB201Space", "OPS", "EDGES", "PATHS"]

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_EDGE_RE = re.compile(r"^([a-z_0-9]+)~(\d)$")
#: the cell's input-to-output paths as indices into EDGES: 0>3, 0>1>3, 0>2>3, 0>1>2>3
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))
#: feature offset of the op sequences of each path length (4 ops without "none")
_PATH_OFFSET = {1: 0, 2: 4, 3: 4 + 16}
_PATH_DIM = 4 + 16 + 64


class NB201Space(SearchSpace):
    name = "nb201"
    decisions = tuple(Decision(f"edge{dst}<-{src}", OPS) for dst, src in EDGES)
    blocks = tuple((i,) for i in range(len(EDGES)))

    @property
    def feature_dim(self) -> int:
        return self.embedding_dim + _PATH_DIM

    def features(self, arch: Architecture) -> np.ndarray:
        """The one-hot embedding plus the path encoding of BANANAS (White et al., AAAI 2021):
        one indicator per sequence of ops along an input-to-output path of the cell (a path
        through a "none" edge does not exist), 30 + 84 values."""
        choices = self.validate(arch).choices
        paths = np.zeros(_PATH_DIM, dtype=np.float32)
        for path in PATHS:
            ops = [choices[e] for e in path]
            if 0 in ops:  # "none": the path is cut
                continue
            index = sum((op - 1) * 4**k for k, op in enumerate(ops))
            paths[_PATH_OFFSET[len(path)] + index] = 1.0
        return np.concatenate([self.one_hot(arch), paths])

    def to_string(self, arch: Architecture) -> str:
        ops = [OPS[c] for c in self.validate(arch).choices]
        return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"

    def from_string(self, text: str) -> Architecture:
        example = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
        nodes = text.strip().split("+")
        choices: list[int] = []
        try:
            if len(nodes) != 3:
                raise ValueError("expected 3 '+'-separated nodes")
            for dst, node in enumerate(nodes, start=1):
                edges = [e for e in node.split("|") if e]
                if len(edges) != dst:
                    raise ValueError(f"node {dst} needs {dst} edges, got {len(edges)}")
                for src, edge in enumerate(edges):
                    m = _EDGE_RE.match(edge)
                    if not m or m.group(1) not in OPS or int(m.group(2)) != src:
                        raise ValueError(f"bad edge {edge!r}; ops are {list(OPS)}")
                    choices.append(OPS.index(m.group(1)))
        except ValueError as exc:
            raise ValueError(
                f"not a NAS-Bench-201 cell string ({exc}): {text!r}; expected e.g. {example!r}"
            ) from None
        return self.from_choices(choices)

    def _format_block(self, arch: Architecture, block: int) -> str:
        dst, src = EDGES[block]
        return f"{OPS[arch.choices[block]]}~{src}->{dst}"
