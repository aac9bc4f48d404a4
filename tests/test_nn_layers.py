"""Every tinydl.nn layer against the torch.nn layer of the same name, built with the same arguments, with the
torch layer's (randomized) weights copied in through load_state_dict(torch_layer.state_dict())."""
import numpy as np
import pytest
import torch
import torch.nn as tnn

import tinydl
import tinydl.nn as nn
from tinydl.testing import assert_close

pytestmark = [  # torch's own notices about its fast paths; not about tinydl
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True"),
    pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors"),
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel"),
]

def make(name, *args, **kwargs):
    """(torch layer, tinydl layer) built with the same arguments; the torch one gets random weights (and BN
    statistics) and the tinydl one loads its state_dict; both in eval mode."""
    t = getattr(tnn, name)(*args, **kwargs)
    m = getattr(nn, name)(*args, **kwargs)
    g = torch.Generator().manual_seed(len(name) + len(args))
    with torch.no_grad():
        for k, v in list(t.named_parameters()) + list(t.named_buffers()):
            if not v.dtype.is_floating_point:
                continue
            r = torch.randn(v.shape, generator=g) * 0.5
            v.copy_(r.abs() + 0.5 if k.endswith("running_var") else r)
    t.eval()
    m.eval()
    m.load_state_dict(t.state_dict())
    return t, m


def to_torch(x):
    return torch.from_numpy(x) if isinstance(x, np.ndarray) else x


def to_tinydl(x):
    return tinydl.tensor(x) if isinstance(x, np.ndarray) else x


def check(t, m, *inputs, rtol=1e-4, atol=1e-5, **kwargs):
    with torch.no_grad():
        expected = t(*map(to_torch, inputs), **{k: to_torch(v) for k, v in kwargs.items()})
    got = m(*map(to_tinydl, inputs), **{k: to_tinydl(v) for k, v in kwargs.items()})
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected):
            if e is None:
                assert g is None
            else:
                assert_close(g, e, rtol=rtol, atol=atol)
    else:
        assert_close(got, expected, rtol=rtol, atol=atol)
    return got, expected


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def check_error(torch_call, tinydl_call, exc=RuntimeError, same_message=True, match=None):
    """The bad input raises the same exception type in both; the message is torch's (exactly, or matching)."""
    with pytest.raises(exc) as t_err:
        with torch.no_grad():
            torch_call()
    with pytest.raises(type(t_err.value)) as err:
        tinydl_call()
    if same_message:
        assert str(err.value) == str(t_err.value)
    if match:
        assert match in str(err.value) and match in str(t_err.value)


# -- Linear, Conv ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4), (0, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng, shape, bias):
    check(*make("Linear", 4, 6, bias=bias), randn(rng, *shape))


@pytest.mark.parametrize("kwargs,shape", [
    (dict(kernel_size=3), (2, 3, 9)),
    (dict(kernel_size=3, stride=2, padding=1), (3, 9)),  # unbatched
    (dict(kernel_size=3, padding="same", dilation=2), (1, 3, 8)),
    (dict(kernel_size=4, padding="same"), (1, 3, 8)),  # even kernel: torch pads asymmetrically
    (dict(kernel_size=3, padding=2, padding_mode="reflect"), (1, 3, 7)),
    (dict(kernel_size=3, padding=1, padding_mode="replicate", bias=False), (1, 3, 7)),
])
def test_conv1d(rng, kwargs, shape):
    check(*make("Conv1d", 3, 6, **kwargs), randn(rng, *shape))


def test_conv1d_groups(rng):
    check(*make("Conv1d", 4, 6, 3, groups=2), randn(rng, 2, 4, 7))


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1)])
def test_conv2d_padding_modes(rng, padding_mode, padding):
    check(*make("Conv2d", 3, 5, 3, padding=padding, padding_mode=padding_mode), randn(rng, 2, 3, 7, 6))


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=(2, 3), padding="same"),  # even kernel: asymmetric padding, like torch
    dict(kernel_size=3, padding="same", dilation=2),
    dict(kernel_size=3, padding="same", padding_mode="reflect"),
    dict(kernel_size=(2, 3), padding="same", dilation=(1, 2), padding_mode="replicate"),
    dict(kernel_size=3, padding="valid"),
    dict(kernel_size=3, stride=2, padding=1, bias=False),
    dict(kernel_size=(3, 1), stride=(2, 1), dilation=(1, 2)),
    dict(kernel_size=3, padding=1, groups=2),
    dict(kernel_size=1),
])
def test_conv2d(rng, kwargs):
    check(*make("Conv2d", 4, 6, **kwargs), randn(rng, 2, 4, 7, 6))


