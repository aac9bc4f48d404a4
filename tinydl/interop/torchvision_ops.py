"""tinydl versions of the functions torchvision hides from torch.fx (`torch.fx.wrap`): fx records each as ONE
call_function node, so from_torch needs them as whole functions. Each mirrors torchvision's math with tinydl Tensor
ops (inference only: the training branches - dropout, stochastic depth - are identities in eval mode).

Each registers with the op registry (registry.py) under torchvision's qualified name (module path + name).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..nn import functional as F
from .._tensor import Tensor, cat, tensor, zeros
from .registry import implements
from .torchvision_batched import BATCHED_NMS


@implements("torchvision.ops.stochastic_depth.stochastic_depth")
def stochastic_depth(input: Tensor, p: float, mode: str, training: bool = True) -> Tensor:
    """torchvision.ops.stochastic_depth: drops whole residual branches while training, identity in eval."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ["batch", "row"]:
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    if training and p != 0.0:
        raise RuntimeError("tinydl is inference only: stochastic_depth with training=True drops random branches; "
                           "call model.eval()")
    return input


@implements("torchvision.models.swin_transformer._patch_merging_pad")
def _patch_merging_pad(x: Tensor) -> Tensor:
    """Swin's PatchMerging: pad H, W to even, then the four 2x2 phases side by side on the channels."""
    H, W, _ = x.shape[-3:]
    x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
    x0 = x[..., 0::2, 0::2, :]
    x1 = x[..., 1::2, 0::2, :]
    x2 = x[..., 0::2, 1::2, :]
    x3 = x[..., 1::2, 1::2, :]
    return cat([x0, x1, x2, x3], -1)


@implements("torchvision.models.swin_transformer._get_relative_position_bias")
def _get_relative_position_bias(relative_position_bias_table: Tensor, relative_position_index: Tensor,
                                window_size) -> Tensor:
    """Swin: the (1, heads, N, N) bias, rows of the table picked by the (N*N,) index (a gather)."""
    N = window_size[0] * window_size[1]
    bias = relative_position_bias_table[relative_position_index]
    return bias.reshape(N, N, -1).permute(2, 0, 1).unsqueeze(0)


@functools.lru_cache(maxsize=64)
def _shift_mask(pad_H: int, pad_W: int, wh: int, ww: int, sh: int, sw: int) -> Tensor:
    """The shifted-window attention mask (num_windows, N, N): 0 within a region, -100 across regions. It depends
    on shapes only, so it is built once on the host (torchvision writes it in place) and uploaded once."""
    mask = np.zeros((pad_H, pad_W), np.float32)
    count = 0
    for h in ((0, -wh), (-wh, -sh), (-sh, None)):
        for w in ((0, -ww), (-ww, -sw), (-sw, None)):
            mask[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    num_windows = (pad_H // wh) * (pad_W // ww)
    mask = mask.reshape(pad_H // wh, wh, pad_W // ww, ww).transpose(0, 2, 1, 3).reshape(num_windows, wh * ww)
    diff = mask[:, None, :] - mask[:, :, None]
    return tensor(np.where(diff != 0, np.float32(-100.0), np.float32(0.0)))


@implements("torchvision.models.swin_transformer.shifted_window_attention")
def shifted_window_attention(input: Tensor, qkv_weight: Tensor, proj_weight: Tensor, relative_position_bias: Tensor,
                             window_size, num_heads: int, shift_size, attention_dropout: float = 0.0,
                             dropout: float = 0.0, qkv_bias: Tensor | None = None, proj_bias: Tensor | None = None,
                             logit_scale: Tensor | None = None, training: bool = True) -> Tensor:
    """torchvision.models.swin_transformer.shifted_window_attention (Swin V1, and V2's cosine attention)."""
    B, H, W, C = input.shape
    pad_r = (window_size[1] - W % window_size[1]) % window_size[1]
    pad_b = (window_size[0] - H % window_size[0]) % window_size[0]
    x = F.pad(input, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_H, pad_W, _ = x.shape

    shift_size = list(shift_size)
    if window_size[0] >= pad_H:  # a window covering the map: no shift
        shift_size[0] = 0
    if window_size[1] >= pad_W:
        shift_size[1] = 0
    shifted = sum(shift_size) > 0
    if shifted:
        x = x.roll((-shift_size[0], -shift_size[1]), (1, 2))

    # partition windows
    num_windows = (pad_H // window_size[0]) * (pad_W // window_size[1])
    x = x.reshape(B, pad_H // window_size[0], window_size[0], pad_W // window_size[1], window_size[1], C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B * num_windows, window_size[0] * window_size[1], C)

    # multi-head attention
    if logit_scale is not None and qkv_bias is not None:  # V2: no bias on the keys
        length = qkv_bias.numel() // 3
        qkv_bias = cat([qkv_bias[:length], zeros(length, dtype=qkv_bias.dtype), qkv_bias[2 * length:]])
    qkv = F.linear(x, qkv_weight, qkv_bias)
    qkv = qkv.reshape(x.size(0), x.size(1), 3, num_heads, C // num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if logit_scale is not None:
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * logit_scale.clamp(max=math.log(100.0)).exp()
    else:
        q = q * (C // num_heads) ** -0.5
        attn = q.matmul(k.transpose(-2, -1))
    attn = attn + relative_position_bias

    if shifted:
        # in the attention's dtype, as torchvision builds it (x.new_zeros): a float16 model stays float16
        mask = _shift_mask(pad_H, pad_W, window_size[0], window_size[1], shift_size[0], shift_size[1]).to(attn.dtype)
        attn = attn.reshape(x.size(0) // num_windows, num_windows, num_heads, x.size(1), x.size(1))
        attn = attn + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.reshape(-1, num_heads, x.size(1), x.size(1))

    attn = F.softmax(attn, dim=-1)
    attn = F.dropout(attn, p=attention_dropout, training=training and attention_dropout > 0)

    x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), C)
    x = F.linear(x, proj_weight, proj_bias)
    x = F.dropout(x, p=dropout, training=training and dropout > 0)

    # reverse windows
    x = x.reshape(B, pad_H // window_size[0], pad_W // window_size[1], window_size[0], window_size[1], C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, pad_H, pad_W, C)
    if shifted:
        x = x.roll((shift_size[0], shift_size[1]), (1, 2))
    return x[:, :H, :W, :]


# -- detection: torchvision's custom ops (ATen-level, as the eager path and torch.export see them) and its Python
# functions (as torch.fx sees them)
@implements("torchvision.nms.default", "torchvision.ops.boxes.nms")
def _nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    from .. import vision_ops
    return vision_ops.nms(boxes, scores, iou_threshold)


@implements("torchvision.ops.boxes.batched_nms", BATCHED_NMS)
def _batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    from .. import vision_ops
    return vision_ops.batched_nms(boxes, scores, idxs, iou_threshold)


@implements("torchvision.roi_align.default")
def _roi_align_op(input: Tensor, rois: Tensor, spatial_scale: float, pooled_height: int,  # noqa: A002
                  pooled_width: int, sampling_ratio: int, aligned: bool) -> Tensor:
    from .. import vision_ops
    return vision_ops.roi_align(input, rois, (pooled_height, pooled_width), spatial_scale, sampling_ratio, aligned)


@implements("torchvision.ops.roi_align.roi_align")
def _roi_align_fn(input: Tensor, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,  # noqa: A002
                  aligned: bool = False) -> Tensor:
    from .. import vision_ops
    return vision_ops.roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned)
