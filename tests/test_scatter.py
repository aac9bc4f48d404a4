"""Writing by index (tinydl/scatter.py) against torch CPU: scatter / scatter_add / scatter_reduce, index_add /
index_reduce / index_copy / index_fill / index_put, slice_scatter / select_scatter; host and GPU indices, dtypes, negative dims,
indices smaller than self, duplicates, 0-d and empty tensors; torch's errors (same type, same message); both
conversion paths and each ATen overload torch.export produces."""
import re

import numpy as np
import pytest
import torch

import tinydl
from tinydl import schedule
from tinydl.interop import registry
from tinydl.testing import assert_close


DTYPES = {"float32": (np.float32, torch.float32), "float16": (np.float16, torch.float16),
          "int32": (np.int32, torch.int32), "bool": (np.bool_, torch.bool)}


def _values(rng, shape, dtype):
    if dtype == "bool":
        return np.asarray(rng.random(shape) > 0.5)
    if dtype == "int32":
        return np.asarray(rng.integers(-9, 10, shape), np.int32)
    return np.asarray(rng.standard_normal(shape), DTYPES[dtype][0])


def _tol(dtype):
    # float16: torch CPU rounds to half after every addition, tinydl adds in float32 and rounds once
    return dict(rtol=1e-2, atol=1e-2) if dtype == "float16" else dict(rtol=1e-5, atol=1e-5)


def _gpu_or_host(idx: np.ndarray, on_gpu: bool):
    return tinydl.tensor(idx) if on_gpu else idx


def same_error(torch_call, tinydl_call):
    """tinydl raises what torch raises: the same exception type, and torch's message (its first line)."""
    with pytest.raises(Exception) as ref:
        torch_call()
    with pytest.raises(type(ref.value), match=re.escape(str(ref.value).splitlines()[0])):
        tinydl_call()


# -- scatter family ------------------------------------------------------------------------------------------------
# (self shape, index shape, dim): index smaller than self apart from dim, negative dims, one dim, 0-d
SCATTER_CASES = [((5, 4), (3, 4), 0), ((5, 4), (2, 3), 1), ((3, 4, 5), (3, 2, 6), -1), ((3, 4, 5), (2, 7, 3), 1),
                 ((6,), (9,), 0), ((), (), 0), ((4, 3), (0, 3), 0)]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("case", SCATTER_CASES)
@pytest.mark.parametrize("on_gpu", [False, True])
def test_scatter_add_and_overwrite(rng, dtype, case, on_gpu):
    shape, ishape, dim = case
    x, n = _values(rng, shape, dtype), (shape or (1,))[dim]
    src = _values(rng, tuple(s + 1 for s in ishape), dtype)  # src may be larger than index
    idx = np.asarray(rng.integers(0, n, ishape))  # duplicates: more entries than positions along dim
    tx, tsrc, tidx = torch.from_numpy(x), torch.from_numpy(src), torch.from_numpy(idx)
    dx, dsrc, didx = tinydl.tensor(x), tinydl.tensor(src), _gpu_or_host(idx, on_gpu)
    if dtype != "float16":  # torch CPU has no half scatter_add over duplicates that matches a float32 sum exactly
        assert_close(dx.scatter_add(dim, didx, dsrc), tx.scatter_add(dim, tidx, tsrc), **_tol(dtype))
    # overwrite: with duplicates torch's result is unspecified; tinydl keeps the last, as torch CPU's loop does
    assert_close(dx.scatter(dim, didx, dsrc), tx.scatter(dim, tidx, tsrc), rtol=0, atol=0)
    fill = True if dtype == "bool" else 3
    assert_close(tinydl.scatter(dx, dim, didx, value=fill), torch.scatter(tx, dim, tidx, value=fill), rtol=0, atol=0)


def test_scatter_half_sums(rng):
    x = rng.standard_normal((4, 5)).astype(np.float16)
    src = rng.standard_normal((3, 5)).astype(np.float16)
    idx = np.array([[0, 1, 2, 3, 0], [1, 1, 3, 2, 0], [3, 0, 0, 0, 2]])
    ref = torch.from_numpy(x).float().scatter_add(0, torch.from_numpy(idx), torch.from_numpy(src).float()).half()
    assert_close(tinydl.tensor(x).scatter_add(0, idx, tinydl.tensor(src)), ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "int32", "float16"])
