"""Parity of conv1d / conv2d / conv_transpose2d with torch CPU, through the direct kernel (looped, and unrolled
over strips of several shapes) and the implicit GEMM (every tile variant)."""
import importlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.kernels.gemm
import tinydl.kernels.window
import tinydl.nn.functional as F
import tinydl.schedule
from tinydl.testing import assert_close

# torch warns that it copies the input for padding='same' with even kernels; the cases are deliberate
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")

# tinydl.kernels re-exports the function build(), which shadows the submodule as an attribute
build_module = importlib.import_module("tinydl.kernels.build")

# the gemvs differ only in lanes per column: the fewest (one subgroup) and the most (one column per workgroup)
GEMVS = ["gemv", "gemv256"]
GEMM_TILES = [*tinydl.kernels.gemm.TILES, *GEMVS]  # conv_transpose2d always runs as an implicit GEMM
# the direct kernel looping over the window, unrolled over strips of rows x cols outputs per thread (2x3: ragged
# strips on most shapes), then the implicit GEMM with each tile forced
DIRECT_PATHS = ["direct", "direct1x1", "direct4x2", "direct2x3"]
PATHS = [*DIRECT_PATHS, *GEMM_TILES]


def force(use_options, path):
    """Force every conv of the test onto one kernel; returns the variant name its kernel must report."""
    direct = path.startswith("direct")
    use_options(direct_conv_max_cout_per_group=10**9 if direct else 0, force_tile=None if direct else path)
    if path == "direct":
        use_options(max_unrolled_taps=0)
    elif direct:
        use_options(force_strip=tuple(map(int, path[6:].split("x"))))
    return path


@pytest.fixture(autouse=True)
def _fresh_plans():
    """The WGSL checks read the plans cached during the test (_gemm_wgsl)."""
    tinydl.schedule.clear_cache()


def with_paths(cases, paths=PATHS):
    """Cross each case with the kernel paths, alternating bias so every case runs with and without it. The "gemv"
    tile (made for batch-1 linear layers) costs ~1 s of shader compile per shape on lavapipe, so it takes every
    third case only."""
    out = []
    for i, case in enumerate(cases):
        for j, path in enumerate(paths):
            if path in GEMVS and i % 3:
                continue
            out.append(pytest.param(path, *case, (i + j) % 2 == 1, id=f"{path}-{i}"))
    return out


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def tol(K):
    """fp32 sums of K = Cin/groups * KH * KW products, accumulated in a different order than torch's (direct loop
    or GEMM tile vs torch's im2col/mkldnn): with N(0,1) inputs the rounding difference grows ~ eps * K, so use an
    absolute term of 1e-5 * sqrt(K) on top of rtol 1e-4 (a wrong tap would be off by O(1))."""
    return dict(rtol=1e-4, atol=1e-5 * max(1.0, math.sqrt(K)))


def run(fn_tiny, variant, *args):
    """Run a tinydl conv, return (result, names of the kernels it dispatched), checking the forced variant ran."""
    with tinydl.debug.count_kernels() as c:
        out = fn_tiny(*args)
        out.numpy()
    assert any(f"[{variant}]" in n for n in c.names), c.names
    return out


def _torch(*arrays):
    return [None if a is None else torch.from_numpy(a) for a in arrays]


def _tiny(*arrays):
    return [None if a is None else tinydl.tensor(a) for a in arrays]


# -- conv2d ------------------------------------------------------------------------------------------------
CONV2D = [
    ((2, 3, 7, 7), (4, 3, 3, 3), {}),
    ((1, 3, 8, 8), (5, 3, 3, 3), dict(stride=2, padding=1)),
    ((2, 2, 7, 9), (3, 2, 3, 3), dict(stride=(2, 1), padding=(1, 2))),
    ((1, 3, 6, 7), (4, 3, 3, 3), dict(padding="same")),
    ((1, 2, 6, 7), (3, 2, 2, 4), dict(padding="same")),                    # even kernels: asymmetric padding
    ((1, 2, 8, 8), (3, 2, 3, 3), dict(padding="same", dilation=2)),
    ((1, 2, 9, 8), (3, 2, 4, 3), dict(padding="same", dilation=(3, 2))),   # even kernel, odd dilation
    ((1, 2, 8, 8), (3, 2, 2, 2), dict(padding="same", dilation=2)),        # even kernel, even dilation
    ((2, 3, 6, 6), (4, 3, 3, 3), dict(padding="valid")),
    ((1, 2, 9, 9), (3, 2, 3, 3), dict(dilation=2, padding=1)),
    ((1, 2, 9, 10), (3, 2, 3, 2), dict(dilation=(1, 3), stride=(1, 2))),
    ((1, 4, 6, 6), (6, 2, 3, 3), dict(groups=2, padding=1)),
    ((2, 4, 6, 6), (4, 1, 3, 3), dict(groups=4, padding=1)),               # depthwise
    ((1, 3, 6, 6), (6, 1, 3, 3), dict(groups=3, stride=2, padding=1)),     # depthwise, multiplier 2
    ((1, 4, 5, 5), (12, 1, 3, 3), dict(groups=4)),                         # depthwise, multiplier 3
    ((1, 2, 6, 9), (3, 2, 2, 5), {}),                                      # non-square kernel
    ((1, 2, 9, 6), (3, 2, 5, 1), dict(padding=(2, 0))),
    ((2, 5, 4, 4), (7, 5, 1, 1), {}),                                      # 1x1
    ((1, 5, 5, 5), (3, 5, 1, 1), dict(stride=2)),                          # 1x1 strided
    ((1, 3, 4, 5), (2, 3, 4, 5), {}),                                      # kernel = whole input -> 1x1 output
    ((1, 3, 5, 5), (1, 3, 3, 3), dict(padding=1)),                         # one output channel
    ((1, 1, 5, 5), (9, 1, 3, 3), {}),                                      # one input channel
    ((1, 16, 4, 4), (16, 16, 3, 3), dict(padding=1)),                      # K = 144: many K tiles
    ((0, 3, 5, 5), (4, 3, 3, 3), {}),                                      # size-0 batch
]


