"""Huge, tiny, Inf and NaN values through var/std, the row norms and conv padding, against torch CPU: shape, dtype,
values, and the positions of NaN and of +-Inf.

- var/std: torch CPU accumulates in double, so values near 1e38 (whose squares overflow float32) and near 1e-30
  (whose squares underflow) give finite results; tinydl scales by max|x| (tensor._var_std). Every dim, keepdim,
  correction, float16, staged reductions (over more than reduce.STAGE_MAX elements).
- layer_norm / group_norm: torch's float32 row moments give NaN for a row shorter than 8 whose mean squared
  overflows, and 0 where only the variance overflows; rms_norm and batch_norm (inference) are plain formulas.
- conv2d: a padded tap is a zero multiplied by its weight (0 * Inf = NaN), in every kernel path; the reference is
  torch's native (non-oneDNN) kernel, whose padding is such zeros. oneDNN's direct kernels, which torch picks for
  many shapes, skip padded taps instead (see test_torch_conv_padding_depends_on_backend).
- pools: max pool padding is -Inf (never chosen), avg pool padding adds 0.
"""
import contextlib
import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.kernels.gemm
import tinydl.kernels.window
import tinydl.nn.functional as F
import tinydl.schedule
from tinydl.kernels import reduce as reduce_kernels

build_module = importlib.import_module("tinydl.kernels.build")
INF, NAN = float("inf"), float("nan")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch: "degrees of freedom is <= 0"


def check(got, want, rtol=1e-4, atol=1e-6):
    """Same shape and dtype, NaN at the same positions, +-Inf at the same positions with the same sign, finite
    values within tolerance."""
    got = np.asarray(got)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    g, w = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"NaN positions\n{got}\n{want}")
    np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w), err_msg=f"+Inf positions\n{got}\n{want}")
    np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w), err_msg=f"-Inf positions\n{got}\n{want}")
    fin = np.isfinite(w)
    np.testing.assert_allclose(g[fin], w[fin], rtol=rtol, atol=atol)


# -- var / std ---------------------------------------------------------------------------------------------------
VAR_VALUES = {
    "huge": [[1.0], [1.0], [1e38]],
    "huge_both_signs": [[3e38, -3e38], [1e38, 2e38], [-1e38, 5.0]],
    "huge_equal": [[3e38, 3e38], [3e38, 3e38], [3e38, 3e38]],  # the float32 sum overflows, the variance is 0
    "big_spread": [[1e20, -1e20], [3e19, 1.0], [-2e20, 7e19]],
    "tiny": [[1e-30, 2e-30], [4e-30, -3e-30], [0.0, 1e-31]],
    "inf": [[1.0, INF], [2.0, 1.0], [3.0, -INF]],
    "nan": [[1.0, NAN], [2.0, 1.0], [3.0, 4.0]],
    "zeros": [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
    "normal": [[1.5, -2.0], [0.25, 8.0], [3.0, 1.0]],
}


@pytest.mark.parametrize("values", list(VAR_VALUES), ids=list(VAR_VALUES))
@pytest.mark.parametrize("op", ["var", "std"])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), ((0, 1), True), (-1, False)])
@pytest.mark.parametrize("correction", [0, 1, 3])
def test_var_std_float32(values, op, dim, keepdim, correction):
    x = np.array(VAR_VALUES[values], np.float32)
    got = getattr(tinydl.tensor(x), op)(dim, keepdim=keepdim, correction=correction).numpy()
    want = getattr(torch.tensor(x), op)(dim, keepdim=keepdim, correction=correction)
    check(got, want)


@pytest.mark.parametrize("op", ["var", "std"])
@pytest.mark.parametrize("values", [[1.0, 2.0, 60000.0], [6e4, 6e4, -6e4], [1e-7, 2e-7, 0.0], [1.0, INF, 2.0],
                                    [NAN, 1.0, 1.0], [300.0, -300.0, 0.0]])
