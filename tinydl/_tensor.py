"""Tensor: a lazy handle on a graph node. Every op builds a node (shape and dtype checked here, at the
call site); nothing runs on the GPU until data is needed (`.numpy()`, `.item()`, `.tolist()`, printing,
`.realize()`)."""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from . import dtypes
from .dtypes import DType
from .ops import BUFFER, CAT, CONST, IOTA, MATMUL, VIEW, Node
from .options import current as current_options
from .shapes import broadcast_shapes, infer_reshape, normalize_dim, normalize_dims

Scalar = (int, float, bool, np.number, np.bool_)
MaxMin = namedtuple("MaxMin", ["values", "indices"])


class Tensor:
    __slots__ = ("node", "__weakref__")
    __array_priority__ = 1000  # numpy scalars/arrays on the left defer to Tensor operators

    def __init__(self, node: Node):
        self.node = node

    # -- metadata ------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.shape

    @property
    def dtype(self) -> DType:
        return self.node.dtype

    @property
    def ndim(self) -> int:
        return len(self.node.shape)

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return self.node.numel

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[normalize_dim(dim, self.ndim)]

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # -- data ----------------------------------------------------------------------------------------
    def realize(self) -> "Tensor":
        from .schedule import realize
        realize(self)
        return self

    def numpy(self) -> np.ndarray:
        from .schedule import read
        return read(self)

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a.astype(dtype) if dtype is not None else a

    def __repr__(self) -> str:
        a = self.numpy()
        body = np.array2string(a, separator=", ", prefix="tensor(", threshold=1000, precision=4)
        suffix = "" if self.dtype in (dtypes.float32, dtypes.bool_) else f", dtype={self.dtype!r}"
        return f"tensor({body}{suffix})"

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return builtins.bool(self.item())

    def __float__(self):
        return builtins.float(self.item())

    def __int__(self):
        return builtins.int(self.item())

    def __index__(self):
        if self.dtype != dtypes.int32 or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self.item())

    # -- dtype ---------------------------------------------------------------------------------------
    def to(self, dtype) -> "Tensor":
        dtype = dtypes.to_dtype(dtype)
        if dtype == self.dtype:
            return self
        _check_dtype_available(dtype)
        return _elementwise("cast", self, arg=(dtype,))

    type = to

    def float(self):
        return self.to(dtypes.float32)

    def half(self):
        return self.to(dtypes.float16)

    def int(self):
        return self.to(dtypes.int32)

    def long(self):
        return self.to(dtypes.int32)

    def bool(self):
        return self.to(dtypes.bool_)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def detach(self):
        return self

    def cpu(self):
        return self

    def clone(self):
        """A copy in memory of its own where the data is already stored: a buffer, or buffers joined by a cat
        (one buffer then, unless the whole is larger than a storage binding allows). A lazy result is a value
        of its own already."""
        from .runtime import get_runtime
        if self.node.stored and (self.node.kind == BUFFER or
                                 self.numel() * self.dtype.itemsize <= get_runtime().max_binding_size):
            return _elementwise("cast", self, arg=(self.dtype,))
        return self

    # -- movement (views: index math, no copies) -----------------------------------------------------
    def reshape(self, *shape) -> "Tensor":
        shape = infer_reshape(_varargs(shape), self.numel())
        if shape == self.shape:
            return self
        n = self.node
        if n.kind == VIEW and n.op == "reshape":  # reshape of reshape: one reshape of the original
            return Tensor(n.srcs[0]).reshape(shape)
        if n.kind == CONST:
            return _const(n.arg, shape, n.dtype)
        return _view(self, "reshape", shape, shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        if self.ndim == 0:
            return self.reshape(1)
        s, e = normalize_dim(start_dim, self.ndim), normalize_dim(end_dim, self.ndim)
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        return self.reshape(self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:])

    def unflatten(self, dim: int, sizes) -> "Tensor":
        d = normalize_dim(dim, self.ndim)
        sizes = infer_reshape(sizes, self.shape[d]) if -1 in tuple(sizes) else tuple(sizes)
        if math.prod(sizes) != self.shape[d]:
            raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim "
                               f"{dim} ({self.shape[d]}) in the input tensor")
        return self.reshape(self.shape[:d] + sizes + self.shape[d + 1:])

    def squeeze(self, dim=None) -> "Tensor":
        dims = normalize_dims(dim, self.ndim) if dim is not None else tuple(range(self.ndim))
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))

    def unsqueeze(self, dim: int) -> "Tensor":
        d = normalize_dim(dim, self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def permute(self, *dims) -> "Tensor":
        dims = _varargs(dims)
        if len(dims) != self.ndim:
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                               f"length of the desired ordering of dimensions i.e. input.dim() = {self.ndim} is not "
                               f"equal to len(dims) = {len(dims)}")
        dims = tuple(normalize_dim(d, self.ndim) for d in dims)
        if len(set(dims)) != len(dims):
            raise RuntimeError("permute(): duplicate dims are not allowed.")
        if dims == tuple(range(self.ndim)):
            return self
        n = self.node
        if n.kind == VIEW and n.op == "permute":  # compose: a double transpose vanishes
            inner = n.arg
            return Tensor(n.srcs[0]).permute(tuple(inner[d] for d in dims))
        if n.kind == CONST:
            return _const(n.arg, tuple(self.shape[d] for d in dims), n.dtype)
        return _view(self, "permute", dims, tuple(self.shape[d] for d in dims))

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        d0, d1 = normalize_dim(dim0, self.ndim), normalize_dim(dim1, self.ndim)
        order = list(range(self.ndim))
        order[d0], order[d1] = order[d1], order[d0]
        return self.permute(order)

    swapaxes = transpose

    def t(self) -> "Tensor":
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self.transpose(0, 1) if self.ndim == 2 else self

    @property
    def T(self) -> "Tensor":
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> "Tensor":
        if self.ndim < 2:
            raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got {self.ndim}-D "
                               f"tensor.")
        return self.transpose(-2, -1)

    def expand(self, *shape) -> "Tensor":
        shape = _varargs(shape)
        if len(shape) < self.ndim:
            raise RuntimeError(f"expand(torch.FloatTensor{{{list(self.shape)}}}, size={list(shape)}): the number of "
                               f"sizes provided ({len(shape)}) must be greater or equal to the number of dimensions "
                               f"in the tensor ({self.ndim})")
        lead = len(shape) - self.ndim
        full = (1,) * lead + self.shape
        out = []
        for i, (have, want) in enumerate(zip(full, shape)):
            if want == -1:
                if i < lead:
                    raise RuntimeError(f"The expanded size of the tensor (-1) isn't allowed in a leading, "
                                       f"non-existing dimension {i}")
                want = have
            if have != want and have != 1:
                raise RuntimeError(f"The expanded size of the tensor ({want}) must match the existing size ({have}) "
                                   f"at non-singleton dimension {i}.  Target sizes: {list(shape)}.  Tensor sizes: "
                                   f"{list(self.shape)}")
            out.append(want)
        out = tuple(out)
        if out == self.shape:
            return self
        if self.node.kind == CONST:
            return _const(self.node.arg, out, self.dtype)
        base = self.reshape(full) if lead else self
        if out == base.shape:
            return base
        return _view(base, "expand", out, out)

    def expand_as(self, other: "Tensor") -> "Tensor":
        return self.expand(other.shape)

    def contiguous(self) -> "Tensor":
        return self  # every node's output is contiguous; views are materialized by the kernel reading them

    def _slice(self, dim: int, start: int, stop: int, step: int) -> "Tensor":
        size = self.shape[dim]
        start, stop, step = slice(start, stop, step).indices(size)
        length = builtins.max(0, (stop - start + step - 1) // step)
        if start == 0 and step == 1 and length == size:
            return self
        starts = [0] * self.ndim
        steps = [1] * self.ndim
        starts[dim], steps[dim] = start, step
        shape = self.shape[:dim] + (length,) + self.shape[dim + 1:]
        return _view(self, "slice", (tuple(starts), tuple(steps)), shape)

    def narrow(self, dim: int, start: int, length: int) -> "Tensor": return narrow(self, dim, start, length)
    def split(self, split_size, dim: int = 0): return split(self, split_size, dim)
    def chunk(self, chunks: int, dim: int = 0): return chunk(self, chunks, dim)
    def unbind(self, dim: int = 0): return unbind(self, dim)
    def select(self, dim: int, index: int) -> "Tensor": return select(self, dim, index)
    def roll(self, shifts, dims=None) -> "Tensor": return roll(self, shifts, dims)

    def __getitem__(self, index) -> "Tensor":
        """torch's indexing (basic, then advanced indices); see indexing.py."""
        return _getitem(self, index)

    def index_select(self, dim: int, index) -> "Tensor": return index_select(self, dim, index)
    def take(self, index) -> "Tensor": return take(self, index)
    def gather(self, dim: int, index) -> "Tensor": return gather(self, dim, index)

    # -- elementwise ---------------------------------------------------------------------------------
    def __add__(self, o): return add(self, o)
    def __radd__(self, o): return add(o, self)
    def __sub__(self, o): return sub(self, o)
    def __rsub__(self, o): return sub(o, self)
    def __mul__(self, o): return mul(self, o)
    def __rmul__(self, o): return mul(o, self)
    def __truediv__(self, o): return div(self, o)
    def __rtruediv__(self, o):  # torch's __rdiv__ is self.reciprocal() * other (rounded in between for half)
        return mul(reciprocal(self), o) if isinstance(o, Scalar) and not isinstance(o, (bool, np.bool_)) else div(o, self)
    def __floordiv__(self, o): return floor_divide(self, o)
    def __rfloordiv__(self, o): return floor_divide(o, self)
    def __mod__(self, o): return remainder(self, o)
    def __rmod__(self, o): return remainder(o, self)
    def __pow__(self, o): return pow(self, o)
    def __rpow__(self, o): return pow(o, self)
    def __matmul__(self, o): return matmul(self, o)
    def __rmatmul__(self, o): return matmul(o, self)
    def __neg__(self): return neg(self)
    def __pos__(self): return self
    def __abs__(self): return abs(self)
    def __invert__(self):
        if self.dtype.is_floating_point:
            raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
        return bitwise_not(self)
    # torch's & | ^ are bitwise: on bool tensors logical, on integer tensors bit by bit (not a bool result)
    def __and__(self, o): return bitwise_and(self, o)
    def __rand__(self, o): return bitwise_and(o, self)
    def __or__(self, o): return bitwise_or(self, o)
    def __ror__(self, o): return bitwise_or(o, self)
    def __xor__(self, o): return bitwise_xor(self, o)
    def __rxor__(self, o): return bitwise_xor(o, self)
    def __eq__(self, o): return eq(self, o)  # noqa: PLE0302
    def __ne__(self, o): return ne(self, o)
    def __lt__(self, o): return lt(self, o)
    def __le__(self, o): return le(self, o)
    def __gt__(self, o): return gt(self, o)
    def __ge__(self, o): return ge(self, o)
    __hash__ = object.__hash__

    def add(self, o, alpha=1): return add(self, o if alpha == 1 else mul(o, alpha))
    def sub(self, o, alpha=1): return sub(self, o if alpha == 1 else mul(o, alpha))
    def mul(self, o): return mul(self, o)
    def div(self, o, rounding_mode=None): return div(self, o, rounding_mode=rounding_mode)
    def floor_divide(self, o): return floor_divide(self, o)
    def remainder(self, o): return remainder(self, o)
    def fmod(self, o): return fmod(self, o)
    def pow(self, o): return pow(self, o)
    def maximum(self, o): return maximum(self, o)
    def minimum(self, o): return minimum(self, o)
    def eq(self, o): return eq(self, o)
    def ne(self, o): return ne(self, o)
    def lt(self, o): return lt(self, o)
    def le(self, o): return le(self, o)
    def gt(self, o): return gt(self, o)
    def ge(self, o): return ge(self, o)
    def neg(self): return neg(self)
    def abs(self): return abs(self)
    def exp(self): return exp(self)
    def log(self): return log(self)
    def sqrt(self): return sqrt(self)
    def rsqrt(self): return rsqrt(self)
    def reciprocal(self): return reciprocal(self)
    def sin(self): return sin(self)
    def cos(self): return cos(self)
    def tanh(self): return tanh(self)
    def sigmoid(self): return sigmoid(self)
    def relu(self): return relu(self)
    def erf(self): return erf(self)
    def floor(self): return floor(self)
    def ceil(self): return ceil(self)
    def round(self): return round(self)
    def sign(self): return sign(self)
    def clamp(self, min=None, max=None): return clamp(self, min, max)
    clip = clamp
    def where(self, cond, other): return where(cond, self, other)
    def masked_fill(self, mask, value):  # torch keeps self's dtype: an int tensor filled with -1.5 holds -1
        if isinstance(value, Tensor):
            if value.ndim:
                raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                                   f"{value.ndim} dimension(s).")
            return where(mask, value.to(self.dtype), self)
        return where(mask, _const(_checked_scalar(value, self.dtype), (), self.dtype), self)
    def logical_not(self): return logical_not(self)
    def logical_and(self, o): return logical_and(self, o)
    def logical_or(self, o): return logical_or(self, o)
    def logical_xor(self, o): return logical_xor(self, o)
    def bitwise_not(self): return bitwise_not(self)
    def bitwise_and(self, o): return bitwise_and(self, o)
    def bitwise_or(self, o): return bitwise_or(self, o)
    def bitwise_xor(self, o): return bitwise_xor(self, o)
    def isnan(self): return isnan(self)
    def isinf(self): return isinf(self)
    def isfinite(self): return isfinite(self)
    def negative(self): return neg(self)
    def multiply(self, o): return mul(self, o)
    def divide(self, o): return div(self, o)
    def true_divide(self, o): return div(self, o)
    def subtract(self, o, alpha=1): return self.sub(o, alpha)
    def mm(self, o): return mm(self, o)
    def bmm(self, o): return bmm(self, o)
    def square(self): return pow(self, 2)
    def clamp_min(self, min): return clamp(self, min, None)  # noqa: A002
    def clamp_max(self, max): return clamp(self, None, max)  # noqa: A002
    def type_as(self, other): return self.to(other.dtype)
    def view_as(self, other): return self.reshape(other.shape)
    def reshape_as(self, other): return self.reshape(other.shape)
    def new_zeros(self, *size, dtype=None): return full(_varargs(size), 0, dtype or self.dtype)
    def new_ones(self, *size, dtype=None): return full(_varargs(size), 1, dtype or self.dtype)
    def new_full(self, size, fill_value, dtype=None): return full(_varargs((size,)), fill_value, dtype or self.dtype)
    def nelement(self): return self.numel()
    def ndimension(self): return self.ndim

    # -- reductions ----------------------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False, dtype=None): return sum(self, dim, keepdim, dtype=dtype)
    def mean(self, dim=None, keepdim=False): return mean(self, dim, keepdim)
    def prod(self, dim=None, keepdim=False): return prod(self, dim, keepdim)
    def max(self, dim=None, keepdim=False): return max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return min(self, dim, keepdim)
    def amax(self, dim=None, keepdim=False): return _reduce("max", self, dim, keepdim)
    def amin(self, dim=None, keepdim=False): return _reduce("min", self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return argmin(self, dim, keepdim)
    def any(self, dim=None, keepdim=False): return any(self, dim, keepdim)
    def all(self, dim=None, keepdim=False): return all(self, dim, keepdim)
    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return var(self, dim, unbiased, keepdim, correction=correction)
    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return std(self, dim, unbiased, keepdim, correction=correction)
    def softmax(self, dim, dtype=None): return softmax(self, dim, dtype)
    def log_softmax(self, dim, dtype=None): return log_softmax(self, dim, dtype)
    def cumsum(self, dim, dtype=None): return cumsum(self, dim, dtype)
    def diff(self, n=1, dim=-1, prepend=None, append=None): return diff(self, n, dim, prepend, append)
    def triu(self, diagonal=0): return triu(self, diagonal)
    def tril(self, diagonal=0): return tril(self, diagonal)
    def matmul(self, o): return matmul(self, o)


# -- construction ----------------------------------------------------------------------------------------
def _make(kind, op, srcs, arg, shape, dtype) -> Tensor:
    t = Tensor(Node(kind, op, tuple(s.node for s in srcs), arg, shape, dtype))
    if current_options().eager and kind not in (VIEW, CONST, IOTA):
        t.realize()
    return t


INDEX_LIMIT = 2**31  # kernels index in i32: each dim, and each run of dims a reshape regroups, stays below this


def _view(t: Tensor, op: str, arg, shape) -> Tensor:
    if t.node.kind != CONST:  # a constant's views never compute an index
        _check_index_range(op, t.shape, shape)
    return _make(VIEW, op, (t,), arg, shape, t.dtype)


def _check_index_range(op: str, src_shape, shape) -> None:
    """Views of 2^31+ elements work while every index a kernel computes fits i32 (expand(4096, 4096, 256) does); a
    dim of 2^31+ or a reshape that regroups 2^31+ elements would need wider indices: raise here, at the call, not
    with WGSL a driver rejects or an index that wraps."""
    big = next((d for d in tuple(shape) + tuple(src_shape) if d >= INDEX_LIMIT), None)
    if big is not None:
        raise NotImplementedError(f"{op} to shape {list(shape)}: a dimension of {big} elements; tinydl indexes with "
                                  f"32-bit integers (dimensions up to {INDEX_LIMIT - 1})")
    if op == "reshape" and math.prod(shape) >= INDEX_LIMIT:
        a, b = [d for d in shape if d != 1], [d for d in src_shape if d != 1]
        while a and b and a[-1] == b[-1]:  # trailing dims both shapes share pass through (expr._view)
            a, b = a[:-1], b[:-1]
        if a != b and math.prod(a) >= INDEX_LIMIT:
            raise NotImplementedError(f"reshape of {list(src_shape)} to {list(shape)} regroups {math.prod(a)} "
                                      f"elements; tinydl indexes with 32-bit integers (at most {INDEX_LIMIT - 1})")


def _const(value, shape, dtype: DType) -> Tensor:
    return Tensor(Node(CONST, None, (), dtypes.const_value(value), shape, dtype))


def _varargs(shape) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    out = []
    for s in shape:
        if isinstance(s, Tensor):
            s = s.item()
        out.append(builtins.int(s))
    return tuple(out)


# -- joining -------------------------------------------------------------------------------------------
CAT_FANIN = 4  # a cat node reads at most this many sources; longer lists become a tree (buffer limit)


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    ref = next((t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)), tensors[0])
    d = normalize_dim(dim, ref.ndim)
    dt = tensors[0].dtype
    for t in tensors[1:]:
        dt = dtypes.promote(dt, t.dtype)
    parts = []
    for i, t in enumerate(tensors):
        if t.ndim == 1 and t.shape[0] == 0 and ref.ndim != 1:
            continue  # torch skips legacy empty tensors
        if t.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim}")
        for k in range(ref.ndim):
            if k != d and t.shape[k] != ref.shape[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{ref.shape[k]} but got size {t.shape[k]} for tensor number {i} in the list.")
        if t.shape[d] > 0:
            parts.append(t.to(dt))
    if not parts:
        return zeros(ref.shape[:d] + (0,) + ref.shape[d + 1:], dtype=dt)
    return _cat_tree(parts, d)


def _cat_tree(parts, d):
    if len(parts) == 1:
        return parts[0]
    if len(parts) > CAT_FANIN:
        k = -(-len(parts) // CAT_FANIN)
        parts = [_cat_tree(parts[i:i + k], d) for i in range(0, len(parts), k)]
    shape = list(parts[0].shape)
    shape[d] = builtins.sum(p.shape[d] for p in parts)
    return _make(CAT, None, parts, d, tuple(shape), parts[0].dtype)


concat = concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} at "
                               f"entry 0 and {list(t.shape)} at entry {i}")
    d = normalize_dim(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(d) for t in tensors], d)


