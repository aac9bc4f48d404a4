"""benchmarks.coverage: the per-model check on tiny models (a row's fields for each outcome) and the markdown
writer on made-up rows."""
import torch

from benchmarks.coverage import check, report, zoo
from benchmarks.coverage.hf import hf_entries
from tinydl.interop.torchvision_compat import import_torchvision

tv = import_torchvision()


def _entry(name, make, group="classification"):
    """An Entry for a model built by make(), with a 1x3x32x32 input."""
    def build(size_mode):
        return zoo.first_that_runs(lambda size: (make().eval(), (torch.randn(1, 3, size, size),), {}), (32,))
    return zoo.Entry("torchvision", group, name, build)


def test_torchvision_model_row():
    torch.manual_seed(0)
    row = check.check(_entry("resnet18", lambda: tv.models.resnet18()))
    assert row["status"] == check.OK, row
    assert row["key"] == "torchvision:resnet18" and row["path"] == "fx" and row["inputs"] == "1x3x32x32"
    assert row["params"] == sum(p.numel() for p in tv.models.resnet18().parameters())
    assert 0 <= row["max_abs"] <= row["atol"] + check.RTOL * row["scale"]
    assert row["first_call_s"] > 0 and row["convert_s"] > 0


def test_hf_model_row():
    bert = next(e for e in hf_entries() if e.name == "BERT")
    row = check.check(bert)
    assert row["status"] == check.OK, row
    assert row["path"] == "torch.export" and row["inputs"].startswith("input_ids=2x8")
    assert row["group"] == "text encoder" and row["first_call_s"] > 0


class _Spectral(torch.nn.Module):
    def forward(self, x):
        return torch.fft.fft(x).real + torch.linalg.svd(x).S.sum()


def test_failures_are_rows():
    row = check.check(_entry("spectral", _Spectral))
    assert row["status"] == check.CONVERSION
    assert row["ops"] == ["function torch.fft.fft", "function torch.linalg.svd"]

    def broken(size_mode):
        return zoo.first_that_runs(lambda size: (torch.nn.Conv2d(4, 4, 3).eval(), (torch.randn(1, 3, 8, 8),), {}),
                                   (8, 16))
    row = check.check(zoo.Entry("torchvision", "classification", "broken", broken))
    assert row["status"] == check.TORCH and row["reason"].startswith("RuntimeError: ")
    row = check.check(zoo.Entry("torchvision", "quantization", "q", None, skip="int8"))
    assert row["status"] == check.SKIPPED and row["reason"] == "int8"


def test_float64_arbitrates_a_mismatch():
    """A model whose tinydl and torch float32 outputs differ beyond the tolerance is ok when tinydl's error against
    a float64 run is within torch float32's own; a real fault stays a mismatch."""
    assert check.within_torchs_own_error(1e-7, 2e-4, 1e-6) and check.within_torchs_own_error(5e-7, 1e-8, 1e-6)
    assert not check.within_torchs_own_error(1e-3, 2e-4, 1e-6)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh()).eval()
    x = torch.randn(2, 8)
    built = zoo.Built(model, (x,), {}, "2x8")
    import tinydl
    tm = tinydl.from_torch(model, example_inputs=(x,))
    with torch.no_grad():
        expected = model(x)
    ours, torchs = check.float64_errors(built, expected, tm)
    assert ours < 1e-5 and torchs < 1e-5
    ours, torchs = check.float64_errors(built, expected + 1.0, tm)  # torch float32 off by one, tinydl right
    assert ours < 1e-5 and torchs > 0.99


def test_markdown_from_rows():
    entries = [zoo.Entry("torchvision", "classification", n, None) for n in ("a", "b", "c", "d")] + [
        zoo.Entry("torchvision", "quantization", "q", None, skip="int8 kernels"),
        zoo.Entry("hf", "causal LM", "Llama", None)]
    rows = [dict(check.base_row(entries[0]), status=check.OK, path="fx", max_abs=1e-6, atol=1e-4, first_call_s=0.5,
                 inputs="1x3x32x32", params=2e6, command="cmd 1", date="2026-12-05", device="llvmpipe"),
            dict(check.base_row(entries[1]), status=check.CONVERSION, ops=["aten.foo", "aten.bar"],
                 reason="2 unmapped op(s)", command="cmd 1", date="2026-12-05", device="llvmpipe"),
            dict(check.base_row(entries[2]), status=check.CONVERSION, ops=["aten.foo"], reason="1 unmapped op(s)",
                 command="cmd 2", date="2026-12-06", device="llvmpipe"),
            dict(check.base_row(entries[5]), status=check.MISMATCH, max_abs=0.3, reason="1 of 1 output(s) differ",
                 command="cmd 2", date="2026-12-06", device="llvmpipe")]
    merged = report.merge(entries, rows)
    assert [r["status"] for r in merged] == [check.OK, check.CONVERSION, check.CONVERSION, check.NOT_RUN,
                                             check.SKIPPED, check.MISMATCH]
    text = report.markdown(merged, {"quantization": "int8 kernels"}, ["cmd 1", "cmd 2"], "llvmpipe",
                           {"2026-12-05", "2026-12-06"})
    assert "Device: llvmpipe. Date: 2026-12-05, 2026-12-06" in text and "    cmd 1\n    cmd 2" in text
    # quantization is outside the goal: 4 torchvision models, 1 ok, 2 failed, 1 not run
    assert "| torchvision | 4 | 1 | 0 | 2 | 0 | 0 | 1 | 25% | 95% |" in text
    assert "| Hugging Face (tiny configs) | 1 | 0 | 1 | 0 | 0 | 0 | 0 | 0% | 100% |" in text
    assert "| `aten.foo` | 2 | torchvision:b, torchvision:c |" in text  # the op blocking most models first
    assert text.index("`aten.foo`") < text.index("`aten.bar`")
    assert "| d | classification | - |  | - | - | - | - | not run | not run (time budget) |" in text
    assert "| a | classification | 2.00 | 1x3x32x32 | fx | 1e-06 | 0.0001 | 0.50 | ok |  |" in text
