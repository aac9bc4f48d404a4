"""F.grid_sample and F.affine_grid (torch's GridSampler formulas), composed from elementwise ops and row gathers.

grid_sample: each output pixel reads the input at the grid's (x, y[, z]) in [-1, 1]: the coordinate is unnormalized
to pixels, folded by the padding mode (border: clamped; reflection: mirrored, then clamped), and the input is read at
the interpolation's taps (nearest 1, bilinear 4 / trilinear 8, bicubic 16), each tap one GATHER of a pixel's
channels (the input as [pixels, C] rows) weighted by elementwise math; a tap outside the input reads 0. No loops:
every output element is one fused expression of its taps, so any size stays within a kernel's trip bound.
affine_grid: the base grid (x, y[, z], 1) of the output times each batch's theta, elementwise (K is 3 or 4)."""
from __future__ import annotations

import itertools
import math

from .. import dtypes
from .._tensor import Tensor, arange, full, stack, where
from ..indexing import gather_rows

MODES = {"bilinear": 0, "nearest": 1, "bicubic": 2}
PADDING_MODES = {"zeros": 0, "border": 1, "reflection": 2}
_CUBIC_A = -0.75  # torch's bicubic convolution coefficient


def _unnormalize(coord: Tensor, size: int, align_corners: bool) -> Tensor:
    if align_corners:
        return (coord + 1) * ((size - 1) / 2)
    return ((coord + 1) * size - 1) / 2


def _reflect(coord: Tensor, twice_low: int, twice_high: int) -> Tensor:
    """torch's reflect_coordinates: coord mirrored into [twice_low / 2, twice_high / 2]."""
    if twice_low == twice_high:
        return coord * 0
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    dist = (coord - low).abs()
    extra = dist.fmod(span)
    flips = (dist / span).floor()
    return where(flips.fmod(2) == 0, extra + low, (extra * -1 + span) + low)


def _fold(coord: Tensor, size: int, padding_mode: str, align_corners: bool) -> Tensor:
    """torch's compute_coordinates: border clamps into the input; reflection mirrors at its edges, then clamps."""
    if padding_mode == "zeros":
        return coord
    if padding_mode == "reflection":
        coord = _reflect(coord, 0, 2 * (size - 1)) if align_corners else _reflect(coord, -1, 2 * size - 1)
    return coord.clamp(0, size - 1)


class _Taps:
    """The input as rows of channels, read at integer pixel coordinates (one GATHER per tap)."""

    def __init__(self, x: Tensor):
        self.n, self.c, self.spatial = x.shape[0], x.shape[1], x.shape[2:]  # spatial: (H, W) or (D, H, W)
        k = len(self.spatial)
        self.rows = x.permute((0,) + tuple(range(2, 2 + k)) + (1,)).reshape(-1, self.c)
        self.batch = arange(self.n).reshape((self.n,) + (1,) * k) * math.prod(self.spatial)

    def read(self, pixel: list) -> Tensor:
        """The input at pixel = [x, y(, z)] (float tensors of integer values, the grid's shape [N, *out]), 0 where
        a coordinate falls outside; result [N, *out, C]."""
        sizes = self.spatial[::-1]  # x runs along W, y along H, z along D
        inside, lin, stride = None, self.batch, 1
        for p, size in zip(pixel, sizes):
            ok = (p >= 0) & (p <= size - 1)
            inside = ok if inside is None else inside & ok
            lin = lin + p.clamp(0, size - 1).to(dtypes.int32) * stride
            stride *= size
        value = gather_rows(self.rows, lin)  # in range by the clamp (a tap outside is masked below)
        return where(inside.unsqueeze(-1), value, 0.0)


def cubic_weights(t) -> list:
    """torch's get_cubic_upsample_coefficients: the weights of the taps at -1, 0, 1, 2 for a fraction t (a tinydl
    tensor, or a torch one: arithmetic only)."""
    a = _CUBIC_A

    def near(s):  # |s| <= 1
        return ((s * (a + 2) - (a + 3)) * s) * s + 1

    def far(s):  # 1 < |s| < 2
        return ((s * a - 5 * a) * s + 8 * a) * s - 4 * a

    return [far(t + 1), near(t), near(t * -1 + 1), far(t * -1 + 2)]


def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros",  # noqa: A002
                align_corners=None) -> Tensor:
    """torch.nn.functional.grid_sample: 4-D input [N, C, H, W] with grid [N, Ho, Wo, 2] (bilinear, nearest,
    bicubic), or 5-D input [N, C, D, H, W] with grid [N, Do, Ho, Wo, 3] (bilinear, i.e. trilinear, and nearest);
    padding zeros, border or reflection; align_corners None is False, as torch."""
    if mode not in MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', but "
                         f"got: '{mode}'")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
                         f"'reflection', but got: '{padding_mode}'")
    _check_grid(input, grid, mode)
    align = bool(align_corners)
    out_dtype = input.dtype
    x, g = input.float(), grid.float()  # float16 computed in float32, rounded once
    taps = _Taps(x)
    sizes = x.shape[2:][::-1]
    coords = [_unnormalize(g[..., i], sizes[i], align) for i in range(len(sizes))]
    if mode == "bicubic":
        out = _bicubic(taps, coords, sizes, padding_mode, align)
    else:
        coords = [_fold(c, s, padding_mode, align) for c, s in zip(coords, sizes)]
        if mode == "nearest":
            out = taps.read([c.round() for c in coords])  # round half to even, as torch's nearbyint
        else:
            low = [c.floor() for c in coords]
            frac = [c - f for c, f in zip(coords, low)]
            out = None
            for corner in itertools.product((0, 1), repeat=len(coords)):
                weight = None
                for o, t in zip(corner, frac):
                    w = t if o else t * -1 + 1
                    weight = w if weight is None else weight * w
                term = taps.read([f + o for f, o in zip(low, corner)]) * weight.unsqueeze(-1)
                out = term if out is None else out + term
    k = len(sizes)
    return out.permute((0, k + 1) + tuple(range(1, k + 1))).to(out_dtype)


