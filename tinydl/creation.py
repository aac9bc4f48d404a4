"""Leaf tensors: uploads of host data (`tensor`, `from_numpy`; `_split_upload` for tensors larger than one
storage binding), constants (`full`, `zeros`, `ones`, ..., CONST nodes: formulas, never uploaded) and `arange`
(an IOTA node), with torch's checks of fill values. Part of the tensor API: tinydl._tensor re-exports
every name."""
from __future__ import annotations

import builtins
import math

import numpy as np

from . import dtypes, runtime
from .dtypes import DType
from .ops import BUFFER, IOTA, Node
from ._core import INDEX_LIMIT, Tensor, _cat_tree, _const, _varargs, _wrap


def _check_dtype_available(dtype: DType) -> None:
    if dtype == dtypes.float16:
        if not runtime.get_runtime().has_f16:
            raise RuntimeError("float16 needs the adapter feature 'shader-f16', which this adapter "
                               f"({runtime.get_runtime().adapter_name}) lacks")


def tensor(data, dtype=None) -> Tensor:
    """Copy data (nested lists, numbers, numpy arrays, torch tensors, tinydl tensors) to the GPU."""
    if isinstance(data, Tensor):
        return data.to(dtype) if dtype is not None else data
    if type(data).__module__.startswith("torch"):
        data = data.detach().cpu().numpy()
    arr = np.asarray(data)
    if arr.dtype == object:
        raise TypeError(f"cannot make a tensor from {type(data).__name__} holding mixed/non-numeric values")
    if dtype is None:
        target = dtypes.from_numpy_dtype(arr.dtype)
    else:
        target = dtypes.to_dtype(dtype)
    return from_numpy(arr, target)


def from_numpy(arr: np.ndarray, dtype: DType | None = None) -> Tensor:
    arr = np.asarray(arr)
    dtype = dtypes.from_numpy_dtype(arr.dtype) if dtype is None else dtypes.to_dtype(dtype)
    _check_dtype_available(dtype)
    if arr.dtype.kind in "iu" and dtype == dtypes.int32 and arr.size and arr.dtype.itemsize >= 4:
        lo, hi = arr.min(), arr.max()
        if lo < -2**31 or hi > 2**31 - 1:
            bad = lo if lo < -2**31 else hi
            raise RuntimeError(f"value cannot be converted to type int32 without overflow: {bad} "
                               f"(tinydl stores integers as int32)")
    host = np.ascontiguousarray(arr.astype(dtype.np, copy=False))
    if dtype == dtypes.bool_:
        host = host.astype(np.uint32)
    rt = runtime.get_runtime()
    if host.nbytes > rt.max_binding_size:
        return _split_upload(host, dtype, rt)
    buf = rt.upload(host, describe=f"tensor of shape {list(arr.shape)} ({dtype.name})")
    return _wrap(Node(BUFFER, None, (), None, arr.shape, dtype, buffer=buf))


