"""F.grid_sample and F.affine_grid (tinydl/nn/grid_sample.py) against torch CPU: every mode, padding mode and
align_corners, 4-D and 5-D, grids reaching past the input, exact half-pixel coordinates (nearest rounds half to even),
float16; torch's errors; a spatial transformer converted on both paths, and the ATen overloads."""
import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
from tinydl.interop import registry
from tinydl.nn import functional as F
from tinydl.testing import assert_close


@pytest.mark.parametrize("mode,padding_mode,align_corners",
                         list(itertools.product(["bilinear", "nearest", "bicubic"], ["zeros", "border", "reflection"],
                                                [False, True])))
def test_grid_sample_2d(rng, mode, padding_mode, align_corners):
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    grid = (rng.random((2, 4, 6, 2)) * 3.2 - 1.6).astype(np.float32)  # reaches past the input on every side
    ref = TF.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), mode, padding_mode, align_corners)
    out = F.grid_sample(tinydl.tensor(x), tinydl.tensor(grid), mode, padding_mode, align_corners)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode,padding_mode,align_corners",
                         list(itertools.product(["bilinear", "nearest"], ["zeros", "border", "reflection"],
                                                [False, True])))
def test_grid_sample_3d(rng, mode, padding_mode, align_corners):
    x = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    grid = (rng.random((2, 3, 2, 4, 3)) * 3.2 - 1.6).astype(np.float32)
    ref = TF.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), mode, padding_mode, align_corners)
    out = F.grid_sample(tinydl.tensor(x), tinydl.tensor(grid), mode, padding_mode, align_corners)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_exact_pixels_and_halves(rng, align_corners):
    """Grid points on pixel centres and exactly halfway between them: nearest rounds half to even, as torch's
    nearbyint; bilinear and bicubic land on the taps' exact weights."""
    W, H = 6, 4
    x = rng.standard_normal((1, 2, H, W)).astype(np.float32)
    px = np.arange(-1.0, W + 0.5, 0.5, dtype=np.float32)  # pixel coordinates, halves included
    py = np.arange(-1.0, H + 0.5, 0.5, dtype=np.float32)
    norm = (lambda p, n: p * 2 / (n - 1) - 1) if align_corners else (lambda p, n: (2 * p + 1) / n - 1)
    gx, gy = np.meshgrid(norm(px, W), norm(py, H))
    grid = np.stack([gx, gy], -1)[None].astype(np.float32)
    for mode in ("nearest", "bilinear", "bicubic"):
        ref = TF.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), mode, "zeros", align_corners)
        assert_close(F.grid_sample(tinydl.tensor(x), tinydl.tensor(grid), mode, "zeros", align_corners), ref,
                     rtol=1e-4, atol=1e-5)


def test_grid_sample_half(rng):
    x = rng.standard_normal((1, 2, 6, 5)).astype(np.float16)
    grid = (rng.random((1, 3, 4, 2)) * 2 - 1).astype(np.float16)
    ref = TF.grid_sample(torch.from_numpy(x).float(), torch.from_numpy(grid).float(), align_corners=False).half()
    out = F.grid_sample(tinydl.tensor(x), tinydl.tensor(grid), align_corners=False)
    assert_close(out, ref, rtol=2e-3, atol=2e-3)  # torch's half kernel rounds in between; tinydl once, at the end


