"""torchvision.ops' detection ops in tinydl (tinydl.vision_ops): nms, batched_nms and roi_align equal to
torchvision's kernels (on this CPU-only torch: the C++ kernels' loops transcribed in torchvision_compat), their
argument errors, and torchvision's detection models end to end through from_torch (eager path: their
post-processing keeps a number of boxes that depends on the data)."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl import schedule, vision_ops
from tinydl.interop import eager
from tinydl.interop.torchvision_compat import import_torchvision
from tinydl.testing import assert_close

tv = import_torchvision()


def host_reads() -> int:
    """Read-backs so far in this process (the scheduler's own count)."""
    return schedule.HOST_READS


def _boxes(n, seed, spread=100.0, size=40.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * spread
    wh = torch.rand(n, 2, generator=g) * size
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


@pytest.mark.parametrize("n,threshold", [(0, 0.5), (1, 0.5), (7, 0.0), (60, 0.3), (300, 0.5), (2100, 0.7)])
def test_nms_keeps_what_torchvision_keeps(n, threshold):
    boxes, scores = _boxes(n, seed=n)
    want = torch.ops.torchvision.nms(boxes, scores, threshold)
    got = vision_ops.nms(tinydl.tensor(boxes), tinydl.tensor(scores), threshold)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_nms_of_a_chain_of_suppressions_and_equal_scores():
    """A row of boxes each overlapping the next: whether a box is kept alternates down the chain (many rounds
    of the GPU's fixed-point iteration); equal scores keep their order, as torchvision's stable sort."""
    x = torch.arange(40, dtype=torch.float32) * 6
    boxes = torch.stack([x, torch.zeros(40), x + 10, torch.ones(40) * 10], 1)
    for scores in (torch.linspace(1, 0, 40), torch.ones(40)):
        want = torch.ops.torchvision.nms(boxes, scores, 0.2)  # neighbours' IoU: 0.25
        got = vision_ops.nms(tinydl.tensor(boxes), tinydl.tensor(scores), 0.2)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        assert 10 < len(want) < 40


def test_batched_nms_never_suppresses_across_categories():
    boxes, scores = _boxes(200, seed=3)
    idxs = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(4))
    want = tv.ops.batched_nms(boxes, scores, idxs, 0.4)
    got = vision_ops.batched_nms(tinydl.tensor(boxes), tinydl.tensor(scores), tinydl.tensor(idxs), 0.4)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("n,categories,threshold", [(1, 1, 0.5), (50, 1, 0.3), (64, 64, 0.5), (2700, 90, 0.5),
                                                      (500, 7, 0.0), (400, 3, 1.0)])
def test_batched_nms_equals_torchvisions_loop_over_categories(n, categories, threshold):
    """Equal to torchvision's exact form (nms of each category on its own), many small categories (SSD's 90 with
    a box count per category its loop reads back) and one large one included."""
    boxes, scores = _boxes(n, seed=n + categories, spread=60.0)
    idxs = torch.randint(0, categories, (n,), generator=torch.Generator().manual_seed(n))
    want = tv.ops.boxes._batched_nms_vanilla(boxes, scores, idxs, threshold)
    got = vision_ops.batched_nms(tinydl.tensor(boxes), tinydl.tensor(scores), tinydl.tensor(idxs), threshold)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_batched_nms_compares_each_category_in_its_own_coordinates():
    """Small boxes far from the origin in 90 categories: torchvision's coordinate trick (each category shifted
    by (largest coordinate + 1) per index) rounds their corners by up to 0.5 and keeps other boxes; tinydl keeps
    the boxes that exact per-category nms keeps."""
    g = torch.Generator().manual_seed(7)
    xy = 40000 + torch.rand(900, 2, generator=g) * 40
    boxes = torch.cat([xy, xy + 3 + torch.rand(900, 2, generator=g) * 3], 1)
    scores = torch.rand(900, generator=g)
    idxs = torch.randint(0, 90, (900,), generator=g)
    want = tv.ops.boxes._batched_nms_vanilla(boxes, scores, idxs, 0.3)
    assert not torch.equal(tv.ops.boxes._batched_nms_coordinate_trick(boxes, scores, idxs, 0.3), want)
    got = vision_ops.batched_nms(tinydl.tensor(boxes), tinydl.tensor(scores), tinydl.tensor(idxs), 0.3)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_batched_nms_refuses_category_indices_of_another_shape():
    boxes, scores = _boxes(5, seed=0)
    with pytest.raises(RuntimeError, match=r"batched_nms: idxs should be a 1d tensor of 5 category indices, got "
                                           r"shape \[4\]"):
        vision_ops.batched_nms(tinydl.tensor(boxes), tinydl.tensor(scores), tinydl.tensor(np.zeros(4, np.int32)), 0.5)


@pytest.mark.parametrize("bad,message", [
    (lambda b, s: (b[:, :3], s), "boxes should have 4 elements in dimension 1, got 3"),
    (lambda b, s: (b[None], s), "boxes should be a 2d tensor, got 3D"),
    (lambda b, s: (b, s[:-1]), "boxes and scores should have same number of elements in dimension 0, got 5 and 4"),
])
def test_nms_argument_errors(bad, message):
    boxes, scores = _boxes(5, seed=0)
    b, s = bad(boxes, scores)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.torchvision.nms(b, s, 0.5)
    with pytest.raises(RuntimeError, match=message):
        vision_ops.nms(tinydl.tensor(b.numpy()), tinydl.tensor(s.numpy()), 0.5)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_equals_torchvision(aligned, sampling_ratio):
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(2, 3, 12, 10, generator=g)
    boxes, _ = _boxes(9, seed=6, spread=40.0, size=30.0)
    boxes[0] = torch.tensor([-8.0, -6.0, 3.0, 50.0])  # partly outside the map
    boxes[1] = torch.tensor([4.0, 4.0, 4.5, 4.2])  # smaller than a bin
    rois = torch.cat([torch.randint(0, 2, (9, 1), generator=g).float(), boxes], 1)
    want = tv.ops.roi_align(feats, rois, (3, 4), spatial_scale=0.25, sampling_ratio=sampling_ratio, aligned=aligned)
    got = vision_ops.roi_align(tinydl.tensor(feats), tinydl.tensor(rois), (3, 4), 0.25, sampling_ratio, aligned)
    assert_close(got, want, atol=1e-5)
    per_image = [tinydl.tensor(boxes[:4]), tinydl.tensor(boxes[4:])]  # torchvision's list-of-boxes form
    want = tv.ops.roi_align(feats, [boxes[:4], boxes[4:]], 2, 0.25, sampling_ratio, aligned)
    assert_close(vision_ops.roi_align(tinydl.tensor(feats), per_image, 2, 0.25, sampling_ratio, aligned), want,
                 atol=1e-5)


def _detector(name, size, seed):
    from tinydl.testing.weights import unit_variance
    torch.manual_seed(seed)
    m = getattr(tv.models.detection, name)(weights=None, weights_backbone=None, num_classes=5).eval()
    m.transform.min_size, m.transform.max_size = (size,), size
    x = torch.rand(1, 3, size, size)
    unit_variance(m, lambda: ([x[0]],))
    return m, x


@pytest.mark.parametrize("name", ["ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn"])
def test_torchvision_detectors_end_to_end(name):
    """Backbone, anchors, box decoding, score filtering, batched nms, RoIAlign (Faster R-CNN) and the rescale to
    the image: boxes, scores and labels as torch's."""
    m, x = _detector(name, 128, seed=0)
    with torch.no_grad():
        want = m([x[0]])[0]
    tm = tinydl.from_torch(m)
    got = tm([tinydl.tensor(x[0].numpy())])[0]
    assert tm.conversion_path == eager.PATH
    assert len(want["boxes"]) > 10
    np.testing.assert_array_equal(got["labels"].numpy(), want["labels"].numpy())
    assert_close(got["scores"], want["scores"], atol=1e-4)
    assert_close(got["boxes"], want["boxes"], atol=2e-2, rtol=1e-4)  # image pixels: 128 px boxes


def test_roi_align_of_no_boxes_is_empty():
    feats = torch.randn(1, 3, 6, 6)
    want = tv.ops.roi_align(feats, torch.zeros(0, 5), (2, 3))
    got = vision_ops.roi_align(tinydl.tensor(feats), tinydl.tensor(np.zeros((0, 5), np.float32)), (2, 3))
    assert tuple(got.shape) == tuple(want.shape) == (0, 3, 2, 3) and got.dtype == tinydl.float32


def test_nms_of_a_long_chain_reads_back_a_few_times():
    """A chain of 600 boxes settles one box per fixed-point step: the steps between read-backs double, so it
    takes about log2(600) read-backs, not one per few steps, and still gives torchvision's boxes."""
    x = torch.arange(600, dtype=torch.float32) * 6
    boxes = torch.stack([x, torch.zeros(600), x + 10, torch.ones(600) * 10], 1)
    scores = torch.linspace(1, 0, 600)
    want = torch.ops.torchvision.nms(boxes, scores, 0.2)
    before = host_reads()
    got = vision_ops.nms(tinydl.tensor(boxes), tinydl.tensor(scores), 0.2)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert host_reads() - before <= 12, host_reads() - before


class PasteMasks(torch.nn.Module):
    """Mask R-CNN's last step (GeneralizedRCNNTransform.postprocess): each kept mask pasted into the image at its
    box; a branch on a value sends it down the eager path."""

    def forward(self, masks, boxes):
        from torchvision.models.detection import transform
        if masks.sum() > -1e9:
            return transform.paste_masks_in_image(masks, boxes, (40, 52))
        return masks


def test_mask_pasting_runs_every_box_at_once_on_the_eager_path():
    """torchvision's per-box loop (a read-back and a resize per box) runs as one set of ops over all boxes
    (interop/torchvision_batched.py): torch's masks, and as many read-backs for 12 boxes as for 3 (none for the
    boxes); no box, a degenerate box and boxes at the image's edges included. Outside the eager path
    torchvision's own function answers."""
    from torchvision.models.detection import roi_heads, transform

    tm = tinydl.from_torch(PasteMasks().eval())
    per_call = {}
    for n in (3, 0, 3, 12):
        g = torch.Generator().manual_seed(n)
        masks = torch.rand(n, 1, 28, 28, generator=g)
        xy = torch.rand(n, 2, generator=g) * torch.tensor([60.0, 48.0]) - 4
        boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 30], 1)
        boxes[:, 0::2], boxes[:, 1::2] = boxes[:, 0::2].clamp(0, 52), boxes[:, 1::2].clamp(0, 40)  # clipped
        if n:
            boxes[0] = torch.tensor([5.0, 6.0, 5.0, 6.0])  # a point: a 1 x 1 box after rounding
        want = roi_heads.paste_masks_in_image(masks, boxes, (40, 52))
        before = host_reads()
        got = tm(tinydl.tensor(masks.numpy()), tinydl.tensor(boxes.numpy()))
        per_call[n] = host_reads() - before
        assert tm.conversion_path == eager.PATH
        assert tuple(got.shape) == tuple(want.shape) == (n, 1, 40, 52)
        assert_close(got, want, atol=1e-5, rtol=1e-5)
        assert torch.equal(transform.paste_masks_in_image(masks, boxes, (40, 52)), want)  # torch callers
    assert per_call[12] == per_call[3], per_call


