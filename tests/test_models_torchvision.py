"""from_torch on unchanged torchvision models (random init, eval mode) against torch CPU: logits, state_dict keys,
plan reuse on a second forward; and the errors from_torch gives (unsupported ops, train mode, a wrong input)."""
import importlib

import numpy as np
import pytest
import torch

import tinydl
from tinydl.interop import UnsupportedTorchOps, torchvision_ops
from tinydl.interop.torchvision_compat import import_torchvision
from tinydl.testing import assert_close
from tinydl.testing.weights import unit_variance

tv = import_torchvision()
M = tv.models
tv_swin = tv.models.swin_transformer
tv_stochastic_depth = importlib.import_module("torchvision.ops.stochastic_depth").stochastic_depth

# name -> (builder, input size). Sizes are the smallest that still exercise each family's structure: 32x32 where
# the network's reductions stay valid and nothing degenerates; swin_t takes 64x64 so that its first two stages
# (16x16 and 8x8 tokens, window 7) pad to whole windows AND take the shifted-window path with its mask.
MODELS = {
    "resnet18": (lambda: M.resnet18(), 64),
    "resnet50": (lambda: M.resnet50(), 32),
    "mobilenet_v2": (lambda: M.mobilenet_v2(), 32),
    "mobilenet_v3_small": (lambda: M.mobilenet_v3_small(), 32),
    "efficientnet_b0": (lambda: M.efficientnet_b0(), 32),
    "squeezenet1_1": (lambda: M.squeezenet1_1(), 64),
    "vgg11": (lambda: M.vgg11(), 32),
    "densenet121": (lambda: M.densenet121(), 32),
    "shufflenet_v2_x1_0": (lambda: M.shufflenet_v2_x1_0(), 32),
    "regnet_y_400mf": (lambda: M.regnet_y_400mf(), 32),
    "convnext_tiny": (lambda: M.convnext_tiny(), 32),
    "googlenet": (lambda: M.googlenet(aux_logits=False, init_weights=True), 32),
    "mnasnet0_5": (lambda: M.mnasnet0_5(), 32),
    "vit_b_16": (lambda: M.vit_b_16(image_size=32), 32),  # patch_size stays 16: 2x2 patches + class token
    "swin_t": (lambda: M.swin_t(), 64),
}


def _build(name):
    """The torch model in eval mode, randomly initialized so that parity is meaningful.

    torchvision's own inits make several outputs vanish or explode on random data (efficientnet_b0's logits are
    ~1e-13: its fan-out init of depthwise convs shrinks activations each block; vit's head is zero-initialized;
    a 1e-4 atol on such outputs proves nothing), and badly scaled networks amplify rounding noise far beyond what
    either side can be held to. So: every conv/linear weight is redrawn N(0, 2/fan_in), every BatchNorm gets random
    affine parameters and running statistics, and one forward on a random batch rescales each conv/linear layer
    (weight and bias) so that its output has unit standard deviation (layer-sequential unit-variance init).
    Logits then have std ~1, and torch's own fp32 result is within ~4e-6 of a float64 run for every model here."""
    torch.manual_seed(0)
    builder, size = MODELS[name]
    return _scaled(builder().eval(), (2, 3, size, size)), size


def _scaled(model, sample_shape):
    """model with the weights _build describes, scaled by one forward on a random batch of sample_shape."""
    return unit_variance(model, lambda: (torch.randn(*sample_shape),))


@pytest.mark.parametrize("name", list(MODELS))
def test_torchvision_model(rng, name):
    model, size = _build(name)
    x = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    assert 0.1 < ref.std() < 10, "badly scaled reference logits: the comparison would prove little"

    converted = tinydl.from_torch(model)
    assert list(converted.state_dict().keys()) == list(model.state_dict().keys())
    out = converted(tinydl.tensor(x))
    # logits of order 1 after 10s-100s of fp32 layers summed in different orders (tiled GEMMs, fused epilogues):
    # both torch and tinydl are ~2e-6 from a float64 run, so the default atol of 1e-5 leaves too little margin.
    assert_close(out, ref, rtol=1e-4, atol=1e-4)

    # a second forward with new data reuses the cached plan (same graph structure: nothing is planned again)
    x2 = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    plans = tinydl.debug.stats["plans"]
    out2 = converted(tinydl.tensor(x2)).numpy()
    assert tinydl.debug.stats["plans"] == plans
    with torch.no_grad():
        ref2 = model(torch.from_numpy(x2))
    assert_close(out2, ref2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["swin_t", "vit_b_16", "resnet18", "mobilenet_v3_small", "efficientnet_b0",
                                  "convnext_tiny", "densenet121"])
