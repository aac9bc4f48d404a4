"""Indexing as graph nodes: torch's `x[...]` (ints, slices, None, ..., bools, then advanced indices: integer or
bool tensors, lists, numpy arrays, masks), `index_select`, `take`, `gather` and ATen's `index.Tensor`; slicing
and selecting (`narrow`, `split`, `chunk`, `unbind`, `select`, `roll`: views and cats). Each advanced index
becomes one GATHER of rows (`gather_rows`). Indices given on the host are checked at the call, with torch's
messages; a tinydl tensor of indices lives on the GPU and is checked there (the GATHER's `checks.Code`:
IndexError at the next read-back). Part of the tensor API: Tensor's methods delegate here."""
from __future__ import annotations

import builtins
import math

import numpy as np

from . import dtypes
from .checks import Code
from .ops import GATHER, VIEW
from .shapes import broadcast_shapes, normalize_dim
from ._core import Tensor, _make, _view
from .creation import arange, tensor, zeros
from .elementwise import where
from .joining import cat

_INDEX_DTYPES = "tensors used as indices must be long, int, byte or bool tensors"


class _Mask:
    """A boolean index, its values on the host (the result's shape depends on them)."""
    __slots__ = ("values",)

    def __init__(self, values: np.ndarray):
        self.values = values


def _is_torch_tensor(v) -> bool:
    return type(v).__module__.startswith("torch") and hasattr(v, "detach")


def host_array(v):
    """Indices given on the host (a list, numpy array or torch tensor) as a numpy array; None for a tinydl
    tensor (its values live on the GPU)."""
    if isinstance(v, Tensor):
        return None
    if _is_torch_tensor(v):
        return v.detach().cpu().numpy()
    arr = np.asarray(v)
    if arr.size == 0 and arr.dtype.kind == "f" and not isinstance(v, np.ndarray):
        arr = arr.astype(np.int64)  # x[[]] is an empty integer index, as in torch
    return arr


def _index_items(index) -> list:
    """__getitem__'s index as a list of: None, Ellipsis, slice, bool, int, _Mask, an int64 numpy array (host
    indices) or an int32 Tensor (GPU indices)."""
    if not isinstance(index, tuple):
        # torch's (numpy's old) rule: a list holding sequences, slices, None, ... or tensors is a tuple of indices
        seq = isinstance(index, list) and builtins.any(
            i is None or i is Ellipsis or isinstance(i, (list, tuple, slice, Tensor)) or _is_torch_tensor(i)
            for i in index)
        index = tuple(index) if seq else (index,)
    items = []
    for i in index:
        if i is None or i is Ellipsis or isinstance(i, slice):
            items.append(i)
        elif isinstance(i, (bool, np.bool_)):
            items.append(builtins.bool(i))
        elif isinstance(i, (int, np.integer)):
            items.append(builtins.int(i))
        elif isinstance(i, Tensor):
            if i.dtype == dtypes.bool_:  # its result's shape depends on the values: read (a sync, as torch on CUDA)
                items.append(_mask_item(i.numpy()))
            elif i.dtype != dtypes.int32:
                raise IndexError(_INDEX_DTYPES)
            else:
                items.append(i)
        elif isinstance(i, (list, tuple, range, np.ndarray)) or _is_torch_tensor(i):
            arr = host_array(i)
            if arr.dtype == np.bool_ or arr.dtype == np.uint8:  # torch still takes uint8 as a mask
                items.append(_mask_item(arr.astype(np.bool_)))
            elif arr.dtype.kind not in "iu":
                raise IndexError(_INDEX_DTYPES)
            elif arr.ndim == 0:
                items.append(builtins.int(arr))  # a 0-d index is an int
            else:
                items.append(arr.astype(np.int64))
        else:
            raise TypeError(f"unsupported index type {type(i).__name__}")
    return items


def _mask_item(values: np.ndarray):
    return builtins.bool(values) if values.ndim == 0 else _Mask(values)


def _index_dims(item) -> int:
    """How many dims of the indexed tensor an index item consumes."""
    if item is None or item is Ellipsis or isinstance(item, bool):
        return 0
    return item.values.ndim if isinstance(item, _Mask) else 1