class PerCategoryNms(torch.nn.Module):
    """A detector's last step: batched_nms of the boxes that pass a score threshold (a read-back), as torchvision's
    models call it (`torchvision.ops.boxes.batched_nms`)."""

    def forward(self, boxes, scores, labels):
        from torchvision.ops import boxes as box_ops
        keep = scores > 0.05
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        kept = box_ops.batched_nms(boxes, scores, labels, 0.45)
        return boxes[kept], scores[kept], labels[kept]


def test_batched_nms_runs_every_category_at_once_on_the_eager_path():
    """On the eager path torchvision's batched_nms (for over 1000 boxes on the CPU: a loop over the categories,
    a read-back each) is tinydl's, every category at once: as many read-backs for 60 categories as for 6, and
    torch's boxes. Outside the eager path torchvision's own function answers."""
    from torchvision.ops import boxes as box_ops

    model = PerCategoryNms().eval()
    boxes, _ = _boxes(1500, seed=11, spread=80.0)
    # distinct scores: torchvision orders the kept boxes by an unstable sort (equal scores in either order)
    scores = (torch.randperm(1500, generator=torch.Generator().manual_seed(12)).float() + 1) / 1500
    tm = tinydl.from_torch(model, example_inputs=(boxes, scores, torch.zeros(1500, dtype=torch.int64)))
    assert tm.conversion_path == eager.PATH
    per_call = {}
    for categories in (6, 60):
        labels = torch.randint(0, categories, (1500,), generator=torch.Generator().manual_seed(categories))
        want = model(boxes, scores, labels)
        before = host_reads()
        got = tm(boxes, scores, labels)
        per_call[categories] = host_reads() - before
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w.numpy())
        assert torch.equal(box_ops.batched_nms(boxes, scores, labels, 0.45),
                           box_ops._batched_nms_vanilla(boxes, scores, labels, 0.45))  # torch callers
    assert per_call[60] == per_call[6], per_call


