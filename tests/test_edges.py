"""Edges and messages: a converted model called with missing or extra arguments says what is wrong (as Python
and torch do); zero-size dims in softmax, log_softmax, the norms and attention give what torch gives; the
bitwise and logical operators and NaN/Inf tests exist as torch's functions, methods and operators, with torch's
results and errors."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl.nn import functional as F
from tinydl.testing import assert_close


class TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x, y, scale=2.0):
        return self.fc(x) * scale + y


def _torch_error(fn):
    with pytest.raises(TypeError) as err:
        fn()
    return str(err.value)


@pytest.mark.parametrize("call", ["none", "one", "too_many", "unknown_keyword", "twice"])
def test_converted_model_argument_errors_match_torch(call):
    tm = TwoInputs().eval()
    dm = tinydl.from_torch(tm)
    x = np.ones((2, 4), np.float32)
    ty, dy = torch.ones(2, 3), tinydl.tensor(np.ones((2, 3), np.float32))
    calls = {
        "none": (lambda m, a, b: m()),
        "one": (lambda m, a, b: m(a)),
        "too_many": (lambda m, a, b: m(a, b, 1.0, 5)),
        "unknown_keyword": (lambda m, a, b: m(a, b, bias=1.0)),
        "twice": (lambda m, a, b: m(a, b, x=a)),
    }
    want = _torch_error(lambda: calls[call](tm, torch.from_numpy(x), ty))
    with pytest.raises(TypeError) as err:
        calls[call](dm, tinydl.tensor(x), dy)
    assert str(err.value) == want


class VarArgs(torch.nn.Module):
    def forward(self, *xs):
        return xs[0] + xs[1]


class VarKeywords(torch.nn.Module):
    def forward(self, x, **kw):
        return x * 2 + kw["b"]


class KeywordOnly(torch.nn.Module):
    def forward(self, x, *rest, y, z=3.0):
        return x * z + y


class PositionalOnly(torch.nn.Module):
    def forward(self, x, /, y, *, z=1.0):
        return x * z + y


@pytest.mark.parametrize("cls,call", [
    (VarArgs, lambda m, a, b: m(a, b)), (VarArgs, lambda m, a, b: m(a, b, k=1)),
    (VarKeywords, lambda m, a, b: m(a, b=b)), (VarKeywords, lambda m, a, b: m(a, b)),
    (VarKeywords, lambda m, a, b: m(b=b)),
    (KeywordOnly, lambda m, a, b: m(a, y=b)), (KeywordOnly, lambda m, a, b: m(a, b)),
    (KeywordOnly, lambda m, a, b: m(a, a, y=b, z=1.0)),
    (PositionalOnly, lambda m, a, b: m(a, b)), (PositionalOnly, lambda m, a, b: m(x=a, y=b)),
    (PositionalOnly, lambda m, a, b: m(a, b, 2.0)), (PositionalOnly, lambda m, a, b: m(a, b, z=2.0)),
])
def test_converted_model_binds_arguments_as_python(cls, call):
    """*args, **kwargs, keyword-only and positional-only parameters: the same values or the same TypeError
    as calling the torch model (a varargs model once read its first input where the second belonged)."""
    x, y = np.array([1.0, 2.0], np.float32), np.array([10.0, 20.0], np.float32)
    tm = cls().eval()
    dm = tinydl.from_torch(tm)
    try:
        want = call(tm, torch.from_numpy(x), torch.from_numpy(y))
    except TypeError as e:
        with pytest.raises(TypeError) as err:
            call(dm, tinydl.tensor(x), tinydl.tensor(y))
        assert str(err.value) == str(e)
        return
    assert_close(call(dm, tinydl.tensor(x), tinydl.tensor(y)), want)


def test_converted_model_no_arguments_names_the_input():
    dm = tinydl.from_torch(TwoInputs().eval())
    with pytest.raises(TypeError, match=r"TwoInputs\.forward\(\) missing 2 required positional arguments: 'x' and 'y'"):
        dm()


class Untraceable(torch.nn.Module):
    """fx cannot trace a Python loop over a shape: converted through torch.export."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        for _ in range(x.shape[0]):
            pass
        return self.fc(x)


def test_exported_model_no_arguments_names_the_input():
    tm = Untraceable().eval()
    x = torch.ones(2, 4)
    dm = tinydl.from_torch(tm, example_inputs=(x,))
    assert_close(dm(tinydl.tensor(x.numpy())), tm(x).detach())
    with pytest.raises(TypeError) as err:
        dm()
    assert str(err.value) == _torch_error(lambda: tm())  # "Untraceable.forward() missing 1 required ..."


# -- zero-size dims --------------------------------------------------------------------------------------
ZERO_SHAPES = [((0,), 0), ((3, 0), 1), ((3, 0), 0), ((3, 0), -1), ((0, 5), 1), ((2, 0, 3), 1), ((2, 0, 3), 2),
               ((2, 3, 0), 0)]