def checked_index(idx: Tensor, n: int) -> Tensor:
    """idx itself, each value outside [0, n) reported on the GPU (checks.Code.INDEX) and read as 0: a GATHER
    from arange(n), so the check is the gather's own (tinydl/checks.py)."""
    if idx.numel() == 0:
        return idx
    table = arange(n).reshape(n, 1)
    return _make(GATHER, None, (table, idx.reshape(-1)), Code.INDEX, (idx.numel(), 1), dtypes.int32).reshape(idx.shape)


def getitem(x: Tensor, index) -> Tensor:
    """torch's indexing: ints, slices, None, ..., bools, and advanced indices (integer or bool tensors, lists,
    numpy arrays), applied as torch does (basic ones first, then the advanced ones together). Indices given
    on the host are checked here, with torch's messages; a tinydl tensor of indices lives on the GPU and is
    checked there (tinydl/checks.py: an index out of range raises IndexError at the next read-back)."""
    items = _index_items(index)
    n_real = builtins.sum(_index_dims(i) for i in items)
    if n_real > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim}")
    if builtins.sum(1 for i in items if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    expanded = []
    for i in items:
        expanded.extend([slice(None)] * (x.ndim - n_real) if i is Ellipsis else [i])
    expanded.extend([slice(None)] * (x.ndim - builtins.sum(_index_dims(i) for i in expanded)))
    # basic indices first, as views of `out` (x, sliced; an int as a size-1 slice), then ONE reshape to the
    # result's shape before the advanced indices (ints dropped, None inserted), then the advanced indices
    out, d = x, 0  # d: the dim of `out` the next index applies to
    new_shape, adv, empty = [], [], []  # adv: (dim of the reshaped result, indices); empty: x[False]'s dims
    for pos, i in enumerate(expanded):  # torch's messages number the dims by position in the index
        if i is None or isinstance(i, bool):
            if i is False:  # torch: x[False] is empty along a new dim
                empty.append(len(new_shape))
            new_shape.append(1)
        elif isinstance(i, slice):
            step = 1 if i.step is None else int(i.step)
            if step == 0:
                raise ValueError("slice step cannot be zero")
            if step < 0:
                raise ValueError("step must be greater than zero")
            out = out._slice(d, i.start, i.stop, step)
            new_shape.append(out.shape[d])
            d += 1
        elif isinstance(i, int):
            size = out.shape[d]
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of bounds for dimension {pos} with size {size}")
            out = out._slice(d, i % size, i % size + 1, 1)
            d += 1
        elif isinstance(i, _Mask):
            m = i.values
            for j in range(m.ndim):
                if m.shape[j] != out.shape[d + j]:
                    raise IndexError(f"The shape of the mask {list(m.shape)} at index {j} does not match the "
                                     f"shape of the indexed tensor {list(x.shape)} at index {d + j}")
            for j, nz in enumerate(np.nonzero(m)):
                adv.append((len(new_shape), nz.astype(np.int64)))
                new_shape.append(out.shape[d + j])
            d += m.ndim
        else:  # an integer index array (host) or tensor (GPU)
            adv.append((len(new_shape), i))
            new_shape.append(out.shape[d])
            d += 1
    out = out.reshape(tuple(new_shape))
    for e in empty:
        out = out._slice(e, 0, 0, 1)
    return advanced(out, adv) if adv else out


def advanced(x: Tensor, adv: list) -> Tensor:
    """x[advanced indices]: adv = [(dim, host int64 array or GPU int32 tensor)], torch's rules: the
    indices broadcast together; their shape replaces the indexed dims where those are adjacent, else goes
    first. One GATHER of rows over the indexed dims (moved to the front and merged) by their linear index."""
    dims = [d for d, _ in adv]
    idxs = []
    for j, (d, i) in enumerate(adv):
        n = x.shape[d]
        if (i.size if isinstance(i, np.ndarray) else i.numel()) and n == 0:
            raise IndexError("index is out of bounds for dimension with size 0")
        if isinstance(i, np.ndarray):
            bad = (i < -n) | (i >= n)
            if bad.any():  # torch numbers the dim among the advanced indices
                raise IndexError(f"index {int(i[bad][0])} is out of bounds for dimension {j} with size {n}")
            i = np.where(i < 0, i + n, i)
        idxs.append(i)
    try:
        bshape = tuple(np.broadcast_shapes(*(tuple(i.shape) for i in idxs)))
    except ValueError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                         + ", ".join(str(list(i.shape)) for i in idxs)) from None
    rest = [d for d in range(x.ndim) if d not in dims]
    sizes = [x.shape[d] for d in dims]
    rows = x.permute(tuple(dims + rest)) if dims + rest != list(range(x.ndim)) else x
    rows = rows.reshape((math.prod(sizes),) + tuple(x.shape[d] for d in rest))
    strides = [math.prod(sizes[k + 1:]) for k in range(len(sizes))]
    if builtins.all(isinstance(i, np.ndarray) for i in idxs):  # checked above: the row index, on the host
        lin = builtins.sum(i * s for i, s in zip(idxs, strides))
        lin, code = tensor(np.broadcast_to(lin, bshape).astype(np.int32)), None
    elif len(idxs) == 1:  # one GPU index: the gather checks it (after torch's wrap of negatives)
        lin, code = where(idxs[0] < 0, idxs[0] + sizes[0], idxs[0]), Code.INDEX
    else:  # each GPU index checked along its own dim, so the row index is in range by construction
        parts = []
        for i, n, s in zip(idxs, sizes, strides):
            if isinstance(i, np.ndarray):
                i = tensor(i.astype(np.int32))
            else:
                i = checked_index(where(i < 0, i + n, i), n)
            parts.append(i * s if s != 1 else i)
        lin, code = builtins.sum(parts[1:], parts[0]).expand(bshape), None
    g = gather_rows(rows, lin, code)
    first, nb = dims[0], len(bshape)
    if dims == list(range(first, first + len(dims))) and first > 0:  # adjacent: in place of the indexed dims
        g = g.permute(tuple(nb + k for k in range(first)) + tuple(range(nb))
                      + tuple(nb + k for k in range(first, len(rest))))
    return g