def test_scatter_reduce(rng, reduce, include_self, dtype):
    x = _values(rng, (4, 6), dtype)
    src = _values(rng, (5, 6), dtype)
    if dtype == "int32" and reduce == "mean":
        src = src * 7 + 3  # means that do not divide evenly: torch rounds them down
    idx = rng.integers(0, 4, (4, 5))  # positions 4 and 5 get no entry (keep self), the others several
    if dtype == "float16":  # torch's half reductions round at every step: compare with float32 ones, rounded
        ref = torch.from_numpy(x).float().scatter_reduce(1, torch.from_numpy(idx), torch.from_numpy(src).float(),
                                                          reduce, include_self=include_self).half()
    else:
        ref = torch.from_numpy(x).scatter_reduce(1, torch.from_numpy(idx), torch.from_numpy(src), reduce,
                                                 include_self=include_self)
    for on_gpu in (False, True):
        out = tinydl.tensor(x).scatter_reduce(1, _gpu_or_host(idx, on_gpu), tinydl.tensor(src), reduce,
                                              include_self=include_self)
        assert_close(out, ref, **_tol(dtype))


def test_scatter_reduce_nan_and_bool(rng):
    x = np.zeros((2, 3), np.float32)
    src = np.array([[np.nan, 1, 2], [5, -np.inf, 1]], np.float32)
    idx = np.array([[0, 1, 1], [0, 1, 0]])
    for reduce in ("amax", "amin", "sum", "prod"):  # a NaN propagates as in torch
        ref = torch.from_numpy(x).scatter_reduce(0, torch.from_numpy(idx), torch.from_numpy(src), reduce)
        assert_close(tinydl.tensor(x).scatter_reduce(0, idx, tinydl.tensor(src), reduce), ref)
    b, bs = rng.random((3, 4)) > 0.5, rng.random((3, 4)) > 0.5
    bidx = rng.integers(0, 3, (3, 4))
    for reduce in ("sum", "prod", "amax", "amin"):
        ref = torch.from_numpy(b).scatter_reduce(0, torch.from_numpy(bidx), torch.from_numpy(bs), reduce)
        assert_close(tinydl.tensor(b).scatter_reduce(0, bidx, tinydl.tensor(bs), reduce), ref)
    for mode, torch_mode in (("add", "add"), ("multiply", "multiply")):  # torch's deprecated reduce= of scatter
        ref = torch.from_numpy(x + 2).scatter(0, torch.from_numpy(idx), torch.from_numpy(src + 1), reduce=torch_mode)
        assert_close(tinydl.tensor(x + 2).scatter(0, idx, tinydl.tensor(src + 1), reduce=mode), ref)


# -- index_add / index_copy / index_fill ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape,dim,count", [((5, 4), 0, 7), ((3, 6, 2), 1, 4), ((3, 6, 2), -1, 3), ((7,), 0, 2),
                                             ((4, 3), 1, 0)])
