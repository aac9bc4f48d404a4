"""Parity of max_pool2d / avg_pool2d / adaptive_{avg,max}_pool2d and max_pool3d with torch CPU (and their errors);
max pools in converted torch graphs."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
from tinydl.interop.registry import UnsupportedTorchOps
from tinydl.testing import assert_close


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def both(fn, x, *args, **kw):
    """(tinydl result, torch result) of the same functional call."""
    return getattr(F, fn)(tinydl.tensor(x), *args, **kw), getattr(TF, fn)(torch.from_numpy(x), *args, **kw)


# -- max_pool2d --------------------------------------------------------------------------------------------
MAX_CASES = [
    ((2, 3, 8, 8), dict(kernel_size=2)),                                     # stride None -> kernel
    ((1, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 7, 9), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    ((1, 2, 9, 9), dict(kernel_size=3, stride=1, padding=1, dilation=2)),
    ((1, 2, 10, 9), dict(kernel_size=(2, 3), stride=(2, 1), dilation=(3, 2))),
    ((1, 1, 5, 5), dict(kernel_size=5)),                                     # whole input -> 1x1
    ((1, 2, 9, 9), dict(kernel_size=2, stride=3)),                           # stride > kernel: skips inputs
    ((1, 2, 1, 6), dict(kernel_size=(1, 2))),                                # height 1
    ((1, 2, 7, 7), dict(kernel_size=3, stride=(2, 3), padding=(0, 1))),
    ((0, 2, 6, 6), dict(kernel_size=2)),                                     # size-0 batch
]


@pytest.mark.parametrize("shape,kw", MAX_CASES)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d(rng, shape, kw, ceil_mode):
    x = rand(rng, *shape)
    out, expected = both("max_pool2d", x, ceil_mode=ceil_mode, **kw)
    assert_close(out, expected, rtol=0, atol=0)  # max selects an input value: exact


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d_padding_is_minus_inf(rng, ceil_mode):
    """All inputs negative: a padded (or ceil-mode overhanging) tap must never win as a 0."""
    x = -np.abs(rand(rng, 1, 2, 6, 7)) - 10
    out, expected = both("max_pool2d", x, 3, 2, 1, ceil_mode=ceil_mode)
    assert_close(out, expected, rtol=0, atol=0)
    assert (out.numpy() <= -10).all()


@pytest.mark.parametrize("shape,kw", [
    ((2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((3, 5, 6), dict(kernel_size=2, ceil_mode=True)),
])
def test_max_pool2d_unbatched(rng, shape, kw):
    out, expected = both("max_pool2d", rand(rng, *shape), **kw)
    assert_close(out, expected, rtol=0, atol=0)


def test_max_pool2d_ceil_mode_changes_size(rng):
    """7 with k=2, s=2: floor -> 3, ceil -> 4 (the last window starts inside the input)."""
    x = rand(rng, 1, 1, 7, 7)
    assert F.max_pool2d(tinydl.tensor(x), 2, ceil_mode=False).shape == (1, 1, 3, 3)
    out, expected = both("max_pool2d", x, 2, ceil_mode=True)
    assert out.shape == (1, 1, 4, 4)
    assert_close(out, expected, rtol=0, atol=0)


def test_max_pool2d_ceil_mode_drops_window_starting_in_padding(rng):
    """5 with k=2, s=3, p=1, ceil: ceil((5+2-2)/3)+1 = 3 windows, but the third would start in the right padding,
    so torch drops it: 2."""
    x = rand(rng, 1, 2, 5, 5)
    out, expected = both("max_pool2d", x, 2, 3, 1, ceil_mode=True)
    assert tuple(expected.shape) == (1, 2, 2, 2)
    assert_close(out, expected, rtol=0, atol=0)


def test_max_pool2d_epilogue(rng):
    x = rand(rng, 1, 3, 6, 6)
    out = F.max_pool2d(tinydl.tensor(x), 2).relu() * 2
    assert_close(out, TF.max_pool2d(torch.from_numpy(x), 2).relu() * 2, rtol=0, atol=0)


# -- avg_pool2d --------------------------------------------------------------------------------------------
AVG_CASES = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((1, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 7, 9), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    ((1, 2, 6, 6), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 5, 8), dict(kernel_size=(3, 2), stride=(3, 3), padding=(1, 0))),
    ((1, 1, 5, 5), dict(kernel_size=5)),
    ((1, 2, 9, 9), dict(kernel_size=2, stride=3)),
    ((1, 2, 5, 5), dict(kernel_size=2, stride=3, padding=1)),  # ceil mode drops the window starting in padding
]


@pytest.mark.parametrize("shape,kw", AVG_CASES)
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("divisor_override", [None, 3])
def test_avg_pool2d(rng, shape, kw, ceil_mode, count_include_pad, divisor_override):
    x = rand(rng, *shape)
    out, expected = both("avg_pool2d", x, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                         divisor_override=divisor_override, **kw)
    assert_close(out, expected)


@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_pool2d_unbatched(rng, count_include_pad):
    out, expected = both("avg_pool2d", rand(rng, 3, 7, 6), 3, 2, 1, ceil_mode=True,
                         count_include_pad=count_include_pad)
    assert_close(out, expected)


def test_avg_pool2d_empty_batch(rng):
    out, expected = both("avg_pool2d", rand(rng, 0, 2, 4, 4), 2)
    assert_close(out, expected)


# -- adaptive pools ----------------------------------------------------------------------------------------
ADAPTIVE = [
    ((1, 3, 8, 8), (4, 4)),        # divides
    ((2, 2, 8, 6), (2, 3)),
    ((1, 3, 8, 8), (3, 5)),        # does not divide: overlapping, uneven windows
    ((2, 2, 7, 9), (4, 4)),
    ((1, 2, 7, 9), (None, 4)),     # None keeps the input size
    ((1, 2, 7, 9), (3, None)),
    ((1, 2, 7, 9), 3),             # int size
    ((2, 3, 5, 6), 1),             # global pool
    ((1, 3, 5, 6), (1, 1)),
    ((1, 2, 5, 6), (5, 6)),        # identity
    ((1, 2, 4, 3), (6, 7)),        # larger than the input
    ((1, 2, 5, 5), (0, 2)),        # size-0 output
]


@pytest.mark.parametrize("shape,size", ADAPTIVE)
def test_adaptive_avg_pool2d(rng, shape, size):
    out, expected = both("adaptive_avg_pool2d", rand(rng, *shape), size)
    assert_close(out, expected)


@pytest.mark.parametrize("shape,size", ADAPTIVE)
def test_adaptive_max_pool2d(rng, shape, size):
    out, expected = both("adaptive_max_pool2d", rand(rng, *shape), size)
    assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 1280, 7, 7), (16, 40, 7, 7), (3, 5, 1, 1)])
def test_global_avg_pool_is_one_mean_kernel(rng, shape):
    """adaptive_avg_pool2d to 1x1 is a mean over the pixels (as in torch): one reduce kernel, which gives each
    output several threads when outputs are few (batch 1), the division in its epilogue."""
    x = rand(rng, *shape)
    with tinydl.debug.count_kernels() as c:
        out, expected = both("adaptive_avg_pool2d", x, 1)
        tinydl.realize(out)
    assert c.count == 1 and c.names[0].startswith("reduce_sum+mul") and "[lanes]" in c.names[0], c.names
    assert_close(out, expected, atol=1e-6)


@pytest.mark.parametrize("fn", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize("size", [(3, 2), 1])
def test_adaptive_unbatched(rng, fn, size):
    out, expected = both(fn, rand(rng, 3, 7, 5), size)
    assert_close(out, expected)


# -- bad input ---------------------------------------------------------------------------------------------
def _both_raise(fn, x, args, kw, match, torch_too=True):
    if torch_too:
        with pytest.raises(RuntimeError, match=match):
            getattr(TF, fn)(torch.from_numpy(x), *args, **kw)
    with pytest.raises(RuntimeError, match=match):
        getattr(F, fn)(tinydl.tensor(x), *args, **kw)


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
def test_pool_pad_too_large(rng, fn):
    _both_raise(fn, rand(rng, 1, 3, 8, 8), (3,), dict(padding=2), "pad should be .*half of .*kernel size")


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
def test_pool_pad_too_large_one_side(rng, fn):
    _both_raise(fn, rand(rng, 1, 3, 8, 8), ((4, 2),), dict(padding=(1, 2)), "pad should be .*half of .*kernel size")


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
def test_pool_rank_5d(rng, fn):
    _both_raise(fn, rand(rng, 1, 1, 3, 8, 8), (2,), {}, r"3D or 4D \(batch mode\) tensor")


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
def test_pool_rank_2d(rng, fn):
    # torch's avg_pool2d fails on 2D input with an unrelated IndexError; tinydl names the cause
    _both_raise(fn, rand(rng, 8, 8), (2,), {}, r"Expected 3D or 4D \(batch mode\) tensor for input, but got: \[8, 8\]",
                torch_too=False)


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("k", [0, (2, 0)])
def test_pool_zero_kernel(rng, fn, k):
    kh, kw = (k, k) if isinstance(k, int) else k
    _both_raise(fn, rand(rng, 1, 3, 8, 8), (k,), dict(stride=1),
                f"kernel size should be greater than zero, but got kH: {kh} kW: {kw}")


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
def test_pool_zero_stride(rng, fn):
    _both_raise(fn, rand(rng, 1, 3, 8, 8), (2,), dict(stride=0), "stride should not be zero")


def test_max_pool2d_negative_stride(rng):
    _both_raise("max_pool2d", rand(rng, 1, 3, 8, 8), (2,), dict(stride=-1),
                "stride should be greater than zero, but got dH: -1 dW: -1")


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
def test_pool_output_too_small(rng, fn):
    _both_raise(fn, rand(rng, 1, 3, 2, 2), (3,), {},
                r"Given input size: \(3x2x2\)\. Calculated output size: \(3x0x0\)\. Output size is too small")


def test_avg_pool2d_divisor_zero(rng):
    _both_raise("avg_pool2d", rand(rng, 1, 3, 8, 8), (2,), dict(divisor_override=0), "divisor must be not zero")


@pytest.mark.parametrize("fn", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_adaptive_bad_rank(rng, fn):
    _both_raise(fn, rand(rng, 8, 8), (3,), {}, fn + r"\(\): Expected 3D or 4D tensor, but got:? \[8, 8\]")


def test_adaptive_bad_output_size(rng):
    x = rand(rng, 1, 3, 8, 8)
    _both_raise("adaptive_avg_pool2d", x, ((2, 2, 2),), {}, "adaptive_avg_pool2d: output_size must be 2")
    _both_raise("adaptive_avg_pool2d", x, (-1,), {},
                "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0")


def test_global_avg_pool_of_integers(rng):
    x = np.arange(2 * 3 * 4 * 4, dtype=np.int32).reshape(2, 3, 4, 4)
    _both_raise("adaptive_avg_pool2d", x, (1,), {}, "mean.*could not infer output dtype")


# -- max_pool3d: separable (H x W, then D), with torch's checks and words -----------------------------------
def torch_error(fn, *args, **kw):
    """The exception torch raises for fn(*args, **kw) (the test's expected type and message)."""
    try:
        fn(*args, **kw)
    except Exception as e:  # noqa: BLE001 - whatever torch raises is what tinydl must raise
        return e
    raise AssertionError("torch raised nothing")


MAX3D_CASES = [
    ((2, 3, 6, 6, 6), dict(kernel_size=2)),                                  # stride None -> kernel
    ((1, 2, 5, 7, 6), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 7, 5, 9), dict(kernel_size=(2, 3, 1), stride=(1, 2, 3), padding=(1, 1, 0))),
    ((1, 2, 9, 8, 7), dict(kernel_size=3, stride=1, padding=1, dilation=(2, 1, 3))),
    ((1, 1, 4, 5, 6), dict(kernel_size=(4, 5, 6))),                          # the whole volume -> 1x1x1
    ((1, 2, 8, 8, 8), dict(kernel_size=2, stride=3)),                        # stride > kernel: skips inputs
    ((1, 2, 5, 5, 5), dict(kernel_size=2, stride=3, padding=1)),             # ceil drops a window in the padding
    ((3, 5, 6, 7), dict(kernel_size=(3, 2, 2), stride=(2, 1, 2), padding=(1, 0, 1))),  # unbatched
    ((0, 2, 4, 4, 4), dict(kernel_size=2)),                                  # size-0 batch
]


