"""tinydl: PyTorch-style eager inference on WebGPU.

Ops record a lazy graph; realizing it fuses the graph into few WGSL kernels submitted at once.
"""
from . import debug, dtypes, options, tuning, vision_ops
from ._version import __version__  # noqa: F401
from .dtypes import DType, bool_ as bool, float16, float32, int32  # noqa: A004
from .interop import from_torch, load
from . import generation  # noqa: F401 - registers generate() for converted causal LMs
from .capture import jit
from .nn.init import manual_seed
from .profiler import profile
from .errors import DeviceLostError, KernelError
from .runtime import device_info, empty_cache, use_backend, use_gpu
from .schedule import realize as _realize
from ._tensor import (Tensor, abs, add, amax, amin, arange, argmax, argmin, bmm, cat, ceil, clamp, clip, concat,
                     cos, div, elu, empty, eq, erf, exp, floor, from_numpy, full, full_like, ge, gelu, gt,
                     hardsigmoid, hardswish, le, leaky_relu, log, log_softmax, logical_and, logical_not, logical_or,
                     lt, matmul, max, maximum, mean, min, minimum, mish, mm, mul, ne, neg, ones, ones_like, pow,
                     prod, reciprocal, relu, relu6, round, rsqrt, sigmoid, sign, silu, sin, softmax, softplus, sqrt,
                     square, stack, std, sub, sum, tanh, tensor, var, where, zeros, zeros_like)
from ._tensor import as_strided, cumsum, diff, flip, fliplr, flipud, gather, index_select, roll, take, tensor_split, tril, triu  # noqa: E402
from ._tensor import (bitwise_and, bitwise_not, bitwise_or, bitwise_xor, isfinite, isinf, isnan,  # noqa: E402
                     logical_xor)
from ._tensor import all, any  # noqa: E402,A004 - torch.any / torch.all
from ._tensor import addcdiv, addcmul, floor_divide, fmod, remainder  # noqa: E402
from ._tensor import dist, einsum, lerp, logsumexp, norm, repeat_interleave, vector_norm  # noqa: E402
from ._tensor import (argsort, bucketize, isin, kthvalue, median, msort, nanmedian, searchsorted, sort,  # noqa: E402
                      topk, unique)
from ._tensor import cummax, cummin, cumprod, histc, hypot, linear_recurrence, logcumsumexp  # noqa: E402
from ._tensor import angle, diagonal_scatter, masked_scatter  # noqa: E402
from ._tensor import bitwise_left_shift, bitwise_right_shift  # noqa: E402
from ._tensor import (argwhere, bincount, dsplit, hsplit, masked_select, nonzero, unique_consecutive,  # noqa: E402
                      unravel_index, vsplit)
from ._tensor import expm1, fix, log1p, trunc  # noqa: E402
from ._tensor import (acos, acosh, arccos, arccosh, arcsin, arcsinh, arctan, arctanh, asin, asinh, atan,  # noqa: E402
                     atanh, cosh, deg2rad, erfc, erfinv, exp2, log10, log2, rad2deg, sinh, tan)
from ._tensor import aminmax, count_nonzero, nanmean, nansum, std_mean, trapezoid, trapz, var_mean  # noqa: E402
from ._tensor import (allclose, clamp_max, clamp_min, fmax, fmin, isclose, isneginf, isposinf, isreal,  # noqa: E402
                     masked_fill, positive, rsub, sgn, true_divide)
from ._tensor import (arctan2, atan2, copysign, float_power, frac, heaviside, logaddexp,  # noqa: E402
                     logaddexp2, logit, nan_to_num, signbit, sinc, xlogy)
from ._tensor import (atleast_1d, atleast_2d, atleast_3d, broadcast_tensors, cartesian_prod, column_stack,  # noqa: E402
                     dstack, hstack, meshgrid, narrow, rot90, row_stack, select, take_along_dim, unbind, vstack)
from ._tensor import (addbmm, addmm, addmv, baddbmm, block_diag, diag, diag_embed, diagonal, dot,  # noqa: E402
                     ger, inner, kron, mv, outer, tensordot, trace, tril_indices, triu_indices, vdot, addr, cross,
                     diagflat, vander)
from ._tensor import (index_add, index_copy, index_fill, index_put, index_reduce, scatter, scatter_add,  # noqa: E402
                      scatter_reduce, select_scatter, slice_scatter)
from .nn.functional import channel_shuffle, pixel_shuffle, pixel_unshuffle  # noqa: E402 - torch.X too
from .nn.functional import celu, hardshrink, rrelu, selu, threshold  # noqa: E402 - torch.X too
from .nn.functional_distances import cdist, cosine_similarity, pairwise_distance  # noqa: E402 - torch.X too
from .slots import donate, write_slot  # noqa: E402 - a KV cache written in place

half, float, int = float16, float32, int32  # noqa: A001 - torch's aliases
long = int32


def realize(*tensors):
    """Compute several tensors in one plan."""
    _realize(*tensors)
    return tensors[0] if len(tensors) == 1 else tensors


def flatten(x, start_dim=0, end_dim=-1):
    return x.flatten(start_dim, end_dim)


def ravel(x):
    return x.reshape(-1)


def reshape(x, shape):
    return x.reshape(shape)


def permute(x, dims):
    return x.permute(dims)


def transpose(x, dim0, dim1):
    return x.transpose(dim0, dim1)


def squeeze(x, dim=None):
    return x.squeeze(dim)


def unsqueeze(x, dim):
    return x.unsqueeze(dim)


def movedim(x, source, destination):
    return x.movedim(source, destination)


moveaxis = movedim


def swapaxes(x, axis0, axis1):
    return x.transpose(axis0, axis1)


def swapdims(x, dim0, dim1):
    return x.transpose(dim0, dim1)


def broadcast_to(x, size):
    return x.expand(size)


def unflatten(x, dim, sizes):
    return x.unflatten(dim, sizes)


def split(x, split_size_or_sections, dim=0):
    return x.split(split_size_or_sections, dim)


def chunk(x, chunks, dim=0):
    return x.chunk(chunks, dim)

