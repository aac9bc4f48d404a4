"""Joining tensors: cat (a CAT node, a tree of them past CAT_FANIN sources) and stack. Part of the tensor API:
tinydl._tensor re-exports every name."""
from __future__ import annotations

from . import dtypes
from ._core import Tensor, _cat_tree
from .creation import zeros
from .shapes import normalize_dim


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    ref = next((t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)), tensors[0])
    d = normalize_dim(dim, ref.ndim)
    dt = tensors[0].dtype
    for t in tensors[1:]:
        dt = dtypes.promote(dt, t.dtype)
    parts = []
    for i, t in enumerate(tensors):
        if t.ndim == 1 and t.shape[0] == 0 and ref.ndim != 1:
            continue  # torch skips legacy empty tensors
        if t.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim}")
        for k in range(ref.ndim):
            if k != d and t.shape[k] != ref.shape[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{ref.shape[k]} but got size {t.shape[k]} for tensor number {i} in the list.")
        if t.shape[d] > 0:
            parts.append(t.to(dt))
    if not parts:
        return zeros(ref.shape[:d] + (0,) + ref.shape[d + 1:], dtype=dt)
    return _cat_tree(parts, d)



concat = concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} at "
                               f"entry 0 and {list(t.shape)} at entry {i}")
    d = normalize_dim(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(d) for t in tensors], d)


def repeat_interleave(x: Tensor, repeats, dim=None, *, output_size=None) -> Tensor:
    """Each element repeated `repeats` times along dim (x flattened when dim is None), as an expand of a new axis
    and a reshape. Per-element repeats (a tensor of counts) make a shape that depends on data: refused."""
    if isinstance(repeats, Tensor):  # its values would decide the output's shape
        raise NotImplementedError("repeat_interleave with repeats given as a tensor (per-element repeats: an output "
                                  "shape that depends on the data) is not supported; pass an int")
    repeats = int(repeats)
    if repeats < 0:
        raise RuntimeError("repeats can not be negative")
    if dim is None:
        x, dim = x.reshape(-1), 0
    d = normalize_dim(dim, x.ndim)
    out_shape = x.shape[:d] + (x.shape[d] * repeats,) + x.shape[d + 1:]
    if output_size is not None and output_size != out_shape[d]:
        raise RuntimeError("allocated size does not match required size")
    wide = x.reshape(x.shape[:d + 1] + (1,) + x.shape[d + 1:])
    return wide.expand(x.shape[:d + 1] + (repeats,) + x.shape[d + 1:]).reshape(out_shape)