# -- matmul --------------------------------------------------------------------------------------------
def matmul(a, b) -> Tensor:
    if not isinstance(a, Tensor):
        a = tensor(a)
    if not isinstance(b, Tensor):
        b = tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and {b.ndim}D")
    dt = dtypes.promote(a.dtype, b.dtype)
    if dt != a.dtype or dt != b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype.name} != {b.dtype.name}")
    if not dt.is_floating_point:
        raise RuntimeError(f"matmul is implemented for floating point tensors only, got {dt.name}")
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    M, K = a2.shape[-2:]
    K2, N = b2.shape[-2:]
    if K != K2:
        if a.ndim == 1 and b.ndim == 1:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{K}] and src [{K2}] to have the same "
                               f"number of elements, but got {K} and {K2} elements respectively")
        sa = "x".join(map(str, a2.shape[-2:] if a.ndim <= 2 else a.shape))
        sb = "x".join(map(str, b2.shape[-2:] if b.ndim <= 2 else b.shape))
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({sa} and {sb})")
    batch = broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    B = math.prod(batch)
    if b2.ndim == 2:  # x @ W with x batched: one [B*M, K] @ [K, N] product (bigger tiles, W read once)
        a3, b3, B_, M_ = a2.reshape(1, B * M, K), b2.reshape(1, K, N), 1, B * M
    else:
        a3, b3, B_, M_ = a2.expand(batch + (M, K)).reshape(B, M, K), b2.expand(batch + (K, N)).reshape(B, K, N), B, M
    # (lowering, on a plan-cache miss, picks its GEMM variant and may split K: schedule/lower.py)
    out = _make(MATMUL, None, (a3, b3), None, (B_, M_, N), dt).reshape(batch + (M, N))
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out


