"""sort / argsort / msort / topk / kthvalue (tinydl/sorting.py, kernels/sort.py) against torch CPU: values and
indices (stable: equal elements keep their order, as torch's stable sort; NaN above +inf), every dim, dtypes,
rows sorted whole and long rows' first k by radix select; torch's errors; both conversion paths."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl.kernels import sort as sort_kernel


def distinct(rng, shape) -> np.ndarray:
    """Distinct float32 values (indices are then unique: equal to torch's whatever its tie order)."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.37 - 11.0).astype(np.float32)


def same(got, ref):
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())


@pytest.mark.parametrize("shape,dim", [((3, 7), -1), ((4, 300, 5), 1), ((2, 2048), 1), ((1000,), 0),
                                       ((2, 3, 4), 0), ((1, 1), 0), ((5, 1), 1)])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_matches_torch(rng, shape, dim, descending):
    a = distinct(rng, shape)
    got = tinydl.sort(tinydl.tensor(a), dim, descending)
    same(got, torch.sort(torch.from_numpy(a), dim=dim, descending=descending))
    np.testing.assert_array_equal(tinydl.tensor(a).argsort(dim, descending).numpy(), got.indices.numpy())


@pytest.mark.parametrize("shape,dim,k", [((3, 7), -1, 3), ((4, 300, 5), 1, 17), ((2, 2048), 1, 2048),
                                         ((2, 3, 4), 0, 2), ((3, 5000), 1, 10), ((2, 70000), 1, 1024),
                                         ((3, 3001), -1, 1), ((2, 4099, 2), 1, 333)])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_torch(rng, shape, dim, k, largest):
    """Rows of up to SORT_MAX sort whole; longer ones (5000, 70000, ...) take the radix-select form."""
    a = distinct(rng, shape)
    same(tinydl.tensor(a).topk(k, dim, largest), torch.topk(torch.from_numpy(a), k, dim, largest))


def test_ties_keep_their_order_and_nan_sorts_last(rng):
    a = rng.integers(-3, 4, (6, 50)).astype(np.float32)
    a[0, [3, 9]] = np.nan
    a[1, 5] = np.inf
    a[2, 7] = -np.inf
    a[3, :10] = -0.0  # -0 equals 0: a tie
    t = torch.from_numpy(a)
    for descending in (False, True):
        same(tinydl.sort(tinydl.tensor(a), 1, descending), torch.sort(t, dim=1, descending=descending, stable=True))
    # long rows: the radix-select form keeps ties too (the lowest indices first)
    b = rng.integers(0, 5, (2, 9000)).astype(np.float32)
    got = tinydl.topk(tinydl.tensor(b), 700)
    ref = torch.sort(torch.from_numpy(b), dim=1, descending=True, stable=True)
    np.testing.assert_array_equal(got.values.numpy(), ref.values[:, :700].numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices[:, :700].numpy())


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.float16])
def test_dtypes(rng, dtype):
    a = rng.integers(-1000, 1000, (4, 33)).astype(dtype)
    t = torch.from_numpy(a)
    got = tinydl.sort(tinydl.tensor(a), descending=True)
    ref = torch.sort(t, descending=True, stable=True)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy().astype(got.values.numpy().dtype))
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())


def test_kthvalue_and_msort(rng):
    a = distinct(rng, (4, 9, 3))
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    for k, dim, keepdim in [(1, 1, False), (9, 1, True), (2, 0, False), (3, -1, True)]:
        same(x.kthvalue(k, dim, keepdim), torch.kthvalue(t, k, dim, keepdim))
    np.testing.assert_array_equal(tinydl.msort(x).numpy(), torch.msort(t).numpy())


def test_scalars_and_empty():
    same(tinydl.topk(tinydl.tensor(3.0), 1), torch.topk(torch.tensor(3.0), 1))
    same(tinydl.sort(tinydl.tensor(3.0)), torch.sort(torch.tensor(3.0)))
    got = tinydl.topk(tinydl.zeros((3, 4)), 0)
    assert got.values.shape == (3, 0) and got.indices.shape == (3, 0)
    assert tinydl.sort(tinydl.zeros((0, 5)), 1).values.shape == (0, 5)


