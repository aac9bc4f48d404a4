"""Reductions over up to 2^25 elements (issue 18, class 3), integer sums/products that do not fit int32 (class 7)
and bool reductions (class 8), against torch CPU / exact float64 sums.

Lavapipe ends every loop of a thread silently after 65535 trips in all (a 4096x4096 sum of ones gave 131070), so on
this machine each test below fails unless reductions are staged (kernels/reduce.py: STAGE_MAX, Partial, OfPairs).
Big inputs are mostly CONST/arange/expand-derived (same kernels, nothing to upload); one real 2^25-element upload
is shared by the module (`big`)."""
import importlib
import re

import numpy as np
import pytest
import torch

import tinydl
from tinydl.testing import assert_close

reduce_kernels = importlib.import_module("tinydl.kernels.reduce")
N25 = 1 << 25


def periodic(pattern, shape):
    """`pattern` repeated to fill `shape` (an expand of one small upload: big inputs with nothing big to upload),
    as a tinydl tensor and its torch twin."""
    reps = int(np.prod(shape)) // len(pattern)
    assert reps * len(pattern) == int(np.prod(shape))
    x = tinydl.tensor(pattern).reshape(1, -1).expand(reps, len(pattern)).reshape(shape)
    t = torch.from_numpy(pattern).reshape(1, -1).expand(reps, len(pattern)).reshape(shape)
    return x, t


LOOP = re.compile(r"for \(var (\w+)(?:: i32)? = [^;]+; \1 < (\w+); \1 ?(?:\+= (\d+)|\+\+)\)")


