"""Architecture Knowledge Pool (AKP): trained blocks that initialise new architectures.

FNAS (see ``../shared/PAPER.md``) keeps a key-value table of trained blocks: the key is a
block's one-hot embedding (:meth:`SearchSpace.block_embeddings`), the value the
block's parameters from a trained checkpoint. A new architecture is initialised
block by block from the stored block of the same space and position with the
highest cosine similarity, so a proxy training of a few epochs starts from
trained weights and ranks architectures as well as a longer one from scratch.

Model contract (``fnas_env.models.build_model`` for the spaces of
:data:`fnas_env.models.BLOCK_SPACES`): the model has ``stem``, ``blocks`` (an
``nn.ModuleList`` with one module per search-space block, in the space's order)
and ``head``; a block module holds its layers in ``layers: nn.ModuleList``.

Modules:

- :mod:`~fnas_env.knowledge_pool.pool`: :class:`KnowledgePool` (lookup by cosine
  similarity, initialise, store, capacity and fairness rules, counters);
- :mod:`~fnas_env.knowledge_pool.adapt`: a stored block's tensors fitted to a target
  block of another shape (:func:`adapt_tensor`, :func:`adapt_state_dict`);
- :mod:`~fnas_env.knowledge_pool.store`: the folder on disk (``index.json``,
  ``pool.lock``, one safetensors file per block) and its locked, durable writes.
"""

from __future__ import annotations

from fnas_env.knowledge_pool.adapt import adapt_state_dict, adapt_tensor
from fnas_env.knowledge_pool.pool import (
    InitStats,
    KnowledgePool,
    Match,
    PoolCounters,
    PoolNotWritable,
    best_match,
)
from fnas_env.knowledge_pool.store import PoolEntry

__all__ = [
    "KnowledgePool",
    "PoolNotWritable",
    "InitStats",
    "PoolEntry",
    "PoolCounters",
    "Match",
    "adapt_tensor",
    "adapt_state_dict",
    "best_match",
]
