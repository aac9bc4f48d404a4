"""Reductions and row norms as graph nodes: sum/prod/mean/max/min/argmax/argmin/any/all/var/std (lowering stages
those past kernels.reduce.STAGE_MAX elements: schedule/lower.py), softmax/log_softmax and the row kernels
(row_norm). Part of the tensor API:
tinydl._tensor re-exports every name."""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

from . import dtypes
from .ops import REDUCE, ROW_MAX_LEN, ROWNORM
from .shapes import normalize_dim, normalize_dims
from ._core import MaxMin, Tensor, _make
from .creation import full, zeros, zeros_like
from .opmath import computes_in_float32
from .elementwise import (_elementwise, abs, exp, isinf, isnan, log, logical_not, maximum, minimum, rsqrt, sqrt,
                          where)


def _reduce(op: str, x: Tensor, dim=None, keepdim=False) -> Tensor:
    axes = normalize_dims(dim, x.ndim)
    if op in ("max", "min", "argmax", "argmin") and x.numel() == 0:
        zero = next((a for a in axes if x.shape[a] == 0), None)
        if zero is not None or not axes:
            name = {"max": "max", "min": "min", "argmax": "argmax", "argmin": "argmin"}[op]
            if dim is None:
                raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                                   f"Specify the reduction dim with the 'dim' argument.")
            raise IndexError(f"{name}(): Expected reduction dim {zero} to have non-zero size.")
    kept = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    if op in ("argmax", "argmin"):
        out_dtype = dtypes.int32
    elif op in ("sum", "prod") and x.dtype.category < 2:
        out_dtype = dtypes.int32
    else:
        out_dtype = x.dtype
    # bool is reduced as int32 (0/1): sum/prod give int32 as torch's int64, max/min cast back to bool
    src = x.to(dtypes.int32) if x.dtype == dtypes.bool_ else x
    if not axes or x.ndim == 0:
        out = _elementwise("cast", src, arg=(out_dtype,)) if op not in ("argmax", "argmin") else zeros_like(x, dtypes.int32)
        return out
    R = math.prod(x.shape[a] for a in axes)
    if R > _INDEX_MAX:  # a flat reduced index past int32: the trailing axes first (< 2^31 together), then the rest
        inner = list(axes)
        while math.prod(x.shape[a] for a in inner) > _INDEX_MAX and len(inner) > 1:
            inner.pop(0)
        if math.prod(x.shape[a] for a in inner) > _INDEX_MAX:
            raise NotImplementedError(f"a reduction over a dimension of {x.shape[inner[0]]} elements: tinydl indexes "
                                      f"with 32-bit integers (dimensions up to {_INDEX_MAX})")
        part = _reduce(op, x, tuple(inner), True)
        return _reduce(op, part, tuple(a for a in axes if a not in inner), keepdim) if keepdim else \
            _reduce(op, part, tuple(a for a in axes if a not in inner), True).reshape(
                tuple(s for i, s in enumerate(x.shape) if i not in axes))
    out = _make(REDUCE, op, (src,), axes, kept, out_dtype if out_dtype != dtypes.bool_ else dtypes.int32)
    if out_dtype == dtypes.bool_:
        out = out.to(dtypes.bool_)
    if keepdim:
        return out
    return out.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))


_INDEX_MAX = 2**31 - 1  # kernels index with i32


def sum(x: Tensor, dim=None, keepdim=False, dtype=None) -> Tensor:  # noqa: A001
    # torch casts the input to dtype first (an int sum with dtype=float32 adds floats: no int32 overflow)
    return _reduce("sum", x.to(dtype) if dtype is not None else x, dim, keepdim)


def prod(x: Tensor, dim=None, keepdim=False, dtype=None) -> Tensor:
    return _reduce("prod", x.to(dtype) if dtype is not None else x, dim, keepdim)  # (cast first, as torch)


def mean(x: Tensor, dim=None, keepdim=False) -> Tensor:
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a floating point or "
                           f"complex dtype. Got: {x.dtype.name.capitalize()}")
    axes = normalize_dims(dim, x.ndim)
    n = math.prod(x.shape[a] for a in axes) if x.ndim else 1
    s = _reduce("sum", x, dim, keepdim)
    return s * (1.0 / n) if n else s * builtins.float("nan")


def _max_min(op, x, dim, keepdim):
    if dim is None:
        return _reduce(op, x, None, False)
    if isinstance(dim, Tensor):
        return (maximum if op == "max" else minimum)(x, dim)
    return MaxMin(_reduce(op, x, dim, keepdim), _reduce("arg" + op, x, dim, keepdim))


def max(x: Tensor, dim=None, keepdim=False):  # noqa: A001
    return _max_min("max", x, dim, keepdim)


def min(x: Tensor, dim=None, keepdim=False):  # noqa: A001
    return _max_min("min", x, dim, keepdim)


