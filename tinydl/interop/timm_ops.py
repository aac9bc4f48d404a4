"""tinydl versions of what timm hides from torch.fx: functions it registers with `register_notrace_function` /
`torch.fx.wrap` (fx records each as ONE call_function node) and modules it registers with
`register_notrace_module` (fx leaves: their forward has control flow fx cannot trace). Each mirrors timm's math
with tinydl Tensor ops, inference only.

Each registers with the op registry (registry.py) under timm's qualified name: functions with
`@implements(..., autowrap=True)` (the fx tracer keeps them whole), modules with `@layer` (builders of tinydl
modules with the same parameter/buffer names). Nothing here imports timm: a model built with timm has imported it
already.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..nn import functional as F
from ..nn.module import Module
from ..tensor import Tensor, cat, tensor
from .registry import implements, layer


# -- resampling matrices (the separable 1-d filters of torch's interpolate, as dense [out, in] matrices) -----
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


@functools.lru_cache(maxsize=64)
def resample_matrix(n_in: int, n_out: int, mode: str, antialias: bool, align_corners: bool) -> np.ndarray:
    """M with interpolate(x)[..., i] == sum_j M[i, j] * x[..., j] along one axis, for torch's 'bilinear' and
    'bicubic' modes with and without antialias (torch's _upsample_*_aa and upsample_bicubic2d formulas)."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    if mode not in ("bilinear", "bicubic"):
        raise NotImplementedError(f"resampling mode {mode!r} is not supported (bilinear, bicubic are)")
    if antialias:
        if align_corners:
            raise NotImplementedError("antialiased resampling with align_corners=True is not supported")
        scale = n_in / n_out
        interp = 4 if mode == "bicubic" else 2
        filt = _cubic_aa if mode == "bicubic" else _linear_aa
        support = interp * 0.5 * scale if scale >= 1.0 else interp * 0.5
        inv = 1.0 / scale if scale >= 1.0 else 1.0
        for i in range(n_out):
            center = scale * (i + 0.5)
            lo = max(int(center - support + 0.5), 0)
            hi = min(int(center + support + 0.5), n_in)
            w = np.array([filt((j - center + 0.5) * inv) for j in range(lo, hi)])
            total = w.sum()
            m[i, lo:hi] = w / total if total != 0.0 else w
        return m
    if align_corners:
        scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        scale = n_in / n_out
    for i in range(n_out):
        src = scale * i if align_corners else scale * (i + 0.5) - 0.5
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


def resample_2d(x: Tensor, size, mode: str = "bicubic", antialias: bool = False, align_corners=None) -> Tensor:
    """interpolate(x [N, C, H, W], size, mode) as two matmuls with constant resampling matrices."""
    H, W = x.shape[-2:]
    oh, ow = size
    mh = tensor(resample_matrix(H, oh, mode, bool(antialias), bool(align_corners)).astype(np.float32))
    mw = tensor(resample_matrix(W, ow, mode, bool(antialias), bool(align_corners)).astype(np.float32))
    return (mh @ x) @ mw.T


# -- timm.layers.pos_embed ---------------------------------------------------------------------------------
@implements("timm.layers.pos_embed.resample_abs_pos_embed", autowrap=True)
def resample_abs_pos_embed(posemb: Tensor, new_size, old_size=None, num_prefix_tokens: int = 1,
                           interpolation: str = "bicubic", antialias: bool = True, verbose: bool = False,
                           align_corners=None) -> Tensor:
    """timm's resample_abs_pos_embed: the [1, prefix + H*W, C] table resized to new_size (bicubic, antialiased by
    default) for an input of another resolution; unchanged when the grid already matches."""
    num_pos_tokens = posemb.shape[1]
    num_new_tokens = new_size[0] * new_size[1] + num_prefix_tokens
    if num_new_tokens == num_pos_tokens:
        if old_size is not None and old_size[0] == new_size[0] and old_size[1] == new_size[1]:
            return posemb
        if old_size is None and new_size[0] == new_size[1]:
            return posemb
    if old_size is None:
        hw = int(math.sqrt(num_pos_tokens - num_prefix_tokens))
        old_size = hw, hw
    if num_prefix_tokens:
        prefix, posemb = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    else:
        prefix = None
    dim = posemb.shape[-1]
    orig = posemb.dtype
    grid = posemb.float().reshape(1, old_size[0], old_size[1], -1).permute(0, 3, 1, 2)
    grid = resample_2d(grid, tuple(new_size), interpolation, antialias, align_corners)
    posemb = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(orig)
    return cat([prefix, posemb], 1) if prefix is not None else posemb


@implements("timm.layers.pos_embed.resample_abs_pos_embed_nhwc", autowrap=True)
def resample_abs_pos_embed_nhwc(posemb: Tensor, new_size, interpolation: str = "bicubic", antialias: bool = True,
                                verbose: bool = False) -> Tensor:
    if new_size[0] == posemb.shape[-3] and new_size[1] == posemb.shape[-2]:
        return posemb
    orig = posemb.dtype
    grid = posemb.float().reshape(1, *posemb.shape[-3:]).permute(0, 3, 1, 2)
    grid = resample_2d(grid, tuple(new_size), interpolation, antialias)
    return grid.permute(0, 2, 3, 1).to(orig)


# -- leaf modules --------------------------------------------------------------------------------------------
@layer("timm.models.efficientvit_mit.LiteMLA")
class LiteMLA(Module):
    """timm.models.efficientvit_mit.LiteMLA (EfficientViT-MIT's multi-scale linear attention); timm keeps it from
    fx because its forward branches on the device type."""

    def __init__(self, tm, convert_child):
        super().__init__()
        self.dim, self.eps = tm.dim, tm.eps
        for name in ("qkv", "aggreg", "kernel_func", "proj"):
            self.add_module(name, convert_child(getattr(tm, name)))

    def forward(self, x: Tensor) -> Tensor:
        B, _, H, W = x.shape
        qkv = self.qkv(x)
        ms = cat([qkv] + [op(qkv) for op in self.aggreg], 1)
        ms = ms.reshape(B, -1, 3 * self.dim, H * W).transpose(-1, -2)
        q, k, v = ms.chunk(3, -1)
        q, k = self.kernel_func(q), self.kernel_func(k)
        v = F.pad(v, (0, 1), mode="constant", value=1.0)
        out = q.float() @ (k.float().transpose(-1, -2) @ v.float())
        out = (out[..., :-1] / (out[..., -1:] + self.eps)).to(x.dtype)
        return self.proj(out.transpose(-1, -2).reshape(B, -1, H, W))