def test_conv2d_depthwise_unbatched(rng):
    check(*make("Conv2d", 4, 8, 3, padding=1, groups=4), randn(rng, 4, 5, 5))


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(0, 1)),
    dict(kernel_size=3, groups=2, bias=False),
    dict(kernel_size=3, dilation=2),
])
def test_conv_transpose2d(rng, kwargs):
    check(*make("ConvTranspose2d", 4, 6, **kwargs), randn(rng, 2, 4, 5, 4))


def test_conv_bad_input_messages(rng):
    t, m = make("Conv2d", 3, 4, 3)
    x5 = randn(rng, 1, 5, 6, 6)
    check_error(lambda: t(torch.from_numpy(x5)), lambda: m(tinydl.tensor(x5)),
                match="expected input[1, 5, 6, 6] to have 3 channels, but got 5 channels instead")
    x5d = randn(rng, 1, 1, 3, 6, 6)
    check_error(lambda: t(torch.from_numpy(x5d)), lambda: m(tinydl.tensor(x5d)),
                match="Expected 3D (unbatched) or 4D (batched) input to conv2d")
    x_small = randn(rng, 1, 3, 2, 2)
    check_error(lambda: t(torch.from_numpy(x_small)), lambda: m(tinydl.tensor(x_small)),
                match="Kernel size can't be greater than actual input size")
    t1, m1 = make("Conv1d", 3, 4, 3)
    x4 = randn(rng, 1, 3, 6, 6)
    check_error(lambda: t1(torch.from_numpy(x4)), lambda: m1(tinydl.tensor(x4)),
                match="Expected 2D (unbatched) or 3D (batched) input to conv1d")


def test_linear_bad_input_message(rng):
    t, m = make("Linear", 4, 6)
    x = randn(rng, 2, 5)
    check_error(lambda: t(torch.from_numpy(x)), lambda: m(tinydl.tensor(x)),
                match="mat1 and mat2 shapes cannot be multiplied (2x5 and 4x6)")


def test_conv_constructor_errors():
    for name in ("Conv1d", "Conv2d"):
        check_error(lambda: getattr(tnn, name)(3, 4, 3, groups=2), lambda: getattr(nn, name)(3, 4, 3, groups=2),
                    ValueError, match="in_channels must be divisible by groups")
        check_error(lambda: getattr(tnn, name)(4, 4, 3, stride=2, padding="same"),
                    lambda: getattr(nn, name)(4, 4, 3, stride=2, padding="same"), ValueError,
                    match="padding='same' is not supported for strided convolutions")
        check_error(lambda: getattr(tnn, name)(4, 4, 3, padding_mode="wrap"),
                    lambda: getattr(nn, name)(4, 4, 3, padding_mode="wrap"), ValueError, same_message=False,
                    match="padding_mode must be one of")  # torch lists the modes from a set: order varies


# -- normalization ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5)])
@pytest.mark.parametrize("kwargs", [{}, dict(affine=False), dict(track_running_stats=False), dict(eps=1e-2)])
def test_batchnorm1d(rng, shape, kwargs):
    check(*make("BatchNorm1d", 3, **kwargs), randn(rng, *shape))


@pytest.mark.parametrize("kwargs", [{}, dict(affine=False), dict(track_running_stats=False),
                                    dict(track_running_stats=False, affine=False), dict(bias=False)])
def test_batchnorm2d(rng, kwargs):
    t, m = make("BatchNorm2d", 3, **kwargs)
    if t.running_mean is not None:  # the running statistics really are used (and are random, not 0/1)
        assert float(t.running_mean.abs().sum()) > 0.1 and not torch.allclose(t.running_var, torch.ones(3))
    check(t, m, randn(rng, 2, 3, 4, 5))


def test_batchnorm_bad_input(rng):
    t, m = make("BatchNorm2d", 3)
    x3 = randn(rng, 3, 4, 4)
    check_error(lambda: t(torch.from_numpy(x3)), lambda: m(tinydl.tensor(x3)), ValueError,
                match="expected 4D input (got 3D input)")
    x = randn(rng, 1, 4, 2, 2)
    check_error(lambda: t(torch.from_numpy(x)), lambda: m(tinydl.tensor(x)),
                match="running_mean should contain 4 elements not 3")
    t1, m1 = make("BatchNorm1d", 3)
    x4 = randn(rng, 1, 3, 2, 2)
    check_error(lambda: t1(torch.from_numpy(x4)), lambda: m1(tinydl.tensor(x4)), ValueError,
                match="expected 2D or 3D input (got 4D input)")


@pytest.mark.parametrize("normalized_shape,shape,kwargs", [
    (5, (3, 5), {}), ((4, 5), (2, 4, 5), {}), (5, (2, 3, 5), dict(elementwise_affine=False)),
    (5, (2, 5), dict(bias=False)), (5, (2, 5), dict(eps=1e-3)),
])
def test_layernorm(rng, normalized_shape, shape, kwargs):
    check(*make("LayerNorm", normalized_shape, **kwargs), randn(rng, *shape))


