"""tinydl.nn.functional: torch.nn.functional's inference ops, built from Tensor ops (the math lives once); the
norms (functional_norms.py), pools (functional_pools.py), the activations beyond the op table's
(functional_activations.py), distances (functional_distances.py), unfold / fold (functional_fold.py) and grid
sampling (grid_sample.py) live beside it and are re-exported here."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..ops import CONV, DIRECT_CONV_MAX_COUT_PER_GROUP, GATHER, GEMM_MAX_K, INTERP, ConvArgs
from ..shapes import as_tuple, conv_out_size
from .._tensor import (Tensor, _make, _view, arange, row_norm, elu, gelu, hardsigmoid, hardswish, leaky_relu, log_softmax,
                      matmul, mish, relu, relu6, sigmoid, silu, softmax, softplus, tanh, tensor, where, zeros)
from .functional_activations import (celu, glu, hardshrink, logsigmoid, rrelu, selu, softmin, softshrink,
                                     softsign, tanhshrink, threshold)
from .functional_distances import cosine_similarity, pairwise_distance
from .functional_lrn import local_response_norm
from .functional_embedding_bag import embedding_bag
from .functional_fold import fold, unfold
from .functional_norms import _t, batch_norm, group_norm, instance_norm, layer_norm, normalize, rms_norm
from .functional_pools import (_batched_image, adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,
                               adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d, avg_pool1d, avg_pool2d,
                               avg_pool3d, max_pool1d, max_pool2d, max_pool3d)
from .grid_sample import affine_grid, grid_sample
from .resample import resample_2d

__all__ = ["relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "leaky_relu", "elu",
           "softplus", "mish", "softmax", "log_softmax", "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
           "conv_transpose2d", "conv_transpose3d", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d",
           "avg_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "adaptive_max_pool3d", "batch_norm", "layer_norm", "group_norm", "instance_norm",
           "embedding", "interpolate", "pad", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
           "scaled_dot_product_attention", "dropout", "prelu", "hardtanh", "normalize", "rms_norm", "one_hot",
           "grid_sample", "affine_grid", "glu", "selu", "celu", "softsign", "logsigmoid", "tanhshrink", "softmin",
           "threshold", "hardshrink", "softshrink", "rrelu", "cosine_similarity", "pairwise_distance",
           "unfold", "fold", "local_response_norm", "embedding_bag"]


# -- activations not in the core table -----------------------------------------------------------------
def hardtanh(x, min_val=-1.0, max_val=1.0):
    x = _t(x)
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if x.dtype == dtypes.bool_:
        raise RuntimeError("Bool inputs not supported for hardtanh")
    if not x.dtype.is_floating_point:  # torch keeps an integer tensor's dtype: the bounds become ints
        return x.clamp(int(min_val), int(max_val))
    return x.clamp(min_val, max_val)


def prelu(x, weight):
    weight = _t(weight)
    if weight.numel() != 1:
        if x.ndim < 2 or x.shape[1] != weight.numel():
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                               f"{weight.numel()} and channel size = {x.shape[1] if x.ndim >= 2 else 1}.")
        weight = weight.reshape((1, -1) + (1,) * (x.ndim - 2))
    return where(x > 0, x, x * weight)


def dropout(x, p=0.5, training=False, inplace=False):
    if training:
        raise RuntimeError("tinydl is inference only: dropout with training=True would change results; "
                           "call model.eval()")
    return x


# -- linear / conv ---------------------------------------------------------------------------------------
def linear(x, weight, bias=None):
    x, weight, bias = _t(x), _t(weight), _t(bias)
    if weight.ndim != 2:
        raise RuntimeError(f"linear(): weight must be 2-D, got {weight.ndim}-D")
    if x.shape[-1] != weight.shape[1]:
        rows = math.prod(x.shape[:-1]) if x.ndim > 1 else 1
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{x.shape[-1]} and "
                           f"{weight.shape[1]}x{weight.shape[0]})")
    out = matmul(x, weight.T)
    return out + bias if bias is not None else out


def _same_padding(k, d):
    total = d * (k - 1)
    return total // 2, total - total // 2


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, weight, bias = _t(x), _t(weight), _t(bias)
    return _conv(x, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, weight, bias = _t(x), _t(weight), _t(bias)
    return _conv(x, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def _conv(x, weight, bias, stride, padding, dilation, groups, nd, name):
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, but got input "
                           f"of size: {list(x.shape)}")
    if weight.ndim != nd + 2:
        raise RuntimeError("weight should have at least three dimensions" if weight.ndim < 3 else
                           f"Expected {nd + 2}-dimensional weight for {nd + 2}-dimensional input, but got weight of "
                           f"size {list(weight.shape)}")
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    if x.dtype != weight.dtype:
        raise RuntimeError(f"Input type ({x.dtype.name}) and weight type ({weight.dtype.name}) should be the same")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{name} is implemented for floating point tensors only, got {x.dtype.name}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    stride, dilation = as_tuple(stride, nd, "stride"), as_tuple(dilation, nd, "dilation")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    C = x.shape[1]
    cout, cin_g = weight.shape[:2]
    if cout < groups:  # torch checks the weight against groups before the input's channels
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, but got "
                           f"weight of size {list(weight.shape)} instead")
    if cout % groups != 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size [{', '.join(map(str, weight.shape))}] instead")
    if C != cin_g * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
                           f"{list(x.shape)} to have {cin_g * groups} channels, but got {C} channels instead")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != cout):
        raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional with "
                           f"{cout} elements, but got bias of size {list(bias.shape)} instead")
    ks = weight.shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            pads = [_same_padding(k, d) for k, d in zip(ks, dilation)]
            if any(lo != hi for lo, hi in pads):  # asymmetric: pad the extra element on the right as torch does
                flat = []
                for lo, hi in reversed(pads):
                    flat += [0, hi - lo]
                x = pad(x, flat)
            padding = tuple(lo for lo, _ in pads)
        else:
            raise RuntimeError(f"Invalid padding string: {padding!r}")
    padding = as_tuple(padding, nd, "padding")
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")
    spatial = x.shape[2:]
    for size, k, p, d in zip(spatial, ks, padding, dilation):
        if size + 2 * p < d * (k - 1) + 1:
            raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(str(s + 2 * q) for s, q in zip(spatial, padding))}). "
                               f"Kernel size: ({' x '.join(str(d * (kk - 1) + 1) for kk in ks)}). Kernel size can't "
                               f"be greater than actual input size")
    if nd == 3:
        out = _conv3d(x, weight, stride, padding, dilation, groups)
        if bias is not None:
            out = out + bias.reshape(1, cout, 1, 1, 1)
        return out.squeeze(0) if unbatched else out
    if nd == 1:  # conv1d runs as conv2d over a height of 1
        x4, w4 = x.unsqueeze(2), weight.unsqueeze(2)
        args = ConvArgs((1, stride[0]), (0, padding[0]), (1, dilation[0]), groups)
    else:
        x4, w4 = x, weight
        args = ConvArgs(stride, padding, dilation, groups)
    N = x4.shape[0]
    OH = conv_out_size(x4.shape[2], w4.shape[2], args.stride[0], args.padding[0], args.dilation[0])
    OW = conv_out_size(x4.shape[3], w4.shape[3], args.stride[1], args.padding[1], args.dilation[1])
    out = _conv_node(x4, w4, args, (N, cout, OH, OW))
    if bias is not None:
        out = out + bias.reshape(1, cout, 1, 1)
    if nd == 1:
        out = out.squeeze(2)
    return out.squeeze(0) if unbatched else out


def _conv3d(x, weight, stride, padding, dilation, groups):
    """A 3-d conv as one 2-d conv per kernel depth, added up: the depth slices each kernel depth meets (a strided
    view of the depth-padded input) folded into the batch, [N * OD, C, H, W]."""
    (sd, sh, sw), (pd, ph, pw), (dd, dh, dw) = stride, padding, dilation
    if pd:
        x = pad(x, (0, 0, 0, 0, pd, pd))
    N, C, D = x.shape[:3]
    KD = weight.shape[2]
    OD = conv_out_size(D, KD, sd, 0, dd)
    out = None
    for kd in range(KD):
        start = kd * dd
        frames = x[:, :, start:start + (OD - 1) * sd + 1:sd].permute(0, 2, 1, 3, 4).reshape(N * OD, C, *x.shape[3:])
        part = conv2d(frames, weight[:, :, kd], None, (sh, sw), (ph, pw), (dh, dw), groups)
        out = part if out is None else out + part
    cout, OH, OW = out.shape[1:]
    return out.reshape(N, OD, cout, OH, OW).permute(0, 2, 1, 3, 4)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, weight, bias = _t(x), _t(weight), _t(bias)
    return _conv(x, weight, bias, stride, padding, dilation, groups, 3, "conv3d")


def _conv_node(x, w, args: ConvArgs, shape):
    """The conv node. How it runs (im2col, split-K over its input channels, its GEMM tile, or a direct conv) is
    lowering's choice, on a plan-cache miss (schedule/lower.py); here only what no kernel could run is refused."""
    cin_g, cout_g = x.shape[1] // args.groups, shape[1] // args.groups
    taps = w.shape[2] * w.shape[3]
    # a GEMM conv's K loop is split over its input channels to stay within drivers' loop caps, but never one
    # channel's taps; a direct conv (few output channels per group) is never split
    if cin_g * taps > GEMM_MAX_K and (taps > GEMM_MAX_K or cout_g < DIRECT_CONV_MAX_COUT_PER_GROUP):
        raise NotImplementedError(f"conv2d with a {w.shape[2]}x{w.shape[3]} kernel: {taps} taps per input channel "
                                  f"are more than the {GEMM_MAX_K} one GEMM loop of tinydl may run")
    return _make(CONV, None, (x, w), args, shape, x.dtype)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """conv_transpose2d over a height of 1."""
    x, weight = _t(x), _t(weight)
    if x.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2D (unbatched) or 3D (batched) input to conv_transpose1d, but got input of "
                           f"size: {list(x.shape)}")
    if weight.ndim != 3:
        raise RuntimeError(f"Expected 3-dimensional weight for 3-dimensional input, but got weight of size "
                           f"{list(weight.shape)}")

    def one(v, name):
        return (1 if name in ("stride", "dilation") else 0, as_tuple(v, 1, name)[0])
    # checked here too, so that torch's messages show the 1-d weight and arguments
    _check_transposed(x if x.ndim == 3 else x.unsqueeze(0), weight, _t(bias), groups, one(stride, "stride")[1:],
                      one(output_padding, "output_padding")[1:], one(dilation, "dilation")[1:], 1)
    out = conv_transpose2d(x.unsqueeze(-2), weight.unsqueeze(2), bias, one(stride, "stride"), one(padding, "padding"),
                           one(output_padding, "output_padding"), groups, one(dilation, "dilation"))
    return out.squeeze(-2)


