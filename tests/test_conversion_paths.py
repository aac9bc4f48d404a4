"""from_torch's paths: torch.fx first, then torch.export when fx cannot trace the model or its graph has ops
tinydl does not map (and example inputs are given or made); the path taken is said (`conversion_path`, the
repr); when both fail, the closer path's missing ops are listed at once; without torch, an ImportError that
says what to install."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinydl
from tinydl.interop.registry import UnsupportedTorchOps
from tinydl.testing import assert_close


class Entr(torch.nn.Module):
    """torch.special.entr: no fx mapping; torch.export's ATen graph decomposes it into ops tinydl maps."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.special.entr(self.fc(x).abs() + x.abs())


class Unmappable(torch.nn.Module):
    """torch.linalg.det: missing on both paths."""

    def forward(self, x):
        return torch.linalg.det(x) + torch.special.entr(x.abs()).sum((1, 2))


def test_fx_graph_with_unmapped_ops_converts_through_export():
    m = Entr().eval()
    x = torch.randn(3, 4)
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == "torch.export" and "via torch.export" in repr(tm)
    assert_close(tm(tinydl.tensor(x.numpy())), m(x).detach())
    plain = tinydl.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 2)).eval())
    assert plain.conversion_path == "fx" and "via fx" in repr(plain)


def test_unmapped_ops_without_examples_say_export_may_help():
    with pytest.raises(UnsupportedTorchOps, match=r"(?s)entr.*pass example_inputs=\(\.\.\.\) to try "
                                                  r"torch\.export too"):
        tinydl.from_torch(Entr().eval())


def test_both_paths_failing_list_the_closer_paths_ops():
    with pytest.raises(UnsupportedTorchOps) as err:
        tinydl.from_torch(Unmappable().eval(), example_inputs=(torch.randn(2, 3, 3),))
    ops = [op for op, _, _ in err.value.ops]
    assert len(ops) == 1 and "det" in ops[0], ops  # export's graph misses only det; fx's misses det and entr


HIDDEN_TORCH = """
import sys
sys.modules["torch"] = None  # as if torch were not installed
import numpy as np
import tinydl
try:
    tinydl.from_torch(object())
except ImportError as e:
    print("from_torch:", e)
try:
    tinydl.load(sys.argv[1])
except ImportError as e:
    print("pt:", e)
print("safetensors:", tinydl.load(sys.argv[2])["w"].tolist())
"""


def test_without_torch_an_import_error_names_the_extra(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "w.pt")
    header = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    (tmp_path / "w.safetensors").write_bytes(len(header).to_bytes(8, "little") + header
                                             + np.array([1.5, 2.5], np.float32).tobytes())
    out = subprocess.run([sys.executable, "-c", HIDDEN_TORCH, str(tmp_path / "w.pt"), str(tmp_path / "w.safetensors")],
                         capture_output=True, text=True, timeout=300)
    assert "from_torch: tinydl.from_torch needs torch, which is not installed: pip install 'tinydl[torch]'" \
        in out.stdout, out.stdout + out.stderr
    assert "a torch checkpoint, and reading one needs torch" in out.stdout, out.stdout + out.stderr
    assert "safetensors: [1.5, 2.5]" in out.stdout, out.stdout + out.stderr