def test_layernorm_bad_input(rng):
    t, m = make("LayerNorm", 5)
    x = randn(rng, 2, 4)
    check_error(lambda: t(torch.from_numpy(x)), lambda: m(tinydl.tensor(x)),
                match="Given normalized_shape=[5], expected input with shape [*, 5], but got input of size[2, 4]")


@pytest.mark.parametrize("groups,shape,kwargs", [(2, (2, 4, 3, 3), {}), (1, (1, 4, 5), {}), (4, (2, 4), {}),
                                                 (2, (1, 4, 2, 3), dict(affine=False)), (2, (1, 4, 3), dict(bias=False))])
def test_groupnorm(rng, groups, shape, kwargs):
    check(*make("GroupNorm", groups, 4, **kwargs), randn(rng, *shape))


def test_groupnorm_bad_input(rng):
    t, m = make("GroupNorm", 2, 4)
    x = randn(rng, 1, 3, 4)
    check_error(lambda: t(torch.from_numpy(x)), lambda: m(tinydl.tensor(x)), same_message=False,
                match="Expected number of channels in input to be divisible by num_groups")


# -- embedding, dropout, reshaping ---------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_embedding(rng, padding_idx):
    t, m = make("Embedding", 10, 4, padding_idx=padding_idx)
    idx = rng.integers(0, 10, size=(2, 5)).astype(np.int64)
    idx[0, 0] = 0
    idx[1, 1] = 9
    check(t, m, idx)
    assert m.padding_idx == t.padding_idx


def test_embedding_init_zeroes_padding_row():
    m = nn.Embedding(6, 3, padding_idx=2)
    assert_close(m.weight.numpy()[2], np.zeros(3, np.float32), rtol=0, atol=0)
    assert np.abs(m.weight.numpy()).sum() > 0


def test_embedding_bad_input(rng):
    t, m = make("Embedding", 10, 4)
    x = randn(rng, 3)
    check_error(lambda: t(torch.from_numpy(x)), lambda: m(tinydl.tensor(x)), same_message=False,
                match="Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int")
    check_error(lambda: tnn.Embedding(10, 4, padding_idx=10), lambda: nn.Embedding(10, 4, padding_idx=10),
                AssertionError, match="Padding_idx must be within num_embeddings")


@pytest.mark.parametrize("name,shape", [("Dropout", (2, 5)), ("Dropout2d", (2, 3, 4, 4)), ("Dropout1d", (2, 3, 4))])
def test_dropout_eval_is_identity(rng, name, shape):
    check(*make(name, 0.5), randn(rng, *shape), rtol=0, atol=0)


@pytest.mark.parametrize("args,shape", [((), (2, 3, 4, 5)), ((2,), (2, 3, 4, 5)), ((0, -2), (2, 3, 4, 5)),
                                        ((1, 2), (2, 3, 4))])
def test_flatten(rng, args, shape):
    check(*make("Flatten", *args), randn(rng, *shape), rtol=0, atol=0)


@pytest.mark.parametrize("dim,sizes,shape", [(1, (2, 6), (3, 12)), (-1, (2, -1), (2, 3, 8)), (0, (1, 2), (2, 3))])
def test_unflatten(rng, dim, sizes, shape):
    check(*make("Unflatten", dim, sizes), randn(rng, *shape), rtol=0, atol=0)


# -- activations ---------------------------------------------------------------------------------------------
ACTIVATIONS = [
    ("ReLU", (), {}), ("ReLU6", (), {}), ("GELU", (), {}), ("GELU", (), dict(approximate="tanh")), ("SiLU", (), {}),
    ("Hardswish", (), {}), ("Hardsigmoid", (), {}), ("Sigmoid", (), {}), ("Tanh", (), {}), ("LeakyReLU", (), {}),
    ("LeakyReLU", (0.3,), {}), ("ELU", (), {}), ("ELU", (0.5,), {}), ("Softplus", (), {}),
    ("Softplus", (2.0, 1.0), {}), ("Mish", (), {}), ("Hardtanh", (-0.5, 2.0), {}), ("PReLU", (), {}),
    ("PReLU", (3,), {}), ("Softmax", (1,), {}), ("Softmax", (-1,), {}), ("LogSoftmax", (1,), {}),
    ("LogSoftmax", (-1,), {}), ("ReLU", (True,), {}),
]


@pytest.mark.parametrize("name,args,kwargs", ACTIVATIONS, ids=[f"{n}{a}{k}" for n, a, k in ACTIVATIONS])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3)])
def test_activation(rng, name, args, kwargs, shape):
    x = randn(rng, *shape) * 4  # beyond relu6's 6 and softplus' thresholds too
    check(*make(name, *args, **kwargs), x)