@pytest.mark.parametrize("path,xs,ws,kw,bias", with_paths(CONV2D))
def test_conv2d(rng, use_options, path, xs, ws, kw, bias):
    force(use_options, path)
    x, w = rand(rng, *xs), rand(rng, *ws)
    b = rand(rng, ws[0]) if bias else None
    expected = TF.conv2d(*_torch(x, w, b), **kw)
    if expected.numel() == 0:
        out = F.conv2d(*_tiny(x, w, b), **kw)  # no kernel runs for an empty output
    else:
        out = run(lambda: F.conv2d(*_tiny(x, w, b), **kw), path)
    assert_close(out, expected, **tol(ws[1] * ws[2] * ws[3]))


@pytest.mark.parametrize("path,xs,ws,kw,bias", with_paths([
    ((3, 6, 6), (4, 3, 3, 3), {}),
    ((2, 7, 5), (4, 2, 3, 2), dict(stride=2, padding=1)),
    ((4, 6, 6), (4, 1, 3, 3), dict(groups=4, padding="same")),
]))
def test_conv2d_unbatched(rng, use_options, path, xs, ws, kw, bias):
    force(use_options, path)
    x, w, b = rand(rng, *xs), rand(rng, *ws), rand(rng, ws[0]) if bias else None
    out = run(lambda: F.conv2d(*_tiny(x, w, b), **kw), path)
    assert_close(out, TF.conv2d(*_torch(x, w, b), **kw), **tol(ws[1] * ws[2] * ws[3]))


@pytest.mark.parametrize("path", PATHS)
def test_conv2d_view_input_and_epilogue(rng, use_options, path):
    """A permuted input is read through the conv's load function; bias + BN-style scale + relu fuse after it."""
    force(use_options, path)
    x, w, b, s = rand(rng, 1, 6, 7, 3), rand(rng, 4, 3, 3, 3), rand(rng, 4), rand(rng, 1, 4, 1, 1)
    tx, tw, tb, ts = _tiny(x, w, b, s)
    out = run(lambda: (F.conv2d(tx.permute(0, 3, 1, 2), tw, tb, padding=1) * ts).relu(), path)
    xt, wt, bt, st = _torch(x, w, b, s)
    assert_close(out, (TF.conv2d(xt.permute(0, 3, 1, 2), wt, bt, padding=1) * st).relu(), **tol(27))


@pytest.mark.parametrize("split", [1, 2])
@pytest.mark.parametrize("path", PATHS)
def test_conv2d_weight_in_memory_or_computed(rng, monkeypatch, use_options, path, split):
    """A stored weight is read by its flat position (no (ci, kh, kw) split of k); a weight computed in the kernel
    (w * 2) or viewed (a permute) goes through the multi-index path: both equal torch, whole and split over K."""
    force(use_options, path)
    use_options(force_split_k=split)
    x, w = rand(rng, 2, 4, 6, 6), rand(rng, 6, 2, 3, 3)
    tx, tw = _tiny(x, w)
    xt, wt = _torch(x, w)
    for make in (lambda v: v, lambda v: v * 2, lambda v: v.permute(0, 1, 3, 2)):
        out = run(lambda: F.conv2d(tx, make(tw), padding=1, groups=2), path)
        assert_close(out, TF.conv2d(xt, make(wt), padding=1, groups=2), **tol(18))


# -- tap-major gathers: K in (kh, kw, ci) order, pixels read through a TapGather --------------------------
TILED = list(tinydl.kernels.gemm.TILES)
TAP_CASES = [  # input channels per group a multiple of 16: every tile's K steps lie within one tap
    ((2, 16, 7, 9), (8, 16, 3, 3), dict(padding=1)),                        # odd pixel count: partial tiles
    ((1, 32, 9, 9), (20, 32, 3, 3), dict(stride=2, padding=1)),
    ((1, 16, 10, 10), (12, 16, 3, 3), dict(padding=2, dilation=2)),
    ((1, 32, 8, 8), (16, 16, 3, 3), dict(padding=1, groups=2)),
    ((2, 16, 6, 7), (6, 16, 2, 4), dict(padding=(1, 2))),                   # even, non-square kernel
    ((1, 16, 9, 8), (8, 16, 5, 3), dict(stride=(2, 1), padding=(0, 1))),
    ((1, 48, 6, 6), (70, 48, 3, 3), dict(padding=1)),                        # rows past a tile's end
]