@pytest.mark.parametrize("shape,dim", ZERO_SHAPES)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_over_zero_size_dims(shape, dim, fn):
    x = np.zeros(shape, np.float32)
    out = getattr(F, fn)(tinydl.tensor(x), dim)
    assert_close(out, getattr(torch.nn.functional, fn)(torch.from_numpy(x), dim))
    assert_close(getattr(tinydl.tensor(x), fn)(dim), getattr(torch.from_numpy(x), fn)(dim))


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 5), (2, 0, 3), (2, 3, 0)])
def test_norms_over_zero_size_dims(shape):
    x = np.zeros(shape, np.float32)
    t = torch.from_numpy(x)
    n = shape[-1]
    w = np.ones(n, np.float32)
    assert_close(F.layer_norm(tinydl.tensor(x), (n,)), torch.nn.functional.layer_norm(t, (n,)))
    assert_close(F.layer_norm(tinydl.tensor(x), (n,), tinydl.tensor(w), tinydl.tensor(w)),
                 torch.nn.functional.layer_norm(t, (n,), torch.from_numpy(w), torch.from_numpy(w)))
    assert_close(F.rms_norm(tinydl.tensor(x), (n,), eps=1e-6), torch.nn.functional.rms_norm(t, (n,), eps=1e-6))
    if len(shape) >= 2 and shape[1]:  # a group needs a channel
        assert_close(F.group_norm(tinydl.tensor(x), 1), torch.nn.functional.group_norm(t, 1))


@pytest.mark.parametrize("q,k,v", [((1, 2, 0), (1, 3, 0), (1, 3, 5)), ((1, 2, 4), (1, 0, 4), (1, 0, 5)),
                                   ((1, 0, 4), (1, 3, 4), (1, 3, 5)), ((2, 1, 2, 0), (2, 1, 3, 0), (2, 1, 3, 0))])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_with_zero_size_dims(rng, q, k, v, causal):
    """A head dim of 0 gives all-zero scores (a uniform softmax: the mean of the values), as torch's; no keys
    give zeros; no queries give an empty result."""
    arrays = [rng.standard_normal(s).astype(np.float32) for s in (q, k, v)]
    out = F.scaled_dot_product_attention(*(tinydl.tensor(a) for a in arrays), is_causal=causal)
    want = torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(a) for a in arrays),
                                                             is_causal=causal)
    assert_close(out, want, atol=1e-6)


# -- bitwise and logical ops -----------------------------------------------------------------------------
def _pair(a):
    return tinydl.tensor(a), torch.from_numpy(a)


def _ints(rng, shape):
    a = rng.integers(-2 ** 31, 2 ** 31 - 1, shape, dtype=np.int64).astype(np.int32)
    a.flat[:4] = [-2 ** 31, 2 ** 31 - 1, -1, 0][:a.size]
    return a


def test_bitwise_ops_on_int32_match_torch(rng):
    (a, ta), (b, tb) = _pair(_ints(rng, (5, 7))), _pair(_ints(rng, (7,)))
    cases = [(~a, ~ta), (a & b, ta & tb), (a | b, ta | tb), (a ^ b, ta ^ tb),
             (a.bitwise_not(), ta.bitwise_not()), (a.bitwise_and(b), ta.bitwise_and(tb)),
             (a.bitwise_or(b), ta.bitwise_or(tb)), (a.bitwise_xor(b), ta.bitwise_xor(tb)),
             (tinydl.bitwise_not(a), torch.bitwise_not(ta)), (tinydl.bitwise_xor(a, b), torch.bitwise_xor(ta, tb)),
             (a & 0xFF, ta & 0xFF), (0x0F0F | a, 0x0F0F | ta), (a ^ -1, ta ^ -1), (5 & a, 5 & ta),
             (((a ^ b) & 1023) + 1, ((ta ^ tb) & 1023) + 1)]  # fused with an add
    for out, want in cases:
        assert out.dtype == tinydl.int32
        assert_close(out, want, rtol=0, atol=0)


def test_bitwise_ops_on_bool_and_mixed_match_torch(rng):
    (m, tm), (n, tn) = _pair(rng.random((4, 6)) > 0.5), _pair(rng.random((6,)) > 0.5)
    i, ti = _pair(rng.integers(-4, 4, (6,)).astype(np.int32))
    for out, want in [(~m, ~tm), (m & n, tm & tn), (m | n, tm | tn), (m ^ n, tm ^ tn), (m ^ True, tm ^ True),
                      (m & i, tm & ti), (i | m, ti | tm), (m ^ 3, tm ^ 3), (m.bitwise_not(), tm.bitwise_not())]:
        assert_close(out, want, rtol=0, atol=0)


