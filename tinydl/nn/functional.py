"""tinydl.nn.functional: torch.nn.functional's inference ops, built from Tensor ops (the math lives once)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import dtypes
from ..ops import CONV, DIRECT_CONV_MAX_COUT_PER_GROUP, GATHER, GEMM_MAX_K, INTERP, POOL, ConvArgs, PoolArgs
from ..shapes import as_tuple, conv_out_size
from .._tensor import (Tensor, _make, _view, arange, row_norm, elu, gelu, hardsigmoid, hardswish, leaky_relu, log_softmax,
                      matmul, mish, relu, relu6, sigmoid, silu, softmax, softplus, tanh, tensor, where, zeros)
from .functional_norms import _t, batch_norm, group_norm, instance_norm, layer_norm, normalize, rms_norm
from .resample import resample_2d

__all__ = ["relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "leaky_relu", "elu",
           "softplus", "mish", "softmax", "log_softmax", "linear", "conv1d", "conv2d", "conv_transpose2d",
           "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "batch_norm", "layer_norm",
           "group_norm", "embedding", "interpolate", "pad", "scaled_dot_product_attention", "dropout", "prelu",
           "hardtanh", "normalize", "rms_norm", "one_hot"]


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
    out = conv_transpose2d(x.unsqueeze(-2), weight.unsqueeze(2), bias, one(stride, "stride"), one(padding, "padding"),
                           one(output_padding, "output_padding"), groups, one(dilation, "dilation"))
    return out.squeeze(-2)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    x, weight, bias = _t(x), _t(weight), _t(bias)
    x, unbatched = _batched_image(x, f"Expected 3D (unbatched) or 4D (batched) input to conv_transpose2d, but got "
                                     f"input of size: {list(x.shape)}")
    stride, padding = as_tuple(stride, 2, "stride"), as_tuple(padding, 2, "padding")
    output_padding, dilation = as_tuple(output_padding, 2, "output_padding"), as_tuple(dilation, 2, "dilation")
    C = x.shape[1]
    if weight.ndim != 4 or weight.shape[0] != C:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input{list(x.shape)} "
                           f"to have {weight.shape[0] if weight.ndim else '?'} channels, but got {C} channels instead")
    if C % groups:  # weight.shape[0] == C here; torch words it as a weight check
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size {list(weight.shape)} instead")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise RuntimeError("output padding must be smaller than either stride or dilation, but got "
                               f"output_padding: {list(output_padding)}, stride: {list(stride)}, dilation: {list(dilation)}")
    cout = weight.shape[1] * groups
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != cout):
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected bias to be 1-dimensional "
                           f"with {cout} elements, but got bias of size {list(bias.shape)} instead")
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


# -- pooling -------------------------------------------------------------------------------------------
def _pool_out(size, k, s, p, d, ceil_mode):
    num = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _batched_image(x, error: str):
    """A [C, H, W] or [N, C, H, W] input as [N, C, H, W], and whether it was unbatched; else torch's `error`."""
    if x.ndim not in (3, 4):
        raise RuntimeError(error)
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def _pool(kind, x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad=True, divisor_override=None):
    x = _t(x)
    x, unbatched = _batched_image(x, f"{kind}_pool2d: Expected 3D or 4D (batch mode) tensor for input, but got: "
                                     f"{list(x.shape)}")
    k = as_tuple(kernel_size, 2, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else as_tuple(stride, 2, "stride")
    p, d = as_tuple(padding, 2, "padding"), as_tuple(dilation, 2, "dilation")
    if any(v <= 0 for v in k):
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {k[0]} kW: {k[1]}")
    if any(v == 0 for v in s):
        raise RuntimeError("stride should not be zero")
    if any(v < 0 for v in s):
        raise RuntimeError(f"stride should be greater than zero, but got dH: {s[0]} dW: {s[1]}")
    if any(pp > kk // 2 for pp, kk in zip(p, k)):
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p[0]}, "
                           f"kernel_size={k[0]} and dilation={d[0]}")
    OH = _pool_out(x.shape[2], k[0], s[0], p[0], d[0], ceil_mode)
    OW = _pool_out(x.shape[3], k[1], s[1], p[1], d[1], ceil_mode)
    if OH <= 0 or OW <= 0:
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, x.shape[1:]))}). Calculated output size: "
                           f"({x.shape[1]}x{OH}x{OW}). Output size is too small")
    args = PoolArgs(kind, k, s, p, d, count_include_pad, divisor_override)
    out = _pool_node(x, args, (OH, OW))
    return out.squeeze(0) if unbatched else out