@pytest.mark.parametrize("shape,kw", MAX3D_CASES)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool3d(rng, shape, kw, ceil_mode):
    x = rand(rng, *shape)
    out, expected = both("max_pool3d", x, ceil_mode=ceil_mode, **kw)
    assert out.shape == tuple(expected.shape)
    assert_close(out, expected, rtol=0, atol=0)  # max selects an input value: exact


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool3d_nonfinite(rng, ceil_mode):
    """NaN anywhere in a window wins (torch propagates it, through both passes here); -inf and padding never do."""
    x = -np.abs(rand(rng, 2, 2, 5, 6, 7)) - 10
    x[0, 0, 0, 0, 0] = x[1, 1, 4, 5, 6] = np.nan
    x[0, 1, 2, :, :] = np.inf
    x[1, 0, :, :, 0] = -np.inf
    out, expected = both("max_pool3d", x, 3, 2, 1, ceil_mode=ceil_mode)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())  # NaNs in the same places, the rest equal
    assert np.isnan(expected.numpy()).any() and np.isinf(expected.numpy()).any()


def test_max_pool3d_float16(rng):
    x = rand(rng, 1, 3, 5, 6, 7).astype(np.float16)
    out, expected = both("max_pool3d", x, (2, 3, 2), 1, 1)
    assert out.dtype == tinydl.float16
    assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("fn,args", [("max_pool2d", (3, 2, 1)), ("max_pool3d", (3, 2, 1))])