def gather_rows(x: Tensor, idx: Tensor, code=None) -> Tensor:
    """x[idx] along dim 0 for an int32 tensor idx of any shape: idx.shape + x.shape[1:], one GATHER.
    code: what an index outside [0, n) reports on the GPU (checks.Code), or None where the indices were
    checked already (the kernel then only keeps its reads in bounds)."""
    n, rest = x.shape[0], x.shape[1:]
    out_shape = tuple(idx.shape) + rest
    if math.prod(out_shape) == 0:
        return zeros(out_shape, dtype=x.dtype)
    rows = x.reshape(n, math.prod(rest))
    g = _make(GATHER, None, (rows, idx.reshape(-1)), code, (idx.numel(), rows.shape[1]), x.dtype)
    return g.reshape(out_shape)


def gather_dim(x: Tensor, d: int, idx: Tensor, code=None) -> Tensor:
    """Rows of dim d picked by an int32 tensor: shape[:d] + idx.shape + shape[d+1:] (one GATHER)."""
    if x.shape[d] == 0 and idx.numel():
        raise IndexError("index is out of bounds for dimension with size 0")
    perm = (d,) + tuple(i for i in range(x.ndim) if i != d)
    g = gather_rows(x.permute(perm) if d else x, idx, code)
    k = idx.ndim
    if d:
        g = g.permute(tuple(range(k, k + d)) + tuple(range(k)) + tuple(range(k + d, x.ndim - 1 + k)))
    return g