def _pool_node(x, args: PoolArgs, out_hw):
    """The POOL node; a window whose loops would pass window.MAX_TRIPS trips per thread (drivers cap them) is
    pooled along W, then along H: max and average pools are separable (per-dim windows, padding and counts, the
    divisor a product of per-dim counts; divisor_override: sums, then the override)."""
    from ..kernels import window
    if window.pool_trips(args, x.shape[2:], out_hw) <= window.MAX_TRIPS:
        return _make(POOL, None, (x,), args, x.shape[:2] + tuple(out_hw), x.dtype)
    H, W = x.shape[2:]
    first_hw = (H, out_hw[1])
    if args.adaptive:  # adaptive windows are per-dim already: H to H is a window of 1 row
        along_w = along_h = args
    else:
        def pick(dim):  # the arguments for a pool along dim only (the other: a window of 1)
            return dict(kernel=tuple(v if i == dim else 1 for i, v in enumerate(args.kernel)),
                        stride=tuple(v if i == dim else 1 for i, v in enumerate(args.stride)),
                        padding=tuple(v if i == dim else 0 for i, v in enumerate(args.padding)),
                        dilation=tuple(v if i == dim else 1 for i, v in enumerate(args.dilation)))
        override = args.divisor_override
        along_w = dataclasses.replace(args, **pick(1), divisor_override=1 if override else None)
        along_h = dataclasses.replace(args, **pick(0))
    for a, in_hw, hw in ((along_w, x.shape[2:], first_hw), (along_h, first_hw, out_hw)):
        if window.pool_trips(a, in_hw, hw) > window.MAX_TRIPS:
            raise NotImplementedError(f"{args.kind}_pool2d over windows of more than {window.MAX_TRIPS} elements "
                                      f"along one dim is not supported")
    mid = _make(POOL, None, (x,), along_w, x.shape[:2] + first_hw, dtypes.float32 if x.dtype == dtypes.float16
                else x.dtype)
    return _make(POOL, None, (mid,), along_h, x.shape[:2] + tuple(out_hw), x.dtype)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        raise NotImplementedError("max_pool2d(return_indices=True) is not supported")
    return _pool("max", x, kernel_size, stride, padding, dilation, ceil_mode)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    return _pool("avg", x, kernel_size, stride, padding, 1, ceil_mode, count_include_pad, divisor_override)


def _adaptive(kind, x, output_size):
    x = _t(x)
    name = f"adaptive_{kind}_pool2d"
    x, unbatched = _batched_image(x, f"{name}(): Expected 3D or 4D tensor, but got: {list(x.shape)}")
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    if len(output_size) != 2:
        raise RuntimeError(f"{name}: output_size must be 2")
    out_hw = tuple(x.shape[2 + i] if o is None else int(o) for i, o in enumerate(output_size))
    if any(o < 0 for o in out_hw):
        raise RuntimeError(f"{name}: elements of output_size must be greater than or equal to 0 but received "
                           f"{{{', '.join(map(str, out_hw))}}}")
    if kind == "avg" and out_hw == (1, 1) and x.shape[2] * x.shape[3]:
        # a global average is a mean, as in torch (and its errors): a reduction over the pixels, whose kernel
        # gives each output several threads where there are few outputs (batch 1)
        out = x.mean((2, 3), keepdim=True)
    else:
        args = PoolArgs(kind, (0, 0), (1, 1), (0, 0), adaptive=True)
        out = _pool_node(x, args, out_hw)
    return out.squeeze(0) if unbatched else out


def adaptive_avg_pool2d(x, output_size):
    return _adaptive("avg", x, output_size)


def adaptive_max_pool2d(x, output_size, return_indices=False):
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d(return_indices=True) is not supported")
    return _adaptive("max", x, output_size)


