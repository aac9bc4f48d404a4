"""float16 rounds as torch's CPU kernels round: every op's result once (a fused chain of ops still rounds after
each, so an intermediate that overflows half is inf as in torch), and an op that tinydl builds of several nodes
(round with decimals, lerp, logaddexp, layer_norm's affine, addmm's scaling, ...) only at its end, computing in
float32 between (torch's opmath)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
from tinydl.debug import count_kernels

pytestmark = pytest.mark.skipif("shader-f16" not in tinydl.device_info()["features"],
                                reason="adapter without shader-f16")


def _fn(lib):
    return TF if lib is torch else F


# each case: f(lib, x, y, z, w) with x ~ N(0, 3), y in [0.2, 3], z in [-0.9, 0.9] of shape [64, 48], w ~ N(0, 1) [48]
CASES = {
    "add_alpha": lambda m, x, y, z, w: m.add(x, y, alpha=3.3),  # torch rounds alpha to half, then one rounding
    "sub_alpha": lambda m, x, y, z, w: m.sub(x, y, alpha=3.3),
    "addcmul": lambda m, x, y, z, w: m.addcmul(x, y, z, value=2.5),
    "addcdiv": lambda m, x, y, z, w: m.addcdiv(x, z, y, value=2.5),
    "lerp": lambda m, x, y, z, w: m.lerp(x, y, 0.3),
    "lerp_tensor": lambda m, x, y, z, w: m.lerp(x, y, z),
    "round_decimals": lambda m, x, y, z, w: m.round(x * 37, decimals=2),
    "sinc": lambda m, x, y, z, w: m.sinc(x),
    "logaddexp": lambda m, x, y, z, w: m.logaddexp(x, y),
    "logaddexp2": lambda m, x, y, z, w: m.logaddexp2(x, y),
    "logit": lambda m, x, y, z, w: m.logit(z * 0.5 + 0.5, eps=0.1),
    "xlogy": lambda m, x, y, z, w: m.xlogy(x, y),
    "hypot": lambda m, x, y, z, w: m.hypot(x, y),
    "norm": lambda m, x, y, z, w: m.norm(x, dim=1),
    "norm_large": lambda m, x, y, z, w: m.norm(x * 1000, dim=1),  # squares beyond half: float32 inside
    "normalize": lambda m, x, y, z, w: _fn(m).normalize(x),
    "cosine_similarity": lambda m, x, y, z, w: m.cosine_similarity(x, y),  # torch's composite: rounds per op
    "pairwise_distance": lambda m, x, y, z, w: m.pairwise_distance(x, y),
    "logsumexp": lambda m, x, y, z, w: m.logsumexp(x * 10, 1),
    "mean_large": lambda m, x, y, z, w: m.mean(x * 3000, 1),
    "var": lambda m, x, y, z, w: m.var(x * 10, 1),
    "celu": lambda m, x, y, z, w: m.celu(x, 0.7),
    "selu": lambda m, x, y, z, w: m.selu(x),
    "glu": lambda m, x, y, z, w: _fn(m).glu(x),
    "logsigmoid": lambda m, x, y, z, w: _fn(m).logsigmoid(x),
    "softshrink": lambda m, x, y, z, w: _fn(m).softshrink(x, 0.6),
    "softsign": lambda m, x, y, z, w: _fn(m).softsign(x),  # torch's composite: rounds per op
    "tanhshrink": lambda m, x, y, z, w: _fn(m).tanhshrink(x),
    "layer_norm": lambda m, x, y, z, w: _fn(m).layer_norm(x, (48,), w, w),
    "group_norm": lambda m, x, y, z, w: _fn(m).group_norm(x.reshape(4, 16, 48), 4, w[:16], w[:16]),
    "batch_norm": lambda m, x, y, z, w: _fn(m).batch_norm(x, w.abs(), w.abs() + 0.5, w, w),
    "rms_norm": lambda m, x, y, z, w: _fn(m).rms_norm(x, (48,), w),  # float32's eps, as torch for half
    "linear_bias": lambda m, x, y, z, w: _fn(m).linear(x, y, y[:, 0]),
    "addmm": lambda m, x, y, z, w: m.addmm(z[:, 0], x, y.T, beta=0.5, alpha=2),
    "softmax": lambda m, x, y, z, w: m.softmax(x * 8, 1),
    "dot": lambda m, x, y, z, w: m.dot(x[0] * 30, y[0]),  # products summed in float32, as torch's
    "cumsum": lambda m, x, y, z, w: m.cumsum(x, 1),  # accumulated in float32, each output rounded once
    "cumsum_long": lambda m, x, y, z, w: m.cumsum(x.reshape(-1), 0),  # across the scan's blocks
    "cumprod": lambda m, x, y, z, w: m.cumprod(y, 1),
    "chain": lambda m, x, y, z, w: m.tanh((x * 1.5 + 0.25) * 0.5) * m.exp(x * -0.5) + x.abs() * 0.125,
    "overflowing_chain": lambda m, x, y, z, w: (x * 30000) * 0.001,  # inf in the middle, as torch's
    "overflow_through_relu": lambda m, x, y, z, w: m.relu(x * 30000) * 0.001,  # relu of halves: exact, not rounded
    "relu_last": lambda m, x, y, z, w: m.relu(x * 30000) * -1,  # the store rounds for the ops below neg and relu
    "shared_below_relu": lambda m, x, y, z, w: (lambda v: m.relu(v) * v)(x * 1.37),  # v read twice: rounded
    "clamped_chain": lambda m, x, y, z, w: m.clamp(x * 1.1, -2.05, 2.05) * 3,  # clamp's bounds are not halves
}


def _inputs(rng):
    return ((rng.standard_normal((64, 48)) * 3).astype(np.float16), rng.uniform(0.2, 3, (64, 48)).astype(np.float16),
            rng.uniform(-0.9, 0.9, (64, 48)).astype(np.float16), rng.standard_normal(48).astype(np.float16))


@pytest.mark.parametrize("case", CASES)
def test_float16_results_round_as_torch(rng, case):
    arrays = _inputs(rng)
    expected = CASES[case](torch, *map(torch.from_numpy, arrays)).numpy()
    got = CASES[case](tinydl, *map(tinydl.tensor, arrays)).numpy()
    assert got.dtype == np.float16 and got.shape == expected.shape
    assert np.array_equal(np.isnan(got), np.isnan(expected)) and np.array_equal(np.isinf(got), np.isinf(expected))
    both = np.isfinite(got) & np.isfinite(expected)
    assert (got[~both & ~np.isnan(got)] == expected[~both & ~np.isnan(got)]).all()  # infinities of the same sign
    # the same half values, but where a float32 exp/log/sqrt is an ulp off torch's and rounds the other way
    ulps = np.abs(got[both].view(np.int16).astype(np.int32) - expected[both].view(np.int16).astype(np.int32))
    assert ulps.max(initial=0) <= 1 and (ulps > 0).mean() <= 0.02, (ulps.max(), (ulps > 0).mean())


def test_overflow_between_fused_ops_is_inf_as_torch():
    a = np.array([70.0, -70.0, 0.5, 65.0], np.float16)
    y = (tinydl.tensor(a) * 1000) * 0.001
    with count_kernels() as c:
        out = y.numpy()
    assert c.count == 1  # still one kernel
    expected = ((torch.from_numpy(a) * 1000) * 0.001).numpy()
    np.testing.assert_array_equal(out, expected)
    assert np.isinf(out[:2]).all() and out[2] == np.float16(0.5)


def test_norm_of_large_float16_values_is_finite():
    a = np.full((4, 256), 300.0, np.float16)  # each square overflows half, the norm (4800) does not
    out = tinydl.tensor(a).norm(dim=1).numpy()
    np.testing.assert_array_equal(out, torch.from_numpy(a).norm(dim=1).numpy())
    assert np.isfinite(out).all()


class _UpcastNorm(torch.nn.Module):
    """Hugging Face's RMSNorm: the variance in float32 whatever the model's dtype."""
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(0.5, 1.5, 64))

    def forward(self, x):
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        return self.weight * h.to(dtype)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_float32_upcasts_of_a_halved_model_hold(path):
    """Values ~1000 (squares beyond half's range) through a float32 upcast, the model converted in float32 and then
    .half()'d: as torch's float16 model. On fx the upcast is a literal float32 (rounded per op as torch); the
    exported graph was traced in float32, where the upcast and the cast back are both `to(float32)`, so its float16
    run keeps float32 between its kernels' stores (opmath.rounding_at_stores) instead of overflowing."""
    from paths import OnPath1
    m = OnPath1(_UpcastNorm(), "fx" if path == "fx" else "export").eval()
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0)) * 1000
    tm = tinydl.from_torch(m, example_inputs=(x,)).half()
    assert tm.conversion_path == path
    got = tm(tinydl.tensor(x.half().numpy())).numpy()
    want = m.half()(x.half()).detach().numpy()
    assert got.dtype == np.float16 and np.isfinite(got).all()
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-3)
