"""Elementwise ops as graph nodes: torch's type promotion (tensors with dims decide, then 0-dim tensors, then
Python scalars), its scalar rules for float16 and int64, its errors for dtypes an op refuses, and one ELEMENTWISE
node per op (the op's WGSL is one row of kernels/snippets.py). Functions composed of several rows are in
elementwise_composites.py. Part of the tensor API: tinydl._tensor re-exports every name."""
from __future__ import annotations

import builtins

import numpy as np

from . import dtypes
from .dtypes import DType
from .ops import ELEMENTWISE, ELEMENTWISE_OPS
from .shapes import broadcast_shapes
from .creation import _cast_scalar, _checked_scalar, full, tensor
from ._core import Scalar, Tensor, _const, _make
from .opmath import computes_in_float32, rounds_per_op


def _as_tensor(x, like_dtype: DType) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, Scalar):  # a float16 op's scalar stays float32 (torch's opmath); _elementwise rounds add's
        v = builtins.float(x) if like_dtype == dtypes.float16 else _cast_scalar(x, like_dtype)
        return _const(v, (), like_dtype)
    if type(x).__module__.startswith("torch") or isinstance(x, (np.ndarray, list)):
        return tensor(x)
    raise TypeError(f"unsupported operand type {type(x).__name__}")


_COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")
# torch (CPU) with a float16 tensor and a Python float: these ops round the scalar to half first (measured per op);
# mul, div, and floor/trunc division with the scalar second compute with it in float32 (opmath); the scalar first
# (3.3 // x) becomes a half tensor. clamp, masked_fill and pow also raise for a scalar beyond half's range.
_HALF_SCALAR_OPS = ("add", "sub", "where", "remainder", "fmod", "pow") + _COMPARISONS
_HALF_SCALAR_FIRST_OPS = ("floor_divide", "trunc_divide")


def _rounds_half_scalar(op: str, position: int) -> bool:
    return op in _HALF_SCALAR_OPS or (op in _HALF_SCALAR_FIRST_OPS and position == 0)


def _int64_scalars(op: str, args: tuple, value_args) -> tuple:
    """Python ints beyond int32 in an integer op. With an int32 tensor torch computes in int32 and wraps the int
    (x + 2**40 is x; literal() wraps it). With only bool tensors torch computes in int64: comparisons of 0/1 with
    the int give what they give with the int clamped to int32; arithmetic results tinydl could not store raise."""
    if builtins.any(isinstance(a, Tensor) and a.dtype == dtypes.int32 for a in value_args):
        if op == "where" and builtins.any(isinstance(a, (int, np.integer)) and not -2**31 <= a < 2**31 for a in args):
            raise RuntimeError("value cannot be converted to type int without overflow")  # torch checks where's
        return args
    out = list(args)
    for i, a in enumerate(args):
        if isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) and not -2**31 <= a < 2**31:
            if op not in _COMPARISONS:
                raise RuntimeError(f"{op} of a bool tensor and {builtins.int(a)} gives int64 values in torch, which do "
                                   f"not fit int32 (tinydl stores integers as int32)")
            out[i] = builtins.min(builtins.max(builtins.int(a), -2**31), 2**31 - 1)
    return tuple(out)


def _result_dtype(values) -> DType:
    """torch's promotion: tensors with dimensions decide; zero-dim tensors, then Python scalars, can only raise
    the category (half x + float32 0-dim mask -> half, as in a float16 model's exported constants)."""
    dt = zero_dt = None
    for a in values:
        if isinstance(a, Tensor) and a.ndim:
            dt = a.dtype if dt is None else dtypes.promote(dt, a.dtype)
        elif isinstance(a, Tensor):
            zero_dt = a.dtype if zero_dt is None else dtypes.promote(zero_dt, a.dtype)
    if zero_dt is not None and (dt is None or zero_dt.category > dt.category):
        dt = zero_dt
    for a in values:
        if not isinstance(a, Tensor):
            dt = dtypes.scalar_dtype(a) if dt is None else dtypes.promote_with_scalar(dt, a)
    return dt


