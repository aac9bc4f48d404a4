"""Writing into a tensor by index, out of place: torch's `scatter` / `scatter_add` / `scatter_reduce`, `index_add` /
`index_copy` / `index_fill` / `index_put` (x[indices] = values) and `slice_scatter` / `select_scatter`. Part of the
tensor API: Tensor's methods delegate here.

Every kernel computes its output by output index, and WGSL has no float atomics, so a scatter is a gather turned
around: each output element reduces the source entries that land on it, one REDUCE along the scattered dim d
(`_scatter_along`; lowering stages long reductions, so MAX_TRIPS holds). Which entries those are:
- indices on the GPU (`_compared`): every entry of the output's line, masked by index == j (the comparison fused
  into the REDUCE's prologue, nothing materialized). O(positions along d x index entries along d) per line, so it
  is bounded: past Options.scatter_max_work comparisons the indices are read back (checked as on the GPU) and
  take the host's way below instead of running for minutes (a read-back, so a jit runs such a function each call
  rather than replaying it);
- indices on the host (`_sorted`): sorted there into slots per output (as many as the most duplicated output has),
  the sources gathered into them: O(outputs x slots), no bound needed.
Duplicate indices: the sums (scatter_add, index_add, index_put(accumulate=True)) add every one of them; the
overwriting forms (scatter, index_copy, index_put), which torch leaves unspecified, keep the one that comes last
along d (torch CPU's sequential loop gives the same). slice_scatter / select_scatter are views and one `where`.

Indices given on the host (lists, numpy, torch tensors) are checked at the call with torch's messages; a tinydl
tensor of indices is checked on the GPU (checks.Code.INDEX: IndexError at the next read-back)."""
from __future__ import annotations

import builtins
import math

import numpy as np

from . import dtypes
from .shapes import normalize_dim
from ._core import Tensor, _const, _view
from .creation import arange, tensor
from .elementwise import floor_divide, maximum, minimum, where
from .indexing import _Mask, _index_items, checked_index, gather, host_array
from .options import current as current_options
from .reductions import _reduce

REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")
_TORCH_NAMES = {dtypes.float32: "Float", dtypes.float16: "Half", dtypes.int32: "Long", dtypes.bool_: "Bool"}


# -- the one kernel-level form -----------------------------------------------------------------------------------
def _scatter_along(x: Tensor, d: int, index, src: Tensor, reduce: str, include_self: bool) -> Tensor:
    """x with src scattered along dim d at index, of x's ndim, values in [0, x.shape[d]): an int64 numpy array
    (host indices, checked) or an int32 tensor (GPU indices, checked on the GPU by checked_index). src has index's
    shape and x's dtype. reduce: "last" (overwrite, the last duplicate wins), or one of REDUCTIONS.

    Each output position j (along d) of each line reduces its candidates along axis d + 1: with GPU indices every
    index entry of the line, masked by index == j (`_compared`); with host indices only the entries that land on j,
    found on the host (`_sorted`): as many slots as the most duplicated position has."""
    n = x.shape[d]
    if math.prod(index.shape) == 0:
        return x
    region = tuple(index.shape[:d]) + (n,) + tuple(index.shape[d + 1:])  # the part of x the index can reach
    compute = dtypes.int32 if x.dtype == dtypes.bool_ else x.dtype
    src = src.to(compute)
    if not isinstance(index, np.ndarray) and _comparisons(index.shape, d, n) > current_options().scatter_max_work:
        index = index.numpy().astype(np.int64)  # (checked_index's values: an index out of range raises here)
    find = _sorted if isinstance(index, np.ndarray) else _compared
    hit, vals, pick = find(index, src, d, n, reduce == "last")
    k = d + 1
    base = _fit(x, region).to(compute)

    def masked(neutral):
        return where(hit, vals, _const(neutral, (), compute))

    if reduce == "last":
        found, value = pick
        out = where(found, value, base)
    elif reduce == "mean":
        total = _reduce("sum", masked(0), k)
        count = _reduce("sum", hit.to(dtypes.int32), k)
        if include_self:
            total, count = total + base, count + 1
        divided = floor_divide(total, maximum(count, 1)) if compute == dtypes.int32 else total / maximum(count, 1)
        out = where(count > 0, divided.to(compute), base)
    else:
        neutral = {"sum": 0, "prod": 1, "amax": _lowest(compute), "amin": _highest(compute)}[reduce]
        op = {"sum": "sum", "prod": "prod", "amax": "max", "amin": "min"}[reduce]
        acc = _reduce(op, masked(neutral), k)
        if include_self:
            out = {"sum": lambda: base + acc, "prod": lambda: base * acc,
                   "amax": lambda: maximum(base, acc), "amin": lambda: minimum(base, acc)}[reduce]()
        else:
            touched = _reduce("max", hit.to(dtypes.int32), k) > 0
            out = where(touched, acc, base)
    return _place(out.to(x.dtype), x)


