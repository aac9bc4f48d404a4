"""from_torch through torch.export: for models torch.fx cannot trace (Hugging Face transformers, code with
Python control flow on shapes, item assignment on tensors, ...), given example inputs.

    torch.export.export(module, example_inputs, strict=False).run_decompositions({})

gives an ATen graph without mutations ("inference IR") that still keeps high-level ops (linear, layer_norm,
scaled_dot_product_attention, ...), which map 1:1 to tinydl ops. ATEN below is the mapping, keyed by the ATen
op overload's name (str(torch.ops.aten.linear.default) == "aten.linear.default"). An op missing from the
table is first decomposed by torch into smaller ATen ops, where torch has a decomposition for it; whatever is
still missing after that is reported at once (UnsupportedTorchOps, with node names and module paths), before
anything is built.

Parameters and buffers are read by their state_dict names (ExportedProgram.graph_signature) from the returned
module, which mirrors the torch module tree (modules.mirror + copy_weights), so it has the same state_dict keys
and load_state_dict works on it; lifted tensor constants (tensors created inside forward) come from
ExportedProgram.constants; a buffer that forward assigns is assigned in the converted module too.

Limitation: the exported graph is specialized to the example inputs: their shapes (and the values of non-tensor
arguments) are baked in, so the converted module only accepts inputs of the same shapes (it says so when called
with others). Outputs keep the torch model's structure (a tuple, a dict, a Hugging Face ModelOutput, ...) with
tinydl tensors in it.
"""
from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import operator

import numpy as np

from .. import dtypes, indexing
from ..nn import functional as F
from ..tensor import Tensor
from . import fx, modules
from .convert import UnsupportedTorchOps

T = importlib.import_module("..tensor", __package__)  # the module (tinydl.tensor is also a function)
_dtype, _as_input = fx._dtype, fx._as_input


# -- helpers composed from tinydl ops ---------------------------------------------------------------------
def _dt(dtype, default=None):
    return default if dtype is None else _dtype(dtype)


def _dims(dim, ndim):
    """ATen's dim lists: None or [] mean every dim."""
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return tuple(range(ndim))
    return dim


def _cumsum(x: Tensor, dim: int, dtype=None) -> Tensor:
    """Inclusive prefix sum as a masked reduction: out[..., i] = sum_j x[..., j] * (j <= i) (O(n^2); small n)."""
    dt = _dt(dtype, dtypes.int32 if x.dtype.category < 2 else x.dtype)
    d = dim % x.ndim if x.ndim else 0
    if x.ndim == 0:
        return x.to(dt)
    n = x.shape[d]
    moved = x.to(dt).transpose(d, -1).unsqueeze(-2)                 # (..., 1, n): j on the last axis
    keep = T.arange(n).reshape(1, n) <= T.arange(n).reshape(n, 1)     # (n: i, n: j)
    out = T.where(keep, moved, T.zeros((), dtype=dt)).sum(-1)         # (..., n: i)
    return out.to(dt).transpose(d, -1)


def _diff(x: Tensor, n=1, dim=-1, prepend=None, append=None) -> Tensor:
    parts = [p for p in (prepend, x, append) if p is not None]
    d = dim % x.ndim
    y = T.cat(parts, d) if len(parts) > 1 else x
    for _ in range(n):
        size = y.shape[d]
        hi, lo = y._slice(d, 1, size, 1), y._slice(d, 0, size - 1, 1)
        y = T.ne(hi, lo) if y.dtype == dtypes.bool_ else hi - lo
    return y


def _tri(x: Tensor, diagonal: int, upper: bool) -> Tensor:
    r, c = x.shape[-2:]
    rows, cols = T.arange(r).reshape(r, 1), T.arange(c).reshape(1, c)
    keep = (cols - rows >= diagonal) if upper else (cols - rows <= diagonal)
    return T.where(keep, x, T.zeros((), dtype=x.dtype))


