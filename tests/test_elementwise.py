"""Elementwise ops: every unary/binary op of the op set, operators, scalars on either side, type promotion,
broadcasting, size-0/size-1 dims and 0-d tensors - all compared with torch CPU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
from tinydl.testing import assert_close


def has_f16():
    return tinydl.runtime.get_runtime().has_f16


def pair(a):
    """The same data as a tinydl tensor and a torch tensor."""
    a = np.array(a)
    return tinydl.tensor(a), torch.from_numpy(a)


# -- input domains ----------------------------------------------------------------------------------------
def normal(rng, shape):
    return (rng.standard_normal(shape) * 3).astype(np.float32)


def positive(rng, shape):
    return rng.uniform(0.05, 6.0, shape).astype(np.float32)


def unit(rng, shape):
    return rng.uniform(-0.99, 0.99, shape).astype(np.float32)


def large(rng, shape):
    """Magnitudes up to 100, with exact +-30 / +-100 / 0 included, to catch overflow in exp-based formulas."""
    a = (rng.standard_normal(shape) * 40).astype(np.float32).reshape(-1)
    special = np.array([30.0, -30.0, 100.0, -100.0, 0.0, 20.0, -20.0, 88.0, -88.0], np.float32)
    a[:min(a.size, special.size)] = special[:a.size]
    return a.reshape(shape)


def halves(rng, shape):
    """Values near and at .5 boundaries, for floor/ceil/round."""
    a = (rng.integers(-20, 20, shape) / 2 + rng.choice([0.0, 0.0, 0.01, -0.01, 0.3], shape)).astype(np.float32)
    return a


# name -> (tinydl callable, torch callable, domain, rtol, atol)
UNARY = {
    "neg": (tinydl.neg, torch.neg, normal, 1e-4, 1e-5),
    "abs": (tinydl.abs, torch.abs, normal, 1e-4, 1e-5),
    "exp": (tinydl.exp, torch.exp, normal, 1e-4, 1e-5),
    "log": (tinydl.log, torch.log, positive, 1e-4, 1e-5),
    "sqrt": (tinydl.sqrt, torch.sqrt, positive, 1e-4, 1e-5),
    "rsqrt": (tinydl.rsqrt, torch.rsqrt, positive, 1e-4, 1e-5),
    "reciprocal": (tinydl.reciprocal, torch.reciprocal, positive, 1e-4, 1e-5),
    # sin/cos of |x| up to ~10: the GPU's range reduction differs from libm by a few ulp of the argument
    "sin": (tinydl.sin, torch.sin, normal, 1e-4, 1e-5),
    "cos": (tinydl.cos, torch.cos, normal, 1e-4, 1e-5),
    "tanh": (F.tanh, torch.tanh, normal, 1e-4, 1e-5),
    "sigmoid": (F.sigmoid, torch.sigmoid, normal, 1e-4, 1e-5),
    "relu": (F.relu, TF.relu, normal, 1e-4, 1e-5),
    "relu6": (F.relu6, TF.relu6, normal, 1e-4, 1e-5),
    "leaky_relu": (F.leaky_relu, TF.leaky_relu, normal, 1e-4, 1e-5),
    "leaky_relu_0.2": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2), normal, 1e-4, 1e-5),
    "elu": (F.elu, TF.elu, normal, 1e-4, 1e-5),
    "elu_alpha": (lambda x: F.elu(x, alpha=0.5), lambda x: TF.elu(x, alpha=0.5), normal, 1e-4, 1e-5),
    "gelu": (F.gelu, TF.gelu, normal, 1e-4, 1e-5),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh"), normal,
                  1e-4, 1e-5),
    "silu": (F.silu, TF.silu, normal, 1e-4, 1e-5),
    "hardswish": (F.hardswish, TF.hardswish, normal, 1e-4, 1e-5),
    "hardsigmoid": (F.hardsigmoid, TF.hardsigmoid, normal, 1e-4, 1e-5),
    "softplus": (F.softplus, TF.softplus, normal, 1e-4, 1e-5),
    "softplus_beta": (lambda x: F.softplus(x, beta=2.0, threshold=5.0),
                      lambda x: TF.softplus(x, beta=2.0, threshold=5.0), normal, 1e-4, 1e-5),
    "mish": (F.mish, TF.mish, normal, 1e-4, 1e-5),
    "erf": (tinydl.erf, torch.erf, unit, 1e-4, 1e-5),
    "erf_wide": (tinydl.erf, torch.erf, normal, 1e-4, 1e-5),
    "floor": (tinydl.floor, torch.floor, halves, 0, 0),
    "ceil": (tinydl.ceil, torch.ceil, halves, 0, 0),
    "round": (tinydl.round, torch.round, halves, 0, 0),
    "sign": (tinydl.sign, torch.sign, normal, 0, 0),
}


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 1, 4)])
def test_unary(rng, name, shape):
    fn, ref, domain, rtol, atol = UNARY[name]
    a = domain(rng, shape)
    x, t = pair(a)
    assert_close(fn(x), ref(t), rtol=rtol, atol=atol)


# exp-based formulas must neither overflow to inf/nan nor lose the linear/saturated tails at |x| >= 30
LARGE = ["sigmoid", "tanh", "softplus", "softplus_beta", "gelu", "gelu_tanh", "silu", "mish", "elu", "erf_wide",
         "hardswish", "hardsigmoid", "relu6"]


@pytest.mark.parametrize("name", LARGE)
def test_unary_large_magnitude(rng, name):
    fn, ref, _, rtol, atol = UNARY[name]
    a = large(rng, (4, 8))
    x, t = pair(a)
    out = fn(x)
    assert np.isfinite(out.numpy()).all()
    assert_close(out, ref(t), rtol=rtol, atol=atol)


METHODS = ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu",
           "erf", "floor", "ceil", "round", "sign"]


@pytest.mark.parametrize("name", METHODS)
def test_unary_method_and_module_function(rng, name):
    a = positive(rng, (2, 3)) - 3.0 if name not in ("log", "sqrt", "rsqrt") else positive(rng, (2, 3))
    x, t = pair(a.astype(np.float32))
    expected = getattr(t, name)()
    assert_close(getattr(x, name)(), expected, rtol=1e-4, atol=1e-5)
    assert_close(getattr(tinydl, name)(x), expected, rtol=1e-4, atol=1e-5)


def test_round_half_to_even():
    a = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 0.49999997, -0.49999997, 1.4999999, 2.5000002],
                 np.float32)
    x, t = pair(a)
    assert_close(x.round(), torch.round(t), rtol=0, atol=0)


def test_floor_ceil_sign_special_values():
    a = np.array([-0.0, 0.0, -1e-30, 1e-30, 1e20, -1e20, -7.0, 7.0], np.float32)
    x, t = pair(a)
    for name in ("floor", "ceil", "round", "sign", "abs", "neg"):
        assert_close(getattr(x, name)(), getattr(t, name)(), rtol=0, atol=0)


def test_nan_and_inf_propagation():
    a = np.array([np.nan, np.inf, -np.inf, 1.0, -1.0, 0.0], np.float32)
    x, t = pair(a)
    for fn, ref in [(tinydl.abs, torch.abs), (tinydl.neg, torch.neg), (F.relu, TF.relu), (tinydl.exp, torch.exp),
                    (F.sigmoid, torch.sigmoid), (F.tanh, torch.tanh), (tinydl.sqrt, torch.sqrt)]:
        assert_close(fn(x), ref(t), rtol=1e-4, atol=1e-5)
    y, u = pair(np.array([1.0, np.nan, 2.0, -np.inf, np.inf, 0.0], np.float32))
    assert_close(tinydl.maximum(x, y), torch.maximum(t, u))
    assert_close(tinydl.minimum(x, y), torch.minimum(t, u))


@pytest.mark.parametrize("name", ["neg", "abs", "sign", "relu"])
def test_unary_int_keeps_int32(rng, name):
    a = rng.integers(-50, 50, (3, 4)).astype(np.int32)
    x, t = pair(a)
    fn = F.relu if name == "relu" else getattr(tinydl, name)
    out = fn(x)
    assert out.dtype == tinydl.int32
    assert_close(out, getattr(torch, name)(t), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["exp", "sqrt", "sin", "sigmoid", "erf"])
def test_unary_float_op_on_int_promotes_to_float32(rng, name):
    a = rng.integers(0, 6, (5,)).astype(np.int32)
    x, t = pair(a)
    out = getattr(tinydl, name)(x)
    assert out.dtype == tinydl.float32
    assert_close(out, getattr(torch, name)(t), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["floor", "ceil", "round"])
def test_rounding_int_keeps_int32(rng, name):
    x, t = pair(rng.integers(-50, 50, (7,)).astype(np.int32))
    out = getattr(x, name)()
    assert out.dtype == tinydl.int32
    assert_close(out, getattr(t, name)(), rtol=0, atol=0)


@pytest.mark.skipif(not tinydl.runtime.get_runtime().has_f16, reason="adapter lacks shader-f16")
@pytest.mark.parametrize("name", ["exp", "sigmoid", "gelu", "silu", "tanh", "sqrt"])
def test_unary_float16(rng, name):
    fn, ref, domain, _, _ = UNARY[name]
    a = (positive(rng, (4, 5)) if name == "sqrt" else unit(rng, (4, 5)) * 3).astype(np.float16)
    x, t = pair(a)
    out = fn(x)
    assert out.dtype == tinydl.float16
    # computed in f32 and rounded once to f16 at the store; torch CPU computes in f32 and rounds too, so
    # results may differ by one f16 ulp (2^-10 relative)
    assert_close(out, ref(t), rtol=2e-3, atol=1e-3)


# -- clamp ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lo,hi", [(-1.0, None), (None, 0.5), (-0.5, 0.75), (1.0, -1.0), (0, 2)])
def test_clamp_scalar_bounds(rng, lo, hi):
    x, t = pair(normal(rng, (3, 7)))
    assert_close(tinydl.clamp(x, lo, hi), torch.clamp(t, lo, hi))
    assert_close(x.clamp(min=lo, max=hi), t.clamp(min=lo, max=hi))
    assert_close(x.clip(lo, hi), t.clip(lo, hi))


def test_clamp_int_tensor(rng):
    x, t = pair(rng.integers(-10, 10, (12,)).astype(np.int32))
    out = x.clamp(-3, 4)
    assert out.dtype == tinydl.int32
    assert_close(out, t.clamp(-3, 4), rtol=0, atol=0)
    # a float bound promotes an int tensor to float32, as in torch
    assert_close(x.clamp(min=0.5), t.clamp(min=0.5))


@pytest.mark.parametrize("which", ["min", "max", "both"])
def test_clamp_tensor_bounds(rng, which):
    x, t = pair(normal(rng, (3, 4, 5)))
    lo, tlo = pair(normal(rng, (4, 1)) - 1)
    hi, thi = pair(normal(rng, (5,)) + 1)
    kw = {"min": dict(min=lo), "max": dict(max=hi), "both": dict(min=lo, max=hi)}[which]
    tkw = {"min": dict(min=tlo), "max": dict(max=thi), "both": dict(min=tlo, max=thi)}[which]
    assert_close(tinydl.clamp(x, **kw), torch.clamp(t, **tkw))


def test_clamp_without_bounds_raises(rng):
    x = tinydl.tensor(normal(rng, (3,)))
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        tinydl.clamp(x)


# -- pow --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exponent", [2, 0.5, 3, -1, 0, 1, 2.5, -0.5, -2])
def test_pow_tensor_scalar(rng, exponent):
    base = positive(rng, (4, 5)) if exponent not in (2, 3, -1, 0, 1, -2) else normal(rng, (4, 5))
    if exponent in (-1, -2):
        base = np.where(np.abs(base) < 0.1, 0.5, base).astype(np.float32)
    x, t = pair(base)
    assert_close(x ** exponent, t ** exponent, rtol=1e-4, atol=1e-5)
    assert_close(tinydl.pow(x, exponent), torch.pow(t, exponent), rtol=1e-4, atol=1e-5)
    assert_close(x.pow(exponent), t.pow(exponent), rtol=1e-4, atol=1e-5)


def test_pow_negative_base_integer_exponent():
    a = np.array([-2.0, -3.0, -0.5, -1.0, 0.0, 2.0], np.float32)
    x, t = pair(a)
    for e in (3.0, 2.0, 4.0, -3.0, 5.0):
        assert_close(x ** e, t ** e, rtol=1e-4, atol=1e-5)
    # a non-integer exponent of a negative base is nan, as in torch
    assert_close(x ** 1.5, t ** 1.5, rtol=1e-4, atol=1e-5)


def test_pow_scalar_base(rng):
    x, t = pair(unit(rng, (3, 4)) * 4)
    assert_close(2 ** x, 2 ** t)
    assert_close(2.5 ** x, 2.5 ** t)
    assert_close(tinydl.pow(3.0, x), torch.pow(3.0, t))


def test_pow_tensor_tensor_broadcast(rng):
    x, t = pair(positive(rng, (3, 1, 4)))
    y, u = pair(normal(rng, (5, 4)) / 2)
    assert_close(x ** y, t ** u)
    assert_close(tinydl.pow(x, y), torch.pow(t, u))


def test_pow_int(rng):
    x, t = pair(rng.integers(-5, 6, (10,)).astype(np.int32))
    e, te = pair(rng.integers(0, 5, (10,)).astype(np.int32))
    out = x ** e
    assert out.dtype == tinydl.int32
    assert_close(out, t ** te, rtol=0, atol=0)
    assert_close(x ** 3, t ** 3, rtol=0, atol=0)
    assert_close(2 ** e, 2 ** te, rtol=0, atol=0)
    assert_close(x ** 0.5, t ** 0.5)  # float exponent promotes to float32 (nan for negatives)


def test_int_pow_negative_int_raises(rng):
    x = tinydl.tensor(rng.integers(1, 5, (4,)).astype(np.int32))
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
        x ** -1
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
        tinydl.pow(x, -2)


# -- binary ops -------------------------------------------------------------------------------------------
BINARY = {
    "add": (tinydl.add, torch.add),
    "sub": (tinydl.sub, torch.sub),
    "mul": (tinydl.mul, torch.mul),
    "div": (tinydl.div, torch.div),
    "maximum": (tinydl.maximum, torch.maximum),
    "minimum": (tinydl.minimum, torch.minimum),
    "eq": (tinydl.eq, torch.eq),
    "ne": (tinydl.ne, torch.ne),
    "lt": (tinydl.lt, torch.lt),
    "le": (tinydl.le, torch.le),
    "gt": (tinydl.gt, torch.gt),
    "ge": (tinydl.ge, torch.ge),
}

SHAPE_PAIRS = [
    ((5,), (5,)),
    ((3, 1, 5), (4, 1)),
    ((4, 1), (3, 1, 5)),
    ((1,), (2, 3)),
    ((), (3, 2)),
    ((2, 3), ()),
    ((), ()),
    ((0, 3), (1, 3)),
    ((2, 0, 3), (3,)),
    ((1, 1, 1), (1,)),
    ((7, 1), (1, 9)),
]


def _operands(rng, name, sa, sb):
    a = normal(rng, sa)
    b = normal(rng, sb)
    if name == "div":
        b = np.where(np.abs(b) < 0.1, 0.7, b).astype(np.float32)
    if name in ("eq", "ne", "le", "ge"):
        # make some elements equal so == / <= are exercised on ties
        a = np.round(a).astype(np.float32)
        b = np.round(b).astype(np.float32)
    return a, b


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS)
def test_binary(rng, name, sa, sb):
    fn, ref = BINARY[name]
    a, b = _operands(rng, name, sa, sb)
    (x, t), (y, u) = pair(a), pair(b)
    assert_close(fn(x, y), ref(t, u))
    assert_close(getattr(x, name)(y), getattr(t, name)(u))


@pytest.mark.parametrize("name", ["add", "sub", "mul", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"])
def test_binary_int32(rng, name):
    fn, ref = BINARY[name]
    (x, t), (y, u) = pair(rng.integers(-4, 5, (3, 4)).astype(np.int32)), pair(rng.integers(-4, 5, (4,)).astype(np.int32))
    out = fn(x, y)
    assert_close(out, ref(t, u), rtol=0, atol=0)
    assert out.dtype == (tinydl.bool if name in ("eq", "ne", "lt", "le", "gt", "ge") else tinydl.int32)


def test_int_div_is_true_division(rng):
    (x, t), (y, u) = pair(rng.integers(-9, 10, (6,)).astype(np.int32)), pair(np.array([2, 3, -4, 5, 7, -1], np.int32))
    out = x / y
    assert out.dtype == tinydl.float32
    assert_close(out, t / u)


def test_add_sub_alpha(rng):
    (x, t), (y, u) = pair(normal(rng, (3, 4))), pair(normal(rng, (4,)))
    assert_close(x.add(y, alpha=2), t.add(u, alpha=2))
    assert_close(x.sub(y, alpha=0.5), t.sub(u, alpha=0.5))


# -- operators and python scalars -------------------------------------------------------------------------
OPERATORS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a ** b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@pytest.mark.parametrize("op", list(OPERATORS))
def test_operators_tensor_tensor(rng, op):
    f = OPERATORS[op]
    a = positive(rng, (3, 4))
    b = positive(rng, (4,)) / 3 if op == "**" else positive(rng, (4,))
    a[0, :2] = b[:2]  # ties for comparisons
    (x, t), (y, u) = pair(a), pair(b)
    assert_close(f(x, y), f(t, u))


@pytest.mark.parametrize("op", list(OPERATORS))
@pytest.mark.parametrize("scalar", [2, 0.5, -1.5, True])
def test_operators_with_python_scalar_both_sides(rng, op, scalar):
    f = OPERATORS[op]
    a = positive(rng, (2, 5)) if op in ("**", "/") else normal(rng, (2, 5))
    a[0, 0] = float(scalar)  # a tie
    x, t = pair(a)
    if op == "-" and isinstance(scalar, bool):
        for lhs, rhs in [(x, scalar), (scalar, x)]:
            with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor is not"):
                f(lhs, rhs)
        with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor is not"):
            f(t, scalar)  # torch refuses too
        return
    assert_close(f(x, scalar), f(t, scalar))
    assert_close(f(scalar, x), f(scalar, t))


def test_unary_minus_and_pos_abs(rng):
    x, t = pair(normal(rng, (3, 3)))
    assert_close(-x, -t)
    assert_close(+x, +t)
    assert_close(abs(x), abs(t))
    xi, ti = pair(rng.integers(-5, 5, (4,)).astype(np.int32))
    assert_close(-xi, -ti, rtol=0, atol=0)


def test_scalar_expressions(rng):
    x, t = pair(positive(rng, (4, 3)))
    assert_close(2 - x, 2 - t)
    assert_close(1 / x, 1 / t)
    assert_close(x > 0.5, t > 0.5)
    assert_close(0.5 < x, 0.5 < t)
    assert_close((x * 3 + 1) / (x - 10) ** 2, (t * 3 + 1) / (t - 10) ** 2)


def test_matmul_operator(rng):
    (x, t), (y, u) = pair(normal(rng, (3, 4))), pair(normal(rng, (4, 5)))
    # K=4 dot products of values ~N(0,9): fp32 rounding of the partial sums differs in order from torch
    assert_close(x @ y, t @ u, rtol=1e-4, atol=1e-4)
    v, tv = pair(normal(rng, (4,)))
    assert_close(x @ v, t @ tv, rtol=1e-4, atol=1e-4)


def test_numpy_scalar_and_array_on_left(rng):
    x, t = pair(normal(rng, (3,)))
    assert_close(np.float32(2.0) * x, 2.0 * t)
    assert_close(np.int32(3) - x, 3 - t)


# -- where ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sc,sa,sb", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), (3, 4)), ((2, 1, 3), (), (4, 1)),
                                      ((0, 2), (2,), (1, 2))])
def test_where(rng, sc, sa, sb):
    c, tc = pair(rng.random(sc) > 0.5)
    (x, t), (y, u) = pair(normal(rng, sa)), pair(normal(rng, sb))
    assert_close(tinydl.where(c, x, y), torch.where(tc, t, u))
    assert_close(x.where(c, y), t.where(tc, u))


def test_where_scalars_and_promotion(rng):
    c, tc = pair(rng.random((3, 4)) > 0.5)
    x, t = pair(normal(rng, (3, 4)))
    assert_close(tinydl.where(c, x, 0.0), torch.where(tc, t, 0.0))
    assert_close(tinydl.where(c, -1, x), torch.where(tc, -1, t))
    assert_close(tinydl.where(c, 1.0, 0.0), torch.where(tc, 1.0, 0.0))
    assert_close(tinydl.where(c, 1, 0), torch.where(tc, 1, 0), rtol=0, atol=0)
    xi, ti = pair(rng.integers(-3, 3, (3, 4)).astype(np.int32))
    assert_close(tinydl.where(c, xi, x), torch.where(tc, ti, t))  # int32 and float32 -> float32
    assert_close(x.masked_fill(c, -5.0), t.masked_fill(tc, -5.0))


def test_where_non_bool_condition_raises(rng):
    c = tinydl.tensor(normal(rng, (3,)))
    x = tinydl.tensor(normal(rng, (3,)))
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor"):
        tinydl.where(c, x, x)
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor"):
        tinydl.where(c.int(), x, x)


# -- type promotion ---------------------------------------------------------------------------------------
def test_int_tensor_plus_float_scalar_is_float32(rng):
    x, t = pair(rng.integers(-5, 5, (4,)).astype(np.int32))
    out = x + 1.5
    assert out.dtype == tinydl.float32
    assert_close(out, t + 1.5)
    assert_close(x * 0.5, t * 0.5)
    assert_close(2.5 - x, 2.5 - t)


def test_int_plus_int_stays_int32(rng):
    (x, t), (y, u) = pair(rng.integers(-5, 5, (4,)).astype(np.int32)), pair(rng.integers(-5, 5, (4,)).astype(np.int32))
    for out, ref in [(x + y, t + u), (x + 3, t + 3), (x * y - 2, t * u - 2), (7 - x, 7 - t)]:
        assert out.dtype == tinydl.int32
        assert_close(out, ref, rtol=0, atol=0)


def test_bool_ops(rng):
    (x, t), (y, u) = pair(rng.random((3, 4)) > 0.5), pair(rng.random((4,)) > 0.3)
    assert_close(x & y, t & u)
    assert_close(x | y, t | u)
    assert_close(~x, ~t)
    assert_close(tinydl.logical_not(x), torch.logical_not(t))
    assert_close(tinydl.logical_and(x, y), torch.logical_and(t, u))
    assert_close(tinydl.logical_or(x, y), torch.logical_or(t, u))
    assert_close(x == y, t == u)
    assert_close(x != y, t != u)
    assert_close(tinydl.maximum(x, y), torch.maximum(t, u))
    assert_close(tinydl.minimum(x, y), torch.minimum(t, u))
    # bool + int scalar -> int, bool * float scalar -> float32, bool + bool -> bool (logical or)
    assert_close(x + 1, t + 1, rtol=0, atol=0)
    assert_close(x * 2.5, t * 2.5)
    assert_close(x + y, t + u)  # bool + bool is logical or
    assert_close(x * y, t * u)  # bool * bool is logical and
    assert_close(x.float() + 0.5, t.float() + 0.5)
    xi, ti = pair(rng.integers(-3, 3, (4,)).astype(np.int32))
    assert_close(x * xi, t * ti, rtol=0, atol=0)


def test_bool_subtraction_and_negation_raise(rng):
    (x, t), (y, u) = pair(rng.random((4,)) > 0.5), pair(rng.random((4,)) > 0.5)
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool tensors is not supported"):
        x - y
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor is not supported"):
        x.float() - y
    with pytest.raises(RuntimeError, match="Negation, the `-` operator, on a bool tensor is not supported"):
        -x
    with pytest.raises(RuntimeError, match="with two bool tensors"):
        t - u  # the wording is torch's
    for op in ("abs", "relu"):
        with pytest.raises(RuntimeError, match=f"Boolean inputs not supported for {op}"):
            getattr(tinydl, op)(x)
    with pytest.raises(RuntimeError, match="Boolean inputs not supported for relu"):
        torch.relu(t)
    assert_close(x.sign(), t.sign())  # sign of a bool tensor is itself


def test_invert_int_is_bitwise_not_and_float_raises(rng):
    x, t = pair(rng.integers(-5, 5, (3,)).astype(np.int32))
    assert_close(~x, ~t, rtol=0, atol=0)  # bitwise, as torch (more in tests/test_edges.py)
    with pytest.raises(TypeError, match=r"~ \(operator.invert\) is only implemented on integer and Boolean"):
        ~x.float()


@pytest.mark.skipif(not tinydl.runtime.get_runtime().has_f16, reason="adapter lacks shader-f16")
def test_float16_promotion(rng):
    (x, t), (y, u) = pair(unit(rng, (3, 4)).astype(np.float16)), pair(normal(rng, (4,)))
    out = x + y
    assert out.dtype == tinydl.float32
    assert_close(out, t + u)
    # a python float keeps float16; float16 + int32 tensor -> float16
    h = x * 2.5
    assert h.dtype == tinydl.float16
    # each result is rounded to f16 once: up to half an f16 ulp (2^-11 relative) from torch's rounding
    assert_close(h, t * 2.5, rtol=1e-3, atol=1e-3)
    xi, ti = pair(rng.integers(-3, 3, (4,)).astype(np.int32))
    assert_close(x + xi, t + ti, rtol=1e-3, atol=1e-3)
    assert_close(x > 0.1, t > 0.1)


@pytest.mark.parametrize("dim_dtype,zero_dtype", [("float16", "float32"), ("int32", "float16"), ("int32", "float32"),
                                                   ("bool", "int32"), ("float32", "int32"), ("float16", "float16")])
@pytest.mark.parametrize("op", ["add", "mul", "where"])
def test_zero_dim_tensors_only_raise_the_category(rng, dim_dtype, zero_dtype, op):
    """torch's tiers: a tensor with dimensions decides the dtype; a zero-dim tensor only raises the category
    (float16 x + float32 0-dim -> float16: a float16 model's exported float32 constants keep it in float16)."""
    if "float16" in (dim_dtype, zero_dtype) and not tinydl.runtime.get_runtime().has_f16:
        pytest.skip("adapter lacks shader-f16")
    a = (rng.integers(0, 3, (2, 3)) if dim_dtype in ("int32", "bool") else rng.standard_normal((2, 3))).astype(dim_dtype)
    z = np.array(2 if zero_dtype == "int32" else 0.5, dtype=zero_dtype)
    x, t, y, u = tinydl.tensor(a), torch.from_numpy(a), tinydl.tensor(z), torch.from_numpy(z)
    if op == "where":
        c = a.astype(np.float32) > 0
        out, ref = tinydl.where(tinydl.tensor(c), x, y), torch.where(torch.from_numpy(c), t, u)
    else:
        out, ref = getattr(tinydl, op)(x, y), getattr(torch, op)(t, u)
    assert str(ref.dtype) == f"torch.{out.dtype.name}", (out.dtype, ref.dtype)
    assert_close(out, ref, rtol=1e-3, atol=1e-3)


# -- shapes: 0-d, size-0, size-1 --------------------------------------------------------------------------
def test_zero_dim_tensors(rng):
    x, t = pair(np.array(1.25, np.float32))
    y, u = pair(np.array(-0.5, np.float32))
    out = (x * y + tinydl.exp(x)) / 2
    assert out.shape == ()
    assert_close(out, (t * u + torch.exp(t)) / 2)
    assert_close(F.gelu(x), TF.gelu(t))
    assert_close(x > y, t > u)
    assert isinstance(out.item(), float)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 1, 4), (1,), (1, 1)])
