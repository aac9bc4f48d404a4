"""Elementwise ops a torch port meets beyond the first table: the rows log1p, expm1 (series near 0, where
log(1 + x) and exp(x) - 1 lose digits), trunc / fix, signbit and atan2 (its own atan), and the compositions frac,
sinc, logit, nan_to_num, copysign, xlogy, logaddexp(2), heaviside, float_power's refusal; parity with torch CPU on
random and special values, broadcasting, integers and bool, float16, torch's errors, both from_torch paths."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl.debug import count_kernels
from tinydl.testing import assert_close

from paths import check_paths

SPECIAL = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 0.1249, -0.1251, -1.0,
           -0.999, 88.0, -100.0, 1e38, 2.5, -2.5, 3.7, -3.7]
UNARY = ["log1p", "expm1", "trunc", "fix"]


def _t(x):
    return tinydl.tensor(x.numpy())


# each op's random inputs: near 0 for log1p / expm1 (where their series matter), in (0, 1) for logit
INPUTS = {"log1p": lambda s: (torch.randn(s) * 0.05).clamp(min=-0.99), "expm1": lambda s: torch.randn(s) * 0.05,
          "logit": torch.rand}
UNARY_ALL = UNARY + ["signbit", "frac", "sinc", "logit", "nan_to_num", "angle"]


@pytest.mark.parametrize("name", UNARY_ALL)
@pytest.mark.parametrize("shape", [(7, 9), (1, 3, 1), (0, 2), ()])
def test_unary_parity(name, shape):
    x = INPUTS.get(name, lambda s: torch.randn(s) * 3)(shape)
    assert_close(getattr(tinydl, name)(_t(x)), getattr(torch, name)(x))
    assert_close(getattr(_t(x), name)(), getattr(x, name)())


@pytest.mark.parametrize("name", UNARY_ALL)
def test_unary_special_values(name):
    x = torch.tensor(SPECIAL)
    assert_close(getattr(tinydl, name)(_t(x)), getattr(torch, name)(x), rtol=2e-6, atol=0)


@pytest.mark.parametrize("name", UNARY)
def test_unary_integers(name):
    x = torch.arange(-3, 4)
    assert_close(getattr(tinydl, name)(_t(x)), getattr(torch, name)(x))
    b = torch.tensor([True, False])
    if name in ("trunc", "fix"):
        with pytest.raises(NotImplementedError, match="\"trunc_vml_cpu\" not implemented for 'Bool'"):
            getattr(tinydl, name)(_t(b))
    else:
        assert_close(getattr(tinydl, name)(_t(b)), getattr(torch, name)(b))


@pytest.mark.parametrize("name", UNARY)
def test_unary_float16(name):
    x = torch.randn(5, 3) * 0.3
    got = getattr(tinydl, name)(_t(x).half())
    assert got.dtype == tinydl.float16
    assert_close(got.float(), getattr(torch, name)(x.half()).float(), rtol=1e-3, atol=1e-4)


def test_angle_of_integers_bool_and_float16():
    """torch.angle of real tensors: float32 for integers and bool, float16 kept; -0.0 gives 0, -inf pi."""
    for x in (torch.arange(-3, 4), torch.tensor([True, False]), torch.tensor([-2.0, -0.0, 0.5], dtype=torch.float16)):
        got = tinydl.angle(_t(x))
        assert got.dtype == {torch.float16: tinydl.float16}.get(x.dtype, tinydl.float32)
        np.testing.assert_array_equal(got.numpy(), torch.angle(x).numpy())


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_unary_both_paths(path):
    check_paths(lambda x: torch.log1p(x.abs()) + x.expm1() + torch.trunc(x * 3) + torch.fix(x),
                torch.randn(3, 5), path=path)


# -- atan2, copysign, xlogy, logaddexp(2), heaviside ------------------------------------------------------------
PAIR = torch.tensor(SPECIAL).repeat_interleave(len(SPECIAL)), torch.tensor(SPECIAL).repeat(len(SPECIAL))
BINARY = ["atan2", "arctan2", "copysign", "xlogy", "logaddexp", "logaddexp2", "heaviside"]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("s1,s2", [((5, 7), (5, 7)), ((3, 1, 4), (5, 1)), ((0, 3), (1, 3)), ((), (4,))])
def test_binary_parity(name, s1, s2):
    a, b = torch.randn(s1) * 3, torch.randn(s2) * 3
    if name == "xlogy":
        b = b.abs()
    assert_close(getattr(tinydl, name)(_t(a), _t(b)), getattr(torch, name)(a, b))
    assert_close(getattr(_t(a), name)(_t(b)), getattr(a, name)(b))


@pytest.mark.parametrize("name", BINARY)
def test_binary_special_values(name):
    """NaN and infinities where torch has them; the default tolerance: logaddexp(0, -100)'s subnormal 3.9e-44 may be
    flushed to 0 (WGSL allows it), logaddexp2's max + correction cancels near 0 as torch's does."""
    a, b = PAIR
    assert_close(getattr(tinydl, name)(_t(a), _t(b)), getattr(torch, name)(a, b))


def test_atan2_within_a_few_ulps():
    """tinydl's own atan (WGSL's atan2 may be thousands of ulps off): 3 ulps at most against torch."""
    x, y = torch.randn(20000) * 5, torch.randn(20000) * torch.logspace(-6, 6, 20000)
    want = torch.atan2(y, x).numpy()
    got = tinydl.atan2(_t(y), _t(x)).numpy()
    assert (np.abs(got - want) / np.spacing(np.abs(want))).max() <= 4


@pytest.mark.parametrize("name", ["atan2", "copysign", "xlogy", "logaddexp", "logaddexp2"])
def test_binary_integers_and_scalars(name):
    a, b = torch.arange(-3, 4), torch.arange(7).flip(0)
    if name.startswith("logaddexp"):  # float kernels only in torch; an int and a float tensor are fine
        with pytest.raises(NotImplementedError, match=f"\"{name}_cpu\" not implemented for 'Int'"):
            getattr(tinydl, name)(_t(a), _t(b))
        b = b.float()
    assert_close(getattr(tinydl, name)(_t(a), _t(b)), getattr(torch, name)(a, b))
    if name in ("copysign", "xlogy"):  # torch's Scalar overloads
        for s in (2.5, -0.0, -3, 0.0, float("nan"), float("inf")):
            assert_close(getattr(tinydl, name)(_t(a), s), getattr(torch, name)(a, s))
        if name == "xlogy":
            assert_close(tinydl.xlogy(2.0, _t(b)), torch.xlogy(2.0, b))


def test_options_and_integers():
    x = torch.tensor(SPECIAL)
    assert_close(tinydl.nan_to_num(_t(x), 1.5, 7.0, -8.0), torch.nan_to_num(x, 1.5, 7.0, -8.0))
    assert_close(tinydl.nan_to_num(_t(x).half()).float(), torch.nan_to_num(x.half()).float())
    p = torch.rand(50)
    assert_close(tinydl.logit(_t(p), eps=0.1), torch.logit(p, eps=0.1))
    i = torch.arange(-3, 4)
    for name in ("signbit", "sinc", "logit", "nan_to_num"):
        assert_close(getattr(tinydl, name)(_t(i)), getattr(torch, name)(i))
    assert_close(tinydl.signbit(_t(torch.tensor([True, False]))), torch.signbit(torch.tensor([True, False])))


@pytest.mark.parametrize("name", ["copysign", "xlogy", "logaddexp", "logaddexp2", "heaviside", "atan2"])
def test_compositions_are_one_kernel(name):
    """Each composition fuses into one elementwise kernel with its producers (here x * 2, y + 1: cheap, so
    recomputed where a composition reads them more than once; a costly producer read twice is a kernel of its own,
    the scheduler's rule for any such node)."""
    x = tinydl.tensor(np.random.randn(4, 6).astype(np.float32))
    y = tinydl.tensor(np.random.rand(4, 6).astype(np.float32))
    with count_kernels() as c:
        getattr(tinydl, name)(x * 2, y + 1).numpy()
    assert c.count == 1, c.names


def test_errors():
    with pytest.raises(NotImplementedError, match="\"frac_cpu\" not implemented for 'Int'"):
        tinydl.frac(tinydl.arange(3))
    with pytest.raises(RuntimeError, match="heaviside is not yet implemented for tensors with different dtypes."):
        tinydl.heaviside(tinydl.zeros(2), tinydl.zeros(2, dtype=tinydl.int32))
    with pytest.raises(NotImplementedError, match="float_power computes in float64, which tinydl does not have"):
        tinydl.float_power(tinydl.zeros(2), 2)
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(2\) must match the size of tensor b \(3\)"):
        tinydl.atan2(tinydl.zeros(2), tinydl.zeros(3))


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_both_paths(path):
    check_paths(lambda x, y: (torch.atan2(x, y), x.arctan2(y), torch.copysign(x, y), torch.copysign(x, -1.0),
                              torch.xlogy(x, y.abs()), torch.logaddexp(x, y), x.logaddexp2(y),
                              torch.heaviside(x, y), torch.signbit(x), torch.frac(x * 3), torch.sinc(x),
                              torch.logit(x.sigmoid(), eps=1e-3), torch.nan_to_num(x.log(), 0.5, 9.0, -9.0)),
                torch.randn(3, 5), torch.randn(3, 5), path=path)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_torch_special_aliases(path):
    """torch.special's aliases of torch.X resolve by name on the fx path as torch.X does."""
    check_paths(lambda x: (torch.special.xlogy(x, x.abs()), torch.special.expm1(x), torch.special.log1p(x.abs()),
                           torch.special.logit(x.sigmoid(), eps=1e-3), torch.special.sinc(x), torch.special.erf(x),
                           torch.special.logsumexp(x, 1), torch.special.softmax(x, 1),
                           torch.special.log_softmax(x, 1, dtype=torch.float32), torch.special.round(x, decimals=1)),
                torch.randn(3, 4), path=path)


# -- shifts: torch's int64 semantics on int32 storage ----------------------------------------------------------
def test_shifts_match_torchs_int64_results():
    """a << b and a >> b (operators, functions, methods, a number on either side): negative shifts give 0, shifts
    of 64 and more give 0 (left) or the sign's fill (right); a left shift whose int64 result int32 cannot hold
    raises torch's int64 overflow error instead of wrapping."""
    a = torch.tensor([1, -8, 3, 0, -1, -1, 5, 7, 1 << 20])
    b = torch.tensor([2, 1, -1, 70, 31, 64, 0, 3, 10])
    ta, tb = _t(a.int()), _t(b.int())
    np.testing.assert_array_equal((ta << tb).numpy(), (a << b).numpy())
    np.testing.assert_array_equal((ta >> tb).numpy(), (a >> b).numpy())
    np.testing.assert_array_equal(tinydl.bitwise_right_shift(ta, 40).numpy(), (a >> 40).numpy())
    np.testing.assert_array_equal(ta.bitwise_left_shift(2).numpy(), (a << 2).numpy())
    np.testing.assert_array_equal((3 << tb[:3]).numpy(), (3 << b[:3]).numpy())
    np.testing.assert_array_equal((_t(torch.tensor([True, False])) << 1).numpy(), [2, 0])
    with pytest.raises(RuntimeError, match="integer overflow"):
        (ta << 31).numpy()  # 3 << 31 does not fit int32 (torch: an int64)
    with pytest.raises(NotImplementedError, match="\"rshift_cpu\" not implemented for 'Float'"):
        _t(torch.ones(2)) >> 1


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_shifts_on_both_paths(path):
    """x << n, x >> n, torch.bitwise_left_shift (fx records `_operator.lshift`, export `aten.__lshift__`)."""
    check_paths(lambda x: (((x * 10).int().abs() << 2) + torch.bitwise_right_shift((x * 100).int(), 3)
                           + torch.bitwise_left_shift(x.int(), 1)).float(), torch.randn(3, 5), path=path)
