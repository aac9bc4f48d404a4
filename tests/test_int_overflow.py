"""Elementwise int32 arithmetic never wraps silently: tinydl stores torch's int64 as int32, so an int32 result that
does not fit int32 (torch returns the true int64 value) sets checks.Code.INTEGER_OVERFLOW on the GPU and the read
raises RuntimeError (tinydl/kernels/overflow.py). Values at the edges of int32 that do fit come back as torch's;
float and bool kernels carry no check at all."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import tinydl
from tinydl import explain, schedule

INT_MIN, INT_MAX = -2**31, 2**31 - 1
MESSAGE = r"integer overflow: an int32 result .* does not fit int32"
# the edges of each op's test: products around 2^31 (46340^2, 65536 * 32768, 3 * 715827882), sums around the ends
EDGES = [0, 1, -1, 2, -2, 3, -3, 7, 46340, -46340, 46341, -46341, 32768, -32768, 65535, 65536, -65536, 65537,
         2**30, -2**30, 2**30 + 1, 715827882, 715827883, -715827883, INT_MAX - 1, INT_MAX, INT_MIN + 1, INT_MIN]
OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}


def ints(*v):
    return tinydl.tensor(np.array(v, np.int32))


def fits(v: int) -> bool:
    return INT_MIN <= v <= INT_MAX


def raises(t: tinydl.Tensor):
    with pytest.raises(RuntimeError, match=MESSAGE):
        t.numpy()


@pytest.mark.parametrize("op", list(OPS))
def test_tensor_pairs_at_the_edges_raise_exactly_when_torch_leaves_int32(op):
    """Every pair of edge values: the results that fit int32 are torch's (int64) values, each one that does not
    raises on its own."""
    fn = OPS[op]
    pairs = list(itertools.product(EDGES, EDGES))
    good = [(a, b) for a, b in pairs if fits(fn(a, b))]
    bad = [(a, b) for a, b in pairs if not fits(fn(a, b))]
    assert len(bad) > 20
    a, b = (np.array(v, np.int32) for v in zip(*good))
    got = fn(tinydl.tensor(a), tinydl.tensor(b)).numpy()
    np.testing.assert_array_equal(got.astype(np.int64), fn(torch.tensor(a).long(), torch.tensor(b).long()).numpy())
    for a, b in bad:
        raises(fn(ints(a, 0), ints(b, 0)))  # the overflowing element with one that fits
    assert fn(ints(5), ints(-3)).item() == fn(5, -3)  # and the next computation works again


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("c", [0, 1, -1, 2, -3, 46341, -65536, 2**30, INT_MAX, INT_MIN])
def test_literal_operands_check_the_other_operands_range(op, c):
    """x op c and c op x with a Python int: a range check on x, computed exactly on the host."""
    fn = OPS[op]
    n = len(EDGES)
    for f in (lambda x: fn(x, c), lambda x: fn(c, x)):
        good = [x for x in EDGES if fits(f(x))]
        if good:
            padded = np.array(good + [good[0]] * (n - len(good)), np.int32)  # one shape: one plan per case
            np.testing.assert_array_equal(f(tinydl.tensor(padded)).numpy().astype(np.int64),
                                          f(torch.tensor(padded).long()).numpy())
        for x in EDGES:
            if not fits(f(x)):
                raises(f(tinydl.tensor(np.full(n, x, np.int32))))


def test_neg_and_abs_of_int_min_raise():
    raises(-ints(INT_MIN, 1))
    raises(ints(3, INT_MIN).abs())
    raises(0 - ints(INT_MIN))
    raises(ints(INT_MIN).neg())
    x = np.array([INT_MIN + 1, INT_MAX, 0, -5], np.int32)
    np.testing.assert_array_equal((-tinydl.tensor(x)).numpy(), -x.astype(np.int64))
    np.testing.assert_array_equal(tinydl.tensor(x).abs().numpy(), np.abs(x.astype(np.int64)))


def test_integer_pow_raises_past_int32_and_matches_torch_inside():
    base = [0, 1, -1, 2, -2, 3, -3, 46340, -46340, 46341, 1290, -1291, 7]
    exps = [0, 1, 2, 3, 5, 19, 20, 30, 31, 32, 2**31 - 1, -1, -2]
    good, bad = [], []
    for b, e in itertools.product(base, exps):
        ok = e < 0 or abs(b) <= 1 or (e < 64 and fits(b ** e))
        (good if ok else bad).append((b, e))
    a, e = (np.array(v, np.int32) for v in zip(*good))
    want = torch.tensor(a).long() ** torch.tensor(e).long()
    np.testing.assert_array_equal((tinydl.tensor(a) ** tinydl.tensor(e)).numpy(), want.numpy())
    for b, e in bad:
        raises(ints(b, 2) ** ints(e, 2))
    # a literal exponent: a range check on the base ((-2) ** 31 = -2^31 fits, 2 ** 31 does not)
    np.testing.assert_array_equal((ints(-2, 1, 0, -1) ** 31).numpy(), [INT_MIN, 1, 0, -1])
    raises(ints(2) ** 31)
    np.testing.assert_array_equal((ints(1290, -1290) ** 3).numpy(), [1290 ** 3, -1290 ** 3])
    raises(ints(-1291) ** 3)
    raises(ints(46341) ** 2)  # x ** 2 is x * x
    raises(3 ** ints(1, 20))  # a literal base
    np.testing.assert_array_equal((3 ** ints(19, 0)).numpy(), [3 ** 19, 1])


def test_int_min_floor_and_trunc_divided_by_minus_one_raise():
    for mode in ("floor", "trunc"):
        def fn(a, b, lib=tinydl):
            return lib.div(a, b, rounding_mode=mode)
        raises(fn(ints(INT_MIN, 4), ints(-1, 2)))
        raises(fn(ints(INT_MIN), -1))
        raises(fn(INT_MIN, ints(7, -1)))
        a = np.array([INT_MIN, INT_MIN + 1, INT_MAX, INT_MIN, INT_MIN], np.int32)
        b = np.array([1, -1, -1, 2, -3], np.int32)
        np.testing.assert_array_equal(fn(tinydl.tensor(a), tinydl.tensor(b)).numpy(),
                                      fn(torch.tensor(a).long(), torch.tensor(b).long(), torch).numpy())
        np.testing.assert_array_equal(fn(tinydl.tensor(a), -3).numpy(), fn(torch.tensor(a).long(), -3, torch).numpy())
    raises(ints(INT_MIN) // ints(-1))
    raises(tinydl.floor_divide(ints(INT_MIN), -1))
    # remainders never overflow: -2^31 % -1 is 0
    np.testing.assert_array_equal((ints(INT_MIN) % ints(-1)).numpy(), [0])
    np.testing.assert_array_equal(ints(INT_MIN).fmod(-1).numpy(), [0])


def test_an_overflow_inside_a_fused_chain_raises():
    x = ints(2**30, 1, 5)
    assert len(explain.plan(lambda t: t * 3 + 1, x, target=schedule.Target()).steps) == 1  # one fused kernel
    raises(x * 3 + 1)                      # the product leaves int32, the sum would wrap back in
    raises(x * 4 - 4 * x)                  # wrapped products whose difference is right: still raises
    raises((x * 3 > 0).int())              # a comparison of an overflowed value
    raises((ints(INT_MAX, 0) + 1) - 5)     # the first op of the chain
    np.testing.assert_array_equal((ints(2**29, 1, -7) * 3 + 1).numpy(), [3 * 2**29 + 1, 4, -20])


def test_overflow_in_epilogues_and_prologues_of_other_kernels_raises():
    x = tinydl.tensor(np.full((4, 64), 2**20, np.int32))
    # an int sum's epilogue: the sum fits (2^26), the product by 64 does not
    steps = explain.plan(lambda t: t.sum(1) * 64, x, target=schedule.Target()).steps
    assert len(steps) == 1 and steps[0].name.startswith("reduce_sum+mul")
    raises(x.sum(1) * 64)
    np.testing.assert_array_equal((x.sum(1) * 16).numpy(), [2**30] * 4)
    # a reduction's prologue: each product overflows before the sum
    raises((x * 4096).amax(1))
    # int values cast to float inside a GEMM's loads
    w = tinydl.tensor(np.ones((64, 8), np.float32))
    steps = explain.plan(lambda t, w: (t * 4096).float() @ w, x, w, target=schedule.Target()).steps
    assert len(steps) == 1 and "matmul" in steps[0].name
    raises((x * 4096).float() @ w)
    np.testing.assert_allclose(((x * 2).float() @ w).numpy(), np.full((4, 8), 64 * 2**21, np.float32))
    # an int chain read through a view and a cat
    raises(tinydl.cat([ints(1, 2), (ints(3, 2**30) * 2)[1:]]))


def test_int_arithmetic_that_fits_matches_torch(rng):
    a = rng.integers(-30000, 30000, (5, 7)).astype(np.int32)
    b = rng.integers(-30000, 30000, (7,)).astype(np.int32)
    b[b == 0] = 1
    ta, tb = torch.tensor(a).long(), torch.tensor(b).long()
    x, y = tinydl.tensor(a), tinydl.tensor(b)
    cases = [(x + y, ta + tb), (x - y, ta - tb), (x * y, ta * tb), (-x, -ta), (x.abs(), ta.abs()),
             (x // y, ta // tb), (x % y, ta % tb), (x.fmod(y), ta.fmod(tb)), (x * 3 + y * -7 - 11, ta * 3 + tb * -7 - 11),
             ((x % 11) ** (y % 5).abs(), (ta % 11) ** (tb % 5).abs()), (x ** 2, ta ** 2), (x.sum(1) * 100, ta.sum(1) * 100)]
    for got, want in cases:
        assert got.dtype == tinydl.int32
        np.testing.assert_array_equal(got.numpy().astype(np.int64), want.numpy())


def test_float_and_bool_kernels_carry_no_check():
    P = explain.placeholder
    cases = [(lambda x, y: (x * 3.0 + y).relu() - x // y, P(4, 33), P(4, 33)),
             (lambda x: (x.float() * 2**31 + 1) ** 2, P(9, dtype=tinydl.int32)),   # int -> float: float math
             (lambda x, y: (x & y) | ~x, P(9, dtype=tinydl.bool), P(9, dtype=tinydl.bool)),
             (lambda x, y: (x < y, tinydl.maximum(x, y).clamp(-5, 5), (x ^ y) & 7, x % 3), P(9, dtype=tinydl.int32),
              P(9, dtype=tinydl.int32))]
    for fn, *inputs in cases:
        for s in explain.plan(fn, *inputs, target=schedule.Target()).steps:
            assert not s.checks and "td_status" not in s.wgsl and "td_imul_ovf" not in s.wgsl, s.name
    # float values that would overflow int32 stay floats
    v = np.array([2.0**31, -2.0**31, 3e9], np.float32)
    np.testing.assert_array_equal((tinydl.tensor(v) * 4).numpy(), v * 4)


def test_checks_only_where_an_operand_can_overflow():
    """x * 1, x + 0, x ** 1, x // 2 cannot leave int32: their kernels bind no status buffer."""
    x = explain.placeholder(9, dtype=tinydl.int32)
    for fn in (lambda t: t * 1, lambda t: t + 0, lambda t: t ** 0, lambda t: t // 2, lambda t: t * 0 - 0):
        s, = explain.plan(fn, x, target=schedule.Target()).steps
        assert not s.checks, s.name
    for fn in (lambda t: t * 2, lambda t: t + 1, lambda t: t ** 3, lambda t: t // -1, lambda t: -t):
        s, = explain.plan(fn, x, target=schedule.Target()).steps
        assert s.checks, s.name