def test_errors():
    x = tinydl.zeros(5)
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        tinydl.topk(x, 6)
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        x.topk(-1)
    with pytest.raises(RuntimeError, match=r"kthvalue\(\): selected number k out of range for dimension 0"):
        x.kthvalue(0)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-1, 0\], but got 2\)"):
        tinydl.sort(x, 2)
    with pytest.raises(TypeError, match="argument 'k' must be int"):
        x.topk(2.0)


@pytest.mark.parametrize("n", [sort_kernel.SORT_MAX + 1, 2533, 5000])
def test_rows_longer_than_the_kernel_sorts_are_ordered_on_the_host(rng, n):
    """A sort (or a topk / kthvalue of more than TOPK_MAX) of rows longer than SORT_MAX: read back and ordered on
    the host, in torch's stable order (NaN above +inf; ties in index order), the values gathered on the GPU."""
    x = rng.standard_normal((3, n)).astype(np.float32)
    x[0, ::7], x[1, ::5], x[1, 1::9], x[2] = np.nan, np.inf, -np.inf, np.round(x[2])
    t = torch.from_numpy(x)
    for descending in (False, True):
        values, indices = tinydl.sort(tinydl.tensor(x), dim=-1, descending=descending)
        want = torch.sort(t, dim=-1, descending=descending, stable=True)
        np.testing.assert_array_equal(indices.numpy(), want.indices.numpy())
        np.testing.assert_array_equal(values.numpy(), want.values.numpy())
    k = sort_kernel.TOPK_MAX + 1
    np.testing.assert_array_equal(tinydl.tensor(x).topk(k).values.numpy(), t.topk(k).values.numpy())
    np.testing.assert_array_equal(tinydl.tensor(x.T.copy()).kthvalue(k, dim=0).values.numpy(),
                                  t.T.kthvalue(k, dim=0).values.numpy())
    ints = rng.integers(-5, 5, (2, n)).astype(np.int32)
    for descending in (False, True):
        np.testing.assert_array_equal(tinydl.argsort(tinydl.tensor(ints), descending=descending).numpy(),
                                      torch.sort(torch.from_numpy(ints), descending=descending, stable=True).indices)


def test_kernels_per_call(rng):
    """One sort kernel, one gather of the values (two outputs: two kernels); indices alone: one."""
    x = tinydl.tensor(distinct(rng, (8, 100))).realize()
    with tinydl.debug.count_kernels() as c:
        tinydl.realize(*tinydl.topk(x, 5))
    assert len(c.names) == 2 and sum(n.startswith("sort") for n in c.names) == 1, c.names
    with tinydl.debug.count_kernels() as c:
        x.argsort().realize()
    assert len(c.names) == 1 and c.names[0].startswith("sort"), c.names


class Sorts(torch.nn.Module):
    def __init__(self, traceable):
        super().__init__()
        self.traceable = traceable

    def forward(self, x):
        if not self.traceable:
            for _ in range(x.shape[0]):  # a loop over a size: fx cannot trace it, torch.export can
                pass
        top = torch.topk(x, 3, dim=1)
        ordered = torch.sort(x, dim=0, descending=True, stable=True)
        kth = x.kthvalue(2, 1, keepdim=True)
        return (top.values * 2, top.indices, ordered.values, torch.argsort(x, dim=-1), kth.values,
                x.sort().indices, torch.msort(x))


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_conversion_paths(rng, path):
    a = distinct(rng, (4, 6))
    m = Sorts(path == "fx").eval()
    tm = tinydl.from_torch(m, example_inputs=(torch.from_numpy(a),))
    assert tm.conversion_path == path
    outs = tm(tinydl.tensor(a))
    for got, ref in zip(outs, m(torch.from_numpy(a)), strict=True):
        np.testing.assert_array_equal(got.numpy(), ref.numpy())


