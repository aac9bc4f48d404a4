"""Ops added for real models (from_torch on timm & co.), against torch CPU: batch_norm by batch statistics
(training=True without running stats: timm's weight-standardized convs) and rms_norm."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
from tinydl.nn import functional as F
from tinydl.testing import assert_close


# -- batch_norm(training=True) without running statistics: a normalization, no state to update -------------------
# (torch itself fails on zero channels with affine params, so that case is run without them)
@pytest.mark.parametrize("shape,affine", [(s, a) for s in [(1, 4, 9), (2, 3), (2, 5, 3, 4), (1, 7, 1, 3), (0, 3)]
                                          for a in (False, True)] + [((2, 0, 3), False)])
def test_batch_norm_batch_stats(rng, shape, affine):
    x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
    C = shape[1]
    w = rng.standard_normal(C).astype(np.float32) if affine else None
    b = rng.standard_normal(C).astype(np.float32) if affine else None
    t = (lambda a: None if a is None else torch.from_numpy(a))
    ref = TF.batch_norm(torch.from_numpy(x), None, None, t(w), t(b), training=True, momentum=0.0, eps=1e-5)
    d = (lambda a: None if a is None else tinydl.tensor(a))
    out = F.batch_norm(tinydl.tensor(x), None, None, d(w), d(b), training=True, momentum=0.0, eps=1e-5)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_batch_norm_batch_stats_errors(rng):
    x = rng.standard_normal((1, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        TF.batch_norm(torch.from_numpy(x), None, None, training=True)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        F.batch_norm(tinydl.tensor(x), None, None, training=True)
    # with running statistics, training=True would update them: tinydl is inference only
    x = rng.standard_normal((2, 3)).astype(np.float32)
    with pytest.raises(RuntimeError, match="inference only"):
        F.batch_norm(tinydl.tensor(x), tinydl.zeros(3), tinydl.ones(3), training=True)


# -- rms_norm ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,normalized", [((2, 5), 5), ((3, 4, 6), (6,)), ((2, 3, 4), (3, 4)), ((7,), [7]),
                                              ((1, 1, 1), (1,)), ((0, 4), (4,))])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_rms_norm(rng, shape, normalized, with_weight, eps):
    x = rng.standard_normal(shape).astype(np.float32) * 2
    ns = (normalized,) if isinstance(normalized, int) else tuple(normalized)
    w = rng.standard_normal(ns).astype(np.float32) if with_weight else None
    ref = TF.rms_norm(torch.from_numpy(x), ns, None if w is None else torch.from_numpy(w), eps)
    out = F.rms_norm(tinydl.tensor(x), normalized, None if w is None else tinydl.tensor(w), eps)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_rms_norm_tiny_values_use_dtype_eps(rng):
    # eps=None means torch.finfo(float32).eps: visible when the mean square is of the same order
    x = (rng.standard_normal((3, 8)) * 1e-4).astype(np.float32)
    assert_close(F.rms_norm(tinydl.tensor(x), (8,)), TF.rms_norm(torch.from_numpy(x), (8,)), rtol=1e-4, atol=1e-5)


def test_rms_norm_errors(rng):
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    for args in [((4, 5),), ((3, 5), np.ones(5, np.float32))]:
        targs = tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args)
        with pytest.raises(RuntimeError) as expected:
            TF.rms_norm(torch.from_numpy(x), *targs)
        dargs = tuple(tinydl.tensor(a) if isinstance(a, np.ndarray) else a for a in args)
        with pytest.raises(RuntimeError, match="normalized_shape") as got:
            F.rms_norm(tinydl.tensor(x), *dargs)
        assert str(got.value) == str(expected.value)


# -- cumsum, diff, triu/tril: tinydl's own ops (from_torch's ATen table maps to them) ------------------------------
def test_cumsum_diff_tri_match_torch(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    tx, dx = torch.from_numpy(x), tinydl.tensor(x)
    for dim in (0, 1, -1):
        assert_close(tinydl.cumsum(dx, dim), torch.cumsum(tx, dim), rtol=1e-5, atol=1e-5)
        assert_close(dx.diff(dim=dim), tx.diff(dim=dim), rtol=0, atol=0)
    ints = tinydl.cumsum(dx > 0, 1)  # bool sums as int64 (int32 here), as torch
    assert ints.dtype == tinydl.int32
    np.testing.assert_array_equal(ints.numpy(), torch.cumsum(tx > 0, 1).numpy())
    assert_close(dx.cumsum(0, dtype=tinydl.float16), torch.cumsum(tx, 0, dtype=torch.float16), rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(tinydl.diff(dx > 0, 2, 0).numpy(), torch.diff(tx > 0, 2, 0).numpy())
    for k in (-1, 0, 2):
        assert_close(tinydl.triu(dx, k), torch.triu(tx, k), rtol=0, atol=0)
        assert_close(dx.tril(k), tx.tril(k), rtol=0, atol=0)
