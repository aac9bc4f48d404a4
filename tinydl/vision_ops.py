"""torchvision.ops' detection ops as tinydl ops (`tinydl.vision_ops`): non-maximum suppression and RoIAlign,
with torchvision's names, arguments, checks and results. Mapped for from_torch (torchvision's custom ops
`torchvision::nms` / `torchvision::roi_align`, and its Python functions) in interop/torchvision_ops.py.

nms: the boxes sorted by score; IoU of every pair computed as torchvision's kernel does (float32); then greedy
suppression, which is sequential (a box is dropped by an earlier box only if that one was kept). Its result is
the one fixed point of keep[j] = not any(keep[i] and iou[i, j] > threshold for i < j), reached by iterating that
rule on the GPU from "all kept": after t steps the first t boxes of any chain of suppressions are final. The host
reads the keep mask back every few steps (a bool per box) until it stops changing; the count of boxes kept is the
one size that depends on the data.
"""
from __future__ import annotations

import numpy as np

from ._tensor import Tensor, tensor, zeros
from .sorting import argsort

# Jacobi steps queued before the first read-back of the keep mask; each later batch queues twice as many, so a long
# chain of suppressions (n steps to settle) costs about log2(n) read-backs, and at most twice the steps it needs
STEPS_PER_CHECK = 4