def _spy_tap_gathers(monkeypatch) -> list:
    """Count the kernels generated with a TapGather (one entry per kernel)."""
    seen = []
    setup = tinydl.kernels.gemm.TapGather.setup
    monkeypatch.setattr(tinydl.kernels.gemm.TapGather, "setup",
                        lambda self, *a: (seen.append(self), setup(self, *a))[1])
    return seen


@pytest.mark.parametrize("tile,xs,ws,kw,bias", with_paths(TAP_CASES, TILED))
def test_conv2d_tap_major(rng, monkeypatch, use_options, tile, xs, ws, kw, bias):
    """Every tiled variant reading its pixels through a TapGather (strides, dilation, groups, even and
    non-square kernels, partial tiles) equals torch, and so does the (ci, kh, kw) order it replaces."""
    force(use_options, tile)
    seen = _spy_tap_gathers(monkeypatch)
    x, w = rand(rng, *xs), rand(rng, *ws)
    b = rand(rng, ws[0]) if bias else None
    expected = TF.conv2d(*_torch(x, w, b), **kw)
    for tap in (True, False):
        use_options(tap_major=tap)
        seen.clear()
        out = run(lambda: F.conv2d(*_tiny(x, w, b), **kw), tile)
        assert len(seen) == tap, (tap, seen)
        assert_close(out, expected, **tol(ws[1] * ws[2] * ws[3]))


@pytest.mark.parametrize("tile", ["tile32", "tile128k16"])
def test_conv2d_tap_major_split_and_computed_weights(rng, monkeypatch, use_options, tile):
    """Split over K into slices of whole K steps (16 channels each), with the weight stored, computed in the
    kernel (w * 2) or viewed (a permute): the weight's k = tap * channels + ci is found in each form."""
    force(use_options, tile)
    use_options(force_split_k=2)
    seen = _spy_tap_gathers(monkeypatch)
    x, w = rand(rng, 2, 32, 6, 5), rand(rng, 24, 32, 3, 3)
    tx, tw = _tiny(x, w)
    xt, wt = _torch(x, w)
    for make in (lambda v: v, lambda v: v * 2, lambda v: v.permute(0, 1, 3, 2)):
        seen.clear()
        out = run(lambda: F.conv2d(tx, make(tw), padding=1), tile)
        assert [g.cin_g for g in seen] == [16], seen
        assert_close(out, TF.conv2d(xt, make(wt), padding=1), **tol(288))


@pytest.mark.skipif(not tinydl.runtime.get_runtime().has_f16, reason="adapter lacks shader-f16")
def test_conv2d_tap_major_in_float16(rng, monkeypatch, use_options):
    force(use_options, "tile64x128t128")
    seen = _spy_tap_gathers(monkeypatch)
    x, w = rand(rng, 2, 16, 6, 6), rand(rng, 40, 16, 3, 3)
    # float16 buffers (a cast in front would be fused into the conv's loads: no image in memory to gather from)
    tx, tw = tinydl.tensor(x.astype(np.float16)), tinydl.tensor(w.astype(np.float16))
    out = run(lambda: F.conv2d(tx, tw, padding=1), "tile64x128t128")
    assert len(seen) == 1
    ref = TF.conv2d(torch.from_numpy(x).half().float(), torch.from_numpy(w).half().float(), padding=1)
    assert out.dtype == tinydl.float16
    assert_close(out.float(), ref, rtol=1e-2, atol=2e-2, check_dtype=False)


@pytest.mark.parametrize("tile", ["tile128k16", "tile32"])
def test_tap_major_falls_back_where_a_k_step_would_span_taps(rng, monkeypatch, use_options, tile):
    """24 input channels: K steps of 16 would straddle two taps, so the conv gathers in (ci, kh, kw) order with
    every tile (even one whose steps of 8 would fit: its tile rules are for tap-major convs) and equals torch."""
    x, w = rand(rng, 1, 24, 6, 6), rand(rng, 8, 24, 3, 3)
    force(use_options, tile)
    seen = _spy_tap_gathers(monkeypatch)
    out = run(lambda: F.conv2d(*_tiny(x, w), padding=1), tile)
    assert not seen
    assert_close(out, TF.conv2d(*_torch(x, w), padding=1), **tol(216))


# -- im2col: the windows written as a matrix, then a plain GEMM (gemm.use_im2col) --------------------------
IM2COL_CASES = [(xs, ws, kw) for xs, ws, kw in CONV2D if kw.get("groups", 1) == 1 and ws[2] * ws[3] > 1 and xs[0]]


@pytest.mark.parametrize("split", [1, 2])
@pytest.mark.parametrize("tile", ["auto", "tile32", "tile64x64t128"])
@pytest.mark.parametrize("xs,ws,kw", IM2COL_CASES)
def test_conv2d_through_im2col(rng, use_options, xs, ws, kw, tile, split):
    """Every single-group conv wider than 1x1 of the conv2d cases (strides, dilations, asymmetric and 'same'
    padding, even kernels) through the written windows and a plain GEMM, whole and split over K."""
    use_options(force_im2col=True, force_tile=None if tile == "auto" else tile, force_split_k=split)
    use_options(direct_conv_max_cout_per_group=0)
    x, w, b = rand(rng, *xs), rand(rng, *ws), rand(rng, ws[0])
    with tinydl.debug.count_kernels() as c:
        out = F.conv2d(*_tiny(x, w, b), **kw)
        out.numpy()
    assert c.names[0].startswith("im2col "), c.names
    assert_close(out, TF.conv2d(*_torch(x, w, b), **kw), **tol(ws[1] * ws[2] * ws[3]))


