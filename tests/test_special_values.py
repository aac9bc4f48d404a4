"""NaN, ±Inf, ±0, huge and tiny values through elementwise ops, casts, constants and comparisons: results equal
torch CPU's (shape, dtype, NaN positions, signs of zeros and infinities, values), and dtype rules/errors as torch's.

WGSL lets a compiler assume no NaN/Inf: these tests catch folds such as x*0 -> 0, x+0 -> x, x != x -> false, a
division by a literal zero, max(NaN, 0) -> 0. Each test batches many values in one tensor (few realizations).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
from tinydl.kernels.snippets import PRELUDE
from tinydl.testing.fuzz.oracle import host_independent_gelu

from flushing import flushed

SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e38, -1e38, 3.4028235e38, -3.4028235e38, 1e-45, -1e-45,
                    1.1754944e-38, 1.0, -1.0, 0.5, -0.5, 1.5, -2.5, 3.0, -3.0, 6.0, 6.5, -6.0, 21.0, 100.0, -100.0,
                    1e10, 0.1, -0.1, 16777217.0], np.float32)
INTS = np.array([0, 1, -1, 2, -2, 3, 5, -7, 6, 7, 100, -100, 2**31 - 1, -2**31], np.int32)
HAS_F16 = tinydl.runtime.get_runtime().has_f16


def _check(got: tinydl.Tensor, want: torch.Tensor, ulps: int = 0):
    assert tuple(got.shape) == tuple(want.shape)
    assert got.dtype.name == str(want.dtype).replace("torch.", "").replace("int64", "int32"), (got.dtype, want.dtype)
    g, w = got.numpy(), want.numpy()
    if w.dtype.kind != "f":
        np.testing.assert_array_equal(g.astype(np.int64), w.astype(np.int64))
        return
    w = flushed(g, w)  # torch's subnormal results may be zeros of their sign on an adapter that flushes them
    g64, w64 = g.astype(np.float64), w.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g64), np.isnan(w64), err_msg="NaN positions")
    m = ~np.isnan(w64)
    exact = np.isinf(w64) | (w64 == 0)  # infinities and zeros (with their signs) exactly
    np.testing.assert_array_equal(g64[m & exact], w64[m & exact])
    np.testing.assert_array_equal(np.signbit(g64[m & exact]), np.signbit(w64[m & exact]), err_msg="signs of 0/inf")
    rest = m & ~exact
    if not ulps:
        np.testing.assert_array_equal(g64[rest], w64[rest])
        return
    with np.errstate(over="ignore", invalid="ignore"):
        tol = np.nan_to_num(np.abs(np.spacing(w[rest])).astype(np.float64), nan=np.inf, posinf=np.inf) * ulps
    if ulps >= 8:  # transcendental: WGSL's exp/log are specified to a few ulps only, more for large arguments
        tol = np.maximum(tol, 1e-5 * np.abs(w64[rest]) + 1.2e-38)  # denormal results may flush to 0
    assert np.all(np.abs(g64[rest] - w64[rest]) <= tol), (g[rest], w[rest])


# (name, tinydl fn, torch fn, ulps): exact ops compare exactly
UNARY = [
    ("neg", lambda x: -x, lambda x: -x, 0),
    ("abs", lambda x: x.abs(), lambda x: x.abs(), 0),
    ("sign", lambda x: x.sign(), lambda x: x.sign(), 0),
    ("relu", F.relu, TF.relu, 0),
    ("relu6", F.relu6, TF.relu6, 0),
    ("hardtanh", lambda x: F.hardtanh(x, -2.0, 3.5), lambda x: TF.hardtanh(x, -2.0, 3.5), 0),
    ("hardsigmoid", F.hardsigmoid, TF.hardsigmoid, 2),
    ("hardswish", F.hardswish, TF.hardswish, 2),
    ("leaky_relu", F.leaky_relu, TF.leaky_relu, 0),
    ("leaky_relu0", lambda x: F.leaky_relu(x, 0.0), lambda x: TF.leaky_relu(x, 0.0), 0),
    ("elu", F.elu, TF.elu, 8),
    ("sigmoid", lambda x: x.sigmoid(), lambda x: x.sigmoid(), 8),
    ("exp", lambda x: x.exp(), lambda x: x.exp(), 8),
    ("sqrt", lambda x: x.sqrt(), lambda x: x.sqrt(), 2),
    ("reciprocal", lambda x: x.reciprocal(), lambda x: x.reciprocal(), 2),
    ("floor", lambda x: x.floor(), lambda x: x.floor(), 0),
    ("ceil", lambda x: x.ceil(), lambda x: x.ceil(), 0),
    ("round", lambda x: x.round(), lambda x: x.round(), 0),
    ("clamp", lambda x: x.clamp(0, 1), lambda x: x.clamp(0, 1), 0),
    ("clamp_min", lambda x: x.clamp(min=-1.5), lambda x: x.clamp(min=-1.5), 0),
    ("clamp_nan", lambda x: x.clamp(max=float("nan")), lambda x: x.clamp(max=float("nan")), 0),
    ("clamp_crossed", lambda x: x.clamp(2, 1), lambda x: x.clamp(2, 1), 0),
    ("isnan", lambda x: x.isnan(), lambda x: x.isnan(), 0),
    ("x!=x", lambda x: x != x, lambda x: x != x, 0),
    ("x==x", lambda x: x == x, lambda x: x == x, 0),
    ("x<inf", lambda x: x < float("inf"), lambda x: x < float("inf"), 0),
    ("x>=-0.0", lambda x: x >= -0.0, lambda x: x >= -0.0, 0),
    ("x!=nan", lambda x: x != float("nan"), lambda x: x != float("nan"), 0),
    ("x==nan", lambda x: x == float("nan"), lambda x: x == float("nan"), 0),
    ("x*0", lambda x: x * 0, lambda x: x * 0, 0),
    ("0.0*x", lambda x: 0.0 * x, lambda x: 0.0 * x, 0),
    ("x*-0.0", lambda x: x * -0.0, lambda x: x * -0.0, 0),
    ("x*inf", lambda x: x * float("inf"), lambda x: x * float("inf"), 0),
    ("x*1", lambda x: x * 1, lambda x: x * 1, 0),
    ("x+0", lambda x: x + 0, lambda x: x + 0, 0),
    ("x+-0.0", lambda x: x + -0.0, lambda x: x + -0.0, 0),
    ("x-0.0", lambda x: x - 0.0, lambda x: x - 0.0, 0),
    ("x+inf", lambda x: x + float("inf"), lambda x: x + float("inf"), 0),
    ("0-x", lambda x: 0 - x, lambda x: 0 - x, 0),
    ("x-x", lambda x: x - x, lambda x: x - x, 0),
    ("x/x", lambda x: x / x, lambda x: x / x, 0),
    ("x/0", lambda x: x / 0, lambda x: x / 0, 0),
    ("x/-0.0", lambda x: x / -0.0, lambda x: x / -0.0, 0),
    ("x/inf", lambda x: x / float("inf"), lambda x: x / float("inf"), 0),
    ("x/nan", lambda x: x / float("nan"), lambda x: x / float("nan"), 0),
    ("1/x", lambda x: 1 / x, lambda x: 1 / x, 1),
    ("x*zeros", lambda x: x * tinydl.zeros(x.shape), lambda x: x * torch.zeros(x.shape), 0),
    ("x**0", lambda x: x ** 0, lambda x: x ** 0, 0),
    ("x**-1", lambda x: x ** -1, lambda x: x ** -1, 1),
    ("x**2", lambda x: x ** 2, lambda x: x ** 2, 0),
    ("maximum0", lambda x: tinydl.maximum(x, tinydl.zeros(x.shape)), lambda x: torch.maximum(x, torch.zeros(x.shape)), 0),
    ("minimum0", lambda x: tinydl.minimum(x, tinydl.zeros(x.shape)), lambda x: torch.minimum(x, torch.zeros(x.shape)), 0),
    ("where_nan", lambda x: tinydl.where(x > 0, x, float("nan")), lambda x: torch.where(x > 0, x, float("nan")), 0),
    ("to_int", lambda x: x.int(), lambda x: x.int(), 0),
    ("to_bool", lambda x: x.bool(), lambda x: x.bool(), 0),
    ("to_half", lambda x: x.half(), lambda x: x.half(), 0),
]


@pytest.mark.parametrize("name,fn,tfn,ulps", UNARY, ids=[u[0] for u in UNARY])
def test_unary_special_values_float32(name, fn, tfn, ulps):
    if name == "to_half" and not HAS_F16:
        pytest.skip("adapter lacks shader-f16")
    # denormal inputs: drivers may flush them (lavapipe does), so the exact ops see them and the others do not
    v = SPECIAL if ulps == 0 else SPECIAL[np.abs(SPECIAL) != 1e-45]
    _check(fn(tinydl.tensor(v)), tfn(torch.tensor(v)), ulps)


@pytest.mark.skipif(not HAS_F16, reason="adapter lacks shader-f16")
@pytest.mark.parametrize("name", ["relu", "relu6", "x*0", "x/0", "x!=x", "x+0", "x-x", "clamp", "hardsigmoid"])
def test_unary_special_values_float16(name):
    _, fn, tfn, ulps = next(u for u in UNARY if u[0] == name)
    v = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 65504.0, -65504.0, 1.0, -1.0, 3.0, 7.0], np.float16)
    _check(fn(tinydl.tensor(v)), tfn(torch.tensor(v)), ulps)


BINARY = [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("eq", lambda a, b: a == b), ("ne", lambda a, b: a != b),
    ("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b), ("gt", lambda a, b: a > b), ("ge", lambda a, b: a >= b),
]
PAIR_VALUES = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -2.5, 3e38], np.float32)


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_binary_tensor_pairs_of_special_values(name, fn):
    a, b = PAIR_VALUES.reshape(-1, 1), PAIR_VALUES.reshape(1, -1)
    _check(fn(tinydl.tensor(a), tinydl.tensor(b)), fn(torch.tensor(a), torch.tensor(b)), 1 if name == "div" else 0)


@pytest.mark.parametrize("name,fn", BINARY[:4], ids=[b[0] for b in BINARY[:4]])
@pytest.mark.parametrize("scalar", [0, 0.0, -0.0, float("inf"), float("-inf"), float("nan"), False, 2])
def test_binary_with_python_scalars(name, fn, scalar):
    v = PAIR_VALUES
    if name == "sub" and isinstance(scalar, bool):  # torch refuses bool operands of -, scalars too
        for a, b in ((tinydl.tensor(v), scalar), (scalar, tinydl.tensor(v))):
            with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor"):
                fn(a, b)
        return
    _check(fn(tinydl.tensor(v), scalar), fn(torch.tensor(v), scalar), 1)
    _check(fn(scalar, tinydl.tensor(v)), fn(scalar, torch.tensor(v)), 1)


def test_division_by_zero_of_int_and_bool_tensors_is_float_as_torch():
    for arr in (INTS, np.array([True, False])):
        for d in (0, 0.0, -0.0, False):
            _check(tinydl.tensor(arr) / d, torch.tensor(arr) / d)
        z = np.zeros_like(arr)
        _check(tinydl.tensor(arr) / tinydl.tensor(z), torch.tensor(arr) / torch.tensor(z))


def test_maximum_minimum_and_clamp_propagate_nan_from_either_side():
    a = np.array([np.nan, 1.0, np.nan, -np.inf, 2.0], np.float32)
    b = np.array([1.0, np.nan, np.nan, np.inf, -0.0], np.float32)
    for fn in (tinydl.maximum, tinydl.minimum):
        tfn = getattr(torch, fn.__name__)
        _check(fn(tinydl.tensor(a), tinydl.tensor(b)), tfn(torch.tensor(a), torch.tensor(b)))
    _check(tinydl.tensor(a).clamp(tinydl.tensor(b)), torch.tensor(a).clamp(torch.tensor(b)))


def test_pow_special_values_as_std_pow():
    base = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 2.0, -2.0, 0.5], np.float32).reshape(-1, 1)
    exp = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, -0.5], np.float32)
    _check(tinydl.tensor(base) ** tinydl.tensor(exp.reshape(1, -1)), torch.tensor(base) ** torch.tensor(exp.reshape(1, -1)), 4)


def test_integer_pow_with_negative_tensor_exponent_as_torch():
    a = np.array([0, 1, -1, 2, -2, 3], np.int32).reshape(-1, 1)
    e = np.array([-1, -2, 0, 3], np.int32).reshape(1, -1)
    _check(tinydl.tensor(a) ** tinydl.tensor(e), torch.tensor(a) ** torch.tensor(e))


def test_float_to_int_cast_of_nan_inf_and_out_of_range_as_torch_cpu():
    v = np.array([np.nan, np.inf, -np.inf, 1e38, -3e9, 2.9e9, 2147483520.0, -2147483648.0, -1.5, 1.5], np.float32)
    _check(tinydl.tensor(v).int(), torch.tensor(v).int())


@pytest.mark.skipif(not HAS_F16, reason="adapter lacks shader-f16")
def test_float16_overflow_inf_nan_round_trips():
    v = np.array([np.nan, np.inf, -np.inf, 1e38, 65520.0, 65504.0, -1e5, 1e-8, -0.0], np.float32)
    x = tinydl.tensor(v)
    _check(x.half(), torch.tensor(v).half())
    _check(x.half().float(), torch.tensor(v).half().float())
    i = np.array([65536, 65504, -70000, 0], np.int32)  # int -> half rounds where the cast is (not only at the store)
    _check(tinydl.tensor(i).half() + 0.0, torch.tensor(i).half() + 0.0)
    _check(tinydl.tensor(v).half() + 2**40, torch.tensor(v).half() + 2**40)  # add rounds the scalar to half: -inf+inf


@pytest.mark.skipif(not HAS_F16, reason="adapter lacks shader-f16")
def test_float16_rounding_is_integer_arithmetic_and_exact():
    # ties to even, the overflow threshold, half subnormals, int32 beyond half's range compared as half (torch casts the
    # int to half first); the rounding is written in integer ops (td_round_f16), since a driver may fold f32(f16(x))
    v = np.array([1.00048828125, 1.000732421875, 65519.0, 65520.0, -65520.0, 2.9802322e-08, 8.940697e-08, 3e-8,
                  5e-8, 2049.0, 4097.0, -0.0, 1e-45], np.float32)
    _check(tinydl.tensor(v).half().float(), torch.tensor(v).half().float())
    _check(tinydl.tensor(v) * 1.0 + tinydl.zeros(1, dtype=tinydl.float16), torch.tensor(v) * 1.0 + torch.zeros(1).half())
    h = np.array([np.inf, 2048, 46336, 4096], np.float16)
    i = np.array([2**31 - 1, 2049, 46341, 4097], np.int32)
    for op in ("eq", "ne", "lt", "ge", "pow"):
        _check(getattr(tinydl, op)(tinydl.tensor(h), tinydl.tensor(i)), getattr(torch, op)(torch.tensor(h), torch.tensor(i)))
    src = tinydl.schedule.shaders_for(tinydl.tensor(v).half() * 2)[0]
    body = src.split("fn main")[-1]
    assert "td_round_f16(" in body and "f32(f16(" not in body


@pytest.mark.skipif(not HAS_F16, reason="adapter lacks shader-f16")
def test_float16_cast_is_bit_exact_across_float32():
    # every rounding regime: half's subnormals (multiples of 2^-24), ties to even, the overflow threshold, float32
    # subnormals, NaN/Inf; each pattern by itself and with its sign flipped
    rng = np.random.default_rng(5)
    bits = np.concatenate([np.arange(0x32800000, 0x38900000, 97, dtype=np.uint32),
                           np.arange(0x477fe000, 0x47800100, 3, dtype=np.uint32),
                           (rng.integers(0, 2**21, 50_000).astype(np.uint32) << 13) | 0x1000,  # exact ties
                           rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32),
                           np.array([0, 1, 0x7f800000, 0x7fc00000, 0x33000000, 0x33000001, 0x387fffff], np.uint32)])
    v = np.concatenate([bits, bits | 0x80000000]).view(np.float32)
    got = tinydl.tensor(v).half().numpy()
    want = torch.from_numpy(v).half().numpy()
    differ = (got.view(np.uint16) != want.view(np.uint16)) & ~(np.isnan(got) & np.isnan(want))
    assert not differ.any(), v[differ][:8]
    body = PRELUDE.split("fn td_round_f16(")[1].split("\n}")[0]
    assert "f16(" not in body and "pack" not in body  # integer ops only: drivers fold or round conversions their way


# -- dtypes and integers ---------------------------------------------------------------------------------------
def test_masked_fill_keeps_the_tensor_dtype():
    m = np.array([True, False, True])
    cases = [(np.array([1, 2, 3], np.int32), -1.5), (np.array([True, False, False]), 2.0),
             (np.array([True, False, False]), 0.0), (np.array([1.0, 2.0, 3.0], np.float32), 7),
             (np.array([1, 2, 3], np.int32), True), (np.array([1.0, 2, 3], np.float32), float("nan"))]
    for arr, v in cases:
        _check(tinydl.tensor(arr).masked_fill(tinydl.tensor(m), v), torch.tensor(arr).masked_fill(torch.tensor(m), v))


@pytest.mark.parametrize("v", [float("nan"), float("inf"), 2**40, 1e39])
def test_masked_fill_of_int_with_unrepresentable_value_raises_torchs_error(v):
    x, m = tinydl.tensor(np.array([1, 2], np.int32)), tinydl.tensor(np.array([True, False]))
    with pytest.raises(RuntimeError, match="value cannot be converted to type int without overflow"):
        x.masked_fill(m, v)
    with pytest.raises(RuntimeError, match="value cannot be converted to type int without overflow"):
        torch.tensor([1, 2], dtype=torch.int32).masked_fill(torch.tensor([True, False]), v)


def test_integer_activations_keep_int_and_float_only_ones_raise_as_torch():
    x = INTS[:12]
    _check(F.relu6(tinydl.tensor(x)), TF.relu6(torch.tensor(x)))
    _check(F.hardtanh(tinydl.tensor(x), -2.0, 3.5), TF.hardtanh(torch.tensor(x), -2.0, 3.5))
    _check(F.relu(tinydl.tensor(x)), TF.relu(torch.tensor(x)))
    for name in ("hardswish", "hardsigmoid", "leaky_relu", "elu", "gelu", "silu", "mish", "softplus"):
        with pytest.raises(NotImplementedError, match="not implemented for 'Int'"):
            getattr(F, name)(tinydl.tensor(x))
        with pytest.raises(NotImplementedError, match="not implemented for 'Bool'"):
            getattr(F, name)(tinydl.tensor(x > 0))
    for fn in (F.relu6, F.hardtanh):
        with pytest.raises(RuntimeError, match="Bool inputs not supported for hardtanh"):
            fn(tinydl.tensor(x > 0))
    for name in ("floor", "ceil", "round"):
        with pytest.raises(NotImplementedError, match=f'"{name}_vml_cpu" not implemented for \'Bool\''):
            getattr(tinydl.tensor(x > 0), name)()


def test_bool_comparisons_and_mixed_dtypes_compile_and_match_torch():
    b = np.array([True, False]).reshape(-1, 1)
    c = np.array([True, False]).reshape(1, -1)
    for fn in (lambda p, q: p > q, lambda p, q: p <= q, lambda p, q: p < q, lambda p, q: p >= q,
               lambda p, q: p == q, lambda p, q: p != q, lambda p, q: p + q, lambda p, q: p * q,
               lambda p, q: p > True, lambda p, q: False < q, lambda p, q: p + 1.5, lambda p, q: p * 3):
        _check(fn(tinydl.tensor(b), tinydl.tensor(c)), fn(torch.tensor(b), torch.tensor(c)))
    i = INTS[:6].reshape(-1, 1)
    for fn in (lambda p, q: p > q, lambda p, q: p + q, lambda p, q: p * q, lambda p, q: p == q):
        _check(fn(tinydl.tensor(i), tinydl.tensor(c)), fn(torch.tensor(i), torch.tensor(c)))
        _check(fn(tinydl.tensor(c), tinydl.tensor(i)), fn(torch.tensor(c), torch.tensor(i)))


def test_casts_between_every_dtype_pair():
    dts = [tinydl.float32, tinydl.int32, tinydl.bool] + ([tinydl.float16] if HAS_F16 else [])
    tdt = {tinydl.float32: torch.float32, tinydl.int32: torch.int32, tinydl.bool: torch.bool,
           tinydl.float16: torch.float16}
    v = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 100.0, np.nan], np.float32)
    for a in dts:
        src_t = torch.tensor(v[:7] if a in (tinydl.int32, tinydl.bool) else v).to(tdt[a])
        src = tinydl.tensor(src_t.numpy())
        for b in dts:
            _check(src.to(b), src_t.to(tdt[b]))


def test_python_ints_beyond_int32():
    x, t = tinydl.tensor(INTS[:8]), torch.tensor(INTS[:8])
    for fn in (lambda p: p + 2**40, lambda p: p == 2**40, lambda p: p < 2**40, lambda p: p > -2**40,
               lambda p: p - 2**32 + 5):
        _check(fn(x), fn(t))  # int32 tensors: torch computes in int32 (the Python int wraps)
    _check(x[:2] * 2**31, t[:2] * 2**31)  # 0 and 1 times the wrapped int, -2**31
    with pytest.raises(RuntimeError, match="integer overflow"):
        (x * 2**31).numpy()  # -1 * -2**31 does not fit int32 (tinydl's int32 stands for torch's int64)
    b, bt = tinydl.tensor(np.array([True, False])), torch.tensor([True, False])
    for fn in (lambda p: p == 2**40, lambda p: p < 2**40, lambda p: p >= -2**40):
        _check(fn(b), fn(bt))  # bool tensors compare in int64 in torch
    with pytest.raises(RuntimeError, match="int64 values in torch, which do not fit int32"):
        b + 2**40
    with pytest.raises(RuntimeError, match="value cannot be converted to type int without overflow"):
        tinydl.where(b, x[:2], 2**40)  # torch converts where's scalar with a check
    with pytest.raises(RuntimeError, match="value cannot be converted to type int without overflow"):
        tinydl.full((2,), 2**40, dtype=tinydl.int32)
    with pytest.raises(RuntimeError, match="value cannot be converted to type int32 without overflow"):
        tinydl.full((2,), 2**40)
    with pytest.raises(RuntimeError, match="value cannot be converted to type int32 without overflow"):
        tinydl.tensor([2**40])
    with pytest.raises(RuntimeError, match="value cannot be converted to type float without overflow"):
        tinydl.full((2,), 1e39)
    _check(tinydl.full((3,), -2**31, dtype=tinydl.int32), torch.full((3,), -2**31, dtype=torch.int32))


def test_fused_epilogue_keeps_nan_semantics():
    """Special values through a GEMM epilogue (bias + relu6 + mul by a literal 0) as in a fused conv/linear."""
    w = np.eye(4, dtype=np.float32)
    x = np.array([[np.nan, np.inf, -np.inf, -0.0], [1.0, -1.0, 7.0, 0.0]], np.float32)
    got = F.relu6(tinydl.tensor(x) @ tinydl.tensor(w)) * 0.0
    want = TF.relu6(torch.tensor(x) @ torch.tensor(w)) * 0.0
    _check(got, want)


def test_same_constant_with_other_sign_or_nan_reuses_no_wrong_plan():
    x = tinydl.tensor(np.array([1.0, -1.0], np.float32))
    _check(x / 0.0, torch.tensor([1.0, -1.0]) / 0.0)
    _check(x / -0.0, torch.tensor([1.0, -1.0]) / -0.0)  # -0.0 == 0.0 in Python: the plan key must tell them apart
    _check(x + -0.0, torch.tensor([1.0, -1.0]) + -0.0)


# -- views of 2^31+ elements ------------------------------------------------------------------------------------
def test_huge_views_work_while_indices_fit_i32_and_raise_at_the_call_otherwise():
    x = tinydl.tensor(np.arange(4, dtype=np.float32))
    e = x.reshape(4, 1, 1).expand(4, 4096, 2**20)  # 2^34 elements: every per-dim index fits i32
    np.testing.assert_array_equal(e[3, -1, -2:].numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(e.reshape(4, 1, 4096, 2**20)[2, 0, 5, :3].numpy(), [2.0, 2.0, 2.0])
    with pytest.raises(NotImplementedError, match="tinydl indexes with 32-bit integers"):
        e.reshape(-1)  # one dim of 2^34
    with pytest.raises(NotImplementedError, match="regroups 17179869184 elements"):
        e.reshape(4, 4096, 1024, 1024)
    with pytest.raises(NotImplementedError, match="a dimension of 2147483648 elements"):
        x[:1].expand(2**31)
    with pytest.raises(NotImplementedError, match="arange of 2147483653 elements"):
        tinydl.arange(2**31 + 5)
    with pytest.raises(RuntimeError, match="value cannot be converted to type int32 without overflow"):
        tinydl.arange(2**31 - 10, 2**31 + 5)
    np.testing.assert_array_equal(tinydl.zeros(2**31 + 5)[-2:].numpy(), [0.0, 0.0])  # constants index nothing


# -- floor/trunc division, remainder, fmod ----------------------------------------------------------------------
DIV_VALUES = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 0.1, 5.5, -5.5, 7.0, -2.0, 3e38], np.float32)


@pytest.mark.parametrize("name", ["floor", "trunc", "//", "%", "fmod"])
def test_float_floor_trunc_division_and_remainders_as_torch(name):
    fns = {"floor": lambda a, b: a.div(b, rounding_mode="floor"), "trunc": lambda a, b: a.div(b, rounding_mode="trunc"),
           "//": lambda a, b: a // b, "%": lambda a, b: a % b, "fmod": lambda a, b: a.fmod(b)}
    fn = fns[name]
    a, b = DIV_VALUES.reshape(-1, 1), DIV_VALUES.reshape(1, -1)
    _check(fn(tinydl.tensor(a), tinydl.tensor(b)), fn(torch.tensor(a), torch.tensor(b)))
    for s in (0.0, -0.0, 2.5, float("inf")):  # literal divisors, 1 // 0.1 is 9 (0.1f is above 0.1)
        _check(fn(tinydl.tensor(DIV_VALUES), s), fn(torch.tensor(DIV_VALUES), s))


@pytest.mark.parametrize("name", ["floor", "trunc", "//", "%", "fmod"])
def test_integer_floor_trunc_division_and_remainders_stay_int_and_raise_on_zero(name):
    fns = {"floor": lambda a, b: a.div(b, rounding_mode="floor"), "trunc": lambda a, b: a.div(b, rounding_mode="trunc"),
           "//": lambda a, b: a // b, "%": lambda a, b: a % b, "fmod": lambda a, b: a.fmod(b)}
    fn = fns[name]
    a = np.array([7, -7, 0, 5, -5, 2**31 - 1], np.int32).reshape(-1, 1)
    b = np.array([3, -3, 1, -1, 2, 7], np.int32).reshape(1, -1)
    _check(fn(tinydl.tensor(a), tinydl.tensor(b)), fn(torch.tensor(a), torch.tensor(b)))
    _check(fn(tinydl.tensor(a), 3), fn(torch.tensor(a), 3))
    _check(fn(tinydl.tensor(a), 2.5), fn(torch.tensor(a), 2.5))  # a float scalar makes it float
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        fn(tinydl.tensor(a), 0)  # a Python zero: at the call
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        fn(torch.tensor(a), 0)
    z = fn(tinydl.tensor(a), tinydl.tensor(np.array([1, 0, 2, 3, 4, 5], np.int32)))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        z.numpy()  # a zero on the GPU: when the result is read (tinydl/checks.py)
    with pytest.raises(NotImplementedError, match="not implemented for 'Bool'"):
        fn(tinydl.tensor(np.array([True])), tinydl.tensor(np.array([True])))


def test_integer_division_signs_as_torch():
    """Every sign combination, computed from the quotient: WGSL's i32 `%` takes the divisor's sign on some drivers
    (fmod(-1, 2) was 1 and True // -1 was -2 on an H200)."""
    a = np.array([-7, -6, -1, 0, 1, 6, 7, 2**31 - 1, -2**31 + 1], np.int32).reshape(-1, 1)
    b = np.array([-7, -3, -2, -1, 1, 2, 3, 7], np.int32).reshape(1, -1)
    for fn in (lambda x, y: x // y, lambda x, y: x % y, lambda x, y: x.fmod(y),
               lambda x, y: x.div(y, rounding_mode="trunc")):
        _check(fn(tinydl.tensor(a), tinydl.tensor(b)), fn(torch.tensor(a), torch.tensor(b)))
    t = np.array([True, False])
    _check(tinydl.tensor(t) // tinydl.tensor(np.int32([-1])), torch.tensor(t) // torch.tensor(np.int32([-1])))


def test_half_ops_read_a_float32_zero_dim_divisor_unrounded():
    """torch's half mul/div/floor/trunc division read a float32 0-dim tensor in the second place as a float32
    scalar: 1.488 / 0.37218288 truncates to 3 (to 4 with the divisor rounded to half first); in the first place,
    and for add/sub/remainder, the 0-dim tensor is rounded to half."""
    a = np.array([1.488, -3.3, 0.25, 6e4], np.float16)
    for s in (0.37218288, 1e-6, 1.0000001, -7.77):
        b = np.array(s, np.float32)
        for fn in (lambda x, y: x * y, lambda x, y: x / y, lambda x, y: x.div(y, rounding_mode="trunc"),
                   lambda x, y: x // y, lambda x, y: x + y, lambda x, y: x - y, lambda x, y: x % y):
            _check(fn(tinydl.tensor(a), tinydl.tensor(b)), fn(torch.tensor(a), torch.tensor(b)))
            _check(fn(tinydl.tensor(b), tinydl.tensor(a)), fn(torch.tensor(b), torch.tensor(a)))


def test_rounding_mode_is_checked():
    with pytest.raises(ValueError, match="rounding_mode to be one of None, 'trunc', or 'floor'"):
        tinydl.tensor([1.0]).div(2, rounding_mode="round")


def test_smooth_activations_keep_relative_precision_in_their_tails():
    """softplus/mish via log1p (log(1 + x) loses digits for small x, and compilers reassociate the classic (u - 1)
    correction away); gelu_tanh as x * sigmoid(2u) (1 + tanh(u) cancels for negative x)."""
    v = np.array([-12.0, -8.0, -6.0, -3.0, -1.5, -0.1, 0.0, 0.1, 2.0, 10.0, 25.0, np.nan, np.inf, -np.inf], np.float32)
    for fn, tfn in ((F.softplus, TF.softplus), (F.mish, TF.mish), (lambda x: F.softplus(x, 2.0, 5.0),
                                                                  lambda x: TF.softplus(x, 2.0, 5.0))):
        _check(fn(tinydl.tensor(v)), tfn(torch.tensor(v)), 8)
    g, w = F.gelu(tinydl.tensor(v), approximate="tanh").numpy(), TF.gelu(torch.tensor(v), approximate="tanh").numpy()
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)  # torch's own form cancels to -0.0 below -5


def test_scalars_that_round_to_zero_or_inf_in_float32_keep_ieee_results():
    v = np.array([np.nan, np.inf, -np.inf, 1.0, -0.0], np.float32)
    for s in (1e-50, -1e-50, 1e39, -1e39):  # 1e-50 is 0.0f: x * 1e-50 is NaN for Inf, x / 1e-50 is x / 0
        for fn in (lambda a, b: a * b, lambda a, b: a / b, lambda a, b: b / a, lambda a, b: a + b):
            _check(fn(tinydl.tensor(v), s), fn(torch.tensor(v), s))


def test_one_value_twice_is_not_folded():
    """x - x.clone() and exp(x) - exp(x) are one value twice to the shader compiler, which folds v - v to 0."""
    v = np.array([np.nan, np.inf, -np.inf, 1.0, 0.0, -0.0], np.float32)
    x, t = tinydl.tensor(v), torch.tensor(v)
    _check(x - x.clone(), t - t.clone())
    _check(x.exp() - x.exp(), t.exp() - t.exp())
    _check(x.abs() / x.abs(), t.abs() / t.abs())
    _check(x.div(x.clone(), rounding_mode="trunc"), t.div(t.clone(), rounding_mode="trunc"))


def test_no_reassociation_across_ops():
    """(x + 1) - x, x + (-x), (x - 1) + 1: computed as written (compilers reassociate them to 1, 0, x)."""
    v = np.array([np.nan, np.inf, -np.inf, 1e38, -0.0, 1.0, 3e7], np.float32)
    x, t = tinydl.tensor(v), torch.tensor(v)
    for fn in (lambda a: (a + 1) - a, lambda a: a + (-a), lambda a: (a - 1) + 1, lambda a: (a + a) - a,
               lambda a: (a * 3) / 3 - a):
        _check(fn(x), fn(t))


# -- NaN bounds, NaN decisions on bits only, float16 tensor with a Python float ---------------------------------
# torch CPU: clamp/clamp_min/clamp_max/hardtanh with a NaN bound (a Python float, a 0-dim or a full tensor) give NaN
# everywhere; a NaN input stays NaN; lo > hi gives hi. A NaN literal bound is resolved when the kernel is written.
CLAMP_X = np.array([1.0, -2.0, np.nan, 0.0, -0.0, 5.0, np.inf, -np.inf, 0.5, -0.5, 3.0], np.float32)
NAN = float("nan")


@pytest.mark.parametrize("lo,hi", [(NAN, None), (None, NAN), (NAN, NAN), (0.0, NAN), (NAN, 3.0), (-0.5, 0.5),
                                   (3.0, 0.0), (0.0, None), (-0.0, None), (None, 0.0), (None, -0.0), (-1, 1),
                                   (float("-inf"), float("inf")), (float("inf"), None)])
def test_clamp_with_nan_and_special_bounds_as_torch(lo, hi):
    dts = [np.float32] + ([np.float16] if HAS_F16 else [])
    for dt in dts:
        x, t = tinydl.tensor(CLAMP_X.astype(dt)), torch.tensor(CLAMP_X.astype(dt))
        _check(x.clamp(lo, hi), t.clamp(lo, hi))
        if lo is not None:
            _check(x.clamp_min(lo), t.clamp_min(lo))
        if hi is not None:
            _check(x.clamp_max(hi), t.clamp_max(hi))
        if lo is not None and hi is not None and not lo > hi:  # torch's hardtanh raises for lo > hi
            _check(F.hardtanh(x, lo, hi), TF.hardtanh(t, lo, hi))
        # fused: a clamp after another op, and into a reduction's epilogue
        _check((x * 2).clamp(lo, hi), (t * 2).clamp(lo, hi))
    x, t = tinydl.tensor(CLAMP_X.reshape(1, -1)), torch.tensor(CLAMP_X.reshape(1, -1))
    _check(x.sum(1).clamp(lo, hi), t.sum(1).clamp(lo, hi))


def test_clamp_of_int_tensor_with_nan_bound_is_float_nan_as_torch():
    i = np.array([1, -2, 3], np.int32)
    _check(tinydl.tensor(i).clamp(min=NAN), torch.tensor(i).clamp(min=NAN))
    _check(tinydl.tensor(i).clamp(max=NAN), torch.tensor(i).clamp(max=NAN))


def test_clamp_with_nan_tensor_bounds_as_torch():
    x, t = tinydl.tensor(CLAMP_X), torch.tensor(CLAMP_X)
    full = np.full_like(CLAMP_X, np.nan)
    mixed = np.where(np.arange(CLAMP_X.size) % 2 == 0, np.nan, 0.25).astype(np.float32)
    for b in (full, mixed):
        bt, bx = torch.tensor(b), tinydl.tensor(b)
        _check(x.clamp(min=bx), t.clamp(min=bt))
        _check(x.clamp(max=bx), t.clamp(max=bt))
        _check(x.clamp(bx, bx), t.clamp(bt, bt))
        _check(x.clamp(tinydl.tensor(np.float32(-1.0)), bx), t.clamp(torch.tensor(np.float32(-1.0)), bt))
    _check(x.clamp(min=tinydl.tensor(np.float32(np.nan))), t.clamp(min=torch.tensor(np.float32(np.nan))))
    _check(tinydl.maximum(x, tinydl.tensor(full)), torch.maximum(t, torch.tensor(full)))
    _check(tinydl.minimum(tinydl.tensor(full), x), torch.minimum(torch.tensor(full), t))


def test_nan_inputs_through_bit_tested_helpers():
    """relu6, hardswish, hardsigmoid, tanh, gelu, erf, expm1-based elu, log1p-based softplus, floor division: NaN
    in, NaN out, and the small-|x| branches (now chosen on the bits) give torch's values."""
    v = np.array([np.nan, -np.nan, 0.0, -0.0, 1e-6, -1e-6, 0.06, -0.06, 0.12, -0.12, 0.6, -0.8, 3.0, -3.0, 7.0,
                  np.inf, -np.inf], np.float32)
    x, t = tinydl.tensor(v), torch.tensor(v)
    _check(F.relu6(x), TF.relu6(t))
    f = np.float32
    edges = np.array([6.0, np.nextafter(f(6), f(7)), np.nextafter(f(6), f(5)), 1e-45, -1e-45, 3e38, -3.0,
                      np.nextafter(f(-3), f(0)), np.nextafter(f(-3), f(-4)), np.nextafter(f(3), f(4)),
                      np.uint32(0x7f800001).view(f)], np.float32)  # relu6's bit-tested bounds, x + 3 at 0
    _check(F.relu6(tinydl.tensor(edges)), TF.relu6(torch.tensor(edges)))
    for fn, tfn in ((F.hardsigmoid, TF.hardsigmoid), (F.hardswish, TF.hardswish)):
        _check(fn(tinydl.tensor(edges)), tfn(torch.tensor(edges)), ulps=2)
    _check(F.hardswish(x), TF.hardswish(t), ulps=2)
    _check(F.hardsigmoid(x), TF.hardsigmoid(t), ulps=2)
    _check(x.tanh(), t.tanh(), ulps=8)
    g = v[np.isnan(v) | (np.abs(v) <= 1) | np.isinf(v)]  # torch's own float32 gelu drifts in the far tail (x < -2)
    g = np.concatenate([g, np.array([3e38, 2e38, 1e30, -1e30], np.float32)])  # gelu(3e38) overflows to inf
    _check(F.gelu(tinydl.tensor(g)), host_independent_gelu(torch.tensor(g)), ulps=8)
    # torch forms 1 + erf in float32, a multiple of 2^-24 here and 0 beyond about -5.6: that formula with erf
    # rounded correctly (torch's own float32 erf is ulps off there, differently on different hosts)
    tail = np.array([-5.0, -5.5, -5.6, -6.0, -12.0, -30.0], np.float32)
    erf = np.array([math.erf(float(x) / math.sqrt(2)) for x in tail], np.float32)
    np.testing.assert_array_equal(F.gelu(tinydl.tensor(tail)).numpy(), tail * (1 + erf) * np.float32(0.5))
    assert np.signbit(F.gelu(tinydl.tensor(tail)).numpy()).all()
    h = np.array([np.inf, -np.inf, np.nan, 6e4, -6e4, 1.0, -1.0, 0.5, -3.0], np.float16)
    np.testing.assert_array_equal(F.gelu(tinydl.tensor(h)).numpy(),
                                  host_independent_gelu(torch.tensor(h).float()).half().numpy())
    _check(F.elu(x), TF.elu(t), ulps=8)
    _check(F.softplus(x), TF.softplus(t), ulps=8)
    _check(x // 0.25, t // 0.25)
    _check(x.clamp(-0.1, 0.1), t.clamp(-0.1, 0.1))


def _kernel_sources(fn) -> list[str]:
    import tinydl.schedule as S
    S.clear_cache()
    fn()
    return [step.wgsl for plan in S._plans.values() for step in plan.steps]


def _main_body(wgsl: str) -> str:
    """The kernel's own code: what follows the PRELUDE declarations it carries."""
    from tinydl.kernels.prelude import used_prelude
    prelude = used_prelude(wgsl)  # the declarations wgsl names are those it carries
    assert prelude in wgsl
    return wgsl.split(prelude, 1)[1]


def test_nan_literal_bound_is_resolved_when_the_kernel_is_written():
    for bounds in ((NAN, None), (None, NAN), (0.0, NAN), (NAN, 1.0)):
        srcs = _kernel_sources(lambda: tinydl.tensor(CLAMP_X).clamp(*bounds).numpy())
        body = "".join(_main_body(s) for s in srcs)
        assert "td_nan()" in body and "td_maximum" not in body and "td_minimum" not in body, body


_FLOAT_LIT = r"-?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?e[-+]?\d+)f?"
_CMP = r"(?:<=|>=|==|!=|(?<![<>-])<(?![<=])|(?<![<>=-])>(?![>=]))"


def _risky(code: str) -> list[str]:
    """Comparisons that decide on a float value in a way a no-NaN compiler may fold: against a float literal, a
    value against itself (x != x), or a builtin max/min/clamp with a float literal bound (max(NaN, 0) may be 0)."""
    import re
    code = re.sub(r"//[^\n]*", "", code)
    code = re.sub(r"<(?:f32|u32|i32|f16|bool)>|vec\d<\w+>|array<[^>]*>|->|>>|<<", " ", code)
    found = re.findall(rf"[\w.)\]]+\s*{_CMP}\s*{_FLOAT_LIT}(?![\w.])|(?<![\w.]){_FLOAT_LIT}\s*{_CMP}", code)
    found += [m.group(0) for m in re.finditer(r"\b(\w+)\s*(?:==|!=)\s*\1\b", code)]
    found += re.findall(rf"\b(?:max|min|clamp)\([^;]*?{_FLOAT_LIT}[,)]", code)
    return found


def test_generated_kernels_take_no_nan_decision_on_a_float_compare():
    """The main bodies of representative kernels (elementwise ops with literal operands, clamp, relu6, comparisons,
    divisions, activations) hold no float-literal compare, no x != x and no max/min with a float literal."""
    v = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)
    x = tinydl.tensor(v)
    ops = [lambda a: a.clamp(-0.5, 0.5), lambda a: a.clamp(min=0.0), lambda a: a.clamp(max=NAN),
           lambda a: F.relu6(a), lambda a: F.hardtanh(a, -2.0, 2.0), F.hardswish, F.hardsigmoid, F.relu,
           lambda a: F.leaky_relu(a, 0.1), F.elu, F.gelu, F.silu, F.softplus, F.mish, lambda a: a.tanh(),
           lambda a: (a > 0.5).float(), lambda a: (a == 0.0).float(), lambda a: (a != a).float(),
           lambda a: a.isnan().float(), lambda a: tinydl.where(a < 1.0, a, 0.0), lambda a: a // 0.3,
           lambda a: a % 0.3, lambda a: tinydl.fmod(a, 0.3), lambda a: a ** 0.7, lambda a: a.sign(),
           lambda a: tinydl.maximum(a, a * 2), lambda a: a * 0.0, lambda a: a / 0.0, lambda a: a + float("inf"),
           lambda a: a.masked_fill(a > 0, NAN), lambda a: a.to(tinydl.int32).float()]
    bad = {}
    for i, op in enumerate(ops):
        for src in _kernel_sources(lambda: op(x).numpy()):
            found = _risky(_main_body(src))
            if found:
                bad[i] = found
    assert not bad, bad


# audited float compares in PRELUDE: each has operands known non-NaN by a bit test earlier on the same path
_PRELUDE_FLOAT_COMPARES = {
    "b) < 16777216.0",  # td_pow's abs(b) < 2^24: b is not NaN (td_isnan(b) returned before)
    "clamp(x, -15.0,",  # td_tanh: x is not NaN (td_isnan(x) returned before)
}


def test_prelude_float_compares_are_the_audited_ones():
    from tinydl.kernels.snippets import PRELUDE
    import re
    found = {re.sub(r"\s+", " ", f) for f in _risky(PRELUDE)}
    assert found <= _PRELUDE_FLOAT_COMPARES, found - _PRELUDE_FLOAT_COMPARES
    # the helpers that decide on NaN do it on the bits
    for name in ("td_isnan", "td_isinf", "td_finite", "td_iszero", "td_ltz", "td_gtz", "td_abslt"):
        body = re.search(rf"fn {name}\([^{{]*{{([^}}]*)}}", PRELUDE).group(1)
        assert "bitcast<u32>" in body, name


# torch CPU, a float16 tensor next to a Python float (checked value by value): add, sub, remainder, fmod, pow (both
# sides), comparisons, where, and floor/trunc division with the scalar first round the scalar to half; mul, div
# and floor/trunc division with the scalar second compute with it in float32 (1.26 // 0.42 is 2, not 3 with
# half(0.42)); clamp, masked_fill and maximum give the same either way; clamp, masked_fill and pow raise for a
# scalar beyond half's range.
HALF_SCALAR_OPS = {
    "add": lambda x, s: x + s, "rsub": lambda x, s: s - x, "sub": lambda x, s: x - s, "mul": lambda x, s: x * s,
    "div": lambda x, s: x / s, "floor_divide": lambda x, s: x // s,
    "div_floor": lambda x, s: x.div(s, rounding_mode="floor"), "div_trunc": lambda x, s: x.div(s, rounding_mode="trunc"),
    "remainder": lambda x, s: x % s, "rremainder": lambda x, s: s % x, "fmod": lambda x, s: x.fmod(s),
    "pow": lambda x, s: x.abs() ** s, "rpow": lambda x, s: abs(s) ** x, "clamp": lambda x, s: x.clamp(-abs(s), abs(s)),
    "clamp_min": lambda x, s: x.clamp(min=s), "clamp_max": lambda x, s: x.clamp(max=s),
    "masked_fill": lambda x, s: x.masked_fill(x > 0, s), "where": lambda x, s: x.where(x > 0, s),
    "eq": lambda x, s: x == s, "lt": lambda x, s: x < s, "ge": lambda x, s: x >= s,
}


@pytest.mark.skipif(not HAS_F16, reason="adapter without shader-f16")
@pytest.mark.parametrize("name", sorted(HALF_SCALAR_OPS))
def test_float16_tensor_with_python_float_as_torch_per_op(name):
    fn = HALF_SCALAR_OPS[name]
    rng = np.random.default_rng(7)
    v = np.concatenate([rng.uniform(-5, 5, 400), [1.26, 0.0, -0.0, 4.7, 0.42, np.inf, -np.inf, np.nan]])
    v = v.astype(np.float16)
    for s in (0.42, 1.26, 0.1, 3.3, -0.7, 2.0003, 0.333):
        _check(fn(tinydl.tensor(v), s), fn(torch.tensor(v), s))


def test_float16_floor_divide_by_a_python_float_uses_it_in_float32():
    if not HAS_F16:
        pytest.skip("adapter without shader-f16")
    v = np.float16([1.26])
    assert (tinydl.tensor(v) // 0.42).numpy()[0] == (torch.tensor(v) // 0.42).numpy()[0] == 2
    assert (tinydl.tensor(v) % 0.42).numpy()[0] == (torch.tensor(v) % 0.42).numpy()[0] == 0


@pytest.mark.skipif(not HAS_F16, reason="adapter without shader-f16")
@pytest.mark.parametrize("fn", [lambda x: x.clamp(min=70000.0), lambda x: x.clamp(max=-70000.0),
                                lambda x: x ** 70000.0, lambda x: x.masked_fill(x > 0, 70000.0)])
def test_float16_scalar_beyond_half_raises_as_torch(fn):
    v = np.float16([1.0, -1.0])
    with pytest.raises(RuntimeError, match="without overflow"):
        fn(torch.tensor(v))
    with pytest.raises(RuntimeError, match="without overflow"):
        fn(tinydl.tensor(v)).numpy()


def test_python_scalar_divided_by_a_tensor_is_reciprocal_times_scalar_as_torch():
    """torch's s / x is x.reciprocal() * s (two roundings): float32 results equal torch's bit for bit."""
    v = np.concatenate([np.linspace(-7, 7, 301), [0.0, -0.0, np.inf, -np.inf, np.nan]]).astype(np.float32)
    for s in (0.42, 3, 1.26, -0.0, float("inf")):
        _check(s / tinydl.tensor(v), s / torch.tensor(v))
    i = np.array([0, 1, -3, 7], np.int32)
    _check(1.26 / tinydl.tensor(i), 1.26 / torch.tensor(i))


def test_division_by_huge_values_as_torch():
    # a driver may divide as a * (1 / b): with |b| >= 2^126 the reciprocal is subnormal and may be flushed to 0
    # (NVIDIA: inf / 1e38 gave NaN, x / 2e38 gave 0); td_div scales such divisors first
    a = np.array([np.inf, -np.inf, 3e38, 1.0, -2e38, 0.0, np.nan, 1e30], np.float32)
    b = np.array([1e38, -2e38, 2e38, 1e38, 3e38, 1e38, 1e38, -1e38], np.float32)
    ta, tb = torch.tensor(a), torch.tensor(b)
    _check(tinydl.tensor(a) / tinydl.tensor(b), ta / tb)
    _check(tinydl.tensor(a) // tinydl.tensor(b), ta // tb)
    _check(tinydl.tensor(a) / 2e38, ta / 2e38)
    body = tinydl.schedule.shaders_for(tinydl.tensor(a) / tinydl.tensor(b))[0].split("fn main")[-1]
    assert "td_div(" in body
    body = tinydl.schedule.shaders_for(tinydl.tensor(a) / 2e38)[0].split("fn main")[-1]
    assert "td_div(" in body


@pytest.mark.parametrize("name, fn, tfn", [
    ("log", tinydl.log, torch.log), ("sqrt", tinydl.sqrt, torch.sqrt), ("rsqrt", tinydl.rsqrt, torch.rsqrt),
    ("pow", lambda x: x ** 0.5, lambda x: x ** 0.5), ("exp", tinydl.exp, torch.exp),
])
def test_ops_of_literals_only_give_torchs_nan_and_inf(name, fn, tfn):
    """An op whose operands are all constants (a full tensor) is not folded by the shader compiler, which would
    refuse log(-1.0) outright: NaN and Inf as torch."""
    for v in (-1.0, 0.0, 100.0):
        got = fn(tinydl.full((3,), v)).numpy()
        np.testing.assert_allclose(got, tfn(torch.full((3,), v)).numpy(), rtol=2e-6)  # NaN, Inf: equal


def test_the_flushed_reference_accepts_only_zeros_of_the_subnormals_sign(monkeypatch):
    """tests/flushing.py: on a flushing adapter torch's subnormal becomes the adapter's zero of its sign; a zero of
    the other sign, a normal value or another adapter keeps torch's value (so such a result still fails)."""
    want = np.array([1e-40, -1e-40, 1e-40, 1.0], np.float32)
    got = np.array([0.0, -0.0, -0.0, 0.0], np.float32)
    monkeypatch.setattr(tinydl, "device_info", lambda: {"flushes_subnormals": True})
    out = flushed(got, want)
    assert out.tolist() == [0.0, 0.0, want[2], 1.0] and np.signbit(out[1]) and not np.signbit(out[0])
    monkeypatch.setattr(tinydl, "device_info", lambda: {"flushes_subnormals": False})
    assert flushed(got, want).tolist() == want.tolist()


def test_sums_of_negative_zeros_are_positive_zero_as_torch():
    """torch's sums start at +0.0, so a conv, pool, product or reduction whose terms are all -0.0 gives +0.0; a
    kernel whose accumulator started at the literal 0.0 had 0.0 + x folded to x and kept -0.0 (fuzz graph
    20302757: reciprocal then gave -inf for torch's inf). (A product over K = 1 is torch's own exception: its
    kernels differ, see the fuzzer's matmul_zero_sign gap.)"""
    ones = np.ones((1, 4, 8, 8), np.float32)
    nz = np.full((1, 4, 8, 8), -0.0, np.float32)
    nw3, nw1 = np.full((8, 4, 3, 3), -0.0, np.float32), np.full((8, 4, 1, 1), -0.0, np.float32)
    w1 = np.ones((3, 8), np.float32)
    cases = [
        (lambda L, f, t: f.conv2d(t(ones), t(nw3), padding=1)),
        (lambda L, f, t: f.conv2d(t(ones), t(nw3), stride=2, padding=1, dilation=2)),
        (lambda L, f, t: f.conv2d(t(ones), t(nw1))),
        (lambda L, f, t: f.conv2d(t(nz), t(np.ones((4, 1, 3, 3), np.float32)), padding=1, groups=4)),
        (lambda L, f, t: f.avg_pool2d(t(nz), 2)),
        (lambda L, f, t: f.avg_pool2d(t(nz), 3, 1, 1)),
        (lambda L, f, t: f.linear(t(nz[0, 0]), t(w1))),
        (lambda L, f, t: f.linear(t(nz[0, 0, :1]), t(w1))),
        (lambda L, f, t: t(ones[0, 0]) @ t(nz[0, 0])),
        (lambda L, f, t: t(nz).sum(-1)),
        (lambda L, f, t: t(nz).mean((2, 3))),
    ]
    for i, case in enumerate(cases):
        got = case(tinydl, F, tinydl.tensor).numpy()
        want = case(torch, TF, torch.tensor).numpy()
        assert not np.signbit(want).any() and not np.signbit(got).any(), (i, got.ravel()[:8])


def test_a_short_sum_inlined_into_a_row_kernel_over_an_empty_dim():
    """A sum short enough to be inlined into the kernel that reads it (a row norm's loads) over a dim of size 0 is
    0, its mean NaN, as torch's; it was written as an empty WGSL expression (fuzz graph 20304138)."""
    one = np.ones(1, np.float32)
    got = F.layer_norm(tinydl.tensor(np.zeros((0,), np.float32)).mean(dim=0, keepdim=True), (1,),
                       tinydl.tensor(one), tinydl.tensor(one), eps=1e-5)
    want = TF.layer_norm(torch.zeros(0).mean(dim=0, keepdim=True), (1,), torch.tensor(one), torch.tensor(one))
    _check(got, want)
    _check(F.softmax(tinydl.tensor(np.zeros((2, 0), np.float32)).sum(1, keepdim=True), 0),
           TF.softmax(torch.zeros(2, 0).sum(1, keepdim=True), 0))
    _check(F.layer_norm(tinydl.tensor(np.full((3, 2), -0.0, np.float32)).sum(0, keepdim=True) * 2, (2,)),
           TF.layer_norm(torch.full((3, 2), -0.0).sum(0, keepdim=True) * 2, (2,)))