def _elementwise(op: str, *args, arg=()) -> Tensor:
    spec = ELEMENTWISE_OPS[op]
    tensors = [a for a in args if isinstance(a, Tensor)]
    if not tensors:
        raise TypeError(f"{op}(): expected at least one Tensor argument")
    value_args = args[1:] if op == "where" else args
    dt = _result_dtype(value_args)
    if dt == dtypes.int32:
        args = _int64_scalars(op, args, value_args)
    if dt == dtypes.float16 and (op in _HALF_SCALAR_OPS or op in _HALF_SCALAR_FIRST_OPS):  # rounded to half
        args = tuple(_cast_scalar(a, dt) if isinstance(a, Scalar) and not isinstance(a, (bool, np.bool_))  # 2**40: inf
                     and _rounds_half_scalar(op, i) else a for i, a in enumerate(args))
    ts = [_as_tensor(a, dt if not (op == "where" and i == 0) else dtypes.bool_) for i, a in enumerate(args)]
    if op == "where":
        if ts[0].dtype != dtypes.bool_:
            raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                               f"{ts[0].dtype.name}")
        ts = [ts[0]] + [t.to(dt) for t in ts[1:]]
    elif op == "cast":
        dt = arg[0]
    else:
        if spec.result == "float" or (not spec.ints and dt.category < 2) or (op == "pow" and dt == dtypes.bool_):
            dt = dtypes.float32 if dt.category < 2 else dt
        if op in ("logical_and", "logical_or", "logical_not"):  # truth in the promoted dtype, as torch: a float32
            ts = [t.to(dt) for t in ts]                          # zero-dim 1e-9 beside float16 values is 0
            dt = dtypes.bool_
        # torch's half kernels read a float32 zero-dim tensor in the second place as a float32 scalar (opmath)
        ts = [t if i == 1 and dt == dtypes.float16 and t.ndim == 0 and t.dtype == dtypes.float32
              and not _rounds_half_scalar(op, i) else t.to(dt) for i, t in enumerate(ts)]
    shape = broadcast_shapes(*(t.shape for t in ts))
    ts = [t.expand(shape) for t in ts]
    out = dtypes.bool_ if spec.result == "bool" else dt
    t = _make(ELEMENTWISE, op, ts, tuple(arg), shape, out)
    if out == dtypes.float16 and not rounds_per_op():
        t.node.rounds = False
    return t


# float-only activations and roundings: torch's kernel names in its "not implemented for 'Int'" errors
_TORCH_FLOAT_ONLY = {"hardswish": "hardswish_cpu", "hardsigmoid": "hardsigmoid_cpu", "leaky_relu": "leaky_relu_cpu",
                     "elu": "elu_cpu", "gelu": "GeluKernelImpl", "gelu_tanh": "GeluKernelImpl", "silu": "silu_cpu",
                     "mish": "mish_cpu", "softplus": "softplus_cpu",
                     "hardshrink": "hardshrink_cpu", "glu": "glu_cpu", "log_sigmoid": "log_sigmoid_cpu",
                     "softshrink": "softshrink_check", "frac": "frac_cpu",
                     "logaddexp": "logaddexp_cpu", "logaddexp2": "logaddexp2_cpu", "im2col": "im2col_out_cpu",
                     "col2im": "col2im_out_cpu"}
_TORCH_BOOL_ONLY = {"floor": "floor_vml_cpu", "ceil": "ceil_vml_cpu", "round": "round_vml_cpu",
                    "trunc": "trunc_vml_cpu"}
_TORCH_INT_NAMES = {"int32": "Int", "bool": "Bool"}


def _check_float_only(op: str, x) -> None:
    if not isinstance(x, Tensor) or x.dtype.is_floating_point:
        return
    name = _TORCH_FLOAT_ONLY.get(op) or (_TORCH_BOOL_ONLY.get(op) if x.dtype == dtypes.bool_ else None)
    if name:
        raise NotImplementedError(f'"{name}" not implemented for \'{_TORCH_INT_NAMES[x.dtype.name]}\'')


def _unary(op):
    def f(x, *a):
        _check_float_only(op, x)
        if op == "relu6" and isinstance(x, Tensor) and not x.dtype.is_floating_point:
            if x.dtype == dtypes.bool_:
                raise RuntimeError("Bool inputs not supported for hardtanh")
            return clamp(x, 0, 6)  # hardtanh(x, 0, 6): int stays int
        if isinstance(x, Tensor) and x.dtype == dtypes.int32 and op in ("floor", "ceil", "round", "trunc"):
            return x  # torch keeps integer tensors (values and dtype) under floor/ceil/round
        if op == "neg" and isinstance(x, Tensor) and x.dtype == dtypes.bool_:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                               "to invert a mask, use the `~` or `logical_not()` operator instead.")
        if op in ("abs", "relu") and isinstance(x, Tensor) and x.dtype == dtypes.bool_:
            raise RuntimeError(f"Boolean inputs not supported for {op}")
        return _elementwise(op, _as_tensor(x, dtypes.float32), arg=a)
    f.__name__ = op
    return f


