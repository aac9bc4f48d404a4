"""Sorting along a dim: `sort`, `argsort`, `msort`, `topk`, `kthvalue`, with torch's signatures, results and errors.

Each is one SORT kernel (kernels/sort.py) giving the indices of each row's first k in order, stable (equal
elements keep their order; NaN sorts above +inf, as torch), and a gather of the values. Rows of up to
kernels.sort.SORT_MAX elements sort whole; longer rows take topk / kthvalue with k <= kernels.sort.TOPK_MAX on the
GPU too. Longer rows asked for more (a sort of 2,533 detection scores) are read back and ordered on the host in the
same order, and the indices uploaded: correct, a read-back (so a jit runs such a function each call rather than
replaying it). Part of the tensor API: Tensor's methods delegate here.
"""
from __future__ import annotations

import builtins
import math

from . import dtypes
from ._core import MaxMin, Tensor, _make
from .creation import arange, tensor, zeros
from .indexing import gather_rows
from .kernels import sort as sort_kernel
from .ops import SORT
from .shapes import normalize_dim


def _first_k(x: Tensor, dim: int, k: int, descending: bool, what: str) -> MaxMin:
    """(values, indices) of the first k along dim in sorted order, dim keeping its place (size k)."""
    if x.ndim == 0:
        out = _first_k(x.reshape(1), 0, k, descending, what)
        return MaxMin(out.values.reshape(()), out.indices.reshape(()))
    d = normalize_dim(dim, x.ndim)
    n = x.shape[d]
    moved = x.transpose(d, -1)  # (its own inverse: it moves the result back too)
    shape = moved.shape[:-1] + (k,)
    if k == 0 or math.prod(shape) == 0:
        idx = zeros(shape, dtype=dtypes.int32)
        return MaxMin(zeros(shape, dtype=x.dtype).transpose(d, -1), idx.transpose(d, -1))
    rows = moved.reshape(-1, n)
    if sort_kernel.trips(n, k) is None:
        idx = tensor(_host_order(rows.numpy(), descending)[:, :k])
    else:
        idx = _make(SORT, None, (rows,), (k, bool(descending)), (rows.shape[0], k), dtypes.int32)
    flat = idx + arange(rows.shape[0], dtype=dtypes.int32).reshape(-1, 1) * n if rows.shape[0] > 1 else idx
    values = gather_rows(rows.reshape(-1), flat)  # (in range by construction: no check)
    return MaxMin(values.reshape(shape).transpose(d, -1), idx.reshape(shape).transpose(d, -1))


def _host_order(rows, descending: bool):
    """The SORT kernel's order of each row of a host array, as int32 indices: stable, NaN above +inf."""
    import numpy as np
    if rows.dtype.kind == "f":
        nan = np.isnan(rows)
        values = np.where(nan, 0, rows).astype(np.float64)
        # lexsort: stable, the last key first (NaN after every number ascending, before every number descending)
        keys = (-values, ~nan) if descending else (values, nan)
        order = np.stack([np.lexsort((v, f)) for v, f in zip(*keys)]) if len(rows) else np.zeros(rows.shape, np.int64)
    else:
        values = rows.astype(np.int64)
        order = np.argsort(-values if descending else values, axis=-1, kind="stable")
    return order.astype(np.int32)


def _dim_size(x: Tensor, dim: int) -> int:
    """The size of dim (checked as torch does; a 0-d tensor has one element along dim 0 or -1)."""
    d = normalize_dim(dim, builtins.max(x.ndim, 1))
    return x.shape[d] if x.ndim else 1


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> MaxMin:
    """torch.sort: (values, indices); always stable (torch's stable=False allows any order of equal elements)."""
    return _first_k(x, dim, _dim_size(x, dim), descending, "sort")


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return sort(x, dim, descending, stable).indices


def msort(x: Tensor) -> Tensor:
    return sort(x, 0).values


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> MaxMin:
    """torch.topk: the k largest (smallest) along dim, in order (sorted=False allows any order; they come sorted);
    ties go to the lowest indices."""
    n = _dim_size(x, dim)
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"topk(): argument 'k' must be int, not {type(k).__name__}")
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    return _first_k(x, dim, k, largest, "topk")


def kthvalue(x: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> MaxMin:
    """torch.kthvalue: the k-th smallest along dim (1-based) and its index."""
    n = _dim_size(x, dim)
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"kthvalue(): argument 'k' must be int, not {type(k).__name__}")
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension "
                           f"{normalize_dim(dim, builtins.max(x.ndim, 1))}")
    first = _first_k(x, dim, k, False, "kthvalue")
    if x.ndim == 0:
        return first
    d = normalize_dim(dim, x.ndim)
    pick = (slice(None),) * d + (slice(k - 1, k),)
    values, indices = first.values[pick], first.indices[pick]
    if not keepdim:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return MaxMin(values, indices)