def index_select(x: Tensor, dim: int, index) -> Tensor:
    d = normalize_dim(dim, builtins.max(x.ndim, 1))
    if x.ndim == 0:  # a scalar is a 1-element vector here, and its one index keeps it a scalar
        size = host_array(index).size if not isinstance(index, Tensor) else index.numel()
        if size != 1:
            raise RuntimeError(f"index_select(): Index to scalar can have only 1 value, got {size} value(s)")
        return index_select(x.reshape(1), 0, index if isinstance(index, Tensor) else host_array(index)
                                            .reshape(1)).reshape(())
    host = host_array(index)
    if host is not None:
        if host.ndim > 1:
            raise IndexError("index_select(): Index is supposed to be a vector")
        if host.dtype.kind not in "iu":
            raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
        n = x.shape[d]
        if host.size and n == 0:
            raise RuntimeError("index_select(): self indexing axis dim should be positive")
        bad = (host < 0) | (host >= n)
        if bad.any():  # torch CPU's messages: its inner dims take another kernel, with another message
            if 0 < d < x.ndim - 1:
                raise RuntimeError(f"INDICES element is out of DATA bounds, id={int(host[bad][0])} axis_dim={n}")
            raise IndexError("index out of range in self")
        return gather_dim(x, d, tensor(host.reshape(-1).astype(np.int32)))
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index.dtype != dtypes.int32:
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    if x.shape[d] == 0 and index.numel():
        raise RuntimeError("index_select(): self indexing axis dim should be positive")
    return gather_dim(x, d, index.reshape(-1), Code.INDEX)  # negative indices are out of range, as in torch


def as_strided(x: Tensor, size, stride, storage_offset: int = 0) -> Tensor:
    """torch.as_strided over x's elements in row-major order (its storage, where x is not a view of another
    tensor's): element i of the result is x.flatten()[storage_offset + sum(i_k * stride_k)]. A view (a transpose,
    a slice) has its base's storage in torch, which tinydl does not keep: refused."""
    node = x.node
    while node.kind == VIEW and node.op == "reshape":  # (a reshape keeps the elements' order: the same storage)
        node = node.srcs[0]
    if node.kind == VIEW:
        raise NotImplementedError(f"as_strided of a view ({node.op}): torch reads the viewed tensor's storage, "
                                  f"which tinydl does not keep")
    return strided_elements(x, size, stride, storage_offset)


def strided_elements(x: Tensor, size, stride, storage_offset: int = 0) -> Tensor:
    """as_strided's result read from x's elements in row-major order, whatever x is: for a caller that knows
    they are torch's storage of x (the export path checks the traced tensor's layout at conversion)."""
    size, stride = [int(v) for v in size], [int(v) for v in stride]
    offset = 0 if storage_offset is None else int(storage_offset)
    if len(size) != len(stride):
        raise RuntimeError("mismatch in length of strides and shape")
    if any(v < 0 for v in stride):
        raise RuntimeError(f"as_strided: Negative strides are not supported at the moment, got strides: {stride}")
    if any(v < 0 for v in size):
        raise RuntimeError(f"as_strided: Trying to create tensor with negative dimension {min(size)}: {size}")
    needed = offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1 if all(size) else 0
    if needed > x.numel() or offset > x.numel():
        raise RuntimeError(f"setStorage: sizes {size}, strides {stride}, storage offset {offset}, and itemsize "
                           f"{x.dtype.itemsize} requiring a storage size of {needed * x.dtype.itemsize} are out of "
                           f"bounds for storage of size {x.numel() * x.dtype.itemsize}")
    index = np.full(size, offset, np.int64)
    for axis, (n, st) in enumerate(zip(size, stride)):
        index += (np.arange(n) * st).reshape([n if a == axis else 1 for a in range(len(size))])
    if index.size == 0:
        return zeros(tuple(size), dtype=x.dtype)
    return gather_rows(x.reshape(-1), tensor(index.reshape(-1).astype(np.int32))).reshape(tuple(size))


def take(x: Tensor, index) -> Tensor:
    """torch.take: the flattened tensor's elements at `index` (negative counts from the end)."""
    n = x.numel()
    host = host_array(index)
    if host is not None and host.dtype.kind not in "iu" or host is None and index.dtype != dtypes.int32:
        dt = host.dtype.name if host is not None else index.dtype.name
        raise RuntimeError(f"take(): Expected a long tensor for index, but got {dt}")
    size = host.size if host is not None else index.numel()
    if n == 0 and size:
        raise IndexError("take(): tried to take from an empty tensor")
    if host is not None:
        bad = (host < -n) | (host >= n)
        if bad.any():
            raise IndexError(f"out of range: tried to access index {int(host[bad][0])} on a tensor of {n} "
                             f"elements.")
        return gather_rows(x.reshape(-1), tensor(np.where(host < 0, host + n, host).astype(np.int32)))
    return gather_rows(x.reshape(-1), where(index < 0, index + n, index), Code.INDEX)