def _binary(op):
    def f(input, other):  # (torch's parameter names: an fx call may pass them by name)
        a, b = input, other
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            a = tensor(a)
        if op == "sub":
            n_bool = builtins.sum(1 for v in (a, b) if (v.dtype == dtypes.bool_ if isinstance(v, Tensor)
                                                        else isinstance(v, (bool, np.bool_))))
            if n_bool == 2:
                raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. Use the "
                                   "`^` or `logical_xor()` operator instead.")
            if n_bool == 1:
                raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                                   "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
        return _elementwise(op, a, b)
    f.__name__ = op
    return f


neg, abs, sign, relu, exp, log, sqrt, rsqrt, reciprocal, sin, cos, tanh, sigmoid, relu6, silu, hardswish, \
    hardsigmoid, mish, erf, floor, ceil, _round, logical_not, log1p, expm1, trunc = (
        _unary(n) for n in "neg abs sign relu exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu6 silu "
                           "hardswish hardsigmoid mish erf floor ceil round logical_not log1p expm1 trunc".split())
fix = trunc
# torch's float functions (WGSL in kernels/math_functions.py); integer and bool tensors give float32
tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh, log2, log10, exp2, erfc, erfinv = (
    _unary(n) for n in "tan asin acos atan sinh cosh asinh acosh atanh log2 log10 exp2 erfc erfinv".split())
arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh


def round(x, *, decimals: int = 0) -> Tensor:  # noqa: A001 - torch's name
    """Round half to even; with decimals, as torch: x * 10^d rounded, then / 10^d (d < 0: x / 10^-d rounded,
    then * 10^-d), the power in x's float type."""
    if decimals == 0:
        return _round(x)
    if not isinstance(decimals, (int, np.integer)) or isinstance(decimals, bool):
        raise TypeError(f"round(): argument 'decimals' must be int, not {type(decimals).__name__}")
    if isinstance(x, Tensor) and not x.dtype.is_floating_point:
        raise RuntimeError('"round_cpu" not implemented for \'Int\'' if x.dtype == dtypes.int32
                           else '"round_cpu" not implemented for \'Bool\'')
    return _round_decimals(x, float(10.0 ** builtins.abs(int(decimals))), decimals > 0)


@computes_in_float32
def _round_decimals(x, power: float, scale_up: bool) -> Tensor:
    if scale_up:
        return _true_div(_round(mul(x, power)), power)
    return mul(_round(_true_div(x, power)), power)
_add, _sub, mul, _true_div, maximum, minimum, eq, ne, lt, le, gt, ge, logical_and, logical_or = (
    _binary(n) for n in "add sub mul div maximum minimum eq ne lt le gt ge logical_and logical_or".split())


def add(input, other, *, alpha=1) -> Tensor:
    """torch.add: input + alpha * other."""
    return _add(input, other) if alpha == 1 else _scaled(_add, input, other, alpha)


def sub(input, other, *, alpha=1) -> Tensor:
    """torch.sub: input - alpha * other."""
    return _sub(input, other) if alpha == 1 else _scaled(_sub, input, other, alpha)


def _scaled(op, input, other, alpha) -> Tensor:
    """input op alpha * other as one op; with float16 operands, alpha rounded to half first (as torch's kernel)."""
    if isinstance(alpha, (builtins.float, np.floating)) and not _result_dtype((input, other)).is_floating_point:
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating point number.")
    if isinstance(alpha, builtins.float) and all(not isinstance(t, Tensor) or t.dtype == dtypes.float16
                                                 for t in (input, other)):
        alpha = builtins.float(np.float16(alpha))
    return _op_scaled(op, input, other, alpha)


@computes_in_float32
def _op_scaled(op, input, other, alpha) -> Tensor:
    """input op alpha * other: one op in torch (float16 operands computed in float32, the result rounded once)."""
    return op(input, mul(other, alpha))