def test_max_pool_of_integers(rng, fn, args):
    """An int32 max pool keeps its integers (the window kernel's accumulator is i32, starting at int32's min)."""
    shape = (2, 3, 5, 6, 7) if fn == "max_pool3d" else (3, 5, 6, 7)
    x = rng.integers(-2**31, 2**31 - 1, shape, dtype=np.int64).astype(np.int32)
    x.flat[0] = -2**31  # the smallest int32 is still picked over the padding
    out, expected = both(fn, x, *args)
    assert out.dtype == tinydl.int32
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


@pytest.mark.parametrize("kw", [
    dict(kernel_size=0), dict(kernel_size=(2, 0, 2), stride=1), dict(kernel_size=-1, stride=1),
    dict(kernel_size=2, stride=(1, 0, 1)), dict(kernel_size=2, stride=-1), dict(kernel_size=2, padding=-1),
    dict(kernel_size=2, dilation=0), dict(kernel_size=2, dilation=(1, -1, 1)),
    dict(kernel_size=2, padding=(2, 0, 0)),                       # pad > half the effective kernel (dilation 1)
    dict(kernel_size=2, dilation=3, padding=(0, 1, 2)),            # within the effective kernel, not the kernel
    dict(kernel_size=(2, 2), stride=1), dict(kernel_size=2, stride=(1, 1)), dict(kernel_size=2, padding=(1, 1)),
    dict(kernel_size=2, dilation=(1, 1)), dict(kernel_size=(6, 2, 2)), dict(kernel_size=(1, 7, 2)),
    dict(kernel_size=(3, 3, 8), stride=2),
])
def test_max_pool3d_bad_arguments_raise_as_torch(rng, kw):
    x = rand(rng, 1, 2, 5, 6, 7)
    err = torch_error(TF.max_pool3d, torch.from_numpy(x), **kw)
    with pytest.raises(type(err), match="^" + re.escape(str(err)) + "$"):
        F.max_pool3d(tinydl.tensor(x), **kw)


