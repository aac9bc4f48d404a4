"""Small torch functions composed of elementwise ops: fmax, fmin, clamp_min, clamp_max, sgn, positive,
true_divide, rsub, isclose, allclose, isneginf, isposinf, isreal, masked_fill - values (NaN, infinities, -0.0),
dtypes and errors compared with torch CPU, the Tensor methods, and both conversion paths."""

import numpy as np
import pytest
import torch

import tinydl
from paths import check_paths

NAN, INF = float("nan"), float("inf")
# pairs covering NaN on either / both sides, infinities, signed zeros, equal values
A = [NAN, 1.0, NAN, INF, -INF, -0.0, 0.0, 2.5, -3.0, 1e-9, 1e10, INF]
B = [1.0, NAN, NAN, 1.0, -INF, 0.0, -0.0, 2.5, 4.0, 2e-9, 1.00001e10, -INF]
HALF = pytest.mark.skipif(not tinydl.runtime.get_runtime().has_f16, reason="adapter lacks shader-f16")


def pair(values, dtype="float32"):
    with np.errstate(over="ignore"):  # 1e10 is inf in float16
        a = np.array(values, dtype=dtype)
    return tinydl.tensor(a), torch.from_numpy(a.copy() if dtype != "int32" else a.astype(np.int64))


def exact(got, want):
    """Same dtype (torch's int64 as int32), same values bit for bit where floats (NaN equal, -0.0 != 0.0)."""
    names = {torch.float32: "float32", torch.float16: "float16", torch.int64: "int32", torch.bool: "bool"}
    assert got.dtype.name == names[want.dtype], (got.dtype, want.dtype)
    g, w = got.numpy(), want.numpy()
    assert g.shape == w.shape
    if w.dtype.kind == "f":
        assert np.array_equal(g, w, equal_nan=True) and np.array_equal(np.signbit(g), np.signbit(w)), (g, w)
    else:
        assert np.array_equal(g, w), (g, w)


@pytest.mark.parametrize("name", ["fmax", "fmin"])
@pytest.mark.parametrize("dtype", ["float32", pytest.param("float16", marks=HALF)])
def test_fmax_fmin(name, dtype):
    (a, ta), (b, tb) = pair(A, dtype), pair(B, dtype)
    exact(getattr(tinydl, name)(a, b), getattr(torch, name)(ta, tb))
    exact(getattr(tinydl, name)(b, a), getattr(torch, name)(tb, ta))
    exact(getattr(a, name)(b), getattr(ta, name)(tb))


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_fmax_fmin_promotion_broadcast(name):
    (i, ti), (f, tf) = pair([[1], [5]], "int32"), pair([NAN, 2.0, 7.0])
    (b, tb) = pair([True, False, True], "bool")
    for x, y, tx, ty in ((i, f, ti, tf), (f, i, tf, ti), (i, b, ti, tb), (b, b, tb, tb), (i, i, ti, ti)):
        exact(getattr(tinydl, name)(x, y), getattr(torch, name)(tx, ty))
    with pytest.raises(TypeError, match=rf"{name}\(\): argument 'other' \(position 2\) must be Tensor, not float"):
        getattr(tinydl, name)(f, 1.0)
    with pytest.raises(TypeError, match=rf"{name}\(\): argument 'input' \(position 1\) must be Tensor, not int"):
        getattr(tinydl, name)(1, f)


def test_clamp_min_max():
    # (no -0.0 against a 0.0 tensor bound: torch's result there depends on the size, its vector and scalar loops)
    (x, tx), (y, ty) = pair([NAN, -1.0, -0.0, 0.5, INF, -INF]), pair([0.0, 0.0, 0.5, 1.0, 1.0, NAN])
    (i, ti) = pair([-3, 0, 4], "int32")
    for fn in ("clamp_min", "clamp_max"):
        exact(getattr(tinydl, fn)(x, 0.25), getattr(torch, fn)(tx, 0.25))
        exact(getattr(tinydl, fn)(x, 0.0), getattr(torch, fn)(tx, 0.0))
        exact(getattr(tinydl, fn)(x, y), getattr(torch, fn)(tx, ty))
        exact(getattr(tinydl, fn)(i, 1), getattr(torch, fn)(ti, 1))
        exact(getattr(tinydl, fn)(i, 1.5), getattr(torch, fn)(ti, 1.5))
        exact(getattr(x, fn)(0.25), getattr(tx, fn)(0.25))
    b = tinydl.tensor([True, False])
    with pytest.raises(NotImplementedError, match="\"clamp_max_scalar_cpu\" not implemented for 'Bool'"):
        tinydl.clamp_max(b, True)


