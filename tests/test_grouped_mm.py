"""transformers' grouped_mm_fallback (tinydl.grouped_mm.grouped_mm, registered as
`transformers.grouped_mm_fallback.default`) against the op itself run in torch: routed groups as MoE experts make
them (sorted expert ids, histc, cumsum), empty groups, offsets past the rows, negative and decreasing ones (Python
slicing decides), fewer offsets than experts, float16; the kernels it runs as; every error in torch's words."""
import inspect
import re

import numpy as np
import pytest
import torch

import tinydl
from tinydl import explain
from tinydl.grouped_mm import grouped_mm
from tinydl.interop import registry
from tinydl.interop.torchvision_compat import import_torchvision
from tinydl.testing import assert_close

import_torchvision()  # before transformers, which may import torchvision
transformers_moe = pytest.importorskip("transformers.integrations.moe")  # registers torch.ops.transformers
OP = torch.ops.transformers.grouped_mm_fallback


def weights(rng, experts, k, n, dtype=np.float32):
    """[experts, K, N] as the experts pass it: their [experts, N, K] parameter transposed (a view)."""
    return rng.standard_normal((experts, n, k)).astype(dtype)


def run_both(x, w_nk, offs):
    expected = OP(torch.from_numpy(x), torch.from_numpy(w_nk).transpose(-2, -1), torch.from_numpy(offs))
    out = grouped_mm(tinydl.tensor(x), tinydl.tensor(w_nk).transpose(-2, -1), tinydl.tensor(offs))
    assert out.shape == tuple(expected.shape) and out.dtype == tinydl.tensor(x).dtype
    return out, expected


def routed_offsets(rng, rows, experts):
    """HF's offsets: the experts of `rows` token-expert pairs, counted (histc) and summed up (cumsum, int32)."""
    ids = torch.from_numpy(rng.integers(0, experts, rows))
    counts = torch.histc(ids.sort().values.float(), bins=experts, min=0, max=experts - 1)
    return torch.cumsum(counts, 0, dtype=torch.int32).numpy()


def test_the_op_is_registered_with_its_schemas_arguments():
    """Every argument of the op's schema taken by its name and position (as tests/test_op_table.py checks the
    ATen table)."""
    assert registry.lookup("transformers.grouped_mm_fallback.default") is grouped_mm
    schema = [a.name for a in OP.default._schema.arguments]
    assert schema == list(inspect.signature(grouped_mm).parameters) == ["input", "weight", "offs"]


@pytest.mark.parametrize("rows,k,n,experts", [(12, 32, 48, 4), (1, 8, 5, 3), (37, 17, 9, 8), (64, 1, 1, 2),
                                              (9, 40, 130, 1)])