@computes_in_float32
def addcmul(x, tensor1, tensor2, *, value=1) -> Tensor:
    """x + value * tensor1 * tensor2, multiplied in torch's order ((value * tensor1) * tensor2)."""
    product = mul(tensor1, tensor2) if value == 1 else mul(mul(tensor1, value), tensor2)
    return add(x, product)


@computes_in_float32
def addcdiv(x, tensor1, tensor2, *, value=1) -> Tensor:
    """x + value * tensor1 / tensor2, in torch's order ((value * tensor1) / tensor2); integer operands refused
    as torch does."""
    if all(isinstance(t, Tensor) and not t.dtype.is_floating_point for t in (tensor1, tensor2)):
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a future release addcdiv "
                           "will perform a true division of tensor1 and tensor2. The historic addcdiv behavior can "
                           "be implemented as (input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for "
                           "integer inputs and as (input + value * tensor1 / tensor2) for float inputs. The future "
                           "addcdiv behavior is just the latter implementation: (input + value * tensor1 / "
                           "tensor2), for all dtypes.")
    quotient = _true_div(tensor1, tensor2) if value == 1 else _true_div(mul(tensor1, value), tensor2)
    return add(x, quotient)


@computes_in_float32
def lerp(start, end, weight) -> Tensor:
    """start + weight * (end - start), as torch: from the end (end - (end - start) * (1 - weight)) where
    |weight| >= 0.5, so weight 1 gives end exactly."""
    diff = sub(end, start)
    low = add(start, mul(weight, diff))
    high = sub(end, mul(diff, sub(1.0, weight)))
    if not isinstance(weight, Tensor):
        return low if builtins.abs(weight) < 0.5 else high
    return where(lt(abs(weight), 0.5), low, high)