def _comparisons(lines: tuple, d: int, n: int) -> int:
    """How many index comparisons `_compared` makes for an index of shape `lines` into a dim of n."""
    return math.prod(lines) * n


def _compared(index: Tensor, src: Tensor, d: int, n: int, last_only: bool):
    """GPU indices: every index entry k of a line is a candidate of output j, hit where index == j. Returns
    (hit, values) over [..., j, k, ...] and, with last_only, (found, value) of the last entry that hits."""
    lines, ndim = index.shape, index.ndim
    k_len = lines[d]
    cube = lines[:d] + (n, k_len) + lines[d + 1:]      # out position j along d, index entry k along d + 1
    hit = index.unsqueeze(d).expand(cube) == arange(n).reshape((1,) * d + (n, 1) + (1,) * (ndim - d - 1))
    vals = src.unsqueeze(d).expand(cube)
    pick = None
    if last_only:
        at_k = arange(k_len).reshape((1,) * (d + 1) + (k_len,) + (1,) * (ndim - d - 1))
        last = _reduce("max", where(hit, at_k, _const(-1, (), dtypes.int32)), d + 1)
        pick = (last >= 0, gather(src, d, maximum(last, 0)))
    return hit, vals, pick


def _sorted(index: np.ndarray, src: Tensor, d: int, n: int, last_only: bool):
    """Host indices: the entries landing on each output, found by sorting on the host, in slots [..., j, m, ...]
    (m < the most entries any output gets; 1 with last_only, which keeps the last). Returns what _compared does;
    the work is the outputs times the slots, not times the line's length. Dims along which the index is broadcast
    (index_add's and index_put's rows) are sorted once and expanded on the GPU."""
    full = index.shape
    index = index[tuple(slice(0, 1) if a != d and index.strides[a] == 0 else slice(None) for a in range(index.ndim))]
    lines = index.shape
    region = lines[:d] + (n,) + lines[d + 1:]
    strides = [math.prod(region[a + 1:]) for a in range(len(region))]
    target = index * strides[d]  # each entry's flat position in region
    for a, size in enumerate(lines):
        if a != d:
            target = target + np.arange(size).reshape((1,) * a + (size,) + (1,) * (len(lines) - a - 1)) * strides[a]
    entry = np.broadcast_to(np.arange(lines[d]).reshape((1,) * d + (-1,) + (1,) * (len(lines) - d - 1)), lines)
    target, entry = np.broadcast_to(target, lines).ravel(), entry.ravel()
    order = np.lexsort((entry, target))
    target, entry = target[order], entry[order]
    starts = np.r_[True, target[1:] != target[:-1]]
    if last_only:  # the last entry of each output: the one before the next output's first
        keep = np.r_[starts[1:], True]
        target, entry, rank = target[keep], entry[keep], np.zeros(keep.sum(), np.int64)
    else:
        group_start = np.maximum.accumulate(np.where(starts, np.arange(len(target)), 0))
        rank = np.arange(len(target)) - group_start
    slots = int(rank.max()) + 1
    table = np.full((math.prod(region), slots), -1, np.int64)
    table[target, rank] = entry
    table = np.moveaxis(table.reshape(region + (slots,)), -1, d + 1)    # [..., j, m, ...]
    cube = full[:d] + (n, slots) + full[d + 1:]
    flat = tensor(np.maximum(table, 0).reshape(lines[:d] + (n * slots,) + lines[d + 1:]).astype(np.int32))
    vals = gather(src, d, flat.expand(full[:d] + (n * slots,) + full[d + 1:])).reshape(cube)
    hit = tensor(table >= 0).expand(cube)
    pick = (hit.squeeze(d + 1), vals.squeeze(d + 1)) if last_only else None
    return hit, vals, pick