def test_prelu_parameter_count_mismatch(rng):
    t, m = make("PReLU", 4)
    x = randn(rng, 2, 3, 5)
    check_error(lambda: t(torch.from_numpy(x)), lambda: m(tinydl.tensor(x)), same_message=False,
                match="Mismatch of parameter numbers and input channel size")


@pytest.mark.parametrize("name", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape", [(5,), (2, 5), (2, 3, 4), (2, 3, 2, 2)])
def test_softmax_implicit_dim(rng, name, shape):
    with pytest.warns(UserWarning, match="Implicit dimension choice"):  # torch's deprecated legacy dim
        check(*make(name), randn(rng, *shape))


# -- pooling, upsampling -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,kwargs", [((2,), {}), ((3, 2, 1), {}), ((3,), dict(stride=2, ceil_mode=True)),
                                         ((2,), dict(dilation=2)), (((3, 2), (1, 2)), {})])
def test_maxpool2d(rng, args, kwargs):
    check(*make("MaxPool2d", *args, **kwargs), randn(rng, 2, 3, 7, 6))


@pytest.mark.parametrize("args,kwargs", [((2,), {}), ((3, 2, 1), {}), ((3, 2, 1), dict(count_include_pad=False)),
                                         ((3,), dict(stride=2, ceil_mode=True)), ((2,), dict(divisor_override=3))])
def test_avgpool2d(rng, args, kwargs):
    check(*make("AvgPool2d", *args, **kwargs), randn(rng, 2, 3, 7, 6))


