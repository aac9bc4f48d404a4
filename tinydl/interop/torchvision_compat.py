"""Importing torchvision on a CPU-only torch.

PyPI only has CUDA builds of torchvision; on the CPU torch wheel its C++ ops fail to register and
`import torchvision` dies with "operator torchvision::nms does not exist". Model definitions do not need those
ops, so declaring their schemas first lets torchvision import. `nms` and `roi_align` then get CPU kernels written
here from torchvision's C++ (plain loops, slow, for a torch reference of detection models; tinydl's own are
tinydl.vision_ops); the other C++ ops (deform_conv2d, ps_roi_align, ...) still fail when called.
"""
from __future__ import annotations


def import_torchvision():
    import importlib
    import sys

    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    try:
        return importlib.import_module("torchvision")
    except (RuntimeError, ImportError) as e:
        if "torchvision::nms" not in str(e):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    import torch

    global _lib
    _lib = torch.library.Library("torchvision", "DEF")
    _lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold, float scale) -> Tensor")
    _lib.define("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
                "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")
    _lib.impl("nms", _nms, "CPU")
    _lib.impl("roi_align", _roi_align, "CPU")
    _lib.impl("roi_align", _roi_align_meta, "Meta")
    tv = importlib.import_module("torchvision")
    # torchvision's check before nms / roi_align (a name each module imported): they have kernels now
    for name, mod in list(sys.modules.items()):
        if (name == "torchvision" or name.startswith("torchvision.")) and hasattr(mod, "_has_ops"):
            mod._has_ops = _has_ops
    return tv


_lib = None


def _has_ops():
    return True


def _nms(dets, scores, iou_threshold):
    """torchvision's nms_kernel_impl (CPU), as a loop over the boxes by decreasing score."""
    import torch
    if dets.dim() != 2:
        raise RuntimeError(f"boxes should be a 2d tensor, got {dets.dim()}D")
    if dets.size(1) != 4:
        raise RuntimeError(f"boxes should have 4 elements in dimension 1, got {dets.size(1)}")
    if scores.dim() != 1:
        raise RuntimeError(f"scores should be a 1d tensor, got {scores.dim()}D")
    if dets.size(0) != scores.size(0):
        raise RuntimeError(f"boxes and scores should have same number of elements in dimension 0, got "
                           f"{dets.size(0)} and {scores.size(0)}")
    if dets.numel() == 0:
        return torch.empty((0,), dtype=torch.long)
    x1, y1, x2, y2 = dets.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    order = torch.sort(scores, dim=0, descending=True, stable=True)[1]
    suppressed = torch.zeros(dets.shape[0], dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def _roi_align_meta(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):  # noqa: A002
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


def _roi_align(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):  # noqa: A002
    """torchvision's roi_align_forward_kernel_impl (CPU): per box and bin, the mean of bilinear samples (a loop
    over boxes, bins and samples; channels at once)."""
    import math

    import torch
    _, C, H, W = input.shape
    out = input.new_zeros((rois.shape[0], C, pooled_height, pooled_width))
    offset = 0.5 if aligned else 0.0
    for k, roi in enumerate(rois.tolist()):
        b = int(roi[0])
        sw, sh = roi[1] * spatial_scale - offset, roi[2] * spatial_scale - offset
        rw, rh = roi[3] * spatial_scale - offset - sw, roi[4] * spatial_scale - offset - sh
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / pooled_height, rw / pooled_width
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / pooled_height)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / pooled_width)
        count = max(gh * gw, 1)
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                acc = torch.zeros(C, dtype=input.dtype)
                for iy in range(gh):
                    y = sh + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sw + pw * bw + (ix + 0.5) * bw / gw
                        acc += _bilinear(input[b], H, W, y, x)
                out[k, :, ph, pw] = acc / count
    return out


def _bilinear(fmap, H, W, y, x):
    import torch
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return torch.zeros(fmap.shape[0], dtype=fmap.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= H - 1:
        y_high = y_low = H - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_high = x_low = W - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (hy * hx * fmap[:, y_low, x_low] + hy * lx * fmap[:, y_low, x_high]
            + ly * hx * fmap[:, y_high, x_low] + ly * lx * fmap[:, y_high, x_high])