@pytest.mark.parametrize("values,dtype", [([NAN, -0.0, 0.0, -2.5, 3.0, INF, -INF], "float32"),
                                          ([-4, 0, 7], "int32"), ([True, False], "bool")])
def test_sgn_positive(values, dtype):
    x, tx = pair(values, dtype)
    exact(tinydl.sgn(x), torch.sgn(tx))
    exact(x.sgn(), tx.sgn())
    if dtype == "bool":
        with pytest.raises(RuntimeError, match="The `\\+` operator, on a bool tensor is not supported."):
            tinydl.positive(x)
        with pytest.raises(RuntimeError, match="on a bool tensor is not supported"):
            torch.positive(tx)
    else:
        assert tinydl.positive(x) is x
        exact(x.positive(), torch.positive(tx))


def test_true_divide_rsub():
    (x, tx), (y, ty) = pair([1.0, -0.0, NAN, 3.0]), pair([0.0, 2.0, 1.0, -INF])
    (i, ti), (j, tj) = pair([7, -7, 2, 0], "int32"), pair([2, 2, 4, 3], "int32")
    exact(tinydl.true_divide(x, y), torch.true_divide(tx, ty))
    exact(tinydl.true_divide(i, j), torch.true_divide(ti, tj))
    exact(i.true_divide(2), ti.true_divide(2))
    exact(tinydl.rsub(x, y), torch.rsub(tx, ty))
    exact(tinydl.rsub(x, 2.0, alpha=3), torch.rsub(tx, 2.0, alpha=3))
    exact(tinydl.rsub(i, j, alpha=2), torch.rsub(ti, tj, alpha=2))
    exact(tinydl.rsub(i, 1.5), torch.rsub(ti, 1.5))
    exact(tinydl.rsub(i[None], x[:, None]), torch.rsub(ti[None], tx[:, None]))
    for fn in (tinydl.rsub, tinydl.add, tinydl.sub):  # the check add/sub(alpha=) make, rsub through sub
        with pytest.raises(RuntimeError, match="For integral input tensors, argument alpha must not be a floating "
                                               "point"):
            fn(i, j, alpha=1.5)
    exact(tinydl.add(x, 2.0, alpha=3), torch.add(tx, 2.0, alpha=3))
    b = tinydl.tensor([True, False])
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool tensors is not supported"):
        tinydl.rsub(b, b)


@HALF
def test_rsub_true_divide_float16():
    # 64 values: torch's vector loop (one rounding); its scalar loop for a short tail rounds alpha * input first
    v = np.concatenate([[1.0, 2.0, -0.0, 1000.0], np.linspace(-3000, 3000, 60)])
    (x, tx), (y, ty) = pair(v, "float16"), pair(np.linspace(-7, 9, 64), "float16")
    exact(tinydl.rsub(x, 2.3, alpha=1.1), torch.rsub(tx, 2.3, alpha=1.1))
    exact(tinydl.rsub(x, 2.3), torch.rsub(tx, 2.3))
    exact(tinydl.rsub(x, 0.1, alpha=3), torch.rsub(tx, 0.1, alpha=3))
    exact(tinydl.rsub(x, y), torch.rsub(tx, ty))
    exact(tinydl.true_divide(x, y), torch.true_divide(tx, ty))


@pytest.mark.parametrize("kw", [{}, {"equal_nan": True}, {"rtol": 0, "atol": 0}, {"rtol": 0.1, "atol": 0.5},
                                {"rtol": 0, "atol": 1e-8, "equal_nan": True}])
def test_isclose(kw):
    (a, ta), (b, tb) = pair(A), pair(B)
    exact(tinydl.isclose(a, b, **kw), torch.isclose(ta, tb, **kw))
    exact(a.isclose(b, **kw), ta.isclose(tb, **kw))
    assert tinydl.allclose(a, b, **kw) is torch.allclose(ta, tb, **kw)
    (i, ti), (j, tj) = pair([1, 2, 100, -5], "int32"), pair([1, 3, 101, -6], "int32")
    exact(tinydl.isclose(i, j, **kw), torch.isclose(ti, tj, **kw))
    (p, tp), (q, tq) = pair([True, False, True], "bool"), pair([True, True, False], "bool")
    exact(tinydl.isclose(p, q, **kw), torch.isclose(tp, tq, **kw))
    (c, tc) = pair([[1.0], [2.0]])
    exact(tinydl.isclose(c, a[:3], **kw), torch.isclose(tc, ta[:3], **kw))  # broadcast