def gather(x: Tensor, dim: int, index, sparse_grad: bool = False) -> Tensor:
    """torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] (dim=1); index no larger than x apart
    from dim."""
    d = normalize_dim(dim, builtins.max(x.ndim, 1))
    host = host_array(index)
    shape = tuple(host.shape) if host is not None else index.shape
    if (host.dtype.kind not in "iu") if host is not None else index.dtype != dtypes.int32:
        raise RuntimeError("gather(): Expected dtype int32/int64 for index")
    if len(shape) != x.ndim and not (len(shape) <= 1 and x.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for k in range(len(shape)):
        if k != d and shape[k] > x.shape[k]:
            raise RuntimeError(f"Size does not match at dimension {k} expected index {list(shape)} to be no "
                               f"larger than self {list(x.shape)} apart from dimension {d}")
    if x.ndim == 0:
        return gather(x.reshape(1), 0, index.reshape(1) if host is None else host.reshape(1)).reshape(shape)
    n = x.shape[d]
    if host is not None:
        bad = (host < 0) | (host >= n)
        if bad.any():
            raise RuntimeError(f"index {int(host[bad][0])} is out of bounds for dimension {d} with size {n}")
        idx = tensor(host.astype(np.int32))
    else:
        idx = checked_index(index, n)  # an index outside [0, n) is reported on the GPU (no wrap, as torch)
    # the flat position of each element: idx along d, the element's own coordinate along the other dims
    strides = [math.prod(x.shape[k + 1:]) for k in range(x.ndim)]
    lin = None
    for k in range(x.ndim):
        c = idx if k == d else arange(shape[k]).reshape(tuple(shape[k] if j == k else 1 for j in range(len(shape))))
        c = c * strides[k] if strides[k] != 1 else c
        lin = c if lin is None else lin + c
    return gather_rows(x.reshape(-1), lin.expand(shape) if lin.shape != shape else lin)


def take_along_dim(input, indices, dim=None) -> Tensor:  # noqa: A002 - torch's names
    """gather along dim after broadcasting input and indices against each other (but along dim); dim None:
    over the flattened input."""
    x = input
    host = host_array(indices)  # host indices stay on the host: gather checks them at the call
    dt = dtypes.from_numpy_dtype(host.dtype) if host is not None else indices.dtype
    if dt != dtypes.int32:  # torch's int64 is tinydl's int32
        names = {dtypes.float32: "Float", dtypes.float16: "Half", dtypes.bool_: "Bool"}
        raise RuntimeError(f"torch.take_along_dim(): dtype of indices should be Long but got {names[dt]}")
    if dim is None:
        return gather(x.reshape(-1), 0, host.reshape(-1) if host is not None else indices.reshape(-1))
    d = normalize_dim(dim, x.ndim)
    ishape = tuple(host.shape) if host is not None else indices.shape
    if x.ndim != len(ishape):
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same number of dimensions, "
                           f"but got {x.ndim} dimensions for input, and {len(ishape)} dimensions for indices")
    shape = broadcast_shapes(x.shape[:d] + (ishape[d],) + x.shape[d + 1:], ishape)
    idx = np.broadcast_to(host, shape) if host is not None else indices.expand(shape)
    return gather(x.expand(shape[:d] + (x.shape[d],) + shape[d + 1:]), d, idx)


def index(x: Tensor, indices) -> Tensor:
    """ATen's index.Tensor: x[i0, i1, ...] with index tensors (None = a full slice), as getitem's advanced
    indexing."""
    return getitem(x, tuple(slice(None) if i is None else i for i in indices))


# -- slicing and selecting (views and cats: no GATHER) --------------------------------------------------------
def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    d = normalize_dim(dim, x.ndim)
    size = x.shape[d]
    if not -size <= start <= size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], but got {start})")
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    start = start + size if start < 0 else start
    if start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return x._slice(d, start, start + length, 1)