@pytest.mark.parametrize("n,k", [(70000, 1024), (400000, 1024), (2048, 2048)])
def test_loop_trips_within_the_bound(n, k):
    """The kernel's trips as counted from its WGSL stay within trips() (ops.MAX_TRIPS bounds it; rows past it are
    refused above)."""
    from tinydl.ops import MAX_TRIPS

    from test_big_reductions import loop_trips
    (wgsl,) = tinydl.schedule.shaders_for(tinydl.topk(tinydl.zeros((1, n)), k).indices)
    assert loop_trips(wgsl) <= sort_kernel.trips(n, k) <= MAX_TRIPS
    assert sort_kernel.trips(2_000_000, 10) is None


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_unique_as_torch(dim):
    x = torch.tensor([[3, 1, 3, 0], [3, 1, 3, 0], [2, 2, 7, 0]]).to(torch.float32)
    for inverse in (False, True):
        for counts in (False, True):
            want = torch.unique(x, return_inverse=inverse, return_counts=counts, dim=dim)
            got = tinydl.unique(tinydl.tensor(x.numpy()), return_inverse=inverse, return_counts=counts, dim=dim)
            want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
            assert len(got) == len(want)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g.numpy(), w.numpy())
    assert tinydl.tensor(x.numpy()).int().unique().dtype == tinydl.int32


# -- median, searchsorted --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((3, 7, 5), 0), ((3, 7, 5), 1), ((3, 7, 5), -1), ((4, 300), 1), ((6,), 0)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_median_along_a_dim_matches_torch(rng, shape, dim, keepdim):
    """The lower middle value and its index (distinct values: the index is unique); a row with NaN gives NaN and
    its first NaN's index, as torch."""
    x = distinct(rng, shape)
    if len(shape) > 1:
        x[(1,) * (len(shape) - 1) + (2,)] = np.nan
    same(tinydl.tensor(x).median(dim, keepdim), torch.from_numpy(x).median(dim, keepdim))
    same(tinydl.median(tinydl.tensor(x), dim=dim, keepdim=keepdim), torch.median(torch.from_numpy(x), dim, keepdim))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32])
def test_median_of_all_elements(rng, dtype):
    x = rng.integers(-50, 50, (5, 8)).astype(dtype)
    assert tinydl.tensor(x).median().item() == torch.from_numpy(x).median().item()
    assert np.isnan(tinydl.median(tinydl.tensor(np.array([1.0, np.nan, 0.0], np.float32))).item())
    assert np.isnan(tinydl.median(tinydl.tensor(np.zeros((0,), np.float32))).item())  # torch: nan


def test_median_errors_are_torchs():
    with pytest.raises(IndexError, match=r"median\(\): Expected reduction dim 1 to have non-zero size."):
        tinydl.tensor(np.zeros((2, 0), np.float32)).median(1)
    with pytest.raises(NotImplementedError, match="\"median_cpu\" not implemented for 'Bool'"):
        tinydl.tensor(np.array([True, False])).median()
    with pytest.raises(IndexError):
        tinydl.tensor(np.zeros((2, 3), np.float32)).median(2)


