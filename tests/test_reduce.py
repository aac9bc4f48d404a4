"""Reductions: sum/mean/max/min/amax/amin/argmax/argmin/prod/var/std/softmax/log_softmax against torch CPU,
over one/several/negative/all dims, keepdim both ways, both reduce kernel variants, long reductions, int/bool
inputs, size-0 reductions and bad input. softmax / log_softmax run as row kernels: tests/test_rownorm.py."""
import importlib
import math

import numpy as np
import pytest
import torch

import tinydl
from tinydl.testing import assert_close

reduce_kernels = importlib.import_module("tinydl.kernels.reduce")
EPS32 = float(np.finfo(np.float32).eps)


def pair(a):
    a = np.array(a)
    return tinydl.tensor(a), torch.from_numpy(a)


@pytest.fixture(params=[None, "serial", "lanes", "workgroup"])
def variant(request, use_options):
    """Run the test with the default variant choice and with each reduce kernel variant forced."""
    use_options(force_reduce=request.param)
    return request.param


def check_variant(variant, *tensors):
    """Realize tensors and check that the forced variant really ran (the knob is not silently ignored)."""
    with tinydl.debug.count_kernels() as c:
        tinydl.realize(*tensors)
    names = [n for n in c.names if n.startswith("reduce")]
    assert names, c.names
    if variant is not None:
        assert all(f"[{variant}]" in n for n in names), names


@pytest.mark.parametrize("shape,variant", [
    ((4096, 8), "serial"),      # many outputs of a length written out
    ((4096, 24), "lanes"),      # many outputs, but a loop: each load waits for the last
    ((1 << 15, 49), "lanes"),   # ResNet-50-b16's global average pool
    ((100, 8), "lanes"),        # few outputs
    ((8, 65), "workgroup"),     # long reductions
])
def test_variant_rule(rng, use_options, shape, variant):
    """The unforced choice (reduce.SERIAL_MAX / Options.serial_min_outputs / SERIAL_UNROLL, measured on the H200), with the
    output-count threshold lowered so the shapes stay small; the sums equal torch's."""
    use_options(serial_min_outputs=4096 if shape[0] < 1 << 15 else 1 << 15)
    a = rng.standard_normal(shape).astype(np.float32)
    x, t = pair(a)
    with tinydl.debug.count_kernels() as c:
        out = x.sum(1)
        tinydl.realize(out)
    assert len(c.names) == 1 and f"[{variant}]" in c.names[0], c.names
    assert_close(out, t.sum(1), rtol=1e-5, atol=1e-5)


# (shape, dim) cases: one dim, several dims, negative dims, all dims (None), size-1 dims, odd sizes, and reduce
# lengths on both sides of the serial/workgroup threshold (64)
DIM_CASES = [
    ((7,), 0),
    ((7,), None),
    ((3, 5), 1),
    ((3, 5), 0),
    ((3, 5), -1),
    ((3, 5), (0, 1)),
    ((3, 5), None),
    ((2, 3, 4), (0, 2)),
    ((2, 3, 4), (-1, -3)),
    ((2, 3, 4), 1),
    ((2, 1, 5), 1),
    ((1, 1), None),
    ((4, 70), 1),
    ((130, 3), 0),
    ((3, 9, 11), (1, 2)),
    ((5,), ()),  # () means all dims, as in torch
]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("shape,dim", DIM_CASES)
@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin"])
def test_reduce_ops(rng, variant, op, shape, dim, keepdim):
    x, t = pair(rng.standard_normal(shape).astype(np.float32))
    if dim is None:
        out, ref = getattr(x, op)(), getattr(t, op)()
    else:
        out, ref = getattr(x, op)(dim, keepdim=keepdim), getattr(t, op)(dim, keepdim=keepdim)
    check_variant(variant, out)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)
    # the module-level function agrees with the method
    fn = getattr(tinydl, op)
    assert_close(fn(x) if dim is None else fn(x, dim, keepdim), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5), 1), ((3, 5), -2), ((2, 3, 4), 1), ((4, 70), 1),
                                       ((1, 4), 0)])