def _floor_divide(a, b):
    ints = all((v.dtype.category < 2) if isinstance(v, Tensor) else isinstance(v, (int, bool)) for v in (a, b))
    q = T.floor(T.div(a, b))
    return q.to(dtypes.int32) if ints else q


def _div_mode(a, b, rounding_mode=None):
    if rounding_mode is None:
        return T.div(a, b)
    if rounding_mode == "floor":
        return _floor_divide(a, b)
    q = T.div(a, b)
    q = T.sign(q) * T.floor(T.abs(q))
    ints = all((v.dtype.category < 2) if isinstance(v, Tensor) else isinstance(v, (int, bool)) for v in (a, b))
    return q.to(dtypes.int32) if ints else q


def _remainder(a, b):
    return a - _floor_divide(a, b) * b


def _to(x, *args, dtype=None, **_):
    for a in list(args) + [dtype]:
        a = _dtype(a)
        if isinstance(a, dtypes.DType):
            return x.to(a)
        if isinstance(a, Tensor):
            return x.to(a.dtype)
    return x  # device / layout / memory_format changes are no-ops


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


def _masked_fill(x, mask, value):
    return T.where(mask, value, x).to(x.dtype)


def _where_scalar(cond, a, b):
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        dt = dtypes.float32 if isinstance(a, float) or isinstance(b, float) else dtypes.promote(
            dtypes.scalar_dtype(a), dtypes.scalar_dtype(b))
        return T.where(cond, T.full((), a, dtype=dt), T.full((), b, dtype=dt))
    return T.where(cond, a, b)


def _sum(x, dim=None, keepdim=False, *, dtype=None):
    return T.sum(x, _dims(dim, x.ndim), keepdim, dtype=_dt(dtype))


def _mean(x, dim=None, keepdim=False, *, dtype=None):
    x = x.to(_dtype(dtype)) if dtype is not None else x
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


def _bn_no_training(x, weight, bias, running_mean, running_var, momentum, eps):
    return F.batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps), None, None


def _convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups, *_):
    if transposed:
        if w.ndim != 4:
            raise NotImplementedError(f"transposed convolution with a {w.ndim}-d weight is not supported")
        return F.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
    return (F.conv1d if w.ndim == 3 else F.conv2d)(x, w, b, stride, padding, dilation, groups)


def _conv(fn):
    return lambda x, w, b=None, stride=1, padding=0, dilation=1, groups=1: fn(x, w, b, stride, padding, dilation,
                                                                              groups)


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False):
    return F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def _sdpa_cpu(q, k, v, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale), None