def test_unary_chain_degenerate_shapes(rng, shape):
    x, t = pair(normal(rng, shape))
    assert_close(F.silu(x) * 2 + tinydl.abs(x), TF.silu(t) * 2 + torch.abs(t))


def test_long_fused_chain(rng):
    x, t = pair(normal(rng, (5, 6)))
    y, u = pair(positive(rng, (6,)))
    out = F.sigmoid(tinydl.sqrt(y) * x - 1).clamp(0.1, 0.9) * tinydl.log(y) + tinydl.maximum(x, -x / 2) ** 2
    ref = torch.sigmoid(torch.sqrt(u) * t - 1).clamp(0.1, 0.9) * torch.log(u) + torch.maximum(t, -t / 2) ** 2
    assert_close(out, ref)


def test_elementwise_on_views(rng):
    x, t = pair(normal(rng, (4, 6)))
    assert_close(x.T[1:, ::2] * x[::2].T[1:], t.T[1:, ::2] * t[::2].T[1:])


# -- bad input --------------------------------------------------------------------------------------------
def test_broadcast_mismatch_raises(rng):
    x = tinydl.tensor(normal(rng, (3,)))
    y = tinydl.tensor(normal(rng, (4,)))
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of tensor b \(4\) at "
                                           r"non-singleton dimension 0"):
        x + y
    a = tinydl.tensor(normal(rng, (2, 3, 5)))
    b = tinydl.tensor(normal(rng, (4, 5)))
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of tensor b \(4\) at "
                                           r"non-singleton dimension 1"):
        a * b
    with pytest.raises(RuntimeError, match=r"must match the size of tensor b"):
        tinydl.where(a > 0, a, b)