def unfold(x: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """Tensor.unfold: the windows of `size` elements along `dimension`, `step` apart, as a new last dim (a view in
    torch; here one gather of the windows' elements)."""
    d = normalize_dim(dimension, builtins.max(x.ndim, 1))
    length = x.shape[d] if x.ndim else 1
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    if size < 0:
        raise RuntimeError(f"size is {size} but must be >= 0")
    if size > length:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {length} but size is {size}")
    if x.ndim == 0:  # torch: a scalar's one window, as a vector of `size` elements
        return x.reshape(1)[:size]
    n = (length - size) // step + 1
    starts = np.arange(n, dtype=np.int64)[:, None] * step
    windows = index_select(x, d, (starts + np.arange(size, dtype=np.int64)[None, :]).reshape(-1))
    return windows.reshape(x.shape[:d] + (n, size) + x.shape[d + 1:]).movedim(d + 1, -1)


def split(x: Tensor, split_size, dim: int = 0) -> tuple:
    d = normalize_dim(dim, x.ndim)
    size = x.shape[d]
    if isinstance(split_size, int):
        if split_size <= 0 and size > 0:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {size}")
        sizes = [split_size] * (size // split_size) + ([size % split_size] if size % split_size else []) \
            if split_size > 0 else [0]
    else:
        sizes = list(split_size)
        if builtins.sum(sizes) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's "
                               f"size at dimension {d}), but got split_sizes={sizes}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(x, d, start, s))
        start += s
    return tuple(out)


def tensor_split(x: Tensor, indices_or_sections, dim: int = 0) -> tuple:
    """Views of x cut along dim: into n parts (the first size % n one longer), or at the given indices."""
    d = normalize_dim(dim, x.ndim)
    size = x.shape[d]
    if isinstance(indices_or_sections, (int, np.integer)):
        n = int(indices_or_sections)
        if n <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {n}")
        small, extra = divmod(size, n)
        bounds = [i * small + builtins.min(i, extra) for i in range(n + 1)]
    else:
        # as Python slice bounds: negative ones count from the end, all clamped into [0, size]
        bounds = [0, *(builtins.min(builtins.max(int(i) + size if i < 0 else int(i), 0), size)
                       for i in indices_or_sections), size]
    return tuple(x._slice(d, a, builtins.max(a, b), 1) for a, b in zip(bounds, bounds[1:]))


def _split_along(name: str, x: Tensor, indices_or_sections, dim: int, least: int) -> tuple:
    """hsplit / vsplit / dsplit: tensor_split along dim for a tensor of `least` dims or more, whose int sections
    divide the dim evenly."""
    if x.ndim < least:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {least} dimension, but got a tensor with "
                           f"{x.ndim} dimensions!")
    if isinstance(indices_or_sections, (int, np.integer)) and (
            indices_or_sections == 0 or x.shape[dim] % int(indices_or_sections)):
        raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the size of the dimension "
                           f"{x.shape[dim]} is not divisible by the split_size {int(indices_or_sections)}!")
    return tensor_split(x, indices_or_sections, dim)


def hsplit(x: Tensor, indices_or_sections) -> tuple:
    return _split_along("hsplit", x, indices_or_sections, 0 if x.ndim == 1 else 1, 1)


def vsplit(x: Tensor, indices_or_sections) -> tuple:
    return _split_along("vsplit", x, indices_or_sections, 0, 2)