def loop_trips(wgsl: str) -> int:
    """An upper bound of one thread's loop trips, all loops of the kernel together (lavapipe's cap counts them
    together), a nested loop's trips times its enclosing loops': loops with literal bounds, or bounds named by a
    `let b = min(<literal>, ...)`, and halving tree loops (8 trips)."""
    total, depth, stack = 0, 0, []  # stack: (brace depth outside the loop, trips of one pass of its body's loops)
    for line in wgsl.splitlines():
        m = LOOP.search(line)
        trips = None
        if m:
            _, bound, step = m.groups()
            if not bound.isdigit():
                named = re.search(rf"let {bound} = min\((\d+),", wgsl)
                bound = named.group(1) if named else None  # None: per-thread bounds (adaptive pools' windows)
            trips = -(-int(bound) // int(step or 1)) if bound else None
        elif ">>= 1u)" in line and line.lstrip().startswith("for"):
            trips = 8
        if trips is not None:
            trips *= stack[-1][1] if stack else 1
            total += trips
            stack.append((depth, trips))
        depth += line.count("{") - line.count("}")
        while stack and depth <= stack[-1][0]:
            stack.pop()
    return total


def max_trips(*tensors) -> int:
    return max(loop_trips(w) for t in tensors for w in tinydl.schedule.shaders_for(t))


def reduce_kernel_names(*tensors):
    with tinydl.debug.count_kernels() as c:
        tinydl.realize(*tensors)
    return [n for n in c.names if n.startswith("reduce")]


@pytest.fixture(scope="module")
def big():
    """One uploaded 2^25-element float32 array (128 MiB: lavapipe's largest binding) with its torch twin, with
    ties for the max and min planted in different stage-1 chunks (the lowest index must win)."""
    a = np.random.default_rng(7).random(N25, dtype=np.float32)
    a[[3_000_001, 20_000_000, 33_000_000]] = 2.0   # the max, three times
    a[[9_999_999, 30_000_000]] = -1.0              # the min, twice
    return tinydl.tensor(a), torch.from_numpy(a), a


def test_issue_examples():
    # the issue's two examples (a CONST input: the same reduce kernels as uploaded data)
    assert tinydl.tensor(np.ones((4096, 4096), np.float32)).sum().item() == 16777216.0
    assert tinydl.full((4096, 4096), 3.0).mean().item() == 3.0
    assert tinydl.ones(N25).sum().item() == float(N25)


def test_big_uploaded_all_dims(big):
    x, t, a = big
    exact = a.astype(np.float64)
    # a staged tree sum: far inside torch's rtol 1e-4 (a serial f32 loop over 2^25 values is off by ~1e-2)
    assert abs(x.sum().item() - exact.sum()) <= 1e-6 * exact.sum()
    assert_close(x.mean(), t.mean(), rtol=1e-5, atol=0)
    assert_close(x.var(), t.var(), rtol=1e-4, atol=0)
    assert_close(x.std(correction=0), t.std(correction=0), rtol=1e-4, atol=0)
    assert_close(x.amax(), t.amax(), rtol=0, atol=0)
    assert_close(x.amin(), t.amin(), rtol=0, atol=0)
    # torch's lowest-index rule across chunks
    assert x.argmax().item() == t.argmax().item() == 3_000_001
    assert x.argmin().item() == t.argmin().item() == 9_999_999


def test_big_uploaded_over_one_dim(big):
    x, t, a = big
    x2, t2 = x.reshape(4, -1), t.reshape(4, -1)  # rows of 2^23
    assert_close(x2.sum(1), t2.to(torch.float64).sum(1).float(), rtol=1e-5, atol=0)
    out, ref = x2.max(1, keepdim=True), t2.max(1, keepdim=True)
    assert_close(out.values, ref.values, rtol=0, atol=0)
    assert_close(out.indices, ref.indices)
    assert_close(x2.argmin(1), t2.argmin(1))


@pytest.mark.parametrize("shape,dim", [((1 << 26,), 0), ((3, 1 << 24), 1), ((1 << 24, 2), 0), ((8, 4096, 4097), (0, 2)),
                                       ((2, (1 << 16) + 1), 1)])
@pytest.mark.parametrize("op", ["sum", "amax", "argmin", "prod"])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_loop_trips_bounded(shape, dim, op, dtype):
    """No reduce kernel loops more than reduce.MAX_TRIPS times per thread (any driver's cap, not only lavapipe's);
    the kernels are generated, not run."""
    x = tinydl.zeros(shape, dtype=getattr(tinydl, dtype))
    out = getattr(x, op)(dim)
    assert max_trips(out) <= reduce_kernels.MAX_TRIPS
    assert loop_trips("for (var r: i32 = lane; r < 65536; r += 256) {") == 256  # the parser sees the loops


def test_staging_only_where_needed(rng):
    # with outputs enough to fill the GPU, 2^16 per output is one kernel; more: partials, then the partials' reduction
    many = reduce_kernel_names(tinydl.ones(reduce_kernels.FEW_OUTPUTS, 1 << 16).sum(1))
    assert len(many) == 1, many
    names = reduce_kernel_names(tinydl.ones(reduce_kernels.FEW_OUTPUTS, (1 << 16) + 1).sum(1))
    assert len(names) == 2, names
    # with few outputs (a greedy decode step's argmax over the vocabulary), staged from FEW_STAGE_MIN elements on
    few = reduce_kernels.FEW_STAGE_MIN
    assert len(reduce_kernel_names(tinydl.ones(3, few - 1).sum(1))) == 1
    names = reduce_kernel_names(tinydl.ones(3, few).argmax(1))
    assert names == ["reduce_argmax 3x1x16x2 [workgroup]", "reduce_argmax 3 [lanes]"], names
    # a global average pool stays one kernel
    pooled = tinydl.tensor(rng.standard_normal((2, 8, 7, 7), dtype=np.float32)).mean((2, 3))
    assert len(reduce_kernel_names(pooled)) == 1


@pytest.mark.parametrize("shape,dim", [((2, 1 << 24), 1), ((1 << 18, 3), 0), ((64, 2048, 3), (0, 1)),
                                       ((5, 123_457), -1)])
def test_long_rows(shape, dim):
    """Expand-derived values with ties (a ragged last chunk in 123457), over the last, first and several dims."""
    period = shape[-1] if int(np.prod(shape)) % 1024 else 1024
    x, t = periodic(np.random.default_rng(period).integers(0, 100, period).astype(np.float32) * 0.01 - 0.495, shape)
    for keepdim in (False, True):
        assert_close(x.sum(dim, keepdim=keepdim), t.double().sum(dim, keepdim=keepdim).float(), rtol=1e-4, atol=1e-3)
        assert_close(x.amax(dim, keepdim=keepdim), t.amax(dim, keepdim=keepdim), rtol=0, atol=0)
        assert_close(x.amin(dim, keepdim=keepdim), t.amin(dim, keepdim=keepdim), rtol=0, atol=0)
    assert_close(x.mean(dim), t.mean(dim), rtol=1e-4, atol=1e-5)
    assert_close(x.var(dim), t.var(dim), rtol=1e-4, atol=1e-6)
    if isinstance(dim, int):
        assert_close(x.argmax(dim), t.argmax(dim))   # ties in every period: the first wins
        assert_close(x.argmin(dim, keepdim=True), t.argmin(dim, keepdim=True))
        v, i = x.min(dim)
        assert_close(v, t.min(dim).values, rtol=0, atol=0)
        assert_close(i, t.min(dim).indices)


@pytest.mark.parametrize("shape", [(1, 50257), (4, 32000), (3, 16384)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_few_long_rows_staged_as_torch(rng, shape, dtype):
    """A few rows of a vocabulary's length (staged: reduce.staged): torch's values; argmax's ties across chunks pick
    the first, a NaN anywhere wins (torch's argmax treats it as the largest)."""
    a = rng.standard_normal(shape).astype(dtype)
    a[:, [3, shape[1] - 2]] = 9.0  # a tie in the first and the last chunk
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    for op in ("argmax", "argmin", "amax", "amin", "sum", "mean"):
        assert_close(getattr(x, op)(-1), getattr(t, op)(-1), rtol=2e-3 if dtype == "float16" else 1e-5, atol=1e-3)
    assert_close(x.var(-1), t.float().var(-1).to(t.dtype), rtol=2e-3, atol=1e-3)
    a[-1, shape[1] - 1000] = np.nan
    assert_close(tinydl.tensor(a).argmax(-1), torch.from_numpy(a).argmax(-1))
    assert_close(tinydl.tensor(a).amax(-1), torch.from_numpy(a).amax(-1), equal_nan=True)
    ints = np.full((2, 20000), 1 << 17, np.int32)
    assert tinydl.tensor(ints[:, :100]).sum(1).numpy().tolist() == [100 << 17] * 2
    with pytest.raises(RuntimeError, match="integer overflow"):
        tinydl.tensor(ints).sum(1).numpy()  # 20000 * 2^17 > int32's max: reported across the stages, not wrapped


def test_ties_everywhere_pick_first():
    x = tinydl.ones(2, 1 << 20).expand(3, 2, 1 << 20)  # an expand-derived input: every element ties
    assert x.argmax(2).numpy().tolist() == [[0, 0]] * 3
    assert x.argmin(2).numpy().tolist() == [[0, 0]] * 3
    assert x.reshape(-1).argmax().item() == 0


def test_nan_propagates_through_stages():
    n = 1 << 20
    x = tinydl.where(tinydl.arange(n) == 700_000, float("nan"), tinydl.ones(n))
    t = torch.where(torch.arange(n) == 700_000, float("nan"), torch.ones(n))
    for op in ("sum", "amax", "amin", "argmax", "argmin"):
        assert_close(getattr(x, op)(), getattr(t, op)(), equal_nan=True)


def test_float16():
    n = 1 << 21
    x, t = periodic(np.array([0, 0.25, 0.5, 0.75], np.float16), (n,))
    out = x.mean()
    assert out.dtype == tinydl.float16
    assert_close(out, t.mean(), rtol=1e-3, atol=0)
    assert_close(x.sum(), t.sum(), rtol=1e-3, atol=0)  # 393216 > float16's max: inf, as torch
    assert_close(x.amax(), t.amax(), rtol=0, atol=0)
    assert_close(x.argmax(), t.argmax())
    assert_close(x.reshape(2, -1).sum(1, dtype=tinydl.float32), t.reshape(2, -1).sum(1, dtype=torch.float32))


def test_int32_big():
    n = 1 << 22
    x, t = periodic(np.arange(1024, dtype=np.int32) % 7 - 3, (n,))
    assert_close(x.sum(), t.sum(), rtol=0, atol=0)
    assert_close(x.reshape(4, -1).sum(1), t.reshape(4, -1).sum(1), rtol=0, atol=0)
    assert_close(x.amax(), t.amax(), rtol=0, atol=0)
    assert_close(x.argmin(), t.argmin())
    # partials far outside int32 that cancel: exact
    y = tinydl.where(tinydl.arange(n) < n // 2, 1 << 30, -(1 << 30))
    assert y.sum().item() == 0


def test_bool_big():
    n = N25
    b, tb = periodic(np.arange(1024) % 3 == 0, (n,))
    out = b.sum()
    assert out.dtype == tinydl.int32
    assert out.item() == tb.sum().item()
    assert b.any().item() is True and b.all().item() is False
    assert (b | True).all().item() is True
    assert_close(b.amax(), tb.amax())
    assert_close(b.reshape(2, -1).amin(1), tb.reshape(2, -1).amin(1))
    v, i = b.reshape(2, -1).max(1)
    assert_close(v, tb.reshape(2, -1).max(1).values)
    assert_close(i, tb.reshape(2, -1).max(1).indices)


# -- integer sums and products: wide accumulation, and an error where int32 cannot hold torch's int64 ----------
@pytest.mark.parametrize("n", [1000, 200_000])  # one kernel, staged
def test_int_sum_overflow_raises(n):
    x = tinydl.full((n,), 16777217, dtype=tinydl.int32)  # the issue's example: torch gives 16777217000 (int64)
    with pytest.raises(RuntimeError, match=r"integer overflow: an int32 result \(a sum, product or other integer arithmetic\) does not fit int32"):
        x.sum().item()
    # the next computation works again
    assert tinydl.full((n,), 3, dtype=tinydl.int32).sum().item() == 3 * n


@pytest.mark.parametrize("staged", [False, True])
def test_int_sum_edges_of_int32(staged):
    pad = tinydl.zeros(200_000 if staged else 10, dtype=tinydl.int32)

    def total(*vals):
        return tinydl.cat([tinydl.tensor(np.array(vals, np.int64)), pad]).sum()

    assert total(2**30, 2**30 - 1, 0).item() == 2**31 - 1
    assert total(-2**30, -2**30).item() == -2**31
    assert total(2**31 - 1, 5, -5).item() == 2**31 - 1  # intermediate out of int32, result in
    with pytest.raises(RuntimeError, match="overflow"):
        total(2**30, 2**30).item()
    with pytest.raises(RuntimeError, match="overflow"):
        total(-2**30, -2**30, -1).item()
    with pytest.raises(RuntimeError, match="overflow"):
        tinydl.tensor(np.full((3, 5), 2**30, np.int64)).sum(1).numpy()  # over one dim
    with pytest.raises(RuntimeError, match="overflow"):
        tinydl.full((2, 70_000), 40_000, dtype=tinydl.int32).sum().item()  # 5.6e9 over all dims


def test_int_products_overflow():
    two = tinydl.full((40,), 2, dtype=tinydl.int32)
    assert two[:30].prod().item() == 2**30
    with pytest.raises(RuntimeError, match="overflow"):
        two[:31].prod().item()  # 2^31
    assert (-two[:31]).prod().item() == -2**31  # fits
    with pytest.raises(RuntimeError, match="overflow"):
        two.prod().item()
    assert tinydl.cat([two, tinydl.zeros(1, dtype=tinydl.int32)]).prod().item() == 0  # a zero after an overflow
    x = tinydl.tensor(np.array([[46341, 46341], [46340, 46340], [-65536, 32768]], np.int64))
    with pytest.raises(RuntimeError, match="overflow"):
        x.prod(1).numpy()  # 46341^2 > 2^31 - 1
    assert x[1:].prod(1).numpy().tolist() == [46340 * 46340, -2**31]
    # staged: mostly ones, one -1 and one 2^20 in different chunks
    n = 300_000
    i = tinydl.arange(n)
    y = tinydl.where(i == 5, -1, tinydl.where(i == 250_000, 1 << 20, tinydl.ones(n, dtype=tinydl.int32)))
    assert y.prod().item() == -(1 << 20)
    with pytest.raises(RuntimeError, match="overflow"):
        (y * tinydl.where(i == 100_000, 4096, tinydl.ones(n, dtype=tinydl.int32))).prod().item()


# -- bool reductions as torch (never rejected WGSL) ------------------------------------------------------------
def test_bool_reductions_match_torch(rng):
    a = rng.random((5, 7)) > 0.5
    a[0] = True
    a[1] = False
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    for op in ("amax", "amin"):
        for dim in (None, 0, 1):
            out = getattr(x, op)() if dim is None else getattr(x, op)(dim)
            ref = getattr(t, op)() if dim is None else getattr(t, op)(dim)
            assert out.dtype == tinydl.bool
            assert_close(out, ref)
    for op in ("max", "min"):
        assert_close(getattr(x, op)(), getattr(t, op)())
        v, i = getattr(x, op)(1, keepdim=True)
        assert v.dtype == tinydl.bool
        assert_close(v, getattr(t, op)(1, keepdim=True).values)
        assert_close(i, getattr(t, op)(1, keepdim=True).indices)
    for op in ("sum", "prod"):
        assert_close(getattr(x, op)(), getattr(t, op)())
        assert_close(getattr(x, op)(0), getattr(t, op)(0))
    for op in ("argmax", "argmin"):
        with pytest.raises(RuntimeError, match=f"{op}\\(\\): does not support bool input"):
            getattr(x, op)()
        with pytest.raises(RuntimeError, match=f"{op}\\(\\): does not support bool input"):
            getattr(t, op)()
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        x.mean()


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "bool"])
def test_any_all(rng, dtype):
    a = (rng.integers(0, 2, (4, 6)) * rng.integers(1, 5, (4, 6))).astype(dtype)
    a[0] = 0
    a[1] = 1
    if dtype.startswith("float"):
        a[2, 3] = np.nan
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    for fn in ("any", "all"):
        for dim, keepdim in ((None, False), (0, False), (1, True), ((0, 1), False)):
            out = getattr(x, fn)() if dim is None else getattr(x, fn)(dim, keepdim=keepdim)
            ref = getattr(t, fn)() if dim is None else getattr(t, fn)(dim, keepdim=keepdim)
            assert out.dtype == tinydl.bool
            assert_close(out, ref)
        assert_close(getattr(tinydl, fn)(x), getattr(torch, fn)(t))
    e = tinydl.zeros(3, 0)
    assert_close(e.any(1), torch.zeros(3, 0).any(1))
    assert_close(e.all(1), torch.zeros(3, 0).all(1))
    assert e.all().item() is True and e.any().item() is False


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "bool"])
@pytest.mark.parametrize("op", ["sum", "prod", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "var",
                                "std", "any", "all"])