OPS = {
    "addcmul": lambda x: torch.addcmul(x, x, x * 2, value=0.5) + x.addcdiv(x, x.abs() + 5),
    "round_decimals": lambda x: torch.round(x * 10, decimals=1) + (x * 100).round(decimals=-1),
    "nearest_exact": lambda x: torch.nn.functional.interpolate(x, scale_factor=1.5, mode="nearest-exact"),
    "circular_pad": lambda x: torch.nn.functional.pad(x, (2, 1, -1, 3), mode="circular"),
    "norms": lambda x: torch.linalg.vector_norm(x, 3, dim=-1)[..., None] + x.norm(dim=(0, 1)) + torch.norm(x)
    + torch.nn.functional.normalize(x, p=1.0, dim=-1),
    "max_pool_functions": lambda x: torch.nn.functional.max_pool2d(x, 2)[..., :2, :2]
    + torch.nn.functional.adaptive_max_pool2d(x, 2),  # boolean_dispatch's functions, by their public names
    "logsumexp_lerp_repeat": lambda x: torch.logsumexp(x, -1)[..., None] + torch.lerp(x, x * 3, 0.7)
    + x[..., :3].repeat_interleave(2, dim=-1),
    "einsum": lambda x: torch.einsum("bhqd,bhkd->bhqk", x, x) @ x + torch.einsum("...ij->...j", x)[..., None, :],
    "flip": lambda x: torch.flip(x, [1, 3]) @ x.flip(-2).transpose(-1, -2) + x.fliplr().sum(),
    "tensor_constant": lambda x: x[torch.tensor([1, 0, 1])] * 2,  # fx keeps it as a get_attr on the root
    "scans_hypot": lambda x: torch.cumprod(x, 1) + x.cumsum(-1, dtype=torch.float32) + torch.logcumsumexp(x, 2)
    + torch.hypot(x, x * 2) + x.cumprod(0),
    "max_pool3d": lambda x: torch.nn.functional.max_pool3d(x, (2, 3, 2), 1, (1, 1, 0), ceil_mode=True),  # unbatched
    "histc": lambda x: x + torch.histc(x, bins=6, min=-1, max=1) + x.histc(6) + torch.histc(x[0], 6, 0.5, 0.5),
    # antialiased resampling (ATen's _upsample_*_aa, which torch.export keeps), down and up, bicubic and bilinear
    "interpolate_antialias": lambda x: torch.nn.functional.interpolate(x, size=(3, 4), mode="bicubic",
                                                                       antialias=True).sum()
    + torch.nn.functional.interpolate(x, scale_factor=(1.5, 0.5), mode="bilinear", antialias=True).mean(-1)[..., :5, None]
    + torch.nn.functional.interpolate(x, size=(5, 9), mode="bicubic", align_corners=True)[..., :6]
    + torch.nn.functional.interpolate(x[:, :, 0], size=11, mode="linear")[..., None, :6],
    # windows that overlap (a sliding-window unfold's strides) over an intermediate that owns its storage
    "as_strided": lambda x: torch.as_strided(x * 2, (2, 3, 4, 3), (90, 30, 6, 2), 1) + x[..., :4, :3],
    # running extremes, medians, sorted-sequence search, diagonal / masked scatters, angle, local response norm
    "cummax_median_searchsorted": lambda x: torch.cummax(x, 2).values + x.cummin(-1)[1]
    + x.median(dim=-1, keepdim=True).values + torch.median(x) + x.nanmedian(1, keepdim=True).values
    + torch.searchsorted(torch.linspace(-2, 2, 9), x.contiguous(), side="right") + torch.angle(x),
    "scatters_lrn": lambda x: torch.diagonal_scatter(x, x[..., 0, :5] * 3, 1, -2, -1)
    + x.masked_scatter(x > 0, x.flip(0) * 2) + torch.nn.functional.local_response_norm(x, 3, k=2.0),
    # 1-d and 3-d pools as ATen keeps them (x taken as an unbatched C x D x H x W volume, and as N x C x L)
    "pools_1d_3d": lambda x: torch.nn.functional.avg_pool3d(x, 2, 1, 1, count_include_pad=False)[:, :3, :5, :6]
    + torch.nn.functional.adaptive_max_pool3d(x, (3, 5, 6))
    + torch.nn.functional.avg_pool1d(x.flatten(2), 3, 2, 1, ceil_mode=True).sum(-1)[..., None, None]
    + torch.nn.functional.max_pool1d(x.flatten(2), 4, 3, dilation=2).mean(-1)[..., None, None]
    + torch.nn.functional.adaptive_max_pool1d(x.flatten(2), 6)[..., None, :],
}


class Fn(torch.nn.Module):
    def __init__(self, fn, traceable):
        super().__init__()
        self.fn, self.traceable = fn, traceable

    def forward(self, x):
        if not self.traceable:
            for _ in range(x.shape[0]):  # a loop over a size: fx cannot trace it, torch.export can
                pass
        return self.fn(x)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_ops_map_on_both_paths(name, path):
    x = torch.randn(2, 3, 5, 6)
    m = Fn(OPS[name], path == "fx").eval()
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == path
    assert_close(tm(tinydl.tensor(x.numpy())), m(x))