@pytest.mark.parametrize("x", [np.zeros((2, 0, 4, 4, 4), np.float32), np.zeros((2, 4, 0, 4), np.float32),
                               np.zeros((2, 4, 4), np.float32), np.zeros((1, 1, 4, 4, 4, 4), np.float32),
                               np.zeros((1, 1, 4, 4, 4), np.bool_)])
def test_max_pool3d_bad_input_raises_as_torch(x):
    err = torch_error(TF.max_pool3d, torch.from_numpy(x), 2)
    with pytest.raises(type(err), match="^" + re.escape(str(err)) + "$"):
        F.max_pool3d(tinydl.tensor(x), 2)


def test_max_pool2d_bad_dilation_and_bool_raise_as_torch(rng):
    x = rand(rng, 1, 2, 9, 9)
    for args, kw in (((x,), dict(kernel_size=2, dilation=0)), ((x > 0,), dict(kernel_size=2))):
        err = torch_error(TF.max_pool2d, torch.from_numpy(args[0]), **kw)
        with pytest.raises(type(err), match="^" + re.escape(str(err)) + "$"):
            F.max_pool2d(tinydl.tensor(args[0]), **kw)


@pytest.mark.parametrize("fn", ["max_pool3d", "max_pool2d"])
def test_max_pool_return_indices_is_refused(rng, fn):
    x = rand(rng, *(1, 2, 4, 4, 4)[:int(fn[-2]) + 2])
    with pytest.raises(NotImplementedError, match=rf"^{fn}\(return_indices=True\) is not supported$"):
        getattr(F, fn)(tinydl.tensor(x), 2, return_indices=True)
    with pytest.raises(NotImplementedError, match=r"^MaxPool3d\(return_indices=True\) is not supported$"):
        tinydl.nn.MaxPool3d(2, return_indices=True)


