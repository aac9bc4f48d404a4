"""interpolate's modes beyond nearest/linear/bilinear on 1-2 spatial dims: trilinear, 3-d nearest and nearest-exact,
area (1-3 dims), antialiased lanczos; torch's index math where it is surprising (a kept size copied by the linear
modes, 2-d nearest's kept and doubled sizes); float16 and integer inputs; torch's errors for bad combinations; and
both conversion paths (fx, torch.export's ATen upsample / adaptive pool ops). Every reference is torch CPU's."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
from tinydl import nn
from tinydl.testing import assert_close

from paths import check_paths

F32 = dict(rtol=1e-5, atol=1e-6)
EXACT = dict(rtol=0, atol=0)


def rand(rng, *shape, dtype=np.float32):
    return rng.random(shape).astype(dtype)


def both(x, **kw):
    """(tinydl's result, torch's) for interpolate(x, **kw)."""
    return F.interpolate(tinydl.tensor(x), **kw), TF.interpolate(torch.from_numpy(x), **kw)


SIZES_3D = [dict(size=(3, 7, 5)), dict(size=4), dict(size=(1, 1, 1)), dict(size=(4, 5, 6)),
            dict(scale_factor=1.7), dict(scale_factor=0.6), dict(scale_factor=(2.1, 1.0, 0.6)),
            dict(scale_factor=1.7, recompute_scale_factor=True),
            dict(scale_factor=(1.3, 2, 0.75), recompute_scale_factor=True)]
SHAPES_3D = [(2, 3, 4, 5, 6), (1, 2, 1, 3, 1)]  # a 1-wide depth and width


def _fits(shape, kw):
    """torch refuses an output size of 0 (a 1-wide dim scaled by 0.6): those combinations are the error tests'."""
    if "size" in kw:
        return True
    s = kw["scale_factor"]
    s = s if isinstance(s, tuple) else (s,) * (len(shape) - 2)
    return all(int(n * f) > 0 for n, f in zip(shape[2:], s))


# the shape and size combinations whose output has no 0-sized dim
CASES_3D = [(shape, kw) for kw in SIZES_3D for shape in SHAPES_3D if _fits(shape, kw)]


@pytest.mark.parametrize("shape,kw", CASES_3D)
@pytest.mark.parametrize("align_corners", [False, True])
def test_trilinear(rng, shape, kw, align_corners):
    assert_close(*both(rand(rng, *shape), mode="trilinear", align_corners=align_corners, **kw), **F32)


@pytest.mark.parametrize("shape,kw", CASES_3D)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_nearest_3d_is_exact(rng, shape, kw, mode):
    assert_close(*both(rand(rng, *shape), mode=mode, **kw), **EXACT)


@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 7), dict(size=3)), ((2, 3, 7), dict(size=10)), ((1, 2, 1), dict(size=4)), ((2, 3, 7), dict(scale_factor=0.6)),
    ((2, 3, 4, 5), dict(size=(3, 2))), ((2, 3, 4, 5), dict(size=(7, 9))), ((1, 1, 1, 5), dict(scale_factor=(1.7, 0.6))),
    ((2, 3, 4, 5), dict(scale_factor=1.7)),
    ((2, 3, 4, 5, 6), dict(size=(3, 2, 4))), ((1, 2, 1, 3, 1), dict(size=(2, 2, 3))),
    ((2, 3, 4, 5, 6), dict(scale_factor=0.6)), ((2, 3, 4, 5, 6), dict(scale_factor=(1.7, 0.6, 1.0))),
    ((2, 3, 4, 5, 6), dict(scale_factor=0.6, recompute_scale_factor=True)),
])
def test_area(rng, shape, kw):
    assert_close(*both(rand(rng, *shape), mode="area", **kw), **F32)


def test_area_to_nothing_is_empty(rng):
    got, want = both(rand(rng, 1, 2, 3, 3, 3), mode="area", scale_factor=0.1)  # torch's adaptive pool allows size 0
    assert got.shape == tuple(want.shape) == (1, 2, 0, 0, 0)


@pytest.mark.parametrize("kw", [dict(size=(3, 4)), dict(size=(13, 17)), dict(scale_factor=0.6), dict(scale_factor=1.7),
                                dict(size=(1, 1)), dict(scale_factor=(0.6, 1.7))])
