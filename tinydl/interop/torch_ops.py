"""torch-level calls of fx graphs whose arguments differ from tinydl's, registered by qualified name (Python
operators and builtins too: `_operator.add`, `builtins.getattr`). Every other torch call resolves by name
(fx.resolve_function), since tinydl's API mirrors torch's."""
from __future__ import annotations

import builtins
import math
import operator

from .. import dtypes
from ..nn import functional as F
from ..linalg import linalg_cross
from ..nn.functional_distances import cdist
from .. import _tensor as T
from .._tensor import Tensor, _varargs, arange, cat, full, ones, tensor, zeros
from .registry import VALUES_ONLY, implements, to_dtype



@implements("torch.Tensor.to", "torch.Tensor.type", "aten._to_copy.default aten.to.dtype aten.to.dtype_layout "
            "aten.to.device aten.to.other aten.type_as.default")
def to(x, *args, **kwargs):
    """x.to(...) in any of torch's forms: the first dtype (or tensor, for its dtype) among the arguments; device,
    layout and memory_format changes are no-ops."""
    for a in list(args) + list(kwargs.values()):
        a = to_dtype(a)
        if isinstance(a, dtypes.DType):
            return x.to(a)
        if isinstance(a, Tensor):
            return x.to(a.dtype)
    return x


@implements("torch.Tensor.size")
def _size(x, dim=None):
    return x.size(dim) if dim is not None else tuple(x.shape)


@implements("torch.Tensor.view", "torch.Tensor.reshape")
def _view(x, *shape):
    if len(shape) == 1 and type(shape[0]).__module__ == "torch" and type(shape[0]).__name__ == "dtype":
        raise NotImplementedError("Tensor.view(dtype) (a bitcast) is not supported")
    return x.reshape(*shape)


@implements("torch.Tensor.repeat")
def repeat(x, *sizes):
    sizes = _varargs(sizes)
    lead = len(sizes) - x.ndim
    x = x.reshape((1,) * lead + x.shape)
    out = x
    for d, r in enumerate(sizes):
        if r != 1:
            out = cat([out] * r, d)
    return out


implements("torch.flatten")(lambda x, start_dim=0, end_dim=-1: x.flatten(start_dim, end_dim))
implements("torch.Tensor.permute")(lambda x, *dims: x.permute(*dims))
implements("torch.Tensor.contiguous")(lambda x, *a, **k: x)
implements("torch.Tensor.dim")(lambda x: x.ndim)
implements("torch.Tensor.numel")(lambda x: x.numel())
implements("torch.Tensor.float")(lambda x: x.float())
implements("torch.Tensor.half")(lambda x: x.half())
implements("torch.Tensor.long", "torch.Tensor.int")(lambda x: x.int())
implements("torch.Tensor.bool")(lambda x: x.bool())
implements("torch.Tensor.masked_fill")(lambda x, mask, value: x.masked_fill(mask, value))
implements("torch.Tensor.__getitem__", "_operator.getitem", "getitem")(operator.getitem)
# creation: torch's own keyword names and no **kwargs, so that a keyword these do not take is listed at conversion
# (arguments.fit; devices and the like dropped there) instead of swallowed (torch.zeros(size=...) made a scalar)
implements("torch.scalar_tensor")(lambda s, dtype=None: full((), s, dtype=to_dtype(dtype)))
implements("torch._assert")(lambda cond, msg=None: None)  # shapes the tracer checked; tinydl checks shapes itself
implements("torch.tensor")(lambda data, dtype=None: tensor(data, to_dtype(dtype)))
implements("torch.zeros")(lambda *sizes, size=None, dtype=None: zeros(*_sizes_arg(sizes, size), dtype=to_dtype(dtype)))
implements("torch.ones")(lambda *sizes, size=None, dtype=None: ones(*_sizes_arg(sizes, size), dtype=to_dtype(dtype)))
implements("torch.full")(lambda size, fill_value, dtype=None: full(size, fill_value, dtype=to_dtype(dtype)))


def _sizes_arg(sizes: tuple, size) -> tuple:
    """torch.zeros(2, 3), torch.zeros((2, 3)) or torch.zeros(size=(2, 3))."""
    if size is None:
        return sizes
    if sizes:
        raise TypeError("zeros() received an invalid combination of arguments: a size both by position and as size=")
    return (size,)


@implements("torch.arange")
def _torch_arange(*args, start=None, end=None, step=None, dtype=None):
    """torch.arange's forms: (end), (start, end), (start, end, step), any of them by keyword (a keyword once
    swallowed: torch.arange(0, n, step=2) made n values)."""
    if len(args) == 1 and start is None and end is None and step is None:
        args = (0, args[0])
    given = dict(zip(("start", "end", "step"), args))
    for name, value in (("start", start), ("end", end), ("step", step)):
        if value is not None:
            if name in given:
                raise TypeError(f"arange() got multiple values for argument '{name}'")
            given[name] = value
    if "end" not in given:
        raise TypeError("arange() missing required argument 'end'")
    return arange(given.get("start", 0), given["end"], given.get("step", 1), dtype=to_dtype(dtype))


# torch.embedding is ATen's (weight, indices, ...), F.embedding's order reversed: by name it resolved to F.embedding
# with the two swapped; padding_idx, scale_grad_by_freq and sparse change only gradients
implements("torch.embedding")(lambda weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False:
                              F.embedding(indices, weight))