def _check_transposed(x, weight, bias, groups, stride, output_padding, dilation, nd) -> int:
    """torch's checks of a transposed conv's arguments (x batched); returns the output channels."""
    C = x.shape[1]
    if weight.ndim != nd + 2:
        raise RuntimeError(f"Expected {nd + 2}-dimensional weight for {nd + 2}-dimensional input, but got weight of "
                           f"size {list(weight.shape)}")
    if weight.shape[0] != C:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input{list(x.shape)} "
                           f"to have {weight.shape[0] if weight.ndim else '?'} channels, but got {C} channels instead")
    if C % groups:  # weight.shape[0] == C here; torch words it as a weight check (its size in double brackets)
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size [{list(weight.shape)}] instead")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            if nd == 3:  # torch's 3-d kernel names each value
                got = " ".join(f"{name}_{axis}: {v}" for name, values in (("output_padding", output_padding),
                               ("stride", stride), ("dilation", dilation))
                               for axis, v in zip(("depth", "height", "width"), values))
            else:
                got = f"output_padding: {list(output_padding)}, stride: {list(stride)}, dilation: {list(dilation)}"
            raise RuntimeError(f"output padding must be smaller than either stride or dilation, but got {got}")
    cout = weight.shape[1] * groups
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != cout):
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected bias to be 1-dimensional "
                           f"with {cout} elements, but got bias of size {list(bias.shape)} instead")
    return cout


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    x, weight, bias = _t(x), _t(weight), _t(bias)
    x, unbatched = _batched_image(x, f"Expected 3D (unbatched) or 4D (batched) input to conv_transpose2d, but got "
                                     f"input of size: {list(x.shape)}")
    stride, padding = as_tuple(stride, 2, "stride"), as_tuple(padding, 2, "padding")
    output_padding, dilation = as_tuple(output_padding, 2, "output_padding"), as_tuple(dilation, 2, "dilation")
    C = x.shape[1]
    cout = _check_transposed(x, weight, bias, groups, stride, output_padding, dilation, 2)
    kh, kw = weight.shape[2:]
    OH = (x.shape[2] - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
    OW = (x.shape[3] - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
    if OH <= 0 or OW <= 0:
        raise RuntimeError(f"Given input size per channel: ({x.shape[2]} x {x.shape[3]}). Calculated output size per "
                           f"channel: ({OH} x {OW}). Output size is too small")
    if C // groups * kh * kw > GEMM_MAX_K:  # its GEMM's K loop would pass drivers' loop caps (not split)
        raise NotImplementedError(f"conv_transpose2d with {C // groups} input channels per group and a {kh}x{kw} "
                                  f"kernel: K = {C // groups * kh * kw} is more than the {GEMM_MAX_K} one GEMM loop "
                                  f"of tinydl may run")
    out = _make(CONV, None, (x, weight), ConvArgs(stride, padding, dilation, groups, transposed=True),
                (x.shape[0], cout, OH, OW), x.dtype)
    if bias is not None:
        out = out + bias.reshape(1, cout, 1, 1)
    return out.squeeze(0) if unbatched else out


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """A 3-d transposed conv as one 2-d transposed conv per kernel depth over the input's depth slices (folded into
    the batch): kernel depth kd sends input slice i to output depth i * stride + kd * dilation (before the depth
    padding is cropped), so each part is spread along depth (stride - 1 zeros between slices), shifted, and the
    parts added up."""
    x, weight, bias = _t(x), _t(weight), _t(bias)
    if x.ndim not in (4, 5):
        raise RuntimeError(f"Expected 4D (unbatched) or 5D (batched) input to conv_transpose3d, but got input of "
                           f"size: {list(x.shape)}")
    unbatched = x.ndim == 4
    if unbatched:
        x = x.unsqueeze(0)
    stride, padding = as_tuple(stride, 3, "stride"), as_tuple(padding, 3, "padding")
    output_padding, dilation = as_tuple(output_padding, 3, "output_padding"), as_tuple(dilation, 3, "dilation")
    cout = _check_transposed(x, weight, bias, groups, stride, output_padding, dilation, 3)
    (sd, sh, sw), (pd, ph, pw), (opd, oph, opw), (dd, dh, dw) = stride, padding, output_padding, dilation
    N, C, D, H, W = x.shape
    KD = weight.shape[2]
    full = (D - 1) * sd + dd * (KD - 1) + 1 + opd  # output depth before the padding is cropped
    OD = full - 2 * pd
    frames = x.permute(0, 2, 1, 3, 4).reshape(N * D, C, H, W)
    out = None
    for kd in range(KD):
        part = conv_transpose2d(frames, weight[:, :, kd], None, (sh, sw), (ph, pw), (oph, opw), groups, (dh, dw))
        OH, OW = part.shape[2:]
        part = part.reshape(N, D, 1, cout, OH, OW)
        if sd > 1:  # stride - 1 zero slices after each slice, the last ones dropped
            part = pad(part, (0, 0, 0, 0, 0, 0, 0, sd - 1))
        part = part.reshape(N, D * sd, cout, OH, OW)[:, :(D - 1) * sd + 1]
        front = kd * dd
        part = pad(part, (0, 0, 0, 0, 0, 0, front, full - front - part.shape[1]))
        out = part if out is None else out + part
    if OD <= 0:
        raise RuntimeError(f"Given input size per channel: ({D} x {H} x {W}). Calculated output size per channel: "
                           f"({OD} x {out.shape[3]} x {out.shape[4]}). Output size is too small")
    out = out[:, pd:pd + OD].permute(0, 2, 1, 3, 4)
    if bias is not None:
        out = out + bias.reshape(1, cout, 1, 1, 1)
    return out.squeeze(0) if unbatched else out


# -- pixel (un)shuffle: reshapes and a permute ---------------------------------------------------------------
def pixel_shuffle(x, upscale_factor: int):
    """[*, C * r * r, H, W] -> [*, C, H * r, W * r]."""
    x, r = _t(x), int(upscale_factor)
    if x.ndim < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got input with {x.ndim} "
                           f"dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    *lead, C, H, W = x.shape
    if C % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={C} is not divisible by {r * r}")
    n = len(lead)
    y = x.reshape(*lead, C // (r * r), r, r, H, W)
    y = y.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return y.reshape(*lead, C // (r * r), H * r, W * r)


def pixel_unshuffle(x, downscale_factor: int):
    """[*, C, H * r, W * r] -> [*, C * r * r, H, W]."""
    x, r = _t(x), int(downscale_factor)
    if x.ndim < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
                           f"{x.ndim} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    *lead, C, H, W = x.shape
    if H % r:
        raise RuntimeError(f"pixel_unshuffle expects height to be divisible by downscale_factor, but input.size(-2)="
                           f"{H} is not divisible by {r}")
    if W % r:
        raise RuntimeError(f"pixel_unshuffle expects width to be divisible by downscale_factor, but input.size(-1)="
                           f"{W} is not divisible by {r}")
    n = len(lead)
    y = x.reshape(*lead, C, H // r, r, W // r, r)
    y = y.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return y.reshape(*lead, C * r * r, H // r, W // r)


def channel_shuffle(input, groups: int):  # noqa: A002 - torch's name (fx may pass it by name)
    """[N, g * c, *] -> [N, c * g, *]: the channels regrouped (a reshape, a permute, a reshape)."""
    x, g = _t(input), int(groups)
    if x.ndim <= 2:
        raise RuntimeError(f"channel_shuffle expects input with > 2 dims, but got input with sizes {list(x.shape)}")
    if g <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of groups:{g}")
    N, C, *rest = x.shape
    if C % g:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {C} channels and {g} groups.")
    return x.reshape(N, g, C // g, *rest).transpose(1, 2).reshape(x.shape)


# -- lookup / resampling ---------------------------------------------------------------------------------
def embedding(indices, weight, padding_idx=None, max_norm=None):
    """weight's rows picked by indices: indices given on the host are checked here ("index out of range in self",
    negative ones too, as torch); a tinydl tensor of indices is checked on the GPU (tinydl/checks.py: IndexError
    at the next read-back)."""
    from ..checks import Code
    from ..indexing import host_array
    weight = _t(weight)
    host = host_array(indices)
    if max_norm is not None:
        raise NotImplementedError("embedding(max_norm=...) renormalizes weights in place; not supported")
    if (host.dtype.kind not in "iu") if host is not None else indices.dtype != dtypes.int32:
        name = host.dtype.name if host is not None else indices.dtype.name
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {name} instead (while checking arguments for embedding)")
    if weight.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    n = weight.shape[0]
    if padding_idx is not None and not -n <= padding_idx < n:  # only gradients use it; torch checks it anyway
        raise AssertionError("Padding_idx must be within num_embeddings")
    if host is not None:
        if ((host < 0) | (host >= n)).any():
            raise IndexError("index out of range in self")
        indices, code = tensor(host.astype(np.int32)), None
    else:
        if n == 0 and indices.numel():
            raise IndexError("index out of range in self")
        code = Code.INDEX
    if indices.numel() == 0:
        return zeros(indices.shape + (weight.shape[1],), dtype=weight.dtype)
    return _make(GATHER, None, (weight, indices), code, indices.shape + (weight.shape[1],), weight.dtype)


def one_hot(tensor_, num_classes: int = -1):
    """torch's one_hot (int64 out, stored as int32). Class values on the host are checked here; a tinydl tensor's
    are checked on the GPU (tinydl/checks.py), or read back when num_classes=-1 (the width depends on them, as
    torch reads them too)."""
    from ..indexing import checked_index, host_array
    host = host_array(tensor_)
    if (host.dtype.kind not in "iu") if host is not None else tensor_.dtype != dtypes.int32:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if host is None and num_classes == -1:
        host = tensor_.numpy()
    if host is not None:
        if host.size == 0 and num_classes == -1:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        if host.size and host.min() < 0:
            raise RuntimeError("Class values must be non-negative.")
        if num_classes == -1:
            num_classes = int(host.max()) + 1
        elif host.size and host.max() >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
        idx = tensor_ if isinstance(tensor_, Tensor) else tensor(host.astype(np.int32))
    else:
        idx = checked_index(tensor_, num_classes)
    return (idx.unsqueeze(-1) == arange(num_classes)).to(dtypes.int32)


_TORCH_INTERP_MODES = "nearest | linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact"
_LINEAR_MODES = ("linear", "bilinear", "trilinear")  # by spatial dims 1, 2, 3
# torch's kernel names in its "not implemented for 'Int'" errors (the mode's CPU kernel that dispatches on dtype)
_INT_KERNELS = {"nearest": "compute_indices_weights_nearest", "nearest-exact": "compute_indices_weights_nearest",
                "linear": "compute_indices_weights_linear", "trilinear": "compute_indices_weights_linear",
                "bilinear": "upsample_bilinear2d_channels_last", "bicubic": "compute_indices_weights_cubic"}


def _sizes_error(in_sizes, out_sizes) -> str:
    """torch's upsample_{1,2,3}d_common_check message."""
    names = "DHW"[3 - len(in_sizes):]
    fmt = lambda v: ", ".join(f"{a}: {b}" for a, b in zip(names, v))  # noqa: E731
    joint = " and output" if len(in_sizes) == 1 else " output"
    return (f"Input and output sizes should be greater than 0, but got input ({fmt(in_sizes)}){joint} "
            f"({fmt(out_sizes)})")


def _index_scale(mode: str, dims: int, n_in: int, n_out: int, align_corners: bool, scale) -> float:
    """The float32 factor torch's CPU kernels map an output index to the input with (area_pixel_compute_scale /
    compute_scales_value): 1 / scale_factor where one was given, else in / out (a float32 division, as torch's).
    A linear mode keeping a dim's size copies it (compute_source_index_and_lambda): factor 1, which the kernel reads
    as one tap. 2-d nearest copies a kept size and halves a doubled one whatever the scale_factor (nearest_idx);
    1-d and 3-d nearest do not."""
    if mode == "nearest" and dims == 2 and n_out in (n_in, 2 * n_in):
        return 1.0 if n_out == n_in else 0.5
    if mode not in ("nearest", "nearest-exact"):
        if align_corners:
            return float(np.float32(n_in - 1) / np.float32(n_out - 1)) if n_out > 1 else 0.0
        if n_out == n_in:
            return 1.0
    if scale is not None and scale > 0:
        return float(np.float32(1.0 / scale))
    return float(np.float32(n_in) / np.float32(n_out))


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """torch's interpolate, its checks in torch's order. Nearest, nearest-exact and the linear modes are INTERP
    nodes (1-3 spatial dims); bicubic, lanczos and the antialiased modes two matmuls with resampling matrices
    (resample.py); area the adaptive average pool to the output size, as torch's."""
    x = _t(x)
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                             "bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    dim = x.ndim - 2
    in_sizes = list(x.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * dim
        if isinstance(size, (list, tuple)) and len(size) != dim:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input with "
                             f"spatial dimensions of {in_sizes} and output size of {size}. Please provide input "
                             f"tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) format.")
        if not all(isinstance(v, (int, np.integer)) for v in sizes):
            raise TypeError(f"expected size to be one of int or Tuple[int] or Tuple[int, int] or Tuple[int, int, int], "
                            f"but got size with types {[type(v) for v in sizes]}")
        out_sizes, scales = [int(v) for v in sizes], [None] * dim
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)) and len(scale_factor) != dim:
            raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got input "
                             f"with spatial dimensions of {in_sizes} and scale_factor of shape {scale_factor}. Please "
                             f"provide input tensor in (N, C, d1, d2, ...,dK) format and scale_factor in "
                             f"(s1, s2, ...,sK) format.")
        scales = [float(s) for s in scale_factor] if isinstance(scale_factor, (list, tuple)) \
            else [float(scale_factor)] * dim
        out_sizes = [int(math.floor(n * s)) for n, s in zip(in_sizes, scales)]  # torch's kernels: floor(in * scale)
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if recompute_scale_factor or mode == "area":  # area takes sizes only; torch truncates in * scale (_sym_int)
        if size is None:
            out_sizes = [int(n * s) for n, s in zip(in_sizes, scales)]
        scales = [None] * dim
    if antialias and not (mode in ("bilinear", "bicubic", "lanczos") and x.ndim == 4):
        raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and requires a 4-D "
                         "tensor as input")
    linear = 1 <= dim <= 3 and mode == _LINEAR_MODES[dim - 1]
    if not (linear or 1 <= dim <= 3 and mode in ("nearest", "nearest-exact", "area")
            or dim == 2 and mode in ("bicubic", "lanczos")):
        if 1 <= dim <= 3 and mode in _LINEAR_MODES:
            raise NotImplementedError(f"Got {x.ndim}D input, but {mode} mode needs {_LINEAR_MODES.index(mode) + 3}D "
                                      f"input")
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the "
                                  f"modes: {_TORCH_INTERP_MODES} (got {mode})")
    if mode == "lanczos":
        if align_corners:
            raise ValueError("Lanczos mode does not support align_corners=True")
        if not antialias:
            raise ValueError("Lanczos mode requires antialias=True")
    if mode == "area":
        return (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d)[dim - 1](x, out_sizes)
    if min(in_sizes + out_sizes) <= 0:
        raise RuntimeError(_sizes_error(in_sizes, out_sizes))
    if not x.dtype.is_floating_point:
        nearest = mode in ("nearest", "nearest-exact")
        kernel = "compute_index_ranges_weights" if antialias or mode == "lanczos" else \
            "upsample_nearest2d_channels_last" if nearest and dim == 2 else _INT_KERNELS[mode]
        name = "Bool" if x.dtype == dtypes.bool_ else "Int"
        if name == "Bool" or not nearest:  # nearest copies values, as torch's for uint8
            raise NotImplementedError(f'"{kernel}" not implemented for \'{name}\'')
    ac = bool(align_corners)
    if mode in ("bicubic", "lanczos") or antialias:
        return resample_2d(x, out_sizes, mode, antialias, ac, scales)
    coord = tuple(_index_scale(mode, dim, i, o, ac, s) for i, o, s in zip(in_sizes, out_sizes, scales))
    node_mode = mode if mode in ("nearest", "nearest-exact") else "linear"
    return _make(INTERP, None, (x,), (node_mode, ac, coord), x.shape[:2] + tuple(out_sizes), x.dtype)


def pad(x, pad, mode="constant", value=None):
    x = _t(x)
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > x.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {x.ndim}")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"padding mode {mode!r} is not supported (constant, reflect, replicate, circular "
                                  f"are)")
    if mode != "constant" and value not in (None, 0):
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument")
    if mode != "constant" and not (len(pad) in (2, 4, 6) and x.ndim - len(pad) // 2 in (1, 2)):
        # torch's non-constant modes pad the last 1-3 dims of a (batched) 1-3D signal only
        raise NotImplementedError(f"Padding size {len(pad)} is not supported for {x.ndim}D input tensor.\n"
                                  f"Supported combinations for non-constant padding:\n"
                                  f"  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
                                  f"  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
                                  f"  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    pads = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        pads[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    shape = []
    for d, ((lo, hi), n) in enumerate(zip(pads, x.shape)):
        if mode == "reflect" and (lo >= n or hi >= n) and (lo or hi):
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension, "
                               f"but got: padding ({lo}, {hi}) at dimension {d} of input {list(x.shape)}")
        if mode in ("reflect", "replicate") and (lo < 0 or hi < 0):
            raise RuntimeError("negative padding is only supported for mode='constant'")
        if mode == "circular" and max(lo, hi) > n + min(lo, 0) + min(hi, 0):  # what is left after negative pads
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if mode == "replicate" and n == 0 and (lo or hi):
            raise RuntimeError("padding a zero-size dimension with mode='replicate' is not possible")
        size = n + lo + hi
        if size < 0:
            raise RuntimeError(f"The input size {n}, plus negative padding {lo} and {hi} resulted in a negative "
                               f"output size, which is invalid. Check dimension {d} of your input.")
        shape.append(size)
    if all(p == (0, 0) for p in pads):
        return x
    fill = 0 if value is None else value
    return _view(x, "pad", (tuple(pads), mode, fill), tuple(shape))


# -- attention -------------------------------------------------------------------------------------------
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    query, key, value, attn_mask = map(_t, (query, key, value, attn_mask))
    if dropout_p:
        raise RuntimeError("tinydl is inference only: scaled_dot_product_attention needs dropout_p=0")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"Expected query and key to have the same last dimension, got {query.shape[-1]} and "
                           f"{key.shape[-1]}")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key = _repeat_heads(key, rep)
        value = _repeat_heads(value, rep)
    L, S = query.shape[-2], key.shape[-2]
    s = (1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0) if scale is None else scale  # E=0: scores 0
    # float16 scores in float32, as torch's kernels keep them (rounded to half, a score of 30 would be 0.016 off
    # and its probability 1.6 %); the probabilities are rounded to half for their product with value
    half = query.dtype == dtypes.float16 and key.dtype == dtypes.float16
    q, k = (query.float(), key.float()) if half else (query, key)
    scores = matmul(q, k.transpose(-2, -1)) * s
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when "
                               "is_causal=True")
        causal = arange(L).reshape(L, 1) >= arange(S).reshape(1, S)
        scores = where(causal, scores, float("-inf"))
    elif attn_mask is not None:
        if attn_mask.dtype == dtypes.bool_:
            scores = where(attn_mask, scores, float("-inf"))
        else:
            scores = scores + attn_mask
    # torch's safe softmax (its math path since 2.5): a query whose keys are all masked gets 0, not NaN
    probabilities = row_norm(scores, "safe_softmax", scores.ndim - 1)
    return matmul(probabilities.half() if half else probabilities, value)


def _repeat_heads(t, rep):
    *lead, h, s, d = t.shape
    return t.unsqueeze(-3).expand(tuple(lead) + (h, rep, s, d)).reshape(tuple(lead) + (h * rep, s, d))
