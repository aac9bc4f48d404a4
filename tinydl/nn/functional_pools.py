"""torch.nn.functional's pools (re-exported by functional): 2-d max / average / adaptive pools as POOL nodes
(windows too long for one thread's loop split into a pass along W, then along H), the 1-d pools as the 2-d
ones over a [N, C, 1, L] view, the 3-d pools separable (the 2-d pools over H x W with depth folded into the
channels, then over D). The layers over them are in pooling.py."""
from __future__ import annotations

import dataclasses

from .. import dtypes
from ..ops import POOL, PoolArgs
from ..shapes import as_tuple
from .._tensor import _make
from .functional_norms import _t


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
    if any(v <= 0 for v in d):  # (a zero dilation would read one tap over and over)
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: {d[0]} dilationW: {d[1]}")
    if any(pp > kk // 2 for pp, kk in zip(p, k)):
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p[0]}, "
                           f"kernel_size={k[0]} and dilation={d[0]}")
    OH = _pool_out(x.shape[2], k[0], s[0], p[0], d[0], ceil_mode)
    OW = _pool_out(x.shape[3], k[1], s[1], p[1], d[1], ceil_mode)
    if OH <= 0 or OW <= 0:
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, x.shape[1:]))}). Calculated output size: "
                           f"({x.shape[1]}x{OH}x{OW}). Output size is too small")
    if kind == "max" and x.dtype == dtypes.bool_:
        raise NotImplementedError("\"max_pool2d\" not implemented for 'Bool'")
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


def _float_average(x, kernel: str):
    """torch averages floats only (its error names the CPU kernel)."""
    if not x.dtype.is_floating_point:
        raise NotImplementedError(f'"{kernel}" not implemented for \'{"Bool" if x.dtype == dtypes.bool_ else "Int"}\'')


def _adaptive(kind, x, output_size):
    x = _t(x)
    name = f"adaptive_{kind}_pool2d"
    x, unbatched = _batched_image(x, f"{name}(): Expected 3D or 4D tensor, but got: {list(x.shape)}")
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    if len(output_size) != 2:
        raise RuntimeError(f"{name}: output_size must be 2")
    out_hw = tuple(x.shape[2 + i] if o is None else int(o) for i, o in enumerate(output_size))
    if kind == "avg" and out_hw != (1, 1):  # a global average is a mean, refused by mean as torch's
        _float_average(x, "adaptive_avg_pool2d")
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
                           else "non-empty 4D or 5D (batch mode) tensor expected for input")
    return (x.unsqueeze(0), True) if x.ndim == 4 else (x, False)


def _two_passes(x, first, second):
    """first(4-d) pools [N, C * D, H, W] over H x W; second(4-d) pools [N, C, D, OH * OW] over D."""
    N, C, D, H, W = x.shape
    y = first(x.reshape(N, C * D, H, W))
    OH, OW = y.shape[2:]
    z = second(y.reshape(N, C, D, OH * OW))
    return z.reshape(N, C, z.shape[2], OH, OW)


def _trunc_half(v: int) -> int:
    return int(v / 2)  # C++'s v / 2 (toward zero)


def _max_pool3d_args(x, kernel_size, stride, padding, dilation, ceil_mode):
    """torch's checks of max_pool3d, in its order and words (DilatedMaxPool3d.cpp: argument lengths, the rank, each
    dim's output size with its stride and padding checks, then pool3d_shape_check). Returns (k, s, p, d, out)."""
    def three(v, what, allow_empty=False):
        v = (v,) if isinstance(v, int) else tuple(v)
        if len(v) not in ((0, 1, 3) if allow_empty else (1, 3)):
            raise RuntimeError(f"max_pool3d: {what}")
        return v * 3 if len(v) == 1 else v
    k = three(kernel_size, "kernel_size must either be a single int, or a tuple of three ints")
    s = three(() if stride is None else stride, "stride must either be omitted, a single int, or a tuple of three "
              "ints", allow_empty=True) or k
    p = three(padding, "padding must either be a single int, or a tuple of three ints")
    d = three(dilation, "dilation must be either a single int, or a tuple of three ints")
    if x.ndim not in (4, 5):
        raise RuntimeError("non-empty 4D or 5D (batch mode) tensor expected for input")
    out = []
    for size, kk, ss, pp, dd in zip(x.shape[-3:], k, s, p, d):  # torch's pooling_output_shape
        if ss == 0:
            raise RuntimeError("stride should not be zero")
        if pp < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {pp}")
        if pp > _trunc_half((kk - 1) * dd + 1):
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pp}, "
                               f"kernel_size={kk} and dilation={dd}")
        out.append(_pool_out(size, kk, ss, pp, dd, ceil_mode))
    if any(v <= 0 for v in k):
        raise RuntimeError(f"kernel size should be greater than zero, but got kT: {k[0]} kH: {k[1]} kW: {k[2]}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"stride should be greater than zero, but got dT: {s[0]} dH: {s[1]} dW: {s[2]}")
    if any(v <= 0 for v in d):
        raise RuntimeError(f"dilation should be greater than zero, but got dilationT: {d[0]} dilationH: {d[1]} "
                           f"dilationW: {d[2]}")
    for i, size in enumerate(x.shape):
        if size == 0 and not (x.ndim == 5 and i == 0):  # torch prints the size where it means the dim
            raise RuntimeError(f"max_pool3d_with_indices_out_cpu_template(): Expected input's non-batch dimensions to "
                               f"have positive length, but input has a shape of {list(x.shape)} and non-batch "
                               f"dimension {size} has length zero!")
    if any(pp > kk // 2 for pp, kk in zip(p, k)):
        raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but got kT: {k[0]} kW: {k[2]} "
                           f"kH: {k[1]} padT: {p[0]} padW: {p[2]} padH: {p[1]}")
    if any(v < 1 for v in out):
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, x.shape[-4:]))}). Calculated output size: "
                           f"({x.shape[-4]}x{'x'.join(map(str, out))}). Output size is too small")
    if x.dtype == dtypes.bool_:
        raise NotImplementedError("\"max_pool3d\" not implemented for 'Bool'")
    return k, s, p, d, out


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        raise NotImplementedError("max_pool3d(return_indices=True) is not supported")
    k, s, p, d, _ = _max_pool3d_args(_t(x), kernel_size, stride, padding, dilation, ceil_mode)
    x, unbatched = _volume(x, "max_pool3d")
    # (each pass's own checks pass: the dims were checked above as torch checks them)
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
    if kind == "avg" and size != (1, 1, 1):
        _float_average(x, "adaptive_avg_pool3d_cpu")
    pool = adaptive_avg_pool2d if kind == "avg" else adaptive_max_pool2d
    out = _two_passes(x, lambda v: pool(v, size[1:]), lambda v: pool(v, (size[0], v.shape[3])))
    return out.squeeze(0) if unbatched else out


def adaptive_avg_pool3d(x, output_size):
    return _adaptive3d("avg", x, output_size)


def adaptive_max_pool3d(x, output_size, return_indices=False):
    if return_indices:
        raise NotImplementedError("adaptive_max_pool3d(return_indices=True) is not supported")
    return _adaptive3d("max", x, output_size)

