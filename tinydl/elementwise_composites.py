"""torch functions built as fused compositions of the op-table rows (elementwise.py): float functions beyond
the table (copysign, logit, xlogy, logaddexp, ...), comparisons and predicates (isclose, fmax, isposinf, ...),
and triu/tril/diff. Part of the tensor API: tinydl._tensor re-exports every name."""
from __future__ import annotations

import builtins

import numpy as np

from . import dtypes
from .shapes import normalize_dim
from .creation import arange, full, zeros
from ._core import Tensor
from .joining import cat
from .opmath import computes_in_float32
from .elementwise import (_TORCH_FLOAT_ONLY, _TORCH_INT_NAMES, _as_tensor, _check_float_only,  # noqa: A004
                          _result_dtype, abs, add, clamp, eq, exp, isfinite, isinf, isnan, le, log, log1p,
                          logical_not, maximum, mul, neg, ne, pow, sign, signbit, sin, sub, trunc, where)

_TORCH_TYPE_NAMES = {"float32": "Float", "float16": "Half", "int32": "Long", "bool": "Bool"}  # int32 stands for int64


def _floats(*args) -> list:
    """The operands as tensors of one float type: their promoted type, integers and bool as float32 (the result
    type of torch's float ops: atan2, xlogy, logaddexp, ...)."""
    if not builtins.any(isinstance(a, Tensor) for a in args):
        raise TypeError("expected at least one Tensor argument")
    dt = _result_dtype(args)
    dt = dt if dt.is_floating_point else dtypes.float32
    return [_as_tensor(a, dt).to(dt) for a in args]


def _check_float_result(op: str, *args) -> None:
    """torch's refusal where the operands' common type is an integer or bool (its kernel is float-only)."""
    dt = _result_dtype(args)
    if not dt.is_floating_point:
        raise NotImplementedError(f'"{_TORCH_FLOAT_ONLY[op]}" not implemented for \'{_TORCH_INT_NAMES[dt.name]}\'')


# -- float functions of torch's beyond the table: compositions of its rows (one fused chain each) ----------------
def copysign(input, other) -> Tensor:  # noqa: A002
    """|input| with other's sign bit; a float result (integers as float32)."""
    a, b = _floats(input, other)
    m = abs(a)
    if not isinstance(other, Tensor):  # a Python number's sign, read on the host (-0.0 included)
        return neg(m) if np.signbit(other) else m
    return where(signbit(b), neg(m), m)


def frac(input) -> Tensor:  # noqa: A002
    _check_float_only("frac", input)
    return input - trunc(input)


def logit(input, eps=None) -> Tensor:  # noqa: A002
    """log(z / (1 - z)) with z = input clamped to [eps, 1 - eps] when eps is given."""
    (z,) = _floats(input)
    if eps is not None:
        z = clamp(z, eps, 1 - eps)
    return log(z / (1 - z))


def xlogy(input, other) -> Tensor:  # noqa: A002
    """input * log(other), 0 where input is 0 (unless other is NaN)."""
    x, y = _floats(input, other)
    if not isinstance(other, Tensor):  # a number's log on the host (a literal log(-1.0) is refused by WGSL compilers)
        ly = builtins.float(np.log(np.float32(other))) if other > 0 else (
            -builtins.float("inf") if other == 0 else builtins.float("nan"))
        return x * ly if other != other else where(x == 0, 0.0, x * ly)  # other NaN: NaN everywhere, as torch
    return where((x == 0) & logical_not(isnan(y)), 0.0, x * log(y))


@computes_in_float32
def sinc(input) -> Tensor:  # noqa: A002
    """sin(pi x) / (pi x), 1 at 0 (pi x rounded to the float type first, as torch)."""
    (x,) = _floats(input)
    px = x * np.pi  # x read once (px == 0 exactly where x == 0): a computed x is not made a kernel of its own
    return where(px == 0, 1.0, sin(px) / px)


