"""Joining tensors: cat (a CAT node, a tree of them past CAT_FANIN sources) and stack; hstack / vstack / dstack /
column_stack over atleast_1d/2d/3d; broadcast_tensors and meshgrid (expand views). Part of the tensor API:
tinydl._tensor re-exports every name."""
from __future__ import annotations

import weakref

from . import dtypes
from ._core import Tensor, _cat_tree, _wrap
from .ops import Node
from .creation import zeros
from .shapes import broadcast_shapes, normalize_dim


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
    return _growing_cat(parts, d)


# the cats built so far, by their parts' nodes and dim (an entry goes with its node)
_BUILT_CATS: "weakref.WeakValueDictionary[tuple, Node]" = weakref.WeakValueDictionary()


def _growing_cat(parts, d) -> Tensor:
    """cat(parts) as cat(earlier, last) where cat(parts[:-1]) along d was built before and its node is alive (and
    not donated): the running concatenation of a dense block (DenseNet) is then one buffer grown by a copy per
    layer, not a tree read part by part, which would be a different kernel for every layer."""
    uids = tuple(t.node.uid for t in parts)
    earlier = _BUILT_CATS.get((uids[:-1], d)) if len(parts) > 2 else None
    if earlier is not None and not earlier.donated:
        out = _cat_tree([_wrap(earlier), parts[-1]], d)
    else:
        out = _cat_tree(parts, d)
    if len(parts) > 1:
        _BUILT_CATS[(uids, d)] = out.node
    return out



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


def broadcast_tensors(*tensors) -> tuple:
    """The tensors expanded to their common broadcast shape (views)."""
    shape = broadcast_shapes(*(t.shape for t in tensors))
    return tuple(t.expand(shape) for t in tensors)


def meshgrid(*tensors, indexing=None) -> tuple:
    """Grids of 0-d / 1-d tensors, 'ij' (the default) or 'xy' (the first two swapped): expand views."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if not tensors:
        raise RuntimeError("meshgrid expects a non-empty TensorList")
    indexing = "ij" if indexing is None else indexing
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: {indexing}')
    for t in tensors:
        if t.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got a "
                               f"{t.ndim}D tensor of shape {list(t.shape)}")
        if t.dtype != tensors[0].dtype:
            raise RuntimeError("meshgrid expects all tensors to have the same dtype")
    swap = indexing == "xy" and len(tensors) >= 2
    ordered = (tensors[1], tensors[0]) + tuple(tensors[2:]) if swap else tuple(tensors)
    shape = tuple(t.numel() for t in ordered)
    n = len(shape)
    grids = [t.reshape((1,) * i + (-1,) + (1,) * (n - i - 1)).expand(shape) for i, t in enumerate(ordered)]
    return (grids[1], grids[0]) + tuple(grids[2:]) if swap else tuple(grids)


def atleast_1d(*tensors):
    return _atleast(tensors, lambda t: t.reshape(1) if t.ndim == 0 else t)


def atleast_2d(*tensors):
    return _atleast(tensors, lambda t: t.reshape((1,) * (2 - t.ndim) + t.shape) if t.ndim < 2 else t)


def atleast_3d(*tensors):
    """torch's: a scalar [1, 1, 1], a vector [1, n, 1], a matrix [a, b, 1]."""
    def up(t):
        return {0: lambda: t.reshape(1, 1, 1), 1: lambda: t.reshape(1, -1, 1),
                2: lambda: t.unsqueeze(-1)}.get(t.ndim, lambda: t)()
    return _atleast(tensors, up)


def _atleast(tensors, f):
    """One tensor -> one result; several (or a list) -> a tuple, as torch."""
    if len(tensors) == 1 and isinstance(tensors[0], Tensor):
        return f(tensors[0])
    if len(tensors) == 1:
        tensors = tensors[0]
    return tuple(f(t) for t in tensors)


def _nonempty(name: str, tensors) -> list:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError(f"{name} expects a non-empty TensorList")
    return tensors


def hstack(tensors) -> Tensor:
    ts = atleast_1d(_nonempty("hstack", tensors))
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors) -> Tensor:
    return cat(atleast_2d(_nonempty("vstack", tensors)), 0)


row_stack = vstack


def dstack(tensors) -> Tensor:
    return cat(atleast_3d(_nonempty("dstack", tensors)), 2)


def cartesian_prod(*tensors) -> Tensor:
    """Every combination of the 1-D tensors' elements, a row each in row-major order (one tensor: itself)."""
    for t in tensors:
        if t.ndim != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape {list(t.shape)}")
    if len(tensors) == 1:
        return tensors[0]
    return stack([g.reshape(-1) for g in meshgrid(*tensors, indexing="ij")], 1)


def column_stack(tensors) -> Tensor:
    ts = _nonempty("column_stack", tensors)
    return cat([t.reshape(-1, 1) if t.ndim < 2 else t for t in ts], 1)
