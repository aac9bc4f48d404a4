"""nansum, nanmean, var_mean, std_mean, aminmax, count_nonzero, trapezoid: parity with torch CPU (NaNs, every dim form,
keepdim, size-0 and size-1 dims, integers), torch's errors, both from_torch paths."""
import re

import numpy as np
import pytest
import torch

import tinydl
from tinydl.testing import assert_close

from paths import check_paths


def _t(x):
    return tinydl.tensor(x.numpy())


def _with_nans(shape):
    x = torch.randn(shape)
    if x.numel():
        x.view(-1)[::3] = float("nan")
    return x


DIMS = [None, 0, -1, (0, 2), ()]


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 1, 7), (2, 0, 3)])
def test_nan_reductions(dim, keepdim, shape):
    x = _with_nans(shape)
    for name in ("nansum", "nanmean"):
        want = getattr(torch, name)(x, dim, keepdim)
        assert_close(getattr(tinydl, name)(_t(x), dim, keepdim), want)
        assert_close(getattr(_t(x), name)(dim, keepdim), want)


def test_nan_reductions_dtypes():
    x = _with_nans((4, 6))
    assert_close(tinydl.nansum(_t(x), 1, dtype=tinydl.float16).float(), torch.nansum(x, 1, dtype=torch.float16).float(),
                 rtol=1e-3, atol=1e-3)
    i = torch.arange(-3, 9).reshape(3, 4)
    assert_close(tinydl.nansum(_t(i), 0), torch.nansum(i, 0))
    b = torch.tensor([[True, False], [True, True]])
    assert_close(tinydl.nansum(_t(b)), torch.nansum(b))
    with pytest.raises(RuntimeError, match="nanmean\\(\\): expected input to have floating point or complex dtype but "
                                           "got Long"):
        tinydl.nanmean(_t(i))


@pytest.mark.parametrize("name", ["var_mean", "std_mean"])
@pytest.mark.parametrize("args,kwargs", [((), {}), ((1,), {}), ((1, False), {}), (((0, 2),), {"keepdim": True}),
                                         ((), {"dim": -1, "correction": 0}), ((True,), {}), ((False,), {})])
def test_var_std_mean(name, args, kwargs):
    x = torch.randn(3, 4, 5)
    got, want = getattr(tinydl, name)(_t(x), *args, **kwargs), getattr(torch, name)(x, *args, **kwargs)
    assert len(got) == 2
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])


@pytest.mark.parametrize("dim,keepdim", [(None, False), (None, True), (0, False), (-1, True), (1, False)])
@pytest.mark.parametrize("shape", [(3, 4), (1, 5), (2, 0)])
def test_aminmax(dim, keepdim, shape):
    x = _with_nans(shape) if shape == (3, 4) else torch.randn(shape)
    if x.numel() == 0 and (dim is None or x.shape[dim] == 0):
        with pytest.raises(RuntimeError, match="aminmax\\(\\): cannot compute aminmax over an empty dimension as the "
                                               "operation has no identity."):
            tinydl.aminmax(_t(x), dim=dim, keepdim=keepdim)
        return
    got, want = tinydl.aminmax(_t(x), dim=dim, keepdim=keepdim), torch.aminmax(x, dim=dim, keepdim=keepdim)
    assert_close(got.min, want.min)
    assert_close(got.max, want.max)
    got = _t(x).aminmax(dim=dim, keepdim=keepdim)
    assert_close(got[0], want[0])


def test_aminmax_integers_and_bool():
    for x in (torch.arange(-5, 7).reshape(3, 4), torch.tensor([[True, False], [False, False]])):
        got, want = tinydl.aminmax(_t(x), dim=1), torch.aminmax(x, dim=1)
        assert_close(got.min, want.min)
        assert_close(got.max, want.max)


@pytest.mark.parametrize("dim", [None, 0, (0, 1), -1])
def test_count_nonzero(dim):
    x = torch.randn(3, 4, 2).round()
    x[0, 0, 0] = float("nan")
    assert_close(tinydl.count_nonzero(_t(x), dim), torch.count_nonzero(x, dim))
    assert_close(_t(x).count_nonzero(dim), x.count_nonzero(dim))
    b = x > 0
    assert_close(tinydl.count_nonzero(_t(b), dim), torch.count_nonzero(b, dim))
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"):
        tinydl.count_nonzero(_t(x), 3)


def family(x):
    y = torch.where(x > 1, float("nan"), x)
    v, m = torch.var_mean(x, 1, True)
    s, m2 = torch.std_mean(x, dim=(0, 2), correction=0, keepdim=True)
    lo, hi = torch.aminmax(x, dim=-1)
    return (torch.nansum(y, 1), y.nanmean(), torch.nanmean(y, (0, 2), True), v, m, s, m2, lo, hi,
            torch.count_nonzero(x > 0, 1), x.round().count_nonzero())


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_both_paths(path):
    check_paths(family, torch.randn(3, 4, 5), path=path)


@pytest.mark.parametrize("kwargs", [{}, {"dx": 0.5}, {"dim": 0}, {"x": [0.0, 1.0, 3.0]}, {"x": [[0.0, 1.0, 4.0]]},
                                    {"x": [[0.0, 1.0, 3.0], [1.0, 1.5, 2.0]]}, {"x": [0.0, 2.0], "dim": 0}])
def test_trapezoid(kwargs):
    y = np.array([[1.0, 2.0, 4.0], [0.0, 3.0, -9.0]], np.float32)
    tkw = {k: torch.tensor(v) if k == "x" else v for k, v in kwargs.items()}
    dkw = {k: tinydl.tensor(np.array(v, np.float32)) if k == "x" else v for k, v in kwargs.items()}
    assert_close(tinydl.trapezoid(tinydl.tensor(y), **dkw), torch.trapezoid(torch.from_numpy(y), **tkw))
    assert_close(tinydl.trapz(tinydl.tensor(y), **dkw), torch.trapezoid(torch.from_numpy(y), **tkw))
    ints = np.array([1, 2, 4])
    assert_close(tinydl.trapezoid(tinydl.tensor(ints), dx=2), torch.trapezoid(torch.from_numpy(ints), dx=2))
    assert_close(tinydl.trapezoid(tinydl.tensor(np.ones((2, 0), np.float32))), torch.trapezoid(torch.ones(2, 0)))


def test_trapezoid_errors_are_torchs():
    y = np.ones((2, 3), np.float32)
    for args, kwargs in (((np.ones(3, bool),), {}), ((y, np.array([0.0, 1.0], np.float32)), {})):
        with pytest.raises(RuntimeError) as ref:
            torch.trapezoid(*map(torch.from_numpy, args), **kwargs)
        with pytest.raises(RuntimeError, match=re.escape(str(ref.value))):
            tinydl.trapezoid(*map(tinydl.tensor, args), **kwargs)
