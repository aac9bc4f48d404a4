"""Resampling by dense matrices: interpolate's bicubic mode and its antialiased bilinear/bicubic/lanczos modes (torch's
upsample_bicubic2d and _upsample_{bilinear,bicubic,lanczos}2d_aa formulas). Each is separable: one [out, in] matrix per
spatial axis, built on the host from the sizes alone (cached), so out = Mh @ x @ Mw^T: two matmuls, computed in
float32. Nearest and (bi)linear without antialias are INTERP nodes instead (functional.interpolate)."""
from __future__ import annotations

import functools
import math

import numpy as np

from .._tensor import Tensor, tensor
from .. import dtypes


def _cubic_aa(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _linear_aa(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _lanczos_aa(x: float) -> float:
    """Lanczos-3 (PIL's filter, torch's): sinc(x) * sinc(x / 3) on [-3, 3)."""
    def sinc(v):
        return 1.0 if v == 0.0 else math.sin(math.pi * v) / (math.pi * v)
    return sinc(x) * sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


_AA_FILTERS = {"bilinear": (2, _linear_aa), "bicubic": (4, _cubic_aa), "lanczos": (6, _lanczos_aa)}  # taps, filter


def _scale(n_in: int, n_out: int, align_corners: bool, scale) -> float:
    """torch's area_pixel_compute_scale: input pixels per output pixel (scale: a given scale_factor)."""
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n_in / n_out


@functools.lru_cache(maxsize=64)
def resample_matrix(n_in: int, n_out: int, mode: str, antialias: bool, align_corners: bool,
                    scale: float | None = None) -> np.ndarray:
    """M with interpolate(x)[..., i] == sum_j M[i, j] * x[..., j] along one axis, for torch's 'bilinear' and
    'bicubic' modes with and without antialias, and 'lanczos' (antialiased only, as torch's); scale: the axis'
    scale_factor, if one was given."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    if mode not in _AA_FILTERS or mode == "lanczos" and not antialias:
        raise NotImplementedError(f"resampling mode {mode!r} is not supported (bilinear, bicubic, antialiased "
                                  f"lanczos are)")
    s = _scale(n_in, n_out, align_corners, scale)
    if antialias:
        interp, filt = _AA_FILTERS[mode]
        support = interp * 0.5 * s if s >= 1.0 else interp * 0.5
        inv = 1.0 / s if s >= 1.0 else 1.0
        for i in range(n_out):
            center = s * (i + 0.5)
            lo = max(int(center - support + 0.5), 0)
            hi = min(int(center + support + 0.5), n_in)
            w = np.array([filt((j - center + 0.5) * inv) for j in range(lo, hi)])
            total = w.sum()
            m[i, lo:hi] = w / total if total != 0.0 else w
        return m
    for i in range(n_out):
        src = s * i if align_corners else s * (i + 0.5) - 0.5
        if mode == "bilinear":
            src = max(src, 0.0) if not align_corners else src
            x0 = min(int(math.floor(src)), n_in - 1)
            x1 = min(x0 + 1, n_in - 1)
            t = src - x0
            m[i, x0] += 1.0 - t
            m[i, x1] += t
        else:  # torch's bicubic: A = -0.75, taps x-1..x+2 clamped to the border
            x0 = int(math.floor(src))
            t = src - x0
            A = -0.75
            c1 = lambda v: ((A + 2) * v - (A + 3)) * v * v + 1  # noqa: E731  |v| <= 1
            c2 = lambda v: ((A * v - 5 * A) * v + 8 * A) * v - 4 * A  # noqa: E731  1 < |v| < 2
            for k, w in zip(range(-1, 3), (c2(t + 1), c1(t), c1(1 - t), c2(2 - t))):
                m[i, min(max(x0 + k, 0), n_in - 1)] += w
    return m


def resample_2d(x: Tensor, size, mode: str = "bicubic", antialias: bool = False, align_corners=None,
                scales=(None, None)) -> Tensor:
    """interpolate(x [..., H, W], size, mode) as two matmuls with constant resampling matrices (in float32; the
    result in x's dtype)."""
    H, W = x.shape[-2:]
    oh, ow = size
    mh = tensor(resample_matrix(H, oh, mode, bool(antialias), bool(align_corners), scales[0]).astype(np.float32))
    mw = tensor(resample_matrix(W, ow, mode, bool(antialias), bool(align_corners), scales[1]).astype(np.float32))
    x32 = x if x.dtype == dtypes.float32 else x.float()
    out = (mh @ x32) @ mw.T
    return out if x.dtype == dtypes.float32 else out.to(x.dtype)