def _lowest(dt):
    return -float("inf") if dt.is_floating_point else -2**31


def _highest(dt):
    return float("inf") if dt.is_floating_point else 2**31 - 1


def _fit(x: Tensor, shape: tuple) -> Tensor:
    """x's leading corner of `shape` (a view)."""
    for i, (have, want) in enumerate(zip(x.shape, shape)):
        if want != have:
            x = x._slice(i, 0, want, 1)
    return x


def _place(part: Tensor, x: Tensor) -> Tensor:
    """x with its leading corner of part.shape replaced by part."""
    if part.shape == x.shape:
        return part
    inside = None
    for i, (have, want) in enumerate(zip(x.shape, part.shape)):
        if want != have:
            c = arange(have).reshape((1,) * i + (have,) + (1,) * (x.ndim - i - 1)) < want
            inside = c if inside is None else inside & c
    pads = tuple((0, have - want) for have, want in zip(x.shape, part.shape))
    return where(inside, _view(part, "pad", (pads, "constant", 0), x.shape), x)


# -- index checks ------------------------------------------------------------------------------------------------
def _index_tensor(index, n: int, dtype_error, bounds_error, wrap: bool = False):
    """Indices with every value in [0, n): host ones checked here (bounds_error(value) is the exception to raise
    for the first bad one) and kept on the host (an int64 numpy array), GPU ones as an int32 tensor checked on the
    GPU. wrap: negative indices count from the end (advanced indexing) rather than being out of range (scatter,
    index_add, ...)."""
    host = host_array(index)
    if host is not None:
        if host.dtype.kind not in "iu":
            raise dtype_error(_host_dtype_name(host))
        lo = -n if wrap else 0
        bad = (host < lo) | (host >= n)
        if bad.any():
            raise bounds_error(int(host[bad].flat[0]))
        return np.where(host < 0, host + n, host).astype(np.int64)
    if index.dtype != dtypes.int32:
        raise dtype_error(_TORCH_NAMES[index.dtype])
    if n == 0 and index.numel():  # no output would read it, so the GPU would never report it: every index is bad
        raise IndexError("index is out of bounds for dimension with size 0")
    return checked_index(where(index < 0, index + n, index) if wrap else index, n)


def _expand(index, shape: tuple):
    """index (host array or tensor) broadcast to shape."""
    if isinstance(index, np.ndarray):
        return np.broadcast_to(index, shape)
    return index.expand(shape) if index.shape != tuple(shape) else index


def _host_dtype_name(a: np.ndarray) -> str:
    return {"f": "Float", "b": "Bool"}.get(a.dtype.kind, str(a.dtype))


def _shape_of(index) -> tuple:
    return tuple(index.shape) if isinstance(index, Tensor) else tuple(host_array(index).shape)