def amax(x, dim=None, keepdim=False):
    return _reduce("max", x, dim, keepdim)


def amin(x, dim=None, keepdim=False):
    return _reduce("min", x, dim, keepdim)


@computes_in_float32
def vector_norm(x: Tensor, ord=2, dim=None, keepdim=False, *, dtype=None) -> Tensor:  # noqa: A002 - torch's name
    """torch.linalg.vector_norm: (sum |x|^ord)^(1/ord) over dim (all when None); ord inf / -inf the largest /
    smallest |x|, ord 0 the count of non-zeros; dtype: x cast to it first."""
    if dtype is not None:
        if x.dtype.is_floating_point and dtype.itemsize < x.dtype.itemsize:
            names = {dtypes.float32: "Float", dtypes.float16: "Half"}
            raise RuntimeError(f"linalg.vector_norm: the dtype of the input ({names[x.dtype]}) should be convertible "
                               f"without narrowing to the specified dtype ({names[dtype]})")
        x = x.to(dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
                           f"{'Bool' if x.dtype == dtypes.bool_ else 'Int'}")
    if isinstance(ord, bool) or not isinstance(ord, (int, builtins.float)):
        raise TypeError(f"linalg_vector_norm(): argument 'ord' must be Number, not {type(ord).__name__}")
    if isinstance(dim, int):
        dim = (dim,)
    if ord == builtins.float("inf"):
        return amax(abs(x), dim, keepdim)
    if ord == -builtins.float("inf"):
        return amin(abs(x), dim, keepdim)
    if ord == 0:
        return sum(x != 0, dim, keepdim, dtype=x.dtype)
    if ord == 1:
        return sum(abs(x), dim, keepdim)
    if ord == 2:
        return sqrt(sum(x * x, dim, keepdim))
    return sum(abs(x) ** ord, dim, keepdim) ** (1.0 / ord)


def logsumexp(x: Tensor, dim, keepdim=False) -> Tensor:
    """log(sum(exp(x))) over dim, as torch: shifted by the max (0 where the max is infinite, so +inf stays +inf and
    all -inf gives -inf); integers as float32; over no elements -inf."""
    if not x.dtype.is_floating_point:
        x = x.to(dtypes.float32)
    axes = normalize_dims(dim, x.ndim)
    if x.numel() == 0 or builtins.any(x.shape[a] == 0 for a in axes):
        return log(sum(exp(x), dim, keepdim))
    top = amax(x, axes, keepdim=True)
    shift = where(isinf(top), zeros_like(top), top)
    out = log(sum(exp(x - shift), axes, keepdim=True)) + shift
    return out if keepdim else out.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))


def dist(input, other, p=2) -> Tensor:  # noqa: A002 - torch's names
    """torch.dist: the p-norm of input - other (broadcast together) over all their elements."""
    if isinstance(p, bool) or not isinstance(p, (int, builtins.float)):
        raise TypeError(f"dist(): argument 'p' (position 3) must be Number, not {type(p).__name__}")
    diff = input - other
    if not diff.dtype.is_floating_point:
        raise RuntimeError(f"norm(): input dtype should be either floating point or complex. Got "
                           f"{'Bool' if diff.dtype == dtypes.bool_ else 'Long'} instead.")
    return vector_norm(diff, p)


def norm(x: Tensor, p="fro", dim=None, keepdim=False, dtype=None) -> Tensor:
    """torch.norm / Tensor.norm: a vector norm over dim (all when None); "fro" is the 2-norm."""
    if p == "nuc":
        raise NotImplementedError("norm(p='nuc') (the nuclear norm: a singular value decomposition) is not "
                                  "supported")
    return vector_norm(x, 2 if p == "fro" or p is None else p, dim, keepdim, dtype=dtype)


def _arg_flat(op: str, x: Tensor, keepdim: bool) -> Tensor:
    """argmax/argmin over the flattened tensor; keepdim keeps every dim as size 1, as torch does."""
    if x.numel() == 0:
        raise IndexError(f"{op}(): Expected reduction dim to be specified for input.numel() == 0.")
    out = _reduce(op, x.reshape(-1), 0, False)
    return out.reshape((1,) * x.ndim) if keepdim else out


def _no_bool_arg(op: str, x: Tensor) -> None:
    if x.dtype == dtypes.bool_:
        raise RuntimeError(f"{op}(): does not support bool input")  # torch's words


def argmax(x: Tensor, dim=None, keepdim=False) -> Tensor:
    _no_bool_arg("argmax", x)
    if dim is None:
        return _arg_flat("argmax", x, keepdim)
    return _reduce("argmax", x, dim, keepdim)


def argmin(x: Tensor, dim=None, keepdim=False) -> Tensor:
    _no_bool_arg("argmin", x)
    if dim is None:
        return _arg_flat("argmin", x, keepdim)
    return _reduce("argmin", x, dim, keepdim)


