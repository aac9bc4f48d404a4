"""sin/cos parity with torch CPU over the whole float32 range: td_sin/td_cos reduce the argument exactly (Cody-Waite
below 2^11, Payne-Hanek in integers above; tinydl/kernels/trig.py), where WGSL's sin/cos have no accuracy bound
outside [-pi, pi] (lavapipe: cos(1e20) = 1). torch CPU reduces exactly too, so results agree to ~1 ulp everywhere."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tinydl

HAS_F16 = tinydl.runtime.get_runtime().has_f16
ULPS = 2  # measured: 1 ulp at most against torch in every range below


def _values(name: str) -> np.ndarray:
    rng = np.random.default_rng(1234)
    n = 20000
    if name == "10":
        return rng.uniform(-10, 10, n).astype(np.float32)
    if name == "1e4":
        return rng.uniform(-1e4, 1e4, n).astype(np.float32)
    if name == "1e10":
        return rng.uniform(-1e10, 1e10, n).astype(np.float32)
    if name == "full":  # |x| from 2^-20 to 3.4e38, both signs
        v = rng.choice([-1.0, 1.0], n) * np.exp2(rng.uniform(-20, 128, n))
        return np.concatenate([np.clip(v, -3.4028235e38, 3.4028235e38).astype(np.float32),
                               np.array([3.4028235e38, -3.4028235e38, 1e38, -1e38, 1e20, 1e10], np.float32)])
    if name == "pio2_multiples":  # the float32s nearest k pi/2 and their neighbours: r is tiny, cancellation is worst
        k = np.concatenate([np.arange(1, 2000), rng.integers(1, 2**24, 3000), rng.integers(1, 2**53, 3000)])
        near = (k.astype(np.float64) * (np.pi / 2)).astype(np.float32)
        worst = np.array([16367173 * 2.0**72, 13176795.0, 2.0**11, 2.0**11 - 2.0**-12], np.float32)  # known hard cases
        return np.concatenate([near, np.nextafter(near, np.float32(np.inf)), np.nextafter(near, np.float32(0)),
                               worst, -near])
    if name == "tiny":  # sin(x) = x, cos(x) = 1, subnormals and -0 included
        return np.concatenate([rng.uniform(-1e-3, 1e-3, n // 2), np.exp2(rng.uniform(-149, -100, n // 4)),
                               -np.exp2(rng.uniform(-149, -100, n // 4)),
                               [0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, -1.1754942e-38, 2.0**-12, -2.0**-12]]
                              ).astype(np.float32)
    raise KeyError(name)


RANGES = ["10", "1e4", "1e10", "full", "pio2_multiples", "tiny"]


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    spacing = np.abs(np.spacing(want)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want.astype(np.float64)) / spacing


@pytest.mark.parametrize("fn", ["sin", "cos"])
@pytest.mark.parametrize("rng_name", RANGES)
def test_float32_parity(fn, rng_name):
    x = _values(rng_name)
    got = getattr(tinydl.tensor(x), fn)().numpy()
    want = getattr(torch, fn)(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32
    u = _ulps(got, want)
    i = int(np.argmax(u))
    assert u.max() <= ULPS, (fn, x[i], got[i], want[i], u.max())
    if rng_name == "tiny" and fn == "sin":  # sin(x) is x itself below 2^-12: signs of zeros, subnormals kept
        t = np.abs(x) < 2.0**-12
        np.testing.assert_array_equal(got[t].view(np.uint32), x[t].view(np.uint32))


@pytest.mark.parametrize("fn", ["sin", "cos"])
def test_special_values(fn):
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38], np.float32)
    got = getattr(tinydl.tensor(x), fn)().numpy()
    want = getattr(torch, fn)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    m = ~np.isnan(want)
    assert np.all(_ulps(got[m], want[m]) <= ULPS)
    np.testing.assert_array_equal(np.signbit(got[m]), np.signbit(want[m]))  # sin(-0) = -0


def test_issue_values():
    x = np.array([-1e38, 1e20, 1e10], np.float32)
    np.testing.assert_allclose(tinydl.tensor(x).cos().numpy(), torch.cos(torch.from_numpy(x)).numpy(), rtol=3e-7)
    np.testing.assert_allclose(tinydl.tensor(x).sin().numpy(), torch.sin(torch.from_numpy(x)).numpy(), rtol=3e-7)


@pytest.mark.skipif(not HAS_F16, reason="adapter lacks shader-f16")
@pytest.mark.parametrize("fn", ["sin", "cos"])
def test_float16_parity(fn):
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-10, 10, 4000), rng.uniform(-65504, 65504, 4000),
                        [65504.0, -65504.0, 0.0, -0.0, 6e-8, -6e-8, 1e-5, np.inf, -np.inf, np.nan]]).astype(np.float16)
    got = getattr(tinydl.tensor(x), fn)().numpy()
    want = getattr(torch, fn)(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float16
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    m = ~np.isnan(want)
    assert np.all(_ulps(got[m], want[m]) <= 1), np.abs(got[m].astype(np.float32) - want[m]).max()
    np.testing.assert_array_equal(np.signbit(got[m & (want == 0)]), np.signbit(want[m & (want == 0)]))


@pytest.mark.parametrize("rng_name", ["10", "1e4", "full"])
def test_fused_chain(rng_name):
    """sin and cos inside one fused elementwise kernel, with other ops around them."""
    x = _values(rng_name)
    y = np.random.default_rng(9).uniform(-2, 2, x.shape).astype(np.float32)
    a, b = tinydl.tensor(x), tinydl.tensor(y)
    got = (a.sin() * 0.5 + (a + b).cos() * b).numpy()
    ta, tb = torch.from_numpy(x), torch.from_numpy(y)
    s, c = torch.sin(ta) * 0.5, torch.cos(ta + tb) * tb
    want = (s + c).numpy()
    tol = 3 * (np.abs(np.spacing(s.numpy())) + np.abs(np.spacing(c.numpy())) + np.abs(np.spacing(want)))
    assert np.all(np.abs(got.astype(np.float64) - want) <= tol)