def deg2rad(input) -> Tensor:  # noqa: A002
    """input * (pi / 180), the constant in the float type as torch multiplies by it; integers give float32."""
    (x,) = _floats(input)
    return mul(x, 0.017453292519943295)


def rad2deg(input) -> Tensor:  # noqa: A002
    """input * (180 / pi), as deg2rad."""
    (x,) = _floats(input)
    return mul(x, 57.29577951308232)


@computes_in_float32
def logaddexp(input, other) -> Tensor:  # noqa: A002
    """log(exp(a) + exp(b)) as max + log1p(exp(-|a - b|)); equal infinities give themselves (no inf - inf)."""
    _check_float_result("logaddexp", input, other)
    a, b = _floats(input, other)
    m = maximum(a, b)
    return where(isinf(a) & (a == b), a, m + log1p(exp(neg(abs(a - b)))))


@computes_in_float32
def logaddexp2(input, other) -> Tensor:  # noqa: A002
    _check_float_result("logaddexp2", input, other)
    a, b = _floats(input, other)
    m = maximum(a, b)
    return where(isinf(a) & (a == b), a, m + log1p(pow(2.0, neg(abs(a - b)))) / np.log(2))


def nan_to_num(input, nan=0.0, posinf=None, neginf=None) -> Tensor:  # noqa: A002
    """NaN, +inf and -inf replaced (the infinities by the dtype's largest finite values unless given)."""
    x = input
    if not x.dtype.is_floating_point:
        return x
    big = builtins.float(np.finfo(x.dtype.np).max)
    inf = builtins.float("inf")
    return where(isnan(x), nan, where(x == inf, big if posinf is None else posinf,
                                      where(x == -inf, -big if neginf is None else neginf, x)))


def heaviside(input, values) -> Tensor:  # noqa: A002
    """0 below 0, 1 above, values at 0 (NaN gives 0, as torch's input > 0)."""
    if input.dtype != values.dtype:
        raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes.")
    return where(input == 0, values, (input > 0).to(input.dtype))


def _tensor_args(op: str, **args) -> None:
    """torch's TypeError for an op whose overloads take tensors only (fmax, fmin, isclose)."""
    for i, (name, v) in enumerate(args.items()):
        if not isinstance(v, Tensor):
            raise TypeError(f"{op}(): argument '{name}' (position {i + 1}) must be Tensor, not {type(v).__name__}")


def fmax(input, other) -> Tensor:  # noqa: A002
    """The larger of the two, a NaN operand ignored (NaN only where both are); equal values (-0.0 and 0.0) give
    input's, as torch."""
    _tensor_args("fmax", input=input, other=other)
    keep = input >= other
    return where(keep | isnan(other) if _result_dtype((input, other)).is_floating_point else keep, input, other)


def fmin(input, other) -> Tensor:  # noqa: A002
    """The smaller of the two, a NaN operand ignored, as fmax."""
    _tensor_args("fmin", input=input, other=other)
    keep = input <= other
    return where(keep | isnan(other) if _result_dtype((input, other)).is_floating_point else keep, input, other)


def clamp_min(input, min) -> Tensor:  # noqa: A002
    return clamp(input, min, None)


def clamp_max(input, max) -> Tensor:  # noqa: A002
    return clamp(input, None, max)


def sgn(input) -> Tensor:  # noqa: A002
    """torch.sgn: sign for real tensors."""
    return sign(input)


def angle(input) -> Tensor:  # noqa: A002
    """torch.angle of a real tensor: pi where it is negative (-inf too), 0 elsewhere (-0.0 too), NaN stays NaN;
    integers and bool give float32."""
    (x,) = _floats(input)
    return where(isnan(x), x, where(x < 0, _as_tensor(float(np.pi), x.dtype), _as_tensor(0.0, x.dtype)))


def positive(input) -> Tensor:  # noqa: A002
    """input itself (torch returns it); bool refused as torch."""
    if input.dtype == dtypes.bool_:
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return input


