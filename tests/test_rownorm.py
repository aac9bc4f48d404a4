"""Row kernels (tinydl/kernels/rownorm.py): softmax, log_softmax, layer_norm and rms_norm in one kernel each,
against torch CPU: every dim, rows shorter and longer than a workgroup, every variant (a workgroup per row or
subgroup teams; values cached in registers / read again per pass; forced), teams of every size against the
subgroup's, fused prologues and epilogues (kernel counts), float16 storage, and
group_norm, which runs on the layer_norm kernel."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
from tinydl.debug import count_kernels
from tinydl.kernels import rownorm
from tinydl.testing import assert_close


def has_subgroups():
    return bool({"subgroup", "subgroups"} & set(tinydl.device_info()["features"]))  # wgpu-native's name, Dawn's


@pytest.fixture(params=["cached", "reread", "teams cached", "teams reread"])
def variant(request, use_options):
    """Each test runs with a workgroup per row and with rows in subgroup teams (every row length, forced), the
    row held in registers and read again in every pass."""
    teams = request.param.startswith("teams")
    if teams and not has_subgroups():
        pytest.skip("adapter without subgroups")
    use_options(subgroup_teams=teams, team_max_len=1 << 30)
    use_options(max_team_cached=0 if request.param.endswith("reread") else 80)
    if request.param == "reread":
        use_options(max_cached=0)
    return request.param


def one_kernel(fn, name, variant):
    """Run fn() and check that it took exactly one kernel, the row kernel `name` in `variant`."""
    with count_kernels() as c:
        out = fn().numpy()
    assert c.count == 1 and c.names[0].startswith(name) and f"[{variant}]" in c.names[0], c.names
    return out


SHAPES = [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((3, 5), -1), ((2, 3, 4), 1), ((2, 1, 4), 1), ((4, 100), -1),
          ((1,), 0), ((3, 300), -1), ((2, 2500), 1), ((5, 33, 9), 1)]


@pytest.mark.parametrize("shape,dim", SHAPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(rng, variant, op, shape, dim):
    a = (rng.standard_normal(shape) * 4).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    ref = getattr(torch, op)(t, dim)
    assert_close(one_kernel(lambda: getattr(tinydl, op)(x, dim), op, variant), ref, rtol=1e-5, atol=1e-6)
    assert_close(getattr(x, op)(dim), ref, rtol=1e-5, atol=1e-6)
    assert_close(getattr(F, op)(x, dim=dim), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_large_logits_masks_and_int_input(rng, op):
    a = (rng.standard_normal((4, 6)) * 1000).astype(np.float32)
    a[1] = 1000.0
    a[2, :3] = -np.inf  # a masked row: the masked entries get 0 (softmax) / -inf (log_softmax)
    a[3] = -np.inf      # all masked: NaN in torch too
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    assert_close(getattr(tinydl, op)(x, 1), getattr(torch, op)(t, 1), rtol=1e-4, atol=1e-5, equal_nan=True)
    xi = rng.integers(-3, 3, (2, 5)).astype(np.int32)
    assert_close(getattr(tinydl, op)(tinydl.tensor(xi), -1), getattr(torch, op)(torch.from_numpy(xi).float(), -1))


@pytest.mark.parametrize("value,length", [(0.8427008, 7), (123.456, 768), (-3.3, 37), (7.1e5, 300)])
def test_layer_norm_of_a_constant_row_is_its_bias(variant, value, length):
    """A row of one value has mean exactly that value, as torch's (Welford) moments give: x - mean is 0, so the
    output is the bias (a mean off by an ulp, times rstd = 1/sqrt(eps), was ~1e-3 off), and 0 times an infinite
    weight is NaN as in torch, not an infinity."""
    a = np.full((3, length), value, np.float32)
    a[2] = np.linspace(-1, 1, length)  # an ordinary row beside them
    w = np.ones(length, np.float32)
    w[0], w[1] = -np.inf, np.inf
    b = np.linspace(0.5, 1.5, length).astype(np.float32)
    ref = TF.layer_norm(torch.from_numpy(a), (length,), torch.from_numpy(w), torch.from_numpy(b))
    out = one_kernel(lambda: F.layer_norm(tinydl.tensor(a), (length,), tinydl.tensor(w), tinydl.tensor(b)),
                     "layer_norm", variant)
    assert_close(out, ref, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(out[:2, 2:], b[2:][None].repeat(2, 0))


@pytest.mark.parametrize("shape,normalized", [((4, 6), (6,)), ((2, 3, 70), (70,)), ((2, 3, 4), (3, 4)),
                                              ((3, 2500), (2500,)), ((5,), (5,))])
def test_layer_norm_and_rms_norm(rng, variant, shape, normalized):
    a = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    w = rng.standard_normal(normalized).astype(np.float32)
    b = rng.standard_normal(normalized).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    tw, tb = torch.from_numpy(w), torch.from_numpy(b)
    # weight and bias are the row kernel's epilogue: still one kernel
    out = one_kernel(lambda: F.layer_norm(x, normalized, tinydl.tensor(w), tinydl.tensor(b), eps=1e-3),
                     "layer_norm", variant)
    assert_close(out, TF.layer_norm(t, normalized, tw, tb, eps=1e-3), rtol=1e-5, atol=1e-5)
    out = one_kernel(lambda: F.rms_norm(x, normalized, tinydl.tensor(w), eps=1e-4), "rms_norm", variant)
    assert_close(out, TF.rms_norm(t, normalized, tw, eps=1e-4), rtol=1e-5, atol=1e-5)


def test_residual_layer_norm_gelu_is_one_kernel(rng, variant):
    """A transformer's LayerNorm(x + residual) followed by an activation: the add is the row kernel's
    prologue, the affine and the activation its epilogue."""
    a, r = rng.standard_normal((2, 8, 48)).astype(np.float32), rng.standard_normal((2, 8, 48)).astype(np.float32)
    w, b = rng.standard_normal(48).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    out = one_kernel(lambda: F.gelu(F.layer_norm(tinydl.tensor(a) + tinydl.tensor(r), (48,), tinydl.tensor(w),
                                                 tinydl.tensor(b))), "layer_norm", variant)
    ref = TF.gelu(TF.layer_norm(torch.from_numpy(a + r), (48,), torch.from_numpy(w), torch.from_numpy(b)))
    assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_scaled_masked_softmax_is_one_kernel(rng, variant):
    """Attention's softmax(scores * scale + mask): scale and mask are computed in the row kernel's loads."""
    s = rng.standard_normal((2, 4, 16, 16)).astype(np.float32)
    mask = np.where(rng.random((1, 1, 16, 16)) < 0.3, -np.inf, 0.0).astype(np.float32)
    mask[..., 0] = 0.0  # no fully masked row
    out = one_kernel(lambda: F.softmax(tinydl.tensor(s) * 0.125 + tinydl.tensor(mask), -1), "softmax", variant)
    assert_close(out, TF.softmax(torch.from_numpy(s) * 0.125 + torch.from_numpy(mask), -1), rtol=1e-5, atol=1e-6)


def test_float16_storage(rng):
    """float16 tensors are normalized in f32 and stored as f16: within f16 rounding of torch's float32 result."""
    if "shader-f16" not in tinydl.device_info()["features"]:
        pytest.skip("adapter without shader-f16")
    a = rng.standard_normal((3, 40)).astype(np.float16)
    x, t = tinydl.tensor(a), torch.from_numpy(a).float()
    assert F.softmax(x, -1).dtype == tinydl.float16
    assert_close(F.softmax(x, -1).float(), TF.softmax(t, -1), rtol=1e-3, atol=1e-3)
    assert_close(F.layer_norm(x, (40,)).float(), TF.layer_norm(t, (40,)), rtol=2e-3, atol=2e-3)