def test_every_reduction_every_dtype(rng, op, dtype):
    """Each reduction x dtype: torch's result (value and dtype) or torch's error type."""
    a = rng.integers(-3, 4, (3, 70)).astype(dtype)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    for args in ((), (1,), (0,)):
        try:
            ref = getattr(t, op)(*args)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                getattr(x, op)(*args)
            continue
        out = getattr(x, op)(*args)
        if isinstance(ref, tuple):
            assert_close(out[0], ref[0], rtol=1e-3, atol=1e-3)
            assert_close(out[1], ref[1])
        else:
            assert out.dtype == tinydl.dtypes.to_dtype(ref.dtype)
            assert_close(out, ref, rtol=1e-3, atol=1e-3)


# -- row kernels over very long rows (kernels/rownorm.py: ROW_MAX_LEN) ---------------------------------------
def test_long_rows_row_norms(rng):
    import tinydl.nn.functional as F
    tF = torch.nn.functional
    n = (1 << 20) + 3  # just past ROW_MAX_LEN: composed of reductions
    a = rng.standard_normal((2, n)).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    w = rng.standard_normal(n).astype(np.float32)
    assert_close(x.softmax(1), t.softmax(1), rtol=1e-4, atol=1e-9)
    assert_close(x.log_softmax(-1), t.log_softmax(-1), rtol=1e-4, atol=1e-5)
    assert_close(F.layer_norm(x, (n,)), tF.layer_norm(t, (n,)), rtol=1e-4, atol=1e-4)
    assert_close(F.rms_norm(x, (n,), tinydl.tensor(w), eps=1e-6), tF.rms_norm(t, (n,), torch.from_numpy(w), eps=1e-6),
                 rtol=1e-4, atol=1e-4)
    xh, th = tinydl.tensor(a.astype(np.float16)), torch.from_numpy(a.astype(np.float16))
    assert_close(xh.softmax(1), th.softmax(1), rtol=1e-3, atol=1e-7)
    # attention's safe softmax over a row of -inf only: 0 (not NaN)
    tensor_mod = importlib.import_module("tinydl._tensor")
    assert (tensor_mod.row_norm(tinydl.full((1, n), float("-inf")), "safe_softmax", 1).numpy() == 0).all()
    # and the loop bound, on each side of ROW_MAX_LEN
    for m in (1 << 20, n):
        y = tinydl.zeros(2, m)
        for out in (y.softmax(1), F.layer_norm(y, (m,)), F.rms_norm(y, (m,))):
            assert max_trips(out) <= reduce_kernels.MAX_TRIPS