def test_prod(rng, variant, shape, dim, keepdim):
    # magnitudes near 1 so products of up to 70 factors stay in range
    x, t = pair(rng.uniform(0.8, 1.25, shape).astype(np.float32) * rng.choice([-1, 1], shape).astype(np.float32))
    out = x.prod(dim, keepdim=keepdim)
    check_variant(variant, out)
    assert_close(out, t.prod(dim, keepdim=keepdim))
    assert_close(tinydl.prod(x), t.prod())


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), -1), ((4, 70), 1),
                                       ((130, 2), 0), ((2, 1, 3), 1)])
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_with_dim_returns_values_and_indices(rng, variant, op, shape, dim, keepdim):
    x, t = pair(rng.standard_normal(shape).astype(np.float32))
    out, ref = getattr(x, op)(dim, keepdim=keepdim), getattr(t, op)(dim, keepdim=keepdim)
    values, indices = out
    check_variant(variant, values, indices)
    assert_close(values, ref.values)
    assert_close(indices, ref.indices)
    assert_close(out.values, ref.values)
    assert_close(out.indices, ref.indices)
    v2, i2 = getattr(tinydl, op)(x, dim, keepdim)
    assert_close(v2, ref.values)
    assert_close(i2, ref.indices)


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_without_dim(rng, op):
    x, t = pair(rng.standard_normal((3, 4, 5)).astype(np.float32))
    assert_close(getattr(x, op)(), getattr(t, op)())
    # with a tensor as second argument: elementwise maximum/minimum, as torch.max(a, b)
    y, u = pair(rng.standard_normal((4, 5)).astype(np.float32))
    assert_close(getattr(tinydl, op)(x, y), getattr(torch, op)(t, u))


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), -1), ((4, 70), 1),
                                       ((3, 4), None), ((2, 3, 4), None), ((130, 2), 0)])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin(rng, variant, op, shape, dim, keepdim):
    x, t = pair(rng.standard_normal(shape).astype(np.float32))
    out, ref = getattr(x, op)(dim, keepdim=keepdim), getattr(t, op)(dim, keepdim=keepdim)
    assert out.dtype == tinydl.int32
    check_variant(variant, out)
    assert_close(out, ref)
    assert_close(getattr(tinydl, op)(x, dim, keepdim), ref)


@pytest.mark.parametrize("op", ["argmax", "argmin", "max", "min"])
def test_ties_pick_first_index(rng, variant, op):
    # few distinct values, so every row has ties for its max and min; rows long enough for the workgroup tree
    a = rng.integers(-2, 3, (6, 100)).astype(np.float32)
    a[0] = 1.0  # a constant row: index 0
    x, t = pair(a)
    if op in ("argmax", "argmin"):
        out = getattr(x, op)(1)
        check_variant(variant, out)
        assert_close(out, getattr(t, op)(1))
        assert_close(getattr(x, op)(), getattr(t, op)())  # dim=None flattens: first index in row-major order
    else:
        assert_close(getattr(x, op)(1).indices, getattr(t, op)(1).indices)
    xi, ti = pair(a.astype(np.int32))
    assert_close(xi.argmax(1), ti.argmax(1))
    assert_close(xi.argmin(0), ti.argmin(0))


def test_argmax_int_and_bool(rng):
    x, t = pair(rng.integers(-100, 100, (4, 9)).astype(np.int32))
    assert_close(x.argmax(1), t.argmax(1))
    assert_close(x.max(0).values, t.max(0).values)
    assert_close(x.amin(1), t.amin(1))


# -- var / std ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"correction": 0}, {"correction": 1}, {"correction": 2}, {"unbiased": False},
                                {"unbiased": True}])
@pytest.mark.parametrize("shape,dim,keepdim", [((9,), None, False), ((3, 8), 1, False), ((3, 8), 0, True),
                                               ((2, 3, 5), (0, 2), False), ((2, 3, 5), -1, True),
                                               ((4, 80), 1, False)])
@pytest.mark.parametrize("op", ["var", "std"])
def test_var_std(rng, variant, op, kw, shape, dim, keepdim):
    x, t = pair((rng.standard_normal(shape) * 2 + 3).astype(np.float32))
    if dim is None:
        out, ref = getattr(x, op)(**kw), getattr(t, op)(**kw)
    else:
        out, ref = getattr(x, op)(dim, keepdim=keepdim, **kw), getattr(t, op)(dim, keepdim=keepdim, **kw)
    check_variant(variant, out)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert_close(getattr(tinydl, op)(x, dim, keepdim=keepdim, **kw), ref, rtol=1e-4, atol=1e-5)


