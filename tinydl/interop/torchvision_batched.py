"""torchvision's per-box Python loops, as one set of ops over every box, for the eager path (eager.py).

Mask R-CNN pastes each kept mask into the image in a Python loop (`paste_masks_in_image`): each box's size is
read back (`int(box[2] - box[0] + 1)`) and its mask resized to that size. On the eager path every box then costs a
read-back and a plan (on a CPU driver, kernels compiled) of its own. Here the same math, torch's bilinear resize
(align_corners=False) evaluated at each image pixel of each box, runs as a few gathers over all boxes at once,
with nothing read back. It stands in for torchvision's function only while tinydl's eager path runs a model
(`batched()`); any other caller gets torchvision's own.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools

_active = contextvars.ContextVar("tinydl_eager_batched", default=False)


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


@functools.cache
def _install() -> None:
    """torchvision's name in the module that calls it (transform.py imported it by name) answers with the
    batched form while the eager path runs, else with torchvision's own."""
    from torchvision.models.detection import transform
    original = transform.paste_masks_in_image

    @functools.wraps(original)
    def paste(masks, boxes, img_shape, padding=1):
        if _active.get():
            return paste_masks_in_image(masks, boxes, img_shape, padding)
        return original(masks, boxes, img_shape, padding)

    transform.paste_masks_in_image = paste


@contextlib.contextmanager
def batched():
    """The batched forms in effect for the block (in this context only), where torchvision is imported."""
    import sys
    if "torchvision.models.detection.transform" in sys.modules:
        _install()
    token = _active.set(True)
    try:
        yield
    finally:
        _active.reset(token)


__all__ = ["batched", "paste_masks_in_image"]
