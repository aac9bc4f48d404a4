"""Parity of normalization, embedding, resampling, padding, attention and small activations with torch CPU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
from tinydl.testing import assert_close


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _t(*arrays):
    return [None if a is None else torch.from_numpy(a) for a in arrays]


def _d(*arrays):
    return [None if a is None else tinydl.tensor(a) for a in arrays]


# -- batch_norm (inference) --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 4, 4), (1, 1, 3, 2), (0, 3, 2)])
@pytest.mark.parametrize("affine", ["none", "weight", "bias", "both"])
def test_batch_norm(rng, shape, affine):
    C = shape[1]
    x, mean, var = rand(rng, *shape), rand(rng, C), np.abs(rand(rng, C)) + 0.1
    w = rand(rng, C) if affine in ("weight", "both") else None
    b = rand(rng, C) if affine in ("bias", "both") else None
    out = F.batch_norm(*_d(x, mean, var, w, b), eps=1e-3)
    expected = TF.batch_norm(*_t(x, mean, var, w, b), training=False, eps=1e-3)
    assert_close(out, expected)


def test_batch_norm_fuses_after_conv(rng):
    x, w = rand(rng, 1, 3, 6, 6), rand(rng, 8, 3, 3, 3)
    mean, var, g, b = rand(rng, 8), np.abs(rand(rng, 8)) + 0.1, rand(rng, 8), rand(rng, 8)
    with tinydl.debug.count_kernels() as c:
        out = F.relu(F.batch_norm(F.conv2d(*_d(x, w), padding=1), *_d(mean, var, g, b)))
        out.numpy()
    expected = TF.relu(TF.batch_norm(TF.conv2d(*_t(x, w), padding=1), *_t(mean, var, g, b), training=False))
    # conv K = 27 accumulated in a different order than torch, then scaled by up to ~3x: widen atol a little
    assert_close(out, expected, rtol=1e-4, atol=1e-4)
    conv_kernels = [n for n in c.names if n.startswith("conv2d")]
    assert len(conv_kernels) == 1 and "relu" in conv_kernels[0], c.names


# -- layer_norm / group_norm / normalize --------------------------------------------------------------------
@pytest.mark.parametrize("shape,normalized", [
    ((2, 3, 8), (8,)), ((2, 3, 8), (3, 8)), ((5, 7), 7), ((4, 1), (1,)), ((2, 2, 3, 5), (3, 5)), ((17,), (17,)),
])
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm(rng, shape, normalized, affine):
    x = rand(rng, *shape) * 3 + 1
    nshape = (normalized,) if isinstance(normalized, int) else normalized
    w, b = (rand(rng, *nshape), rand(rng, *nshape)) if affine else (None, None)
    out = F.layer_norm(*_d(x), normalized, *_d(w, b))
    expected = TF.layer_norm(*_t(x), nshape, *_t(w, b))
    assert_close(out, expected)


def test_layer_norm_eps(rng):
    x = rand(rng, 3, 6) * 1e-2  # variance ~1e-4: eps of 1e-2 matters
    assert_close(F.layer_norm(tinydl.tensor(x), (6,), eps=1e-2),
                 TF.layer_norm(torch.from_numpy(x), (6,), eps=1e-2))


@pytest.mark.parametrize("shape,groups", [
    ((2, 6, 4, 4), 1), ((2, 6, 4, 4), 2), ((2, 6, 4, 4), 3), ((1, 6, 3, 3), 6), ((2, 4, 5), 2), ((3, 4), 2),
])
@pytest.mark.parametrize("affine", [False, True])
def test_group_norm(rng, shape, groups, affine):
    C = shape[1]
    x = rand(rng, *shape) * 2 - 1
    w, b = (rand(rng, C), rand(rng, C)) if affine else (None, None)
    assert_close(F.group_norm(*_d(x), groups, *_d(w, b)), TF.group_norm(*_t(x), groups, *_t(w, b)))


@pytest.mark.parametrize("shape,dim", [((3, 5), 1), ((3, 5), -1), ((2, 3, 4), 1), ((2, 3, 4), 0), ((7,), 0)])
@pytest.mark.parametrize("p", [2.0, 1.0])
def test_normalize(rng, shape, dim, p):
    x = rand(rng, *shape)
    assert_close(F.normalize(tinydl.tensor(x), p=p, dim=dim), TF.normalize(torch.from_numpy(x), p=p, dim=dim))


def test_normalize_zero_vector_uses_eps(rng):
    x = rand(rng, 3, 4)
    x[1] = 0
    out = F.normalize(tinydl.tensor(x), dim=1)
    assert_close(out, TF.normalize(torch.from_numpy(x), dim=1))
    assert not np.isnan(out.numpy()).any()


# -- embedding ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ishape", [(2, 3), (5,), (1, 1), (2, 0), (2, 2, 3)])
def test_embedding_numpy_int64(rng, ishape):
    w = rand(rng, 10, 4)
    idx = rng.integers(0, 10, size=ishape).astype(np.int64)
    ti = tinydl.tensor(idx)
    assert ti.dtype == tinydl.int32  # int64 data is stored as int32
    assert_close(F.embedding(ti, tinydl.tensor(w)), TF.embedding(torch.from_numpy(idx), torch.from_numpy(w)),
                 rtol=0, atol=0)  # a gather copies values: exact


def test_embedding_torch_int64_and_padding_idx(rng):
    w = rand(rng, 6, 3)
    idx = torch.tensor([[0, 5, 2], [2, 2, 0]], dtype=torch.int64)
    assert tinydl.tensor(idx).dtype == tinydl.int32
    out = F.embedding(idx, w, padding_idx=0)  # padding_idx only affects gradients: the forward is a plain gather
    assert_close(out, TF.embedding(idx, torch.from_numpy(w), padding_idx=0), rtol=0, atol=0)


def test_embedding_then_linear(rng):
    w, lw = rand(rng, 8, 5), rand(rng, 3, 5)
    idx = np.array([[1, 7], [0, 3]], np.int64)
    out = F.linear(F.embedding(*_d(idx, w)), tinydl.tensor(lw))
    assert_close(out, TF.linear(TF.embedding(*_t(idx, w)), torch.from_numpy(lw)), rtol=1e-4, atol=1e-5)


# -- interpolate -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("kw", [
    dict(size=(8, 10)), dict(size=(3, 7)), dict(size=5), dict(size=(2, 1)),
    dict(scale_factor=2), dict(scale_factor=0.5), dict(scale_factor=(1.5, 2.0)), dict(scale_factor=(0.7, 3)),
])
def test_interpolate_nearest_2d(rng, kw, mode):
    x = rand(rng, 1, 2, 4, 5)
    out = F.interpolate(tinydl.tensor(x), mode=mode, **kw)
    # nearest copies input values: exact
    assert_close(out, TF.interpolate(torch.from_numpy(x), mode=mode, **kw), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("kw", [dict(size=7), dict(size=3), dict(scale_factor=2), dict(scale_factor=1.7)])
def test_interpolate_nearest_1d(rng, kw, mode):
    x = rand(rng, 2, 3, 5)
    out = F.interpolate(tinydl.tensor(x), mode=mode, **kw)
    assert_close(out, TF.interpolate(torch.from_numpy(x), mode=mode, **kw), rtol=0, atol=0)


@pytest.mark.parametrize("kw", [
    dict(size=(7, 9)), dict(size=(3, 3)), dict(size=(1, 1)), dict(size=(8, 2)),
    dict(scale_factor=2), dict(scale_factor=0.5), dict(scale_factor=(1.5, 0.75)),
])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolate_bilinear_bicubic(rng, kw, align_corners, mode):
    x = rand(rng, 2, 2, 4, 5)
    out = F.interpolate(tinydl.tensor(x), mode=mode, align_corners=align_corners, **kw)
    expected = TF.interpolate(torch.from_numpy(x), mode=mode, align_corners=align_corners, **kw)
    # bilinear's source coordinates are computed in fp32 with a different formula order than torch (bicubic's
    # weights in fp64 on the host); a weight error of ~1e-6 times an O(1) value difference stays below atol 1e-5
    assert_close(out, expected)


@pytest.mark.parametrize("kw", [dict(size=9), dict(size=2), dict(scale_factor=2), dict(scale_factor=0.6)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_interpolate_linear_1d(rng, kw, align_corners):
    x = rand(rng, 2, 3, 5)
    out = F.interpolate(tinydl.tensor(x), mode="linear", align_corners=align_corners, **kw)
    assert_close(out, TF.interpolate(torch.from_numpy(x), mode="linear", align_corners=align_corners, **kw))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("kw", [
    dict(size=(3, 2)), dict(size=(2, 1)), dict(size=(1, 1)), dict(scale_factor=0.5), dict(scale_factor=(0.4, 0.75)),
    dict(size=(5, 3)), dict(size=(12, 9)),  # a small shrink, and an upscale (antialias then only smooths)
])
@pytest.mark.parametrize("align_corners", [False, True])
def test_interpolate_antialias(rng, mode, kw, align_corners):
    x = rand(rng, 2, 3, 7, 6)
    out = F.interpolate(tinydl.tensor(x), mode=mode, antialias=True, align_corners=align_corners, **kw)
    # the reference from a channels_last input: torch 2.13's contiguous antialias kernel gives every output row the
    # first row's values when the output width is 1 (size=(2, 1)); its channels_last kernel and tinydl agree
    ref = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    expected = TF.interpolate(ref, mode=mode, antialias=True, align_corners=align_corners, **kw)
    assert_close(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape,kw,exc,match", [
    ((1, 2, 5), dict(size=3, mode="bicubic"), NotImplementedError,
     r"Input Error: Only 3D, 4D and 5D input Tensors supported \(got 3D\) .* \(got bicubic\)"),
    ((1, 2, 4, 4), dict(size=2, mode="cubic"), NotImplementedError, r"\(got cubic\)"),
    ((1, 2, 4, 4), dict(size=2, mode="nearest", antialias=True), ValueError,
     "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes"),
    ((1, 2, 5), dict(size=3, mode="linear", antialias=True), ValueError, "Anti-alias option is restricted"),
])
def test_interpolate_bad_modes_raise_as_torch(rng, shape, kw, exc, match):
    x = rand(rng, *shape)
    _both_raise(lambda: F.interpolate(tinydl.tensor(x), **kw), lambda: TF.interpolate(torch.from_numpy(x), **kw),
                exc, match)


def test_interpolate_bicubic_refuses_ints():  # the other modes: test_interpolate_modes.py
    with pytest.raises(NotImplementedError, match='"compute_indices_weights_cubic" not implemented for \'Int\''):
        F.interpolate(tinydl.tensor(np.ones((1, 1, 3, 3), np.int32)), size=2, mode="bicubic")


# -- pad ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,pads", [
    ((2, 3, 5), (1, 2)), ((2, 3, 5), (0, 3, 2, 0)), ((1, 2, 4, 5), (1, 1, 2, 0)), ((1, 2, 4, 5), (2, 1, 0, 3, 1, 0)),
    ((2, 3, 5), (-1, 2)), ((1, 2, 4, 5), (-2, -1, 1, -3)), ((1, 2, 4, 5), (0, 0, -4, 0)),  # negative pads crop
    ((2, 3, 5), (0, 0)),
])
@pytest.mark.parametrize("value", [None, 1.5])
def test_pad_constant(rng, shape, pads, value):
    x = rand(rng, *shape)
    kw = {} if value is None else dict(value=value)
    assert_close(F.pad(tinydl.tensor(x), pads, **kw), TF.pad(torch.from_numpy(x), pads, **kw), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("shape,pads", [
    ((2, 3, 5), (2, 1)), ((2, 3, 5), (4, 0)), ((1, 2, 4, 5), (1, 2, 3, 0)), ((1, 2, 4, 5), (0, 4, 1, 3)),
    ((3, 4, 5), (2, 2, 1, 1)),  # 3D input padded in 2 dims: treated as an unbatched image
])
def test_pad_reflect_replicate(rng, mode, shape, pads):
    x = rand(rng, *shape)
    assert_close(F.pad(tinydl.tensor(x), pads, mode=mode), TF.pad(torch.from_numpy(x), pads, mode=mode),
                 rtol=0, atol=0)


@pytest.mark.parametrize("shape,pads", [
    ((2, 3, 5), (2, 1)), ((2, 3, 5), (5, 0)), ((1, 2, 4, 5), (1, 2, 3, 0)), ((1, 2, 4, 5, 3), (1, 1, 2, 0, 1, 3)),
    ((2, 3), (1, 2)),                                      # 2D: one batched signal
    ((1, 1, 4, 5), (-1, 2, 0, 0)), ((1, 1, 5, 5), (-2, -1, 3, -1)),  # negative pads crop, then wrap what is left
])
def test_pad_circular(rng, shape, pads):
    x = rand(rng, *shape)
    assert_close(F.pad(tinydl.tensor(x), pads, mode="circular"), TF.pad(torch.from_numpy(x), pads, mode="circular"),
                 rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_non_constant_pads_refuse_what_torch_refuses(mode):
    """torch pads the last 1-3 dims of a batched or unbatched 1-3D signal only, circular wrapping once at most."""
    for size, shape in ((4, (8, 8)), (2, (1, 1, 1, 1, 1, 4))):
        with pytest.raises(NotImplementedError) as ours:
            F.pad(tinydl.tensor(np.zeros(shape, np.float32)), (1,) * size, mode=mode)
        with pytest.raises(NotImplementedError) as torchs:
            TF.pad(torch.zeros(shape), (1,) * size, mode=mode)
        assert str(ours.value) == str(torchs.value)
        assert str(ours.value).startswith(f"Padding size {size} is not supported for {len(shape)}D input tensor.")
    if mode == "circular":
        with pytest.raises(RuntimeError, match=r"^Padding value causes wrapping around more than once\.$"):
            F.pad(tinydl.tensor(np.zeros((1, 1, 4, 4), np.float32)), (5, 0, 0, 0), mode=mode)
        with pytest.raises(RuntimeError, match="wrapping around more than once"):
            TF.pad(torch.zeros(1, 1, 4, 4), (5, 0, 0, 0), mode=mode)


def test_pad_int_dtype(rng):
    x = rng.integers(-5, 5, size=(2, 4)).astype(np.int32)
    assert_close(F.pad(tinydl.tensor(x), (1, 2), value=7), TF.pad(torch.from_numpy(x), (1, 2), value=7))


# -- scaled_dot_product_attention --------------------------------------------------------------------------
def sdpa_both(q, k, v, mask=None, **kw):
    out = F.scaled_dot_product_attention(*_d(q, k, v), attn_mask=None if mask is None else tinydl.tensor(mask), **kw)
    expected = TF.scaled_dot_product_attention(*_t(q, k, v), attn_mask=None if mask is None else
                                               torch.from_numpy(mask), **kw)
    return out, expected


# two matmuls (K = D, then K = S) around an exp: differently ordered fp32 sums, well inside 1e-5 + 1e-4 * |x|
SDPA_TOL = dict(rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("qs,ks,vs", [
    ((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 6)),   # 4D, L != S, Dv != D
    ((2, 3, 4, 8), (2, 3, 4, 8), (2, 3, 4, 8)),
    ((2, 3, 4), (2, 6, 4), (2, 6, 4)),             # 3D
    ((1, 1, 1, 4), (1, 1, 1, 4), (1, 1, 1, 4)),    # single query and key
    ((2, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)),    # batch-broadcast keys
])
def test_sdpa_no_mask(rng, qs, ks, vs):
    out, expected = sdpa_both(rand(rng, *qs), rand(rng, *ks), rand(rng, *vs))
    assert_close(out, expected, **SDPA_TOL)


@pytest.mark.parametrize("mshape", [(3, 5), (1, 2, 3, 5), (2, 1, 1, 5)])
def test_sdpa_bool_mask(rng, mshape):
    q, k, v = rand(rng, 2, 2, 3, 4), rand(rng, 2, 2, 5, 4), rand(rng, 2, 2, 5, 4)
    mask = rng.random(mshape) > 0.4
    mask[..., 0] = True  # every query keeps at least one key (fully masked rows: test_sdpa_fully_masked_row)
    out, expected = sdpa_both(q, k, v, mask)
    assert_close(out, expected, **SDPA_TOL)


@pytest.mark.parametrize("mshape", [(3, 5), (2, 2, 3, 5)])
def test_sdpa_float_mask(rng, mshape):
    q, k, v = rand(rng, 2, 2, 3, 4), rand(rng, 2, 2, 5, 4), rand(rng, 2, 2, 5, 4)
    mask = rand(rng, *mshape) * 3
    out, expected = sdpa_both(q, k, v, mask)
    assert_close(out, expected, **SDPA_TOL)


@pytest.mark.parametrize("L,S", [(3, 5), (5, 3), (4, 4), (1, 6)])
def test_sdpa_causal(rng, L, S):
    q, k, v = rand(rng, 1, 2, L, 4), rand(rng, 1, 2, S, 4), rand(rng, 1, 2, S, 4)
    out, expected = sdpa_both(q, k, v, is_causal=True)
    assert_close(out, expected, **SDPA_TOL)


@pytest.mark.parametrize("scale", [0.1, 1.0, 2.5])
def test_sdpa_scale(rng, scale):
    out, expected = sdpa_both(rand(rng, 1, 2, 3, 4), rand(rng, 1, 2, 5, 4), rand(rng, 1, 2, 5, 4), scale=scale)
    assert_close(out, expected, **SDPA_TOL)


@pytest.mark.parametrize("hq,hkv", [(4, 2), (6, 3), (4, 1)])
def test_sdpa_gqa(rng, hq, hkv):
    q, k, v = rand(rng, 1, hq, 3, 4), rand(rng, 1, hkv, 5, 4), rand(rng, 1, hkv, 5, 4)
    out, expected = sdpa_both(q, k, v, enable_gqa=True)
    assert_close(out, expected, **SDPA_TOL)


def test_sdpa_gqa_causal(rng):
    q, k, v = rand(rng, 2, 4, 3, 4), rand(rng, 2, 2, 5, 4), rand(rng, 2, 2, 5, 4)
    out, expected = sdpa_both(q, k, v, enable_gqa=True, is_causal=True)
    assert_close(out, expected, **SDPA_TOL)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_row(rng, kind):
    """A query whose keys are all masked attends to nothing: 0, as torch's scaled_dot_product_attention (its safe
    softmax), not the NaN a plain softmax of -inf gives."""
    q, k, v = rand(rng, 2, 2, 4, 8), rand(rng, 2, 2, 6, 8), rand(rng, 2, 2, 6, 8)
    if kind == "bool":
        mask = rng.random((2, 1, 4, 6)) > 0.3
        mask[..., 0] = True
        mask[1, 0, 2] = False
    else:
        mask = rand(rng, 4, 6)
        mask[3] = -np.inf
    out, expected = sdpa_both(q, k, v, mask)
    assert not np.isnan(expected.numpy()).any()
    assert_close(out, expected, **SDPA_TOL)
    assert (out.numpy()[1, :, 2] == 0).all() if kind == "bool" else (out.numpy()[..., 3, :] == 0).all()


def test_sdpa_no_keys(rng):
    """No keys at all: every query attends to nothing (zeros), as torch."""
    out, expected = sdpa_both(rand(rng, 1, 2, 4, 8), rand(rng, 1, 2, 0, 8), rand(rng, 1, 2, 0, 8))
    assert_close(out, expected, rtol=0, atol=0)


def test_softmax_of_only_minus_inf_is_nan(rng):
    """softmax keeps torch's NaN for a row of -inf (only attention's softmax is the safe one)."""
    x = np.zeros((2, 5), np.float32)
    x[1] = -np.inf
    out = F.softmax(tinydl.tensor(x), -1).numpy()
    assert np.isnan(out[1]).all() and np.isnan(TF.softmax(torch.from_numpy(x), -1).numpy()[1]).all()
    assert_close(out[0], np.full(5, 0.2, np.float32))


def test_sdpa_large_logits(rng):
    """q.k of a few hundred: exp would overflow without the max subtraction."""
    q, k, v = rand(rng, 1, 2, 3, 4) * 20, rand(rng, 1, 2, 5, 4) * 20, rand(rng, 1, 2, 5, 4)
    out, expected = sdpa_both(q, k, v)
    assert np.isfinite(out.numpy()).all()
    # logits of a few hundred: a 1-ulp difference in a logit (~3e-5) changes its softmax weight by that relative
    # amount, so allow rtol 1e-4 / atol 1e-4 on the O(1) outputs (observed: ~1e-8, as D = 4 sums few products)
    assert_close(out, expected, rtol=1e-4, atol=1e-4)


# -- softmax stability -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mag", [50.0, 200.0])
@pytest.mark.parametrize("dim", [-1, 0])
def test_softmax_large_logits(rng, mag, dim):
    x = np.clip(rand(rng, 4, 7) * mag, -mag, mag).astype(np.float32)
    x[0, 0], x[1, 1] = mag, -mag
    out = F.softmax(tinydl.tensor(x), dim)
    expected = TF.softmax(torch.from_numpy(x), dim)
    assert np.isfinite(out.numpy()).all()
    # exp of (x - max) in [-2*mag, 0]: tiny weights underflow to 0 identically; relative error of exp ~ 1e-6 * |x|
    assert_close(out, expected, rtol=1e-4 * mag / 50, atol=1e-6)
    lout = F.log_softmax(tinydl.tensor(x), dim)
    # log_softmax values up to 2 * mag: absolute error ~ 1e-7 * mag per op
    assert_close(lout, TF.log_softmax(torch.from_numpy(x), dim), rtol=1e-5, atol=1e-5 * mag / 50)


def test_softmax_all_equal_and_inf(rng):
    x = np.zeros((2, 5), np.float32)
    x[1, 2:] = -np.inf
    assert_close(F.softmax(tinydl.tensor(x), -1), TF.softmax(torch.from_numpy(x), -1))


# -- prelu / hardtanh / dropout ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape,wn", [((2, 3, 4, 4), 1), ((2, 3, 4, 4), 3), ((5, 3), 3), ((5, 3), 1), ((2, 4, 3), 4)])
def test_prelu(rng, shape, wn):
    x, w = rand(rng, *shape), rand(rng, wn) * 0.5
    assert_close(F.prelu(*_d(x, w)), TF.prelu(*_t(x, w)), rtol=1e-6, atol=0)


def test_prelu_bad_weight(rng):
    x, w = rand(rng, 2, 3, 4), rand(rng, 4)
    match = "Mismatch of parameter numbers and input channel size. Found parameter numbers = 4 and channel size = 3"
    with pytest.raises(RuntimeError, match=match):
        TF.prelu(*_t(x, w))
    with pytest.raises(RuntimeError, match=match):
        F.prelu(*_d(x, w))


@pytest.mark.parametrize("kw", [{}, dict(min_val=-0.5, max_val=2.0), dict(min_val=0.0, max_val=6.0)])
def test_hardtanh(rng, kw):
    x = rand(rng, 3, 7) * 3
    assert_close(F.hardtanh(tinydl.tensor(x), **kw), TF.hardtanh(torch.from_numpy(x), **kw), rtol=0, atol=0)


def test_dropout_eval_is_identity(rng):
    x = rand(rng, 4, 5)
    out = F.dropout(tinydl.tensor(x), p=0.5, training=False)
    assert_close(out, TF.dropout(torch.from_numpy(x), p=0.5, training=False), rtol=0, atol=0)


def test_dropout_training_raises(rng):
    with pytest.raises(RuntimeError, match="inference only: dropout with training=True"):
        F.dropout(tinydl.tensor(rand(rng, 4)), p=0.5, training=True)


def test_batch_norm_training_raises(rng):
    x, m, v = rand(rng, 2, 3), rand(rng, 3), np.ones(3, np.float32)
    with pytest.raises(RuntimeError, match="inference only: batch_norm with training=True"):
        F.batch_norm(*_d(x, m, v), training=True)


# -- bad input ---------------------------------------------------------------------------------------------
def _both_raise(tiny, ref, exc, match):
    with pytest.raises(exc, match=match):
        ref()
    with pytest.raises(exc, match=match):
        tiny()


@pytest.mark.parametrize("shape,normalized,msg", [
    ((2, 3, 4), (3,), r"Given normalized_shape=\[3\], expected input with shape \[\*, 3\], but got input of "
                      r"size\[2, 3, 4\]"),
    ((2, 3, 4), (2, 4), r"Given normalized_shape=\[2, 4\], expected input with shape \[\*, 2, 4\]"),
    ((2, 3, 4), (2, 3, 4, 5), r"Given normalized_shape=\[2, 3, 4, 5\], expected input with shape \[\*, 2, 3, 4, 5\],"
                              r" but got input of size\[2, 3, 4\]"),
])
def test_layer_norm_shape_mismatch(rng, shape, normalized, msg):
    x = rand(rng, *shape)
    _both_raise(lambda: F.layer_norm(tinydl.tensor(x), normalized), lambda: TF.layer_norm(torch.from_numpy(x), normalized),
                RuntimeError, msg)


def test_group_norm_not_divisible(rng):
    x = rand(rng, 2, 6, 4)
    _both_raise(lambda: F.group_norm(tinydl.tensor(x), 4), lambda: TF.group_norm(torch.from_numpy(x), 4), RuntimeError,
                r"Expected number of channels in input to be divisible by num_groups, but got input of shape "
                r"\[2, 6, 4\] and num_groups=4")


@pytest.mark.parametrize("which", ["mean", "weight"])
def test_batch_norm_wrong_channels(rng, which):
    x, m, v, w = rand(rng, 2, 3, 4), rand(rng, 3), np.ones(3, np.float32), None
    if which == "mean":
        m, v = rand(rng, 4), np.ones(4, np.float32)
        msg = "running_mean should contain 3 elements not 4"
    else:
        w = rand(rng, 4)
        msg = "weight should contain 3 elements not 4"
    _both_raise(lambda: F.batch_norm(*_d(x, m, v, w)), lambda: TF.batch_norm(*_t(x, m, v, w)), RuntimeError, msg)


def test_embedding_float_indices(rng):
    idx, w = rand(rng, 2, 3), rand(rng, 10, 4)
    _both_raise(lambda: F.embedding(*_d(idx, w)), lambda: TF.embedding(*_t(idx, w)), RuntimeError,
                r"Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int; "
                r"but got .*Float.* instead|but got float32 instead")


@pytest.mark.parametrize("shape,pads", [((1, 2, 4), (4, 0)), ((1, 2, 4), (1, 5)), ((1, 2, 4, 3), (0, 0, 4, 0)),
                                        ((1, 2, 4, 3), (3, 0, 0, 0))])
def test_reflect_pad_too_large(rng, shape, pads):
    x = rand(rng, *shape)
    _both_raise(lambda: F.pad(tinydl.tensor(x), pads, mode="reflect"),
                lambda: TF.pad(torch.from_numpy(x), pads, mode="reflect"), RuntimeError,
                "Padding size should be less than the corresponding input dimension")


def test_interpolate_size_and_scale(rng):
    x = rand(rng, 1, 2, 4, 4)
    _both_raise(lambda: F.interpolate(tinydl.tensor(x), size=3, scale_factor=2),
                lambda: TF.interpolate(torch.from_numpy(x), size=3, scale_factor=2), ValueError,
                "only one of size or scale_factor should be defined")
    _both_raise(lambda: F.interpolate(tinydl.tensor(x)), lambda: TF.interpolate(torch.from_numpy(x)), ValueError,
                "either size or scale_factor should be defined")


def test_sdpa_causal_with_mask(rng):
    # torch's CPU math path silently ignores the mask here; tinydl refuses the ambiguous call (torch's fused kernels
    # raise this error)
    q = rand(rng, 1, 2, 3, 4)
    mask = np.ones((3, 3), bool)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(*_d(q, q, q), attn_mask=tinydl.tensor(mask), is_causal=True)


def test_sdpa_dim_mismatch(rng):
    q, k = rand(rng, 1, 2, 3, 4), rand(rng, 1, 2, 3, 5)
    with pytest.raises(RuntimeError, match="Expected query and key to have the same last dimension, got 4 and 5"):
        F.scaled_dot_product_attention(*_d(q, k, k))


@pytest.mark.parametrize("L,S,E,heads,kw", [
    (64, 64, 32, (4, 4), {}),
    (16, 256, 64, (4, 4), {}),                         # long keys: many probabilities per output
    (32, 32, 32, (4, 4), {"is_causal": True}),
    (32, 48, 32, (4, 2), {"enable_gqa": True}),        # grouped query heads
    (32, 48, 32, (4, 4), {"mask": "bool"}),
    (32, 48, 32, (4, 4), {"mask": "additive"}),        # a float16 additive mask
])
def test_float16_attention_scores_keep_float32(rng, L, S, E, heads, kw):
    """float16 attention with scores of magnitude ~30: torch keeps the scores in float32 (rounded to half, a score
    of 30 is 0.016 off and its probability 1.6 %); tinydl's error against a float64 run is torch float16's own."""
    if "shader-f16" not in tinydl.device_info()["features"]:
        pytest.skip("adapter without shader-f16")
    q = (rng.standard_normal((2, heads[0], L, E)) * 3).astype(np.float16)
    k = (rng.standard_normal((2, heads[1], S, E)) * 3).astype(np.float16)
    v = rng.standard_normal((2, heads[1], S, E)).astype(np.float16)
    kw = dict(kw)
    mask = kw.pop("mask", None)
    if mask == "bool":
        m = rng.random((L, S)) > 0.3
        m[:, 0] = True
    elif mask == "additive":
        m = (rng.standard_normal((L, S)) * 2).astype(np.float16)
    args = [(q, k, v), {**kw, **({"attn_mask": m} if mask else {})}]

    def run(lib, convert):
        a = {n: convert(x) if isinstance(x, np.ndarray) else x for n, x in args[1].items()}
        return (lib.scaled_dot_product_attention(*map(convert, args[0]), **a))
    exact = run(TF, lambda x: torch.from_numpy(x).double()).numpy()
    ours = run(F, tinydl.tensor)
    assert ours.dtype == tinydl.float16
    theirs = run(TF, torch.from_numpy).float().numpy()
    torch_error = np.abs(theirs - exact).max()
    assert np.abs(ours.numpy().astype(np.float64) - exact).max() <= 2 * torch_error + 1e-4


@pytest.mark.parametrize("op", ["layer_norm", "group_norm", "rms_norm", "softmax", "log_softmax"])
def test_float16_norms_of_large_values_keep_float32_statistics(rng, op):
    """float16 inputs of magnitude ~1e4: their squares (~1e8) overflow float16, so mean/variance/sum of exps are
    kept in float32 (as torch accumulates) and only the result is rounded: finite, and as close to the float32
    result as rounding to float16 allows (ONNX Runtime's float16 LayerNorm once returned Inf/NaN here)."""
    if "shader-f16" not in tinydl.device_info()["features"]:
        pytest.skip("adapter without shader-f16")
    x = (rng.standard_normal((4, 32, 64)) * 8e3).astype(np.float16)
    if "softmax" in op:  # values ~8: their exps (~e^30) overflow float16
        x = (x / np.float16(1e3)).astype(np.float16)
    fns = {"layer_norm": (lambda t, f: f.layer_norm(t, (64,))), "group_norm": (lambda t, f: f.group_norm(t, 8)),
           "rms_norm": (lambda t, f: f.rms_norm(t, (64,))), "softmax": (lambda t, f: f.softmax(t, -1)),
           "log_softmax": (lambda t, f: f.log_softmax(t, -1))}
    y = fns[op](tinydl.tensor(x), F).numpy()
    ref = fns[op](torch.from_numpy(x).float(), TF).numpy()
    assert y.dtype == np.float16 and np.isfinite(y).all()
    rounding = np.abs(ref.astype(np.float16).astype(np.float32) - ref).max()
    assert np.abs(y.astype(np.float32) - ref).max() <= 2 * rounding + 2e-3 * np.abs(ref).max()