def _max_pool2d(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return F.max_pool2d(x, kernel_size, stride or None, padding, dilation, ceil_mode)


def _avg_pool2d(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    return F.avg_pool2d(x, kernel_size, stride or None, padding, ceil_mode, count_include_pad, divisor_override)


def _upsample(mode):
    def f(x, output_size=None, *rest, scale_factors=None, align_corners=None, **_):
        if rest and isinstance(rest[0], bool):  # upsample_bilinear2d.vec(x, output_size, align_corners, scales)
            align_corners, rest = rest[0], rest[1:]
        if rest and scale_factors is None:
            scale_factors = rest[0]
        if output_size is not None:
            return F.interpolate(x, size=tuple(output_size), mode=mode, align_corners=align_corners)
        return F.interpolate(x, scale_factor=tuple(scale_factors), mode=mode, align_corners=align_corners)
    return f


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


def _same(x, *_, **__):
    return x


def _unsupported_view_dtype(x, dtype):
    raise NotImplementedError("Tensor.view(dtype) (a bitcast) is not supported")


# The table: ATen overload name -> tinydl callable taking the node's args/kwargs (torch dtypes already converted).
ATEN: dict = {}


def _aten(names: str, fn) -> None:
    for n in names.split():
        ATEN["aten." + n] = fn


# elementwise
for _name in ("neg abs sign exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu silu mish erf floor ceil round "
              "hardswish hardsigmoid logical_not").split():
    _aten(f"{_name}.default", getattr(T, _name))
_aten("relu6.default", T.relu6)
_aten("add.Tensor add.Scalar", lambda a, b, alpha=1: T.add(a, b if alpha == 1 else T.mul(b, alpha)))
_aten("sub.Tensor sub.Scalar", lambda a, b, alpha=1: T.sub(a, b if alpha == 1 else T.mul(b, alpha)))
_aten("rsub.Tensor rsub.Scalar", lambda a, b, alpha=1: T.sub(b, a if alpha == 1 else T.mul(a, alpha)))
_aten("mul.Tensor mul.Scalar", T.mul)
_aten("div.Tensor div.Scalar", T.div)
_aten("div.Tensor_mode div.Scalar_mode", _div_mode)
_aten("floor_divide.default floor_divide.Scalar", _floor_divide)
_aten("remainder.Tensor remainder.Scalar", _remainder)
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
for _name in "eq ne lt le gt ge".split():
    _aten(f"{_name}.Tensor {_name}.Scalar", getattr(T, _name))
_aten("logical_and.default", T.logical_and)
_aten("logical_or.default", T.logical_or)
_aten("logical_xor.default", lambda a, b: T.ne(a.bool(), b.bool() if isinstance(b, Tensor) else builtins.bool(b)))
_aten("bitwise_and.Tensor bitwise_and.Scalar __and__.Tensor __and__.Scalar", T.bitwise_and)
_aten("bitwise_or.Tensor bitwise_or.Scalar __or__.Tensor __or__.Scalar", T.bitwise_or)
_aten("bitwise_xor.Tensor bitwise_xor.Scalar __xor__.Tensor __xor__.Scalar", T.bitwise_xor)
_aten("bitwise_not.default", T.bitwise_not)
_aten("isnan.default", T.isnan)
_aten("isinf.default", T.isinf)
_aten("isfinite.default", T.isfinite)
_aten("where.self", T.where)
_aten("where.ScalarOther where.ScalarSelf where.Scalar", _where_scalar)
_aten("masked_fill.Scalar masked_fill.Tensor", _masked_fill)


def _elu(x, alpha, scale, input_scale):
    if scale != 1 or input_scale != 1:  # selu / celu forms
        return scale * T.where(x > 0, x, alpha * (T.exp(x * input_scale) - 1))
    return T.elu(x, alpha)


# dtype / identity / asserts
_aten("_to_copy.default to.dtype to.dtype_layout to.device to.other type_as.default", _to)
_aten("clone.default alias.default contiguous.default detach.default lift_fresh_copy.default", _same)
_aten("dropout.default feature_dropout.default alpha_dropout.default",
      lambda x, p=0.5, train=False: F.dropout(x, p, train))
_aten("_assert_tensor_metadata.default _assert_scalar.default _assert_async.msg sym_constrain_range.default "
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
_aten("split.Tensor split_with_sizes.default split_copy.Tensor split_with_sizes_copy.default", _split)
_aten("chunk.default", lambda x, chunks, dim=0: x.chunk(chunks, dim))
_aten("unbind.int", lambda x, dim=0: x.unbind(dim))
_aten("cat.default", lambda ts, dim=0: T.cat(list(ts), dim))
_aten("stack.default", lambda ts, dim=0: T.stack(list(ts), dim))
_aten("repeat.default", lambda x, sizes: fx._repeat(x, tuple(sizes)))
_aten("roll.default", lambda x, shifts, dims=(): x.roll(tuple(shifts), tuple(dims) or None))
_aten("constant_pad_nd.default", lambda x, pad, value=0: F.pad(x, tuple(pad), "constant", value))
_aten("pad.default", lambda x, pad, mode="constant", value=None: F.pad(x, tuple(pad), mode, value))
_aten("triu.default", lambda x, diagonal=0: _tri(x, diagonal, True))
_aten("tril.default", lambda x, diagonal=0: _tri(x, diagonal, False))

# indexing
_aten("index.Tensor", indexing.index)
_aten("index_select.default", lambda x, dim, index: x.index_select(dim, index))
_aten("gather.default", lambda x, dim, index, sparse_grad=False: x.gather(dim, index))
_aten("take.default", lambda x, index: x.take(index))
_aten("one_hot.default", lambda x, num_classes=-1: F.one_hot(x, num_classes))
_aten("embedding.default", lambda w, idx, padding_idx=-1, scale_grad_by_freq=False, sparse=False:
      F.embedding(idx, w))

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
_aten("cumsum.default", _cumsum)
_aten("diff.default", _diff)
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
_aten("batch_norm.default", _batch_norm)
_aten("_native_batch_norm_legit_no_training.default", _bn_no_training)
_aten("conv2d.default conv2d.padding", _conv(F.conv2d))
_aten("conv1d.default conv1d.padding", _conv(F.conv1d))
_aten("convolution.default", _convolution)
_aten("max_pool2d.default", _max_pool2d)
_aten("max_pool2d_with_indices.default", lambda *a, **k: (_max_pool2d(*a, **k), None))
_aten("avg_pool2d.default", _avg_pool2d)
_aten("adaptive_avg_pool2d.default _adaptive_avg_pool2d.default", F.adaptive_avg_pool2d)
_aten("adaptive_max_pool2d.default", lambda x, size: (F.adaptive_max_pool2d(x, size), None))
_aten("upsample_nearest2d.vec upsample_nearest2d.default", _upsample("nearest"))
_aten("upsample_bilinear2d.vec upsample_bilinear2d.default", _upsample("bilinear"))
_aten("scaled_dot_product_attention.default", _sdpa)
_aten("_scaled_dot_product_flash_attention_for_cpu.default", _sdpa_cpu)

# python-level calls that appear in ATen graphs
ATEN["_operator.getitem"] = operator.getitem
ATEN["getitem"] = operator.getitem


def op_name(target) -> str:
    """The table key of a call_function target: 'aten.linear.default', '_operator.getitem', ..."""
    if target is operator.getitem:
        return "_operator.getitem"
    name = str(target)
    if name.startswith("<") and hasattr(target, "__name__"):
        name = f"{getattr(target, '__module__', '') or ''}.{target.__name__}".lstrip(".")
    return name


# -- the program ------------------------------------------------------------------------------------------
class ExportProgram:
    """The exported ATen graph with resolved tinydl callables; `run` is the converted module's forward."""

    def __init__(self, ep, signature, example_args, example_kwargs):
        import torch
        import torch.utils._pytree as pytree

        self.pytree = pytree
        self.graph = ep.graph_module.graph
        self.in_spec, self.out_spec = ep.call_spec.in_spec, ep.call_spec.out_spec
        self.example_nargs = len(example_args)
        self.example_kwarg_names = list(example_kwargs)
        self.signature = signature
        # tensors created inside forward (lifted constants, or get_attr constants): host copies here, uploaded
        # at the first run in the model's floating dtype (and again if that changes)
        self.host_constants = {k: _host(v) for k, v in getattr(ep, "constants", {}).items()
                               if isinstance(v, torch.Tensor)}
        # the model's floating dtype: after .half() the graph's float32 (traced in float32: dtype=torch.float32
        # arguments, float32 constants) is read as float16, as the torch model would have built them
        self.float_dtype = dtypes.float32
        self._uploaded_as = None  # the float dtype self.constants / self.attrs were uploaded in
        self.host_attrs = {}
        for node in self.graph.nodes:
            if node.op == "get_attr":
                obj = ep.graph_module
                for part in node.target.split("."):
                    obj = getattr(obj, part)
                self.host_attrs[node.name] = _host(obj) if isinstance(obj, torch.Tensor) else obj
        specs = ep.graph_signature.input_specs
        self.inputs = {}  # placeholder name -> ("state", state_dict name) | ("constant", name) | ("user", k)
        self.user_examples = []
        for s in specs:
            kind = s.kind.name
            if kind == "USER_INPUT":
                self.inputs[s.arg.name] = ("user", len(self.user_examples))
                self.user_examples.append(s)
            elif kind in ("PARAMETER", "BUFFER"):
                self.inputs[s.arg.name] = ("state", s.target)
            elif kind == "CONSTANT_TENSOR" and s.target in self.host_constants:
                self.inputs[s.arg.name] = ("constant", s.target)
            else:
                self.inputs[s.arg.name] = ("unsupported", f"input of kind {kind}")
        # the output node lists buffer mutations (new values of buffers forward assigns) before the user outputs
        self.outputs = [(o.kind.name, o.target) for o in ep.graph_signature.output_specs]
        self.steps = []
        for node in self.graph.nodes:
            fn = ATEN.get(op_name(node.target)) if node.op == "call_function" else None
            self.steps.append((node, fn))
        self.sibling_linears = _sibling_linears(self.steps, self.inputs)
        self.joined_weights: dict = {}  # see _run_sibling_linears

    def missing(self) -> list[tuple[str, str, str]]:
        out = []
        for node, fn in self.steps:
            if node.op == "call_function" and fn is None:
                out.append((op_name(node.target), node.name, fx._where(node)))
            elif node.op == "placeholder" and self.inputs.get(node.name, ("",))[0] == "unsupported":
                out.append((self.inputs[node.name][1], node.name, ""))
            elif node.op == "get_attr" and not isinstance(self.attrs.get(node.name), np.ndarray):
                out.append((f"attribute of type {type(self.attrs.get(node.name)).__name__}", node.name,
                            fx._where(node)))
            elif node.op not in ("placeholder", "call_function", "output", "get_attr"):
                out.append((f"graph node kind {node.op}", node.name, fx._where(node)))
        for kind, target in self.outputs:
            if kind not in ("USER_OUTPUT", "BUFFER_MUTATION"):
                out.append((f"output of kind {kind}", str(target), ""))
        return out

    # -- inputs
    def _user_leaves(self, args, kwargs, model: str = "Module") -> list:
        sig = self.signature
        if sig is not None and not any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
            # arrange the call like the example: the same arguments positional, the same ones by keyword
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as e:
                fx._binding_stub(model, sig)(None, *args, **kwargs)  # Python's own wording, as torch's call
                raise TypeError(f"{model}.forward(): {e}") from None
            values = {}
            for name, v in bound.arguments.items():
                if sig.parameters[name].kind == inspect.Parameter.VAR_KEYWORD:
                    values.update(v)
                else:
                    values[name] = v
            pos_names = [n for n, p in sig.parameters.items() if p.kind != p.VAR_KEYWORD][:self.example_nargs]
            extra = [k for k, v in values.items()
                     if k not in pos_names and k not in self.example_kwarg_names and v is not None]
            if extra:
                raise RuntimeError(f"the model was exported without argument(s) {extra}; pass them in example_inputs "
                                   f"to from_torch to use them (the exported graph is specialized to the example "
                                   f"inputs)")

            def value(n):
                if n in values:
                    return values[n]
                p = sig.parameters.get(n)
                return p.default if p is not None and p.default is not inspect.Parameter.empty else None
            args = tuple(value(n) for n in pos_names)
            kwargs = {k: value(k) for k in self.example_kwarg_names}
        leaves, spec = self.pytree.tree_flatten((tuple(args), dict(kwargs)))
        if spec != self.in_spec:
            raise RuntimeError(f"inputs do not have the structure of the example inputs the model was exported "
                               f"with: expected {self.in_spec}, got {spec}")
        return leaves

    def _upload(self, v):
        t = T.tensor(v)
        return t.to(self.float_dtype).realize() if t.dtype is dtypes.float32 and \
            self.float_dtype is not dtypes.float32 else t

    def run(self, root, args, kwargs):
        leaves = self._user_leaves(args, kwargs, getattr(root, "_name", type(root).__name__))
        if self._uploaded_as is not self.float_dtype:
            self.constants = {k: self._upload(v) for k, v in self.host_constants.items()}
            self.attrs = {k: self._upload(v) for k, v in self.host_attrs.items()}
            self._uploaded_as = self.float_dtype
        env = {}
        # not a recursive closure: that is a reference cycle holding env's tensors (their buffers) until gc
        load = functools.partial(_load, env, self.float_dtype)

        for node, fn in self.steps:
            if node.op == "placeholder":
                kind, key = self.inputs[node.name]
                if kind == "state":
                    env[node.name] = fx._fetch(root, key)
                elif kind == "constant":
                    env[node.name] = self.constants[key]
                else:
                    env[node.name] = self._check_input(node, key, leaves[key])
            elif node.op == "get_attr":
                env[node.name] = self.attrs[node.name]
            elif node.op == "call_function" and node.name in self.sibling_linears:
                if node.name not in env:  # the group's first linear computes all of them
                    _run_sibling_linears(self.sibling_linears[node.name], env, self.joined_weights)
            elif node.op == "call_function":
                env[node.name] = fn(*load(node.args), **load(node.kwargs))
            elif node.op == "output":
                user = []
                for (kind, target), value in zip(self.outputs, load(node.args[0])):
                    if kind == "BUFFER_MUTATION":  # forward assigned the buffer: so does the converted module
                        fx._fetch(root, target).node = value.node
                    else:
                        user.append(value)
                return self.pytree.tree_unflatten(user, self.out_spec)
        raise RuntimeError("graph without output")

    def _check_input(self, node, k, value):
        spec = self.user_examples[k]
        example = node.meta.get("val")
        if type(spec.arg).__name__ == "ConstantArgument" or not hasattr(example, "shape"):
            want = getattr(spec.arg, "value", example)
            if value != want:
                raise RuntimeError(f"argument '{node.name}' was {want!r} in the example inputs and is baked into the "
                                   f"exported graph; got {value!r}")
            return value
        value = _as_input(value)
        if not isinstance(value, Tensor):
            raise TypeError(f"argument '{node.name}' must be a tensor, got {type(value).__name__}")
        want = tuple(int(s) for s in example.shape)
        if tuple(value.shape) != want:
            raise RuntimeError(f"argument '{node.name}' has shape {list(value.shape)}, but the model was exported "
                               f"with example inputs of shape {list(want)}: the torch.export graph is specialized "
                               f"to the example shapes; convert again with example inputs of this shape")
        return value


def _sibling_linears(steps, inputs) -> dict:
    """Linear layers that read the same input with parameter weights (attention's q/k/v projections, a gated
    MLP's gate/up): each group runs as one GEMM over the weights concatenated along the output features, its
    result sliced per layer. One wide GEMM fills the GPU better than several narrow ones, and saves their
    dispatches. The concatenated weights are a copy, made once and kept (see _run_sibling_linears). Returns
    node name -> the group's nodes in graph order."""
    def is_param(a):
        return getattr(a, "op", None) == "placeholder" and inputs.get(a.name, ("",))[0] == "state"

    groups: dict = {}
    for node, _ in steps:
        if node.op != "call_function" or op_name(node.target) != "aten.linear.default" or node.kwargs:
            continue
        x, w, b = (list(node.args) + [None])[:3]
        if is_param(w) and (b is None or is_param(b)):
            groups.setdefault((x, b is None), []).append(node)
    return {n.name: g for g in groups.values() if len(g) > 1 for n in g}


def _load(env: dict, float_dtype, a):
    """An ATen node's argument with its fx nodes replaced by their values in env (float32 as float_dtype)."""
    import torch.fx
    if isinstance(a, torch.fx.Node):
        return env[a.name]
    if isinstance(a, (list, tuple)):
        return [_load(env, float_dtype, x) for x in a] if isinstance(a, list) else \
            tuple(_load(env, float_dtype, x) for x in a)
    if isinstance(a, dict):
        return {k: _load(env, float_dtype, v) for k, v in a.items()}
    a = _dtype(a)
    return float_dtype if a is dtypes.float32 else a


def _run_sibling_linears(group, env, joined: dict) -> None:
    """Run a group of sibling linears as one GEMM. joined: group -> its concatenated weight and bias, realized
    the first time and kept while the parameters are the same tensors (loading or casting weights gives them
    new nodes: joined again). A copy costs the group's weight memory once more, but a GEMM that reads the
    weights where they lie, through a cat's index math in its loads (a branch per element), measured 15
    TFLOP/s against 24 from one buffer (BERT-b8's q/k/v projection, H100, 2026-11-21)."""
    x = env[group[0].args[0].name]
    weights = [env[n.args[1].name] for n in group]
    biases = [env[n.args[2].name] for n in group] if len(group[0].args) > 2 else None
    if x.shape[-1] != weights[0].shape[1] or any(w.ndim != 2 or w.shape[1] != weights[0].shape[1] or
                                                   w.dtype != weights[0].dtype for w in weights):
        for k, (n, w) in enumerate(zip(group, weights)):  # a fused GEMM cannot take these: each alone, its errors
            env[n.name] = F.linear(x, w, biases[k] if biases else None)
        return
    key = tuple(t.node.uid for t in weights + (biases or []))
    cached = joined.get(group[0].name)
    if cached is None or cached[0] != key:
        cached = joined[group[0].name] = (key, T.cat(weights).clone().realize(),
                                          T.cat(biases).clone().realize() if biases else None)
    y = F.linear(x, cached[1], cached[2])
    for n, part in zip(group, y.split([w.shape[0] for w in weights], -1)):
        env[n.name] = part


# -- conversion -------------------------------------------------------------------------------------------
def _to_torch(x):
    import torch
    if isinstance(x, Tensor):
        a = x.numpy()
        return torch.from_numpy(a.astype(np.int64) if a.dtype == np.int32 else a)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_torch(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_torch(v) for k, v in x.items()}
    return x


def _split_example(example_inputs):
    """example_inputs: a tuple of positional arguments, a dict of keyword arguments, or (tuple, dict)."""
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if (isinstance(example_inputs, tuple) and len(example_inputs) == 2 and isinstance(example_inputs[0], tuple)
            and isinstance(example_inputs[1], dict)):
        return example_inputs[0], dict(example_inputs[1])
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    return tuple(example_inputs), {}


def export(module, args, kwargs):
    import torch
    with torch.no_grad():
        return torch.export.export(module, args, kwargs, strict=False)


def lower(ep):
    """run_decompositions({}): the functional inference IR, high-level ops kept. Ops ATEN lacks are then
    decomposed with torch's own decompositions for just those ops, as long as that helps. Returns the lowered
    program and the op overloads still missing ([] when every op maps)."""
    import warnings

    import torch
    try:
        full_table = torch.export.default_decompositions()
    except Exception:  # noqa: BLE001 - an older torch without it: no fallback decompositions
        full_table = {}
    table = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)  # torch-internal noise
        for _ in range(6):
            lowered = ep.run_decompositions(dict(table))
            missing = sorted({n.target for n in lowered.graph.nodes
                              if n.op == "call_function" and op_name(n.target) not in ATEN}, key=str)
            new = {op: full_table[op] for op in missing if op in full_table and op not in table}
            if not missing or not new:
                return lowered, missing
            table.update(new)
    return lowered, missing


def convert(tm, example_inputs):
    args, kwargs = _split_example(example_inputs)
    args, kwargs = _to_torch(args), _to_torch(kwargs)
    name = type(tm).__name__
    ep = export(tm, args, kwargs)
    lowered, _ = lower(ep)
    try:
        signature = inspect.signature(tm.forward)
    except (TypeError, ValueError):
        signature = None
    program = ExportProgram(lowered, signature, args, kwargs)
    missing = program.missing()
    if missing:
        raise UnsupportedTorchOps(name, missing)
    tree = modules.mirror(tm)
    modules.copy_weights(tree, tm)
    out = fx.TorchFxModule(tree, program, name)
    out.eval()
    return out


def _host(t):
    t = t.detach().cpu()
    if str(t.dtype) in ("torch.bfloat16", "torch.float64"):
        t = t.float()
    return t.numpy()


__all__ = ["convert", "ATEN", "ExportProgram", "op_name"]