# -- max pools from torch graphs: aten.max_pool3d(_with_indices) and F.max_poolNd_with_indices ---------------------
class VideoStem(torch.nn.Module):
    """A conv and nn.MaxPool3d (as in mvit_v1_b's pooled attention), with a loop over the clip's frames that fx
    cannot trace (range of a Proxy): from_torch goes through torch.export."""

    def __init__(self, **pool):
        super().__init__()
        self.conv = torch.nn.Conv3d(2, 4, 3, padding=1)
        self.pool = torch.nn.MaxPool3d(**pool)

    def forward(self, x):
        y = self.pool(self.conv(x))
        return sum(y[:, :, t] for t in range(y.shape[2]))


@pytest.mark.parametrize("pool", [dict(kernel_size=3, stride=2, padding=1),
                                  dict(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), ceil_mode=True),
                                  dict(kernel_size=2, dilation=(2, 1, 1))])
def test_from_torch_max_pool3d_through_export(rng, pool):
    m = VideoStem(**pool).eval()
    x = torch.from_numpy(rand(rng, 2, 2, 6, 9, 8))
    assert "aten.max_pool3d.default" in export_ops(m, x)
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == "torch.export"
    with torch.no_grad():
        expected = m(x)
    assert_close(tm(tinydl.tensor(x.numpy())), expected, rtol=1e-4, atol=1e-5)


class PoolValues(torch.nn.Module):
    """F.max_poolNd(return_indices=True) with only the values read: fx records max_poolNd_with_indices, torch.export
    the ATen max_poolNd_with_indices; both map (the indices are never computed)."""

    def __init__(self, dims):
        super().__init__()
        self.pool = getattr(TF, f"max_pool{dims}d")

    def forward(self, x):
        values, _ = self.pool(x, 3, 2, 1, return_indices=True)
        return values * 2


class PoolIndices(PoolValues):
    def forward(self, x):
        values, indices = self.pool(x, 2, return_indices=True)
        return values, indices


def export_ops(m, x) -> set:
    from tinydl.interop import export
    ep, _ = export.export(m, (x,), {}, None)
    return {export.op_name(n.target) for n in export.lower(ep)[0].graph.nodes if n.op == "call_function"}


@pytest.mark.parametrize("dims", [2, 3])
def test_max_pool_with_indices_whose_values_only_are_read(rng, dims):
    from tinydl.interop import export
    m = PoolValues(dims).eval()
    x = torch.from_numpy(rand(rng, *(2, 3, 5, 6, 7)[3 - dims:]))
    assert f"aten.max_pool{dims}d_with_indices.default" in export_ops(m, x)
    expected = m(x)
    fx_model = tinydl.from_torch(m)
    assert fx_model.conversion_path == "fx"
    assert_close(fx_model(tinydl.tensor(x.numpy())), expected, rtol=0, atol=0)
    assert_close(export.convert(m, (x,))(tinydl.tensor(x.numpy())), expected, rtol=0, atol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_max_pool_indices_read_are_refused_at_conversion(rng, dims):
    m = PoolIndices(dims).eval()
    x = torch.from_numpy(rand(rng, *(2, 3, 4, 4, 4)[3 - dims:]))
    from tinydl.interop import export
    with pytest.raises(UnsupportedTorchOps) as err:
        export.convert(m, (x,))
    assert [op for op, _, _ in err.value.ops] == [
        f"aten.max_pool{dims}d_with_indices.default (its indices are read: tinydl computes only the pooled values)"]
    with pytest.raises(UnsupportedTorchOps, match=rf"function torch\.nn\.functional\.max_pool{dims}d_with_indices\(its "
                                                  r"indices are read: tinydl computes only the pooled values\)"):
        tinydl.from_torch(m)
