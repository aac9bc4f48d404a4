"""Fusion rules (tinydl/schedule.py): every rule's kernel count, and the fused result equals torch."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
from tinydl import schedule
import tinydl.nn.functional as F
from tinydl.debug import count_kernels
from tinydl.testing import assert_close


def _rand(rng, *shape, positive=False):
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


def _pair(a):
    """The same data as a tinydl tensor (realized) and a torch tensor."""
    return tinydl.tensor(a), torch.from_numpy(a.copy())


def _kernels(*outs):
    """Realize outs together; return (kernel count, kernel names)."""
    with count_kernels() as c:
        tinydl.realize(*outs)
    return c.count, c.names


def _bn_params(rng, C):
    """Inference batch-norm parameters (running_mean, running_var, weight, bias) as tinydl/torch pairs."""
    return [_pair(_rand(rng, C)), _pair(_rand(rng, C, positive=True)), _pair(_rand(rng, C)), _pair(_rand(rng, C))]


def _bn(x, p, lib):
    i = 0 if lib == "tinydl" else 1
    fn = F.batch_norm if lib == "tinydl" else TF.batch_norm
    return fn(x, p[0][i], p[1][i], p[2][i], p[3][i], training=False, eps=1e-5)


# -- elementwise chains -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4, 5), (1, 1), (4, 0, 3)])
def test_six_op_chain_is_one_kernel(rng, shape):
    a = _rand(rng, *shape)
    x, tx = _pair(a)
    y = (((x * 1.5 + 0.25).exp() - 1.0).relu() * 0.5).sigmoid()
    ty = (((tx * 1.5 + 0.25).exp() - 1.0).relu() * 0.5).sigmoid()
    n, names = _kernels(y)
    # a zero-size output needs no kernel at all
    assert n == (0 if 0 in shape else 1), names
    if n:
        assert names[0].startswith("mul+add+exp+sub+relu+mul+sigmoid"), names
    assert_close(y, ty)


@pytest.mark.parametrize("sa,sb,sc", [((4, 5), (5,), (4, 1)), ((2, 3, 4), (1, 3, 1), (4,)),
                                      ((1, 6), (5, 1), ()), ((3, 1, 4), (2, 1), (1, 1, 1))])
def test_broadcast_chain_with_scalars_is_one_kernel(rng, sa, sb, sc):
    (a, ta), (b, tb), (c, tc) = _pair(_rand(rng, *sa)), _pair(_rand(rng, *sb)), _pair(_rand(rng, *sc))
    y = ((a + b) * 2.0 - c).tanh() / 3.0 + (b * c).abs()
    ty = ((ta + tb) * 2.0 - tc).tanh() / 3.0 + (tb * tc).abs()
    n, names = _kernels(y)
    assert n == 1, names
    assert_close(y, ty)


# -- conv epilogues ---------------------------------------------------------------------------------------
# C_out 4 runs the direct conv kernel, 8 and 12 the implicit GEMM (DIRECT_CONV_MAX_COUT_PER_GROUP = 8)
CONV_CASES = [(2, 3, 4, 8, 8, 3, 1, 1), (1, 4, 8, 7, 9, 3, 2, 1), (3, 2, 12, 5, 5, 1, 1, 0)]


@pytest.mark.parametrize("N,C,K,H,W,k,s,p", CONV_CASES)
def test_conv_bias_relu_is_one_kernel(rng, N, C, K, H, W, k, s, p):
    (x, tx), (w, tw), (b, tb) = _pair(_rand(rng, N, C, H, W)), _pair(_rand(rng, K, C, k, k)), _pair(_rand(rng, K))
    y = F.relu(F.conv2d(x, w, b, stride=s, padding=p))
    ty = TF.relu(TF.conv2d(tx, tw, tb, stride=s, padding=p))
    n, names = _kernels(y)
    assert n == 1, names
    assert "conv2d+add+relu" in names[0]
    assert_close(y, ty)


@pytest.mark.parametrize("N,C,K,H,W,k,s,p", CONV_CASES)
def test_conv_bias_batchnorm_relu_is_one_kernel(rng, N, C, K, H, W, k, s, p):
    (x, tx), (w, tw), (b, tb) = _pair(_rand(rng, N, C, H, W)), _pair(_rand(rng, K, C, k, k)), _pair(_rand(rng, K))
    bn = _bn_params(rng, K)
    y = F.relu(_bn(F.conv2d(x, w, b, stride=s, padding=p), bn, "tinydl"))
    ty = TF.relu(_bn(TF.conv2d(tx, tw, tb, stride=s, padding=p), bn, "torch"))
    n, names = _kernels(y)
    assert n == 1, names
    assert names[0].startswith("conv2d+"), names
    assert_close(y, ty)


@pytest.mark.parametrize("N,C,K,H,W,k,s,p", CONV_CASES)
def test_conv_batchnorm_residual_relu_is_one_kernel(rng, N, C, K, H, W, k, s, p):
    (x, tx), (w, tw) = _pair(_rand(rng, N, C, H, W)), _pair(_rand(rng, K, C, k, k))
    OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    r, tr = _pair(_rand(rng, N, K, OH, OW))
    bn = _bn_params(rng, K)
    y = F.relu(_bn(F.conv2d(x, w, None, stride=s, padding=p), bn, "tinydl") + r)
    ty = TF.relu(_bn(TF.conv2d(tx, tw, None, stride=s, padding=p), bn, "torch") + tr)
    n, names = _kernels(y)
    assert n == 1, names
    assert_close(y, ty)


def _basic_block(lib, x, w1, bn1, w2, bn2, wsc=None, bnsc=None, stride=1):
    i = 0 if lib == "tinydl" else 1
    conv, relu = (F.conv2d, F.relu) if lib == "tinydl" else (TF.conv2d, TF.relu)
    h = relu(_bn(conv(x, w1[i], None, stride=stride, padding=1), bn1, lib))
    h = _bn(conv(h, w2[i], None, padding=1), bn2, lib)
    short = x if wsc is None else _bn(conv(x, wsc[i], None, stride=stride), bnsc, lib)
    return relu(h + short)


@pytest.mark.parametrize("N,C,H,W", [(2, 4, 8, 8), (1, 8, 6, 5), (2, 12, 4, 4)])
def test_resnet_basic_block_is_two_kernels(rng, N, C, H, W):
    x, tx = _pair(_rand(rng, N, C, H, W))
    w1, w2 = _pair(_rand(rng, C, C, 3, 3) * 0.3), _pair(_rand(rng, C, C, 3, 3) * 0.3)
    bn1, bn2 = _bn_params(rng, C), _bn_params(rng, C)
    y = _basic_block("tinydl", x, w1, bn1, w2, bn2)
    ty = _basic_block("torch", tx, w1, bn1, w2, bn2)
    n, names = _kernels(y)
    assert n == 2, names
    assert all(nm.startswith("conv2d+") for nm in names), names
    assert_close(y, ty, rtol=1e-4, atol=1e-4)  # two chained 3x3 convs (K up to 108): fp32 summation order


@pytest.mark.parametrize("N,C,H,W", [(2, 4, 8, 8), (1, 3, 7, 9), (2, 8, 6, 6)])
def test_resnet_downsample_block_is_three_kernels(rng, N, C, H, W):
    K = 2 * C
    x, tx = _pair(_rand(rng, N, C, H, W))
    w1, w2, wsc = _pair(_rand(rng, K, C, 3, 3) * 0.3), _pair(_rand(rng, K, K, 3, 3) * 0.3), _pair(_rand(rng, K, C, 1, 1))
    bn1, bn2, bnsc = _bn_params(rng, K), _bn_params(rng, K), _bn_params(rng, K)
    y = _basic_block("tinydl", x, w1, bn1, w2, bn2, wsc, bnsc, stride=2)
    ty = _basic_block("torch", tx, w1, bn1, w2, bn2, wsc, bnsc, stride=2)
    n, names = _kernels(y)
    assert n == 3, names
    assert all(nm.startswith("conv2d+") for nm in names), names
    assert_close(y, ty, rtol=1e-4, atol=1e-4)  # two chained 3x3 convs (K up to 144): fp32 summation order


# -- matmul / reduce epilogues -----------------------------------------------------------------------------
@pytest.mark.parametrize("lead,IN,OUT", [((3,), 8, 5), ((2, 3), 16, 7), ((1,), 1, 1), ((5,), 33, 65)])
def test_linear_bias_gelu_is_one_kernel(rng, lead, IN, OUT):
    (x, tx), (w, tw), (b, tb) = _pair(_rand(rng, *lead, IN)), _pair(_rand(rng, OUT, IN)), _pair(_rand(rng, OUT))
    y = F.gelu(F.linear(x, w, b))
    ty = TF.gelu(TF.linear(tx, tw, tb))
    n, names = _kernels(y)
    assert n == 1, names
    assert names[0].startswith("matmul+add+gelu"), names
    assert_close(y, ty, atol=1e-4 if IN > 16 else 1e-5)  # K=33: fp32 dot-product summation order


@pytest.mark.parametrize("sa,sb", [((4, 6), (6, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 3)), ((7,), (7, 3))])
def test_matmul_times_scale_is_one_kernel(rng, sa, sb):
    (a, ta), (b, tb) = _pair(_rand(rng, *sa)), _pair(_rand(rng, *sb))
    y = (a @ b) * 0.125
    ty = (ta @ tb) * 0.125
    n, names = _kernels(y)
    assert n == 1, names
    assert names[0].startswith("matmul+mul"), names
    assert_close(y, ty)


@pytest.mark.parametrize("shape,dim,keepdim", [((4, 6), None, False), ((2, 3, 5), 1, False), ((2, 3, 5), (0, 2), True),
                                               ((7,), 0, True), ((1, 9), -1, False)])
def test_mean_is_one_kernel(rng, shape, dim, keepdim):
    x, tx = _pair(_rand(rng, *shape))
    y = x.mean() if dim is None else x.mean(dim, keepdim=keepdim)
    ty = tx.mean() if dim is None else tx.mean(dim, keepdim=keepdim)
    n, names = _kernels(y)
    assert n == 1, names
    assert names[0].startswith("reduce_sum+mul"), names
    assert_close(y, ty)


@pytest.mark.parametrize("op", ["sum", "amax", "amin"])
@pytest.mark.parametrize("shape,dim", [((3, 4, 5), 1), ((6, 2), 0), ((2, 3, 4), (0, 2)), ((5,), 0)])
def test_reduce_without_keepdim_then_elementwise_is_one_kernel(rng, op, shape, dim):
    x, tx = _pair(_rand(rng, *shape))
    y = (getattr(x, op)(dim, keepdim=False) * 0.5).exp() - 1.0
    ty = (getattr(tx, op)(dim, keepdim=False) * 0.5).exp() - 1.0
    n, names = _kernels(y)
    assert n == 1, names
    assert_close(y, ty)


def test_pool_epilogue_is_one_kernel(rng):
    x, tx = _pair(_rand(rng, 2, 3, 8, 8))
    y = F.max_pool2d(x, 2).relu() * 2.0 + 1.0
    ty = TF.max_pool2d(tx, 2).relu() * 2.0 + 1.0
    n, names = _kernels(y)
    assert n == 1, names
    assert_close(y, ty)


def test_epilogue_stops_at_a_broadcast(rng):
    """A consumer with more elements than the heavy op (a broadcast) is not an epilogue: 2 kernels."""
    x, tx = _pair(_rand(rng, 3, 4))
    o, to = _pair(_rand(rng, 2, 3, 1))
    y = x.sum(1, keepdim=True) + o
    ty = tx.sum(1, keepdim=True) + to
    n, names = _kernels(y)
    assert n == 2, names
    assert_close(y, ty)


# -- shared values and views ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 8), (3, 1, 5), (1,)])
def test_node_with_two_consumers_is_materialized_once(rng, shape):
    """A shared value that is more than a short formula over buffers (here: longer than
    schedule.CHEAP_PARAM_OPS ops) is computed once, in a kernel of its own."""
    x, tx = _pair(_rand(rng, *shape))
    y = x
    ty = tx
    for _ in range(schedule.CHEAP_PARAM_OPS + 1):
        y, ty = (y * 0.5).sin(), (ty * 0.5).sin()
    a, b = y + 1.0, y * 2.0
    n, names = _kernels(a, b)
    assert n == 3, names
    assert sorted(nm.split(" ")[0].split("+")[-1] for nm in names) == ["add", "mul", "sin"]
    assert_close(a, ty + 1.0)
    assert_close(b, ty * 2.0)


@pytest.mark.parametrize("shape", [(4, 8), (3, 1, 5)])
def test_cheap_shared_formula_is_recomputed(rng, shape):
    """A short formula over realized buffers read by two consumers is inlined into both (no extra kernel)."""
    x, tx = _pair(_rand(rng, *shape))
    y, ty = x.exp() * 3.0, tx.exp() * 3.0
    a, b = y + 1.0, y * 2.0
    n, names = _kernels(a, b)
    assert n == 2, names
    assert_close(a, ty + 1.0)
    assert_close(b, ty * 2.0)
    assert_close(y, ty)  # the shared node was realized by the same plan: reading it costs no kernel
    with count_kernels() as c:
        y.numpy()
    assert c.count == 0


def test_shared_input_of_two_outputs_in_separate_realizations(rng):
    """Realized one at a time, the unrealized shared node is recomputed inside each consumer."""
    x, tx = _pair(_rand(rng, 5, 3))
    y = x.exp()
    a, b = y + 1.0, y * 2.0
    assert _kernels(a)[0] == 1
    assert _kernels(b)[0] == 1
    assert_close(a, tx.exp() + 1.0)
    assert_close(b, tx.exp() * 2.0)


@pytest.mark.parametrize("view", ["T", "transpose", "permute_batched"])
def test_view_feeding_matmul_costs_no_copy(rng, view):
    if view == "permute_batched":
        (a, ta), (b, tb) = _pair(_rand(rng, 2, 6, 5)), _pair(_rand(rng, 2, 6, 4))
        y, ty = a.transpose(1, 2) @ b, ta.transpose(1, 2) @ tb
    elif view == "T":
        (a, ta), (b, tb) = _pair(_rand(rng, 6, 5)), _pair(_rand(rng, 4, 6))
        y, ty = a.T @ b.T, ta.T @ tb.T
    else:
        (a, ta), (b, tb) = _pair(_rand(rng, 3, 7)), _pair(_rand(rng, 5, 7))
        y, ty = a @ b.transpose(0, 1), ta @ tb.transpose(0, 1)
    n, names = _kernels(y)
    assert n == 1, names
    assert names[0].startswith("matmul"), names
    assert_close(y, ty)


def test_elementwise_prologue_feeding_matmul_is_inlined(rng):
    (a, ta), (b, tb) = _pair(_rand(rng, 4, 6)), _pair(_rand(rng, 6, 3))
    y = (a * 2.0).relu() @ b.tanh()
    ty = (ta * 2.0).relu() @ tb.tanh()
    n, names = _kernels(y)
    assert n == 1, names
    assert_close(y, ty)


@pytest.mark.parametrize("rows,K,N", [(1, 2048, 96), (3, 300, 33), (4, 4096, 40)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("columns", [None, 2])
def test_norm_statistic_inside_the_gemv_equals_torch(rng, use_options, rows, K, N, dtype, columns):
    """stats_in_gemvs: an RMSNorm's mean square computed by the gemv's own workgroups: one kernel, torch's values,
    and the same values as with the reduce kernel it replaces (also with 2 output columns a thread)."""
    if dtype == "float16" and not tinydl.runtime.get_runtime().has_f16:
        pytest.skip("adapter lacks shader-f16")
    x, w, W = (_rand(rng, rows, K) * 4).astype(dtype), _rand(rng, K).astype(dtype), \
        (_rand(rng, N, K) / np.sqrt(K)).astype(dtype)

    def rms_linear(lib, x, w, W):
        h = x.float()
        h = h * lib.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        return lib.nn.functional.linear(w * h.to(x.dtype), W)
    ref = rms_linear(torch, *map(torch.from_numpy, (x, w, W)))
    got = {}
    for on in (True, False):
        use_options(stats_in_gemv=on, gemv_columns=columns)
        y = rms_linear(tinydl, *map(tinydl.tensor, (x, w, W)))
        n, names = _kernels(y)
        assert n == (1 if on else 2), names
        got[on] = y.numpy()
        assert_close(y, ref, rtol=1e-2 if dtype == "float16" else 1e-4, atol=1e-2 if dtype == "float16" else 1e-5)
    np.testing.assert_allclose(got[True], got[False], rtol=1e-5, atol=1e-6)


# -- dead / no-op nodes --------------------------------------------------------------------------------------
def test_noop_views_return_the_original_node(rng):
    x = tinydl.tensor(_rand(rng, 4, 6))
    assert x.reshape(24).reshape(2, 12).reshape(4, 6).node is x.node
    assert x.T.T.node is x.node
    assert x.permute(1, 0).permute(1, 0).node is x.node
    assert x[:].node is x.node
    assert x[:, :].node is x.node
    assert x[...].node is x.node
    assert x.expand(4, 6).node is x.node
    assert x.expand(-1, 6).node is x.node
    assert x.reshape(4, 6).node is x.node
    assert x.contiguous().node is x.node
    # a chain of reshapes is one reshape of the original
    r = x.reshape(2, 12).reshape(3, 8).reshape(24)
    assert r.node.srcs == (x.node,)


@pytest.mark.parametrize("build", [
    lambda x: x.reshape(2, 12).reshape(24).reshape(4, 6),
    lambda x: x.T.T,
    lambda x: x[:],
    lambda x: x.expand(4, 6),
    lambda x: x.permute(1, 0).contiguous().permute(1, 0),
    lambda x: x.unsqueeze(0).squeeze(0),
], ids=["reshape3", "TT", "slice_all", "expand_same", "permute2", "unsqueeze_squeeze"])
def test_noop_views_add_no_kernels(rng, build):
    a = _rand(rng, 4, 6)
    x, tx = _pair(a)
    y = build(x).exp() * 2.0
    n, names = _kernels(y)
    assert n == 1, names
    assert_close(y, tx.exp() * 2.0)


@pytest.mark.parametrize("shape", [(24,), (2, 3, 4), (1, 24, 1), (6, -1)])
def test_reshape_of_realized_tensor_dispatches_nothing(rng, shape):
    a = _rand(rng, 4, 6)
    x = tinydl.tensor(a).exp().realize()
    y = x.reshape(shape)
    n, names = _kernels(y)
    assert n == 0, names
    assert y.node.buffer is x.node.buffer  # the same bytes, shared
    assert_close(y, torch.from_numpy(a).exp().reshape(shape))


# -- laziness never changes results --------------------------------------------------------------------------
def _small_cnn(lib, x, p):
    i = 0 if lib == "tinydl" else 1
    nnf = F if lib == "tinydl" else TF
    h = nnf.relu(_bn(nnf.conv2d(x, p["w1"][i], p["b1"][i], padding=1), p["bn1"], lib))
    h = nnf.max_pool2d(h, 2)
    r = h
    h = nnf.relu(_bn(nnf.conv2d(h, p["w2"][i], None, padding=1), p["bn2"], lib))
    h = nnf.conv2d(h, p["w3"][i], p["b3"][i], padding=1) + r
    h = nnf.adaptive_avg_pool2d(nnf.relu(h), 1).flatten(1)
    return nnf.softmax(nnf.linear(h, p["fc"][i], p["fcb"][i]), -1)


def _cnn_params(rng):
    return {"w1": _pair(_rand(rng, 8, 3, 3, 3) * 0.3), "b1": _pair(_rand(rng, 8)), "bn1": _bn_params(rng, 8),
            "w2": _pair(_rand(rng, 8, 8, 3, 3) * 0.2), "bn2": _bn_params(rng, 8),
            "w3": _pair(_rand(rng, 8, 8, 3, 3) * 0.2), "b3": _pair(_rand(rng, 8)),
            "fc": _pair(_rand(rng, 5, 8)), "fcb": _pair(_rand(rng, 5))}


def _transformer_block(lib, x, p, heads=2):
    i = 0 if lib == "tinydl" else 1
    nnf = F if lib == "tinydl" else TF
    B, L, D = x.shape
    hd = D // heads
    h = nnf.layer_norm(x, (D,), p["g1"][i], p["be1"][i])
    qkv = nnf.linear(h, p["wqkv"][i], p["bqkv"][i])
    q, k, v = (t.reshape(B, L, heads, hd).transpose(1, 2) for t in qkv.split(D, -1))
    a = nnf.scaled_dot_product_attention(q, k, v, is_causal=True)
    x = x + nnf.linear(a.transpose(1, 2).reshape(B, L, D), p["wo"][i], p["bo"][i])
    h = nnf.layer_norm(x, (D,), p["g2"][i], p["be2"][i])
    h = nnf.linear(nnf.gelu(nnf.linear(h, p["w1"][i], p["b1"][i])), p["w2"][i], p["b2"][i])
    return x + h


def _transformer_params(rng, D=8, Hd=16):
    return {"g1": _pair(_rand(rng, D)), "be1": _pair(_rand(rng, D)), "wqkv": _pair(_rand(rng, 3 * D, D) * 0.3),
            "bqkv": _pair(_rand(rng, 3 * D)), "wo": _pair(_rand(rng, D, D) * 0.3), "bo": _pair(_rand(rng, D)),
            "g2": _pair(_rand(rng, D)), "be2": _pair(_rand(rng, D)), "w1": _pair(_rand(rng, Hd, D) * 0.3),
            "b1": _pair(_rand(rng, Hd)), "w2": _pair(_rand(rng, D, Hd) * 0.3), "b2": _pair(_rand(rng, D))}


@pytest.mark.parametrize("model", ["cnn", "transformer"])
def test_lazy_equals_eager_equals_torch(rng, model):
    if model == "cnn":
        p, a, fn = _cnn_params(rng), _rand(rng, 2, 3, 8, 8), _small_cnn
    else:
        p, a, fn = _transformer_params(rng), _rand(rng, 2, 5, 8), _transformer_block
    x, tx = _pair(a)
    with count_kernels() as lazy_count:
        lazy = fn("tinydl", x, p).numpy()
    with count_kernels() as eager_count:
        with tinydl.debug.eager():
            eager_t = fn("tinydl", x, p)
            assert eager_t.node.realized  # eager mode realized the result as soon as it was built
            eager = eager_t.numpy()
    ref = fn("torch", tx, p)
    # layer_norm / softmax / chained matmuls: fp32 summation order differs from torch's
    assert_close(lazy, ref, rtol=1e-4, atol=1e-4)
    assert_close(eager, ref, rtol=1e-4, atol=1e-4)
    # lazy and eager run the same arithmetic in the same order up to fusion: agree more tightly
    assert_close(lazy, eager, rtol=1e-5, atol=1e-5)
    assert lazy.shape == tuple(ref.shape) and lazy.dtype == np.float32
    assert eager_count.count > lazy_count.count, (eager_count.names, lazy_count.names)


def test_eager_mode_realizes_every_op(rng):
    x = tinydl.tensor(_rand(rng, 3, 4))
    with tinydl.debug.eager():
        with count_kernels() as c:
            y = ((x * 2.0).exp() + 1.0).relu()
        assert y.node.realized
    assert c.count == 4, c.names
    assert_close(y, ((torch.from_numpy(x.numpy()) * 2.0).exp() + 1.0).relu())


# -- TINYDL_DEBUG ------------------------------------------------------------------------------------------
_DEBUG_SCRIPT = r"""
import numpy as np, tinydl, tinydl.nn.functional as F
rng = np.random.default_rng(0)
x = tinydl.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
w = tinydl.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
b = tinydl.tensor(rng.standard_normal(4).astype(np.float32))
print("== conv", flush=True)
F.relu(F.conv2d(x, w, b, padding=1)).numpy()
print("== chain", flush=True)
(((x * 1.5 + 0.25).exp() - 1.0).relu() * 0.5).sigmoid().numpy()
print("== end", flush=True)
"""


def _run_debug(level):
    env = dict(os.environ, TINYDL_DEBUG=str(level))
    res = subprocess.run([sys.executable, "-c", _DEBUG_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    conv_part = out.split("== conv\n")[1].split("== chain\n")[0]
    chain_part = out.split("== chain\n")[1].split("== end\n")[0]
    return conv_part, chain_part


def _kernel_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("tinydl kernel:")]


def test_debug_level1_prints_one_line_per_kernel():
    conv_part, chain_part = _run_debug(1)
    conv_lines, chain_lines = _kernel_lines(conv_part), _kernel_lines(chain_part)
    assert len(conv_lines) == 1 and "conv2d+add+relu" in conv_lines[0], conv_part
    assert "2x4x8x8" in conv_lines[0]
    assert len(chain_lines) == 1 and "mul+add+exp+sub+relu+mul+sigmoid" in chain_lines[0], chain_part
    assert "@compute" not in conv_part + chain_part  # level 1: names only


def test_debug_level2_prints_wgsl():
    conv_part, chain_part = _run_debug(2)
    assert len(_kernel_lines(conv_part)) == 1 and len(_kernel_lines(chain_part)) == 1
    for part in (conv_part, chain_part):
        assert part.count("@compute") == 1, part
        assert "fn main(" in part


def test_debug_off_prints_nothing():
    env = {k: v for k, v in os.environ.items() if k != "TINYDL_DEBUG"}
    res = subprocess.run([sys.executable, "-c", _DEBUG_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "tinydl kernel:" not in res.stdout