@pytest.mark.parametrize("size", [(2, 3, 5, 7), (2, 1, 1, 4), (2, 2, 3, 4, 5), (2, 1, 1, 1, 3)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid(rng, size, align_corners):
    k = len(size) - 2
    theta = rng.standard_normal((2, k, k + 1)).astype(np.float32)
    ref = TF.affine_grid(torch.from_numpy(theta), size, align_corners)
    assert_close(F.affine_grid(tinydl.tensor(theta), size, align_corners), ref, rtol=1e-5, atol=1e-6)


def test_errors_match_torch():
    x, g = np.zeros((1, 2, 3, 4), np.float32), np.zeros((1, 2, 2, 2), np.float32)
    tx, tg, dx, dg = torch.from_numpy(x), torch.from_numpy(g), tinydl.tensor(x), tinydl.tensor(g)
    cases = [
        (lambda: TF.grid_sample(tx, tg.half(), align_corners=False), lambda: F.grid_sample(dx, dg.half())),
        (lambda: TF.grid_sample(tx.long(), tg.long(), align_corners=False), lambda: F.grid_sample(dx.int(), dg.int())),
        (lambda: TF.grid_sample(tx, tg[..., :1], align_corners=False), lambda: F.grid_sample(dx, dg[..., :1])),
        (lambda: TF.grid_sample(tx, torch.zeros(2, 2, 2, 2), align_corners=False),
         lambda: F.grid_sample(dx, tinydl.zeros(2, 2, 2, 2))),
        (lambda: TF.grid_sample(tx, tg, mode="area"), lambda: F.grid_sample(dx, dg, mode="area")),
        (lambda: TF.grid_sample(tx, tg, padding_mode="circular"),
         lambda: F.grid_sample(dx, dg, padding_mode="circular")),
        (lambda: TF.grid_sample(tx[None], torch.zeros(1, 1, 2, 2, 3), mode="bicubic", align_corners=False),
         lambda: F.grid_sample(dx[None], tinydl.zeros(1, 1, 2, 2, 3), mode="bicubic")),
        (lambda: TF.grid_sample(torch.zeros(1, 2, 0, 4), tg, align_corners=False),
         lambda: F.grid_sample(tinydl.zeros(1, 2, 0, 4), dg)),
        (lambda: TF.affine_grid(torch.zeros(1, 2, 3), (1, 1, 2), align_corners=False),
         lambda: F.affine_grid(tinydl.zeros(1, 2, 3), (1, 1, 2))),
        (lambda: TF.affine_grid(torch.zeros(1, 3, 3), (1, 1, 2, 2), align_corners=False),
         lambda: F.affine_grid(tinydl.zeros(1, 3, 3), (1, 1, 2, 2))),
        (lambda: TF.affine_grid(torch.zeros(1, 2, 3), (1, 1, 0, 2), align_corners=False),
         lambda: F.affine_grid(tinydl.zeros(1, 2, 3), (1, 1, 0, 2))),
        (lambda: TF.affine_grid(torch.zeros(1, 2, 3), (1, 1, 2, 2, 2), align_corners=False),
         lambda: F.affine_grid(tinydl.zeros(1, 2, 3), (1, 1, 2, 2, 2))),
    ]
    for torch_call, tinydl_call in cases:
        with pytest.raises(Exception) as ref:
            torch_call()
        with pytest.raises(type(ref.value), match=re.escape(str(ref.value).splitlines()[0])):
            tinydl_call()
    with pytest.raises(ValueError, match="Expected theta to have floating point type"):
        F.affine_grid(tinydl.zeros(1, 2, 3, dtype=tinydl.int32), (1, 1, 2, 2))
    with pytest.raises(RuntimeError, match="2 affine matrices for a size of batch 1"):
        F.affine_grid(tinydl.zeros(2, 2, 3), (1, 1, 2, 2))
    with pytest.raises(RuntimeError, match="expected 4D or 5D input and grid with same number of dimensions"):
        F.grid_sample(dx[0], dg[0])


class SpatialTransformer(torch.nn.Module):
    def __init__(self, traceable):
        super().__init__()
        self.loc = torch.nn.Linear(3 * 6 * 8, 6)
        self.traceable = traceable

    def forward(self, x):
        if not self.traceable:
            for _ in range(x.shape[0]):  # fx cannot trace this loop; torch.export can
                pass
        theta = self.loc(x.flatten(1)).view(-1, 2, 3) * 0.5
        grid = TF.affine_grid(theta, (x.shape[0], x.shape[1], 5, 7), align_corners=False)
        a = TF.grid_sample(x, grid, align_corners=False)
        b = TF.grid_sample(x, grid, mode="bicubic", padding_mode="reflection", align_corners=True)
        c = TF.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)
        return a + b + c


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_spatial_transformer_converts_on_both_paths(rng, path):
    torch.manual_seed(0)
    m = SpatialTransformer(path == "fx").eval()
    x = torch.from_numpy(rng.standard_normal((2, 3, 6, 8)).astype(np.float32))
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == path
    assert_close(tm(tinydl.tensor(x.numpy())), m(x), rtol=1e-4, atol=1e-4)


def test_aten_overloads(rng):
    x = torch.from_numpy(rng.standard_normal((1, 2, 4, 5)).astype(np.float32))
    grid = torch.from_numpy((rng.random((1, 3, 3, 2)) * 2.4 - 1.2).astype(np.float32))
    for name in ("grid_sampler", "grid_sampler_2d"):
        for mode, padding in itertools.product(range(3), range(3)):
            fn = getattr(torch.ops.aten, name).default
            out = registry.lookup(f"aten.{name}.default")(tinydl.tensor(x.numpy()), tinydl.tensor(grid.numpy()),
                                                          mode, padding, mode == 1)
            assert_close(out, fn(x, grid, mode, padding, mode == 1), rtol=1e-4, atol=1e-5)
    theta = torch.from_numpy(rng.standard_normal((2, 3, 4)).astype(np.float32))
    out = registry.lookup("aten.affine_grid_generator.default")(tinydl.tensor(theta.numpy()), [2, 1, 3, 4, 5], True)
    assert_close(out, torch.ops.aten.affine_grid_generator.default(theta, [2, 1, 3, 4, 5], True), rtol=1e-5, atol=1e-6)