def test_lanczos(rng, kw):
    assert_close(*both(rand(rng, 2, 3, 9, 11), mode="lanczos", antialias=True, **kw), **F32)


# torch's kernels copy a dim whose size is kept (linear modes), and 2-d nearest copies a kept size and halves a doubled
# one, whatever the scale_factor; 1-d and 3-d nearest and nearest-exact map by the scale_factor itself
@pytest.mark.parametrize("shape,kw", [
    ((1, 2, 5), dict(mode="linear", scale_factor=1.1)), ((1, 2, 5, 5), dict(mode="bilinear", scale_factor=(1.1, 2.1))),
    ((1, 2, 5, 4, 3), dict(mode="trilinear", scale_factor=(1.1, 1.7, 1.2))),
    ((1, 2, 5), dict(mode="nearest", scale_factor=1.1)), ((1, 2, 5), dict(mode="nearest", scale_factor=2.1)),
    ((1, 2, 5, 5), dict(mode="nearest", scale_factor=(1.1, 2.1))), ((1, 2, 15, 15), dict(mode="nearest", scale_factor=2.1)),
    ((1, 2, 5, 5, 5), dict(mode="nearest", scale_factor=(1.1, 2.1, 1.0))),
    ((1, 2, 15, 15), dict(mode="nearest-exact", scale_factor=(1.05, 2.1))),
    ((1, 2, 15, 4, 4), dict(mode="nearest-exact", scale_factor=(1.05, 2.1, 1.0))),
])
def test_kept_and_doubled_sizes_index_as_torch(shape, kw):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)  # every value tells its source
    got, want = both(x, **kw)
    assert_close(got, want, **(EXACT if kw["mode"].startswith("nearest") else F32))


@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 4, 5, 6), dict(mode="trilinear", size=(3, 7, 5))), ((2, 3, 4, 5, 6), dict(mode="trilinear", scale_factor=1.7,
                                                                                       align_corners=True)),
    ((2, 3, 4, 5, 6), dict(mode="nearest", scale_factor=1.7)), ((2, 3, 4, 5, 6), dict(mode="nearest-exact", size=3)),
    ((2, 3, 4, 5, 6), dict(mode="area", scale_factor=0.6)), ((2, 3, 7), dict(mode="area", size=3)),
    ((2, 3, 9, 11), dict(mode="lanczos", antialias=True, size=(4, 5))),
])
def test_float16(rng, shape, kw):
    x = rand(rng, *shape, dtype=np.float16)
    got = F.interpolate(tinydl.tensor(x), **kw)
    assert got.dtype == tinydl.float16
    if kw["mode"] != "lanczos":  # torch's CPU antialias kernels refuse half; tinydl's matmuls take it
        # torch rounds some steps to half on the way; tinydl computes in float32 and rounds once: a few ulps apart
        want = TF.interpolate(torch.from_numpy(x), **kw)
        assert_close(got, want, **(EXACT if kw["mode"].startswith("nearest") else dict(rtol=2e-3, atol=1e-3)))
    # and tinydl's is the float32 result of the same half inputs, rounded once
    ref = TF.interpolate(torch.from_numpy(x).float(), **kw).half()
    assert_close(got, ref, rtol=1e-3, atol=0)


@pytest.mark.parametrize("shape,kw", [((1, 2, 5), dict(size=7)), ((1, 2, 4, 5), dict(scale_factor=1.7)),
                                      ((1, 2, 3, 4, 5), dict(scale_factor=(1.7, 0.6, 2))),
                                      ((1, 2, 3, 4, 5), dict(size=(2, 5, 3), mode="nearest-exact"))])
def test_nearest_on_uint8_is_exact(rng, shape, kw):
    """torch takes uint8 images in the nearest modes (tinydl stores them as int32)."""
    x = rng.integers(0, 256, shape).astype(np.uint8)
    kw = dict(mode="nearest") | kw
    got = F.interpolate(tinydl.tensor(x), **kw)
    assert got.dtype == tinydl.int32
    np.testing.assert_array_equal(got.numpy(), TF.interpolate(torch.from_numpy(x), **kw).numpy())


def torch_error(fn):
    """torch's exception type and exact message for fn."""
    with pytest.raises(Exception) as info:
        fn()
    return info.type, info.value.args[0]