def test_var_degenerate_counts():
    # one element with correction 1 -> 0/0 = nan; correction >= n -> nan, as torch (it warns, we don't)
    x, t = pair(np.array([2.5], np.float32))
    with pytest.warns(UserWarning):
        ref = t.var()
    assert_close(x.var(), ref)
    y, u = pair(np.array([1.0, 2.0, 4.0], np.float32))
    assert_close(y.var(correction=2), u.var(correction=2))
    with pytest.warns(UserWarning):
        ref = u.std(correction=3)
    assert_close(y.std(correction=3), ref)


# -- long reductions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((5000,), 0), ((2, 5000), 1), ((4100, 2), 0), ((5, 40, 30), (1, 2))])
def test_long_reductions(rng, variant, shape, dim):
    a = rng.standard_normal(shape).astype(np.float32)
    x, t = pair(a)
    n = math.prod(shape[d] for d in ((dim,) if isinstance(dim, int) else dim))
    # fp32 sums in a different order (torch: vectorized pairwise; tinydl: strided partial sums + a tree) differ
    # by up to ~log2(n) roundings of the running magnitude, so allow 2*eps*log2(n)*sum|x| absolute error
    atol = 2 * EPS32 * math.ceil(math.log2(n)) * float(np.abs(a).sum(axis=dim).max())
    out = x.sum(dim)
    check_variant(variant, out)
    assert_close(out, t.sum(dim), rtol=0, atol=atol)
    assert_close(x.mean(dim), t.mean(dim), rtol=0, atol=atol / n)
    # also against an exact (float64) sum, so both implementations are held to the bound
    assert_close(x.sum(dim), a.astype(np.float64).sum(axis=dim), rtol=0, atol=atol, check_dtype=False)
    assert_close(x.amax(dim), t.amax(dim), rtol=0, atol=0)
    assert_close(x.argmin(dim if isinstance(dim, int) else None), t.argmin(dim if isinstance(dim, int) else None))
    # var of 5000 samples: the mean is subtracted first, so the same summation bound applies to sum((x-m)^2)
    assert_close(x.var(dim), t.var(dim), rtol=1e-4, atol=1e-5)


# -- integer and bool inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1)])
def test_int_and_bool_sums(rng, variant, dim):
    xi, ti = pair(rng.integers(-1000, 1000, (6, 70)).astype(np.int32))
    xb, tb = pair(rng.random((6, 70)) > 0.4)
    for x, t in [(xi, ti), (xb, tb)]:
        out = x.sum() if dim is None else x.sum(dim)
        assert out.dtype == tinydl.int32
        check_variant(variant, out)
        assert_close(out, t.sum() if dim is None else t.sum(dim), rtol=0, atol=0)
    xs, ts = pair(rng.integers(-2, 3, (3, 5)).astype(np.int32))
    assert_close(xs.prod(1), ts.prod(1), rtol=0, atol=0)
    assert_close(xb.prod(0), tb.prod(0), rtol=0, atol=0)
    assert_close(xi.sum(1, dtype=tinydl.float32), ti.sum(1, dtype=torch.float32))


# -- size 0 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((2, 0), 1), ((0, 3), 0), ((0,), 0), ((0,), None), ((2, 0, 3), (1, 2))])
def test_empty_reductions(shape, dim):
    x, t = pair(np.zeros(shape, np.float32))
    for op in ("sum", "prod", "mean"):
        out = getattr(x, op)() if dim is None else getattr(x, op)(dim)
        if op == "prod" and isinstance(dim, tuple):  # torch.prod takes one dim: reduce the last first
            ref = t.prod(dim[1]).prod(dim[0])
        else:
            ref = getattr(t, op)() if dim is None else getattr(t, op)(dim)
        assert_close(out, ref)  # sum -> 0, prod -> 1, mean -> nan
    xi, ti = pair(np.zeros(shape, np.int32))
    assert_close(xi.sum() if dim is None else xi.sum(dim), ti.sum() if dim is None else ti.sum(dim))


def test_reduce_over_nonempty_dim_of_empty_tensor(rng):
    x, t = pair(np.zeros((2, 0), np.float32))
    out, ref = x.max(0), t.max(0)
    assert_close(out.values, ref.values)
    assert_close(out.indices, ref.indices)
    assert_close(x.sum(0), t.sum(0))
    assert_close(x.softmax(0), t.softmax(0))


