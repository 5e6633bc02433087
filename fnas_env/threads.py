"""``torch_threads``: run a block with a given number of torch intra-op threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Set ``torch.set_num_threads(num_threads)`` inside the block, restore it after.

    ``None`` (or the current number) leaves torch's setting alone. Small networks
    (proxy models, the controller's LSTM, the critic's MLPs) are fastest on one
    thread, and parallel workers each get one core.
    """
    import torch

    before = torch.get_num_threads()
    if num_threads is None or int(num_threads) == before:
        yield
        return
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