def test_softmax_row_of_2_pow_23():
    # 3 passes of 2^23 / 256 trips in one workgroup would exceed lavapipe's 65535: the result would be wrong
    # against the exact (float64) softmax: torch's own float32 one is off by 7e-4 on some CPUs (an AVX2 host's)
    pattern = np.linspace(-3, 3, 1024, dtype=np.float32)
    x, _ = periodic(pattern, (1, 1 << 23))
    e = np.exp(pattern.astype(np.float64) - 3)
    exact_max = 1 / (e.sum() * (1 << 13))
    assert_close(x.softmax(1).amax(), np.float32(exact_max), rtol=1e-4, atol=0)
    assert_close(x.softmax(1).sum(), np.float32(1), rtol=1e-4, atol=0)


# -- every other kernel with a data-dependent loop: GEMM K loops, convs, pools ---------------------------------
@pytest.mark.parametrize("M,K,N", [(33, 200_003, 5), (2, 200_003, 3)])  # a tile (K padded to 2 slices), gemv
def test_matmul_long_k(rng, M, K, N):
    gemm = importlib.import_module("tinydl.kernels.gemm")
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    out = tinydl.tensor(a) @ tinydl.tensor(b)
    assert max_trips(out) <= reduce_kernels.MAX_TRIPS
    assert K > gemm.MAX_K
    # fp32 sums of 200003 products: against an exact sum, within a few roundings of the sum of |products|
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert_close(out, exact, rtol=0, atol=2e-7 * float((np.abs(a) @ np.abs(b)).max()), check_dtype=False)
    # the kernels of a 2^20-long K (not run): every slice's loop within the bound
    assert max_trips(tinydl.zeros(64, 1 << 20) @ tinydl.zeros(1 << 20, 64)) <= reduce_kernels.MAX_TRIPS