def test_zero_dim_reductions():
    x, t = pair(np.array(3.5, np.float32))
    for op in ("sum", "mean", "amax", "amin", "prod", "argmax"):
        assert_close(getattr(x, op)(), getattr(t, op)())
        assert_close(getattr(x, op)(0), getattr(t, op)(0))
        assert_close(getattr(x, op)(-1, keepdim=True), getattr(t, op)(-1, keepdim=True))
    assert_close(x.max(0).values, t.max(0).values)
    assert_close(x.softmax(0), t.softmax(0))


def test_reduction_fused_with_elementwise(rng, variant):
    x, t = pair(rng.standard_normal((5, 90)).astype(np.float32))
    y, u = pair(rng.standard_normal((5, 1)).astype(np.float32))
    out = ((x * 2 - y).exp().sum(1, keepdim=True).log() + y).squeeze(1)
    ref = ((t * 2 - u).exp().sum(1, keepdim=True).log() + u).squeeze(1)
    check_variant(variant, out)
    assert_close(out, ref)
    assert_close(x.T.sum(0), t.T.sum(0))  # reducing a transposed view
    assert_close(x[:, ::3].amax(1), t[:, ::3].amax(1))


# -- bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["sum", "mean", "amax", "argmax", "prod", "softmax", "var", "max"])
def test_dim_out_of_range(rng, op):
    x, t = pair(rng.standard_normal((2, 3)).astype(np.float32))
    msg = r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"
    with pytest.raises(IndexError, match=msg):
        getattr(x, op)(2)
    with pytest.raises(IndexError, match=msg):
        getattr(t, op)(2)
    with pytest.raises(IndexError, match=r"but got -3\)"):
        getattr(x, op)(-3)


def test_mean_of_int_raises(rng):
    x = tinydl.tensor(rng.integers(0, 5, (3,)).astype(np.int32))
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype. Input dtype must be either a "
                                           "floating point or complex dtype. Got: Int"):
        x.mean()


@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin", "amax", "amin"])
def test_max_over_empty_dim_raises(op):
    x = tinydl.zeros(2, 0)
    with pytest.raises(IndexError, match=r"Expected reduction dim 1 to have non-zero size"):
        getattr(x, op)(1)
    # torch raises IndexError for argmax/argmin and RuntimeError for max/min/amax/amin here
    err = IndexError if op.startswith("arg") else RuntimeError
    with pytest.raises(err, match=r"Expected reduction dim to be specified for input.numel\(\) == 0"):
        getattr(tinydl, op)(x)
    with pytest.raises(err, match=r"Expected reduction dim to be specified for input.numel\(\) == 0"):
        getattr(torch, op)(torch.zeros(2, 0))


@pytest.mark.parametrize("dims", [(0, 0), (1, -1)])
def test_duplicate_dims_raise(dims):
    x, t = pair(np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match=f"dim {dims[0] % 2} appears multiple times in the list of dims"):
        x.sum(dims)
    with pytest.raises(RuntimeError, match="appears multiple times in the list of dims"):
        x.mean(dims)
    with pytest.raises(RuntimeError, match=f"dim {dims[0] % 2} appears multiple times in the list of dims"):
        t.sum(dims)


# -- int32 sums and products accumulate wide, in every variant (tests/test_big_reductions.py: staged ones) ------
@pytest.mark.parametrize("dim", [None, 1])
def test_int_sum_wide_in_every_variant(variant, dim):
    # rows of 70: partial sums pass int32 in every variant's accumulators, the results fit (or not)
    a = np.full((3, 70), 2**30, np.int64)
    a[:, 35:] = -(2**30)
    a[:, 0] = 2**30 - 1  # row sums 2^30 - 1 - 2^30 + ... = -1
    x, t = pair(a)
    out = x.sum() if dim is None else x.sum(dim)
    check_variant(variant, out)
    assert_close(out, t.sum() if dim is None else t.sum(dim), rtol=0, atol=0, check_dtype=False)
    y = tinydl.tensor(np.full((3, 70), 2**26, np.int64))  # 70 * 2^26 > 2^31 - 1
    with pytest.raises(RuntimeError, match="integer overflow"):
        (y.sum() if dim is None else y.sum(dim)).numpy()


