"""from_torch's eager path (interop/eager.py): a model neither torch.fx nor torch.export can capture (Python control
flow on tensor values, shapes that depend on the data) runs its own torch forward, each ATen op computed by
tinydl: results equal torch's, a new input takes its own path through the model's code, in-place ops and
boolean indexing work, every op tinydl lacks is listed at once, a bad call raises torch's own error."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl.interop import eager
from tinydl.interop.registry import UnsupportedTorchOps
from tinydl.testing import assert_close


class DataDependent(torch.nn.Module):
    """Every kind of code torch.export refuses: a branch on a value, boolean indexing, torch.where's indices,
    in-place writes through a view, a tensor made from Python numbers, .item() and .tolist()-like reads."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.norm = torch.nn.LayerNorm(3)

    def forward(self, x):
        y = self.norm(self.fc(x))
        y[:, 0] += 1.0
        y[y[:, 1] < -0.5] *= 0.5
        rows = torch.where(y[:, 2] > 0)[0]
        if rows.numel() > 1 and float(y.max()) > 0.5:
            y = y[rows] * torch.arange(3, device=x.device)
        else:
            y = y.flip(0) - int(x.shape[0])
        return y, rows


def _torch_out(m, x):
    with torch.no_grad():
        return m(x)


def test_a_data_dependent_model_runs_its_own_forward_on_every_call():
    torch.manual_seed(0)
    m = DataDependent().eval()
    tm = tinydl.from_torch(m)  # fx cannot trace it: torch.export is tried on the first call, and fails
    assert "on the first call" in repr(tm)
    branches = set()
    for n in (6, 6, 9, 3, 1):
        x = torch.randn(n, 4) * (3 if n == 6 else 1)
        want = _torch_out(m, x)
        got = tm(tinydl.tensor(x.numpy()))
        assert tm.conversion_path == eager.PATH and "torch.export failed" in tm.why_eager
        assert_close(got[0], want[0])
        np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())
        branches.add(want[0].shape[0] != n)
    assert branches == {True, False}  # both sides of the branch were taken, each as torch took it


def test_with_example_inputs_the_eager_path_is_chosen_and_proved_at_conversion():
    torch.manual_seed(1)
    m = DataDependent().eval()
    x = torch.randn(7, 4)
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == eager.PATH and "via eager" in repr(tm)
    assert_close(tm(tinydl.tensor(x.numpy()))[0], _torch_out(m, x)[0])
    tm.half()  # the weights follow: the torch code then runs on float16 tensors
    out = tm(tinydl.tensor(x.numpy()).half())[0]
    assert out.dtype == tinydl.float16


class TwoMissing(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # a branch on a value: no graph captures it
            x = x + 1
        return torch.linalg.det(x) + torch.special.zeta(x, x + 2).sum((-1, -2))


def test_every_missing_op_is_listed_at_once():
    with pytest.raises(UnsupportedTorchOps, match=r"(?s)2 unsupported op\(s\).*det.*zeta.*op by op") as err:
        tinydl.from_torch(TwoMissing().eval(), example_inputs=(torch.rand(2, 3, 3),))
    assert len(err.value.ops) == 2


class Linear3(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        if x.max() > 100:
            return x
        return self.fc(x)


def test_a_bad_call_raises_torchs_own_error():
    m = Linear3().eval()
    tm = tinydl.from_torch(m, example_inputs=(torch.randn(2, 4),))
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x5 and 4x3\)"):
        tm(tinydl.tensor(np.ones((2, 5), np.float32)))


class StridedOfView(torch.nn.Module):
    def forward(self, x):
        if x.sum() > -1e9:
            return torch.as_strided(x.transpose(0, 1), (2, 2), (1, 1), 1) * 2 + torch.as_strided(x * 1, (2, 2), (1, 1))
        return x


def test_as_strided_reads_storage_only_where_tinydl_has_it():
    x = torch.randn(4, 6)
    tm = tinydl.from_torch(StridedOfView().eval())
    with pytest.raises(NotImplementedError, match=r"as_strided of a view \(transpose\)"):
        tm(tinydl.tensor(x.numpy()))


class PoolIndices(torch.nn.Module):
    def forward(self, x):
        if x.sum() > -1e9:
            values, indices = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
            return values + indices
        return x


def test_a_result_tinydl_does_not_compute_is_refused_where_it_is_read():
    tm = tinydl.from_torch(PoolIndices().eval())
    with pytest.raises(NotImplementedError, match="indices are read"):
        tm(tinydl.tensor(np.random.rand(1, 2, 4, 4).astype(np.float32)))


class PasteMask(torch.nn.Module):
    """Mask R-CNN's paste_mask_in_image: a mask resized to its box (sizes read from the box's values), then sliced
    with tensor bounds that cover it whole, into an image."""

    def forward(self, mask, box):
        h, w = int(box[3] - box[1] + 1), int(box[2] - box[0] + 1)
        m = torch.nn.functional.interpolate(mask[None, None], size=(h, w), mode="bilinear")[0][0]
        image = torch.zeros((32, 32), dtype=m.dtype)
        x0, y0 = max(box[0], 0), max(box[1], 0)
        x1, y1 = min(box[2] + 1, 32), min(box[3] + 1, 32)
        image[y0:y1, x0:x1] = m[(y0 - box[1]):(y1 - box[1]), (x0 - box[0]):(x1 - box[0])]
        return image


def test_a_slice_covering_its_tensor_whole_is_a_view_of_its_own():
    """torch refuses a view op that returns its input itself; a whole-tensor slice decomposes into an alias, which
    gets a wrapper of its own (Mask R-CNN's mask pasting failed here)."""
    model = PasteMask().eval()
    mask = torch.rand(14, 14, generator=torch.Generator().manual_seed(0))
    tm = tinydl.from_torch(model, example_inputs=(mask, torch.tensor([2, 3, 10, 12])))
    assert tm.conversion_path == eager.PATH
    for box in ([2, 3, 10, 12], [0, 0, 31, 31], [20, 25, 40, 33]):
        box = torch.tensor(box)
        assert_close(tm(mask, box).numpy(), model(mask, box).numpy(), atol=1e-5, rtol=1e-5)


class PerClassReads(torch.nn.Module):
    """SSD's post-processing in small: one head, then a Python loop that reads each class's column back."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Conv2d(3, 5, 3, padding=1)

    def forward(self, x):
        scores = self.head(x).flatten(2).softmax(1)[0]  # [classes, positions]
        kept = []
        for label in range(scores.shape[0]):
            column = scores[label]
            if column.max() > 0.5:  # a branch on a value (torch.export refuses it): read back
                column = column * 2
            kept.append(column[column > 0.2])  # a size that depends on the data: read back
        return torch.cat(kept), scores


def test_a_value_read_mid_way_computes_what_the_model_still_holds_once():
    """Each class's read-back computes the head that every class shares once, keeping it: the convolution runs
    once in the call, not once per class (each read would otherwise compute its unrealized graph again)."""
    torch.manual_seed(3)
    m = PerClassReads().eval()
    x = torch.randn(1, 3, 8, 8)
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == eager.PATH
    with tinydl.debug.count_kernels() as c:
        got = tm(tinydl.tensor(x.numpy()))
        tinydl.realize(*got)
    want = _torch_out(m, x)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])
    convs = [n for n in c.names if "conv" in n]
    assert len(convs) == 1, c.names
