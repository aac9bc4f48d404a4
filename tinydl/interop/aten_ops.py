"""The ATen ops of torch.export graphs, registered by overload name (str(torch.ops.aten.linear.default) ==
"aten.linear.default"): each a tinydl callable taking the node's arguments. The inference IR keeps high-level
ops (linear, layer_norm, scaled_dot_product_attention, ...), which map 1:1 to tinydl ops; the rest are composed
here from tinydl ops. Python-level calls in ATen graphs (`_operator.getitem`) are torch_ops.py's."""
from __future__ import annotations

import builtins
import functools

from .. import dtypes, indexing, linalg
from ..nn import functional as F
from ..nn.functional_distances import _cdist
from ..nn.grid_sample import MODES as GRID_MODES, PADDING_MODES as GRID_PADDING_MODES
from .._tensor import Tensor
from .registry import VALUES_ONLY, implements, to_dtype
from .torch_ops import repeat

from .. import _tensor as T


# -- helpers composed from tinydl ops ---------------------------------------------------------------------
def _dt(dtype, default=None):
    return default if dtype is None else to_dtype(dtype)


def _dims(dim, ndim):
    """ATen's dim lists: None or [] mean every dim."""
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return tuple(range(ndim))
    return dim


def _like(fill):
    def f(x, *_, dtype=None, **__):
        return T.full(x.shape, fill, dtype=_dt(dtype, x.dtype))
    return f


def _new(fill):
    def f(x, size, *_, dtype=None, **__):
        return T.full(tuple(size), fill, dtype=_dt(dtype, x.dtype))
    return f


def _full(size, fill_value, *_, dtype=None, **__):
    return T.full(tuple(size), fill_value, dtype=_dt(dtype))


def _const(fill):
    def f(size, *_, dtype=None, **__):
        return T.full(tuple(size), fill, dtype=_dt(dtype, dtypes.float32))
    return f


def _arange(*args, dtype=None, **_):
    return T.arange(*args, dtype=_dt(dtype))


def _where_scalar(cond, a, b):
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        dt = dtypes.float32 if isinstance(a, float) or isinstance(b, float) else dtypes.promote(
            dtypes.scalar_dtype(a), dtypes.scalar_dtype(b))
        return T.where(cond, T.full((), a, dtype=dt), T.full((), b, dtype=dt))
    return T.where(cond, a, b)


def _sum(x, dim=None, keepdim=False, *, dtype=None):
    return T.sum(x, _dims(dim, x.ndim), keepdim, dtype=_dt(dtype))


def _mean(x, dim=None, keepdim=False, *, dtype=None):
    x = x.to(to_dtype(dtype)) if dtype is not None else x
    return T.mean(x, _dims(dim, x.ndim), keepdim)


def _var(x, dim=None, *, correction=None, keepdim=False):
    return T.var(x, _dims(dim, x.ndim), keepdim=keepdim, correction=1 if correction is None else correction)


def _std(x, dim=None, *, correction=None, keepdim=False):
    return T.sqrt(_var(x, dim, correction=correction, keepdim=keepdim))


def _any(x, dim=None, keepdim=False):
    return T.amax(x.bool().int(), _dims(dim, x.ndim), keepdim) > 0


def _all(x, dim=None, keepdim=False):
    return T.amin(x.bool().int(), _dims(dim, x.ndim), keepdim) > 0


def _addmm(bias, a, b, *, beta=1, alpha=1):
    out = T.matmul(a, b)
    out = out * alpha if alpha != 1 else out
    return out + (bias * beta if beta != 1 else bias)


def _baddbmm(bias, a, b, *, beta=1, alpha=1):
    return _addmm(bias, a, b, beta=beta, alpha=alpha)


def _native_layer_norm(x, normalized_shape, weight, bias, eps):
    dims = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mean = x.mean(dims, keepdim=True)
    xc = x - mean
    rstd = ((xc * xc).mean(dims, keepdim=True) + eps).rsqrt()
    return F.layer_norm(x, normalized_shape, weight, bias, eps), mean, rstd


def _native_group_norm(x, weight, bias, N, C, HxW, group, eps):
    return F.group_norm(x, group, weight, bias, eps), None, None


def _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, *_):
    return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)


def _bn_batch_stats(x, weight, bias, training, momentum, eps):
    """_native_batch_norm_legit.no_stats: normalized by the batch's own statistics (BatchNorm without running
    stats); the saved mean / rstd outputs are not computed (inference reads only the first)."""
    return F.batch_norm(x, None, None, weight, bias, True, momentum, eps), None, None


def _instance_norm(x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, *_):
    return F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)


def _bn_no_training(x, weight, bias, running_mean, running_var, momentum, eps):
    return F.batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps), None, None


def _convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups, *_):
    if transposed:
        if w.ndim not in (3, 4, 5):
            raise NotImplementedError(f"transposed convolution with a {w.ndim}-d weight is not supported")
        fn = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}[w.ndim]
        return fn(x, w, b, stride, padding, output_padding, groups, dilation)
    return {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}.get(w.ndim, F.conv2d)(x, w, b, stride, padding, dilation, groups)