@pytest.mark.parametrize("right", [False, True])
def test_searchsorted_in_one_sorted_row(rng, right):
    """Values between, equal to (repeated) and beyond the boundaries, NaN and infinities: torch's binary search,
    so each lands where torch puts it; a Python number gives a 0-d result."""
    seq = np.sort(rng.standard_normal(37).astype(np.float32))
    seq[5] = seq[6]
    v = np.concatenate([rng.standard_normal((50,)), seq[:10], [np.nan, np.inf, -np.inf]]).astype(np.float32)
    got = tinydl.searchsorted(tinydl.tensor(seq), tinydl.tensor(v.reshape(7, 9)), right=right)
    want = torch.searchsorted(torch.from_numpy(seq), torch.from_numpy(v.reshape(7, 9)), right=right)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    got0 = tinydl.searchsorted(tinydl.tensor(seq), float(seq[3]), side="right" if right else "left")
    assert got0.shape == () and got0.item() == torch.searchsorted(torch.from_numpy(seq), float(seq[3]),
                                                                  right=right).item()


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_per_row_with_a_sorter_and_nan_boundaries(rng, side):
    seq = np.sort(rng.standard_normal((3, 4, 9)).astype(np.float32), -1)
    seq[0, 0, -1] = np.nan  # torch sorts NaN last; its search's comparisons decide where values land
    v = rng.standard_normal((3, 4, 6)).astype(np.float32)
    got = tinydl.searchsorted(tinydl.tensor(seq), tinydl.tensor(v), side=side)
    np.testing.assert_array_equal(got.numpy(), torch.searchsorted(torch.from_numpy(seq), torch.from_numpy(v),
                                                                  side=side).numpy())
    unsorted = rng.standard_normal(20).astype(np.float32)
    order = np.argsort(unsorted)
    got = tinydl.searchsorted(tinydl.tensor(unsorted), tinydl.tensor(v), side=side,
                              sorter=tinydl.tensor(order.astype(np.int32)))
    want = torch.searchsorted(torch.from_numpy(unsorted), torch.from_numpy(v), side=side,
                              sorter=torch.from_numpy(order))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    ints = tinydl.searchsorted(tinydl.tensor(np.arange(5, dtype=np.int32)), tinydl.tensor(np.array([1.5, 3.0],
                                                                                                   np.float32)))
    assert ints.numpy().tolist() == [2, 3]  # the common type of int boundaries and float values


@pytest.mark.parametrize("call,message", [
    (lambda s, v: tinydl.searchsorted(s, v, side="middle"),
     r"torch.searchsorted\(\): side can only be 'left' or 'right' but got middle"),
    (lambda s, v: tinydl.searchsorted(s, v, side="left", right=True),
     r"torch.searchsorted\(\): side and right can't be set to opposites, got side of left while right was True"),
    (lambda s, v: tinydl.searchsorted(s.reshape(2, 2), v),
     r"boundaries tensor should be 1 dimension or the first N-1 dimensions of boundaries tensor and input value "
     r"tensor must match, but we got boundaries tensor \[2, 2\] and input value tensor \[3\]"),
])
def test_searchsorted_errors_are_torchs(call, message):
    s, v = tinydl.tensor(np.arange(4, dtype=np.float32)), tinydl.tensor(np.ones(3, np.float32))
    with pytest.raises(RuntimeError, match=message):
        call(s, v)


@pytest.mark.parametrize("right", [False, True])
def test_bucketize(rng, right):
    bounds = np.array([-1.0, 0.0, 0.0, 0.5, 2.0], np.float32)
    v = np.concatenate([rng.standard_normal(40), bounds, [np.nan, np.inf, -np.inf]]).astype(np.float32).reshape(6, 8)
    got = tinydl.bucketize(tinydl.tensor(v), tinydl.tensor(bounds), right=right)
    want = torch.bucketize(torch.from_numpy(v), torch.from_numpy(bounds), right=right)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert tinydl.bucketize(0.25, tinydl.tensor(bounds)).item() == torch.bucketize(0.25, torch.from_numpy(bounds)).item()
    for bad, dim in ((tinydl.tensor(bounds).reshape(5, 1), 2), (tinydl.tensor(np.float32(1)), 0)):
        with pytest.raises(RuntimeError, match=rf"boundaries tensor must be 1 dimension, but got dim\({dim}\)"):
            tinydl.bucketize(tinydl.tensor(v), bad)