def bmm(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim != 3 or b.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor" if a.ndim != 3 else "batch2 must be a 3D tensor")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{a.shape[0]}, "
                           f"{a.shape[2]}] but got: [{b.shape[0]}, {b.shape[1]}].")
    return matmul(a, b)


def mm(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError("self must be a matrix" if a.ndim != 2 else "mat2 must be a matrix")
    return matmul(a, b)


# the leaves, elementwise ops, reductions and indexing live in their own files (they build on the ops above); imported
# last, as part of this API
from .creation import (_cast_scalar, _check_dtype_available, _checked_scalar, arange, empty,  # noqa: E402,F401
                       from_numpy, full, full_like, ones, ones_like, tensor, zeros, zeros_like)
from .elementwise import (_as_tensor, _bitwise, _elementwise, _true_div, abs, add, bitwise_and, diff,  # noqa: E402,F401,A004
                          bitwise_not, bitwise_or, bitwise_xor, ceil, clamp, clip, cos, div, divide, elu, eq, erf, exp,
                          floor, floor_divide, fmod, ge, gelu, gt, hardsigmoid, hardswish, isfinite, isinf, isnan, le,
                          leaky_relu, log, logical_and, logical_not, logical_or, logical_xor, lt, maximum, minimum,
                          mish, mul, multiply, ne, neg, negative, pow, reciprocal, relu, relu6, remainder, round,
                          rsqrt, sigmoid, sign, silu, sin, softplus, sqrt, sub, subtract, tanh, tril, triu,
                          true_divide, where)
from .reductions import (_reduce, all, amax, amin, any, argmax, argmin, cumsum, log_softmax, max, mean,  # noqa: E402,F401,A004
                         min, prod, row_norm, softmax, std, sum, var)
from .indexing import (chunk, gather, getitem as _getitem, index_select, narrow, roll, select,  # noqa: E402,F401
                       split, take, unbind)