def _conv(fn):
    return lambda x, w, b=None, stride=1, padding=0, dilation=1, groups=1: fn(x, w, b, stride, padding, dilation,
                                                                              groups)


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False):
    return F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def _sdpa_cpu(q, k, v, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale), None


def _max_pool2d(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return F.max_pool2d(x, kernel_size, stride or None, padding, dilation, ceil_mode)


def _max_pool3d(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return F.max_pool3d(x, kernel_size, stride or None, padding, dilation, ceil_mode)


def _avg_pool2d(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    return F.avg_pool2d(x, kernel_size, stride or None, padding, ceil_mode, count_include_pad, divisor_override)


def _avg_pool3d(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    return F.avg_pool3d(x, kernel_size, stride or None, padding, ceil_mode, count_include_pad, divisor_override)


def _avg_pool1d(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True):
    return F.avg_pool1d(x, kernel_size, stride or None, padding, ceil_mode, count_include_pad)


def _max_pool1d(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return F.max_pool1d(x, kernel_size, stride or None, padding, dilation, ceil_mode)


def _upsample(mode, antialias=False):
    """ATen's upsample_* overloads: .vec (output_size or scale_factors, a list) and .default (output_size and
    optional per-dim scales, which torch's kernels map coordinates with: 1 / scale rather than in / out);
    antialias: the _aa overloads (interpolate(..., antialias=True))."""
    def f(x, output_size=None, *rest, scale_factors=None, align_corners=None, scales_d=None, scales_h=None,
          scales_w=None, scales=None):
        if rest and isinstance(rest[0], bool):  # upsample_bilinear2d(x, output_size, align_corners, ...)
            align_corners, rest = rest[0], rest[1:]
        if rest and isinstance(rest[0], (list, tuple)):  # .vec's scale_factors
            scale_factors, rest = rest[0], rest[1:]
        per_dim = list(rest) or {1: [scales], 2: [scales_h, scales_w]}.get(x.ndim - 2, [scales_d, scales_h, scales_w])
        if output_size is not None and any(v is not None for v in per_dim):
            spatial = x.shape[2:]
            if len(per_dim) == len(spatial) and all(v is not None and int(n * v) == o
                                                   for v, n, o in zip(per_dim, spatial, output_size)):
                scale_factors, output_size = per_dim, None  # the same size, mapped by 1 / scale as torch's
            elif any(v is not None and v != o / n for v, n, o in zip(per_dim, spatial, output_size)):
                raise NotImplementedError(f"aten upsample ({mode}): scales {per_dim} that do not give the output "
                                          f"size {list(output_size)} from {list(spatial)}")
        if output_size is not None:
            return F.interpolate(x, size=tuple(output_size), mode=mode, align_corners=align_corners,
                                 antialias=antialias)
        return F.interpolate(x, scale_factor=tuple(scale_factors), mode=mode, align_corners=align_corners,
                             antialias=antialias)
    return f


def _grid_sampler(x, grid, interpolation_mode, padding_mode, align_corners):
    """ATen's grid_sampler: the modes as the integers F.grid_sample's names map to."""
    mode = {v: k for k, v in GRID_MODES.items()}[interpolation_mode]
    padding = {v: k for k, v in GRID_PADDING_MODES.items()}[padding_mode]
    return F.grid_sample(x, grid, mode, padding, align_corners)


def _squeeze(x, dim=None):
    if isinstance(dim, (list, tuple)):
        dim = tuple(dim)
    return x.squeeze(dim)


def _slice(x, dim=0, start=None, end=None, step=1):
    d = dim % x.ndim
    return x._slice(d, start, end, step)


def _split(x, split_size, dim=0):
    return x.split(split_size if isinstance(split_size, int) else list(split_size), dim)


def _no_op(*_, **__):
    return None


_no_op.reads_nothing = True  # Program leaves out its nodes that nothing reads (a bfloat16 dtype among their arguments)


def _same(x, *_, **__):
    return x


def _unsupported_view_dtype(x, dtype):
    raise NotImplementedError("Tensor.view(dtype) (a bitcast) is not supported")


def _aten(names: str, fn) -> None:
    """Register fn for ATen overloads (names without the "aten." prefix, space-separated)."""
    implements(*("aten." + n for n in names.split()))(fn)


def _values_only(names: str, fn) -> None:
    """Register fn (the values of a max pool) for ATen overloads returning (values, indices): the entry returns
    (values, None), and a graph that reads the indices is refused at conversion (registry.VALUES_ONLY)."""
    @functools.wraps(fn)  # (fn's signature: the table test checks it against the schema)
    def values(*args, **kwargs):
        return fn(*args, **kwargs), None
    _aten(names, values)
    VALUES_ONLY.update("aten." + n for n in names.split())


def _embedding_bag(weight, indices, offsets, scale_grad_by_freq=False, mode=0, sparse=False,
                   per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """ATen's embedding_bag overloads: the bags' values, and None for the three bookkeeping results (offset2bag,
    bag sizes, max indices: a graph reading them is refused, VALUES_ONLY); padding_idx -1 or None is none."""
    out = F.embedding_bag(indices, weight, offsets, mode=("sum", "mean", "max")[mode],
                          per_sample_weights=per_sample_weights, include_last_offset=include_last_offset,
                          padding_idx=None if padding_idx is None or padding_idx < 0 else padding_idx)
    return out, None, None, None


_aten("embedding_bag.padding_idx embedding_bag.default _embedding_bag.default", _embedding_bag)
implements("torch.embedding_bag")(_embedding_bag)  # torch.embedding_bag is ATen's (weight first, mode an int)
VALUES_ONLY.update({"aten.embedding_bag.padding_idx", "aten.embedding_bag.default", "aten._embedding_bag.default",
                    "torch.embedding_bag"})


# elementwise
for _name in ("neg abs sign exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu silu mish erf floor ceil round "
              "hardswish hardsigmoid logical_not log1p expm1 trunc fix").split():
    _aten(f"{_name}.default", getattr(T, _name))
_aten("relu6.default", T.relu6)
for _name in ("tan asin acos atan sinh cosh asinh acosh atanh log2 log10 exp2 erfc erfinv deg2rad rad2deg").split():
    _aten(f"{_name}.default", getattr(T, _name))
# torch.export keeps the aliases' names (torch.arcsin, torch.special.erfc, ...)
_aten("arcsin.default", T.asin)
_aten("arccos.default", T.acos)
_aten("arctan.default", T.atan)
_aten("arcsinh.default", T.asinh)
_aten("arccosh.default", T.acosh)
_aten("arctanh.default", T.atanh)
_aten("special_exp2.default", T.exp2)
_aten("special_erfc.default", T.erfc)
_aten("special_erfinv.default", T.erfinv)
_aten("special_expit.default", T.sigmoid)
# reductions
_aten("nansum.default", lambda x, dim=None, keepdim=False, *, dtype=None: T.nansum(x, _dims(dim, x.ndim), keepdim,
                                                                                   dtype=_dt(dtype)))
_aten("nanmean.default", lambda x, dim=None, keepdim=False, *, dtype=None: T.nanmean(x, _dims(dim, x.ndim), keepdim,
                                                                                     dtype=_dt(dtype)))
for _name in ("var_mean", "std_mean"):
    _aten(f"{_name}.default", lambda x, unbiased=True, _f=getattr(T, _name): _f(x, None, unbiased))
    _aten(f"{_name}.dim", lambda x, dim, unbiased=True, keepdim=False, _f=getattr(T, _name): _f(x, dim, unbiased,
                                                                                                 keepdim))
    _aten(f"{_name}.correction", lambda x, dim=None, *, correction=None, keepdim=False, _f=getattr(T, _name):
          _f(x, _dims(dim, x.ndim), None, keepdim, correction=1 if correction is None else correction))
_aten("aminmax.default", lambda x, *, dim=None, keepdim=False: tuple(T.aminmax(x, dim=dim, keepdim=keepdim)))
_aten("count_nonzero.default count_nonzero.dim_IntList", lambda x, dim=None: T.count_nonzero(x, dim))
_aten("atan2.default arctan2.default", T.atan2)
_aten("copysign.Tensor copysign.Scalar", T.copysign)
_aten("xlogy.Tensor xlogy.Scalar_Other xlogy.Scalar_Self special_xlogy.default special_xlogy.other_scalar "
      "special_xlogy.self_scalar", T.xlogy)
_aten("logaddexp.default", T.logaddexp)
_aten("logaddexp2.default", T.logaddexp2)
_aten("heaviside.default", T.heaviside)
_aten("signbit.default", T.signbit)
_aten("frac.default", T.frac)
_aten("sinc.default", T.sinc)
_aten("logit.default", lambda x, eps=None: T.logit(x, eps))
_aten("nan_to_num.default", lambda x, nan=None, posinf=None, neginf=None: T.nan_to_num(x, 0.0 if nan is None else nan,
                                                                                      posinf, neginf))
_aten("flip.default", lambda x, dims: T.flip(x, dims))
_aten("pixel_shuffle.default", F.pixel_shuffle)
_aten("pixel_unshuffle.default", F.pixel_unshuffle)
_aten("channel_shuffle.default native_channel_shuffle.default", F.channel_shuffle)
_aten("rms_norm.default", F.rms_norm)
_aten("tensor_split.sections tensor_split.indices", lambda x, s, dim=0: T.tensor_split(x, s, dim))
_aten("logsumexp.default", lambda x, dim, keepdim=False: T.logsumexp(x, dim, keepdim))
_aten("lerp.Scalar lerp.Tensor", T.lerp)
_aten("hypot.default", T.hypot)
_aten("repeat_interleave.self_int", lambda x, repeats, dim=None, *, output_size=None: T.repeat_interleave(
    x, repeats, dim, output_size=output_size))
_aten("round.decimals", lambda x, decimals=0: T.round(x, decimals=decimals))
_aten("addcmul.default", lambda x, t1, t2, value=1: T.addcmul(x, t1, t2, value=value))
_aten("addcdiv.default", lambda x, t1, t2, value=1: T.addcdiv(x, t1, t2, value=value))
# linear algebra (tinydl/linalg.py)
_aten("addmm.default", T.addmm)
_aten("addbmm.default", T.addbmm)
_aten("baddbmm.default", T.baddbmm)
_aten("addmv.default", T.addmv)
_aten("mv.default", T.mv)
_aten("dot.default", T.dot)
_aten("dist.default", lambda x, other, p=2: T.dist(x, other, p))
_aten("vdot.default", T.vdot)
_aten("outer.default ger.default", T.outer)
_aten("addr.default", lambda x, v1, v2, beta=1, alpha=1: T.addr(x, v1, v2, beta=beta, alpha=alpha))
_aten("linalg_cross.default", lambda a, b, dim=-1: linalg.linalg_cross(a, b, dim))
_aten("cross.default", lambda a, b, dim=None: T.cross(a, b, dim))
_aten("kron.default", T.kron)
_aten("trace.default", T.trace)
_aten("diag.default", T.diag)
_aten("diagonal.default diagonal_copy.default", T.diagonal)
_aten("diag_embed.default", T.diag_embed)
_aten("tensordot.default", lambda x, other, dims_self, dims_other: T.tensordot(x, other, (dims_self, dims_other)))
_aten("block_diag.default", lambda tensors: T.block_diag(*tensors))
# shapes
_aten("movedim.int movedim.intlist moveaxis.int moveaxis.intlist", lambda x, source, destination:
      x.movedim(source, destination))
_aten("swapaxes.default", lambda x, axis0, axis1: x.transpose(axis0, axis1))
_aten("swapdims.default", lambda x, dim0, dim1: x.transpose(dim0, dim1))
_aten("broadcast_to.default", lambda x, size: x.expand(tuple(size)))
_aten("broadcast_tensors.default", lambda tensors: T.broadcast_tensors(*tensors))
_aten("meshgrid.default", lambda tensors: T.meshgrid(*tensors))
_aten("meshgrid.indexing", lambda tensors, *, indexing: T.meshgrid(*tensors, indexing=indexing))
for _name in ("hstack", "vstack", "dstack", "column_stack"):
    _aten(f"{_name}.default", getattr(T, _name))
for _n in (1, 2, 3):
    _aten(f"atleast_{_n}d.default", lambda x, _f=getattr(T, f"atleast_{_n}d"): _f(x))
    _aten(f"atleast_{_n}d.Sequence", lambda tensors, _f=getattr(T, f"atleast_{_n}d"): _f(tensors))
_aten("take_along_dim.default", T.take_along_dim)
_aten("rot90.default", lambda x, k=1, dims=(0, 1): T.rot90(x, k, dims))
_aten("tril_indices.default", lambda row, col, offset=0, *, dtype=None, **_: T.tril_indices(row, col, offset,
                                                                                            dtype=_dt(dtype)))
_aten("triu_indices.default", lambda row, col, offset=0, *, dtype=None, **_: T.triu_indices(row, col, offset,
                                                                                            dtype=_dt(dtype)))
_aten("add.Tensor add.Scalar", lambda a, b, alpha=1: T.add(a, b, alpha=alpha))
_aten("sub.Tensor sub.Scalar", lambda a, b, alpha=1: T.sub(a, b, alpha=alpha))
_aten("rsub.Tensor rsub.Scalar", lambda a, b, alpha=1: T.rsub(a, b, alpha=alpha))
_aten("mul.Tensor mul.Scalar", T.mul)
_aten("div.Tensor div.Scalar", T.div)
# torch's division semantics (floor / trunc quotients, float remainders, integer division by zero) are the
# tensor API's own: elementwise.py
_aten("div.Tensor_mode div.Scalar_mode", lambda a, b, rounding_mode=None: T.div(a, b, rounding_mode=rounding_mode))
_aten("floor_divide.default floor_divide.Scalar", T.floor_divide)
_aten("remainder.Tensor remainder.Scalar remainder.Scalar_Tensor", T.remainder)
_aten("fmod.Tensor fmod.Scalar", T.fmod)
_aten("pow.Tensor_Scalar pow.Tensor_Tensor pow.Scalar", T.pow)
_aten("square.default", lambda x: x * x)
_aten("maximum.default", T.maximum)
_aten("minimum.default", T.minimum)
_aten("clamp.default clamp.Tensor", lambda x, min=None, max=None: T.clamp(x, min, max))
_aten("clamp_min.default clamp_min.Tensor", lambda x, v: T.clamp(x, v, None))
_aten("clamp_max.default clamp_max.Tensor", lambda x, v: T.clamp(x, None, v))
_aten("hardtanh.default", lambda x, min_val=-1.0, max_val=1.0: F.hardtanh(x, min_val, max_val))
_aten("leaky_relu.default", lambda x, negative_slope=0.01: T.leaky_relu(x, negative_slope))
_aten("elu.default", lambda x, alpha=1.0, scale=1, input_scale=1: _elu(x, alpha, scale, input_scale))
_aten("softplus.default", lambda x, beta=1, threshold=20: T.softplus(x, beta, threshold))
_aten("gelu.default", lambda x, approximate="none": T.gelu(x, approximate))
_aten("prelu.default _prelu_kernel.default", F.prelu)
_aten("cosine_similarity.default", F.cosine_similarity)
_aten("pairwise_distance.default", F.pairwise_distance)
_aten("cdist.default _cdist_forward.default", lambda x1, x2, p=2.0, compute_mode=None: _cdist(x1, x2, p, compute_mode))
_aten("_euclidean_dist.default", lambda x1, x2: _cdist(x1, x2, 2.0, 1))
_aten("im2col.default", F.unfold)
_aten("col2im.default", F.fold)
_aten("glu.default", F.glu)
_aten("selu.default", F.selu)
_aten("celu.default", F.celu)
_aten("log_sigmoid.default", F.logsigmoid)
_aten("threshold.default", F.threshold)
_aten("hardshrink.default", F.hardshrink)
_aten("softshrink.default", F.softshrink)
_aten("rrelu.default", lambda x, lower=0.125, upper=1.0 / 3, training=False, generator=None:
      F.rrelu(x, lower, upper, training))
for _name in "eq ne lt le gt ge".split():
    _aten(f"{_name}.Tensor {_name}.Scalar", getattr(T, _name))
_aten("logical_and.default", T.logical_and)
_aten("logical_or.default", T.logical_or)
_aten("logical_xor.default", lambda a, b: T.ne(a.bool(), b.bool() if isinstance(b, Tensor) else builtins.bool(b)))
_aten("bitwise_and.Tensor bitwise_and.Scalar __and__.Tensor __and__.Scalar", T.bitwise_and)
_aten("bitwise_or.Tensor bitwise_or.Scalar __or__.Tensor __or__.Scalar", T.bitwise_or)
_aten("bitwise_xor.Tensor bitwise_xor.Scalar __xor__.Tensor __xor__.Scalar", T.bitwise_xor)
_aten("bitwise_not.default", T.bitwise_not)
_aten("bitwise_left_shift.Tensor bitwise_left_shift.Tensor_Scalar bitwise_left_shift.Scalar_Tensor __lshift__.Tensor "
      "__lshift__.Scalar", T.bitwise_left_shift)
_aten("bitwise_right_shift.Tensor bitwise_right_shift.Tensor_Scalar bitwise_right_shift.Scalar_Tensor "
      "__rshift__.Tensor __rshift__.Scalar", T.bitwise_right_shift)
_aten("isnan.default", T.isnan)
_aten("isinf.default", T.isinf)
_aten("isposinf.default", T.isposinf)
_aten("isneginf.default", T.isneginf)
_aten("isreal.default", T.isreal)
_aten("isclose.default", T.isclose)
_aten("fmax.default", T.fmax)
_aten("fmin.default", T.fmin)
_aten("sgn.default", T.sgn)
_aten("positive.default", T.positive)
_aten("true_divide.Tensor true_divide.Scalar", T.true_divide)
_aten("isfinite.default", T.isfinite)
_aten("where.self", T.where)
_aten("where.ScalarOther where.ScalarSelf where.Scalar", _where_scalar)
_aten("masked_fill.Scalar masked_fill.Tensor", T.masked_fill)


def _elu(x, alpha, scale, input_scale):
    if scale != 1 or input_scale != 1:  # selu / celu forms
        return scale * T.where(x > 0, x, alpha * T.expm1(x * input_scale))
    return T.elu(x, alpha)


def _rrelu_with_noise(x, noise, lower=0.125, upper=1.0 / 3, training=False, generator=None):
    """(output, noise): in inference the noise is neither drawn nor written."""
    return F.rrelu(x, lower, upper, training), noise


_aten("rrelu_with_noise_functional.default", _rrelu_with_noise)


# dtype / identity / asserts
_aten("clone.default alias.default contiguous.default detach.default lift_fresh_copy.default", _same)
_aten("dropout.default feature_dropout.default alpha_dropout.default",
      lambda x, p=0.5, train=False: F.dropout(x, p, train))
_aten("_assert_tensor_metadata.default _assert_async.msg sym_constrain_range.default "
      "sym_constrain_range_for_size.default _assert_async.default", _no_op)
_aten("_local_scalar_dense.default item.default", lambda x: x.item())
_aten("copy.default", lambda x, src, non_blocking=False: src.to(x.dtype).expand(x.shape) if isinstance(src, Tensor)
      else T.full(x.shape, src, dtype=x.dtype))
_aten("fill.Scalar fill.Tensor", lambda x, v: T.full(x.shape, v.item() if isinstance(v, Tensor) else v, dtype=x.dtype))

# movement
_aten("view.default reshape.default _unsafe_view.default view_copy.default", lambda x, size: x.reshape(tuple(size)))
_aten("view.dtype", _unsupported_view_dtype)
_aten("permute.default permute_copy.default", lambda x, dims: x.permute(tuple(dims)))
_aten("transpose.int transpose_copy.int", lambda x, a, b: x.transpose(a, b))
_aten("t.default", lambda x: x.t())
_aten("expand.default expand_copy.default", lambda x, size, implicit=False: x.expand(tuple(size)))
_aten("expand_as.default", lambda x, other: x.expand(other.shape))
_aten("unsqueeze.default unsqueeze_copy.default", lambda x, dim: x.unsqueeze(dim))
_aten("squeeze.default squeeze.dim squeeze.dims squeeze_copy.dim", _squeeze)
_aten("flatten.using_ints", lambda x, start_dim=0, end_dim=-1: x.flatten(start_dim, end_dim))
_aten("unflatten.int", lambda x, dim, sizes: x.unflatten(dim, tuple(sizes)))
_aten("slice.Tensor slice_copy.Tensor", _slice)
_aten("select.int select_copy.int", lambda x, dim, index: x.select(dim, index))
_aten("narrow.default", lambda x, dim, start, length: x.narrow(dim, start, length))
_aten("unfold.default unfold_copy.default", lambda x, dimension, size, step: x.unfold(dimension, size, step))
_aten("split.Tensor split_with_sizes.default split_copy.Tensor split_with_sizes_copy.default", _split)
_aten("chunk.default", lambda x, chunks, dim=0: x.chunk(chunks, dim))
_aten("unbind.int", lambda x, dim=0: x.unbind(dim))
_aten("cat.default", lambda ts, dim=0: T.cat(list(ts), dim))
_aten("stack.default", lambda ts, dim=0: T.stack(list(ts), dim))
_aten("repeat.default", lambda x, sizes: repeat(x, tuple(sizes)))
_aten("roll.default", lambda x, shifts, dims=(): x.roll(tuple(shifts), tuple(dims) or None))
_aten("constant_pad_nd.default", lambda x, pad, value=0: F.pad(x, tuple(pad), "constant", value))
_aten("pad.default", lambda x, pad, mode="constant", value=None: F.pad(x, tuple(pad), mode, value))
_aten("triu.default", T.triu)
_aten("tril.default", T.tril)

# indexing
_aten("index.Tensor", indexing.index)
_aten("index_select.default", lambda x, dim, index: x.index_select(dim, index))
_aten("gather.default", lambda x, dim, index, sparse_grad=False: x.gather(dim, index))
_aten("take.default", lambda x, index: x.take(index))
# (export.ExportProgram.missing refuses one over a traced view at conversion: the elements are torch's storage here)
_aten("as_strided.default", lambda x, size, stride, storage_offset=None: indexing.strided_elements(x, size, stride,
                                                                                                   storage_offset))
_aten("one_hot.default", lambda x, num_classes=-1: F.one_hot(x, num_classes))
_aten("embedding.default", lambda w, idx, padding_idx=-1, scale_grad_by_freq=False, sparse=False:
      F.embedding(idx, w))

# writing by index (torch.export turns in-place forms and x[idx] = v into these)
_aten("scatter.src scatter.value", lambda x, dim, index, src: T.scatter(x, dim, index, src))
_aten("scatter.reduce scatter.value_reduce", lambda x, dim, index, src, *, reduce: T.scatter(x, dim, index, src,
                                                                                             reduce=reduce))
_aten("scatter_add.default", T.scatter_add)
_aten("scatter_reduce.two", T.scatter_reduce)
_aten("index_add.default", T.index_add)
_aten("index_reduce.default", T.index_reduce)
_aten("index_copy.default", T.index_copy)
_aten("index_fill.int_Scalar index_fill.int_Tensor", T.index_fill)
_aten("index_put.default", T.index_put)
_aten("slice_scatter.default", T.slice_scatter)
_aten("select_scatter.default", T.select_scatter)

# creation
_aten("arange.default arange.start arange.start_step", _arange)
_aten("full.default", _full)
_aten("zeros.default empty.memory_format", _const(0))
_aten("ones.default", _const(1))
_aten("scalar_tensor.default", lambda v, *, dtype=None, **_: T.full((), v, dtype=_dt(dtype, dtypes.float32)))
_aten("zeros_like.default empty_like.default", _like(0))
_aten("ones_like.default", _like(1))
_aten("full_like.default", lambda x, v, *_, dtype=None, **__: T.full(x.shape, v, dtype=_dt(dtype, x.dtype)))
_aten("new_zeros.default new_empty.default", _new(0))
_aten("new_ones.default", _new(1))
_aten("new_full.default", lambda x, size, v, *_, dtype=None, **__: T.full(tuple(size), v, dtype=_dt(dtype, x.dtype)))

# reductions
_aten("sum.dim_IntList sum.default", _sum)
_aten("mean.dim mean.default", _mean)
_aten("prod.dim_int prod.default", lambda x, dim=None, keepdim=False, *, dtype=None: T.prod(x, dim, keepdim))
_aten("amax.default", lambda x, dim=(), keepdim=False: T.amax(x, _dims(dim, x.ndim), keepdim))
_aten("amin.default", lambda x, dim=(), keepdim=False: T.amin(x, _dims(dim, x.ndim), keepdim))
_aten("max.dim", lambda x, dim, keepdim=False: T.max(x, dim, keepdim))
_aten("min.dim", lambda x, dim, keepdim=False: T.min(x, dim, keepdim))
_aten("max.default", lambda x: T.amax(x))
_aten("min.default", lambda x: T.amin(x))
_aten("argmax.default", lambda x, dim=None, keepdim=False: T.argmax(x, dim, keepdim))
_aten("argmin.default", lambda x, dim=None, keepdim=False: T.argmin(x, dim, keepdim))
_aten("var.correction", _var)
_aten("std.correction", _std)
_aten("any.dim any.dims any.default", _any)
_aten("all.dim all.dims all.default", _all)
_aten("cumsum.default", T.cumsum)
# sorting (tinydl/sorting.py; always stable, so `stable` changes nothing)
_aten("sort.default", lambda x, dim=-1, descending=False: T.sort(x, dim, descending))
_aten("sort.stable", lambda x, *, stable=None, dim=-1, descending=False: T.sort(x, dim, descending))
_aten("argsort.default", lambda x, dim=-1, descending=False: T.argsort(x, dim, descending))
_aten("argsort.stable", lambda x, *, stable=None, dim=-1, descending=False: T.argsort(x, dim, descending))
_aten("msort.default", T.msort)


def _unique_all(x, dim, sorted, return_inverse, return_counts):  # noqa: A002
    """ATen's unique overloads return all three results, the ones not asked for empty."""
    values, inverse, counts = T.unique(x, sorted, True, True, dim)
    empty = T.zeros((0,), dtype=dtypes.int32)
    return values, inverse if return_inverse else empty, counts if return_counts else empty


_aten("_unique2.default", lambda x, sorted=True, return_inverse=False, return_counts=False:
      _unique_all(x, None, sorted, return_inverse, return_counts))
_aten("unique_dim.default", lambda x, dim, sorted=True, return_inverse=False, return_counts=False:
      _unique_all(x, dim, sorted, return_inverse, return_counts))
_aten("unique_consecutive.default", lambda x, return_inverse=False, return_counts=False, dim=None: (
    lambda v, i, c: (v, i if return_inverse else T.zeros((0,), dtype=dtypes.int32),
                     c if return_counts else T.zeros((0,), dtype=dtypes.int32)))(
    *T.unique_consecutive(x, True, True, dim)))
_aten("masked_select.default", T.masked_select)
_aten("bincount.default", T.bincount)
_aten("topk.default", lambda x, k, dim=-1, largest=True, sorted=True: T.topk(x, k, dim, largest, sorted))
_aten("kthvalue.default", lambda x, k, dim=-1, keepdim=False: T.kthvalue(x, k, dim, keepdim))
_aten("median.default", lambda x: T.median(x))
_aten("median.dim", lambda x, dim, keepdim=False: T.median(x, dim, keepdim))
_aten("nanmedian.default", lambda x: T.nanmedian(x))
_aten("nanmedian.dim", lambda x, dim, keepdim=False: T.nanmedian(x, dim, keepdim))
_aten("cummax.default", T.cummax)
_aten("cummin.default", T.cummin)
for _overload in ("Tensor", "Scalar"):
    _aten(f"searchsorted.{_overload}", lambda seq, x, *, out_int32=False, right=False, side=None, sorter=None:
          T.searchsorted(seq, x, out_int32=out_int32, right=right, side=side, sorter=sorter))
_aten("bucketize.Tensor bucketize.Scalar", lambda x, boundaries, *, out_int32=False, right=False:
      T.bucketize(x, boundaries, out_int32=out_int32, right=right))
_aten("isin.Tensor_Tensor isin.Tensor_Scalar isin.Scalar_Tensor",
      lambda x, test, *, assume_unique=False, invert=False: T.isin(x, test, assume_unique=assume_unique, invert=invert))
_aten("angle.default", T.angle)
_aten("diagonal_scatter.default", T.diagonal_scatter)
_aten("masked_scatter.default", T.masked_scatter)
_aten("cumprod.default", T.cumprod)
_aten("histc.default", T.histc)
_aten("logcumsumexp.default", T.logcumsumexp)
_aten("diff.default", T.diff)
_aten("softmax.int", lambda x, dim, dtype=None: F.softmax(x, dim, _dt(dtype)))
_aten("_softmax.default", lambda x, dim, half_to_float=False: F.softmax(x, dim, dtypes.float32 if half_to_float
                                                                          else None))
_aten("log_softmax.int", lambda x, dim, dtype=None: F.log_softmax(x, dim, _dt(dtype)))
_aten("_log_softmax.default", lambda x, dim, half_to_float=False: F.log_softmax(x, dim, dtypes.float32
                                                                                if half_to_float else None))

# linear algebra
_aten("linear.default", lambda x, w, b=None: F.linear(x, w, b))
_aten("addmm.default", _addmm)
_aten("baddbmm.default", _baddbmm)
_aten("mm.default", T.mm)
_aten("bmm.default", T.bmm)
_aten("matmul.default", T.matmul)

# normalization / conv / pooling / attention
_aten("layer_norm.default", lambda x, shape, w=None, b=None, eps=1e-5, cudnn_enable=True:
      F.layer_norm(x, tuple(shape), w, b, eps))
_aten("native_layer_norm.default", _native_layer_norm)
_aten("group_norm.default", lambda x, groups, w=None, b=None, eps=1e-5, cudnn_enabled=True:
      F.group_norm(x, groups, w, b, eps))
_aten("native_group_norm.default", _native_group_norm)
_aten("_native_batch_norm_legit.no_stats", _bn_batch_stats)
_aten("instance_norm.default", _instance_norm)
_aten("batch_norm.default", _batch_norm)
_aten("_native_batch_norm_legit_no_training.default", _bn_no_training)
_aten("conv2d.default conv2d.padding", _conv(F.conv2d))
_aten("conv1d.default conv1d.padding", _conv(F.conv1d))
_aten("conv3d.default conv3d.padding", _conv(F.conv3d))
_aten("convolution.default", _convolution)
_aten("conv_transpose1d.default", F.conv_transpose1d)
_aten("conv_transpose2d.input", F.conv_transpose2d)
_aten("conv_transpose3d.input", F.conv_transpose3d)
_aten("max_pool2d.default", _max_pool2d)
_values_only("max_pool2d_with_indices.default", _max_pool2d)
_aten("max_pool3d.default", _max_pool3d)
_values_only("max_pool3d_with_indices.default", _max_pool3d)
_aten("avg_pool2d.default", _avg_pool2d)
_aten("avg_pool3d.default", _avg_pool3d)
_aten("avg_pool1d.default", _avg_pool1d)
_aten("max_pool1d.default", _max_pool1d)
_values_only("max_pool1d_with_indices.default", _max_pool1d)
_values_only("adaptive_max_pool1d.default", lambda x, output_size: F.adaptive_max_pool1d(x, output_size))
_values_only("adaptive_max_pool3d.default", lambda x, output_size: F.adaptive_max_pool3d(x, output_size))
_aten("adaptive_avg_pool2d.default _adaptive_avg_pool2d.default", F.adaptive_avg_pool2d)
_aten("adaptive_avg_pool1d.default", F.adaptive_avg_pool1d)
_aten("adaptive_avg_pool3d.default _adaptive_avg_pool3d.default", F.adaptive_avg_pool3d)
_values_only("adaptive_max_pool2d.default", lambda x, output_size: F.adaptive_max_pool2d(x, output_size))
_aten("upsample_nearest1d.vec upsample_nearest1d.default upsample_nearest2d.vec upsample_nearest2d.default "
      "upsample_nearest3d.vec upsample_nearest3d.default", _upsample("nearest"))
_aten("_upsample_nearest_exact1d.vec _upsample_nearest_exact1d.default _upsample_nearest_exact2d.vec "
      "_upsample_nearest_exact2d.default _upsample_nearest_exact3d.vec _upsample_nearest_exact3d.default",
      _upsample("nearest-exact"))
_aten("upsample_trilinear3d.vec upsample_trilinear3d.default", _upsample("trilinear"))
_aten("_upsample_lanczos2d_aa.vec _upsample_lanczos2d_aa.default", _upsample("lanczos", antialias=True))
_aten("upsample_bilinear2d.vec upsample_bilinear2d.default", _upsample("bilinear"))
_aten("upsample_bicubic2d.vec upsample_bicubic2d.default", _upsample("bicubic"))
_aten("upsample_linear1d.vec upsample_linear1d.default", _upsample("linear"))
_aten("_upsample_bilinear2d_aa.vec _upsample_bilinear2d_aa.default", _upsample("bilinear", antialias=True))
_aten("_upsample_bicubic2d_aa.vec _upsample_bicubic2d_aa.default", _upsample("bicubic", antialias=True))
_aten("grid_sampler.default grid_sampler_2d.default grid_sampler_3d.default", _grid_sampler)
_aten("affine_grid_generator.default", lambda theta, size, align_corners: F.affine_grid(theta, size, align_corners))
_aten("scaled_dot_product_attention.default", _sdpa)
_aten("_scaled_dot_product_flash_attention_for_cpu.default", _sdpa_cpu)