def _any_all(op: str, x: Tensor, dim, keepdim) -> Tensor:
    """torch.any / torch.all: bool results (a value is true when nonzero, NaN included); over nothing, any is False
    and all is True."""
    axes = normalize_dims(dim, x.ndim)
    b = x.to(dtypes.bool_)
    if x.numel() == 0:
        shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape)) if keepdim else \
            tuple(s for i, s in enumerate(x.shape) if i not in axes)
        return full(shape, op == "all", dtype=dtypes.bool_)
    return _reduce("max" if op == "any" else "min", b, dim, keepdim)


def any(x: Tensor, dim=None, keepdim=False) -> Tensor:  # noqa: A001
    return _any_all("any", x, dim, keepdim)


def all(x: Tensor, dim=None, keepdim=False) -> Tensor:  # noqa: A001
    return _any_all("all", x, dim, keepdim)


def var(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None) -> Tensor:
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return _var_std(x, dim, keepdim, correction, False)


def std(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None) -> Tensor:
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return _var_std(x, dim, keepdim, correction, True)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None) -> tuple:  # noqa: A002
    """(var, mean) over dim; var_mean(x, True) is torch's (input, unbiased) overload."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None) -> tuple:  # noqa: A002
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def nansum(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:  # noqa: A002
    """The sum with NaNs counted as 0 (integers: the sum)."""
    x = input.to(dtype) if dtype is not None else input
    return sum(where(isnan(x), 0.0, x) if x.dtype.is_floating_point else x, dim, keepdim)


def nanmean(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:  # noqa: A002
    """nansum over the count of non-NaN values (NaN where there are none), as torch."""
    x = input.to(dtype) if dtype is not None else input
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"nanmean(): expected input to have floating point or complex dtype but got "
                           f"{'Bool' if x.dtype == dtypes.bool_ else 'Long'}")
    return nansum(x, dim, keepdim) / sum(logical_not(isnan(x)), dim, keepdim)


Aminmax = namedtuple("aminmax", ["min", "max"])  # torch.return_types.aminmax's fields


def aminmax(input, *, dim=None, keepdim=False) -> Aminmax:  # noqa: A002
    """(amin, amax) over dim (all when None: with keepdim, every dim kept as 1)."""
    x = input
    axes = normalize_dims(dim, x.ndim) if x.ndim else ()
    if x.numel() == 0 and (dim is None or builtins.any(x.shape[a] == 0 for a in axes)):
        raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as the operation has no "
                           "identity.")
    lo, hi = amin(x, dim, keepdim), amax(x, dim, keepdim)
    if dim is None and keepdim:
        lo, hi = lo.reshape((1,) * x.ndim), hi.reshape((1,) * x.ndim)
    return Aminmax(lo, hi)


def count_nonzero(input, dim=None) -> Tensor:  # noqa: A002
    return sum(input != 0, dim)


_F32_TINY = 2.0 ** -126  # the smallest normal float32


def _var_std(x: Tensor, dim, keepdim: bool, correction, take_sqrt: bool) -> Tensor:
    """var/std as torch CPU (a double accumulator): two-pass over x scaled by s = max|x| (a normal float, else 1),
    so neither the mean's sum nor the squared deviations overflow (|x| near 1e38) or underflow (|x| near 1e-30);
    var = var(x/s)·s·s and std = sqrt(var(x/s))·s overflow only where torch's result does. float16 is computed in
    float32 and rounded once. An inf in x makes x/s NaN (as torch's inf - inf), a NaN stays NaN."""
    if not x.dtype.is_floating_point:
        raise RuntimeError("std and var only support floating point and complex dtypes")  # torch's words
    axes = normalize_dims(dim, x.ndim)
    n = math.prod(x.shape[a] for a in axes) if x.ndim else 1
    denom = builtins.max(0, n - correction)
    x32 = x.float() if x.dtype == dtypes.float16 else x
    if n:
        m = _reduce("max", abs(x32), axes, True)
        s = where(m >= _F32_TINY, m, 1.0)
        y = x32 / s
    else:  # nothing to reduce (amax would raise): torch's nan
        s, y = None, x32
    mu = mean(y, axes, keepdim=True)
    centered = y - mu
    sq = _reduce("sum", centered * centered, axes, True)
    # no degrees of freedom: torch divides by zero (inf, or nan where the spread is 0)
    v = sq * (1.0 / denom) if denom else sq * builtins.float("inf")
    if take_sqrt:
        v = sqrt(v) * s if s is not None else sqrt(v)
    elif s is not None:
        v = v * s * s  # var(x/s) <= n, so (v * s) * s overflows only where the variance itself does
    if s is not None and x.dtype == dtypes.float32 and x.numel() == n:
        # torch reduces to one float32 value in two passes around a float32 mean (std_var_all_cpu): where the
        # float32 sum of x overflows, that mean is inf and so is the result (NaN stays NaN)
        total = mu * builtins.float(n) * s
        v = where(isinf(total) & ~isnan(v), builtins.float("inf"), v)
    if not keepdim:
        v = v.reshape(tuple(sz for i, sz in enumerate(x.shape) if i not in axes))
    return v.to(x.dtype)


def row_norm(x: Tensor, op: str, dim: int, eps: float | None = None, n_axes: int = 1) -> Tensor:
    """One-kernel softmax / log_softmax / layer_norm / rms_norm (ops.ROWNORM) over the `n_axes` axes ending at
    `dim`, without affine parameters; rows longer than ops.ROW_MAX_LEN are composed of (staged) reductions."""
    axes = tuple(range(dim - n_axes + 1, dim + 1))
    if math.prod(x.shape[a] for a in axes) > ROW_MAX_LEN:
        return _long_row_norm(x, op, axes, eps)
    return _make(ROWNORM, op, (x,), (eps, dim - n_axes + 1, dim), x.shape, x.dtype)


def _long_row_norm(x: Tensor, op: str, axes: tuple, eps) -> Tensor:
    """row_norm over rows too long for one workgroup's loops: reductions (staged) and elementwise ops, in float32."""
    x32 = x.float()
    if op in ("softmax", "safe_softmax", "log_softmax"):
        mx = _reduce("max", x32, axes, True)
        shifted = x32 - mx
        if op == "log_softmax":
            y = shifted - log(_reduce("sum", exp(shifted), axes, True))
        else:
            e = exp(shifted)
            y = e / _reduce("sum", e, axes, True)
            if op == "safe_softmax":  # a row of -inf only: 0, not NaN
                y = where(mx == float("-inf"), 0.0, y)
    elif op == "layer_norm":
        centered = x32 - mean(x32, axes, keepdim=True)
        y = centered * rsqrt(mean(centered * centered, axes, keepdim=True) + eps)
    elif op == "rms_norm":
        y = x32 * rsqrt(mean(x32 * x32, axes, keepdim=True) + eps)
    else:
        raise AssertionError(op)
    return y.to(x.dtype)


def softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    x = x.to(dtype) if dtype is not None else (x if x.dtype.is_floating_point else x.float())
    d = normalize_dim(dim, x.ndim)
    if x.numel() == 0:  # nothing to normalize (a max over a zero-size dim would raise): empty, as torch
        return zeros(x.shape, dtype=x.dtype)
    if x.ndim == 0:
        e = exp(x - _reduce("max", x, d, True))
        return e / _reduce("sum", e, d, True)
    return row_norm(x, "softmax", d)


def log_softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    x = x.to(dtype) if dtype is not None else (x if x.dtype.is_floating_point else x.float())
    d = normalize_dim(dim, x.ndim)
    if x.numel() == 0:
        return zeros(x.shape, dtype=x.dtype)
    if x.ndim == 0:
        shifted = x - _reduce("max", x, d, True)
        return shifted - log(_reduce("sum", exp(shifted), d, True))
    return row_norm(x, "log_softmax", d)


def trapezoid(y: Tensor, x=None, *, dx=None, dim: int = -1) -> Tensor:
    """torch.trapezoid / trapz: the trapezoidal rule along dim, at sample points x (a tensor broadcast against y,
    or a 1-D one along dim) or a constant spacing dx (default 1), in torch's formulas."""
    d = normalize_dim(dim, y.ndim)
    n = y.shape[d]
    if n == 0:  # no samples: zeros, as numpy
        return zeros(y.shape[:d] + y.shape[d + 1:], dtype=y.dtype)
    if y.dtype == dtypes.bool_ or (isinstance(x, Tensor) and x.dtype == dtypes.bool_):
        raise RuntimeError("trapezoid: received a bool input for `y`, but bool is not supported")
    if x is None:
        step = 1.0 if dx is None else float(dx)
        return (sum(y, d) - (y.select(d, 0) + y.select(d, -1)) * 0.5) * step
    if x.ndim == 1:
        if x.shape[0] != n:
            raise RuntimeError("trapezoid: There must be one `x` value for each sample point")
        x = x.reshape((1,) * d + (n,) + (1,) * (y.ndim - d - 1))
    elif x.ndim < y.ndim:
        x = x.reshape((1,) * (y.ndim - x.ndim) + tuple(x.shape))
    spacing = x.narrow(d, 1, x.shape[d] - 1) - x.narrow(d, 0, x.shape[d] - 1)
    return sum((y.narrow(d, 0, n - 1) + y.narrow(d, 1, n - 1)) * spacing, d) / 2.0


trapz = trapezoid