def _split_upload(host: np.ndarray, dtype: DType, rt) -> Tensor:
    """A tensor larger than one storage binding (e.g. VGG's 411 MB fc weight on a 128 MiB adapter) is stored
    as several buffers joined by a lazy cat: kernels bind each piece, nothing is ever copied into one buffer.
    Split along dim 0 when a row fits in a binding, else over the flattened data."""
    shape = host.shape
    flat = host.ndim == 0 or host[0].nbytes > rt.max_binding_size
    rows = host.reshape(-1) if flat else host
    per = builtins.max(1, rt.max_binding_size // builtins.max(1, rows[0].nbytes) // 4 * 4)
    parts = []
    for i in range(0, rows.shape[0], per):
        piece = rows[i:i + per]
        buf = rt.upload(np.ascontiguousarray(piece), describe=f"piece of a tensor of shape {list(shape)}")
        parts.append(_wrap(Node(BUFFER, None, (), None, piece.shape, dtype, buffer=buf)))
    return _cat_tree(parts, 0).reshape(shape)


def full(shape, fill_value, dtype=None) -> Tensor:
    shape = _varargs(shape if isinstance(shape, (tuple, list)) else (shape,))
    if builtins.any(s < 0 for s in shape):
        raise RuntimeError(f"Trying to create tensor with negative dimension {builtins.min(shape)}: {list(shape)}")
    if dtype is None and isinstance(fill_value, (int, np.integer)) and not isinstance(fill_value, (bool, np.bool_)) \
            and not -2**31 <= fill_value < 2**31:  # torch: an int64 tensor, which tinydl does not store
        raise RuntimeError(f"value cannot be converted to type int32 without overflow: {fill_value} (tinydl stores "
                           f"integers as int32)")
    dtype = dtypes.scalar_dtype(fill_value) if dtype is None else dtypes.to_dtype(dtype)
    if dtype == dtypes.float16 and math.prod(shape) <= 1:  # torch fills one element without an overflow check
        return _const(_cast_scalar(fill_value, dtype), shape, dtype)
    return _const(_checked_scalar(fill_value, dtype), shape, dtype)


def zeros(*shape, dtype=None) -> Tensor:
    return full(_varargs(shape), 0.0, dtype or dtypes.float32)


def ones(*shape, dtype=None) -> Tensor:
    return full(_varargs(shape), 1.0, dtype or dtypes.float32)


empty = zeros


def zeros_like(t: Tensor, dtype=None) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype)


def ones_like(t: Tensor, dtype=None) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype)


def full_like(t: Tensor, fill_value, dtype=None) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype)


def arange(start, end=None, step=1, dtype=None) -> Tensor:
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    is_int = builtins.all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dtype = (dtypes.int32 if is_int else dtypes.float32) if dtype is None else dtypes.to_dtype(dtype)
    n = builtins.max(0, math.ceil((end - start) / step))
    if n >= INDEX_LIMIT:
        raise NotImplementedError(f"arange of {n} elements; tinydl indexes with 32-bit integers (at most "
                                  f"{INDEX_LIMIT - 1})")
    if dtype == dtypes.int32 and not -2**31 <= start + (n - 1) * step < 2**31 if n else False:
        raise RuntimeError(f"value cannot be converted to type int32 without overflow: {start + (n - 1) * step} "
                           f"(tinydl stores integers as int32)")
    return _wrap(Node(IOTA, None, (), (0, start, step), (n,), dtype))


_TORCH_SCALAR_NAMES = {"int32": "int", "float32": "float", "float16": "c10::Half"}


def _checked_scalar(v, dtype: DType):
    """A Python scalar converted to dtype as torch converts a fill value (full, masked_fill): floats truncate into
    int, NaN/Inf and values out of range raise torch's RuntimeError, anything is a bool."""
    if isinstance(v, Tensor):
        v = v.item()
    if dtype == dtypes.bool_:
        return builtins.bool(v)
    f = builtins.float(v)
    if dtype == dtypes.int32:
        ok = math.isfinite(f) and -2**31 <= (builtins.int(v) if isinstance(v, (int, np.integer)) else math.trunc(f)) < 2**31
    else:
        limit = 65504.0 if dtype == dtypes.float16 else 3.4028234663852886e38
        ok = not math.isfinite(f) or builtins.abs(f) <= limit or builtins.abs(f) < limit * (1 + 2**-24)
    if not ok:
        raise RuntimeError(f"value cannot be converted to type {_TORCH_SCALAR_NAMES[dtype.name]} without overflow")
    return _cast_scalar(v, dtype)


def _cast_scalar(v, dtype: DType):
    if dtype == dtypes.bool_:
        return builtins.bool(v)
    if dtype == dtypes.int32:
        return builtins.int(v)
    if dtype == dtypes.float16:  # a half value (2**40 -> inf), computed in f32
        with np.errstate(over="ignore"):
            return builtins.float(np.float16(v))
    return builtins.float(v)
