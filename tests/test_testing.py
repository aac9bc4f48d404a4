"""tinydl.testing: assert_close's messages and compare()'s per-output parity report."""
import collections
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as tnn

import tinydl
import tinydl.nn as nn
from tinydl.testing import assert_close, compare


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# -- assert_close --------------------------------------------------------------------------------------------
def test_assert_close_names_the_worst_element(rng):
    e = randn(rng, 3, 4)
    a = e.copy()
    a[0, 1] += 1e-3
    a[2, 3] += 5e-2  # the worst
    with pytest.raises(AssertionError) as err:
        assert_close(tinydl.tensor(a), torch.from_numpy(e))
    msg = str(err.value)
    assert "2 of 12 elements differ beyond rtol=0.0001, atol=1e-05" in msg
    assert "worst at (2, 3)" in msg
    assert f"got {np.float64(a[2, 3])!r}, expected {np.float64(e[2, 3])!r}" in msg
    assert "max abs err 0.05" in msg


def test_assert_close_nan_and_inf_are_worst(rng):
    e = randn(rng, 5)
    a = e.copy()
    a[1] += 1.0
    a[3] = np.nan
    with pytest.raises(AssertionError, match=r"worst at \(3,\) got np.float64\(nan\)"):
        assert_close(a, e)
    assert_close(np.array([np.nan, 1.0], np.float32), np.array([np.nan, 1.0], np.float32))  # equal_nan default
    with pytest.raises(AssertionError, match=r"worst at \(0,\)"):
        assert_close(np.array([np.nan, 1.0], np.float32), np.array([np.nan, 1.0], np.float32), equal_nan=False)


def test_assert_close_shape_dtype_bool_messages(rng):
    with pytest.raises(AssertionError, match=r"shape mismatch: got \[2, 3\], expected \[3, 2\]"):
        assert_close(np.zeros((2, 3), np.float32), torch.zeros(3, 2))
    with pytest.raises(AssertionError, match="dtype mismatch: got int32, expected float32"):
        assert_close(tinydl.tensor(np.zeros(3, np.int32)), torch.zeros(3))
    assert_close(tinydl.tensor(np.arange(3)), torch.arange(3))  # torch int64 counts as tinydl int32
    assert_close(tinydl.tensor(np.zeros(3, np.int32)), torch.zeros(3), check_dtype=False)
    a = np.array([[True, False], [True, True]])
    b = a.copy()
    b[1, 0] = False
    with pytest.raises(AssertionError, match=r"1 of 4 booleans differ \(first at \(1, 0\): got True, expected False\)"):
        assert_close(a, b)


def test_assert_close_scalar(rng):
    with pytest.raises(AssertionError, match=r"worst at \(\) got np.float64\(1.5\), expected np.float64\(1.0\)"):
        assert_close(np.float32(1.5), torch.tensor(1.0))


# -- compare --------------------------------------------------------------------------------------------------
def mlp(lib):
    return lib.Sequential(lib.Linear(4, 8), lib.GELU(), lib.Linear(8, 3))


@pytest.fixture
def mlp_pair():
    torch.manual_seed(0)
    t = mlp(tnn).eval()
    m = mlp(nn).eval()
    m.load_state_dict(t.state_dict())
    return t, m


@pytest.mark.parametrize("kind", ["numpy", "torch", "tinydl"])
def test_compare_passes_on_equal_models(mlp_pair, rng, kind, capsys):
    t, m = mlp_pair
    x = randn(rng, 2, 4)
    x = {"numpy": x, "torch": torch.from_numpy(x), "tinydl": tinydl.tensor(x)}[kind]
    report = compare(t, m, x)
    assert report.ok and len(report) == 1
    row = report.outputs[0]
    assert row.name == "output" and row.shape == (2, 3) and row.ok
    with torch.no_grad():
        want = t(torch.from_numpy(np.asarray(x.numpy() if kind != "numpy" else x))).numpy()
    got = m(tinydl.tensor(x.numpy() if kind != "numpy" else x)).numpy()
    assert row.max_abs == pytest.approx(float(np.abs(got.astype(np.float64) - want).max()), abs=1e-12)
    out = capsys.readouterr().out  # printed by default
    assert "Sequential: 1 output(s), rtol=0.0001, atol=0.0001: PASS" in out
    assert "max abs err" in out and "2x3" in out


def test_compare_reports_failure_with_worst_element(mlp_pair, rng):
    t, m = mlp_pair
    w = m[2].bias.numpy().copy()
    w[1] += 0.5
    m[2].load_state_dict({"weight": m[2].weight, "bias": w})
    report = compare(t, m, randn(rng, 2, 4), print_report=False)
    assert not report.ok
    row = report["output"]
    assert not row.ok and row.max_abs == pytest.approx(0.5, rel=1e-4)
    assert "2 of 6 differ, worst at (" in row.note and ", 1):" in row.note
    text = str(report)
    assert "FAIL" in text.splitlines()[0] and "FAIL" in text.splitlines()[-1]
    with pytest.raises(AssertionError, match="Sequential: 1 output"):
        report.assert_ok()