class LoopOnBatch(torch.nn.Module):
    """A Python loop over the batch size: fx cannot trace it, and torch.export makes the batch static."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        for _ in range(x.shape[0]):
            pass
        return self.fc(x).relu()


def test_untraceable_model_without_examples_converts_on_its_first_call():
    """Until its first call it is the converted tree (state_dict, load_state_dict, half); each call's sizes get
    an export that takes them (a new one where the model's code made a size static)."""
    m = LoopOnBatch().eval()
    tm = tinydl.from_torch(LoopOnBatch().eval())
    assert "via torch.export, on the first call" in repr(tm) and list(tm.state_dict()) == ["fc.weight", "fc.bias"]
    tm.load_state_dict(m.state_dict())
    for n in (5, 7, 5):
        x = torch.randn(n, 4)
        assert_close(tm(tinydl.tensor(x.numpy())), m(x))
    assert tm.conversion_path == "torch.export" and len(tm._programs) == 2
    tm.half()
    x = torch.randn(5, 4)
    out = tm(tinydl.tensor(x.numpy()).half())
    assert out.dtype == tinydl.float16
    assert_close(out.float(), m(x), rtol=1e-2, atol=1e-2)


def test_first_call_conversion_failure_says_why_it_was_deferred():
    class Both(LoopOnBatch):
        def forward(self, x):
            return torch.linalg.det(super().forward(x)[:, :2].reshape(-1, 1, 1))
    tm = tinydl.from_torch(Both().eval())
    with pytest.raises(UnsupportedTorchOps, match="det") as err:
        tm(tinydl.tensor(np.ones((3, 4), np.float32)))
    assert any("because torch.fx cannot trace it" in note for note in err.value.__notes__)


class Bfloat16Scale(Fn):
    """A bfloat16 buffer cast to the input's dtype where it is used (RecurrentGemma's normalizer): torch.export
    asserts the buffer's dtype (`_assert_tensor_metadata(..., dtype=torch.bfloat16)`), a check with no value."""

    def __init__(self, traceable):
        super().__init__(lambda x: x * self.scale.type(x.dtype), traceable)
        self.register_buffer("scale", torch.tensor(48 ** 0.5, dtype=torch.bfloat16), persistent=False)


def test_a_bfloat16_buffer_cast_where_it_is_used_converts_and_runs():
    x = torch.randn(2, 3, 5, 6)
    m = Bfloat16Scale(traceable=False).eval()
    tm = tinydl.from_torch(m, example_inputs=(x,))
    assert tm.conversion_path == "torch.export"
    np.testing.assert_array_equal(tm(tinydl.tensor(x.numpy())).numpy(), m(x).numpy())  # the bfloat16 value exactly


class StridedView(torch.nn.Module):
    """as_strided over a transpose: torch reads the transposed tensor's base storage."""

    def forward(self, x):
        return torch.as_strided(x.transpose(0, 1), (2, 2), (1, 1), 1) * 2


def test_as_strided_over_a_view_is_refused():
    """torch.export: at conversion, from the traced tensor's layout; fx (no layouts traced): at the call, where the
    tensor is one of tinydl's views (never a wrong answer: a tinydl view is refused even where torch's copy made
    storage of its own)."""
    x = torch.randn(4, 6)
    with pytest.raises(UnsupportedTorchOps, match=r"aten\.as_strided\.default \(of a view"):
        tinydl.from_torch(Fn(StridedView(), False).eval(), example_inputs=(x,))
    tm = tinydl.from_torch(Fn(StridedView(), True).eval(), example_inputs=(x,))
    assert tm.conversion_path == "fx"
    with pytest.raises(NotImplementedError, match=r"as_strided of a view \(permute\)"):
        tm(tinydl.tensor(x.numpy()))


def test_data_dependent_sizes_convert_and_run():
    """masked_select, bincount and unique_consecutive, whose result sizes depend on the values (read back): fx maps
    them (torch.functional's unique_consecutive too); the values equal torch's."""
    def fn(x):
        counts = torch.bincount((x.abs() * 3).long().flatten(), minlength=12)[:12].float()
        runs = torch.unique_consecutive((x > 0).float().flatten(), return_counts=True)[1].float().sum()
        return x * counts.sum() + torch.masked_select(x, x > 0.5).sum() + counts.max() + runs
    x = torch.randn(2, 3, 5, 6)
    m = Fn(fn, True).eval()
    tm = tinydl.from_torch(m)
    assert tm.conversion_path == "fx"
    assert_close(tm(tinydl.tensor(x.numpy())), m(x))
