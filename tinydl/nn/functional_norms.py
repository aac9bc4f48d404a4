"""torch.nn.functional's normalizations (re-exported by functional): batch_norm in its inference form,
layer_norm, group_norm, instance_norm and rms_norm on the row-norm kernels, normalize. The layers over them are in norm.py."""
from __future__ import annotations

import numpy as np

from .._tensor import Tensor, row_norm, tensor, zeros
from ..opmath import computes_in_float32


def _t(x):
    """x as a tensor (None stays None): the functional API takes arrays and numbers too."""
    return x if isinstance(x, Tensor) or x is None else tensor(x)


@computes_in_float32
def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Inference form: y = (x - mean) * rsqrt(var + eps) * weight + bias, as one per-channel scale/shift
    that fuses into the producer's epilogue."""
    if training and (running_mean is not None or running_var is not None):
        raise RuntimeError("tinydl is inference only: batch_norm with training=True uses batch statistics; "
                           "call model.eval()")
    x, running_mean, running_var, weight, bias = map(_t, (x, running_mean, running_var, weight, bias))
    if training:  # no running stats to update: a plain normalization by the batch's statistics (timm's StdConv)
        if x.ndim < 2:
            raise ValueError(f"expected 2D or more input (got {x.ndim}D input)")
        if x.shape[1] and x.numel() // x.shape[1] == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
        dims = (0,) + tuple(range(2, x.ndim))
        # the mean as a sum of x / count: no float32 overflow where the sum of values near 1e38 would (torch sums
        # in double); a squared deviation that overflows gives var inf and 0 out, as torch's
        count = x.numel() // x.shape[1] if x.shape[1] else 0
        xc = x - ((x * (1.0 / count)).sum(dims, keepdim=True) if count else x.mean(dims, keepdim=True))
        x, running_mean, running_var = xc, zeros(x.shape[1], dtype=x.dtype), (xc * xc).mean(dims)
    if x.ndim < 2:
        raise ValueError(f"expected 2D or more input (got {x.ndim}D input)")
    C = x.shape[1]
    for name, p in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if p is not None and p.numel() != C:
            raise RuntimeError(f"running_mean should contain {C} elements not {p.numel()}" if name == "running_mean"
                               else f"{name} should contain {C} elements not {p.numel()}")
    shape = (1, C) + (1,) * (x.ndim - 2)
    scale = (running_var + eps).rsqrt()
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return x * scale.reshape(shape) + shift.reshape(shape)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x, weight, bias = _t(x), _t(weight), _t(bias)
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    n = len(normalized_shape)
    if x.shape[x.ndim - n:] != normalized_shape or n > x.ndim:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, normalized_shape))}], but got input of size{list(x.shape)}")
    y = row_norm(x, "layer_norm", x.ndim - 1, eps, n) if x.numel() else x
    return _affine(y, weight, bias)


@computes_in_float32
def _affine(y, weight, bias, shape=None):
    """y * weight + bias (either may be None), the parameters reshaped to shape (None: as they are): one op with the norm in torch
    (float16: the normalized row is not rounded before it)."""
    if weight is not None:
        y = y * (weight if shape is None else weight.reshape(shape))
    if bias is not None:
        y = y + (bias if shape is None else bias.reshape(shape))
    return y


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Each (sample, channel) normalized over its own spatial values (a group norm of one channel per group);
    use_input_stats=False: by the running statistics, as batch_norm's inference form."""
    x, weight, bias = _t(x), _t(weight), _t(bias)
    if x.ndim < 3:
        raise ValueError(f"expected 3D or more input (got {x.ndim}D input)")
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError("Expected running_mean and running_var to be defined when use_input_stats is false")
        return batch_norm(x, running_mean, running_var, weight, bias, eps=eps)
    if x.numel() and x.numel() // (x.shape[0] * x.shape[1]) == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(x.shape)}")
    return group_norm(x, x.shape[1], weight, bias, eps)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    x, weight, bias = _t(x), _t(weight), _t(bias)
    if x.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {x.ndim}")
    N, C = x.shape[:2]
    if C % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(x.shape)} and num_groups={num_groups}")
    # each (sample, group) is one row of the layer_norm row kernel
    y = row_norm(x.reshape(N, num_groups, -1), "layer_norm", 2, eps).reshape(x.shape) if x.numel() else x
    return _affine(y, weight, bias, (1, C) + (1,) * (x.ndim - 2))


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """x * rsqrt(mean(x^2 over the last len(normalized_shape) dims) + eps) * weight; eps None: float32's eps."""
    x, weight = _t(x), _t(weight)
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    n = len(normalized_shape)
    if n > x.ndim or x.shape[x.ndim - n:] != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*{', '.join(map(str, normalized_shape))}], but got input of size{list(x.shape)}")
    if weight is not None and weight.shape != normalized_shape:
        raise RuntimeError(f"Expected weight to be of same shape as normalized_shape, but got weight of shape "
                           f"{list(weight.shape)} and normalized_shape = {list(normalized_shape)}")
    if eps is None:
        # the eps of the type torch computes in: float32's for float16 too
        eps = float(np.finfo(np.float32).eps)
    y = row_norm(x, "rms_norm", x.ndim - 1, eps, n) if x.numel() else x
    return _affine(y, weight, None)


def normalize(x, p=2.0, dim=1, eps=1e-12, out=None):
    """x / max(||x||_p over dim, eps), as torch (any p of vector_norm)."""
    if out is not None:
        raise NotImplementedError("normalize(out=...): tinydl tensors are not written in place")
    x = _t(x)
    return x / x.norm(p, dim, keepdim=True).clamp(min=eps)