def test_bitwise_ops_refuse_floats_as_torch():
    f, i = tinydl.tensor(np.ones(3, np.float32)), tinydl.tensor(np.ones(3, np.int32))
    with pytest.raises(TypeError, match=r"~ \(operator.invert\) is only implemented on integer and Boolean"):
        ~f
    with pytest.raises(TypeError, match=r"~ \(operator.invert\) is only implemented on integer and Boolean"):
        ~torch.ones(3)  # torch's wording
    for fn, name in [(lambda: f & i, "bitwise_and"), (lambda: i | 1.5, "bitwise_or"), (lambda: f ^ f, "bitwise_xor"),
                     (lambda: f.bitwise_not(), "bitwise_not"), (lambda: f.half() & i, "bitwise_and")]:
        with pytest.raises(NotImplementedError, match=f'"{name}" not implemented for \'(Float|Half)\''):
            fn()


SPECIAL = np.array([1.0, -2.5, 0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, 1e-40],
                   np.float32)


@pytest.mark.parametrize("fn", ["logical_not", "isnan", "isinf", "isfinite"])
def test_unary_logical_and_special_value_tests(fn):
    ints = np.array([0, 1, -1, 2 ** 31 - 1, -2 ** 31], np.int32)
    bools = np.array([True, False, True])
    with np.errstate(over="ignore"):
        halves = SPECIAL.astype(np.float16)
    for a in (SPECIAL, halves, ints, bools):
        x, t = _pair(a)
        assert_close(getattr(x, fn)(), getattr(t, fn)())
        assert_close(getattr(tinydl, fn)(x), getattr(torch, fn)(t))


@pytest.mark.parametrize("fn", ["logical_and", "logical_or", "logical_xor"])
def test_binary_logical_ops(rng, fn):
    f = SPECIAL.copy()
    g = np.roll(SPECIAL, 3)
    i = np.array([0, 3, -1, 0, 7, 0, 1, 0, 2, 0, 0, 5], np.int32)
    m = rng.random(12) > 0.5
    for a, b in [(f, g), (f, i), (i, m), (m, m[::-1].copy())]:
        (x, tx), (y, ty) = _pair(a), _pair(b)
        assert_close(getattr(x, fn)(y), getattr(tx, fn)(ty))
        assert_close(getattr(tinydl, fn)(x, y), getattr(torch, fn)(tx, ty))


def test_tensor_methods_torch_users_call(rng):
    a, b = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 4, 5)).astype(np.float32)
    (x, tx), (y, ty) = _pair(a), _pair(b)
    assert_close(x.bmm(y), tx.bmm(ty), atol=1e-5)
    assert_close(x[0].mm(y[0]), tx[0].mm(ty[0]), atol=1e-5)
    assert_close(x.negative(), tx.negative())
    assert_close(x.multiply(2.0), tx.multiply(2.0))
    assert_close(x.divide(3.0), tx.divide(3.0))
    assert_close(x.true_divide(3.0), tx.true_divide(3.0))
    assert_close(x.subtract(x, alpha=2), tx.subtract(tx, alpha=2))
    assert_close(x.softmax(-1, dtype=tinydl.float16), tx.softmax(-1, dtype=torch.float16), rtol=1e-3, atol=1e-3)
    assert_close(x.log_softmax(1, dtype=tinydl.float32), tx.log_softmax(1, dtype=torch.float32))
    assert_close(x.clamp_min(0.1), tx.clamp_min(0.1))
    assert_close(x.clamp_max(-0.1), tx.clamp_max(-0.1))
    assert_close(x.view_as(y[:, :3, :4]), tx.view_as(ty[:, :3, :4]))
    assert_close(x.reshape_as(tinydl.zeros(12, 2)), tx.reshape_as(torch.zeros(12, 2)))
    assert x.nelement() == tx.nelement() and x.ndimension() == tx.ndimension()
    for arr in (np.array([3, -2, 5], np.int32), np.array([True, False]), a):
        v, tv = _pair(arr)
        assert_close(v.square(), tv.square())
        assert_close(v.type_as(x), tv.type_as(tx))
        assert_close(v.new_zeros(2, 3), tv.new_zeros(2, 3))
        assert_close(v.new_ones((2,)), tv.new_ones((2,)))
        assert_close(v.new_full((2,), -2.5), tv.new_full((2,), -2.5))
        assert_close(v.new_zeros((1,), dtype=tinydl.float16), tv.new_zeros((1,), dtype=torch.float16))


class MaskOps(torch.nn.Module):
    def forward(self, x, ids):
        bad = torch.isnan(x) | torch.isinf(x)
        keep = ~bad & x.isfinite() & (x > 0).logical_not()
        code = (ids ^ 0x55) & ~ids.bitwise_not()
        return torch.where(keep, x, torch.zeros_like(x)), code, torch.logical_xor(bad, keep)


def test_converted_model_with_mask_and_bitwise_ops():
    x = SPECIAL.reshape(3, 4)
    ids = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    tm = MaskOps().eval()
    dm = tinydl.from_torch(tm)
    for out, want in zip(dm(tinydl.tensor(x), tinydl.tensor(ids)), tm(torch.from_numpy(x), torch.from_numpy(ids))):
        assert_close(out, want, rtol=0, atol=0)
