"""cumsum / cumprod / logcumsumexp (tinydl/scans.py) against torch CPU: every dim (negative ones too), lengths
around the block size and far past it, dtypes (float32, float16, int, bool and dtype=), empty and 0-d tensors,
special values; integer overflow raises; long dims run on lavapipe, whose loops end silently after 65535 trips
(a scan whose thread loops over the dim would give wrong numbers there); torch's errors; the ATen overloads."""
import importlib

import numpy as np
import pytest
import torch

import tinydl
from tinydl.interop import registry
from tinydl.testing import assert_close

scans = importlib.import_module("tinydl.scans")
BLOCK = scans.SCAN_BLOCK


@pytest.mark.parametrize("n", [1, 7, BLOCK, BLOCK + 1, 3 * BLOCK - 1, BLOCK * BLOCK + 5])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scans_match_torch(rng, n, dim):
    shape = [3, 4, 2]
    shape[dim] = n
    x = rng.standard_normal(shape).astype(np.float32)
    tx, dx = torch.from_numpy(x), tinydl.tensor(x)
    assert_close(dx.cumsum(dim), tx.cumsum(dim), rtol=1e-4, atol=1e-4)
    near_one = 1 + 0.02 * x  # products that neither vanish nor blow up over 1000+ factors
    assert_close(tinydl.cumprod(tinydl.tensor(near_one), dim), torch.cumprod(torch.from_numpy(near_one), dim),
                 rtol=1e-4, atol=1e-5)
    assert_close(dx.logcumsumexp(dim), tx.logcumsumexp(dim), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n", [5, 3 * BLOCK + 2])
def test_scan_dtypes(rng, n):
    i = rng.integers(-6, 7, (2, n)).astype(np.int32)
    b = rng.random((2, n)) > 0.5
    h = rng.standard_normal((2, n)).astype(np.float16)
    ti, tb, th = torch.from_numpy(i), torch.from_numpy(b), torch.from_numpy(h)
    di, db, dh = tinydl.tensor(i), tinydl.tensor(b), tinydl.tensor(h)
    assert_close(di.cumsum(1), ti.cumsum(1))
    assert_close(db.cumsum(1), tb.cumsum(1))           # bool and int sum as int64 (int32 here)
    assert_close(db.cumprod(1), tb.cumprod(1))
    small = np.sign(i) * (np.abs(i) % 2 + 1)               # +-1, +-2: products of n of them fit int32 for n <= 30
    assert_close(tinydl.tensor(small[:, :30]).cumprod(1), torch.from_numpy(small[:, :30]).cumprod(1))
    assert_close(di.cumsum(1, dtype=tinydl.float32), ti.cumsum(1, dtype=torch.float32))
    assert_close(di.cumprod(1, dtype=tinydl.float32), ti.cumprod(1, dtype=torch.float32), rtol=1e-5)
    # float16: torch CPU accumulates in float32 and rounds each output to half, as tinydl
    assert_close(dh.cumsum(1), th.cumsum(1), rtol=2e-3, atol=2e-3)
    assert_close(dh.logcumsumexp(1), th.logcumsumexp(1), rtol=2e-3, atol=2e-3)


def test_scan_special_values_and_shapes():
    x = np.array([[1.0, np.inf, -np.inf, 2.0, np.nan, 3.0], [-np.inf, -np.inf, 0.0, np.inf, 1.0, -1.0]], np.float32)
    x = np.concatenate([x, np.repeat(x, 7, 1)], 1)  # past one block
    tx, dx = torch.from_numpy(x), tinydl.tensor(x)
    assert_close(dx.cumsum(1), tx.cumsum(1))
    assert_close(dx.cumprod(1), tx.cumprod(1))
    assert_close(dx.logcumsumexp(1), tx.logcumsumexp(1))
    for shape, dim in (((0, 3), 0), ((4, 0), 1), ((), 0)):
        z = np.ones(shape, np.float32)
        assert_close(tinydl.cumsum(tinydl.tensor(z), dim), torch.cumsum(torch.from_numpy(z), dim))
        assert_close(tinydl.cumprod(tinydl.tensor(z), dim), torch.cumprod(torch.from_numpy(z), dim))
        assert_close(tinydl.logcumsumexp(tinydl.tensor(z), dim), torch.logcumsumexp(torch.from_numpy(z), dim))


def test_long_scans_are_exact_on_lavapipe():
    n = 1 << 20
    ones = tinydl.cumsum(tinydl.ones(n), 0).numpy()  # float32 sums of ones are exact up to 2^24
    np.testing.assert_array_equal(ones, np.arange(1, n + 1, dtype=np.float32))
    ints = tinydl.cumsum(tinydl.arange(n).reshape(4, n // 4) % 3, 1).numpy()
    np.testing.assert_array_equal(ints, np.cumsum(np.arange(n).reshape(4, n // 4) % 3, 1))


def test_integer_overflow_raises():
    with pytest.raises(RuntimeError, match="integer overflow"):
        tinydl.cumsum(tinydl.full((3 * BLOCK,), 2**25, dtype=tinydl.int32), 0).numpy()  # 96 * 2^25 > 2^31
    with pytest.raises(RuntimeError, match="integer overflow"):
        tinydl.cumprod(tinydl.full((40,), 2, dtype=tinydl.int32), 0).numpy()


def test_scan_errors():
    with pytest.raises(NotImplementedError, match="\"logcumsumexp_out_cpu\" not implemented for 'Long'"):
        torch.logcumsumexp(torch.arange(3), 0)
    with pytest.raises(NotImplementedError, match="\"logcumsumexp_out_cpu\" not implemented for 'Long'"):
        tinydl.logcumsumexp(tinydl.arange(3), 0)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-1, 0\], but got 1\)"):
        tinydl.cumprod(tinydl.ones(3), 1)


def test_aten_overloads(rng):
    x = torch.from_numpy(rng.standard_normal((3, 40)).astype(np.float32))
    for name, fn, args in (("aten.cumsum.default", torch.ops.aten.cumsum.default, (x, 1)),
                           ("aten.cumprod.default", torch.ops.aten.cumprod.default, (x, 0)),
                           ("aten.logcumsumexp.default", torch.ops.aten.logcumsumexp.default, (x, -1)),
                           ("aten.hypot.default", torch.ops.aten.hypot.default, (x, x.flip(0)))):
        out = registry.lookup(name)(*(tinydl.tensor(a.numpy()) if isinstance(a, torch.Tensor) else a for a in args))
        assert_close(out, fn(*args), rtol=1e-4, atol=1e-4)


# -- cummax / cummin -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["cummax", "cummin"])
@pytest.mark.parametrize("n", [1, BLOCK + 3, BLOCK * BLOCK + 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32])
def test_running_extremes_and_their_indices(rng, op, n, dtype):
    """Values and indices as torch's: a later equal value takes the index (small integers: many ties), NaN
    propagates from the first one and each later NaN takes the index; along every dim, lengths past the blocks."""
    x = rng.integers(-4, 5, (3, n)).astype(dtype)
    if dtype != np.int32 and n > 2:
        x[1, n // 3] = x[1, n - 1] = np.nan
    for dim in (0, 1, -1):
        got = getattr(tinydl.tensor(x), op)(dim)
        want = getattr(torch, op)(torch.from_numpy(x), dim)
        np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
        np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())


def test_running_extremes_of_bool_and_0d():
    got = tinydl.cummax(tinydl.tensor(np.array([True, False, True])), 0)
    assert got.values.numpy().tolist() == [True, True, True] and got.indices.numpy().tolist() == [0, 0, 2]
    got = tinydl.cummin(tinydl.tensor(np.float32(2.5)), 0)
    assert got.values.item() == 2.5 and got.indices.item() == 0
    with pytest.raises(IndexError):
        tinydl.cummax(tinydl.tensor(np.zeros((2, 3), np.float32)), 2)
