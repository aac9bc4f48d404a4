"""tinydl versions of what timm hides from torch.fx: functions it registers with `register_notrace_function` /
`torch.fx.wrap` (fx records each as ONE call_function node) and modules it registers with
`register_notrace_module` (fx leaves: their forward has control flow fx cannot trace). Each mirrors timm's math
with tinydl Tensor ops, inference only; the pos-embed resampling is tinydl's (nn/resample.py, as F.interpolate's
bicubic and antialiased modes).

Each registers with the op registry (registry.py) under timm's qualified name: functions with
`@implements(..., autowrap=True)` (the fx tracer keeps them whole), modules with `@layer` (builders of tinydl
modules with the same parameter/buffer names). Nothing here imports timm: a model built with timm has imported it
already.
"""
from __future__ import annotations

import math

from ..nn import functional as F
from ..nn.module import Module
from ..nn.resample import resample_2d
from .._tensor import Tensor, cat
from .registry import implements, layer


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