def rsub(input, other, *, alpha=1) -> Tensor:  # noqa: A002
    """torch.rsub: other - alpha * input."""
    if isinstance(other, (float, np.floating)) and input.dtype == dtypes.float16:
        other = builtins.float(np.float16(other))  # torch rounds the number to half first (as alpha: sub's _scaled)
    return sub(other, input, alpha=alpha)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:  # noqa: A002
    """|input - other| <= atol + rtol * |other| (finite differences only: equal infinities are close by equality),
    or equal, or both NaN with equal_nan; torch's order of operations (integers and bool compared in float32)."""
    _tensor_args("isclose", input=input, other=other)
    if input.dtype != other.dtype:
        raise RuntimeError(f"{_TORCH_TYPE_NAMES[input.dtype.name]} did not match "
                           f"{_TORCH_TYPE_NAMES[other.dtype.name]}")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    close = eq(input, other)
    if equal_nan and input.dtype.is_floating_point:
        close = close | (isnan(input) & isnan(other))
    if rtol == 0 and atol == 0:
        return close
    a, b = (v.float() if v.dtype == dtypes.bool_ else v for v in (input, other))
    allowed = add(abs(mul(b, rtol)), atol)
    actual = abs(sub(a, b))
    return close | (isfinite(actual) & le(actual, allowed))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:  # noqa: A002
    """isclose everywhere, as a Python bool."""
    return builtins.bool(isclose(input, other, rtol, atol, equal_nan).all().item())


def isposinf(input) -> Tensor:  # noqa: A002
    if not input.dtype.is_floating_point:
        return full(input.shape, False)
    return eq(input, builtins.float("inf"))


def isneginf(input) -> Tensor:  # noqa: A002
    if not input.dtype.is_floating_point:
        return full(input.shape, False)
    return eq(input, -builtins.float("inf"))


def isreal(input) -> Tensor:  # noqa: A002
    """True everywhere: tinydl's tensors are real."""
    return full(input.shape, True)


def masked_fill(input, mask, value) -> Tensor:  # noqa: A002
    """torch.masked_fill: Tensor.masked_fill as a function (input's dtype kept)."""
    return input.masked_fill(mask, value)


def square(input) -> Tensor:  # noqa: A002 - torch's name
    """torch.square: input ** 2 (integers and bool give int64: int32 here)."""
    return pow(input, 2)


def float_power(input, exponent) -> Tensor:  # noqa: A002
    if not isinstance(input, Tensor) and not isinstance(exponent, Tensor):  # torch's overloads take a tensor
        raise TypeError(f"float_power() received an invalid combination of arguments - got "
                        f"({type(input).__name__}, {type(exponent).__name__})")
    raise NotImplementedError("float_power computes in float64, which tinydl does not have (float32 and float16 "
                              "only): use pow, which computes in the inputs' float type")


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (cols - rows >= diagonal), zeros elsewhere."""
    return _triangle(x, diagonal, True)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (cols - rows <= diagonal), zeros elsewhere."""
    return _triangle(x, diagonal, False)


def _triangle(x: Tensor, diagonal: int, upper: bool) -> Tensor:
    r, c = x.shape[-2:]
    rows, cols = arange(r).reshape(r, 1), arange(c).reshape(1, c)
    keep = (cols - rows >= diagonal) if upper else (cols - rows <= diagonal)
    return where(keep, x, zeros((), dtype=x.dtype))


def diff(x: Tensor, n: int = 1, dim: int = -1, prepend=None, append=None) -> Tensor:
    """torch.diff: the n-th forward difference along dim (prepend/append joined first); bool: x[i+1] != x[i]."""
    parts = [p for p in (prepend, x, append) if p is not None]
    d = normalize_dim(dim, x.ndim)
    y = cat(parts, d) if len(parts) > 1 else x
    for _ in range(n):
        size = y.shape[d]
        hi, lo = y._slice(d, 1, size, 1), y._slice(d, 0, size - 1, 1)
        y = ne(hi, lo) if y.dtype == dtypes.bool_ else hi - lo
    return y