def _check_boxes(boxes: Tensor, scores: Tensor) -> None:
    if boxes.ndim != 2:
        raise RuntimeError(f"boxes should be a 2d tensor, got {boxes.ndim}D")
    if boxes.shape[1] != 4:
        raise RuntimeError(f"boxes should have 4 elements in dimension 1, got {boxes.shape[1]}")
    if scores.ndim != 1:
        raise RuntimeError(f"scores should be a 1d tensor, got {scores.ndim}D")
    if boxes.shape[0] != scores.shape[0]:
        raise RuntimeError(f"boxes and scores should have same number of elements in dimension 0, got "
                           f"{boxes.shape[0]} and {scores.shape[0]}")
    if boxes.dtype != scores.dtype:
        raise RuntimeError(f"boxes and scores must have the same dtype: {boxes.dtype} and {scores.dtype}")
    if not boxes.dtype.is_floating_point:
        raise RuntimeError(f"nms: boxes must be floating point, got {boxes.dtype}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """torchvision.ops.nms: indices (int32, tinydl's int64) of the boxes kept, by decreasing score. boxes (N, 4)
    as (x1, y1, x2, y2); a box is dropped when its IoU with a higher-scoring kept box is > iou_threshold."""
    _check_boxes(boxes, scores)
    n = boxes.shape[0]
    if n == 0:
        return tensor(np.zeros((0,), np.int32))
    order = argsort(scores, dim=0, descending=True, stable=True)  # (past SORT_MAX boxes: ordered on the host)
    b = boxes[order].float()
    x1, y1, x2, y2 = (b[:, i] for i in range(4))
    iou = _iou((x1[:, None], y1[:, None], x2[:, None], y2[:, None]),
               (x1[None, :], y1[None, :], x2[None, :], y2[None, :]))
    rows = tensor(np.arange(n, dtype=np.int32))
    # suppresses[i, j]: box i (earlier: higher score) drops box j when i is kept
    suppresses = (iou > float(iou_threshold)) & (rows[:, None] < rows[None, :])
    kept = np.nonzero(_settle(lambda keep: ~(suppresses & keep[:, None]).any(dim=0), n))[0].astype(np.int32)
    return order[tensor(kept)]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """torchvision.ops.batched_nms: nms within each category of idxs (boxes of different categories never
    suppress each other), by decreasing score. Each category's IoUs are its own boxes' (not shifted apart, as
    torchvision's coordinate trick does, which rounds them): the boxes grouped by category, each group by
    decreasing score, and each box compared with the boxes before it in its group only, so N boxes cost N times
    the largest group, not N squared."""
    _check_boxes(boxes, scores)
    n = boxes.shape[0]
    if n == 0:
        return tensor(np.zeros((0,), np.int32))
    if idxs.ndim != 1 or idxs.shape[0] != n:
        raise RuntimeError(f"batched_nms: idxs should be a 1d tensor of {n} category indices, got shape "
                           f"{list(idxs.shape)}")
    by_score = argsort(scores, dim=0, descending=True, stable=True)
    by_category = argsort(idxs[by_score], dim=0, stable=True)  # stable: by score within a category
    order = by_score[by_category]
    categories = idxs[order].numpy()  # the groups' bounds: the one read-back before the IoUs
    position = np.arange(n)
    starts = np.flatnonzero(np.r_[True, categories[1:] != categories[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, n]))  # each position's group's first position
    width = int((position - first).max())
    if width == 0:  # every box alone in its category: all kept
        return by_score
    # earlier[p, d]: the position d + 1 places before p, where that is in p's group (else masked out)
    earlier = position[:, None] - np.arange(1, width + 1)[None, :]
    same = tensor(earlier >= first[:, None])
    earlier = tensor(np.maximum(earlier, 0).astype(np.int32))
    b = boxes[order].float()
    x1, y1, x2, y2 = (b[:, i] for i in range(4))
    iou = _iou((x1[earlier], y1[earlier], x2[earlier], y2[earlier]),
               (x1[:, None], y1[:, None], x2[:, None], y2[:, None]))
    suppressed_by = same & (iou > float(iou_threshold))  # [p, d]: the earlier box drops p when it is kept
    keep = _settle(lambda keep: ~(suppressed_by & keep[earlier]).any(dim=1), n)
    # back to the order by score: position p of the grouped order is position by_category[p] of by_score
    in_score_order = np.zeros((n,), np.bool_)
    in_score_order[by_category.numpy()[keep]] = True
    return by_score[tensor(np.flatnonzero(in_score_order).astype(np.int32))]


def _iou(first, second) -> Tensor:
    """IoU of boxes (x1, y1, x2, y2) pairs as torchvision's kernel computes it: the first box's area first."""
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = first, second
    w = (ax2.minimum(bx2) - ax1.maximum(bx1)).clamp(min=0)
    h = (ay2.minimum(by2) - ay1.maximum(by1)).clamp(min=0)
    inter = w * h
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter)


def _settle(step, n: int) -> np.ndarray:
    """The greedy suppression's keep mask (n bools on the host): step(keep) applied on the GPU from "all kept"
    until it stops changing. A box's mask is final once the boxes before it are (after j + 1 steps), so the
    sequence ends constant; a mask equal to one read some steps earlier is therefore periodic from there on, and
    so already that constant."""
    seen = np.ones((n,), np.bool_)
    keep, steps = tensor(seen), STEPS_PER_CHECK
    while True:
        for _ in range(steps):
            keep = step(keep)
        host = keep.numpy()
        if np.array_equal(host, seen):
            return seen
        seen, steps = host, steps * 2


def roi_align(input: Tensor, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,  # noqa: A002
              aligned: bool = False) -> Tensor:
    """torchvision.ops.roi_align: (K, C, ph, pw), each box's bins averaged over a grid of bilinear samples.
    boxes: a (K, 5) tensor of (batch index, x1, y1, x2, y2), or a list of (Ki, 4) tensors, one per image.
    sampling_ratio <= 0 samples ceil(box size / bins) points a bin, per box (the largest count is read back:
    the boxes with fewer weigh the extra samples 0)."""
    if isinstance(boxes, (list, tuple)):
        boxes = _rois_from_list(boxes)
    if input.ndim != 4:
        raise RuntimeError(f"roi_align: input must be a 4D tensor (N, C, H, W), got {input.ndim}D")
    if boxes.ndim != 2 or boxes.shape[1] != 5:
        raise RuntimeError(f"roi_align: boxes must be a (K, 5) tensor, got {list(boxes.shape)}")
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    N, C, H, W = input.shape
    K = boxes.shape[0]
    if K == 0:
        return zeros((0, C, ph, pw), dtype=input.dtype)
    rois = boxes.float()
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * spatial_scale - offset
    start_h = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - start_w
    roi_h = rois[:, 4] * spatial_scale - offset - start_h
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        grid_h = grid_w = None
        gh = gw = int(sampling_ratio)
    else:
        grid_h, grid_w = (roi_h / ph).ceil(), (roi_w / pw).ceil()
        gh, gw = (max(int(v), 1) for v in (grid_h.max().item(), grid_w.max().item()))
    # sample coordinates: (K, ph, gh) rows and (K, pw, gw) columns
    iy = tensor(np.arange(gh, dtype=np.float32))
    ix = tensor(np.arange(gw, dtype=np.float32))
    py = tensor(np.arange(ph, dtype=np.float32))
    px = tensor(np.arange(pw, dtype=np.float32))
    gh_k = grid_h.clamp(min=1.0) if grid_h is not None else float(gh)
    gw_k = grid_w.clamp(min=1.0) if grid_w is not None else float(gw)
    ys = start_h[:, None, None] + py[None, :, None] * bin_h[:, None, None] + \
        (iy[None, None, :] + 0.5) * (bin_h / gh_k)[:, None, None]
    xs = start_w[:, None, None] + px[None, :, None] * bin_w[:, None, None] + \
        (ix[None, None, :] + 0.5) * (bin_w / gw_k)[:, None, None]
    y_w, y_lo, y_hi, y_in = _axis(ys, H)
    x_w, x_lo, x_hi, x_in = _axis(xs, W)
    if grid_h is not None:  # samples past a box's own grid count 0
        y_in = y_in & (iy[None, None, :] < grid_h[:, None, None])
        x_in = x_in & (ix[None, None, :] < grid_w[:, None, None])
    # the (K, ph, gh, pw, gw) weights of the four neighbours, zero for samples outside the map
    valid = (y_in[:, :, :, None, None] & x_in[:, None, None, :, :]).float()
    if grid_h is None:
        valid = valid / float(max(gh * gw, 1))
    else:
        valid = valid / (grid_h * grid_w).clamp(min=1.0)[:, None, None, None, None]
    flat = input.float().permute(0, 2, 3, 1).reshape(N * H * W, C)
    base = rois[:, 0].int() * (H * W)
    out = None
    for wy, ry in ((1.0 - y_w, y_lo), (y_w, y_hi)):
        for wx, rx in ((1.0 - x_w, x_lo), (x_w, x_hi)):
            weight = wy[:, :, :, None, None] * wx[:, None, None, :, :] * valid
            row = base[:, None, None, None, None] + ry[:, :, :, None, None] * W + rx[:, None, None, :, :]
            v = flat[row.reshape(-1)].reshape(K, ph, gh, pw, gw, C) * weight[..., None]
            term = v.sum(dim=(2, 4))
            out = term if out is None else out + term
    return out.permute(0, 3, 1, 2).to(input.dtype)


def _axis(coord: Tensor, size: int):
    """torchvision's bilinear_interpolate along one axis: (fraction, low index, high index, inside)."""
    inside = (coord >= -1.0) & (coord <= float(size))
    c = coord.clamp(min=0.0)
    low = c.floor().clamp(max=float(size - 1))
    at_edge = low >= size - 1
    c = c.where(~at_edge, low)
    high = (low + 1.0).clamp(max=float(size - 1))
    frac = c - low
    return frac, low.int(), high.int(), inside


def _rois_from_list(boxes) -> Tensor:
    from ._tensor import cat
    parts = []
    for i, b in enumerate(boxes):
        b = b if isinstance(b, Tensor) else tensor(b)
        parts.append(cat([tensor(np.full((b.shape[0], 1), i, np.float32)).to(b.dtype), b], 1))
    return cat(parts, 0)


__all__ = ["nms", "batched_nms", "roi_align"]
