"""torch.histc (tinydl.histc, Tensor.histc, aten.histc) and torch.bincount against torch CPU: explicit and data ranges, elements on the
bins' edges (torch's own rounded arithmetic decides their bin), out-of-range, NaN and infinite elements ignored,
float16, and every error in torch's words."""
import re

import numpy as np
import pytest
import torch

import tinydl
from tinydl.testing import assert_close

INF, NAN = float("inf"), float("nan")


def torch_error(*args, **kw):
    try:
        torch.histc(*args, **kw)
    except Exception as e:  # noqa: BLE001 - whatever torch raises is what tinydl must raise
        return e
    raise AssertionError("torch raised nothing")


def check(x: np.ndarray, *args, **kw):
    expected = torch.histc(torch.from_numpy(x), *args, **kw)
    out = tinydl.histc(tinydl.tensor(x), *args, **kw)
    assert out.dtype == tinydl.tensor(x).dtype and out.shape == tuple(expected.shape)
    assert_close(out, expected, rtol=0, atol=0)  # counts: exact
    return expected


def on_the_edges(rng, dtype, bins, lo, hi):
    """Random values over a little more than [lo, hi], the bins' edges as torch's linspace makes them, the values
    next to each edge, and lo + k * (hi - lo) / bins rounded (where a division that is off by an ulp moves an element
    to the next bin); NaN and infinities among them."""
    edges = np.linspace(lo, hi, bins + 1).astype(dtype)
    near = [np.nextafter(edges, INF, dtype=dtype), np.nextafter(edges, -INF, dtype=dtype)]
    steps = (lo + np.arange(bins + 1) * np.float32(hi - lo) / bins).astype(dtype)
    spread = (lo + (rng.random(300) * 1.2 - 0.1) * (hi - lo)).astype(dtype)
    return np.concatenate([edges, *near, steps, spread, np.array([NAN, INF, -INF], dtype)]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("bins,lo,hi", [(4, 0, 1), (10, -1, 1), (7, 0.1, 0.7), (100, -3.3, 2.9), (1, -2, 2),
                                        (3, 1e-3, 7e-3), (255, -50, 60), (8, 0, 7)])
def test_explicit_range(rng, dtype, bins, lo, hi):
    x = on_the_edges(rng, dtype, bins, lo, hi)
    expected = check(x, bins=bins, min=lo, max=hi)
    assert expected.sum() < x.size  # out-of-range, NaN and infinite elements were left out
    assert expected[-1] > 0  # the last bin holds max itself


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("bins", [1, 5, 100])
@pytest.mark.parametrize("bounds", [(0, 0), (3, 3), (INF, INF)])  # equal bounds: the data's own range
def test_data_range(rng, dtype, bins, bounds):
    x = (rng.standard_normal((3, 40, 5)) * 4 + 1).astype(dtype)
    expected = check(x, bins, *bounds)
    assert expected.sum() == x.size  # the data's min and max are in range


@pytest.mark.parametrize("x", [np.full(7, 2.5, np.float32), np.array(-4.0, np.float32), np.zeros((0, 3), np.float32),
                               np.full(5, 2.5, np.float16)])
def test_data_range_of_one_value_or_none(x):
    """One value: torch widens the range to [v - 1, v + 1] (v lands in the middle bin); no values: zeros."""
    for bins in (1, 3, 4):
        check(x, bins)


def test_method_defaults_and_aliases(rng):
    x = rng.standard_normal(1000).astype(np.float32)
    assert_close(tinydl.tensor(x).histc(), torch.from_numpy(x).histc(), rtol=0, atol=0)  # 100 bins, data range
    assert_close(tinydl.tensor(x).histc(5, -1, 1), torch.histc(torch.from_numpy(x), 5, -1, 1), rtol=0, atol=0)
    check(x, bins=np.int64(6), min=np.float32(-0.5), max=1)  # numpy numbers, as torch takes them


def test_float16_counts_past_2048_keep_counting():
    """A deliberate difference: torch CPU counts in float16 itself, where 2048 + 1 rounds back to 2048 (5000 equal
    elements give 2048 per thread that counts them); tinydl counts in integers and rounds the count once."""
    x = np.full(5000, 0.5, np.float16)
    assert torch.histc(torch.from_numpy(x), 2, 0, 1).tolist() in ([0, 2048], [0, 4096])
    assert tinydl.histc(tinydl.tensor(x), 2, 0, 1).tolist() == [0, 5000]


@pytest.mark.parametrize("args", [
    dict(bins=0), dict(bins=-3), dict(bins=0, min=3, max=1),             # bins first
    dict(bins=4, min=3, max=1), dict(bins=4, min=2, max=1.999),          # max below min
    dict(bins=4, min=-INF, max=1), dict(bins=4, min=0.1, max=NAN), dict(bins=4, min=NAN, max=NAN),
    dict(bins=4, min=0, max=3.4028236e38), dict(bins=4, min=-1e300, max=1e300),  # past float's range
])
def test_bad_arguments_raise_as_torch(args):
    x = np.array([1, 2, 1, 4], np.float32)
    err = torch_error(torch.from_numpy(x), **args)
    with pytest.raises(type(err), match="^" + re.escape(str(err)) + "$"):
        tinydl.histc(tinydl.tensor(x), **args)


@pytest.mark.parametrize("bins", [2.5, True, "3"])
def test_bins_must_be_an_int(bins):
    x = np.ones(3, np.float32)
    err = torch_error(torch.from_numpy(x), bins=bins)
    assert isinstance(err, TypeError)
    with pytest.raises(TypeError, match="^" + re.escape(str(err)) + "$"):
        tinydl.histc(tinydl.tensor(x), bins=bins)
    # (given by position, torch's parser also says "(position 2)"; a Python signature cannot tell)
    with pytest.raises(TypeError, match=r"^histc\(\): argument 'bins' must be int, not "):
        tinydl.histc(tinydl.tensor(x), bins)


def test_float16_range_past_half():
    x = np.ones(3, np.float16)
    err = torch_error(torch.from_numpy(x), 3, 0, 65519)
    with pytest.raises(RuntimeError, match="^" + re.escape(str(err)) + "$"):  # "... type c10::Half ..."
        tinydl.histc(tinydl.tensor(x), 3, 0, 65519)
    check(x, 3, 0, 6)


@pytest.mark.parametrize("special", [NAN, INF, -INF])
def test_data_range_not_finite(special):
    """NaN or an infinity in the data: the data's range is not finite (torch prints a NaN's sign as glibc does, which
    depends on the NaN; tinydl prints the one its GPU gave)."""
    x = np.array([1, special, 2], np.float32)
    err = torch_error(torch.from_numpy(x))
    pattern = r"torch\.histc: range of \[-?nan, -?nan\] is not finite" if special != special else re.escape(str(err))
    assert isinstance(err, RuntimeError) and re.fullmatch(pattern, str(err))
    with pytest.raises(RuntimeError, match="^" + pattern + "$"):
        tinydl.histc(tinydl.tensor(x))
    check(x, 4, 0, 3)  # an explicit range leaves it out


@pytest.mark.parametrize("dtype,name", [(np.int64, "Long"), (np.bool_, "Bool")])
def test_integer_and_bool_input_raise_as_torch(dtype, name):
    x = np.array([1, 0, 3], dtype)
    for args in ((4,), (4, 0, 3)):
        err = torch_error(torch.from_numpy(x), *args)
        assert isinstance(err, NotImplementedError) and name in str(err)
        with pytest.raises(NotImplementedError, match="^" + re.escape(str(err)) + "$"):
            tinydl.histc(tinydl.tensor(x), *args)  # (int64 is tinydl's int32: torch's message for int64)
    err = torch_error(torch.from_numpy(x), 4, 3, 1)  # the range is checked first
    with pytest.raises(RuntimeError, match="^" + re.escape(str(err)) + "$"):
        tinydl.histc(tinydl.tensor(x), 4, 3, 1)


@pytest.mark.parametrize("x,args", [(np.array([3e38, -3e38, 0], np.float32), (3,)),
                                    (np.array([1.0, 30000.0], np.float16), (100, 0, 60000)),
                                    (np.array([1.0], np.float32), (3, 1.0000001, 1.00000011))])
def test_ranges_torch_cannot_bin_are_refused(x, args):
    """(max - min) * bins overflowing the dtype, or max == min once rounded to it: torch CPU's bin index is then an
    inf or NaN converted to an integer (undefined in C++; its counts are garbage): refused, naming the cause."""
    with pytest.raises(RuntimeError, match=r"^histc: \(max - min\) \* bins (overflows|is 0) in float(32|16) \(range "
                                           r"\[.*\], \d+ bins\), where torch CPU's bins are undefined"):
        tinydl.histc(tinydl.tensor(x), *args)


# -- from torch graphs ------------------------------------------------------------------------------------------
class Router(torch.nn.Module):
    """Mixtral's MoE routing count: the experts each token picked, as a histogram over the experts."""

    def __init__(self, experts=8):
        super().__init__()
        self.gate, self.experts = torch.nn.Linear(16, experts), experts

    def forward(self, x):
        _, chosen = torch.topk(self.gate(x).softmax(-1), 2, dim=-1)
        counts = torch.histc(chosen.float(), bins=self.experts, min=0, max=self.experts - 1)
        return counts, x.histc(5), torch.histc(x, 7, -0.5, 0.5)


def test_histc_converts_through_export_and_fx(rng):
    from tinydl.interop import export
    m = Router().eval()
    x = torch.from_numpy(rng.standard_normal((12, 16)).astype(np.float32))
    ep, _ = export.export(m, (x,), {}, None)
    assert "aten.histc.default" in {export.op_name(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    with torch.no_grad():
        expected = m(x)
    for tm in (export.convert(m, (x,)), tinydl.from_torch(m)):
        out = tm(tinydl.tensor(x.numpy()))
        assert len(out) == 3
        for o, e in zip(out, expected):
            assert_close(o, e, rtol=0, atol=0)


# -- bincount ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("minlength", [0, 3, 40])
@pytest.mark.parametrize("weighted", [False, True])
def test_bincount_matches_torch(minlength, weighted):
    rng = np.random.default_rng(minlength)
    x = rng.integers(0, 20, 300).astype(np.int32)
    w = rng.standard_normal(300).astype(np.float32) if weighted else None
    got = tinydl.bincount(tinydl.tensor(x), None if w is None else tinydl.tensor(w), minlength)
    want = torch.bincount(torch.from_numpy(x).long(), None if w is None else torch.from_numpy(w), minlength)
    assert got.dtype == (tinydl.float32 if weighted else tinydl.int32)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    assert tinydl.tensor(x).bincount(minlength=minlength).shape == \
        torch.bincount(torch.from_numpy(x).long(), minlength=minlength).shape
    assert tinydl.bincount(tinydl.tensor(np.zeros(0, np.int32)), minlength=minlength).numpy().tolist() == \
        [0] * minlength


@pytest.mark.parametrize("make,error,message", [
    (lambda: tinydl.bincount(tinydl.tensor(np.array([-1, 2], np.int32))), RuntimeError,
     "bincount only supports 1-d non-negative integral inputs."),
    (lambda: tinydl.bincount(tinydl.tensor(np.ones((2, 2), np.int32))), RuntimeError,
     "bincount only supports 1-d non-negative integral inputs."),
    (lambda: tinydl.bincount(tinydl.tensor(np.ones(2, np.float32))), NotImplementedError,
     "\"bincount_cpu\" not implemented for 'Float'"),
    (lambda: tinydl.bincount(tinydl.tensor(np.ones(2, np.int32)), minlength=-1), RuntimeError,
     "minlength should be >= 0"),
    (lambda: tinydl.bincount(tinydl.tensor(np.ones(2, np.int32)), tinydl.tensor(np.ones(3, np.float32))),
     RuntimeError, "weights should be 1-d and have the same length as input"),
    (lambda: tinydl.bincount(tinydl.tensor(np.ones(2, np.int32)), tinydl.tensor(np.ones(2, np.float16))),
     NotImplementedError, "gives float64, which tinydl does not have"),
])
def test_bincount_errors(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()
