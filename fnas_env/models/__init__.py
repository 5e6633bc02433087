"""Torch networks of architectures: the project's only model-building code.

``build_model(arch, config)`` builds the network of an architecture of any
space; ``count_macs_params`` measures its cost. The ``mnas``, ``anb`` and
``macro`` networks (:data:`BLOCK_SPACES`) follow the block contract the knowledge
pool relies on (``stem``, ``blocks`` with one module per space block each holding
``layers``, ``head``); see :mod:`fnas_env.models.builder`.
"""

from __future__ import annotations

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
from fnas_env.models.builder import (
    BLOCK_SPACES,
    BlockNet,
    ModelCost,
    NB201Net,
    build_model,
    count_macs_params,
)
from fnas_env.models.config import ProxyModelConfig, make_divisible

__all__ = [
    "BLOCK_SPACES",
    "Block",
    "BlockNet",
    "ConvLayer",
    "DepthwiseSeparableLayer",
    "Head",
    "IdentityLayer",
    "InvertedResidualLayer",
    "ModelCost",
    "NB201Cell",
    "NB201Net",
    "ProxyModelConfig",
    "ResNetBasicBlock",
    "build_model",
    "count_macs_params",
    "make_divisible",
]