@pytest.mark.parametrize("on_gpu", [False, True])
def test_index_add_copy_fill(rng, dtype, shape, dim, count, on_gpu):
    x = _values(rng, shape, dtype)
    n = shape[dim]
    sshape = tuple(count if i == dim % len(shape) else s for i, s in enumerate(shape))
    source = _values(rng, sshape, dtype)
    idx = rng.integers(0, n, count)
    tx, ts, ti = torch.from_numpy(x), torch.from_numpy(source), torch.from_numpy(idx)
    dx, ds, di = tinydl.tensor(x), tinydl.tensor(source), _gpu_or_host(idx, on_gpu)
    if dtype != "float16":
        assert_close(dx.index_add(dim, di, ds), tx.index_add(dim, ti, ts), **_tol(dtype))
        if dtype != "bool":
            assert_close(tinydl.index_add(dx, dim, di, ds, alpha=3), torch.index_add(tx, dim, ti, ts, alpha=3),
                         **_tol(dtype))
    assert_close(dx.index_copy(dim, di, ds), tx.index_copy(dim, ti, ts), rtol=0, atol=0)
    fill = False if dtype == "bool" else -2
    assert_close(dx.index_fill(dim, di, fill), tx.index_fill(dim, ti, fill), rtol=0, atol=0)
    assert_close(dx.index_fill(dim, di, tinydl.tensor(np.array(fill, x.dtype))),
                 tx.index_fill(dim, ti, torch.tensor(fill, dtype=tx.dtype)), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32"])
@pytest.mark.parametrize("reduce", ["prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("shape,dim,count", [((5, 4), 0, 7), ((3, 6, 2), -2, 4), ((7,), 0, 2), ((4, 3), 1, 0)])
@pytest.mark.parametrize("on_gpu", [False, True])
def test_index_reduce(rng, dtype, reduce, include_self, shape, dim, count, on_gpu):
    x = _values(rng, shape, dtype)
    sshape = tuple(count if i == dim % len(shape) else s for i, s in enumerate(shape))
    source = _values(rng, sshape, dtype)
    idx = rng.integers(0, shape[dim], count)  # duplicates, and positions no index names
    ref = torch.from_numpy(x).index_reduce(dim, torch.from_numpy(idx), torch.from_numpy(source), reduce,
                                           include_self=include_self)
    got = tinydl.tensor(x).index_reduce(dim, _gpu_or_host(idx, on_gpu), tinydl.tensor(source), reduce,
                                        include_self=include_self)
    assert_close(got, ref, **_tol(dtype))


def test_index_reduce_nan_zero_d_and_integer_mean():
    x, src = torch.tensor([1.0, 2, 3]), torch.tensor([float("nan"), 5.0, -1.0])
    for reduce in ("amax", "amin", "prod", "mean"):  # NaN propagates as in torch
        assert_close(tinydl.index_reduce(tinydl.tensor(x.numpy()), 0, [0, 0, 2], tinydl.tensor(src.numpy()), reduce),
                     x.index_reduce(0, torch.tensor([0, 0, 2]), src, reduce))
    ints = torch.tensor([0, 3, 4])
    for include_self in (True, False):  # an integer mean rounds down: -5.5 -> -6, -11/3 -> -4
        assert_close(tinydl.tensor(ints.numpy()).index_reduce(0, [0, 0], tinydl.tensor(np.array([-5, -6])), "mean",
                                                              include_self=include_self),
                     ints.index_reduce(0, torch.tensor([0, 0]), torch.tensor([-5, -6]), "mean",
                                       include_self=include_self))
    b, bs = np.array([[True, False], [False, True], [True, True]]), np.array([[False, True], [True, True]])
    for reduce in ("amax", "amin", "prod"):  # bool rows (2-d and up; 1-d bool is refused, as torch)
        assert_close(tinydl.tensor(b).index_reduce(0, [2, 0], tinydl.tensor(bs), reduce),
                     torch.from_numpy(b).index_reduce(0, torch.tensor([2, 0]), torch.from_numpy(bs), reduce))
    assert_close(tinydl.tensor(np.float32(2)).index_reduce(0, [0], tinydl.tensor(np.float32(3)), "prod"),
                 torch.tensor(2.0).index_reduce(0, torch.tensor([0]), torch.tensor(3.0), "prod"))


def test_index_add_scalars():
    x, s = torch.tensor(5.0), torch.tensor(2.0)
    assert_close(tinydl.tensor(5.0).index_add(0, tinydl.tensor(np.array(0)), tinydl.tensor(2.0)),
                 x.index_add(0, torch.tensor(0), s))
    assert_close(tinydl.tensor(np.float32(5)).scatter(0, np.array(0), tinydl.tensor(np.float32(2))),
                 x.scatter(0, torch.tensor(0), s))


# -- index_put: x[indices] = values --------------------------------------------------------------------------------
INDEX_PUT_CASES = [
    lambda x: ((torch.tensor([0, 2, -1]),), torch.randn(3, 4, 5)),            # rows, negative wraps
    lambda x: ((torch.tensor([1, 1, 0]), torch.tensor([2, 2, 3])), torch.randn(3, 5)),  # two dims, duplicates
    lambda x: ((None, torch.tensor([[0], [3]]), torch.tensor([1, 4])), torch.randn(2, 2)),  # adjacent, after a None
    lambda x: ((torch.tensor([0, 1]), None, torch.tensor([4, 0])), torch.randn(2, 4)),      # apart: index dims first
    lambda x: ((x[..., 0] > 0,), torch.tensor(7.0)),                           # a mask, a scalar value
    lambda x: ((torch.tensor(1),), torch.randn(4, 5)),                          # a 0-d index
    lambda x: ((torch.tensor([], dtype=torch.long),), torch.tensor(1.0)),       # nothing written
]


@pytest.mark.parametrize("case", range(len(INDEX_PUT_CASES)))
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("on_gpu", [False, True])
def test_index_put(case, accumulate, on_gpu):
    torch.manual_seed(case)
    x = torch.randn(3, 4, 5)
    indices, values = INDEX_PUT_CASES[case](x)
    if not accumulate and case == 1:
        indices = (torch.tensor([1, 2, 0]), torch.tensor([2, 2, 3]))  # overwrite: distinct positions
    ref = torch.ops.aten.index_put(x, list(indices), values, accumulate)
    tidx = tuple(None if i is None else (tinydl.tensor(i.numpy()) if on_gpu else i) for i in indices)
    out = tinydl.tensor(x.numpy()).index_put(tidx, tinydl.tensor(values.numpy()), accumulate)
    assert_close(out, ref)


def test_index_put_ints_and_duplicates():
    x = torch.arange(12, dtype=torch.int32).reshape(3, 4)
    idx = torch.tensor([0, 2, 0, 0])
    vals = torch.tensor([1, 2, 3, 4], dtype=torch.int32)
    ref = torch.index_put(x, (idx, idx), vals, accumulate=True)  # every duplicate added
    assert_close(tinydl.index_put(tinydl.tensor(x.numpy()), (idx.numpy(), idx.numpy()), tinydl.tensor(vals.numpy()),
                                  accumulate=True), ref)
    out = tinydl.tensor(x.numpy()).index_put((idx, idx), tinydl.tensor(vals.numpy())).numpy()
    assert out[0, 0] == 4 and out[2, 2] == 2  # overwrite: the last duplicate wins


# -- slice_scatter / select_scatter --------------------------------------------------------------------------------
@pytest.mark.parametrize("dim,start,end,step", [(0, 1, 3, 1), (1, None, None, 2), (-1, -4, None, 3), (1, 2, 100, 1),
                                                (2, 0, 5, 4), (0, 3, 1, 1)])
def test_slice_scatter(rng, dim, start, end, step):
    x = rng.standard_normal((4, 6, 5)).astype(np.float32)
    target = torch.from_numpy(x)[(slice(None),) * (dim % 3) + (slice(start, end, step),)]
    src = rng.standard_normal(tuple(target.shape)).astype(np.float32)
    ref = torch.slice_scatter(torch.from_numpy(x), torch.from_numpy(src), dim, start, end, step)
    assert_close(tinydl.tensor(x).slice_scatter(tinydl.tensor(src), dim, start, end, step), ref, rtol=0, atol=0)


@pytest.mark.parametrize("dim,index", [(0, 2), (1, -1), (-1, 0)])
def test_select_scatter(rng, dim, index):
    x = rng.integers(-5, 5, (3, 4, 2)).astype(np.int32)
    src = rng.integers(-5, 5, torch.from_numpy(x).select(dim, index).shape).astype(np.int32)
    ref = torch.select_scatter(torch.from_numpy(x), torch.from_numpy(src), dim, index)
    assert_close(tinydl.select_scatter(tinydl.tensor(x), tinydl.tensor(src), dim, index), ref, rtol=0, atol=0)


# -- errors --------------------------------------------------------------------------------------------------------
def _pair(a):
    return torch.from_numpy(a), tinydl.tensor(a)


def test_errors_match_torch():
    (tx, dx), (ts, ds) = _pair(np.zeros((3, 4), np.float32)), _pair(np.ones((2, 4), np.float32))
    i, ti = np.array([[0, 1, 2, 0]]), torch.tensor([[0, 1, 2, 0]])
    cases = [
        (lambda: tx.scatter(0, torch.tensor([[5, 0, 0, 0]]), ts), lambda: dx.scatter(0, np.array([[5, 0, 0, 0]]), ds)),
        (lambda: tx.scatter(0, torch.tensor([[-1, 0, 0, 0]]), ts),
         lambda: dx.scatter(0, np.array([[-1, 0, 0, 0]]), ds)),
        (lambda: tx.scatter(0, ti.float(), ts), lambda: dx.scatter(0, tinydl.tensor(i).float(), ds)),
        (lambda: tx.scatter(0, ti, ts.int()), lambda: dx.scatter(0, i, ds.int())),
        (lambda: tx.scatter(2, ti, ts), lambda: dx.scatter(2, i, ds)),
        (lambda: tx.scatter(0, torch.zeros(1, 5, dtype=torch.long), torch.ones(1, 5)),
         lambda: dx.scatter(0, np.zeros((1, 5), np.int64), tinydl.ones(1, 5))),
        (lambda: tx.scatter(0, ti, torch.ones(1, 3)), lambda: dx.scatter(0, i, tinydl.ones(1, 3))),
        (lambda: tx.scatter(0, torch.zeros(4, dtype=torch.long), torch.ones(4)),
         lambda: dx.scatter(0, np.zeros(4, np.int64), tinydl.ones(4))),
        (lambda: tx.scatter(0, ti, ts[:1], reduce="mean"), lambda: dx.scatter(0, i, ds[:1], reduce="mean")),
        (lambda: tx.scatter_add(0, ti.float(), ts), lambda: dx.scatter_add(0, i.astype(np.float32), ds)),
        (lambda: tx.scatter_reduce(0, ti, ts, "foo"), lambda: dx.scatter_reduce(0, i, ds, "foo")),
        (lambda: tx.bool().scatter_reduce(0, ti, ts.bool(), "mean"),
         lambda: dx.bool().scatter_reduce(0, i, ds.bool(), "mean")),
        (lambda: tx.index_add(0, torch.tensor([-1, 0]), ts), lambda: dx.index_add(0, [-1, 0], ds)),
        (lambda: tx.index_add(0, torch.tensor([3, 0]), ts), lambda: dx.index_add(0, [3, 0], ds)),
        (lambda: tx.index_add(0, torch.tensor([0, 0]), torch.ones(3, 4)), lambda: dx.index_add(0, [0, 0],
                                                                                               tinydl.ones(3, 4))),
        (lambda: tx.index_add(0, torch.tensor([0, 0]), torch.ones(2, 5)), lambda: dx.index_add(0, [0, 0],
                                                                                               tinydl.ones(2, 5))),
        (lambda: tx.index_add(0, torch.tensor([[0, 0]]), ts), lambda: dx.index_add(0, [[0, 0]], ds)),
        (lambda: tx.index_add(0, torch.tensor([0, 0]), ts.long()), lambda: dx.index_add(0, [0, 0], ds.long())),
        (lambda: tx.index_add(0, torch.tensor([0., 0]), ts), lambda: dx.index_add(0, np.zeros(2, np.float32), ds)),
        (lambda: tx.index_reduce(0, torch.tensor([0, 0]), ts, "sum"), lambda: dx.index_reduce(0, [0, 0], ds, "sum")),
        (lambda: tx.index_reduce(0, torch.tensor([0, 0]), ts.long(), "prod"),
         lambda: dx.index_reduce(0, [0, 0], ds.to(tinydl.int32), "prod")),
        (lambda: tx.index_reduce(0, torch.tensor([0., 0]), ts, "amax"),
         lambda: dx.index_reduce(0, np.zeros(2, np.float32), ds, "amax")),
        (lambda: tx.index_reduce(0, torch.tensor([-1, 0]), ts, "amax"), lambda: dx.index_reduce(0, [-1, 0], ds, "amax")),
        (lambda: tx.index_reduce(0, torch.tensor([3, 0]), ts, "amin"), lambda: dx.index_reduce(0, [3, 0], ds, "amin")),
        (lambda: tx.index_reduce(0, torch.tensor([[0, 0]]), ts, "prod"), lambda: dx.index_reduce(0, [[0, 0]], ds, "prod")),
        (lambda: tx.index_reduce(0, torch.tensor([0]), ts, "prod"), lambda: dx.index_reduce(0, [0], ds, "prod")),
        (lambda: tx[0].bool().index_reduce(0, torch.tensor([0, 0]), ts[0, :2].bool(), "amax"),
         lambda: dx[0].bool().index_reduce(0, [0, 0], ds[0, :2].bool(), "amax")),
        (lambda: tx.bool().index_reduce(0, torch.tensor([0, 0]), ts.bool(), "mean"),
         lambda: dx.bool().index_reduce(0, [0, 0], ds.bool(), "mean")),
        (lambda: torch.tensor(1.0).index_reduce(0, torch.tensor([0]), torch.ones(1), "prod"),
         lambda: tinydl.tensor(np.float32(1)).index_reduce(0, [0], tinydl.ones(1), "prod")),
        (lambda: torch.tensor(1.0).index_add(0, torch.tensor([0]), torch.ones(1)),
         lambda: tinydl.tensor(np.float32(1)).index_add(0, [0], tinydl.ones(1))),
        (lambda: tx.index_copy(0, torch.tensor([3, 0]), ts), lambda: dx.index_copy(0, [3, 0], ds)),
        (lambda: tx.index_copy(0, torch.tensor([-1, 0]), ts), lambda: dx.index_copy(0, [-1, 0], ds)),
        (lambda: tx.index_copy(0, torch.tensor([0., 0]), ts), lambda: dx.index_copy(0, np.zeros(2, np.float32), ds)),
        (lambda: tx.index_put((torch.tensor([0, 3]),), torch.ones(4)), lambda: dx.index_put(([0, 3],), tinydl.ones(4))),
        (lambda: tx.index_put((torch.tensor([0., 0]),), torch.ones(4)),
         lambda: dx.index_put((np.zeros(2, np.float32),), tinydl.ones(4))),
        (lambda: tx.index_put((torch.tensor([0, 0]),), torch.ones(3)), lambda: dx.index_put(([0, 0],), tinydl.ones(3))),
        (lambda: tx.index_put((torch.tensor([0, 0]),), torch.ones(4).int()),
         lambda: dx.index_put(([0, 0],), tinydl.ones(4).int())),
        (lambda: tx.index_put((torch.tensor([0, 1]),) * 3, torch.ones(2)),
         lambda: dx.index_put(([0, 1],) * 3, tinydl.ones(2))),
        (lambda: tx.index_fill(0, torch.tensor([3]), 1.0), lambda: dx.index_fill(0, [3], 1.0)),
        (lambda: torch.slice_scatter(tx, ts, 0, 1, 2), lambda: tinydl.slice_scatter(dx, ds, 0, 1, 2)),
        (lambda: torch.select_scatter(tx, torch.ones(4), 0, 3),
         lambda: tinydl.select_scatter(dx, tinydl.ones(4), 0, 3)),
        (lambda: torch.select_scatter(tx, torch.ones(3), 0, 0),
         lambda: tinydl.select_scatter(dx, tinydl.ones(3), 0, 0)),
        (lambda: tx.index_fill(0, torch.tensor([-4]), 1.0), lambda: dx.index_fill(0, [-4], 1.0)),
    ]
    for torch_call, tinydl_call in cases:
        same_error(torch_call, tinydl_call)


def test_gpu_index_out_of_range_raises_at_read():
    x = tinydl.zeros(3, 4)
    bad = tinydl.tensor(np.array([[0, 5, 1, 0]]))
    for out in (x.scatter_add(0, bad, tinydl.ones(1, 4)), x.index_add(0, tinydl.tensor(np.array([3])),
                                                                      tinydl.ones(1, 4)),
                x.index_put((tinydl.tensor(np.array([-4])),), tinydl.tensor(1.0))):
        with pytest.raises(IndexError, match="index out of range"):
            out.numpy()
    with pytest.raises(IndexError, match="index is out of bounds for dimension with size 0"):
        tinydl.zeros(0, 4).scatter(0, tinydl.tensor(np.zeros((1, 4), np.int64)), tinydl.ones(1, 4))  # no output to check
    ok = x.index_put((tinydl.tensor(np.array([-3])),), tinydl.tensor(1.0))  # -3 wraps to row 0
    assert ok.numpy()[0].tolist() == [1.0] * 4


@pytest.mark.parametrize("op", ["index_add", "index_copy", "scatter_reduce_amax", "index_put_out_of_range"])
def test_work_past_the_bound_reads_the_indices_back(op):
    """GPU indices compare every output with every index entry of its line, up to Options.scatter_max_work; past it
    the indices are read back (checked as on the GPU) and sorted on the host: same values as torch, no refusal."""
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 40, 64)
    src = rng.standard_normal((64, 3)).astype(np.float32)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    idx = tinydl.tensor(rows)
    assert 40 * 64 * 3 > 1000  # the comparisons this takes, past the bound below
    with tinydl.options(scatter_max_work=1000):
        reads = schedule.HOST_READS
        if op == "index_add":
            out, ref = tinydl.tensor(x).index_add(0, idx, tinydl.tensor(src)), \
                torch.from_numpy(x).index_add(0, torch.from_numpy(rows), torch.from_numpy(src))
        elif op == "index_copy":  # duplicates: the last one along the dim, as torch CPU
            out, ref = tinydl.tensor(x).index_copy(0, idx, tinydl.tensor(src)), \
                torch.from_numpy(x).index_copy(0, torch.from_numpy(rows), torch.from_numpy(src))
        elif op == "scatter_reduce_amax":
            index = np.broadcast_to(rows[:, None], (64, 3)).copy()
            out = tinydl.tensor(x).scatter_reduce(0, tinydl.tensor(index), tinydl.tensor(src), "amax")
            ref = torch.from_numpy(x).scatter_reduce(0, torch.from_numpy(index), torch.from_numpy(src), "amax")
        else:
            bad = rows.copy()
            bad[5] = 40
            with pytest.raises(IndexError, match="index out of range"):
                tinydl.tensor(x).index_add(0, tinydl.tensor(bad), tinydl.tensor(src)).numpy()
            return
        assert schedule.HOST_READS == reads + 1  # the indices, read back
        assert_close(out, ref)


def test_scatter_without_src_or_value():
    with pytest.raises(TypeError, match="either a src tensor or a value"):
        tinydl.zeros(3).scatter(0, [0])
    with pytest.raises(TypeError, match="argument 'src' must be Tensor"):
        tinydl.zeros(3).scatter_reduce(0, [0], 1.0, "sum")


# -- conversion: fx and torch.export -------------------------------------------------------------------------------
class Scatters(torch.nn.Module):
    def __init__(self, traceable):
        super().__init__()
        self.traceable = traceable

    def forward(self, x):
        if not self.traceable:
            for _ in range(x.shape[0]):  # fx cannot trace this loop; torch.export can
                pass
        idx = (torch.arange(12).reshape(3, 4) * 7) % 5
        rows = torch.tensor([2, 0, 2])
        a = x.scatter(1, idx, x[:, :4] * 2) + x.scatter(1, idx, 1.5) + x.scatter_add(1, idx, x[:, :4])
        b = x.scatter_reduce(1, idx, x[:, :4], "amax", include_self=False) + torch.scatter_reduce(
            x, 1, idx, x[:, 4:], "mean") + x.scatter(1, idx, x[:, :4], reduce="multiply")
        c = x.index_add(0, rows, x, alpha=2) + torch.index_copy(x, 0, rows[:2], x[:2] * 3) + x.index_fill(1, rows, -1.0)
        d = x.index_put((rows, rows), x[0, :3], accumulate=True) + torch.index_put(x, (rows,), x[1])
        e = torch.slice_scatter(x, x[:, :2] * 5, 1, 1, 5, 2) + torch.select_scatter(x, x[0] + 1, 0, 1)
        return a + b + c + d + e


class InPlace(torch.nn.Module):
    """In-place writes, which torch.export turns into index_put / scatter / index_add (fx cannot run them)."""

    def forward(self, x, rows):
        y = x.clone()
        y[rows] = 5.0
        y[:, rows] += 1.0
        y.scatter_(1, rows[None].expand(3, -1), -2.0)
        y.index_add_(0, rows, x[:2])
        y[y > 4] = 0.0
        return y


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_conversion_on_both_paths(rng, path):
    x = torch.from_numpy(rng.standard_normal((3, 8)).astype(np.float32))
    m = Scatters(path == "fx").eval()
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == path
    assert_close(tm(tinydl.tensor(x.numpy())), m(x))


def test_in_place_writes_convert_through_export(rng):
    x = torch.from_numpy(rng.standard_normal((3, 6)).astype(np.float32)) * 3
    rows = torch.tensor([2, 0])
    m = InPlace().eval()
    tm = tinydl.from_torch(m, example_inputs=(x, rows))
    assert tm.conversion_path == "torch.export"
    assert_close(tm(tinydl.tensor(x.numpy()), tinydl.tensor(rows.numpy())), m(x, rows))


def test_aten_overloads(rng):
    x = torch.from_numpy(rng.standard_normal((4, 5)).astype(np.float32))
    idx = torch.from_numpy(rng.integers(0, 5, (3, 5)))
    rows = torch.tensor([3, 1, 3])
    calls = [
        ("aten.scatter.src", torch.ops.aten.scatter.src, (x, 1, idx, x[:3] * 2), {}),
        ("aten.scatter.value", torch.ops.aten.scatter.value, (x, 1, idx, 2.5), {}),
        ("aten.scatter.reduce", torch.ops.aten.scatter.reduce, (x, 1, idx, x[:3]), {"reduce": "add"}),
        ("aten.scatter.value_reduce", torch.ops.aten.scatter.value_reduce, (x, 1, idx, 3.0), {"reduce": "multiply"}),
        ("aten.scatter_add.default", torch.ops.aten.scatter_add.default, (x, 0, idx % 4, x[:3]), {}),
        ("aten.scatter_reduce.two", torch.ops.aten.scatter_reduce.two, (x, 1, idx, x[:3], "amin"),
         {"include_self": False}),
        ("aten.index_add.default", torch.ops.aten.index_add.default, (x, 0, rows, x[:3]), {"alpha": -2}),
        ("aten.index_reduce.default", torch.ops.aten.index_reduce.default, (x, 0, rows, x[:3] * 3, "amax"),
         {"include_self": False}),
        ("aten.index_copy.default", torch.ops.aten.index_copy.default, (x, 0, rows[:2], x[:2] * 4), {}),
        ("aten.index_fill.int_Scalar", torch.ops.aten.index_fill.int_Scalar, (x, 1, rows, 9.0), {}),
        ("aten.index_fill.int_Tensor", torch.ops.aten.index_fill.int_Tensor, (x, 1, rows, torch.tensor(9.0)), {}),
        ("aten.index_put.default", torch.ops.aten.index_put.default, (x, [None, rows], x[:, :1], True), {}),
        ("aten.slice_scatter.default", torch.ops.aten.slice_scatter.default, (x, x[:, 1:4] * 2, 1, 1, 4), {}),
        ("aten.select_scatter.default", torch.ops.aten.select_scatter.default, (x, x[1] * 2, 0, -1), {}),
    ]
    to_td = lambda a: tinydl.tensor(a.numpy()) if isinstance(a, torch.Tensor) else (  # noqa: E731
        [to_td(v) for v in a] if isinstance(a, list) else a)
    for name, fn, args, kwargs in calls:
        out = registry.lookup(name)(*(to_td(a) for a in args), **kwargs)
        assert_close(out, fn(*args, **kwargs))


# -- diagonal_scatter / masked_scatter ------------------------------------------------------------------------
@pytest.mark.parametrize("offset", [-3, -1, 0, 1, 4])
@pytest.mark.parametrize("dims", [(0, 1), (1, 2), (2, 0), (-1, -3)])
def test_diagonal_scatter_matches_torch(rng, offset, dims):
    x = torch.from_numpy(rng.standard_normal((3, 4, 5)).astype(np.float32))
    src = torch.from_numpy(rng.standard_normal(x.diagonal(offset, *dims).shape).astype(np.float32))
    got = tinydl.diagonal_scatter(tinydl.tensor(x.numpy()), tinydl.tensor(src.numpy()), offset, *dims)
    np.testing.assert_array_equal(got.numpy(), torch.diagonal_scatter(x, src, offset, *dims).numpy())
    got = tinydl.tensor(x.numpy()).diagonal_scatter(tinydl.tensor(src.numpy()), offset, *dims)
    np.testing.assert_array_equal(got.numpy(), torch.diagonal_scatter(x, src, offset, *dims).numpy())


def test_diagonal_scatter_of_a_wrong_size_is_torchs_error():
    with pytest.raises(RuntimeError, match=r"expected src to have a size equal to the slice of self. src size = \[3\], "
                                           r"slice size = \[2\]"):
        tinydl.diagonal_scatter(tinydl.tensor(np.zeros((3, 4), np.float32)), tinydl.tensor(np.ones(3, np.float32)), 2)


@pytest.mark.parametrize("mask_shape", [(3, 4, 5), (4, 1), (5,)])
@pytest.mark.parametrize("spare", [0, 7])
def test_masked_scatter_matches_torch(rng, mask_shape, spare):
    """Source elements fill the True places in row-major order (mask broadcast to the input), exactly enough of
    them or more."""
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    mask = rng.random(mask_shape) > 0.4
    count = int(np.broadcast_to(mask, x.shape).sum())
    src = rng.standard_normal(count + spare).astype(np.float32)
    got = tinydl.tensor(x).masked_scatter(tinydl.tensor(mask), tinydl.tensor(src))
    want = torch.from_numpy(x).masked_scatter(torch.from_numpy(mask), torch.from_numpy(src))
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("make,message", [
    (lambda x, m, s: tinydl.masked_scatter(x, m, s[:-1]), "Number of elements of source < number of ones in mask"),
    (lambda x, m, s: tinydl.masked_scatter(x, m.int(), s), "masked_scatter_ only supports boolean masks, but got "
                                                           "mask with dtype Long"),
    (lambda x, m, s: tinydl.masked_scatter(x.int(), m, s), "masked_scatter: expected self and source to have same "
                                                           "dtypes but gotLong and Float"),
])
def test_masked_scatter_errors_are_torchs(make, message):
    x = tinydl.tensor(np.zeros(4, np.float32))
    m = tinydl.tensor(np.array([True, False, True, True]))
    with pytest.raises(RuntimeError, match=message):
        make(x, m, tinydl.tensor(np.arange(3, dtype=np.float32)))