# -- 1-d pools: the 2-d pools over a [N, C, 1, L] view --------------------------------------------------------
def _signal(x, name: str):
    x = _t(x)
    if x.ndim not in (2, 3):
        raise RuntimeError(f"max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size for "
                           f"input, but got:{list(x.shape)}" if name == "max_pool1d" else
                           f"Expected 2 to 3 dimensions, but got {x.ndim}-dimensional tensor for argument #1 'self' "
                           f"(while checking arguments for {name})")
    return x.unsqueeze(-2)


def _one(v, name):
    """A 1-d pool's int argument (an int or a 1-tuple)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise RuntimeError(f"{name} must be an int or a tuple of one int, got {tuple(v)}")
        v = v[0]
    return int(v)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        raise NotImplementedError("max_pool1d(return_indices=True) is not supported")
    k = _one(kernel_size, "kernel_size")
    if k <= 0:
        raise RuntimeError(f"max_pool1d() kernel_size must be greater than zero, but got {k}")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _one(stride, "stride")
    return max_pool2d(_signal(x, "max_pool1d"), (1, k), (1, s), (0, _one(padding, "padding")),
                      (1, _one(dilation, "dilation")), ceil_mode).squeeze(-2)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    k = _one(kernel_size, "kernel_size")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _one(stride, "stride")
    return avg_pool2d(_signal(x, "avg_pool1d"), (1, k), (1, s), (0, _one(padding, "padding")), ceil_mode,
                      count_include_pad).squeeze(-2)


def adaptive_avg_pool1d(x, output_size):
    return adaptive_avg_pool2d(_signal(x, "adaptive_avg_pool1d"), (1, _one(output_size, "output_size"))).squeeze(-2)


def adaptive_max_pool1d(x, output_size, return_indices=False):
    if return_indices:
        raise NotImplementedError("adaptive_max_pool1d(return_indices=True) is not supported")
    return adaptive_max_pool2d(_signal(x, "adaptive_max_pool1d"), (1, _one(output_size, "output_size"))).squeeze(-2)


# -- 3-d pools: separable, the 2-d pools over H x W (depth folded into the channels), then over D ------------------
def _volume(x, name: str):
    x = _t(x)
    if x.ndim not in (4, 5):
        raise RuntimeError(f"{name}: Expected 4D or 5D tensor for input, but got: {list(x.shape)}" if "adaptive" in name
                           else f"non-empty 4D or 5D (batch mode) tensor expected for input")
    return (x.unsqueeze(0), True) if x.ndim == 4 else (x, False)


def _two_passes(x, first, second):
    """first(4-d) pools [N, C * D, H, W] over H x W; second(4-d) pools [N, C, D, OH * OW] over D."""
    N, C, D, H, W = x.shape
    y = first(x.reshape(N, C * D, H, W))
    OH, OW = y.shape[2:]
    z = second(y.reshape(N, C, D, OH * OW))
    return z.reshape(N, C, z.shape[2], OH, OW)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        raise NotImplementedError("max_pool3d(return_indices=True) is not supported")
    x, unbatched = _volume(x, "max_pool3d")
    k = as_tuple(kernel_size, 3, "kernel_size")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else as_tuple(stride, 3, "stride")
    p, d = as_tuple(padding, 3, "padding"), as_tuple(dilation, 3, "dilation")
    out = _two_passes(x, lambda v: max_pool2d(v, k[1:], s[1:], p[1:], d[1:], ceil_mode),
                      lambda v: max_pool2d(v, (k[0], 1), (s[0], 1), (p[0], 0), (d[0], 1), ceil_mode))
    return out.squeeze(0) if unbatched else out


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    x, unbatched = _volume(x, "avg_pool3d")
    k = as_tuple(kernel_size, 3, "kernel_size")
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else as_tuple(stride, 3, "stride")
    p = as_tuple(padding, 3, "padding")
    # the divisor is a product of per-dim counts; an override: sums first, then the override
    out = _two_passes(x, lambda v: avg_pool2d(v, k[1:], s[1:], p[1:], ceil_mode, count_include_pad,
                                              1 if divisor_override else None),
                      lambda v: avg_pool2d(v, (k[0], 1), (s[0], 1), (p[0], 0), ceil_mode, count_include_pad,
                                           divisor_override))
    return out.squeeze(0) if unbatched else out


def _adaptive3d(kind, x, output_size):
    x, unbatched = _volume(x, f"adaptive_{kind}_pool3d")
    size = (output_size,) * 3 if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 3:
        raise RuntimeError(f"adaptive_{kind}_pool3d: output_size must be 3")
    size = tuple(x.shape[2 + i] if o is None else int(o) for i, o in enumerate(size))
    pool = adaptive_avg_pool2d if kind == "avg" else adaptive_max_pool2d
    out = _two_passes(x, lambda v: pool(v, size[1:]), lambda v: pool(v, (size[0], v.shape[3])))
    return out.squeeze(0) if unbatched else out


def adaptive_avg_pool3d(x, output_size):
    return _adaptive3d("avg", x, output_size)


def adaptive_max_pool3d(x, output_size, return_indices=False):
    if return_indices:
        raise NotImplementedError("adaptive_max_pool3d(return_indices=True) is not supported")
    return _adaptive3d("max", x, output_size)


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


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """torch's interpolate: nearest and nearest-exact (3D, 4D), linear (3D), bilinear and bicubic (4D), antialiased bilinear and
    bicubic (4D). Nearest and (bi)linear are INTERP nodes; bicubic and antialiased modes two matmuls with
    resampling matrices (resample.py)."""
    x = _t(x)
    spatial = x.ndim - 2
    if mode not in _TORCH_INTERP_MODES.split(" | ") or mode == "bicubic" and spatial != 2:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the "
                                  f"modes: {_TORCH_INTERP_MODES} (got {mode})")
    if mode not in ("nearest", "nearest-exact", "bilinear", "linear", "bicubic"):
        raise NotImplementedError(f"interpolate mode {mode!r} is not supported (nearest, nearest-exact, linear, "
                                  f"bilinear, bicubic are)")
    nearest = mode in ("nearest", "nearest-exact")
    if mode == "bilinear" and spatial != 2 or mode == "linear" and spatial != 1:
        raise ValueError(f"Got {x.ndim}D input, but {mode} mode needs {4 if mode == 'bilinear' else 3}D input")
    if nearest and spatial not in (1, 2):
        raise NotImplementedError(f"{mode} interpolation supports 3D and 4D input")
    if nearest and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    if antialias and mode not in ("bilinear", "bicubic"):
        raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and requires a 4-D "
                         "tensor as input")
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    in_sizes = x.shape[2:]
    if size is not None:
        out_sizes = tuple(size) if isinstance(size, (tuple, list)) else (size,) * spatial
        if len(out_sizes) != spatial:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input with "
                             f"spatial dimensions of {list(in_sizes)} and output size of {list(out_sizes)}.")
        scales = [None] * spatial
    else:
        sf = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * spatial
        out_sizes = tuple(int(math.floor(i * s)) for i, s in zip(in_sizes, sf))
        scales = [None if recompute_scale_factor else float(s) for s in sf]
    ac = bool(align_corners)
    if mode == "bicubic" or antialias:
        if not x.dtype.is_floating_point:
            kernel = "compute_index_ranges_weights" if antialias else "compute_indices_weights_cubic"
            name = "Bool" if x.dtype == dtypes.bool_ else "Int"
            raise NotImplementedError(f'"{kernel}" not implemented for \'{name}\'')
        return resample_2d(x, out_sizes, mode, antialias, ac, scales)
    coord = []
    for i, o, s in zip(in_sizes, out_sizes, scales):
        if not nearest and ac:
            coord.append((i - 1) / (o - 1) if o > 1 else 0.0)
        else:
            coord.append(1.0 / s if s is not None else i / o)
    x4 = x
    node_mode = mode if nearest else "linear"
    return _make(INTERP, None, (x4,), (node_mode, ac, tuple(coord)), x.shape[:2] + tuple(out_sizes), x.dtype)


def pad(x, pad, mode="constant", value=None):
    x = _t(x)
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise RuntimeError(f"Padding length must be divisible by 2 and at most twice the number of dimensions of the "
                           f"input, got {len(pad)} for a {x.ndim}D input")
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
    scores = matmul(query, key.transpose(-2, -1)) * s
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
    return matmul(row_norm(scores, "safe_softmax", scores.ndim - 1), value)


def _repeat_heads(t, rep):
    *lead, h, s, d = t.shape
    return t.unsqueeze(-3).expand(tuple(lead) + (h, rep, s, d)).reshape(tuple(lead) + (h * rep, s, d))