def test_gelu_bad_approximate_raises(rng):
    x = tinydl.tensor(normal(rng, (3,)))
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        F.gelu(x, approximate="erf")


def test_unsupported_operand_raises(rng):
    x = tinydl.tensor(normal(rng, (3,)))
    with pytest.raises(TypeError, match="unsupported scalar 'a' of type str"):
        x + "a"


# -- several outputs per thread (big tensors) ---------------------------------------------------------------
@pytest.mark.parametrize("per_thread", [2, 4])
@pytest.mark.parametrize("case", ["odd size", "broadcast and permute", "cat", "float16"])
def test_several_outputs_per_thread(rng, monkeypatch, use_options, per_thread, case):
    """Elementwise kernels of big tensors compute Options.per_thread outputs per thread; forced here on small shapes whose
    size is no multiple of a workgroup's outputs (the tail threads redo the last one): equal to torch, in that
    many times fewer workgroups."""
    use_options(per_thread=per_thread, per_thread_min=0)
    rt = tinydl.runtime.get_runtime()
    grids, submit = [], rt.submit
    monkeypatch.setattr(rt, "submit", lambda d, *a, **k: (grids.extend(g for _, _, g in d), submit(d, *a, **k))[1])
    a, b = normal(rng, (5, 3, 211)), normal(rng, (211, 3, 1))
    (x, tx), (y, ty) = pair(a), pair(b)
    if case == "odd size":
        out, ref = (x * 2 + 1).exp(), (tx * 2 + 1).exp()
    elif case == "broadcast and permute":
        out, ref = x - y.permute(2, 1, 0), tx - ty.permute(2, 1, 0)
    elif case == "cat":
        out, ref = tinydl.cat([x, x.relu()], 1) * 3, torch.cat([tx, tx.relu()], 1) * 3
    else:
        if not has_f16():
            pytest.skip("adapter without shader-f16")
        out, ref = x.half() * 0.5, tx.half() * 0.5
    got = out.numpy()
    assert grids == [(-(-got.size // (256 * per_thread)), 1, 1)], grids
    assert_close(got, ref)


@pytest.mark.parametrize("decimals", [1, 2, 3, -1, -2])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_round_decimals(rng, decimals, dtype):
    """torch's round(decimals=): x * 10^d rounded half to even, / 10^d (d < 0: x / 10^-d, then * 10^-d)."""
    x = (rng.standard_normal(2000) * 300).astype(dtype)
    assert_close(tinydl.tensor(x).round(decimals=decimals), torch.round(torch.from_numpy(x), decimals=decimals),
                 rtol=0, atol=0)
    assert_close(tinydl.round(tinydl.tensor(x), decimals=decimals), torch.from_numpy(x).round(decimals=decimals),
                 rtol=0, atol=0)


def test_round_decimals_refuses_integers_as_torch():
    with pytest.raises(RuntimeError, match="round_cpu\" not implemented for 'Int'"):
        tinydl.tensor(np.arange(3, dtype=np.int32)).round(decimals=1)
    with pytest.raises(RuntimeError, match="round_cpu\" not implemented for 'Int'"):
        torch.arange(3, dtype=torch.int32).round(decimals=1)


@pytest.mark.parametrize("value", [1, 0.5, -2.5])
def test_addcmul_addcdiv(rng, value):
    x, a, b = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3))
    tx, ta, tb = map(tinydl.tensor, (x, a, b))
    rx, ra, rb = map(torch.from_numpy, (x, a, b))
    # torch's vectorized loop may fuse the multiply and add: within an ulp or two, not bit for bit
    assert_close(tinydl.addcmul(tx, ta, tb, value=value), torch.addcmul(rx, ra, rb, value=value))
    assert_close(tx.addcdiv(ta, tb, value=value), rx.addcdiv(ra, rb, value=value))
    assert_close(tx.addcmul(ta, tb[0], value=value), rx.addcmul(ra, rb[0], value=value))  # broadcast
    ints = tinydl.tensor(np.arange(4, dtype=np.int32))
    with pytest.raises(RuntimeError, match="Integer division with addcdiv is no longer supported"):
        tinydl.addcdiv(ints, ints, ints)
    with pytest.raises(RuntimeError, match="Integer division with addcdiv is no longer supported"):
        torch.addcdiv(torch.arange(4), torch.arange(4), torch.arange(4))



@pytest.mark.parametrize("weight", [0.0, 0.3, 0.5, 0.7, 1.0, -0.7, 1.5, "tensor"])
def test_lerp(rng, weight):
    a, b, w = (rng.standard_normal(64).astype(np.float32) for _ in range(3))  # tensor weights of either sign
    tw, rw = (tinydl.tensor(w), torch.from_numpy(w)) if weight == "tensor" else (weight, weight)
    # torch's vectorized loop may fuse the multiply-add: within an ulp
    assert_close(tinydl.tensor(a).lerp(tinydl.tensor(b), tw), torch.from_numpy(a).lerp(torch.from_numpy(b), rw),
                 rtol=1e-6, atol=1e-6)
    if weight == 1.0:  # from the end: exactly end
        assert_close(tinydl.lerp(tinydl.tensor(a), tinydl.tensor(b), 1.0), b, rtol=0, atol=0)


@pytest.mark.parametrize("dtypes_", [("float32", "float32"), ("float16", "float16"), ("float16", "float32")])
def test_hypot(rng, dtypes_):
    """hypot against torch: broadcasting, mixed float dtypes, no overflow or underflow in between, inf wins over
    NaN; integers refused as torch does."""
    a = (rng.standard_normal((3, 1, 5)) * 10).astype(dtypes_[0])
    b = (rng.standard_normal((4, 1)) * 10).astype(dtypes_[1])
    tol = dict(rtol=1e-3, atol=1e-3) if "float16" in dtypes_ else dict(rtol=1e-6, atol=0)
    assert_close(tinydl.tensor(a).hypot(tinydl.tensor(b)), torch.from_numpy(a).hypot(torch.from_numpy(b)), **tol)
    big = np.array([3e30, 3e-30, 0, np.inf, np.nan, -np.inf, 1], np.float32)
    other = np.array([4e30, 4e-30, 0, np.nan, -np.inf, 2, np.nan], np.float32)
    assert_close(tinydl.hypot(tinydl.tensor(big), tinydl.tensor(other)),
                 torch.hypot(torch.from_numpy(big), torch.from_numpy(other)), rtol=1e-6, atol=0)
    with pytest.raises(NotImplementedError, match="\"hypot_cpu\" not implemented for 'Long'"):
        tinydl.hypot(tinydl.arange(3), tinydl.arange(3))
    with pytest.raises(TypeError, match="argument 'other' must be Tensor, not float"):
        tinydl.hypot(tinydl.ones(3), 2.0)


@pytest.mark.parametrize("values", [[1, -2, 3], [1.5, -2.25, 0.0], [True, False]])
def test_square_function(values):
    t = torch.tensor(values)
    want = torch.square(t)
    got = tinydl.square(tinydl.tensor(t.numpy()))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert got.dtype == (tinydl.float32 if t.dtype == torch.float32 else tinydl.int32)


def test_logical_ops_take_truth_in_the_promoted_dtype():
    """torch's logical_and/or/xor cast both operands to the promoted dtype first: a float32 zero-dim 1e-9 (or 1e-40)
    beside float16 values is 0 there, False (fuzz graph 20346335); beside float32 values it is True."""
    h = np.array([1.0, 0.0], np.float16)
    for tiny in (1e-9, 1e-40):
        s = np.float32(tiny)
        for name in ("logical_and", "logical_or", "logical_xor"):
            for a, b in ((h, s), (s, h), (np.float32([tiny, 0.0]), h), (np.array([1, 0], np.int32), np.float32(0.5))):
                got = getattr(tinydl, name)(tinydl.tensor(a), tinydl.tensor(b)).numpy()
                want = getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy()
                np.testing.assert_array_equal(got, want, err_msg=f"{name}({a!r}, {b!r})")