@pytest.mark.parametrize("shape,dtype,kw", [
    ((1, 1, 3, 3, 3), np.float32, dict(size=2, mode="area", align_corners=False)),
    ((1, 1, 3, 3, 3), np.float32, dict(size=2, mode="nearest", align_corners=True)),
    ((1, 1, 3, 3, 3), np.float32, dict(size=2, mode="trilinear", antialias=True)),
    ((1, 1, 3, 3, 3), np.float32, dict(size=(2, 2), mode="trilinear")),
    ((1, 1, 3, 3, 3), np.float32, dict(scale_factor=(2, 2), mode="trilinear")),
    ((1, 1, 3, 3, 3), np.float32, dict(size=2, mode="trilinear", recompute_scale_factor=True)),
    ((1, 1, 3, 3, 3), np.float32, dict(size=(2, 2, 2.0), mode="trilinear")),
    ((1, 1, 3, 3, 3), np.float32, dict(size=(2, 0, 2), mode="trilinear")),
    ((1, 1, 3, 3, 3), np.float32, dict(scale_factor=0.1, mode="nearest")),
    ((1, 1, 3, 3), np.float32, dict(size=(0, 2), mode="bilinear")),
    ((1, 1, 3), np.float32, dict(size=0, mode="nearest-exact")),
    ((1, 1, 3, 3), np.float32, dict(size=2, mode="trilinear")),
    ((1, 1, 3), np.float32, dict(size=2, mode="trilinear")),
    ((1, 1, 3, 3, 3), np.float32, dict(size=2, mode="bilinear")),
    ((1, 1, 3, 3, 3), np.float32, dict(size=2, mode="linear")),
    ((1, 1, 3), np.float32, dict(size=2, mode="bilinear")),
    ((1, 1, 3, 3), np.float32, dict(size=2, mode="linear")),
    ((1, 1, 3, 3, 3), np.float32, dict(size=2, mode="bicubic")),
    ((1, 1, 3, 3, 3, 3), np.float32, dict(size=2, mode="nearest")),
    ((1, 3), np.float32, dict(size=2, mode="area")),
    ((1, 1, 4, 4), np.float32, dict(size=2, mode="lanczos")),
    ((1, 1, 4, 4), np.float32, dict(size=2, mode="lanczos", antialias=True, align_corners=True)),
    ((1, 1, 4), np.float32, dict(size=2, mode="lanczos", antialias=True)),
    ((1, 1, 4), np.float32, dict(size=2, mode="lanczos")),
    ((1, 1, 4, 4), np.float32, dict(size=(2, -1), mode="area")),
    ((1, 1, 3, 3, 3), np.int32, dict(size=2, mode="trilinear")),
    ((1, 1, 3), np.int32, dict(size=2, mode="linear")),
    ((1, 1, 3, 3), np.int32, dict(size=2, mode="bilinear")),
    ((1, 1, 3), np.int32, dict(size=2, mode="area")),
    ((1, 1, 3, 3), np.int32, dict(size=2, mode="area")),
    ((1, 1, 3, 3, 3), np.int32, dict(size=2, mode="area")),
    ((1, 1, 4, 4), np.int32, dict(size=2, mode="lanczos", antialias=True)),
    ((1, 1, 3, 3, 3), np.bool_, dict(size=2, mode="nearest")),
    ((1, 1, 3, 3), np.bool_, dict(size=2, mode="nearest-exact")),
    ((1, 1, 3, 3, 3), np.bool_, dict(size=2, mode="area")),
    ((1, 1, 3, 3, 3), np.bool_, dict(size=(0, 2, 2), mode="nearest")),  # the sizes are checked before the dtype
])
def test_errors_are_torchs(shape, dtype, kw):
    x = np.ones(shape, dtype)
    exc, msg = torch_error(lambda: TF.interpolate(torch.from_numpy(x), **kw))
    if exc is TypeError and "invalid combination" in msg:  # torch's argument parser: the type only
        msg = "expected size to be one of int"
    with pytest.raises(exc, match=re.escape(msg)):
        F.interpolate(tinydl.tensor(x), **kw)