# -- scatter -----------------------------------------------------------------------------------------------------
def _scatter_checks(x: Tensor, dim: int, index, src) -> tuple:
    """torch's scatter/gather checks; returns (d, index shape, src as a tensor of index's shape)."""
    d = normalize_dim(dim, builtins.max(x.ndim, 1))
    ishape = _shape_of(index)
    if len(ishape) != x.ndim and not (len(ishape) <= 1 and x.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    if isinstance(src, Tensor):
        if src.ndim != len(ishape) and not (len(ishape) <= 1 and src.ndim <= 1):
            raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
        if src.dtype != x.dtype:
            raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    xs = x.shape or (1,)
    iss = ishape or (1,)
    too_big_self = any(i != d and iss[i] > xs[i] for i in range(len(iss)))
    if isinstance(src, Tensor):
        ss = src.shape or (1,)
        if too_big_self or any(iss[i] > ss[i] for i in range(len(iss))):
            raise RuntimeError(f"Expected index {list(ishape)} to be no larger than self {list(x.shape)} apart from "
                               f"dimension {d} and to be no larger size than src {list(src.shape)}")
        src = _fit(src.reshape(ss), iss)
    else:
        if too_big_self:
            raise RuntimeError(f"Expected index {list(ishape)} to be no larger than self {list(x.shape)} apart from "
                               f"dimension {d}")
        src = _const(src, (), x.dtype).expand(iss)
    return d, iss, src


def _scatter(x: Tensor, dim: int, index, src, reduce: str, include_self: bool = True) -> Tensor:
    d, iss, src = _scatter_checks(x, dim, index, src)
    n = (x.shape or (1,))[d]
    idx = _index_tensor(index, n,
                        lambda _name: RuntimeError("scatter(): Expected dtype int32/int64 for index"),
                        lambda v: RuntimeError(f"index {v} is out of bounds for dimension {d} with size {n}"))
    out = _scatter_along(x.reshape(x.shape or (1,)), d, idx.reshape(iss), src, reduce, include_self)
    return out.reshape(x.shape)


def scatter(x: Tensor, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:
    """torch.scatter / Tensor.scatter: src a tensor or a number (or value=); reduce "add" / "multiply" (torch's
    deprecated form). Duplicate indices without reduce: the last along dim wins (torch leaves it unspecified)."""
    if (src is None) == (value is None):
        raise TypeError("scatter() takes either a src tensor or a value, not both or neither")
    src = value if src is None else src
    if reduce is not None and reduce not in ("add", "multiply"):
        raise RuntimeError("reduce argument must be either add or multiply.")
    return _scatter(x, dim, index, src, {None: "last", "add": "sum", "multiply": "prod"}[reduce])


def scatter_add(x: Tensor, dim: int, index, src: Tensor) -> Tensor:
    """torch.scatter_add: every src element added at its index (duplicates all added)."""
    return _scatter(x, dim, index, src, "sum")


def scatter_reduce(x: Tensor, dim: int, index, src: Tensor, reduce: str, *, include_self: bool = True) -> Tensor:
    """torch.scatter_reduce: reduce in sum / prod / mean / amax / amin over the src elements landing on each
    position, and x's own value when include_self; positions nothing lands on keep x's value. An integer mean
    rounds down (floor), as torch's."""
    if reduce not in REDUCTIONS:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    if reduce == "mean" and x.dtype == dtypes.bool_:
        raise NotImplementedError('"scatter_gather_tensor_cpu_reduce_mean" not implemented for \'Bool\'')
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_reduce(): argument 'src' must be Tensor, not {type(src).__name__}")
    return _scatter(x, dim, index, src, reduce, include_self)


# -- index_add / index_copy / index_fill: a vector of indices along one dim ---------------------------------------
def _index_along(op: str, x: Tensor, dim: int, index, source: Tensor, dtype_error, bounds_error,
                 same_ndim: bool = True):
    """Checks shared by index_add, index_reduce and index_copy (bounds_error(value, dim, size): the exception for an
    index out of range; same_ndim: a 0-d x takes only a 0-d source and a 0-d source only a 0-d x, as torch's
    index_add and index_reduce, not its index_copy); returns (x, d, the index broadcast to source's shape, source)
    with 0-d tensors as 1-element vectors."""
    d = normalize_dim(dim, builtins.max(x.ndim, 1))
    ishape = _shape_of(index)
    if len(ishape) > 1:
        raise IndexError(f"{op}(): Index is supposed to be a vector, but got dim: {len(ishape)} with type: Long and "
                         f"size: {list(ishape)}")
    xs, ss = x.shape or (1,), source.shape or (1,)
    if (len(xs) != len(ss) or any(i != d and a != b for i, (a, b) in enumerate(zip(xs, ss)))
            or (same_ndim and x.ndim != source.ndim)):
        raise RuntimeError(f"source tensor shape must match self tensor shape, excluding the specified dimension. "
                           f"Got self.shape = {list(x.shape)} source.shape = {list(source.shape)}")
    count = math.prod(ishape)
    if count != ss[d]:
        raise RuntimeError(f"{op}(): Number of indices ({count}) should be equal to source.size(dim): ({ss[d]}), "
                           f"for dim: {d}")
    idx = _expand(_index_tensor(index, xs[d], dtype_error, lambda v: bounds_error(v, d, xs[d])).reshape(
        (1,) * d + (count,) + (1,) * (len(xs) - d - 1)), ss)
    return x.reshape(xs), d, idx, source.reshape(ss)


def _same_scalar_type(op: str, x: Tensor, source: Tensor) -> None:
    """index_add's and index_reduce's refusal of a source of another dtype, in torch's words."""
    if source.dtype != x.dtype:
        raise RuntimeError(f"{op}(): self ({_TORCH_NAMES[x.dtype]}) and source ({_TORCH_NAMES[source.dtype]}) "
                           f"must have the same scalar type")


def _index_dtype_error(op: str):
    """index_add's and index_reduce's exception for an index tensor that is not an integer one."""
    return lambda name: RuntimeError(f"{op}(): Expected dtype int32/int64 for index but got: {name}")


def index_add(x: Tensor, dim: int, index, source: Tensor, *, alpha=1) -> Tensor:
    """torch.index_add: x with alpha * source[..., k, ...] added at x[..., index[k], ...] (duplicates all
    added)."""
    _same_scalar_type("index_add_", x, source)
    xr, d, idx, src = _index_along(
        "index_add_", x, dim, index, source, _index_dtype_error("index_add_"),
        lambda v, d, n: RuntimeError(f"index {v} is out of bounds for dimension {d} with size {n}"))
    if alpha != 1:
        src = src * (alpha if x.dtype.is_floating_point else builtins.int(alpha))
    return _scatter_along(xr, d, idx, src.to(x.dtype), "sum", True).reshape(x.shape)


def index_reduce(x: Tensor, dim: int, index, source: Tensor, reduce: str, *, include_self: bool = True) -> Tensor:
    """torch.index_reduce: the source[..., k, ...] landing on x[..., index[k], ...] reduced in prod / mean / amax /
    amin, with x's own value where include_self; positions no index names keep x's value. An integer mean rounds
    down (floor), as torch's."""
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise RuntimeError(f"index_reduce(): Expected reduce to be one of prod, mean, amax or amin but got {reduce}.")
    _same_scalar_type("index_reduce_", x, source)
    if x.dtype == dtypes.bool_ and (x.ndim <= 1 or reduce == "mean"):  # torch's kernels for bool: rows of 2-d+ only
        raise NotImplementedError(f'"{"index_func_" if x.ndim <= 1 else "div_floor_cpu"}" not implemented for \'Bool\'')
    xr, d, idx, src = _index_along(
        "index_reduce_", x, dim, index, source, _index_dtype_error("index_reduce_"),
        lambda v, d, n: IndexError("index out of range in self"))
    return _scatter_along(xr, d, idx, src, reduce, include_self).reshape(x.shape)


def index_copy(x: Tensor, dim: int, index, source: Tensor) -> Tensor:
    """torch.index_copy: x[..., index[k], ...] = source[..., k, ...]; duplicate indices: the last one wins."""
    if source.dtype != x.dtype:
        raise RuntimeError(f"index_copy_(): self and source expected to have the same dtype, but got (self) "
                           f"{_TORCH_NAMES[x.dtype]} and (source) {_TORCH_NAMES[source.dtype]}")
    xr, d, idx, src = _index_along(
        "index_copy_", x, dim, index, source,
        lambda name: RuntimeError(f"index_copy_(): Expected a long tensor for index, but got {name}"),
        lambda v, d, n: IndexError(f"index_copy_(): index {v} is out of bounds for dimension {d} with size {n}"),
        same_ndim=False)
    return _scatter_along(xr, d, idx, src, "last", True).reshape(x.shape)


def index_fill(x: Tensor, dim: int, index, value) -> Tensor:
    """torch.index_fill: x with every x[..., index[k], ...] set to value (a number or a 0-d tensor)."""
    d = normalize_dim(dim, builtins.max(x.ndim, 1))
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s).")
        value = value.to(x.dtype)
    ishape = _shape_of(index)
    if len(ishape) > 1:
        raise IndexError("Index has to be a vector/scalar")
    n = (x.shape or (1,))[d]
    idx = _index_tensor(index, n,
                        lambda _name: IndexError("index_fill_(): Expected dtype int64 for index."),
                        lambda v: IndexError(f"index {v} is out of bounds for dimension {d} with size {n}"),
                        wrap=True)
    if math.prod(idx.shape) == 0:
        return x
    xs = x.shape or (1,)
    line = (1,) * d + (n,) + (1,) * (len(xs) - d - 1)
    if isinstance(idx, np.ndarray):
        marks = np.zeros(n, np.bool_)
        marks[idx.ravel()] = True
        chosen = tensor(marks)
    else:  # each position compared with every index: O(n x indices), as _compared
        chosen = _reduce("max", (idx.reshape(1, -1) == arange(n).reshape(n, 1)).to(dtypes.int32), 1) > 0
    filled = value if isinstance(value, Tensor) else _const(value, (), x.dtype)
    return where(chosen.reshape(line), filled, x.reshape(xs)).to(x.dtype).reshape(x.shape)


# -- index_put: x[indices] = values ------------------------------------------------------------------------------
def index_put(x: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    """torch.index_put / Tensor.index_put: x[indices] = values (or += with accumulate, every duplicate added).
    indices: a tuple of integer or bool tensors (None: a full slice, as ATen's index_put); values broadcast to the
    indexing result's shape. Overwriting duplicates: the last one wins (torch leaves it unspecified)."""
    if not isinstance(values, Tensor):
        values = _const(values, (), x.dtype)
    if values.dtype != x.dtype:
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got "
                           f"{_TORCH_NAMES[x.dtype].replace('Long', 'Int')} for the destination and "
                           f"{_TORCH_NAMES[values.dtype].replace('Long', 'Int')} for the source.")
    dims, idxs, d = [], [], 0
    for i in indices:
        if i is None:
            d += 1
            continue
        item = _index_items((i,))[0]
        if isinstance(item, builtins.bool):
            raise NotImplementedError("index_put with a 0-d bool index is not supported")
        if isinstance(item, _Mask):
            for j, nz in enumerate(np.nonzero(item.values)):
                if d + j < x.ndim and item.values.shape[j] != x.shape[d + j]:
                    raise IndexError(f"The shape of the mask {list(item.values.shape)} at index {j} does not match "
                                     f"the shape of the indexed tensor {list(x.shape)} at index {d + j}")
                dims.append(d + j)
                idxs.append(nz.astype(np.int64))
            d += item.values.ndim
            continue
        dims.append(d)
        idxs.append(np.asarray(item, np.int64) if isinstance(item, builtins.int) else item)
        d += 1
    if d > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim} (got {d})")
    if not dims:  # x[...] = values: every element
        target = values.expand(x.shape) if values.shape != x.shape else values
        return (x + target).to(x.dtype) if accumulate else target
    sizes = [x.shape[k] for k in dims]
    lin_parts = []
    for j, (k, i) in enumerate(zip(dims, idxs)):
        lin_parts.append(_index_tensor(
            i, sizes[j], lambda _name: IndexError("tensors used as indices must be long, int, byte or bool tensors"),
            lambda v, k=k, n=sizes[j]: IndexError(f"index {v} is out of bounds for dimension {k} with size {n}"),
            wrap=True))
    if not all(isinstance(p, np.ndarray) for p in lin_parts):  # one on the GPU: all of them there
        lin_parts = [tensor(p.astype(np.int32)) if isinstance(p, np.ndarray) else p for p in lin_parts]
    try:
        bshape = tuple(np.broadcast_shapes(*(tuple(i.shape) for i in lin_parts)))
    except ValueError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                         + ", ".join(str(list(i.shape)) for i in lin_parts)) from None
    strides = [math.prod(sizes[j + 1:]) for j in range(len(sizes))]
    lin = _expand(builtins.sum((p * s if s != 1 else p for p, s in zip(lin_parts[1:], strides[1:])),
                               lin_parts[0] * strides[0] if strides[0] != 1 else lin_parts[0]), bshape)
    rest = [k for k in range(x.ndim) if k not in dims]
    rest_sizes = tuple(x.shape[k] for k in rest)
    # the indexing result's layout (getitem's rule): the index shape in place of adjacent indexed dims, else first
    first, nb = dims[0], len(bshape)
    adjacent = dims == list(range(first, first + len(dims))) and first > 0
    result_shape = (rest_sizes[:first] + bshape + rest_sizes[first:]) if adjacent else bshape + rest_sizes
    try:
        vals = values.expand(result_shape) if values.shape != result_shape else values
    except (RuntimeError, ValueError):
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(values.shape)} cannot be broadcast to "
                           f"indexing result of shape {list(result_shape)}") from None
    if adjacent:  # to index shape first, then the other dims
        vals = vals.permute(tuple(range(first, first + nb)) + tuple(range(first)) +
                            tuple(range(first + nb, len(result_shape))))
    count = math.prod(bshape)
    order = tuple(dims + rest)
    rows = (x.permute(order) if order != tuple(range(x.ndim)) else x).reshape((math.prod(sizes),) + rest_sizes)
    src = vals.reshape((count,) + rest_sizes)
    idx = _expand(lin.reshape((count,) + (1,) * len(rest)), (count,) + rest_sizes)
    out = _scatter_along(rows, 0, idx, src, "sum" if accumulate else "last", True)
    out = out.reshape(tuple(sizes) + rest_sizes)
    inverse = tuple(order.index(k) for k in range(x.ndim))
    return out.permute(inverse) if inverse != tuple(range(x.ndim)) else out