@pytest.mark.parametrize("dim", [None, 0])
def test_var_std_float16(op, values, dim):
    """float16: computed in float32 and rounded once (torch: a double accumulator, then float16), so a variance
    over 65504 is Inf while its std is finite."""
    x = np.array(values, np.float16)
    got = getattr(tinydl.tensor(x), op)(dim).numpy()
    want = getattr(torch.tensor(x), op)(dim)
    check(got, want, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("op", ["var", "std"])
@pytest.mark.parametrize("special", ["huge", "inf", "nan", "tiny"])
def test_var_std_staged(op, special):
    """Rows longer than reduce.STAGE_MAX: the max, mean and square sums are staged reductions."""
    rng = np.random.default_rng(3)
    n = reduce_kernels.STAGE_MAX + 4000
    x = rng.standard_normal((2, n)).astype(np.float32)
    if special == "huge":
        x *= np.float32(1e36)
        x[0, 17] = 3e38
    elif special == "tiny":
        x *= np.float32(1e-30)
    else:
        x[1, n - 3] = INF if special == "inf" else NAN
    got = getattr(tinydl.tensor(x), op)(1).numpy()
    check(got, getattr(torch.tensor(x), op)(1), rtol=1e-3)


def test_var_std_empty_and_scalar():
    for shape, dim in (((0, 3), 0), ((0, 3), 1), ((), None), ((4,), None)):
        x = np.ones(shape, np.float32) * np.float32(1e38)
        for op in ("var", "std"):
            check(getattr(tinydl.tensor(x), op)(dim).numpy(), getattr(torch.tensor(x), op)(dim))


# -- row norms ---------------------------------------------------------------------------------------------------
@pytest.fixture(params=["cached", "reread", "teams cached"])
def variant(request, use_options):
    """A workgroup per row (values in registers, or read again per pass) and subgroup teams, forced."""
    teams = request.param.startswith("teams")
    if teams and "subgroup" not in tinydl.device_info()["features"]:
        pytest.skip("adapter without subgroups")
    use_options(subgroup_teams=teams, team_max_len=1 << 30)
    if request.param == "reread":
        use_options(max_cached=0)
    return request.param


def _rows(n: int, kind: str) -> np.ndarray:
    """Three rows of length n: an ordinary one, one holding the special value, one of special values only where
    that makes sense."""
    x = np.linspace(-1.0, 2.0, 3 * n, dtype=np.float32).reshape(3, n)
    if kind == "huge":
        x[1, n // 2] = 1e38
        x[2] = 1e20
    elif kind == "big":  # the mean squared overflows only from ~1.8e19
        x[1, 0] = 1e19
        x[2] = -5e19
    elif kind == "tiny":
        x[1] = np.float32(1e-30) * np.arange(1, n + 1)
        x[2] = np.float32(3e-30)
    elif kind in ("inf", "nan"):
        x[1, n - 1] = INF if kind == "inf" else NAN
        x[2, 0] = -INF
    return x


ROW_CASES = [(n, kind) for kind in ("huge", "big", "tiny", "inf", "nan") for n in (1, 2, 3, 5, 7, 9, 13, 300)]


@pytest.mark.parametrize("n,kind", ROW_CASES, ids=[f"{k}{n}" for n, k in ROW_CASES])
def test_layer_norm_specials(variant, n, kind):
    x = _rows(n, kind)
    check(F.layer_norm(tinydl.tensor(x), (n,)).numpy(), TF.layer_norm(torch.tensor(x), (n,)), atol=1e-4)
    w = np.linspace(0.5, 2.0, n, dtype=np.float32)
    b = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    check(F.layer_norm(tinydl.tensor(x), (n,), tinydl.tensor(w), tinydl.tensor(b)).numpy(),
          TF.layer_norm(torch.tensor(x), (n,), torch.tensor(w), torch.tensor(b)), atol=1e-4)


def test_layer_norm_issue_example():
    x = np.array([1e38, 1.0, 1.0], np.float32)
    check(F.layer_norm(tinydl.tensor(x), (3,)).numpy(), TF.layer_norm(torch.tensor(x), (3,)))
    assert np.isnan(F.layer_norm(tinydl.tensor(x), (3,)).numpy()).all()


@pytest.mark.parametrize("n,kind", ROW_CASES, ids=[f"{k}{n}" for n, k in ROW_CASES])
def test_rms_norm_specials(variant, n, kind):
    x = _rows(n, kind)
    check(F.rms_norm(tinydl.tensor(x), (n,), eps=1e-6).numpy(), TF.rms_norm(torch.tensor(x), (n,), eps=1e-6),
          atol=1e-4)


@pytest.mark.parametrize("kind", ["huge", "big", "tiny", "inf", "nan"])
@pytest.mark.parametrize("shape,groups", [((2, 3, 1), 1), ((2, 4, 1, 1), 2), ((1, 6, 1), 3), ((2, 4, 3, 3), 2)])
def test_group_norm_specials(kind, shape, groups):
    n = int(np.prod(shape[1:]))
    x = _rows(n, kind)[1:].reshape(2, n)[: shape[0]].reshape(shape)
    check(F.group_norm(tinydl.tensor(x), groups).numpy(), TF.group_norm(torch.tensor(x), groups), atol=1e-4)
    if kind in ("huge", "big"):
        return  # torch's affine form x * (rstd * w) + (b - mean * rstd * w) is rounding noise on a row of 1e20s
    w = np.linspace(0.5, 2.0, shape[1], dtype=np.float32)
    b = np.linspace(-1.0, 1.0, shape[1], dtype=np.float32)
    check(F.group_norm(tinydl.tensor(x), groups, tinydl.tensor(w), tinydl.tensor(b)).numpy(),
          TF.group_norm(torch.tensor(x), groups, torch.tensor(w), torch.tensor(b)), atol=1e-4)


@pytest.mark.parametrize("kind", ["x", "mean", "var", "weight"])
def test_batch_norm_inference_specials(kind):
    """x * (rsqrt(var + eps) * weight) + (bias - mean * that), as torch's inference transform."""
    params = {"mean": np.array([0.0, 1.0, -2.0, 3.0], np.float32), "var": np.array([1.0, 4.0, 0.5, 2.0], np.float32),
              "weight": np.array([1.0, -2.0, 0.5, 3.0], np.float32)}
    if kind == "x":
        x = np.array([1e38, -1e38, INF, -INF, NAN, 1e-30, 0.0, 2.0] * 4, np.float32).reshape(2, 4, 2, 2)
    else:
        x = np.linspace(-3.0, 3.0, 32, dtype=np.float32).reshape(2, 4, 2, 2)
        x[0, 1:, 0, 0] = 1e38  # not in channel 0: x - mean of 1e38 - 1e38 is rounding noise in torch's form
        params[kind][:] = {"mean": [1e38, INF, NAN, -1e38], "var": [INF, 1e38, NAN, 0.0],
                           "weight": [INF, NAN, 1e38, -INF]}[kind]
    bias = np.array([0.5, 0.0, -1.0, 2.0], np.float32)
    got = F.batch_norm(tinydl.tensor(x), tinydl.tensor(params["mean"]), tinydl.tensor(params["var"]),
                       tinydl.tensor(params["weight"]), tinydl.tensor(bias))
    want = TF.batch_norm(torch.tensor(x), torch.tensor(params["mean"]), torch.tensor(params["var"]),
                         torch.tensor(params["weight"]), torch.tensor(bias), training=False)
    check(got.numpy(), want, atol=1e-4)


# -- conv padding ------------------------------------------------------------------------------------------------
def _force(use_options, path):
    direct = path.startswith("direct")
    use_options(direct_conv_max_cout_per_group=10**9 if direct else 0)
    use_options(force_tile=None if direct else path.split("+")[0])
    if path == "direct":
        use_options(max_unrolled_taps=0)
    elif direct:
        use_options(force_strip=tuple(map(int, path[6:].split("x"))))
    if path.endswith("+im2col"):
        use_options(force_im2col=True)
    if path.endswith("+split2"):
        use_options(force_split_k=2)
    if path.endswith("+gather"):  # element gathers in (ci, kh, kw) order, not tap-major
        use_options(tap_major=False)


CONV_PATHS = ["direct", "direct1x1", "direct4x2", "direct2x3", "tile32", "tile64", "tile32+gather", "tile32+im2col",
              "tile64+split2"]
# (N, Cin, Cout, H, W, KH, KW, groups, stride, padding, dilation)
CONV_CASES = [
    (1, 3, 3, 1, 1, 1, 1, 3, 1, 1, 1),        # the findings' example: depthwise 1x1 over a 1x1 image, padding 1
    (1, 3, 3, 5, 4, 3, 3, 3, 1, 1, 1),        # depthwise 3x3
    (2, 2, 4, 4, 5, 3, 3, 1, 2, 2, 1),        # dense, strided, wide padding
    (1, 4, 6, 5, 5, 3, 2, 2, 1, (2, 1), 2),   # grouped, dilated, uneven kernel and padding
    (1, 16, 8, 4, 4, 3, 3, 1, 1, 1, 1),       # 16 input channels: tap-major gathers on the GEMM path
    (1, 32, 4, 3, 3, 1, 1, 1, 1, 2, 1),       # 1x1 with padding: the border is bias only (nan for inf weights)
]


def _conv_inputs(case, special):
    n, cin, cout, h, w, kh, kw, groups = case[:8]
    rng = np.random.default_rng(11)
    x = rng.uniform(0.5, 1.5, (n, cin, h, w)).astype(np.float32)
    wt = rng.uniform(-1.0, 1.0, (cout, cin // groups, kh, kw)).astype(np.float32)
    if special == "weight_inf":  # per output channel a different tap, so each border sees its own pattern
        for co in range(cout):
            wt[co, co % (cin // groups), co % kh, (co // kh) % kw] = -INF if co % 2 else INF
    elif special == "weight_nan":
        wt[0, 0, kh - 1, 0] = NAN
    elif special == "input_inf":
        x[0, 0, 0, 0], x[-1, -1, h - 1, w - 1] = INF, -INF
        x[0, -1, h // 2, w // 2] = NAN
    return x, wt, rng.uniform(-1, 1, cout).astype(np.float32)


@contextlib.contextmanager
def _torch_native_conv():
    """torch's native CPU conv (im2col + GEMM, and per-group for grouped convs): padded taps are zeros that are
    multiplied; oneDNN (torch's default for many shapes) skips them in its direct kernels."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


@pytest.mark.parametrize("special", ["weight_inf", "weight_nan", "input_inf"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[f"c{i}" for i in range(len(CONV_CASES))])
@pytest.mark.parametrize("path", CONV_PATHS)
def test_conv2d_padding_nonfinite(use_options, path, case, special):
    _force(use_options, path)
    x, w, b = _conv_inputs(case, special)
    kw = dict(stride=case[8], padding=case[9], dilation=case[10], groups=case[7])
    with _torch_native_conv():
        want = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw)
    got = F.conv2d(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(b), **kw)
    check(got.numpy(), want, atol=1e-4)


def test_conv2d_issue_example():
    x = np.ones((1, 3, 1, 1), np.float32)
    w = np.array([1.0, -INF, 1.0], np.float32).reshape(3, 1, 1, 1)
    got = F.conv2d(tinydl.tensor(x), tinydl.tensor(w), padding=1, groups=3).numpy()[0, 1]
    want = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1, groups=3)[0, 1]  # torch's default backend
    check(got, want)
    assert np.isneginf(got[1, 1]) and np.isnan(np.delete(got.reshape(-1), 4)).all()


def test_torch_conv_padding_depends_on_backend():
    """Why the conv reference is torch's native kernel: oneDNN's direct kernels (a depthwise 3x3 here) skip padded
    taps, the native kernel multiplies them. Should torch change this, the reference above needs a second look."""
    x = torch.ones(1, 2, 4, 4)
    w = torch.ones(2, 1, 3, 3)
    w[0, 0, 0, 0] = INF
    with _torch_native_conv():
        native = TF.conv2d(x, w, padding=1, groups=2)[0, 0]
    assert native[0].isnan().all() and native[:, 0].isnan().all()
    if torch.backends.mkldnn.is_available():
        default = TF.conv2d(x, w, padding=1, groups=2)[0, 0]
        assert not default.isnan().any()


@pytest.mark.xfail(strict=True, reason="conv_transpose2d's implicit GEMM multiplies the taps no input pixel "
                                       "reaches; torch adds only real contributions (0 * Inf weight stays out)")
def test_conv_transpose2d_nonfinite_weight():
    x = np.ones((1, 1, 2, 2), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    w[0, 0, 0, 0] = INF
    check(F.conv_transpose2d(tinydl.tensor(x), tinydl.tensor(w), stride=2).numpy(),
          TF.conv_transpose2d(torch.tensor(x), torch.tensor(w), stride=2))


# -- pools -------------------------------------------------------------------------------------------------------
def _pool_input():
    x = np.linspace(-2.0, 2.0, 2 * 2 * 5 * 5, dtype=np.float32).reshape(2, 2, 5, 5)
    x[0, 0, 0, 0], x[0, 0, 4, 4], x[0, 1, 2, 2], x[0, 1, 0, 4] = INF, -INF, NAN, -INF
    x[1, 0, :, 0] = -INF  # a whole padded-edge column of -inf: max pool still never picks the padding
    x[1, 1, 1, 1] = 1e38
    return x


@pytest.mark.parametrize("kw", [dict(kernel_size=3, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                dict(kernel_size=2, padding=1, dilation=2), dict(kernel_size=(3, 1), padding=(1, 0))])
def test_max_pool_nonfinite(kw):
    x = _pool_input()
    check(F.max_pool2d(tinydl.tensor(x), **kw).numpy(), TF.max_pool2d(torch.tensor(x), **kw))


@pytest.mark.parametrize("kw", [dict(kernel_size=3, padding=1), dict(kernel_size=3, padding=1, count_include_pad=False),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                dict(kernel_size=2, padding=1, divisor_override=3)])
def test_avg_pool_nonfinite(kw):
    x = _pool_input()
    check(F.avg_pool2d(tinydl.tensor(x), **kw).numpy(), TF.avg_pool2d(torch.tensor(x), **kw), atol=1e-5)


@pytest.mark.parametrize("out", [1, 2, 3])
def test_adaptive_pools_nonfinite(out):
    x = _pool_input()
    check(F.adaptive_avg_pool2d(tinydl.tensor(x), out).numpy(), TF.adaptive_avg_pool2d(torch.tensor(x), out))
    check(F.adaptive_max_pool2d(tinydl.tensor(x), out).numpy(), TF.adaptive_max_pool2d(torch.tensor(x), out))


@pytest.mark.parametrize("values", [[3e38, 3e38, -1e38, 1.0], [1e38, 1.0, 1.0, 1.0], [1e-30, 2e-30, 3e-30, 0.0],
                                    [1.0, 2.0, INF, 3.0], [1e20, -1e20, 3.0, 4.0], [1.5, 2.0, -3.0, 4.0]])
def test_batch_norm_batch_statistics_specials(values):
    """batch_norm over the batch's own statistics (no running stats; instance-norm style): torch sums in double, so
    the mean of values near 1e38 is finite; an overflowing variance gives rstd 0 and so 0 out."""
    x = np.array(values * 3, np.float32).reshape(2, 3, 2, 1)
    check(F.batch_norm(tinydl.tensor(x), None, None, training=True).numpy(),
          TF.batch_norm(torch.tensor(x), None, None, training=True), atol=1e-4)