@pytest.mark.parametrize("name", ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d"])
@pytest.mark.parametrize("output_size", [1, (2, 3), (3, None), 7])
def test_adaptive_pool2d(rng, name, output_size):
    check(*make(name, output_size), randn(rng, 2, 3, 7, 5))


def test_adaptive_pool_unbatched(rng):
    check(*make("AdaptiveAvgPool2d", (2, 2)), randn(rng, 3, 5, 5))


def test_pool_bad_input(rng):
    t, m = make("MaxPool2d", 2)
    x = randn(rng, 2, 1, 3, 4, 4)
    check_error(lambda: t(torch.from_numpy(x)), lambda: m(tinydl.tensor(x)), same_message=False,
                match="3D or 4D (batch mode) tensor")
    t, m = make("MaxPool2d", 3, padding=2)
    x = randn(rng, 1, 3, 4, 4)
    check_error(lambda: t(torch.from_numpy(x)), lambda: m(tinydl.tensor(x)),
                match="pad should be at most half of effective kernel size")


@pytest.mark.parametrize("kwargs,shape", [
    (dict(scale_factor=2), (1, 2, 3, 4)), (dict(size=(5, 7)), (1, 2, 3, 4)), (dict(size=5), (2, 2, 3)),
    (dict(scale_factor=2, mode="bilinear"), (1, 2, 3, 4)),
    (dict(scale_factor=2, mode="bilinear", align_corners=True), (1, 2, 3, 4)),
    (dict(size=(5, 3), mode="bilinear", align_corners=False), (1, 2, 4, 6)),
    (dict(scale_factor=1.5, mode="linear"), (1, 2, 4)),
])
def test_upsample(rng, kwargs, shape):
    check(*make("Upsample", **kwargs), randn(rng, *shape))


# -- attention --------------------------------------------------------------------------------------------
E, H, L, S, N = 8, 2, 5, 6, 2


def _qkv(rng, batch_first, kdim=E, vdim=E, unbatched=False):
    def seq(n, d):
        if unbatched:
            return randn(rng, n, d)
        return randn(rng, N, n, d) if batch_first else randn(rng, n, N, d)
    return seq(L, E), seq(S, kdim), seq(S, vdim)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_mha_basic(rng, batch_first, need_weights, average):
    t, m = make("MultiheadAttention", E, H, batch_first=batch_first)
    out, w = check(t, m, *_qkv(rng, batch_first), need_weights=need_weights, average_attn_weights=average)[0]
    if need_weights:
        assert w.shape == ((N, L, S) if average else (N, H, L, S))
    else:
        assert w is None


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_kdim_vdim(rng, batch_first):
    t, m = make("MultiheadAttention", E, H, kdim=4, vdim=6, batch_first=batch_first)
    assert [k for k in m.state_dict()] == [k for k in t.state_dict()]
    assert "q_proj_weight" in m.state_dict() and "in_proj_weight" not in m.state_dict()
    check(t, m, *_qkv(rng, batch_first, kdim=4, vdim=6))


def test_mha_no_bias_unbatched(rng):
    check(*make("MultiheadAttention", E, H, bias=False), *_qkv(rng, False, unbatched=True))


def _key_padding(rng, dtype):
    pad = np.zeros((N, S), bool)
    pad[0, -2:] = True  # the first sequence's last two keys are padding
    pad[1, 0] = True
    if dtype == "bool":
        return pad
    return np.where(pad, -np.inf, rng.uniform(-1, 1, (N, S))).astype(np.float32)  # float: added to the scores


@pytest.mark.parametrize("mask_dtype", ["bool", "float"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_key_padding_mask(rng, mask_dtype, batch_first):
    check(*make("MultiheadAttention", E, H, batch_first=batch_first), *_qkv(rng, batch_first),
          key_padding_mask=_key_padding(rng, mask_dtype))


@pytest.mark.parametrize("mask_dtype", ["bool", "float"])
@pytest.mark.parametrize("mask_rank", [2, 3])
def test_mha_attn_mask(rng, mask_dtype, mask_rank):
    shape = (L, S) if mask_rank == 2 else (N * H, L, S)
    bad = rng.random(shape) < 0.3
    bad[..., 0] = False  # every query keeps at least one key (a fully masked row is NaN in torch too)
    mask = bad if mask_dtype == "bool" else np.where(bad, -np.inf, rng.uniform(-2, 2, shape)).astype(np.float32)
    check(*make("MultiheadAttention", E, H), *_qkv(rng, False), attn_mask=mask, average_attn_weights=False)


def test_mha_both_masks(rng):
    causal = np.triu(np.ones((L, S), bool), 1)
    check(*make("MultiheadAttention", E, H, batch_first=True), *_qkv(rng, True), attn_mask=causal,
          key_padding_mask=_key_padding(rng, "bool"))


def test_mha_bad_input(rng):
    t, m = make("MultiheadAttention", E, H)
    q = randn(rng, L, N, 6)
    check_error(lambda: t(*(torch.from_numpy(q),) * 3), lambda: m(*(tinydl.tensor(q),) * 3), AssertionError,
                match="was expecting embedding dimension of 8, but got 6")
    check_error(lambda: tnn.MultiheadAttention(8, 3), lambda: nn.MultiheadAttention(8, 3), AssertionError,
                match="embed_dim must be divisible by num_heads")


# -- transformer encoder ---------------------------------------------------------------------------------------
D_MODEL, FF = 8, 16


def _src(rng, batch_first):
    return randn(rng, N, L, D_MODEL) if batch_first else randn(rng, L, N, D_MODEL)


def _src_padding():
    pad = np.zeros((N, L), bool)
    pad[0, -2:] = True
    return pad


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder_layer(rng, norm_first, activation, batch_first):
    t, m = make("TransformerEncoderLayer", D_MODEL, H, FF, activation=activation, norm_first=norm_first,
                batch_first=batch_first)
    check(t, m, _src(rng, batch_first))


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_layer_masks(rng, norm_first):
    t, m = make("TransformerEncoderLayer", D_MODEL, H, FF, norm_first=norm_first, batch_first=True)
    causal = tnn.Transformer.generate_square_subsequent_mask(L).numpy()  # float: 0 / -inf
    check(t, m, _src(rng, True), src_mask=causal)
    check(t, m, _src(rng, True), src_key_padding_mask=_src_padding())
    check(t, m, _src(rng, True), src_mask=np.triu(np.ones((L, L), bool), 1), src_key_padding_mask=_src_padding())


def _encoder(norm_first, batch_first, enable_nested_tensor=True):
    layer = lambda lib: lib.TransformerEncoderLayer(D_MODEL, H, FF, activation="gelu",  # noqa: E731
                                                    norm_first=norm_first, batch_first=batch_first)
    t = tnn.TransformerEncoder(layer(tnn), 2, norm=tnn.LayerNorm(D_MODEL), enable_nested_tensor=enable_nested_tensor)
    m = nn.TransformerEncoder(layer(nn), 2, norm=nn.LayerNorm(D_MODEL), enable_nested_tensor=enable_nested_tensor)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in t.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    t.eval()
    m.eval()
    assert list(m.state_dict()) == list(t.state_dict())
    m.load_state_dict(t.state_dict())
    return t, m


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder(rng, norm_first, batch_first):
    t, m = _encoder(norm_first, batch_first)
    check(t, m, _src(rng, batch_first))
    causal = tnn.Transformer.generate_square_subsequent_mask(L).numpy()
    check(t, m, _src(rng, batch_first), mask=causal)
    check(t, m, _src(rng, batch_first), mask=causal, is_causal=True)


def test_transformer_encoder_padding_mask_without_nested_tensors(rng):
    # enable_nested_tensor=False: torch computes every position (padded ones too), so all of them compare
    t, m = _encoder(False, True, enable_nested_tensor=False)
    check(t, m, _src(rng, True), src_key_padding_mask=_src_padding())


def test_transformer_encoder_padding_mask_nested_fast_path(rng):
    # torch's default (enable_nested_tensor=True, batch_first, eval, no grad) packs the batch into a nested tensor
    # that drops padded positions and pads the output with zeros there (then applies the final norm); tinydl computes padded positions like the
    # slow path. The unpadded positions must agree; the padded ones are torch's zeros vs real values.
    t, m = _encoder(False, True)
    x, pad = _src(rng, True), _src_padding()
    with torch.no_grad():
        expected = t(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(pad)).numpy()
    # the fast path really ran (else this test checks nothing new): padded rows are the final norm applied to 0
    assert np.allclose(expected[pad], t.norm.bias.detach().numpy(), atol=1e-6)
    got = m(tinydl.tensor(x), src_key_padding_mask=tinydl.tensor(pad)).numpy()
    assert_close(got[~pad], expected[~pad])


@pytest.mark.parametrize("lo, hi", [(2.0, 1.0), (1.0, 1.0)])
def test_hardtanh_bounds_checked_as_torch(lo, hi):
    """F.hardtanh raises for min_val > max_val (equal bounds are allowed); nn.Hardtanh needs max_val > min_val."""
    import tinydl.nn.functional as F
    import torch.nn.functional as TF
    x = np.array([-3.0, 0.5, 3.0], np.float32)
    if lo > hi:
        check_error(lambda: TF.hardtanh(torch.tensor(x), lo, hi), lambda: F.hardtanh(tinydl.tensor(x), lo, hi),
                    exc=ValueError)
    else:
        np.testing.assert_array_equal(F.hardtanh(tinydl.tensor(x), lo, hi).numpy(),
                                      TF.hardtanh(torch.tensor(x), lo, hi).numpy())
    check_error(lambda: torch.nn.Hardtanh(lo, hi), lambda: tinydl.nn.Hardtanh(lo, hi), exc=AssertionError)


@pytest.mark.parametrize("name,shape", [("InstanceNorm1d", (2, 3, 7)), ("InstanceNorm1d", (3, 7)),
                                        ("InstanceNorm2d", (2, 3, 5, 6)), ("InstanceNorm2d", (3, 5, 6)),
                                        ("InstanceNorm3d", (2, 3, 4, 4, 3))])
@pytest.mark.parametrize("kwargs", [{}, dict(affine=True), dict(track_running_stats=True),
                                    dict(affine=True, track_running_stats=True)])
def test_instance_norm(rng, name, shape, kwargs):
    """Each (sample, channel) over its own spatial values (unbatched inputs as a batch of one); with running
    statistics tracked, eval mode uses those."""
    check(*make(name, 3, **kwargs), randn(rng, *shape))


def test_instance_norm_and_batch_statistics_convert_on_both_paths(rng):
    seq = tnn.Sequential(tnn.InstanceNorm2d(3, affine=True), tnn.BatchNorm2d(3, track_running_stats=False)).eval()

    class Loop(tnn.Module):  # fx cannot trace a loop over a size: torch.export (aten.instance_norm, no_stats BN)
        def __init__(self):
            super().__init__()
            self.seq = seq

        def forward(self, x):
            for _ in range(x.shape[0]):
                pass
            return self.seq(x)
    x = randn(rng, 2, 3, 5, 6)
    for m, example in ((seq, None), (Loop().eval(), (torch.from_numpy(x),))):
        tm = tinydl.from_torch(m, example_inputs=example)
        assert tm.conversion_path == ("fx" if example is None else "torch.export")
        assert_close(tm(tinydl.tensor(x)), m(torch.from_numpy(x)).detach(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="Expected more than 1 spatial element when training"):
        tinydl.nn.functional.instance_norm(tinydl.tensor(randn(rng, 2, 3, 1)))


@pytest.mark.parametrize("name,args,kwargs", [
    ("MaxPool1d", (3,), {}), ("MaxPool1d", (3, 2, 1), dict(ceil_mode=True)), ("MaxPool1d", (2,), dict(dilation=2)),
    ("AvgPool1d", (3,), {}), ("AvgPool1d", (2,), dict(padding=1, ceil_mode=True, count_include_pad=False)),
    ("AdaptiveAvgPool1d", (4,), {}), ("AdaptiveMaxPool1d", (3,), {}), ("AdaptiveAvgPool1d", (1,), {}),
])
@pytest.mark.parametrize("shape", [(2, 3, 11), (3, 11)])
def test_pool_1d(rng, name, args, kwargs, shape):
    """The 1-d pools (the 2-d pools over a [N, C, 1, L] view), batched and unbatched; converted through fx too."""
    t, m = make(name, *args, **kwargs)
    x = randn(rng, *shape)
    check(t, m, x, rtol=1e-6, atol=1e-6)
    assert_close(tinydl.from_torch(t)(tinydl.tensor(x)), t(torch.from_numpy(x)), rtol=1e-6, atol=1e-6)


def test_pool_1d_errors_as_torch(rng):
    x = randn(rng, 2, 3, 4, 5)
    import tinydl.nn.functional as F
    check_error(lambda: tnn.functional.max_pool1d(torch.from_numpy(x), 2), lambda: F.max_pool1d(tinydl.tensor(x), 2))
    check_error(lambda: tnn.functional.avg_pool1d(torch.from_numpy(x), 2), lambda: F.avg_pool1d(tinydl.tensor(x), 2))
    check_error(lambda: tnn.functional.adaptive_max_pool1d(torch.from_numpy(x), 2),
                lambda: F.adaptive_max_pool1d(tinydl.tensor(x), 2))
    x3 = randn(rng, 2, 3, 4)
    check_error(lambda: tnn.functional.max_pool1d(torch.from_numpy(x3), 0), lambda: F.max_pool1d(tinydl.tensor(x3), 0))


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, padding=1), dict(kernel_size=(3, 1, 1), stride=(2, 1, 1)),
    dict(kernel_size=(1, 3, 3), padding=(0, 1, 1), groups=2), dict(kernel_size=3, dilation=(2, 1, 1), padding=(2, 1, 1)),
    dict(kernel_size=2, stride=2, bias=False), dict(kernel_size=3, padding=1, padding_mode="circular"),
    dict(kernel_size=3, padding="same"),
])
@pytest.mark.parametrize("shape", [(2, 4, 5, 7, 6), (4, 5, 7, 6)])
def test_conv3d(rng, kwargs, shape):
    """A 3-d conv as one 2-d conv per kernel depth over the depth slices folded into the batch, added up."""
    t, m = make("Conv3d", 4, 6, **kwargs)
    x = randn(rng, *shape)
    check(t, m, x)
    assert_close(tinydl.from_torch(t)(tinydl.tensor(x)), t(torch.from_numpy(x)).detach(), rtol=1e-4, atol=1e-5)


def test_conv3d_errors_as_torch(rng):
    import tinydl.nn.functional as F
    x, w = randn(rng, 1, 4, 3, 3, 3), randn(rng, 6, 4, 5, 1, 1)
    check_error(lambda: tnn.functional.conv3d(torch.from_numpy(x), torch.from_numpy(w)),
                lambda: F.conv3d(tinydl.tensor(x), tinydl.tensor(w)))
    check_error(lambda: tnn.functional.conv3d(torch.from_numpy(x[0, 0]), torch.from_numpy(w)),
                lambda: F.conv3d(tinydl.tensor(x[0, 0]), tinydl.tensor(w)))


@pytest.mark.parametrize("name,args,kwargs", [
    ("MaxPool3d", (3, 2, 1), {}), ("MaxPool3d", ((2, 3, 3),), dict(ceil_mode=True)), ("MaxPool3d", (2,), dict(dilation=(2, 1, 1))),
    ("AvgPool3d", (3, 2, 1), {}), ("AvgPool3d", (3, 2, 1), dict(count_include_pad=False)),
    ("AvgPool3d", (2,), dict(ceil_mode=True)), ("AvgPool3d", (3, 1, 1), dict(divisor_override=5)),
    ("AdaptiveAvgPool3d", ((2, 3, 4),), {}), ("AdaptiveAvgPool3d", (1,), {}), ("AdaptiveMaxPool3d", ((3, None, 2),), {}),
])
@pytest.mark.parametrize("shape", [(2, 3, 7, 8, 6), (3, 7, 8, 6)])
def test_pool_3d(rng, name, args, kwargs, shape):
    """The 3-d pools, separable: over H x W with depth folded into the channels, then over D (an average's divisor
    a product of per-dim counts; an override after plain sums); batched and unbatched; converted through fx."""
    t, m = make(name, *args, **kwargs)
    x = randn(rng, *shape)
    check(t, m, x, rtol=1e-5, atol=1e-6)
    assert_close(tinydl.from_torch(t)(tinydl.tensor(x)), t(torch.from_numpy(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=4, stride=2, padding=1),
                                    dict(kernel_size=3, stride=2, output_padding=1, groups=2),
                                    dict(kernel_size=3, dilation=2, bias=False)])
@pytest.mark.parametrize("shape", [(2, 4, 9), (4, 9)])
def test_conv_transpose1d(rng, kwargs, shape):
    t, m = make("ConvTranspose1d", 4, 6, **kwargs)
    x = randn(rng, *shape)
    check(t, m, x)
    assert_close(tinydl.from_torch(t)(tinydl.tensor(x)), t(torch.from_numpy(x)).detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=(2, 4, 3), stride=(2, 2, 1), padding=(1, 1, 0)),
                                    dict(kernel_size=3, stride=(3, 2, 2), output_padding=(2, 1, 0), groups=2),
                                    dict(kernel_size=(3, 2, 2), dilation=(2, 1, 2), padding=(2, 0, 1), bias=False)])