def test_im2col_conv_fuses_its_prologue_and_epilogue(rng, use_options):
    """The window writer reads a permuted, scaled input through its loads; the GEMM carries bias, a BN-style
    scale and relu: 2 kernels. Edge infinities stay out of the padding (select, not * 0)."""
    use_options(force_im2col=True)
    x, w, b, s = rand(rng, 1, 6, 7, 3), rand(rng, 8, 3, 3, 3), rand(rng, 8), rand(rng, 1, 8, 1, 1)
    x[0, 0, :, :] = np.inf  # the top row; with dilation 2, output row 1 reads it only as its clamped padding
    tx, tw, tb, ts = _tiny(x, w, b, s)
    with tinydl.debug.count_kernels() as c:
        out = (F.conv2d(tx.permute(0, 3, 1, 2) * 0.5, tw, tb, padding=2, dilation=2) * ts).relu()
        out.numpy()
    assert len(c.names) == 2 and c.names[0].startswith("im2col ") and "conv2d+add+mul+relu" in c.names[1], c.names
    xt, wt, bt, st = _torch(x, w, b, s)
    expected = (TF.conv2d(xt.permute(0, 3, 1, 2) * 0.5, wt, bt, padding=2, dilation=2) * st).relu()
    assert torch.isfinite(expected[0, :, 1]).all()
    assert_close(out, expected, **tol(27))


@pytest.mark.skipif(not tinydl.runtime.get_runtime().has_f16, reason="adapter lacks shader-f16")
def test_im2col_conv_in_float16(rng, use_options):
    use_options(force_im2col=True)
    x, w = rand(rng, 2, 8, 6, 6), rand(rng, 16, 8, 3, 3)
    with tinydl.debug.count_kernels() as c:
        out = F.conv2d(tinydl.tensor(x).half(), tinydl.tensor(w).half(), padding=1)
        out.numpy()
    assert any(n.startswith("im2col ") and n.endswith("[window]") for n in c.names), c.names  # no vec4 of f16
    ref = TF.conv2d(torch.from_numpy(x).half().float(), torch.from_numpy(w).half().float(), padding=1)
    assert out.dtype == tinydl.float16
    assert_close(out.float(), ref, rtol=1e-2, atol=2e-2, check_dtype=False)


@pytest.mark.parametrize("hw,variant", [(6, "window4"), (5, "window")])
def test_im2col_writes_vec4s_where_the_pixels_allow(rng, use_options, hw, variant):
    """2 images of 6x6 = 72 pixels: 4 pixels of one k per thread, one vec4 store; 2 x 5x5 = 50: one per thread."""
    use_options(force_im2col=True)
    x, w = rand(rng, 2, 8, hw, hw), rand(rng, 16, 8, 3, 3)
    with tinydl.debug.count_kernels() as c:
        out = F.conv2d(*_tiny(x, w), padding=1)
        out.numpy()
    assert c.names[0].startswith("im2col ") and c.names[0].endswith(f"[{variant}]"), c.names
    assert_close(out, TF.conv2d(*_torch(x, w), padding=1), **tol(72))


@pytest.mark.parametrize("groups,cout,pixels,channels,taps,used", [
    (1, 256, 16 * 196, 256, 9, True),      # ResNet layer3 at batch 16: 29 MB of windows
    (1, 512, 49, 512, 9, True),            # layer4 at batch 1
    (1, 128, 16 * 784, 128, 9, False),     # 128 output channels: the gather is cheaper
    (1, 256, 16 * 196, 256, 1, False),     # 1x1: nothing to gather
    (2, 256, 16 * 196, 256, 9, False),     # grouped
    (1, 256, 64 * 3136, 256, 9, False),    # 1.8 GB of windows: over IM2COL_MAX_BYTES
])
def test_im2col_rule(groups, cout, pixels, channels, taps, used):
    assert tinydl.kernels.gemm.use_im2col(groups, cout, pixels, channels, taps, 4, 1 << 31) == used


@pytest.mark.parametrize("path", DIRECT_PATHS)
def test_direct_conv_padding_taps_ignore_edge_infinities(rng, use_options, path):
    """Taps in the zero padding read a clamped in-range element and discard it: an inf or nan on the edge must
    not leak into outputs whose window only overlaps it through the padding (inf * 0 would give nan)."""
    force(use_options, path)
    x, w = rand(rng, 1, 2, 6, 7), rand(rng, 2, 1, 3, 3)
    x[0, 0, :, 0], x[0, 1, 0, :] = np.inf, np.nan
    # dilation 2: output 1 reads input -1 (clamped to the edge, 0) but not input 0 itself, so it stays finite
    out = run(lambda: F.conv2d(*_tiny(x, w), padding=2, dilation=2, groups=2), path)
    expected = TF.conv2d(*_torch(x, w), padding=2, dilation=2, groups=2)
    assert torch.isfinite(expected[0, 0, :, 1]).all() and torch.isfinite(expected[0, 1, 1]).all()
    assert_close(out, expected, **tol(9))


