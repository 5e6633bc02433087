"""Shape adaptation: a stored block's tensors fitted to a target block of another shape.

State-dict keys of a layer depend only on its op type (the block contract of
:mod:`fnas_env.models.builder`), so a stored block fits a target block once each
tensor is adapted:

- channels sliced, or padded with the target's own initial values;
- kernels (4-D conv weights) centre-cropped, or zero-padded around the source
  kernel (a 3x3 kernel inside a 5x5 one computes the same function);
- layer counts mapped: target layer ``j`` takes source layer ``min(j, n_src - 1)``;
- tensors whose key the source lacks (an SE module, an expansion conv) keep
  their initial values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch

__all__ = ["adapt_tensor", "adapt_state_dict", "load_into", "source_names"]

_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.*)$")


def adapt_tensor(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``source`` fitted to ``target``'s shape (a new tensor of ``target``'s dtype).

    Every dim is sliced to the common size; where the target is larger its own
    values stay. For 4-D tensors (conv weights ``out, in, kh, kw``) the kernel is
    centre-aligned: cropped from a larger source, or placed in the centre of a
    larger target with zeros around it. Tensors of different rank must not be
    passed (:func:`adapt_state_dict` keeps the target's values then).
    """
    out = target.detach().clone()
    _copy_into(source, out)
    return out


def _copy_into(source: torch.Tensor, target: torch.Tensor) -> None:
    """In place: :func:`adapt_tensor`'s result written into ``target``."""
    if source.dim() != target.dim():
        raise ValueError(
            f"cannot adapt a {source.dim()}-D tensor to a {target.dim()}-D one "
            f"({tuple(source.shape)} -> {tuple(target.shape)})"
        )
    with torch.no_grad():
        if source.device != target.device:  # stored on the CPU, training on a GPU
            source = source.to(target.device)
        if source.shape == target.shape:
            target.copy_(source)
            return
        src_idx: list[slice] = []
        tgt_idx: list[slice] = []
        for d, (s, t) in enumerate(zip(source.shape, target.shape)):
            n = min(s, t)
            if source.dim() == 4 and d >= 2:  # kernel dims: centre-aligned
                src_idx.append(slice((s - n) // 2, (s - n) // 2 + n))
                tgt_idx.append(slice((t - n) // 2, (t - n) // 2 + n))
            else:
                src_idx.append(slice(0, n))
                tgt_idx.append(slice(0, n))
        if source.dim() == 4 and (
            target.shape[2] > source.shape[2] or target.shape[3] > source.shape[3]
        ):
            target[tuple(tgt_idx[:2])] = 0  # zero frame around the copied kernel
        target[tuple(tgt_idx)] = source[tuple(src_idx)].to(target.dtype)


def _n_layers(keys: Iterable[str]) -> int:
    layers = [int(m.group(1)) for k in keys if (m := _LAYER_KEY.match(k))]
    return max(layers) + 1 if layers else 0


def source_names(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, str | None]:
    """Source key each target key reads (None: keep the target's value).

    Keys ``layers.{j}.rest`` read ``layers.{min(j, n_src - 1)}.rest`` (layer-count
    mapping); other keys read the same key. A key the source lacks, or a tensor of
    another rank, maps to None.
    """
    n_src = _n_layers(source)
    out: dict[str, str | None] = {}
    for name, tensor in target.items():
        src_name = name
        m = _LAYER_KEY.match(name)
        if m is not None:
            src_name = f"layers.{min(int(m.group(1)), n_src - 1)}.{m.group(2)}" if n_src else ""
        src = source.get(src_name)
        out[name] = src_name if src is not None and src.dim() == tensor.dim() else None
    return out


def adapt_state_dict(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], tuple[int, int, int]]:
    """A full state dict for ``target``'s module with values taken from ``source``.

    Keys ``layers.{j}.rest`` of the target read ``layers.{min(j, n_src - 1)}.rest``
    of the source (layer-count mapping); other keys read the same key. A key the
    source lacks, or a tensor of another rank, keeps the target's value.
    Returns the state dict and counts ``(copied, adapted, kept)``.
    """
    out = {k: v.detach().clone() for k, v in target.items()}
    return out, load_into(source, out)


def load_into(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> tuple[int, int, int]:
    """In place: write ``source`` into the tensors of ``target`` (a module's state dict).

    ``module.state_dict()`` tensors share storage with the module, so this loads a
    stored block into a model. Returns the counts ``(copied, adapted, kept)``.
    """
    copied = adapted = kept = 0
    for name, src_name in source_names(source, target).items():
        if src_name is None:
            kept += 1
            continue
        src, dst = source[src_name], target[name]
        if src.shape == dst.shape:
            copied += 1
        else:
            adapted += 1
        _copy_into(src, dst)
    return copied, adapted, kept