def median(x: Tensor, dim=None, keepdim: bool = False):
    """torch.median: the lower of the two middle values ((n - 1) // 2-th smallest) of all elements (dim=None: a 0-d
    tensor) or along dim ((values, indices)); a row holding NaN gives NaN (and the index of its first NaN)."""
    from .elementwise import isnan, where
    if x.dtype == dtypes.bool_:
        raise NotImplementedError("\"median_cpu\" not implemented for 'Bool'")
    if dim is None:
        if x.numel() == 0:
            return tensor(math.nan, x.dtype) if x.dtype.is_floating_point else tensor(0, x.dtype)
        return median(x.reshape(-1), 0).values
    n = _dim_size(x, dim)
    d = normalize_dim(dim, builtins.max(x.ndim, 1))
    if n == 0:
        raise IndexError(f"median(): Expected reduction dim {d} to have non-zero size.")
    middle = kthvalue(x, (n - 1) // 2 + 1, dim, keepdim)
    if not x.dtype.is_floating_point or x.ndim == 0:
        return middle
    nan = isnan(x)
    has_nan = nan.any(d, keepdim=keepdim)
    first_nan = nan.to(dtypes.int32).argmax(d, keepdim=keepdim)
    return MaxMin(where(has_nan, tensor(math.nan, x.dtype), middle.values),
                  where(has_nan, first_nan, middle.indices))


def nanmedian(x: Tensor, dim=None, keepdim: bool = False):
    """torch.nanmedian: the median of the values that are not NaN (the lower middle one, from torch's stable order),
    NaN where a row holds nothing else; all elements (dim=None: a 0-d tensor) or along dim ((values, indices)).
    Where values tie (or a row is all NaN) the index is the stable order's; torch's comes from its selection
    algorithm and may name another of the equal elements (torch documents no choice)."""
    from .elementwise import isnan, maximum
    if not x.dtype.is_floating_point:
        return median(x, dim, keepdim)
    if dim is None:
        if x.numel() == 0:
            return tensor(math.nan, x.dtype)
        return nanmedian(x.reshape(-1), 0).values
    n = _dim_size(x, dim)
    d = normalize_dim(dim, builtins.max(x.ndim, 1))
    if n == 0:
        raise IndexError(f"nanmedian(): Expected reduction dim {d} to have non-zero size.")
    if x.ndim == 0:
        return MaxMin(x, tensor(0, dtypes.int32))
    ordered = sort(x, d)  # NaN last, equal values in their order
    count = (~isnan(x)).to(dtypes.int32).sum(d, keepdim=True)
    at = maximum(count - 1, tensor(0, dtypes.int32)) // 2  # a row of NaN only: its first, NaN
    values, indices = ordered.values.gather(d, at), ordered.indices.gather(d, at)
    if not keepdim:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return MaxMin(values, indices)


def bucketize(input, boundaries, *, out_int32: bool = False, right: bool = False) -> Tensor:  # noqa: A002
    """torch.bucketize: the bucket of each value among 1-D sorted boundaries (searchsorted with the arguments
    swapped)."""
    if not isinstance(boundaries, Tensor) or boundaries.ndim != 1:
        ndim = boundaries.ndim if isinstance(boundaries, Tensor) else 0
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({ndim})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


# test sets up to this size are compared element by element (one fused reduction); larger ones sorted and searched
ISIN_COMPARED = 1024


def isin(elements, test_elements, *, assume_unique: bool = False, invert: bool = False) -> Tensor:
    """torch.isin: whether each element equals some test element (compared in their common dtype; NaN equals
    nothing); invert: the opposite. assume_unique changes nothing here."""
    from .elementwise import eq, logical_not
    from .indexing import take
    e = elements if isinstance(elements, Tensor) else tensor(elements)
    t = test_elements if isinstance(test_elements, Tensor) else tensor(test_elements)
    common = dtypes.promote(e.dtype, t.dtype)
    e, t = e.to(common), t.reshape(-1).to(common)
    if t.numel() <= ISIN_COMPARED:
        found = eq(e.unsqueeze(-1), t).any(-1)
    else:
        ordered = sort(t)[0]
        at = searchsorted(ordered, e).clamp(max=t.numel() - 1)
        found = eq(take(ordered, at), e)
    return logical_not(found) if invert else found


def searchsorted(sorted_sequence, input, *, out_int32: bool = False, right: bool = False, side=None,  # noqa: A002
                 sorter=None, out=None) -> Tensor:
    """torch.searchsorted: for each value, the index where it would go in its row of sorted_sequence (1-D, or with
    input's leading dims) to keep it sorted: before equal values (left) or after them (right=True or side='right').
    Torch's own binary search, step for step (its comparisons, so NaNs land where torch puts them); int32 indices."""
    from .elementwise import ge, gt, logical_not, minimum, where
    from .indexing import gather, take
    if out is not None:
        raise NotImplementedError("searchsorted(out=...): tinydl tensors are not written in place")
    if side is not None and side not in ("left", "right"):
        raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
    if side is not None and right and side == "left":
        raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, got side of left while "
                           "right was True")
    right = right or side == "right"
    seq = sorted_sequence if isinstance(sorted_sequence, Tensor) else tensor(sorted_sequence)
    scalar = not isinstance(input, Tensor)
    values = tensor(input) if scalar else input
    if scalar and seq.ndim != 1:
        raise RuntimeError(f"torch.searchsorted(): input value can be a scalar only when boundaries tensor dimension "
                           f"is 1, but we got boundaries tensor dim({seq.ndim}) and input value's dim(0) numel(1)")
    if seq.ndim == 0 or (seq.ndim > 1 and (values.ndim != seq.ndim or values.shape[:-1] != seq.shape[:-1])):
        raise RuntimeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 dimensions "
                           f"of boundaries tensor and input value tensor must match, but we got boundaries tensor "
                           f"{list(seq.shape)} and input value tensor {list(values.shape)}")
    if sorter is not None:
        if tuple(sorter.shape) != tuple(seq.shape):
            raise RuntimeError(f"torch.searchsorted(): boundary and sorter must have the same size, but got boundary "
                               f"tensor {list(seq.shape)}and got sorter tensor {list(sorter.shape)}")
        seq = gather(seq, -1, sorter)
    common = dtypes.promote(seq.dtype, values.dtype)
    seq, values = seq.to(common), values.to(common)
    n = seq.shape[-1]
    start = zeros(*values.shape, dtype=dtypes.int32) if values.ndim else tensor(0, dtypes.int32)
    if n == 0:
        return start
    end = start + n
    for _ in range(n.bit_length()):  # each step at least halves every interval of n + 1 places
        active = start < end
        mid = start + (end - start) // 2
        at = minimum(mid, tensor(n - 1, dtypes.int32))  # finished lanes may point one past the end
        mid_val = take(seq, at) if seq.ndim == 1 else gather(seq, -1, at)
        after = logical_not(gt(mid_val, values) if right else ge(mid_val, values))
        start = where(active & after, mid + 1, start)
        end = where(active & logical_not(after), mid, end)
    return start