def hypot(a: Tensor, b: Tensor) -> Tensor:
    """sqrt(a^2 + b^2) without overflow or underflow in between: the larger of |a|, |b| times sqrt(1 + r^2), r the
    ratio of the smaller to it; inf where either is infinite (even with a NaN), as C's hypot. Floats only, as
    torch; float16 computed in float32, rounded once."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        bad = b if isinstance(a, Tensor) else a
        raise TypeError(f"hypot(): argument 'other' must be Tensor, not {type(bad).__name__}")
    dt = dtypes.promote(a.dtype, b.dtype)
    if not dt.is_floating_point:
        raise NotImplementedError(f"\"hypot_cpu\" not implemented for '{'Bool' if dt == dtypes.bool_ else 'Long'}'")
    aa, bb = abs(a.float()), abs(b.float())
    big, small = maximum(aa, bb), minimum(aa, bb)
    ratio = where(eq(big, 0.0), 0.0, _true_div(small, big))
    out = mul(big, sqrt(add(mul(ratio, ratio), 1.0)))
    out = where(logical_or(isinf(aa), isinf(bb)), float("inf"), out)
    return out.to(dt)


def div(a, b, *, rounding_mode=None) -> Tensor:
    """a / b; rounding_mode "trunc" or "floor" as torch.div (integers stay integers)."""
    if rounding_mode is None:
        return _true_div(a, b)
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"'{rounding_mode}'")
    return _int_division("floor_divide" if rounding_mode == "floor" else "trunc_divide", a, b)


# torch's kernel names in its "not implemented for 'Bool'" errors
_DIVISION_KERNELS = {"floor_divide": "div_floor_cpu", "trunc_divide": "div_trunc_cpu", "remainder": "remainder_cpu",
                     "fmod": "fmod_cpu"}


def _int_division(op: str, a, b) -> Tensor:
    """floor/trunc division, remainder, fmod: promoted as torch (int // int stays int); a Python zero divisor of
    an integer op raises at the call, a tensor's zero raises when the result is read (checks.ZERO_DIVISION)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = tensor(a)
    dts = [v.dtype if isinstance(v, Tensor) else dtypes.scalar_dtype(v) for v in (a, b)]
    if builtins.all(d == dtypes.bool_ for d in dts):
        raise NotImplementedError(f"\"{_DIVISION_KERNELS[op]}\" not implemented for 'Bool'")
    out = _elementwise(op, a, b)
    if out.dtype.category < 2 and isinstance(b, Scalar) and b == 0 and out.numel():  # (torch divides no element
        raise RuntimeError("ZeroDivisionError")                                        # of an empty tensor)
    return out


def floor_divide(a, b) -> Tensor:
    return _int_division("floor_divide", a, b)


def remainder(a, b) -> Tensor:
    return _int_division("remainder", a, b)


def fmod(a, b) -> Tensor:
    if not isinstance(a, Tensor):
        raise TypeError(f"fmod() received an invalid combination of arguments - got ({type(a).__name__}, "
                        f"{type(b).__name__}), but expected (Tensor input, Tensor other) or (Tensor input, Number other)")
    return _int_division("fmod", a, b)


negative, multiply, divide, subtract, true_divide = neg, mul, div, sub, _true_div

_TORCH_FLOAT_NAMES = {"float32": "Float", "float16": "Half"}


def _bitwise(op: str, *args) -> Tensor:
    """bitwise_not/and/or/xor: integer and bool operands only, checked before a node exists (no float form)."""
    if not builtins.any(isinstance(a, Tensor) for a in args):
        args = (tensor(args[0]),) + args[1:]
    for a in args:
        dt = a.dtype if isinstance(a, Tensor) else dtypes.scalar_dtype(a) if isinstance(a, Scalar) else None
        if dt is not None and dt.is_floating_point:
            raise NotImplementedError(f'"{op}" not implemented for \'{_TORCH_FLOAT_NAMES.get(dt.name, dt.name)}\'')
    return _elementwise(op, *args)


def bitwise_not(x) -> Tensor:
    return _bitwise("bitwise_not", x)


def bitwise_and(a, b) -> Tensor:
    return _bitwise("bitwise_and", a, b)


def bitwise_or(a, b) -> Tensor:
    return _bitwise("bitwise_or", a, b)


def bitwise_xor(a, b) -> Tensor:
    return _bitwise("bitwise_xor", a, b)


def _shift_operands(op: str, a, b) -> tuple:
    """The shift's operands as int32 tensors (bool as int, a Python number as a tensor); floats refused as torch."""
    if not builtins.any(isinstance(v, Tensor) for v in (a, b)):
        a = tensor(a)
    for v in (a, b):
        dt = v.dtype if isinstance(v, Tensor) else dtypes.scalar_dtype(v) if isinstance(v, Scalar) else None
        if dt is not None and dt.is_floating_point:
            raise NotImplementedError(f'"{op}_cpu" not implemented for \'{_TORCH_FLOAT_NAMES.get(dt.name, dt.name)}\'')
    return tuple(v.to(dtypes.int32) if isinstance(v, Tensor) else tensor(int(v), dtypes.int32) for v in (a, b))


def bitwise_left_shift(a, b) -> Tensor:
    """torch's a << b on integers (int64 in torch, int32 here): a * 2**b, so a result int32 cannot hold raises as
    every integer overflow does (never wrapped); a shift below 0 or of 64 and more gives 0, as torch's."""
    a, b = _shift_operands("lshift", a, b)
    inside = (b >= 0) & (b < 64)
    a = where(inside, a, 0)  # lanes whose result is 0 must not overflow below
    small = minimum(maximum(b, 0), 30)
    out = a * pow(tensor(2, dtypes.int32), small)
    # 31 and more: one doubling more is exact (a * 2**31) or overflows; past 31 a second one overflows for sure
    out = out * where(b >= 31, 2, 1)
    return out * where(b >= 32, 2, 1)


def bitwise_right_shift(a, b) -> Tensor:
    """torch's a >> b on integers: floor(a / 2**b) (the sign kept), a shift below 0 gives 0, of 31 and more the
    sign's fill (-1 or 0), as torch's int64 shift of a value int32 holds."""
    a, b = _shift_operands("rshift", a, b)
    shifted = floor_divide(a, pow(tensor(2, dtypes.int32), minimum(maximum(b, 0), 30)))
    filled = where(a < 0, -1, 0)
    return where(b < 0, 0, where(b >= 31, filled, shifted))


def logical_xor(a, b) -> Tensor:
    dt = _result_dtype((a, b))  # truth in the promoted dtype, as logical_and's
    return ne(*(_as_tensor(v, dt).to(dt).bool() for v in (a, b)))


def isnan(x) -> Tensor:
    return _elementwise("isnan", x)


def isinf(x) -> Tensor:
    return _elementwise("isinf", x)


def isfinite(x) -> Tensor:
    return _elementwise("isfinite", x)


def pow(a, b) -> Tensor:  # noqa: A001
    if isinstance(a, Tensor) and a.dtype == dtypes.bool_ and isinstance(b, (bool, np.bool_)):
        return a if b else full(a.shape, True)  # torch: bool ** bool-scalar stays bool
    if builtins.all((v.dtype == dtypes.bool_) if isinstance(v, Tensor) else isinstance(v, (bool, np.bool_))
                    for v in (a, b)):
        raise NotImplementedError("\"pow\" not implemented for 'Bool'")
    if isinstance(b, Scalar) and isinstance(a, Tensor) and not isinstance(b, bool):
        if a.dtype == dtypes.float16:
            _checked_scalar(b, dtypes.float16)  # torch converts pow's exponent to half, with its overflow error
        if b == 1:
            return a.to(dtypes.promote_with_scalar(a.dtype, b))
        if b == 2:
            return mul(a, a.to(dtypes.promote_with_scalar(a.dtype, b)))
        if b == 0.5 and a.dtype == dtypes.float32:  # torch: sqrt for float32; float16 goes through pow (-inf -> inf)
            return sqrt(a)
        if b == 3:
            a = a.to(dtypes.promote_with_scalar(a.dtype, b))
            return mul(mul(a, a), a)
        if b == -1 and a.dtype.is_floating_point:
            return reciprocal(a)
        if isinstance(b, (int, np.integer)) and b < 0 and a.dtype.category < 2:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = tensor(a)
    return _elementwise("pow", a, b)


def leaky_relu(x, negative_slope=0.01):
    _check_float_only("leaky_relu", x)
    return _elementwise("leaky_relu", x, arg=(builtins.float(negative_slope),))


def hardshrink(input, lambd=0.5):  # noqa: A002 - torch's name
    """0 inside [-lambd, lambd], else x (NaN kept, as torch's band test)."""
    _check_float_only("hardshrink", input)
    return where((input >= -lambd) & (input <= lambd), 0.0, input)


def elu(x, alpha=1.0):
    _check_float_only("elu", x)
    return _elementwise("elu", x, arg=(builtins.float(alpha),))


def gelu(x, approximate="none"):
    _check_float_only("gelu", x)
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return _elementwise("gelu" if approximate == "none" else "gelu_tanh", x)


def softplus(x, beta=1.0, threshold=20.0):
    _check_float_only("softplus", x)
    return _elementwise("softplus", x, arg=(builtins.float(beta), builtins.float(threshold)))


def clamp(x, min=None, max=None) -> Tensor:  # noqa: A002
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = x if min is None else maximum(x, min)
        return out if max is None else minimum(out, max)
    if x.dtype == dtypes.bool_ and builtins.all(isinstance(v, (bool, np.bool_)) or v is None for v in (min, max)):
        name = "clamp_scalar_cpu" if min is not None and max is not None else \
            "clamp_min_scalar_cpu" if min is not None else "clamp_max_scalar_cpu"
        raise NotImplementedError(f"\"{name}\" not implemented for 'Bool'")  # WGSL has no max/min on bool
    dt = x.dtype
    for v in (min, max):
        if v is not None:
            dt = dtypes.promote_with_scalar(dt, v)
    x = x.to(dt)
    if dt == dtypes.float16:  # torch converts clamp's bounds to half, with its overflow error (1e5)
        for v in (min, max):
            if v is not None:
                _checked_scalar(v, dt)
    # the bounds as a node holds constants (-0.0 and 0.0 are different plans; NaN resolves in the kernel's code)
    bounds = tuple(None if v is None else dtypes.const_value(builtins.float(v)) if isinstance(v, (float, np.floating))
                   else v for v in (min, max))
    return _elementwise("clamp", x, arg=bounds)


clip = clamp


def where(condition, input, other) -> Tensor:
    cond, a, b = condition, input, other  # (torch's parameter names: an fx call may pass them by name)
    if not isinstance(cond, Tensor):
        raise TypeError("where(): argument 'condition' must be Tensor")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        dt = dtypes.promote(dtypes.scalar_dtype(a), dtypes.scalar_dtype(b))
        a = _const(_cast_scalar(a, dt), (), dt)
    return _elementwise("where", cond, a, b)


# two more rows of torch's functions (the functions composed of several rows: elementwise_composites.py)
atan2 = arctan2 = _binary("atan2")


def signbit(input) -> Tensor:  # noqa: A002 - torch's names (fx may pass them by name)
    """The sign bit: true for -0.0 and negative NaNs too (a row: a comparison cannot see them)."""
    return _elementwise("signbit", input)