def test_conv_long_k(rng):
    """An implicit-GEMM conv with K = Cin * KH * KW past gemm.MAX_K is split over its input channels; one whose
    single channel's window is longer still raises (no kernel could loop over it within the bound)."""
    import tinydl.nn.functional as F
    x = rng.standard_normal((1, 16, 100, 101)).astype(np.float32)
    w = rng.standard_normal((8, 16, 100, 100)).astype(np.float32)
    out = F.conv2d(tinydl.tensor(x), tinydl.tensor(w))
    assert max_trips(out) <= reduce_kernels.MAX_TRIPS
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double())
    bound = 2e-7 * float(torch.nn.functional.conv2d(torch.from_numpy(np.abs(x)).double(),
                                                    torch.from_numpy(np.abs(w)).double()).max())
    assert_close(out, ref.float(), rtol=0, atol=bound)
    with pytest.raises(NotImplementedError, match="taps per input channel"):
        F.conv2d(tinydl.zeros(1, 1, 400, 400), tinydl.zeros(8, 1, 400, 400))


def test_direct_conv_big_window(rng):
    """A depthwise conv with a 131x129 window loops 17030 times per output as a direct conv: it runs as an
    implicit GEMM instead."""
    import tinydl.nn.functional as F
    x = rng.standard_normal((1, 2, 150, 140)).astype(np.float32)
    w = rng.standard_normal((2, 1, 131, 129)).astype(np.float32)
    out = F.conv2d(tinydl.tensor(x), tinydl.tensor(w), groups=2, padding=(3, 60))
    assert max_trips(out) <= reduce_kernels.MAX_TRIPS
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), groups=2,
                                     padding=(3, 60))
    assert_close(out, ref.float(), rtol=1e-4, atol=2e-3)