def unique(x: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,  # noqa: A002
           dim=None):
    """torch.unique: the distinct values in ascending order (sorted=False too, as torch's CPU kernel gives them),
    with the index of each element's value (return_inverse, x's shape) and each value's count (return_counts). The
    result's size depends on the values, so x is read back and the distinct values found on the host (NaNs count
    as distinct values each, as torch's). dim: the distinct slices along dim."""
    import numpy as np
    from .creation import tensor
    host = x.numpy()
    if dim is None:
        flat = host.reshape(-1)
        values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True, equal_nan=False)
        inverse = inverse.reshape(host.shape)
    else:
        d = normalize_dim(dim, x.ndim)
        if x.shape[d] == 0 and host.size == 0:
            values, inverse, counts = host, np.zeros((0,), np.int64), np.zeros((0,), np.int64)
        else:
            values, inverse, counts = np.unique(host, return_inverse=True, return_counts=True, axis=d)
            inverse = inverse.reshape(-1)
    out = [tensor(values, x.dtype)]
    if return_inverse:
        out.append(tensor(inverse.astype(np.int32)))
    if return_counts:
        out.append(tensor(counts.astype(np.int32)))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(x: Tensor, return_inverse: bool = False, return_counts: bool = False, dim=None):
    """torch.unique_consecutive: each run of equal consecutive elements (or slices along dim) once, with each
    element's run (return_inverse) and each run's length (return_counts); read back and found on the host, as
    unique's."""
    import numpy as np
    host = x.numpy()
    if dim is None:
        flat = host.reshape(-1)
        starts = np.ones(flat.shape, bool)
        starts[1:] = flat[1:] != flat[:-1]
        values, inverse_shape = flat[starts], host.shape
    else:
        d = normalize_dim(dim, x.ndim)
        moved = np.moveaxis(host, d, 0)
        starts = np.ones(moved.shape[0], bool)
        if moved.shape[0] > 1:
            starts[1:] = (moved[1:] != moved[:-1]).reshape(moved.shape[0] - 1, -1).any(1)
        values, inverse_shape = np.moveaxis(moved[starts], 0, d), (moved.shape[0],)
    runs = np.cumsum(starts) - 1
    out = [tensor(values, x.dtype)]
    if return_inverse:
        out.append(tensor(runs.reshape(inverse_shape).astype(np.int32)))
    if return_counts:
        out.append(tensor(np.bincount(runs, minlength=int(starts.sum())).astype(np.int32) if runs.size else
                          np.zeros(0, np.int32)))
    return out[0] if len(out) == 1 else tuple(out)


__all__ = ["sort", "argsort", "msort", "topk", "kthvalue", "median", "nanmedian", "searchsorted", "unique",
           "unique_consecutive"]