@pytest.mark.parametrize("planes,out_hw,strip", [
    (16 * 144, (56, 56), (4, 2)),   # MobileNetV2-b16: the largest strip
    (144, (56, 56), (2, 2)),        # batch 1: 4x2 strips would leave too few threads
    (192, (28, 28), (1, 2)),
    (16 * 384, (14, 14), (8, 1)),   # narrow maps: single columns
    (16 * 960, (7, 7), (8, 1)),     # 7 rows in strips of 8: 8 / 7 under STRIP_MAX_WASTE
    (16 * 576, (7, 7), (4, 1)),     # 8x1 strips would leave too few threads
    (384, (14, 14), (1, 1)),
    (16 * 96, (5, 5), (1, 1)),      # every strip of 2+ rows wastes more than STRIP_MAX_WASTE on 5 rows
])
def test_direct_conv_strip_rule(planes, out_hw, strip):
    assert tinydl.kernels.window.choose_strip(planes, *out_hw) == strip


@pytest.mark.parametrize("k,variant", [(3, "direct4x2"), (7, "direct4x2"), (9, "direct")])
def test_direct_conv_unrolls_small_windows_and_loops_over_large_ones(rng, use_options, k, variant):
    """Windows of up to Options.max_unrolled_taps taps run as unrolled strips (here the rule's 4x2: enough threads),
    larger ones loop per output."""
    use_options(strip_min_threads=1)
    x, w = rand(rng, 1, 3, 28, 28), rand(rng, 3, 1, k, k)  # 28 wide: the wide strips
    out = run(lambda: F.conv2d(*_tiny(x, w), padding=k // 2, groups=3), variant)
    assert_close(out, TF.conv2d(*_torch(x, w), padding=k // 2, groups=3), **tol(k * k))


# -- conv1d ------------------------------------------------------------------------------------------------
CONV1D = [
    ((2, 3, 10), (4, 3, 3), {}),
    ((1, 3, 11), (5, 3, 3), dict(stride=2, padding=1)),
    ((1, 2, 9), (3, 2, 4), dict(padding=(2,), stride=(3,))),
    ((1, 3, 8), (4, 3, 3), dict(padding="same")),
    ((1, 3, 8), (2, 3, 4), dict(padding="same")),                # even kernel
    ((1, 3, 12), (2, 3, 4), dict(padding="same", dilation=3)),   # even kernel, odd dilation
    ((1, 3, 9), (4, 3, 3), dict(padding="valid")),
    ((1, 2, 12), (3, 2, 3), dict(dilation=2, padding=2)),
    ((1, 4, 8), (6, 2, 3), dict(groups=2)),
    ((2, 4, 8), (4, 1, 3), dict(groups=4, padding=1)),           # depthwise
    ((1, 3, 8), (9, 1, 3), dict(groups=3)),                      # depthwise, multiplier 3
    ((2, 5, 7), (3, 5, 1), {}),                                  # 1x1
    ((1, 3, 5), (2, 3, 5), {}),                                  # kernel = input length
]


@pytest.mark.parametrize("path,xs,ws,kw,bias", with_paths(CONV1D))
def test_conv1d(rng, use_options, path, xs, ws, kw, bias):
    force(use_options, path)
    x, w = rand(rng, *xs), rand(rng, *ws)
    b = rand(rng, ws[0]) if bias else None
    out = run(lambda: F.conv1d(*_tiny(x, w, b), **kw), path)
    assert_close(out, TF.conv1d(*_torch(x, w, b), **kw), **tol(ws[1] * ws[2]))


@pytest.mark.parametrize("path,kw,bias", with_paths([({},), (dict(padding="same", dilation=2),), (dict(stride=2),)]))
def test_conv1d_unbatched(rng, use_options, path, kw, bias):
    force(use_options, path)
    x, w, b = rand(rng, 3, 9), rand(rng, 4, 3, 3), rand(rng, 4) if bias else None
    out = run(lambda: F.conv1d(*_tiny(x, w, b), **kw), path)
    assert_close(out, TF.conv1d(*_torch(x, w, b), **kw), **tol(9))


# -- conv_transpose2d --------------------------------------------------------------------------------------
CONVT = [
    ((1, 3, 4, 4), (3, 5, 3, 3), {}),
    ((2, 3, 4, 5), (3, 4, 3, 3), dict(stride=2)),
    ((1, 3, 4, 4), (3, 4, 3, 3), dict(stride=2, padding=1)),
    ((1, 3, 4, 4), (3, 4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 2, 3, 4), (2, 3, 3, 2), dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2))),
    ((1, 2, 4, 4), (2, 3, 3, 3), dict(dilation=2)),
    ((1, 2, 4, 4), (2, 3, 3, 3), dict(dilation=2, output_padding=1)),  # output_padding < dilation
    ((1, 2, 3, 3), (2, 3, 3, 3), dict(stride=2, dilation=2, padding=2)),
    ((1, 4, 4, 4), (4, 2, 3, 3), dict(groups=2, stride=2)),
    ((1, 3, 4, 4), (3, 1, 3, 3), dict(groups=3, padding=1)),            # depthwise
    ((1, 2, 4, 4), (2, 3, 2, 4), {}),                                   # non-square kernel
    ((2, 5, 3, 3), (5, 4, 1, 1), {}),                                   # 1x1
    ((1, 4, 3, 3), (4, 2, 2, 2), dict(stride=2)),                       # the classic 2x upsample
]


@pytest.mark.parametrize("tile,xs,ws,kw,bias", with_paths(CONVT, GEMM_TILES))
def test_conv_transpose2d(rng, use_options, tile, xs, ws, kw, bias):
    force(use_options, tile)
    x, w = rand(rng, *xs), rand(rng, *ws)
    b = rand(rng, ws[1] * kw.get("groups", 1)) if bias else None
    out = run(lambda: F.conv_transpose2d(*_tiny(x, w, b), **kw), tile)
    # each output sums at most Cin/groups * KH * KW products (fewer where taps miss the strided input)
    assert_close(out, TF.conv_transpose2d(*_torch(x, w, b), **kw), **tol(ws[0] // kw.get("groups", 1) * ws[2] * ws[3]))


@pytest.mark.parametrize("tile", GEMM_TILES)
def test_conv_transpose2d_unbatched(rng, use_options, tile):
    force(use_options, tile)
    x, w, b = rand(rng, 3, 4, 4), rand(rng, 3, 2, 3, 3), rand(rng, 2)
    out = run(lambda: F.conv_transpose2d(*_tiny(x, w, b), stride=2, padding=1, output_padding=1), tile)
    assert_close(out, TF.conv_transpose2d(*_torch(x, w, b), stride=2, padding=1, output_padding=1), **tol(27))


def test_conv_transpose2d_direct_knob_still_gemm(rng, use_options):
    """The direct kernel is for forward convs only: with it forced, transposed convs still run (as GEMM)."""
    force(use_options, "direct")
    x, w = rand(rng, 1, 2, 3, 3), rand(rng, 2, 3, 3, 3)
    with tinydl.debug.count_kernels() as c:
        out = F.conv_transpose2d(*_tiny(x, w), stride=2)
        out.numpy()
    assert not any("[direct" in n for n in c.names), c.names
    assert_close(out, TF.conv_transpose2d(*_torch(x, w), stride=2), **tol(18))


# -- bad input ---------------------------------------------------------------------------------------------
def _both_raise(fn, args, kw, exc, match):
    """torch and tinydl raise the same exception type naming the same cause."""
    with pytest.raises(exc, match=match):
        getattr(TF, fn)(*_torch(*args), **kw)
    with pytest.raises(exc, match=match):
        getattr(F, fn)(*_tiny(*args), **kw)


BAD_CONV2D = [
    ((8, 8), (8, 3, 3, 3), None, {}, r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of "
                                     r"size: \[8, 8\]"),
    ((1, 1, 3, 8, 8), (8, 3, 3, 3), None, {}, r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got "
                                               r"input of size: \[1, 1, 3, 8, 8\]"),
    ((1, 4, 8, 8), (8, 3, 3, 3), None, {}, r"Given groups=1, weight of size \[8, 3, 3, 3\], expected input\[1, 4, 8, 8\] "
                                           r"to have 3 channels, but got 4 channels instead"),
    ((4, 8, 8), (8, 3, 3, 3), None, {}, r"expected input\[1, 4, 8, 8\] to have 3 channels, but got 4 channels"),
    ((1, 4, 8, 8), (6, 2, 3, 3), None, dict(groups=4),
     r"Given groups=4, expected weight to be divisible by 4 at dimension 0"),
    ((1, 6, 8, 8), (8, 2, 3, 3), None, dict(groups=3),
     r"Given groups=3, expected weight to be divisible by 3 at dimension 0"),
    ((1, 3, 4, 4), (8, 3, 5, 5), None, {}, r"Calculated padded input size per channel: \(4 x 4\)\. Kernel size: \(5 x 5\)"
                                           r"\. Kernel size can't be greater than actual input size"),
    ((1, 3, 4, 4), (8, 3, 7, 7), None, dict(padding=1), r"Calculated padded input size per channel: \(6 x 6\)\. Kernel "
                                                         r"size: \(7 x 7\)"),
    ((1, 3, 4, 4), (8, 3, 3, 3), None, dict(dilation=2), r"Kernel size: \(5 x 5\)\. Kernel size can't be greater"),
    ((2, 3, 0, 5), (4, 3, 1, 1), None, {}, r"Calculated padded input size per channel: \(0 x 5\)\. Kernel size: "
                                           r"\(1 x 1\)"),  # torch rejects size-0 spatial dims
    ((1, 3, 5, 5), (0, 3, 3, 3), None, {}, r"Given groups=1, expected weight to be at least 1 at dimension 0, but got "
                                           r"weight of size \[0, 3, 3, 3\] instead"),
    ((1, 3, 8, 8), (8, 3, 3, 3), None, dict(stride=0), "non-positive stride is not supported"),
    ((1, 3, 8, 8), (8, 3, 3, 3), None, dict(stride=(1, -1)), "non-positive stride is not supported"),
    ((1, 3, 8, 8), (8, 3, 3, 3), None, dict(dilation=0), "dilation should be greater than zero"),
    ((1, 3, 8, 8), (8, 3, 3, 3), None, dict(padding=-1), "negative padding is not supported"),
    ((1, 3, 8, 8), (8, 3, 3, 3), None, dict(groups=0), "non-positive groups is not supported"),
    ((1, 3, 8, 8), (8, 3, 3, 3), (7,), {}, r"Given weight of size \[8, 3, 3, 3\], expected bias to be 1-dimensional "
                                           r"with 8 elements, but got bias of size \[7\] instead"),
    ((1, 3, 8, 8), (8, 3, 3, 3), None, dict(padding="same", stride=2),
     "padding='same' is not supported for strided convolutions"),
    ((1, 3, 8, 8), (8, 3, 3, 3), None, dict(padding="full"), "Invalid padding string: 'full'"),
]


@pytest.mark.parametrize("xs,ws,bs,kw,msg", BAD_CONV2D)
def test_conv2d_bad_input(rng, xs, ws, bs, kw, msg):
    x, w, b = rand(rng, *xs), rand(rng, *ws), None if bs is None else rand(rng, *bs)
    _both_raise("conv2d", (x, w, b), kw, RuntimeError, msg)


@pytest.mark.parametrize("xs,ws,kw,msg", [
    ((1, 3, 8, 8), (8, 3, 3), {}, r"Expected 2D \(unbatched\) or 3D \(batched\) input to conv1d, but got input of "
                                  r"size: \[1, 3, 8, 8\]"),
    ((1, 4, 8), (8, 3, 3), {}, r"Given groups=1, weight of size \[8, 3, 3\], expected input\[1, 4, 8\] to have 3 "
                               r"channels, but got 4 channels instead"),
    ((1, 3, 4), (8, 3, 5), {}, r"Kernel size can't be greater than actual input size"),
    ((1, 3, 8), (8, 3, 3), dict(padding="same", stride=2), "padding='same' is not supported for strided convolutions"),
])
def test_conv1d_bad_input(rng, xs, ws, kw, msg):
    _both_raise("conv1d", (rand(rng, *xs), rand(rng, *ws)), kw, RuntimeError, msg)


@pytest.mark.parametrize("xs,ws,kw,msg", [
    ((8, 8), (3, 8, 3, 3), {}, r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv_transpose2d, but got input "
                               r"of size: \[8, 8\]"),
    ((1, 4, 8, 8), (3, 8, 3, 3), {}, r"Given transposed=1, weight of size \[3, 8, 3, 3\], expected input\[1, 4, 8, 8\] "
                                     r"to have 3 channels, but got 4 channels instead"),
    ((1, 3, 8, 8), (3, 8, 3, 3), dict(stride=2, output_padding=2),
     "output padding must be smaller than either stride or dilation"),
])
def test_conv_transpose2d_bad_input(rng, xs, ws, kw, msg):
    _both_raise("conv_transpose2d", (rand(rng, *xs), rand(rng, *ws)), kw, RuntimeError, msg)


def test_conv_transpose2d_bad_groups(rng):
    x, w = rand(rng, 1, 3, 8, 8), rand(rng, 3, 2, 3, 3)
    with pytest.raises(RuntimeError, match="Given groups=2, expected weight to be divisible by 2 at dimension 0"):
        TF.conv_transpose2d(*_torch(x, w), groups=2)
    with pytest.raises(RuntimeError, match="Given groups=2, expected weight to be divisible by 2 at dimension 0"):
        F.conv_transpose2d(*_tiny(x, w), groups=2)


def test_conv_transpose2d_bad_bias(rng):
    x, w, b = rand(rng, 1, 3, 8, 8), rand(rng, 3, 2, 3, 3), rand(rng, 3)
    msg = (r"Given transposed=1, weight of size \[3, 2, 3, 3\], expected bias to be 1-dimensional with 2 elements, "
           r"but got bias of size \[3\] instead")
    _both_raise("conv_transpose2d", (x, w, b), {}, RuntimeError, msg)


def test_conv2d_dtype_mismatch(rng):
    x, w = rand(rng, 1, 3, 5, 5), rand(rng, 4, 3, 3, 3)
    with pytest.raises(RuntimeError, match="should be the same|expected scalar type Float but found Half"):
        TF.conv2d(torch.from_numpy(x), torch.from_numpy(w).half())
    with pytest.raises(RuntimeError, match="should be the same"):
        F.conv2d(tinydl.tensor(x), tinydl.tensor(w).half())


def _gemm_wgsl(prefix):
    """The WGSL of the kernels named prefix... the test planned under the current options."""
    key = tinydl.options.current().plan_key
    return [s.wgsl for p in tinydl.schedule._plans.values() if p.key[-1] == key
            for s in p.steps if s.name.startswith(prefix)]


@pytest.mark.parametrize("tile", list(tinydl.kernels.gemm.TILES))
@pytest.mark.parametrize("hw,vec4", [(6, True), (5, False)])
def test_conv_epilogue_stores_runs_of_four_pixels_as_vec4(rng, monkeypatch, use_options, tile, hw, vec4):
    """Where each output image has a multiple of 4 pixels, a thread stores its 4 neighbouring pixels of a channel
    as one vec4, each pushed through the epilogue (scale, residual add, relu); else element by element. Both give
    the same values, bit for bit."""
    force(use_options, tile)
    x, w, b, s = rand(rng, 2, 5, hw, hw), rand(rng, 8, 5, 3, 3), rand(rng, 8), rand(rng, 1, 8, 1, 1)
    res = rand(rng, 2, 8, hw, hw)
    tx, tw, tb, ts, tres = _tiny(x, w, b, s, res)
    out = run(lambda: (F.conv2d(tx, tw, tb, padding=1) * ts + tres).relu(), tile).numpy()
    wgsl = _gemm_wgsl("conv2d")
    assert len(wgsl) == 1
    assert ("store_out4(" in wgsl[0]) == vec4 and ("array<vec4<f32>>" in wgsl[0]) == vec4
    xt, wt, bt, st, rest = _torch(x, w, b, s, res)
    assert_close(out, (TF.conv2d(xt, wt, bt, padding=1) * st + rest).relu(), **tol(45))
    use_options(vec4_stores=False)
    np.testing.assert_array_equal((F.conv2d(tx, tw, tb, padding=1) * ts + tres).relu().numpy(), out)
    assert not any("store_out4(" in src for src in _gemm_wgsl("conv2d"))


@pytest.mark.parametrize("k", [1, 3])
def test_float16_conv_loads_and_stores_runs_of_four(rng, monkeypatch, use_options, k):
    """A float16 conv binds its buffers as vec4<f16> where an f32 one would use vec4s: a 1x1 conv's weights and
    pixels load 4 at a time, and both store 4 pixels at a time (the 3x3 one gathers its pixels tap-major); the
    results are the same bits as element by element."""
    force(use_options, "tile32")
    x, w = rand(rng, 2, 16, 6, 6).astype(np.float16), rand(rng, 8, 16, k, k).astype(np.float16)
    tx, tw = tinydl.tensor(x), tinydl.tensor(w)
    out = run(lambda: F.conv2d(tx, tw, padding=k // 2).relu(), "tile32").numpy()
    wgsl = _gemm_wgsl("conv2d")
    assert len(wgsl) == 1 and "store_out4(" in wgsl[0] and "out: array<vec4<f16>>" in wgsl[0]
    assert ("fn load_a4(" in wgsl[0] and "fn load_b4(" in wgsl[0]) == (k == 1)
    assert out.dtype == np.float16
    ref = TF.conv2d(torch.from_numpy(x).float(), torch.from_numpy(w).float(), padding=k // 2).relu()
    assert_close(out.astype(np.float32), ref, rtol=1e-2, atol=3e-2, check_dtype=False)
    use_options(vec4_loads=False, vec4_stores=False)
    np.testing.assert_array_equal(F.conv2d(tx, tw, padding=k // 2).relu().numpy(), out)


@pytest.mark.parametrize("tile", list(tinydl.kernels.gemm.TILES))
@pytest.mark.parametrize("case", ["1x1", "1x1-odd-pixels", "1x1-stride2", "3x3", "grouped-1x1", "grouped-1x1-odd", "split"])
def test_conv_tiles_load_weights_and_pixels_as_vec4(rng, monkeypatch, use_options, tile, case):
    """1x1 conv tiles load the weights 4 input channels at a time where Cin/g is a multiple of 4 (wider kernels,
    whose input is an im2col gather, measured faster element by element), and a stride-1 conv's input 4 pixels at
    a time where each image has a multiple of 4 of them; the values are the same bits as element-by-element
    loads."""
    force(use_options, tile)
    cin, k, stride, hw, groups, split = 8, 1, 1, 6, 1, None
    if case == "1x1-odd-pixels":
        hw = 5
    elif case == "1x1-stride2":
        stride = 2
    elif case == "3x3":
        k = 3
    elif case == "grouped-1x1":
        groups = 2
    elif case == "grouped-1x1-odd":  # 3 input channels per group: rows of 3 weights
        cin, groups = 6, 2
    elif case == "split":
        split = 2
    use_options(force_split_k=split)
    x, w, b = rand(rng, 2, cin, hw, hw), rand(rng, 8, cin // groups, k, k), rand(rng, 8)
    tx, tw, tb = _tiny(x, w, b)

    def thunk():
        return F.conv2d(tx, tw, tb, stride=stride, padding=k // 2, groups=groups).relu()
    out = run(thunk, tile).numpy()
    t = tinydl.kernels.gemm.TILES[tile]
    wgsl = _gemm_wgsl("conv2d")
    assert len(wgsl) == 1
    assert ("fn load_a4(" in wgsl[0]) == (t.whole_vec4s(t.bm) and k == 1 and (cin // groups) % 4 == 0 and
                                          not (split and (cin // split) % 4))
    assert ("fn load_b4(" in wgsl[0]) == (t.whole_vec4s(t.bn) and k == 1 and stride == 1 and hw * hw % 4 == 0)
    xt, wt, bt = _torch(x, w, b)
    assert_close(out, TF.conv2d(xt, wt, bt, stride=stride, padding=k // 2, groups=groups).relu(), **tol(cin * k * k))
    use_options(vec4_loads=False)
    np.testing.assert_array_equal(thunk().numpy(), out)
    assert not any("load_a4" in s or "load_b4" in s for s in _gemm_wgsl("conv2d"))