def test_more_rows_than_one_grid_dimension(rng, variant):
    """Workgroups past 65,535 (the limit per grid dimension) need a two-dimensional grid, as the attention softmax
    of a long batch does (8 x 12 heads x 1024 queries): a workgroup per row, or one per TEAM_ROWS rows."""
    rows = 65535 * (rownorm.TEAM_ROWS if variant.startswith("teams") else 1) + 5
    a = rng.standard_normal((rows, 3)).astype(np.float32)
    out = one_kernel(lambda: F.softmax(tinydl.tensor(a), -1), "softmax", variant)
    assert_close(out, TF.softmax(torch.from_numpy(a), -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("team", [4, 8, 16, 32, 64])
@pytest.mark.parametrize("shape", [(5, 37), (9, 128), (2, 3, 768)])
def test_teams_of_any_size_against_the_subgroup(rng, use_options, team, shape):
    """A team of rows may be smaller than a subgroup (its lanes combine with shuffles only, as on a 64-lane AMD
    subgroup), as large (NVIDIA's 32) or span several (lavapipe's 8 lanes: partial results meet in workgroup
    memory): softmax and layer_norm agree with torch for each, spare teams of the last workgroup included."""
    if not has_subgroups():
        pytest.skip("adapter without subgroups")
    use_options(team=team, max_team_cached=192, team_max_len=1 << 30)
    a = (rng.standard_normal(shape) * 3).astype(np.float32)
    x, t = tinydl.tensor(a), torch.from_numpy(a)
    assert_close(one_kernel(lambda: F.softmax(x, -1), "softmax", "teams cached"), TF.softmax(t, -1),
                 rtol=1e-5, atol=1e-6)
    assert_close(one_kernel(lambda: F.layer_norm(x, shape[-1:]), "layer_norm", "teams cached"),
                 TF.layer_norm(t, shape[-1:]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,groups", [((2, 6, 4, 4), 3), ((1, 8, 5), 8), ((3, 4, 2, 2, 2), 1)])
def test_group_norm_is_one_row_kernel(rng, variant, shape, groups):
    """Each (sample, group) is a row of the layer_norm kernel; the per-channel affine is its epilogue."""
    a = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    w, b = rng.standard_normal(shape[1]).astype(np.float32), rng.standard_normal(shape[1]).astype(np.float32)
    out = one_kernel(lambda: F.group_norm(tinydl.tensor(a), groups, tinydl.tensor(w), tinydl.tensor(b), eps=1e-4),
                     "layer_norm", variant)
    ref = TF.group_norm(torch.from_numpy(a), groups, torch.from_numpy(w), torch.from_numpy(b), eps=1e-4)
    assert_close(out, ref, rtol=1e-5, atol=1e-5)


# -- a split-K sum added up in the row kernel's loads ------------------------------------------------------------
@pytest.mark.parametrize("split,kernels", [(4, 2), (16, 2), (32, 3)])
def test_split_k_sum_inlined_into_layer_norm(rng, variant, use_options, split, kernels):
    """BERT's dense + bias + residual -> LayerNorm: with the GEMM split S <= INLINE_SUM_MAX ways, the sum over
    the slices runs in the layer_norm kernel's loads (GEMM + row kernel); longer sums keep their own kernel."""
    use_options(force_split_k=split)
    x, w = rng.standard_normal((6, 256), dtype=np.float32), rng.standard_normal((40, 256), dtype=np.float32)
    b, res = rng.standard_normal(40, dtype=np.float32), rng.standard_normal((6, 40), dtype=np.float32)
    g, beta = rng.standard_normal(40, dtype=np.float32), rng.standard_normal(40, dtype=np.float32)
    with count_kernels() as c:
        y = F.layer_norm(F.linear(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(b)) + tinydl.tensor(res), (40,),
                         tinydl.tensor(g), tinydl.tensor(beta)).numpy()
    assert c.count == kernels, c.names
    assert c.names[0].startswith("matmul") and c.names[-1].startswith("layer_norm"), c.names
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    assert_close(y, TF.layer_norm(TF.linear(t(x), t(w), t(b)) + t(res), (40,), t(g), t(beta)), rtol=1e-4, atol=1e-4)


def test_split_k_sum_read_twice_keeps_its_kernel(rng, use_options):
    """The sum also feeds another consumer: it is computed once, in its own kernel, and read by both."""
    use_options(force_split_k=4)
    x, w = rng.standard_normal((6, 256), dtype=np.float32), rng.standard_normal((40, 256), dtype=np.float32)
    with count_kernels() as c:
        h = tinydl.tensor(x) @ tinydl.tensor(w).T
        y, z = tinydl.realize(h.softmax(-1), h * 2.0)
        y, z = y.numpy(), z.numpy()
    assert any(n.startswith("reduce_sum") for n in c.names), c.names
    ref = torch.from_numpy(x) @ torch.from_numpy(w).T
    assert_close(y, ref.softmax(-1), rtol=1e-4, atol=1e-4)
    assert_close(z, ref * 2, rtol=1e-4, atol=1e-4)


def test_teams_take_short_rows_only(rng):
    """By default (subgroups present) rows up to Options.team_max_len go to teams (attention's softmax over 128 keys),
    longer ones keep a workgroup each (LayerNorm over 768); without subgroups every row has its workgroup."""
    a = rng.standard_normal((4, 128)).astype(np.float32)
    b = rng.standard_normal((4, 768)).astype(np.float32)
    short = "teams cached" if has_subgroups() else "cached"
    assert_close(one_kernel(lambda: F.softmax(tinydl.tensor(a), -1), "softmax", short),
                 TF.softmax(torch.from_numpy(a), -1), rtol=1e-5, atol=1e-6)
    assert_close(one_kernel(lambda: F.layer_norm(tinydl.tensor(b), (768,)), "layer_norm", "cached"),
                 TF.layer_norm(torch.from_numpy(b), (768,)), rtol=1e-5, atol=1e-5)