@pytest.mark.parametrize("test_size", [3, 3000])  # compared one by one, and sorted and searched
@pytest.mark.parametrize("invert", [False, True])
def test_isin(rng, test_size, invert):
    test = rng.integers(-2000, 2000, test_size).astype(np.float32)
    test[0], test[1] = np.nan, -0.0
    x = np.concatenate([rng.integers(-2000, 2000, 64), np.resize(test[2:], 10), [np.nan, 0.0, 7.5]]).astype(np.float32)
    got = tinydl.isin(tinydl.tensor(x.reshape(7, 11)), tinydl.tensor(test), invert=invert)
    want = torch.isin(torch.from_numpy(x.reshape(7, 11)), torch.from_numpy(test), invert=invert)
    np.testing.assert_array_equal(got.numpy(), want.numpy())  # NaN equals nothing, 0.0 equals -0.0
    ints, floats = np.array([1, 2, 3], np.int32), np.array([2.0, 2.5], np.float32)
    np.testing.assert_array_equal(tinydl.isin(tinydl.tensor(ints), tinydl.tensor(floats)).numpy(),
                                  torch.isin(torch.from_numpy(ints), torch.from_numpy(floats)).numpy())
    assert tinydl.isin(tinydl.tensor(ints), 3).numpy().tolist() == [False, False, True]


def test_inner_and_ravel(rng):
    a, b = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(tinydl.inner(tinydl.tensor(a), tinydl.tensor(b)).numpy(),
                               torch.inner(torch.from_numpy(a), torch.from_numpy(b)).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tinydl.tensor(np.float32(2)).inner(tinydl.tensor(b)).numpy(), 2 * b)
    with pytest.raises(RuntimeError, match=r"inner\(\) the last dimension must match on both input tensors but got "
                                           r"shapes \[2, 3, 4\] and \[3\]"):
        tinydl.inner(tinydl.tensor(a), tinydl.tensor(np.ones(3, np.float32)))
    t = tinydl.tensor(a).permute(2, 0, 1)
    np.testing.assert_array_equal(tinydl.ravel(t).numpy(), a.transpose(2, 0, 1).ravel())
    np.testing.assert_array_equal(t.ravel().numpy(), a.transpose(2, 0, 1).ravel())


def test_bucketize_and_isin_convert(rng):
    class Buckets(torch.nn.Module):
        def forward(self, x, bounds, ids):
            return torch.bucketize(x, bounds), torch.isin(ids, torch.tensor([3, 5, 7]))

    x, bounds = torch.randn(4, 5), torch.tensor([-0.5, 0.0, 0.5])
    ids = torch.from_numpy(rng.integers(0, 10, (4, 5)))
    tm = tinydl.from_torch(Buckets().eval(), example_inputs=(x, bounds, ids))
    got = tm(tinydl.tensor(x.numpy()), tinydl.tensor(bounds.numpy()), tinydl.tensor(ids.numpy()))
    want = Buckets()(x, bounds, ids)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_nanmedian_ignores_nan(rng, dim, keepdim):
    """The median of the values that are not NaN (distinct values: one index is right), NaN for an all-NaN row."""
    x = distinct(rng, (5, 9, 6))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[0, :, 0] = np.nan
    got, want = tinydl.tensor(x).nanmedian(dim, keepdim), torch.from_numpy(x).nanmedian(dim, keepdim)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    found = ~np.isnan(want.values.numpy())  # an all-NaN row's index is torch's selection's artifact
    np.testing.assert_array_equal(got.indices.numpy()[found], want.indices.numpy()[found])
    assert tinydl.nanmedian(tinydl.tensor(x)).item() == torch.from_numpy(x).nanmedian().item()


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_unique_consecutive_matches_torch(rng, dim):
    x = rng.integers(0, 2, (6, 4)).astype(np.float32)
    got = tinydl.tensor(x).unique_consecutive(return_inverse=True, return_counts=True, dim=dim)
    want = torch.from_numpy(x).unique_consecutive(return_inverse=True, return_counts=True, dim=dim)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    np.testing.assert_array_equal(tinydl.unique_consecutive(tinydl.tensor(x)).numpy(),
                                  torch.unique_consecutive(torch.from_numpy(x)).numpy())