class HeatmapsToKeypoints(torch.nn.Module):
    """Keypoint R-CNN's last step: each box's heatmaps resized to the box (bicubic) and each keypoint's argmax; a
    branch on a value sends it down the eager path."""

    def forward(self, maps, rois):
        from torchvision.models.detection import roi_heads
        if maps.sum() > -1e9:
            return roi_heads.heatmaps_to_keypoints(maps, rois)
        return maps


def test_keypoints_of_every_box_at_once_on_the_eager_path():
    """torchvision's per-box loop (two read-backs and a bicubic resize to the box's size per box) runs as one set
    of ops over all boxes: torch's keypoints and scores, as many read-backs for 12 boxes as for 3; no box and a
    box smaller than a pixel included. Outside the eager path torchvision's own function answers."""
    from torchvision.models.detection import roi_heads

    tm = tinydl.from_torch(HeatmapsToKeypoints().eval())
    per_call = {}
    for k in (3, 0, 3, 12):  # (the first call converts: counted again after)
        g = torch.Generator().manual_seed(k)
        maps = torch.randn(k, 5, 14, 14, generator=g)
        xy = torch.rand(k, 2, generator=g) * 50
        rois = torch.cat([xy, xy + torch.rand(k, 2, generator=g) * 40 + 0.3], 1)
        if k:
            rois[0] = torch.tensor([3.0, 4.0, 3.5, 4.2])
        want = roi_heads.heatmaps_to_keypoints(maps, rois)
        before = host_reads()
        got = tm(tinydl.tensor(maps.numpy()), tinydl.tensor(rois.numpy()))
        per_call[k] = host_reads() - before
        assert tm.conversion_path == eager.PATH
        for g_, w in zip(got, want):
            assert tuple(g_.shape) == tuple(w.shape)
            assert_close(g_, w, atol=1e-4, rtol=1e-5)
        assert all(torch.equal(a, b) for a, b in zip(roi_heads.heatmaps_to_keypoints(maps, rois), want))
    assert per_call[12] == per_call[3], per_call