def test_torchvision_model_after_half(rng, name):
    """model.half() converts and runs in float16 throughout: no float32 constant left in the graph (swin_t's
    shifted-window mask was float32 and made its attention float32: "expected m1 and m2 to have the same
    dtype"); the logits are as close to the float32 model's as torch's own float16 forward is, give or take, for
    each family (attention, residual, depthwise with squeeze-excitation, dense), weights redrawn with scale."""
    if "shader-f16" not in tinydl.device_info()["features"]:
        pytest.skip("adapter without shader-f16")
    model, size = _build(name)
    x = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        half_model = model.half()
        torch_half = half_model(torch.from_numpy(x).half()).float().numpy()
    out = tinydl.from_torch(half_model)(tinydl.tensor(x.astype(np.float16))).numpy()
    assert out.dtype == np.float16
    ours, theirs = (np.abs(o.astype(np.float32) - ref).max() / np.abs(ref).max() for o in (out, torch_half))
    assert ours <= max(3 * theirs, 5e-3), (ours, theirs)


# video classifiers (3-d convs, BatchNorm3d, 3-d adaptive pooling): 4 frames of 32x32
VIDEO = {"r3d_18": lambda: M.video.r3d_18(), "mc3_18": lambda: M.video.mc3_18()}


@pytest.mark.parametrize("name", list(VIDEO))
def test_torchvision_video_model(rng, name):
    torch.manual_seed(0)
    model = _scaled(VIDEO[name]().eval(), (2, 3, 4, 32, 32))
    x = rng.standard_normal((1, 3, 4, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    assert 0.1 < ref.std() < 10, "badly scaled reference logits: the comparison would prove little"
    converted = tinydl.from_torch(model)
    assert list(converted.state_dict().keys()) == list(model.state_dict().keys())
    assert_close(converted(tinydl.tensor(x)), ref, rtol=1e-4, atol=1e-4)


# -- errors ----------------------------------------------------------------------------------------------
class _Spectral(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        y = self.proj(x)
        f = torch.fft.fft(y).real
        s = torch.linalg.svd(y).S
        return f.sum(-1) + s.sum(-1) + torch.relu(y).sum(-1)


class _Outer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block = _Spectral()

    def forward(self, x):
        return self.block(x)


def test_unsupported_ops_are_listed_at_once():
    with pytest.raises(UnsupportedTorchOps) as info:
        tinydl.from_torch(_Outer().eval())
    msg = str(info.value)
    assert "2 unsupported op(s)" in msg
    assert "function torch.fft.fft  (node 'fft_fft', in block)" in msg
    assert "function torch.linalg.svd  (node 'linalg_svd', in block)" in msg
    assert "relu" not in msg and "proj" not in msg  # mapped ops are not reported
    assert [op for op, _, _ in info.value.ops] == ["function torch.fft.fft", "function torch.linalg.svd"]
    assert isinstance(info.value, NotImplementedError)


def test_train_mode_is_refused():
    model = M.resnet18()  # a fresh torch module is in training mode
    with pytest.raises(RuntimeError, match=r"training mode.*call model\.eval\(\) first"):
        tinydl.from_torch(model)


def test_wrong_channel_input_gives_torchs_message(rng):
    model = M.resnet18().eval()
    converted = tinydl.from_torch(model)
    x = rng.standard_normal((1, 4, 64, 64)).astype(np.float32)
    with pytest.raises(RuntimeError) as torch_error:
        model(torch.from_numpy(x))
    with pytest.raises(RuntimeError, match=r"expected input\[1, 4, 64, 64\] to have 3 channels, but got 4 channels "
                                           r"instead") as ours:
        converted(tinydl.tensor(x))
    assert str(ours.value) == str(torch_error.value)


# -- torchvision's fx-wrapped functions (tinydl/interop/torchvision_ops.py) on their own, odd shapes included ----
def test_stochastic_depth(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    for mode in ("row", "batch"):
        for p, training in ((0.2, False), (0.0, True)):
            ref = tv_stochastic_depth(torch.from_numpy(x), p, mode, training)
            assert_close(torchvision_ops.stochastic_depth(tinydl.tensor(x), p, mode, training), ref, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match=r"stochastic_depth with training=True.*call model\.eval\(\)"):
        torchvision_ops.stochastic_depth(tinydl.tensor(x), 0.2, "row", True)
    with pytest.raises(ValueError, match="drop probability has to be between 0 and 1, but got 1.5"):
        torchvision_ops.stochastic_depth(tinydl.tensor(x), 1.5, "row", False)
    with pytest.raises(ValueError, match="mode has to be either 'batch' or 'row', but got col"):
        torchvision_ops.stochastic_depth(tinydl.tensor(x), 0.2, "col", False)


@pytest.mark.parametrize("shape", [(1, 4, 6, 3), (2, 5, 7, 4), (3, 3, 2), (1, 1, 1, 2)])
def test_patch_merging_pad(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    ref = tv_swin._patch_merging_pad(torch.from_numpy(x))
    assert_close(torchvision_ops._patch_merging_pad(tinydl.tensor(x)), ref, rtol=0, atol=0)


@pytest.mark.parametrize("window", [[3, 3], [2, 4]])
def test_get_relative_position_bias(rng, window):
    attn = tv_swin.ShiftedWindowAttention(8, window, [0, 0], num_heads=2)
    torch.nn.init.normal_(attn.relative_position_bias_table)
    ref = attn.get_relative_position_bias()
    out = torchvision_ops._get_relative_position_bias(tinydl.tensor(attn.relative_position_bias_table),
                                                      tinydl.tensor(attn.relative_position_index), window)
    assert_close(out, ref, rtol=0, atol=0)


# (B, H, W, C), window, shift: maps padded to whole windows, shifted or not, windows larger than the map (no shift)
@pytest.mark.parametrize("shape,window,shift", [
    ((2, 8, 8, 8), [4, 4], [2, 2]), ((1, 9, 10, 8), [4, 4], [2, 2]), ((1, 7, 5, 4), [3, 2], [1, 1]),
    ((1, 6, 6, 8), [3, 3], [0, 0]), ((1, 3, 3, 4), [4, 4], [2, 2]), ((1, 8, 3, 4), [4, 4], [2, 2]),
])
@pytest.mark.parametrize("v2", [False, True])
def test_shifted_window_attention(rng, shape, window, shift, v2):
    B, H, W, C = shape
    heads, N = 2, window[0] * window[1]
    arrays = dict(input=rng.standard_normal(shape), qkv_weight=rng.standard_normal((3 * C, C)) * C ** -0.5,
                  proj_weight=rng.standard_normal((C, C)) * C ** -0.5,
                  relative_position_bias=rng.standard_normal((1, heads, N, N)), qkv_bias=rng.standard_normal(3 * C),
                  proj_bias=rng.standard_normal(C))
    if v2:  # Swin V2: cosine attention with a learned (clamped) logit scale, no bias on the keys
        arrays["logit_scale"] = np.log(10 * rng.random((heads, 1, 1)) + 1)
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    kw = dict(window_size=window, num_heads=heads, shift_size=shift, training=False)
    ref = tv_swin.shifted_window_attention(**{k: torch.from_numpy(v) for k, v in arrays.items()}, **kw)
    out = torchvision_ops.shifted_window_attention(**{k: tinydl.tensor(v) for k, v in arrays.items()}, **kw)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", ["bn", "gn"])
def test_norm_without_bias_converts_key_for_key(rng, layer):
    """torch 2.13's BatchNorm2d/GroupNorm(bias=False): no bias key after conversion, same numbers."""
    norm = torch.nn.BatchNorm2d(4, bias=False) if layer == "bn" else torch.nn.GroupNorm(2, 4, bias=False)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), norm, torch.nn.ReLU()).eval()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    tm = tinydl.from_torch(model)
    assert list(tm.state_dict()) == list(model.state_dict())
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    assert_close(tm(tinydl.tensor(x)), ref, rtol=1e-4, atol=1e-5)