POOL_CASES = [dict(kernel_size=(131, 129), stride=(5, 3), padding=(3, 60)),
              dict(kernel_size=(131, 129), stride=(5, 4), padding=(3, 60), ceil_mode=True),
              dict(kernel_size=(131, 129), stride=(5, 3), padding=(3, 60), count_include_pad=False),
              dict(kernel_size=(131, 129), stride=(5, 4), padding=(3, 60), ceil_mode=True, count_include_pad=False),
              dict(kernel_size=(131, 129), stride=(5, 4), padding=(3, 60), divisor_override=7)]


@pytest.fixture(scope="module")
def image():
    a = np.random.default_rng(3).standard_normal((2, 3, 150, 140)).astype(np.float32)
    a[0, 0, 5, 7] = np.nan
    return tinydl.tensor(a), torch.from_numpy(a)


@pytest.mark.parametrize("kw", POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_big_windows(image, kind, kw):
    """Windows of 131x129 (17030 trips per thread in one kernel) are pooled along W, then along H."""
    import tinydl.nn.functional as F
    if kind == "max" and ("count_include_pad" in kw or "divisor_override" in kw):
        pytest.skip("avg pool options")
    x, t = image
    out = getattr(F, f"{kind}_pool2d")(x, **kw)
    ref = getattr(torch.nn.functional, f"{kind}_pool2d")(t, **kw)
    assert max_trips(out) <= reduce_kernels.MAX_TRIPS
    # sums of 16899 values in another order: ~eps * sum|x| / count (x 7 where divided by 7 instead of the count)
    atol = 0 if kind == "max" else 1e-5 if "divisor_override" not in kw else 5e-4
    assert_close(out, ref, rtol=1e-4, atol=atol, equal_nan=True)
    if kind == "max":  # float16 data: the first pass keeps float32
        xh, th = tinydl.tensor(t.half().numpy()), t.half()
        assert_close(F.max_pool2d(xh, **kw), torch.nn.functional.max_pool2d(th, **kw), equal_nan=True)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_adaptive_pool_big_windows(kind):
    """An adaptive pool to 1x1 (or 1x2, 2x1) of a 300x300 map: 90,300 trips per thread in one kernel; pooled along W,
    then along H (an adaptive average to 1x1 is a mean: a staged reduction)."""
    import tinydl.nn.functional as F
    a = np.random.default_rng(5).standard_normal((2, 2, 300, 300)).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    for size in ((1, 1), (1, 2), (2, 1)):
        out = getattr(F, f"adaptive_{kind}_pool2d")(x, size)
        ref = getattr(torch.nn.functional, f"adaptive_{kind}_pool2d")(t, size)
        assert_close(out, ref, rtol=1e-4, atol=1e-6)


def test_staged_reduction_of_a_tensor_stored_in_pieces(rng, use_options):
    """An upload larger than one binding is read in place through its pieces by the stage-1 kernel."""
    use_options(max_binding_size=1 << 18)
    a = rng.standard_normal((3, 70_000)).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    assert_close(x.sum(1), t.double().sum(1).float(), rtol=1e-5, atol=1e-4)
    assert_close(x.argmax(), t.argmax())
    ai = rng.integers(-2**31, 2**31 - 1, (3, 70_000)).astype(np.int64)
    xi = tinydl.tensor(ai)
    assert_close(xi.sum(1, dtype=tinydl.float32), torch.from_numpy(ai).sum(1, dtype=torch.float32), rtol=1e-5, atol=0)
    with pytest.raises(RuntimeError, match="overflow"):
        xi.sum().item()


def test_conv_transpose_long_k_raises():
    import tinydl.nn.functional as F
    with pytest.raises(NotImplementedError, match="more than the 131072 one GEMM loop"):
        F.conv_transpose2d(tinydl.zeros(1, 16384, 2, 2), tinydl.zeros(16384, 1, 3, 3))
    assert F.conv_transpose2d(tinydl.ones(1, 2, 2, 2), tinydl.ones(2, 1, 3, 3)).shape == (1, 1, 4, 4)


def test_reductions_past_int32_indices_are_split_by_axes():
    """A reduction over 2^31 or more elements (a view: nothing that big is stored) reduces its trailing axes first,
    so no kernel's reduced index passes int32 (2^32 summed in one node gave half the sum). Checked on the graph:
    running 2^32 reads takes lavapipe too long."""
    x = tinydl.tensor(np.arange(65536, dtype=np.float32)).reshape(1, -1).expand(65536, 65536)

    def reduce_lengths(t):
        out, stack, seen = [], [t.node], set()
        while stack:
            n = stack.pop()
            if n.uid in seen:
                continue
            seen.add(n.uid)
            if n.kind == "reduce":
                arg = n.arg
                axes = arg.axes if isinstance(arg, reduce_kernels.Partial) else arg \
                    if isinstance(arg, tuple) else (len(n.srcs[0].shape) - 2,)
                out.append(int(np.prod([n.srcs[0].shape[a] for a in axes])))
            stack.extend(n.srcs)
        return out

    for t in (x.sum(), x.mean(), x.amax((0, 1), keepdim=True), (x > 1).any(), x.var()):
        lengths = reduce_lengths(t)
        assert lengths and max(lengths) < 2**31, lengths
    assert x.sum((0, 1), keepdim=True).shape == (1, 1)
    assert x.sum().shape == ()