@pytest.mark.parametrize("shape", [(2, 4, 3, 5, 4), (4, 3, 5, 4)])
def test_conv_transpose3d(rng, kwargs, shape):
    """A 3-d transposed conv as one 2-d transposed conv per kernel depth over the depth slices, each spread along
    depth by the stride, shifted by its kernel depth, and added up (then the depth padding cropped)."""
    t, m = make("ConvTranspose3d", 4, 6, **kwargs)
    x = randn(rng, *shape)
    check(t, m, x)
    assert_close(tinydl.from_torch(t)(tinydl.tensor(x)), t(torch.from_numpy(x)).detach(), rtol=1e-4, atol=1e-5)


def test_conv_transpose3d_export_and_aten(rng):
    from tinydl.interop import registry

    class Up(tnn.Module):
        def __init__(self):
            super().__init__()
            self.up = tnn.ConvTranspose3d(3, 2, (3, 2, 2), stride=2, padding=1, output_padding=1)

        def forward(self, x):
            for _ in range(x.shape[0]):  # fx cannot trace this loop; torch.export can
                pass
            return self.up(x).relu()

    t = Up().eval()
    x = randn(rng, 2, 3, 3, 4, 5)
    tm = tinydl.from_torch(t, example_inputs=(torch.from_numpy(x),))
    assert tm.conversion_path == "torch.export"
    with torch.no_grad():
        assert_close(tm(tinydl.tensor(x)), t(torch.from_numpy(x)), rtol=1e-4, atol=1e-5)
    w, b = randn(rng, 3, 4, 2, 3, 2), randn(rng, 4)
    for name, fn in (("aten.conv_transpose3d.input", torch.ops.aten.conv_transpose3d.input),):
        out = registry.lookup(name)(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(b), [1, 2, 1], [0, 1, 1])
        assert_close(out, fn(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), [1, 2, 1], [0, 1, 1]),
                     rtol=1e-4, atol=1e-5)
    conv = torch.ops.aten.convolution.default
    args = ([2, 1, 1], [1, 0, 0], [1, 1, 1], True, [1, 0, 0], 1)
    out = registry.lookup("aten.convolution.default")(tinydl.tensor(x), tinydl.tensor(w), tinydl.tensor(b), *args)
    assert_close(out, conv(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), *args), rtol=1e-4, atol=1e-5)


