"""Parity helpers: compare tinydl results with torch/numpy values."""
from __future__ import annotations

import numpy as np

from .tensor import Tensor

_DTYPE_NAMES = {"float32": "float32", "float16": "float16", "int32": "int32", "int64": "int32", "bool": "bool",
                "float64": "float32"}


def to_numpy(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.numpy()
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _dtype_name(x) -> str:
    if isinstance(x, Tensor):
        return x.dtype.name
    name = str(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype).replace("torch.", "")
    return _DTYPE_NAMES.get(name, name)


def assert_close(actual, expected, rtol: float = 1e-4, atol: float = 1e-5, check_dtype: bool = True,
                 equal_nan: bool = True) -> None:
    """Raise AssertionError unless actual ≈ expected elementwise (|a - e| <= atol + rtol * |e|), with the
    same shape (and, by default, the same dtype, where torch's int64 counts as tinydl's int32)."""
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(f"shape mismatch: got {list(a.shape)}, expected {list(e.shape)}")
    if check_dtype and _dtype_name(actual) != _dtype_name(expected):
        raise AssertionError(f"dtype mismatch: got {_dtype_name(actual)}, expected {_dtype_name(expected)}")
    if a.dtype == np.bool_ or e.dtype == np.bool_:
        bad = a != e
        if bad.any():
            i = np.unravel_index(np.argmax(bad), a.shape)
            raise AssertionError(f"{bad.sum()} of {a.size} booleans differ (first at {tuple(map(int, i))}: "
                                 f"got {a[i]}, expected {e[i]})")
        return
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    ok = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if not ok.all():
        err = np.array(np.abs(a64 - e64))  # np.array: a 0-d result stays an array
        err[np.isnan(err)] = np.inf
        i = np.unravel_index(np.argmax(np.where(ok, -1, err)), a.shape)
        raise AssertionError(
            f"{(~ok).sum()} of {a.size} elements differ beyond rtol={rtol}, atol={atol}: worst at {tuple(map(int, i))}"
            f" got {a64[i]!r}, expected {e64[i]!r} (abs err {err[i]:.3g}); max abs err {np.nanmax(err):.3g}")


def max_error(actual, expected) -> tuple[float, float]:
    """(max abs error, max relative error) between two values."""
    a, e = to_numpy(actual).astype(np.float64), to_numpy(expected).astype(np.float64)
    if a.size == 0:
        return 0.0, 0.0
    abs_err = np.abs(a - e)
    return float(abs_err.max()), float((abs_err / np.maximum(np.abs(e), 1e-12)).max())
