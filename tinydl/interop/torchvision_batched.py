"""torchvision's per-box and per-category Python loops, as one set of ops over every box, for the eager path
(eager.py).

Mask R-CNN pastes each kept mask into the image in a Python loop (`paste_masks_in_image`): each box's size is
read back (`int(box[2] - box[0] + 1)`) and its mask resized to that size. On the eager path every box then costs a
read-back and a plan (on a CPU driver, kernels compiled) of its own. Here the same math, torch's bilinear resize
(align_corners=False) evaluated at each image pixel of each box, runs as a few gathers over all boxes at once,
with nothing read back.

Keypoint R-CNN's heatmaps_to_keypoints resizes each box's heatmaps (bicubic) to the box's size, read back per
box, and takes each keypoint's argmax. Here every box's heatmaps are resized at once to the largest box's size
(each box by its own resampling weights, as two batched products: along x, then along y, torch's order), the
pixels past a box's own size left out of its argmax: two sizes read back in all.

batched_nms, on a CPU tensor of more than 1000 boxes (SSD's 90 categories, RetinaNet's), runs nms once per
category, each after a `torch.where(idxs == category)` read back; here it is one op, `tinydl::batched_nms`
(torchvision's per-category loop on CPU tensors; on the eager path's, tinydl.vision_ops.batched_nms: every
category at once, each in its own coordinates as in that loop, so the same boxes are kept). An op of its own,
not a Python function, so that it reaches the eager path's dispatch under torch.func.functionalize.

These stand in for torchvision's functions only while tinydl's eager path runs a model (`batched()`); any other
caller gets torchvision's own.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools

from ..nn.grid_sample import cubic_weights

_active = contextvars.ContextVar("tinydl_eager_batched", default=False)
BATCHED_NMS = "tinydl.batched_nms.default"  # the op's name as the eager path's dispatch sees it


def _linear_taps(d, out_size, in_size: int):
    """torch's bilinear resize (align_corners=False) of an axis from in_size to out_size (per box, [N, 1]) read
    at output positions d ([N, P]): the two source indices and the weight of the second (upsample_bilinear2d:
    source = in/out * (d + 0.5) - 0.5, clamped at 0). Positions outside [0, out_size) are clamped into range:
    their pixels are masked out by the caller."""
    import torch
    scale = in_size / out_size.to(torch.float32)
    src = (scale * (d.to(torch.float32) + 0.5) - 0.5).clamp(min=0)
    i0 = src.floor().to(torch.int64).clamp(max=in_size - 1)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, (src - i0.to(torch.float32)).clamp(0, 1)


def paste_masks_in_image(masks, boxes, img_shape, padding: int = 1):
    """torchvision.models.detection.roi_heads.paste_masks_in_image for every box at once: [N, 1, H, W], each
    box's mask resized to the box (expanded by the padding's scale, as torchvision does) and placed in the image,
    zero elsewhere."""
    import torch
    from torchvision.models.detection import roi_heads
    masks, scale = roi_heads.expand_masks(masks, padding=padding)
    boxes = roi_heads.expand_boxes(boxes, scale).to(dtype=torch.int64)
    im_h, im_w = img_shape
    n, _, mh, mw = masks.shape
    if n == 0:
        return masks.new_empty((0, 1, im_h, im_w))
    x0, y0, x1, y1 = (boxes[:, i:i + 1] for i in range(4))  # [N, 1] each
    w, h = (x1 - x0 + 1).clamp(min=1), (y1 - y0 + 1).clamp(min=1)
    cols = torch.arange(im_w, dtype=torch.int64)[None]
    rows = torch.arange(im_h, dtype=torch.int64)[None]
    ix0, ix1, lx = _linear_taps(cols - x0, w, mw)  # [N, W]
    iy0, iy1, ly = _linear_taps(rows - y0, h, mh)  # [N, H]
    flat = masks.reshape(n, mh * mw).to(torch.float32)

    def at(iy, ix):
        return flat.gather(1, (iy[:, :, None] * mw + ix[:, None, :]).reshape(n, im_h * im_w)).reshape(n, im_h, im_w)

    lx, ly = lx[:, None, :], ly[:, :, None]
    top = (1 - lx) * at(iy0, ix0) + lx * at(iy0, ix1)
    bottom = (1 - lx) * at(iy1, ix0) + lx * at(iy1, ix1)
    value = (1 - ly) * top + ly * bottom
    # torchvision's slice assignment: image columns [max(x0, 0), min(x1 + 1, W)), rows likewise
    inside = (((rows >= y0.clamp(min=0)) & (rows < (y1 + 1).clamp(max=im_h)))[:, :, None]
              & ((cols >= x0.clamp(min=0)) & (cols < (x1 + 1).clamp(max=im_w)))[:, None, :])
    return torch.where(inside, value, torch.zeros((), dtype=value.dtype)).to(masks.dtype)[:, None]


def _cubic_resampling(out_size, in_size: int, out_max: int):
    """torch's bicubic resize (align_corners=False) of an axis from in_size to each box's out_size ([K, 1]) as
    [K, out_max, in_size] weights; rows past a box's size are 0. torch's taps: source = in/out * (d + 0.5) - 0.5
    (not clamped), the 4 pixels from floor(source) - 1 clamped into the axis, A = -0.75."""
    import torch
    d = torch.arange(out_max, dtype=torch.float32)[None]
    src = (in_size / out_size.to(torch.float32)) * (d + 0.5) - 0.5  # [K, out_max]
    base = src.floor()
    columns = torch.arange(in_size, dtype=torch.int64)
    weights = None
    for tap, w in enumerate(cubic_weights(src - base)):
        index = (base.to(torch.int64) - 1 + tap).clamp(0, in_size - 1)
        term = (index[..., None] == columns).to(torch.float32) * w[..., None]
        weights = term if weights is None else weights + term
    inside = (d < out_size.to(torch.float32))[..., None]
    return torch.where(inside, weights, torch.zeros((), dtype=weights.dtype))


def heatmaps_to_keypoints(maps, rois):
    """torchvision.models.detection.roi_heads.heatmaps_to_keypoints for every box at once: ([K, N, 3] keypoints
    (x, y, 1), [K, N] scores) from heatmaps [K, N, H, W] and boxes [K, 4]."""
    import torch
    k, n, h, w = maps.shape
    if k == 0:
        return maps.new_zeros((0, n, 3)), maps.new_zeros((0, n))
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    out_w, out_h = widths.ceil()[:, None], heights.ceil()[:, None]  # [K, 1]
    max_w, max_h = int(out_w.max()), int(out_h.max())
    along_x = _cubic_resampling(out_w, w, max_w)  # [K, max_w, W]
    along_y = _cubic_resampling(out_h, h, max_h)  # [K, max_h, H]
    resized = along_y[:, None] @ (maps.to(torch.float32) @ along_x[:, None].transpose(2, 3))  # [K, N, max_h, max_w]
    ys = torch.arange(max_h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(max_w, dtype=torch.float32)[None, None, :]
    inside = (ys < out_h[:, :, None]) & (xs < out_w[:, :, None])  # [K, max_h, max_w]
    flat = torch.where(inside[:, None], resized, torch.full((), float("-inf"))).reshape(k, n, max_h * max_w)
    pos = flat.argmax(dim=2)  # the first maximum in each box's own row-major order
    x_int, y_int = pos % max_w, torch.div(pos, max_w, rounding_mode="floor")
    x = (x_int.to(torch.float32) + 0.5) * (widths / out_w[:, 0])[:, None] + rois[:, 0:1]
    y = (y_int.to(torch.float32) + 0.5) * (heights / out_h[:, 0])[:, None] + rois[:, 1:2]
    keypoints = torch.stack([x, y, torch.ones_like(x)], dim=2)
    return keypoints, flat.gather(2, pos[..., None])[..., 0]


@functools.cache
def _batched_nms_op():
    import torch

    @torch.library.custom_op("tinydl::batched_nms", mutates_args=(),
                             schema="(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor")
    def batched_nms_op(boxes, scores, idxs, iou_threshold):
        from torchvision.ops import boxes as box_ops
        return box_ops._batched_nms_vanilla(boxes, scores, idxs, iou_threshold)

    @batched_nms_op.register_fake
    def _(boxes, scores, idxs, iou_threshold):
        return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(),), dtype=torch.int64)

    return batched_nms_op


def batched_nms(boxes, scores, idxs, iou_threshold: float):
    """torchvision.ops.batched_nms as one op (see the module's doc)."""
    return _batched_nms_op()(boxes, scores, idxs, float(iou_threshold))


def _stand_in(module, name: str, batched_form) -> None:
    """module.name answers with batched_form while the eager path runs, else with torchvision's own."""
    original = getattr(module, name)

    @functools.wraps(original)
    def either(*args, **kwargs):
        if _active.get():
            return batched_form(*args, **kwargs)
        return original(*args, **kwargs)

    setattr(module, name, either)


@functools.cache
def _install_per_box() -> None:
    from torchvision.models.detection import roi_heads, transform
    # (transform imported paste_masks_in_image by name: its name is patched)
    _stand_in(transform, "paste_masks_in_image", paste_masks_in_image)
    _stand_in(roi_heads, "heatmaps_to_keypoints", heatmaps_to_keypoints)


@functools.cache
def _install_nms() -> None:
    import torchvision.ops
    from torchvision.ops import boxes  # detection models call boxes.batched_nms; users torchvision.ops'
    _stand_in(boxes, "batched_nms", batched_nms)
    _stand_in(torchvision.ops, "batched_nms", batched_nms)


@contextlib.contextmanager
def batched():
    """The batched forms in effect for the block (in this context only), where torchvision is imported."""
    import sys
    if "torchvision.models.detection.transform" in sys.modules:
        _install_per_box()
    if "torchvision.ops.boxes" in sys.modules:
        _install_nms()
    token = _active.set(True)
    try:
        yield
    finally:
        _active.reset(token)


__all__ = ["batched", "batched_nms", "heatmaps_to_keypoints", "paste_masks_in_image"]