def test_conv_transpose3d_errors_as_torch(rng):
    import tinydl.nn.functional as F
    x, w = randn(rng, 1, 4, 3, 3, 3), randn(rng, 4, 2, 2, 2, 2)
    tf = tnn.functional.conv_transpose3d
    pairs = [(torch.from_numpy(x[0, 0]), torch.from_numpy(w), {}),                 # 3-d input
             (torch.from_numpy(x[:, :3]), torch.from_numpy(w), {}),                # channels
             (torch.from_numpy(x), torch.from_numpy(w), dict(groups=3)),           # groups
             (torch.from_numpy(x), torch.from_numpy(w), dict(output_padding=1)),   # output_padding >= stride
             (torch.from_numpy(x), torch.from_numpy(w), dict(bias=torch.zeros(3)))]
    for tx, tw, kw in pairs:
        dkw = {k: tinydl.tensor(v.numpy()) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
        check_error(lambda: tf(tx, tw, **kw), lambda: F.conv_transpose3d(tinydl.tensor(tx.numpy()),
                                                                         tinydl.tensor(tw.numpy()), **dkw))
    check_error(lambda: tf(torch.from_numpy(x), torch.from_numpy(w[:, :, 0])),  # a 4-d weight (torch words it oddly)
                lambda: F.conv_transpose3d(tinydl.tensor(x), tinydl.tensor(w[:, :, 0])), same_message=False)
    with pytest.raises(RuntimeError, match="Expected 5-dimensional weight for 5-dimensional input"):
        F.conv_transpose3d(tinydl.tensor(x), tinydl.tensor(w[:, :, 0]))
    for nd in (1, 2):  # the same checks serve every transposed conv
        shape = (1, 4) + (3,) * nd
        weight = (4, 2) + (2,) * nd
        check_error(lambda: getattr(tnn.functional, f"conv_transpose{nd}d")(torch.zeros(shape), torch.zeros(weight),
                                                                          groups=3),
                    lambda: getattr(F, f"conv_transpose{nd}d")(tinydl.zeros(*shape), tinydl.zeros(*weight), groups=3))