def test_int_prod_overflow_in_every_variant(variant):
    a = np.ones((4, 70), np.int64)
    a[0, 3], a[0, 60] = 65536, 32768            # 2^31: overflow
    a[1, 3], a[1, 60] = -65536, 32768           # -2^31: fits
    a[2, 3], a[2, 10], a[2, 60] = 65536, 0, 65536  # a zero: 0
    x, t = pair(a)
    with pytest.raises(RuntimeError, match="integer overflow"):
        x.prod(1).numpy()
    out = x[1:].prod(1)
    check_variant(variant, out)
    assert_close(out, t[1:].prod(1), rtol=0, atol=0, check_dtype=False)


@pytest.mark.parametrize("rows,threads", [(1, 256), (127, 256), (128, 64)])
def test_few_outputs_take_a_whole_workgroup_each(rng, rows, threads):
    """A workgroup reduction with too few outputs to fill the GPU (an RMSNorm's mean of squares at batch 1) gives
    each output 256 threads, so each waits for fewer loads in turn; with many outputs, 64 each; the same sums."""
    x = rng.standard_normal((rows, 2048)).astype(np.float32)
    tinydl.schedule.clear_cache()
    out = (tinydl.tensor(x) * tinydl.tensor(x)).mean(-1).numpy()
    assert_close(out, (torch.from_numpy(x) ** 2).mean(-1).numpy())
    wgsl = [s.wgsl for p in tinydl.schedule._plans.values() for s in p.steps if s.name.startswith("reduce")]
    assert len(wgsl) == 1 and f"@workgroup_size({threads})" in wgsl[0], [w[-600:] for w in wgsl]



@pytest.mark.parametrize("ord", [2, 1, 0, 3, 0.5, -1, float("inf"), -float("inf")])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, True), ((0, 2), False), (-1, False)])
def test_vector_norm(rng, ord, dim, keepdim):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x[0, 0, :2] = 0  # zeros count for ord 0
    ours = tinydl.vector_norm(tinydl.tensor(x), ord, dim, keepdim)
    assert_close(ours, torch.linalg.vector_norm(torch.from_numpy(x), ord, dim, keepdim), rtol=1e-5, atol=1e-6)


def test_norm_and_normalize(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    t, r = tinydl.tensor(x), torch.from_numpy(x)
    assert_close(t.norm(), r.norm(), rtol=1e-5)
    assert_close(tinydl.norm(t, 1, (1, 2), True), torch.norm(r, 1, (1, 2), True), rtol=1e-5)
    assert_close(t.half().norm(dim=0, dtype=tinydl.float32), r.half().norm(dim=0, dtype=torch.float32), rtol=1e-5)
    with pytest.raises(RuntimeError, match=r"the dtype of the input \(Float\) should be convertible without narrowing "
                                           r"to the specified dtype \(Half\)"):
        t.norm(dim=0, dtype=tinydl.float16)
    for p in (2.0, 1.0, 3.0, float("inf")):
        assert_close(tinydl.nn.functional.normalize(t, p, -1), torch.nn.functional.normalize(r, p, -1), rtol=1e-5,
                     atol=1e-6)
    with pytest.raises(RuntimeError, match="linalg.vector_norm: Expected a floating point or complex tensor as input. "
                                           "Got Int"):
        tinydl.vector_norm(tinydl.tensor(np.arange(3, dtype=np.int32)))
    with pytest.raises(NotImplementedError, match="nuclear norm"):
        t[0].norm("nuc")



def test_logsumexp(rng):
    x = (rng.standard_normal((3, 4, 5)) * 10).astype(np.float32)
    for dim, keepdim in ((1, False), ((0, 2), True), (-1, False)):
        assert_close(tinydl.tensor(x).logsumexp(dim, keepdim), torch.logsumexp(torch.from_numpy(x), dim, keepdim),
                     rtol=1e-5, atol=1e-5)
    inf = float("inf")
    special = np.array([[inf, 1.0], [-inf, -inf], [np.nan, 1.0], [1.0, 2.0]], np.float32)  # as torch: inf, -inf, nan
    assert_close(tinydl.logsumexp(tinydl.tensor(special), 1), torch.logsumexp(torch.from_numpy(special), 1))
    assert_close(tinydl.logsumexp(tinydl.tensor(np.zeros((2, 0), np.float32)), 1), torch.logsumexp(torch.zeros(2, 0), 1))
    ints = np.arange(5, dtype=np.int32)
    assert_close(tinydl.logsumexp(tinydl.tensor(ints), 0), torch.logsumexp(torch.from_numpy(ints), 0))