def test_upsample_modules(rng):
    x = rand(rng, 1, 2, 3, 4, 5)
    for kw in (dict(scale_factor=1.7, mode="trilinear"), dict(size=(2, 3, 4), mode="area"),
               dict(scale_factor=(2, 1, 0.6), mode="nearest"), dict(size=4, mode="trilinear", align_corners=True),
               dict(scale_factor=1.5, mode="nearest-exact", recompute_scale_factor=True)):
        assert_close(nn.Upsample(**kw)(tinydl.tensor(x)), torch.nn.Upsample(**kw)(torch.from_numpy(x)), **F32)
    x = rand(rng, 1, 2, 3, 4)
    for name in ("UpsamplingNearest2d", "UpsamplingBilinear2d"):
        for kw in (dict(scale_factor=1.7), dict(size=(5, 2))):
            assert_close(getattr(nn, name)(**kw)(tinydl.tensor(x)), getattr(torch.nn, name)(**kw)(torch.from_numpy(x)),
                         **F32)


class Resample3d(torch.nn.Module):
    """The new modes together: trilinear (size and scale_factor), area, 3-d nearest and nearest-exact, and the
    modules that call interpolate."""

    def __init__(self):
        super().__init__()
        self.up = torch.nn.Upsample(scale_factor=(1.5, 2, 1), mode="trilinear", align_corners=True)
        self.near, self.bilinear = torch.nn.UpsamplingNearest2d(scale_factor=2), torch.nn.UpsamplingBilinear2d((14, 6))

    def forward(self, x):
        y = TF.interpolate(x, size=(3, 5, 4), mode="trilinear") + TF.interpolate(x, size=(3, 5, 4), mode="area")
        y = y + TF.interpolate(x, scale_factor=1.7, mode="trilinear")[:, :, :3, :5, :4]
        y = y + TF.interpolate(x, scale_factor=(1.5, 2, 1.7), mode="nearest")[:, :, :3, :5, :4]
        y = y + TF.interpolate(x, size=(3, 5, 4), mode="nearest-exact") + self.up(x)[:, :, :3, :5, :4]
        z = TF.interpolate(x.flatten(2, 3), scale_factor=0.6, mode="area")  # 4-d area: [N, C, 7, 3]
        z = z + TF.interpolate(x.flatten(2, 4), size=3, mode="area")[:, :, None]  # 3-d area
        w = self.near(z) + self.bilinear(z)
        w = w + TF.interpolate(z, size=(14, 6), mode="lanczos", antialias=True)
        return y.sum((2, 3, 4)) + w.sum((2, 3)) + TF.interpolate(x[:, :, 0, 0], scale_factor=1.5, mode="nearest").sum(-1)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_conversion_paths(rng, path):
    check_paths(Resample3d(), torch.from_numpy(rand(rng, 2, 3, 4, 3, 5)), path=path, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,args", [
    ("upsample_trilinear3d.default", ([5, 6, 8], False, 1.35, 1.35, 1.35)),
    ("upsample_trilinear3d.default", ([5, 6, 7], True)),
    ("upsample_trilinear3d.vec", (None, False, [1.35, 0.6, 1.7])),
    ("upsample_nearest3d.default", ([5, 6, 8], 1.35, 1.35, 1.35)),
    ("upsample_nearest3d.vec", ([2, 6, 3], None)),
    ("_upsample_nearest_exact3d.default", ([5, 6, 8], 1.35, 1.35, 1.35)),
    ("_upsample_nearest_exact3d.vec", (None, [1.35, 0.6, 1.7])),
    ("_upsample_lanczos2d_aa.vec", ([3, 8], False, None)),
    ("adaptive_avg_pool1d.default", ([3],)),
    ("adaptive_avg_pool3d.default", ([2, 3, 4],)),
    ("_adaptive_avg_pool3d.default", ([2, 3, 4],)),
])
def test_aten_ops(rng, name, args):
    """The ATen overloads torch.export records, called as it calls them (per-dim scales map by 1 / scale)."""
    op, overload = name.split(".")
    shape = {"adaptive_avg_pool1d": (2, 3, 7), "_upsample_lanczos2d_aa": (2, 3, 5, 6)}.get(op, (2, 3, 4, 5, 6))
    x = rand(rng, *shape)
    fn = tinydl.interop.registry.lookup(f"aten.{name}")
    want = getattr(getattr(torch.ops.aten, op), overload)(torch.from_numpy(x), *args)
    assert_close(fn(tinydl.tensor(x), *args), want, **(EXACT if "nearest" in op else F32))