def dsplit(x: Tensor, indices_or_sections) -> tuple:
    return _split_along("dsplit", x, indices_or_sections, 2, 3)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
    d = normalize_dim(dim, x.ndim)
    return split(x, builtins.max(1, -(-x.shape[d] // chunks)), d)


def unbind(x: Tensor, dim: int = 0) -> tuple:
    d = normalize_dim(dim, x.ndim)
    return tuple(select(x, d, i) for i in range(x.shape[d]))


def roll(x: Tensor, shifts, dims=None) -> Tensor:
    """torch.roll as slices + cat: each rolled dim is the tail cut off and put in front."""
    shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
    dims = () if dims is None else ((dims,) if isinstance(dims, (int, np.integer)) else tuple(dims))
    if not dims and len(shifts) == 1:
        return roll(x.flatten(), shifts, 0).reshape(x.shape)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    out = x
    for s, d in zip(shifts, dims):
        d = normalize_dim(d, x.ndim)
        n = x.shape[d]
        s = builtins.int(s) % n if n else 0
        if s:
            out = cat([out._slice(d, n - s, n, 1), out._slice(d, 0, n - s, 1)], d)
    return out


def flip(x: Tensor, dims) -> Tensor:
    """torch.flip: a view stepping backwards along each of dims (index math, no copy)."""
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    norm = [normalize_dim(d, x.ndim) for d in dims]
    for d in norm:
        if norm.count(d) > 1:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    starts, steps = [0] * x.ndim, [1] * x.ndim
    for d in set(norm):
        if x.shape[d] > 1:
            starts[d], steps[d] = x.shape[d] - 1, -1
    if all(st == 1 for st in steps):
        return x
    return _view(x, "slice", (tuple(starts), tuple(steps)), x.shape)


def rot90(input, k: int = 1, dims=(0, 1)) -> Tensor:  # noqa: A002 - torch's name
    """Rotation by 90 degrees k times from dims[0] towards dims[1]: flips and a transpose (views)."""
    x, dims = input, list(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if x.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {x.ndim}")
    d0, d1 = normalize_dim(dims[0], x.ndim), normalize_dim(dims[1], x.ndim)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return flip(x, d1).transpose(d0, d1)
    if k == 2:
        return flip(x, (d0, d1))
    if k == 3:
        return flip(x, d0).transpose(d0, d1)
    return x


def fliplr(x: Tensor) -> Tensor:
    if x.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(x, 1)


def flipud(x: Tensor) -> Tensor:
    if x.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(x, 0)


def select(x: Tensor, dim: int, index: int) -> Tensor:
    d = normalize_dim(dim, x.ndim)
    if not -x.shape[d] <= index < x.shape[d]:
        raise IndexError(f"select(): index {index} out of range for tensor of size {list(x.shape)} at "
                         f"dimension {d}")
    return getitem(x, (slice(None),) * d + (index,))


def masked_select(input, mask) -> Tensor:  # noqa: A002 - torch's names
    """torch.masked_select: the elements where mask (broadcast with input) is True, in row-major order, as a 1-D
    tensor (its length depends on the mask: read back, as boolean indexing's)."""
    if not isinstance(mask, Tensor) or mask.dtype != dtypes.bool_:
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    shape = broadcast_shapes(tuple(input.shape), tuple(mask.shape))
    return getitem(input.expand(shape), mask.expand(shape))


def nonzero(input, *, as_tuple: bool = False):  # noqa: A002 - torch's names
    """torch.nonzero / argwhere: the indices of the nonzero elements (NaN counts), a row each in row-major order;
    as_tuple: a vector per dim (a 0-d input: one vector of its single index, if nonzero). Their number depends on
    the values, so they are read back."""
    host = input.numpy()
    if input.ndim == 0:
        found = int(bool(host != 0))
        return (tensor(np.zeros(found, np.int32)),) if as_tuple else tensor(np.zeros((found, 0), np.int32))
    idx = np.stack(np.nonzero(host), axis=-1).astype(np.int32)
    return tuple(tensor(np.ascontiguousarray(idx[:, d])) for d in range(input.ndim)) if as_tuple else tensor(idx)


def argwhere(input) -> Tensor:  # noqa: A002
    return nonzero(input)


def unravel_index(indices, shape) -> tuple:
    """torch.unravel_index: flat indices as coordinates in shape, one tensor per dim; by floor division and
    remainder, so an index out of range or negative wraps, as torch's."""
    from .elementwise import floor_divide, remainder
    idx = indices if isinstance(indices, Tensor) else tensor(indices)
    if idx.dtype != dtypes.int32:
        raise TypeError(f"expected 'indices' to be integer dtype, but got torch.{idx.dtype.name}")
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if builtins.any(s < 0 for s in shape):
        raise ValueError(f"'shape' cannot have negative values, but got {shape}")
    if 0 in shape:
        raise RuntimeError("ZeroDivisionError")
    strides = [math.prod(shape[k + 1:]) for k in range(len(shape))]
    return tuple(remainder(floor_divide(idx, stride), size) for stride, size in zip(strides, shape))