def test_compare_tolerances(rng):
    class AddConst(tnn.Module):
        def forward(self, x):
            return x

    class AddConstTinydl(nn.Module):
        def forward(self, x):
            return x + 5e-4

    x = randn(rng, 3, 3) * 0  # |expected| = 0: only atol counts
    assert not compare(AddConst(), AddConstTinydl(), x, print_report=False).ok  # default atol 1e-4
    assert compare(AddConst(), AddConstTinydl(), x, atol=1e-3, print_report=False).ok
    x = np.full((2, 2), 10.0, np.float32)  # |expected| = 10: rtol 1e-4 allows 1e-3
    r = compare(AddConst(), AddConstTinydl(), x, atol=0, print_report=False)
    assert r.ok and r.outputs[0].max_rel == pytest.approx(5e-5, rel=1e-2)


@dataclasses.dataclass
class DataOut:
    logits: object
    extra: object = None


Pair = collections.namedtuple("Pair", ["first", "second"])


def _nested(lib, T):
    """A module with nested outputs: dict of tuple/namedtuple/dataclass/None, as torch and as tinydl."""
    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.fc = lib.Linear(4, 3)

        def forward(self, x, scale=1.0):
            y = self.fc(x) * scale
            return {"logits": y, "parts": (y.sum(-1), [y.amax(-1)]), "pair": Pair(y[0], y[1]),
                    "data": DataOut(y.relu()), "none": None}
    return Net()


def test_compare_walks_nested_outputs_and_kwargs(rng):
    torch.manual_seed(1)
    t = _nested(tnn, torch).eval()
    m = _nested(nn, tinydl).eval()
    m.load_state_dict(t.state_dict())
    report = compare(t, m, randn(rng, 2, 4), kwargs={"scale": 2.0}, print_report=False)
    assert [o.name for o in report] == [".logits", ".parts[0]", ".parts[1][0]", ".pair.first", ".pair.second",
                                        ".data.logits", ".data.extra", ".none"]
    assert report.ok, str(report)
    assert report[".parts[0]"].shape == (2,)


def test_compare_structure_mismatches(rng):
    class T(tnn.Module):
        def forward(self, x):
            return x, x.sum(0), None

    class M(nn.Module):
        def forward(self, x):
            return x.reshape(-1), x, x  # wrong shape, wrong value, not None

    report = compare(T(), M(), randn(rng, 2, 3), print_report=False)
    assert [o.ok for o in report] == [False, False, False]
    assert report["[0]"].note == "shape mismatch" and report["[0]"].expected_shape == (2, 3)
    assert "shape mismatch" in str(report) and "(torch: 2x3)" in str(report)
    assert "torch returned None" in report["[2]"].note

    class Fewer(nn.Module):
        def forward(self, x):
            return (x,)

    report = compare(T(), Fewer(), randn(rng, 2, 3), print_report=False)
    assert report["[1]"].note == "missing from tinydl's output" and not report.ok


def test_compare_hf_model_output(rng):
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    class T(tnn.Module):
        def forward(self, x):
            return BaseModelOutputWithPooling(last_hidden_state=x * 2, pooler_output=x.mean(1))

    class M(nn.Module):
        def forward(self, x):
            return {"last_hidden_state": x * 2, "pooler_output": x.mean(1)}

    report = compare(T(), M(), randn(rng, 2, 5, 3), print_report=False)
    assert [o.name for o in report] == [".last_hidden_state", ".pooler_output"]  # None fields are not outputs
    assert report.ok


def test_compare_puts_a_float16_model_beside_a_float32_copy(rng):
    """A float16 torch module is also run as a float32 copy: each output reports tinydl's error against it and
    torch's own float16 error against it, so a difference shows as float16's or tinydl's."""
    if "shader-f16" not in tinydl.device_info()["features"]:
        pytest.skip("adapter without shader-f16")
    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.LayerNorm(128), torch.nn.GELU(),
                            torch.nn.Linear(128, 16)).eval().half()
    x = rng.standard_normal((4, 64)).astype(np.float16)
    report = compare(t, tinydl.from_torch(t, (torch.from_numpy(x),)), x, rtol=1e-2, atol=1e-2, print_report=False)
    out = report.outputs[0]
    with torch.no_grad():
        exact = t.float()(torch.from_numpy(x).float()).numpy()
        t.half()
        torch_half = t(torch.from_numpy(x)).float().numpy()
    assert out.torch_vs_float32 == pytest.approx(np.abs(torch_half - exact).max(), rel=1e-6)
    assert 0 < out.vs_float32 <= 4 * out.torch_vs_float32  # tinydl's float16 error is float16's, not more
    text = str(report)
    assert "vs float32 model" in text and "torch fp16 vs float32" in text and f"{out.vs_float32:.3g}" in text
    linear = torch.nn.Linear(4, 4).eval()  # a float32 module: no such columns
    plain = compare(linear, tinydl.from_torch(linear), np.ones((2, 4), np.float32), print_report=False)
    assert plain.outputs[0].vs_float32 is None and "vs float32" not in str(plain)