def test_isclose_results_and_errors():
    (a, ta), (b, tb) = pair([1.0, 2.0]), pair([1.0, 2.0 + 1e-6])
    assert tinydl.allclose(a, b) is torch.allclose(ta, tb) is True
    assert a.allclose(b + 1) is False
    assert tinydl.allclose(tinydl.tensor([1, 2]), tinydl.tensor([1, 2])) is True
    i = tinydl.tensor([1, 2])
    with pytest.raises(RuntimeError, match="Long did not match Float"):
        tinydl.isclose(i, a)
    with pytest.raises(RuntimeError, match="Long did not match Float"):
        tinydl.allclose(i, a)
    with pytest.raises(RuntimeError, match="rtol must be greater than or equal to zero, but got -1"):
        tinydl.isclose(a, a, rtol=-1)
    with pytest.raises(RuntimeError, match="atol must be greater than or equal to zero, but got -1"):
        tinydl.isclose(a, a, atol=-1)
    with pytest.raises(TypeError, match=r"isclose\(\): argument 'other' \(position 2\) must be Tensor, not int"):
        tinydl.isclose(i, 2)


@HALF
def test_isclose_float16():
    (a, ta), (b, tb) = pair([1.0, 1.001, NAN, INF, 100.0, -0.0], "float16"), \
        pair([1.0, 1.0, NAN, INF, 100.1, 0.0], "float16")
    for kw in ({}, {"rtol": 1e-3, "atol": 0.01, "equal_nan": True}):
        exact(tinydl.isclose(a, b, **kw), torch.isclose(ta, tb, **kw))
    with pytest.raises(RuntimeError, match="Half did not match Float"):
        tinydl.isclose(a, a.float())


@pytest.mark.parametrize("values,dtype", [(A, "float32"), pytest.param(A, "float16", marks=HALF),
                                          ([[1, -2], [0, 3]], "int32"), ([True, False], "bool")])
def test_isposinf_isneginf_isreal(values, dtype):
    x, tx = pair(values, dtype)
    for fn in ("isposinf", "isneginf", "isreal"):
        exact(getattr(tinydl, fn)(x), getattr(torch, fn)(tx))
        exact(getattr(x, fn)(), getattr(tx, fn)())


def test_masked_fill():
    (x, tx), (m, tm) = pair([[NAN, 1.0, -0.0], [2.0, INF, 3.0]]), pair([True, False, True], "bool")
    (i, ti) = pair([[1, 2, 3]], "int32")
    exact(tinydl.masked_fill(x, m, -0.0), torch.masked_fill(tx, tm, -0.0))
    exact(tinydl.masked_fill(x, m, tinydl.tensor(5.0)), torch.masked_fill(tx, tm, torch.tensor(5.0)))
    exact(tinydl.masked_fill(i, m, -1.7), torch.masked_fill(ti, tm, -1.7))  # int dtype kept
    (col, tcol) = pair([[True], [False]], "bool")
    exact(tinydl.masked_fill(i, col, 9), torch.masked_fill(ti, tcol, 9))  # input broadcast to the mask
    with pytest.raises(RuntimeError, match="masked_fill_ only supports boolean masks, but got mask with dtype float"):
        tinydl.masked_fill(x, x, 1.0)
    with pytest.raises(RuntimeError, match="masked_fill_ only supports boolean masks, but got mask with dtype long"):
        tinydl.masked_fill(x, tinydl.tensor([1, 0, 1]), 1.0)
    with pytest.raises(RuntimeError, match="masked_fill_ only supports a 0-dimensional value tensor"):
        tinydl.masked_fill(x, m, tinydl.tensor([1.0, 2.0]))


def _several(x, y):
    m = x > 0.5
    return (torch.fmax(x, y), torch.fmin(y, x), torch.clamp_min(x, 0.2), torch.clamp_max(x, y), torch.sgn(x),
            torch.positive(x) * 2, torch.true_divide(x, y), torch.rsub(x, y, alpha=2), torch.rsub(x, 3.0),
            torch.isclose(x, y, atol=0.3), torch.isneginf(x), torch.isposinf(y), torch.isreal(x),
            torch.masked_fill(x, m, 1.5), x.masked_fill(m, torch.tensor(2.0)), x.fmax(y), x.sgn(),
            x.isclose(y, equal_nan=True), y.isposinf(), torch.add(x, y, alpha=0.5), torch.sub(x, 2.0, alpha=3))


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_conversion_paths(path):
    x = torch.tensor([NAN, 1.0, -INF, 0.7, -0.0, 2.0])
    y = torch.tensor([1.0, NAN, INF, 0.75, 0.0, NAN])
    check_paths(_several, x, y, path=path)