def _bicubic(taps: _Taps, coords: list, sizes: tuple, padding_mode: str, align: bool) -> Tensor:
    ix, iy = coords
    x0, y0 = ix.floor(), iy.floor()
    wx, wy = cubic_weights(ix - x0), cubic_weights(iy - y0)
    out = None
    for j in range(4):  # rows at y0 - 1 .. y0 + 2, each interpolated along x first (torch's order)
        y = _fold(y0 + (j - 1), sizes[1], padding_mode, align).floor()
        row = None
        for i in range(4):
            xi = _fold(x0 + (i - 1), sizes[0], padding_mode, align).floor()
            term = taps.read([xi, y]) * wx[i].unsqueeze(-1)
            row = term if row is None else row + term
        term = row * wy[j].unsqueeze(-1)
        out = term if out is None else out + term
    return out


def _check_grid(input: Tensor, grid: Tensor, mode: str) -> None:
    if input.ndim not in (4, 5) or grid.ndim != input.ndim:
        raise RuntimeError(f"grid_sampler(): expected 4D or 5D input and grid with same number of dimensions, but got "
                           f"input with sizes {list(input.shape)} and grid with sizes {list(grid.shape)}")
    names = {dtypes.float32: "Float", dtypes.float16: "Half", dtypes.int32: "Long", dtypes.bool_: "Bool"}
    if input.dtype != grid.dtype:
        raise RuntimeError(f"expected scalar type {names[input.dtype]} but found {names[grid.dtype]}")
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f"\"grid_sampler_{input.ndim - 2}d_cpu_kernel_impl\" not implemented for "
                                  f"'{names[input.dtype]}'")
    if input.shape[0] != grid.shape[0]:
        raise RuntimeError(f"grid_sampler(): expected grid and input to have same batch size, but got input with "
                           f"sizes {list(input.shape)} and grid with sizes {list(grid.shape)}")
    k = input.ndim - 2
    if grid.shape[-1] != k:
        raise RuntimeError(f"grid_sampler(): expected grid to have size {k} in last dimension, but got grid with "
                           f"sizes {list(grid.shape)}")
    empty = [2 + i for i, s in enumerate(input.shape[2:]) if s <= 0]
    if empty:
        raise RuntimeError(f"grid_sampler(): expected input to have non-empty spatial dimensions, but input has "
                           f"sizes {list(input.shape)} with dimension {empty[0]} being empty")
    if mode == "bicubic" and k == 3:
        raise RuntimeError("grid_sampler(): bicubic interpolation only supports 4D input")


def _base_line(steps: int, align_corners: bool) -> Tensor:
    """torch's linspace_from_neg_one: `steps` points over [-1, 1] (pixel centres unless align_corners)."""
    if steps <= 1:
        return full((steps,), 0.0)
    line = arange(steps).float() * (2.0 / (steps - 1)) - 1.0
    return line * ((steps - 1) / steps) if not align_corners else line


def affine_grid(theta: Tensor, size, align_corners=None) -> Tensor:
    """torch.nn.functional.affine_grid: the sampling grid [N, H, W, 2] of 2-D affine matrices theta [N, 2, 3]
    (size [N, C, H, W]), or [N, D, H, W, 3] of 3-D ones [N, 3, 4] (size [N, C, D, H, W])."""
    size = tuple(int(s) for s in size)
    if not theta.dtype.is_floating_point:
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype.name}")
    if len(size) == 4:
        k = 2
    elif len(size) == 5:
        k = 3
    else:
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
                                  f"respectively. Got size {size}.")
    if theta.ndim != 3 or theta.shape[1:] != (k, k + 1):
        raise ValueError(f"Expected a batch of {k}D affine matrices of shape Nx{k}x{k + 1} for size {size}. Got "
                         f"torch.Size({list(theta.shape)}).")
    if theta.shape[0] != size[0]:
        raise RuntimeError(f"affine_grid(): {theta.shape[0]} affine matrices for a size of batch {size[0]}")
    if min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    spatial = size[2:]  # (H, W) or (D, H, W); the grid's last axis holds x (W), y (H)[, z (D)]
    align = bool(align_corners)
    lines = []
    for axis, steps in enumerate(spatial[::-1]):  # x, y, z
        dim = k - 1 - axis  # its position among the spatial dims
        lines.append(_base_line(steps, align).reshape((1,) + tuple(steps if i == dim else 1 for i in range(k))))
    th = theta.float()
    out = []
    for r in range(k):
        coef = [th[:, r, c].reshape((size[0],) + (1,) * k) for c in range(k + 1)]
        acc = lines[0] * coef[0]
        for c in range(1, k):
            acc = acc + lines[c] * coef[c]
        out.append(acc + coef[k])
    return stack(out, -1).to(theta.dtype)