# -- slice_scatter / select_scatter: views and one where -----------------------------------------------------------
def slice_scatter(x: Tensor, src: Tensor, dim: int = 0, start=None, end=None, step: int = 1) -> Tensor:
    """torch.slice_scatter: x with x[..., start:end:step, ...] (along dim) replaced by src."""
    d = normalize_dim(dim, x.ndim)
    if step is None:
        step = 1
    if step <= 0:
        raise RuntimeError("slice step must be positive")
    n = x.shape[d]
    start, stop, _ = slice(start, end, step).indices(n)
    length = builtins.max(0, (stop - start + step - 1) // step)
    target = x.shape[:d] + (length,) + x.shape[d + 1:]
    if tuple(src.shape) != target:
        raise RuntimeError(f"expected src to have a size equal to the slice of self. src size = {list(src.shape)}, "
                           f"slice size = {list(target)}")
    if length == 0:
        return x
    src = src.to(x.dtype)
    if step > 1:  # spread src out: each element followed by step - 1 fillers, then cut to what fits
        spread = src.unsqueeze(d + 1)
        pads = tuple((0, step - 1) if k == d + 1 else (0, 0) for k in range(spread.ndim))
        spread = _view(spread, "pad", (pads, "constant", 0), spread.shape[:d + 1] + (step,) + spread.shape[d + 2:])
        src = spread.reshape(x.shape[:d] + (length * step,) + x.shape[d + 1:])._slice(d, 0, (length - 1) * step + 1, 1)
    span = src.shape[d]
    pads = tuple((start, n - start - span) if k == d else (0, 0) for k in range(x.ndim))
    placed = _view(src, "pad", (pads, "constant", 0), x.shape)
    at = arange(n)
    inside = (at >= start) & (at < start + span)
    if step > 1:
        inside = inside & ((at - start) % step == 0)
    return where(inside.reshape((n,) + (1,) * (x.ndim - d - 1)), placed, x)


def select_scatter(x: Tensor, src: Tensor, dim: int, index: int) -> Tensor:
    """torch.select_scatter: x with x.select(dim, index) replaced by src."""
    d = normalize_dim(dim, x.ndim)
    n = x.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size {list(x.shape)} at dimension {d}")
    target = x.shape[:d] + x.shape[d + 1:]
    if tuple(src.shape) != target:
        raise RuntimeError(f"expected src to have a size equal to the slice of self. src size = {list(src.shape)}, "
                           f"slice size = {list(target)}")
    index %= n
    return slice_scatter(x, src.unsqueeze(d), d, index, index + 1)


def diagonal_scatter(input, src, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:  # noqa: A002
    """torch.diagonal_scatter: input with input.diagonal(offset, dim1, dim2) replaced by src (its diagonal's
    shape: the other dims, then the diagonal's length)."""
    from .linalg import diagonal
    x = input
    d1, d2 = normalize_dim(dim1, x.ndim), normalize_dim(dim2, x.ndim)
    target = diagonal(x, offset, d1, d2).shape  # torch's checks of the dims
    if tuple(src.shape) != tuple(target):
        raise RuntimeError(f"expected src to have a size equal to the slice of self. src size = {list(src.shape)}, "
                           f"slice size = {list(target)}")
    length = target[-1]
    order = [k for k in range(x.ndim) if k not in (d1, d2)] + [d1, d2]
    inverse = tuple(order.index(k) for k in range(x.ndim))
    moved = x.permute(order)  # (..., rows along dim1, columns along dim2)
    if length == 0:
        return x.clone()
    n1, n2 = x.shape[d1], x.shape[d2]
    rows, cols = arange(n1).reshape(n1, 1), arange(n2).reshape(1, n2)
    on_diagonal = (cols - rows) == offset
    # row i's diagonal element is src[..., i - max(0, -offset)] (rows off the diagonal read a clamped one, unused)
    pick = minimum(maximum(arange(n1) - builtins.max(0, -offset), tensor(0, dtypes.int32)),
                   tensor(length - 1, dtypes.int32))
    placed = src.to(x.dtype).index_select(-1, pick).unsqueeze(-1)
    return where(on_diagonal, placed, moved).permute(inverse)


def masked_scatter(input, mask, source) -> Tensor:  # noqa: A002
    """torch.masked_scatter: input with the places where mask is True filled, in row-major order, by source's first
    elements. Where source has fewer elements than mask has places, the count of True is read back to check it
    (torch's error when it is short)."""
    from .elementwise_composites import _TORCH_TYPE_NAMES
    from .scans import cumsum
    from .shapes import broadcast_shapes
    x = input
    if mask.dtype != dtypes.bool_:
        raise RuntimeError(f"masked_scatter_ only supports boolean masks, but got mask with dtype "
                           f"{_TORCH_TYPE_NAMES[mask.dtype.name]}")
    if source.dtype != x.dtype:
        raise RuntimeError(f"masked_scatter: expected self and source to have same dtypes but got"
                           f"{_TORCH_TYPE_NAMES[x.dtype.name]} and {_TORCH_TYPE_NAMES[source.dtype.name]}")
    shape = broadcast_shapes(tuple(x.shape), tuple(mask.shape))
    x, mask = x.expand(shape), mask.expand(shape)
    count = math.prod(shape)
    if source.numel() < count and int(mask.sum().item()) > source.numel():
        raise RuntimeError("Number of elements of source < number of ones in mask")
    if source.numel() == 0 or count == 0:
        return x.clone()
    place = cumsum(mask.reshape(-1), 0) - 1  # the source element each True place takes
    place = minimum(maximum(place, tensor(0, dtypes.int32)), tensor(source.numel() - 1, dtypes.int32))
    return where(mask, source.reshape(-1).take(place).reshape(shape), x)