implements("torch.functional.split")(lambda x, split_size_or_sections, dim=0: x.split(split_size_or_sections, dim))
implements("torch.Tensor.reshape_as", "torch.Tensor.view_as")(lambda x, other: x.reshape(other.shape))

# torch.nn.functional calls with arguments tinydl does not take (inplace, _stacklevel) or torch dtypes
implements("torch.nn.functional.dropout")(lambda x, p=0.5, training=False, inplace=False: F.dropout(x, p, training))
for _name in ("relu", "relu6", "silu", "hardswish", "hardsigmoid"):
    implements(f"torch.nn.functional.{_name}")(lambda x, inplace=False, _f=getattr(F, _name): _f(x))
implements("torch.nn.functional.leaky_relu")(
    lambda x, negative_slope=0.01, inplace=False: F.leaky_relu(x, negative_slope))
implements("torch.nn.functional.elu")(lambda x, alpha=1.0, inplace=False: F.elu(x, alpha))
implements("torch.nn.functional.hardtanh")(
    lambda x, min_val=-1.0, max_val=1.0, inplace=False: F.hardtanh(x, min_val, max_val))
implements("torch.nn.functional.softmax")(
    lambda x, dim=None, _stacklevel=3, dtype=None: F.softmax(x, dim, to_dtype(dtype)))
implements("torch.nn.functional.log_softmax")(
    lambda x, dim=None, _stacklevel=3, dtype=None: F.log_softmax(x, dim, to_dtype(dtype)))
# F.max_pool2d/3d(..., return_indices=True) as fx records them: the values only (registry.VALUES_ONLY: a graph
# that reads the indices is refused at conversion)
for _d in (2, 3):
    implements(f"torch.nn.functional.max_pool{_d}d_with_indices")(
        lambda x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
        _f=getattr(F, f"max_pool{_d}d"): (_f(x, kernel_size, stride, padding, dilation, ceil_mode), None))
    VALUES_ONLY.add(f"torch.nn.functional.max_pool{_d}d_with_indices")
# functions fx records under another name than torch.nn.functional's public one
implements("torch.nn.functional.log_sigmoid")(F.logsigmoid)
implements("torch.nn.functional._threshold")(F.threshold)
# torch.rrelu is ATen's (..., training, generator), F.rrelu's fifth is inplace; the generator draws only in training
implements("torch.rrelu")(lambda input, lower=1.0 / 8, upper=1.0 / 3, training=False, generator=None:
                          F.rrelu(input, lower, upper, training))
implements("torch.softmax", "torch.Tensor.softmax")(lambda x, dim, dtype=None: F.softmax(x, dim, to_dtype(dtype)))

_TENSOR_ATTRS = {"device": lambda x: "webgpu", "is_cuda": lambda x: False, "data": lambda x: x,
                 "requires_grad": lambda x: False}


@implements("builtins.getattr")
def _getattr(obj, name, *default):
    """x.device & co. read in a traced forward: tinydl tensors have one device; the value only feeds str()/moves."""
    if isinstance(obj, Tensor) and name in _TENSOR_ATTRS:
        return _TENSOR_ATTRS[name](obj)
    return getattr(obj, name, *default)


# Python operators and builtins in fx graphs, by qualified name (`_operator.add`); in-place forms compute anew
for _op in ("add sub mul truediv floordiv matmul neg pow eq ne lt le gt ge and_ or_ invert xor mod").split():
    implements(f"_operator.{_op}")(getattr(operator, _op))
implements("_operator.iadd")(operator.add)
implements("_operator.imul")(operator.mul)
for _fn in (builtins.len, builtins.int, builtins.float):
    implements(f"builtins.{_fn.__name__}")(_fn)
implements("math.sqrt")(math.sqrt)


implements("torch.linalg.cross")(lambda input, other, dim=-1: linalg_cross(input, other, dim))


@implements("torch.linalg.vector_norm", "aten.linalg_vector_norm.default")
def _vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):  # noqa: A002 - torch's name
    return T.vector_norm(x, ord, dim, keepdim, dtype=to_dtype(dtype) if dtype is not None else None)


@implements("torch.functional.norm", "torch.norm", "torch.Tensor.norm")
def _norm(x, p="fro", dim=None, keepdim=False, out=None, dtype=None):
    return T.norm(x, p, dim, keepdim, to_dtype(dtype) if dtype is not None else None)


# torch.special's names that are no torch.X (fx resolves torch.special.erfc & co. to tinydl's X by name)
implements("torch.special.expit")(T.sigmoid)

# torch.X defined in torch.functional: fx names them so
implements("torch.functional.cdist")(cdist)
implements("torch.functional.tensordot")(T.tensordot)
implements("torch.functional.block_diag")(T.block_diag)
implements("torch.functional.broadcast_tensors")(T.broadcast_tensors)
implements("torch.functional.meshgrid")(T.meshgrid)
for _n in (1, 2, 3):
    implements(f"torch.functional.atleast_{_n}d")(getattr(T, f"atleast_{_n}d"))
implements("torch.functional.unique")(T.unique)
implements("torch.functional.unique_consecutive")(T.unique_consecutive)


@implements("torch.functional.einsum", "torch.einsum")
def _einsum(equation, *operands):
    return T.einsum(equation, *operands)


@implements("aten.einsum.default")
def _aten_einsum(equation, tensors, *, path=None):
    return T.einsum(equation, *tensors)