def test_routed_groups(rng, rows, k, n, experts):
    offs = routed_offsets(rng, rows, experts)
    out, expected = run_both(rng.standard_normal((rows, k)).astype(np.float32), weights(rng, experts, k, n), offs)
    assert_close(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("offs", [
    [0, 0, 12, 12],     # empty groups, one holding every row
    [3, 3, 9, 11],      # the last row in no group: zeros
    [0, 0, 0, 0],       # no row in any group
    [5, 40, 41, 99],    # offsets past the rows stop at the end (Python slicing)
    [-2, 4, 6, 12],     # a negative offset counts from the end: rows [0, 10) for expert 0, then [10, 4) empty
    [-30, 4, 6, 12],    # ... and one before the start is 0
    [4, 2, 6, 12],      # decreasing: expert 2's slice [2, 6) overwrites rows 2, 3 of expert 0
    [8, 3, 5, 1],       # several overwrites, rows past the last group zeros
    [5, 9],             # fewer offsets than experts: only the first experts are used
])
@pytest.mark.parametrize("offs_dtype", [np.int32, np.int64])
def test_offsets_as_python_slices(rng, offs, offs_dtype):
    out, expected = run_both(rng.standard_normal((12, 16)).astype(np.float32), weights(rng, 4, 16, 24),
                             np.array(offs, offs_dtype))
    assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_nonfinite_rows_stay_in_their_group(rng):
    """NaN and inf in a row reach that row's outputs only; rows in no group are zeros even where input is NaN."""
    x = rng.standard_normal((10, 8)).astype(np.float32)
    x[2, 3], x[5, 0], x[9, :] = np.nan, np.inf, np.nan
    out, expected = run_both(x, weights(rng, 3, 8, 6), np.array([4, 4, 8], np.int32))
    assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert np.isnan(out.numpy()[2]).all() and (out.numpy()[8:] == 0).all()


def test_float16(rng):
    """Inputs and weights in float16 (torch CPU's half mm); the products accumulate in float32 and round once,
    so the tolerance is float16's."""
    offs = routed_offsets(rng, 20, 4)
    out, expected = run_both(rng.standard_normal((20, 24)).astype(np.float16),
                             weights(rng, 4, 24, 16, np.float16), offs)
    assert_close(out, expected, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("rows,offs", [(0, [0, 0, 0]), (7, [])])
def test_no_rows_or_no_groups_give_zeros(rng, rows, offs):
    x = rng.standard_normal((rows, 8)).astype(np.float32)
    out, expected = run_both(x, weights(rng, 3, 8, 5), np.array(offs, np.int32))
    assert_close(out, expected, rtol=0, atol=0)


def test_runs_as_a_max_and_one_gemv(rng):
    """Each row's group (a comparison with every offset, reduced by max), then one gemv whose gather of the
    rows' experts is inlined: no [rows, K, N] tensor of gathered weights."""
    x = tinydl.tensor(rng.standard_normal((12, 32)).astype(np.float32))
    w = tinydl.tensor(weights(rng, 4, 32, 48)).transpose(-2, -1)
    plan = explain.plan(grouped_mm, x, w, tinydl.tensor(np.array([3, 3, 9, 11], np.int32)))
    assert [n.split()[0] for n in plan.names] == ["reduce_max", "matmul+ge+where"]


def test_a_group_past_the_last_expert_raises(rng):
    """More offsets than experts: the fallback's weight[i] raises for a non-empty group i past the last expert
    (checked on the GPU); an empty one there is fine, as in torch."""
    x, w = rng.standard_normal((6, 4)).astype(np.float32), weights(rng, 3, 4, 5)
    with pytest.raises(IndexError, match=r"index 3 is out of bounds for dimension 0 with size 3"):
        OP(torch.from_numpy(x), torch.from_numpy(w).transpose(-2, -1), torch.tensor([1, 2, 3, 5]))
    with pytest.raises(IndexError, match=r"^index out of range in self"):
        grouped_mm(tinydl.tensor(x), tinydl.tensor(w).transpose(-2, -1),
                   tinydl.tensor(np.array([1, 2, 3, 5], np.int32))).numpy()
    out, expected = run_both(x, w, np.array([1, 2, 6, 6], np.int32))
    assert_close(out, expected, rtol=1e-4, atol=1e-5)


def _torch_error(x, w, offs):
    try:
        OP(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(offs))
    except Exception as e:  # noqa: BLE001 - whatever torch raises is what tinydl must raise
        return e
    raise AssertionError("torch raised nothing")


F32, F16 = np.float32, np.float16
OFFS = np.array([2, 4, 6], np.int32)


@pytest.mark.parametrize("x,w,offs", [
    (np.ones((6, 4), F32), np.ones((3, 4, 5), F16), OFFS),             # input and weight dtypes differ
    (np.ones((6, 4), F16), np.ones((3, 4, 5), F32), OFFS),
    (np.ones((6, 4, 1), F32), np.ones((3, 4, 5), F32), OFFS),          # input not a matrix
    (np.ones(6, F32), np.ones((3, 4, 5), F32), OFFS),
    (np.ones((6, 4), F32), np.ones((3, 4, 5, 1), F32), OFFS),          # an expert's weight not a matrix
    (np.ones((6, 4), F32), np.ones((4, 5), F32), OFFS),                # weight without an expert dim
    (np.ones((6, 4), F32), np.ones((3, 5, 5), F32), OFFS),             # K differs
    (np.ones((6, 4), F32), np.ones((3, 4, 5), F32), OFFS.astype(F32)),  # offsets not integers
    (np.ones((6, 4), F32), np.ones((3, 4, 5), F32), OFFS.reshape(1, 3)),
    (np.ones((6, 4), F32), np.ones((3, 4, 5), F32), np.array(6, np.int32)),
    (np.ones((), F32), np.ones((3, 4, 5), F32), OFFS),
])
def test_errors_in_torchs_words(x, w, offs):
    err = _torch_error(x, w, offs)
    message = str(err).splitlines()[0]
    if "cannot be multiplied" in message:  # torch names the group's rows (2 here); tinydl every row
        message = message.replace("(2x4", "(6x4")
    with pytest.raises(type(err), match="^" + re.escape(message)):
        grouped_mm(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(offs))


class Experts(torch.nn.Module):
    """The grouped experts of transformers 5.x, reduced: tokens sorted by their expert, counted, one grouped
    product (the op, as torch.export records it) and the rows put back."""

    def __init__(self, experts=4, k=16, n=24):
        super().__init__()
        self.experts = experts
        self.gate = torch.nn.Linear(k, experts)
        self.proj = torch.nn.Parameter(torch.randn(experts, n, k))

    def forward(self, x):
        ids = self.gate(x).argmax(-1)
        sorted_ids, perm = torch.sort(ids, stable=True)  # (tinydl sorts stably; so does torch, told to)
        counts = torch.histc(sorted_ids.float(), bins=self.experts, min=0, max=self.experts - 1)
        offs = torch.cumsum(counts, 0, dtype=torch.int32)
        return OP(x[perm], self.proj.transpose(-2, -1), offs)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_converts_through_fx_and_export(rng, path):
    """fx records the call of torch.ops.transformers.grouped_mm_fallback (its one overload), torch.export the
    overload: both resolve to the same entry."""
    from tinydl.interop import export
    torch.manual_seed(0)
    m = Experts().eval()
    x = torch.from_numpy(rng.standard_normal((20, 16)).astype(np.float32))
    if path == "fx":
        tm = tinydl.from_torch(m)
        assert tm.conversion_path == "fx"
    else:
        tm = export.convert(m, (x,))
    with torch.no_grad():
        expected = m(x)
    assert_close(tm(tinydl.tensor(x.numpy())), expected, rtol=1e-4, atol=1e-4)
    x2 = torch.from_numpy(rng.standard_normal((7, 16)).astype(np.float32))  # another row count (dynamic)
    with torch.no_grad():
        expected = m(x2)
    assert_close(tm(tinydl.tensor(x2.numpy())), expected, rtol=1e-4, atol=1e-4)
