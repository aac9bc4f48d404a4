"""Tensor: a lazy handle on a graph node. Every op builds a node (shape and dtype checked at the call site);
nothing runs on the GPU until data is needed (`.numpy()`, `.item()`, `.tolist()`, printing, `.realize()`).

The class users hold: _core.Tensor (state, metadata, views) with a method per op, each delegating to the op
modules below (creation, joining, elementwise, reductions, indexing), and data access through the scheduler.
It is also the tensor API's namespace: every op function is importable from here."""
from __future__ import annotations

import builtins
import math

import numpy as np

from . import _core, dtypes, runtime, schedule
from ._core import (CAT_FANIN, INDEX_LIMIT, MaxMin, Scalar, _cat_tree, _check_index_range, _const, _make,  # noqa: F401
                    _varargs, _view)
from .ops import BUFFER, MATMUL
from .shapes import broadcast_shapes
from .creation import (_cast_scalar, _check_dtype_available, _checked_scalar, arange, empty,  # noqa: F401
                       from_numpy, full, full_like, ones, ones_like, tensor, zeros, zeros_like)
from .joining import cat, concat, concatenate, stack  # noqa: F401
from .elementwise import addcdiv, addcmul, hypot, lerp  # noqa: F401
from .joining import repeat_interleave  # noqa: F401
from .joining import (atleast_1d, atleast_2d, atleast_3d, broadcast_tensors, cartesian_prod, column_stack,  # noqa: F401
                      dstack, hstack, meshgrid, row_stack, vstack)
from .einsum import einsum  # noqa: F401
from .sorting import (argsort, bucketize, isin, kthvalue, median, msort, nanmedian, searchsorted, sort,  # noqa: F401
                      topk, unique)
from .sorting import unique_consecutive  # noqa: F401
from .elementwise import bitwise_left_shift, bitwise_right_shift  # noqa: F401
from .elementwise import (_as_tensor, _bitwise, _elementwise, _true_div, abs, add, bitwise_and,  # noqa: F401,A004
                          bitwise_not, bitwise_or, bitwise_xor, ceil, clamp, clip, cos, div, divide, elu, eq, erf, exp,
                          expm1, fix, hardshrink, log1p, trunc, arctan2, atan2, signbit,
                          floor, floor_divide, fmod, ge, gelu, gt, hardsigmoid, hardswish, isfinite, isinf, isnan, le,
                          leaky_relu, log, logical_and, logical_not, logical_or, logical_xor, lt, maximum, minimum,
                          mish, mul, multiply, ne, neg, negative, pow, reciprocal, relu, relu6, remainder, round,
                          rsqrt, sigmoid, sign, silu, sin, softplus, sqrt, sub, subtract, tanh, true_divide, where)
from .elementwise import (acos, acosh, arccos, arccosh, arcsin, arcsinh, arctan, arctanh, asin, asinh,  # noqa: F401
                          atan, atanh, cosh, erfc, erfinv, exp2, log10, log2, sinh, tan)
from .elementwise_composites import (allclose, clamp_max, clamp_min, copysign, deg2rad, diff,  # noqa: F401
                                     float_power, fmax, fmin, frac, heaviside, isclose, isneginf, isposinf, isreal,
                                     logaddexp, logaddexp2, logit, masked_fill, nan_to_num, positive, rad2deg,
                                     rsub, sgn, sinc, square, tril, triu, xlogy, angle)
from .reductions import (_reduce, all, amax, amin, any, argmax, argmin, log_softmax, max, mean,  # noqa: F401,A004
                         logsumexp, min, norm, prod, row_norm, softmax, std, sum, var, vector_norm, dist)
from .reductions import aminmax, count_nonzero, nanmean, nansum, std_mean, trapezoid, trapz, var_mean  # noqa: F401
from .indexing import as_strided, flip, fliplr, flipud, rot90, take_along_dim, tensor_split  # noqa: F401
from .indexing import argwhere, dsplit, hsplit, masked_select, nonzero, unravel_index, vsplit  # noqa: F401
from .indexing import (chunk, gather, getitem as _getitem, index_select, narrow, roll, select,  # noqa: F401
                       split, take, unbind, unfold)
from .scans import cummax, cummin, cumprod, cumsum, linear_recurrence, logcumsumexp  # noqa: F401
from .linalg import (addbmm, addmm, addmv, baddbmm, block_diag, diag, diag_embed, diagonal, dot, ger,  # noqa: F401
                     inner, kron, mv, outer, tensordot, trace, tril_indices, triu_indices, vdot, addr, cross,
                     diagflat, vander)
from .histogram import bincount, histc  # noqa: F401
from .scatter import (index_add, index_copy, index_fill, index_put, index_reduce, scatter, scatter_add,  # noqa: F401
                      scatter_reduce, select_scatter, slice_scatter, diagonal_scatter, masked_scatter)


_MASK_DTYPE_NAMES = {"float32": "float", "float16": "c10::Half", "int32": "long int"}  # torch's (int32: int64)


class Tensor(_core.Tensor):
    __slots__ = ()

    # -- data ----------------------------------------------------------------------------------------
    def realize(self) -> "Tensor":
        schedule.realize(self)
        return self

    def numpy(self) -> np.ndarray:
        return schedule.read(self)

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
        if self.node.stored and (self.node.kind == BUFFER or
                                 self.numel() * self.dtype.itemsize <= runtime.get_runtime().max_binding_size):
            return _elementwise("cast", self, arg=(self.dtype,))
        return self


    def narrow(self, dim: int, start: int, length: int) -> "Tensor": return narrow(self, dim, start, length)
    def unfold(self, dimension: int, size: int, step: int) -> "Tensor": return unfold(self, dimension, size, step)
    def split(self, split_size, dim: int = 0): return split(self, split_size, dim)
    def chunk(self, chunks: int, dim: int = 0): return chunk(self, chunks, dim)
    def unbind(self, dim: int = 0): return unbind(self, dim)
    def select(self, dim: int, index: int) -> "Tensor": return select(self, dim, index)
    def roll(self, shifts, dims=None) -> "Tensor": return roll(self, shifts, dims)
    def flip(self, *dims) -> "Tensor": return flip(self, dims[0] if len(dims) == 1 else dims)
    def tensor_split(self, indices_or_sections, dim=0): return tensor_split(self, indices_or_sections, dim)
    def hsplit(self, indices_or_sections): return hsplit(self, indices_or_sections)
    def vsplit(self, indices_or_sections): return vsplit(self, indices_or_sections)
    def dsplit(self, indices_or_sections): return dsplit(self, indices_or_sections)
    def fliplr(self) -> "Tensor": return fliplr(self)
    def rot90(self, k=1, dims=(0, 1)) -> "Tensor": return rot90(self, k, dims)
    def take_along_dim(self, indices, dim=None) -> "Tensor": return take_along_dim(self, indices, dim)
    def flipud(self) -> "Tensor": return flipud(self)

    def __getitem__(self, index) -> "Tensor":
        """torch's indexing (basic, then advanced indices); see indexing.py."""
        return _getitem(self, index)

    def index_select(self, dim: int, index) -> "Tensor": return index_select(self, dim, index)
    def take(self, index) -> "Tensor": return take(self, index)
    def as_strided(self, size, stride, storage_offset=0) -> "Tensor": return as_strided(self, size, stride, storage_offset)
    def gather(self, dim: int, index) -> "Tensor": return gather(self, dim, index)
    def scatter(self, dim: int, index, src=None, *, value=None, reduce=None) -> "Tensor":
        return scatter(self, dim, index, src, value=value, reduce=reduce)
    def scatter_add(self, dim: int, index, src) -> "Tensor": return scatter_add(self, dim, index, src)
    def scatter_reduce(self, dim: int, index, src, reduce, *, include_self=True) -> "Tensor":
        return scatter_reduce(self, dim, index, src, reduce, include_self=include_self)
    def index_add(self, dim: int, index, source, *, alpha=1) -> "Tensor":
        return index_add(self, dim, index, source, alpha=alpha)
    def index_reduce(self, dim: int, index, source, reduce, *, include_self=True) -> "Tensor":
        return index_reduce(self, dim, index, source, reduce, include_self=include_self)
    def index_copy(self, dim: int, index, source) -> "Tensor": return index_copy(self, dim, index, source)
    def index_fill(self, dim: int, index, value) -> "Tensor": return index_fill(self, dim, index, value)
    def index_put(self, indices, values, accumulate=False) -> "Tensor":
        return index_put(self, indices, values, accumulate)
    def slice_scatter(self, src, dim=0, start=None, end=None, step=1) -> "Tensor":
        return slice_scatter(self, src, dim, start, end, step)
    def select_scatter(self, src, dim: int, index: int) -> "Tensor": return select_scatter(self, src, dim, index)
    def diagonal_scatter(self, src, offset=0, dim1=0, dim2=1) -> "Tensor":
        return diagonal_scatter(self, src, offset, dim1, dim2)
    def masked_scatter(self, mask, source) -> "Tensor": return masked_scatter(self, mask, source)

    # -- elementwise ---------------------------------------------------------------------------------
    def __add__(self, other): return add(self, other)
    def __radd__(self, other): return add(other, self)
    def __sub__(self, other): return sub(self, other)
    def __rsub__(self, other): return sub(other, self)
    def __mul__(self, other): return mul(self, other)
    def __rmul__(self, other): return mul(other, self)
    def __truediv__(self, other): return div(self, other)
    def __rtruediv__(self, other):  # torch's __rdiv__ is self.reciprocal() * other (rounded in between for half)
        if isinstance(other, Scalar) and not isinstance(other, (bool, np.bool_)):
            return mul(reciprocal(self), other)
        return div(other, self)
    def __floordiv__(self, other): return floor_divide(self, other)
    def __rfloordiv__(self, other): return floor_divide(other, self)
    def __mod__(self, other): return remainder(self, other)
    def __rmod__(self, other): return remainder(other, self)
    def __pow__(self, other): return pow(self, other)
    def __rpow__(self, other): return pow(other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __neg__(self): return neg(self)
    def __pos__(self): return self
    def __abs__(self): return abs(self)
    def __invert__(self):
        if self.dtype.is_floating_point:
            raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
        return bitwise_not(self)
    # torch's & | ^ are bitwise: on bool tensors logical, on integer tensors bit by bit (not a bool result)
    def __and__(self, other): return bitwise_and(self, other)
    def __rand__(self, other): return bitwise_and(other, self)
    def __or__(self, other): return bitwise_or(self, other)
    def __ror__(self, other): return bitwise_or(other, self)
    def __xor__(self, other): return bitwise_xor(self, other)
    def __lshift__(self, other): return bitwise_left_shift(self, other)
    def __rlshift__(self, other): return bitwise_left_shift(other, self)
    def __rshift__(self, other): return bitwise_right_shift(self, other)
    def __rrshift__(self, other): return bitwise_right_shift(other, self)
    def bitwise_left_shift(self, other): return bitwise_left_shift(self, other)
    def bitwise_right_shift(self, other): return bitwise_right_shift(self, other)
    def __rxor__(self, other): return bitwise_xor(other, self)
    def __eq__(self, other): return eq(self, other)  # noqa: PLE0302
    def __ne__(self, other): return ne(self, other)
    def __lt__(self, other): return lt(self, other)
    def __le__(self, other): return le(self, other)
    def __gt__(self, other): return gt(self, other)
    def __ge__(self, other): return ge(self, other)
    __hash__ = object.__hash__

    def add(self, other, alpha=1): return add(self, other if alpha == 1 else mul(other, alpha))
    def sub(self, other, alpha=1): return sub(self, other if alpha == 1 else mul(other, alpha))
    def mul(self, other): return mul(self, other)
    def div(self, other, rounding_mode=None): return div(self, other, rounding_mode=rounding_mode)
    def floor_divide(self, other): return floor_divide(self, other)
    def remainder(self, other): return remainder(self, other)
    def fmod(self, other): return fmod(self, other)
    def pow(self, other): return pow(self, other)
    def maximum(self, other): return maximum(self, other)
    def minimum(self, other): return minimum(self, other)
    def eq(self, other): return eq(self, other)
    def ne(self, other): return ne(self, other)
    def lt(self, other): return lt(self, other)
    def le(self, other): return le(self, other)
    def gt(self, other): return gt(self, other)
    def ge(self, other): return ge(self, other)
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
    def round(self, *, decimals=0): return round(self, decimals=decimals)
    def trunc(self): return trunc(self)
    def fix(self): return trunc(self)
    def log1p(self): return log1p(self)
    def expm1(self): return expm1(self)
    def tan(self): return tan(self)
    def asin(self): return asin(self)
    def acos(self): return acos(self)
    def atan(self): return atan(self)
    def sinh(self): return sinh(self)
    def cosh(self): return cosh(self)
    def asinh(self): return asinh(self)
    def acosh(self): return acosh(self)
    def atanh(self): return atanh(self)
    arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
    def log2(self): return log2(self)
    def log10(self): return log10(self)
    def exp2(self): return exp2(self)
    def erfc(self): return erfc(self)
    def erfinv(self): return erfinv(self)
    def deg2rad(self): return deg2rad(self)
    def rad2deg(self): return rad2deg(self)
    def hardshrink(self, lambd=0.5): return hardshrink(self, lambd)
    def atan2(self, other): return atan2(self, other)
    def arctan2(self, other): return atan2(self, other)
    def copysign(self, other): return copysign(self, other)
    def frac(self): return frac(self)
    def logit(self, eps=None): return logit(self, eps)
    def xlogy(self, other): return xlogy(self, other)
    def sinc(self): return sinc(self)
    def angle(self): return angle(self)
    def logaddexp(self, other): return logaddexp(self, other)
    def logaddexp2(self, other): return logaddexp2(self, other)
    def nan_to_num(self, nan=0.0, posinf=None, neginf=None): return nan_to_num(self, nan, posinf, neginf)
    def heaviside(self, values): return heaviside(self, values)
    def float_power(self, exponent): return float_power(self, exponent)
    def signbit(self): return signbit(self)
    def addcmul(self, tensor1, tensor2, *, value=1): return addcmul(self, tensor1, tensor2, value=value)
    def addcdiv(self, tensor1, tensor2, *, value=1): return addcdiv(self, tensor1, tensor2, value=value)
    def sign(self): return sign(self)
    def sgn(self): return sign(self)
    def positive(self): return positive(self)
    def fmax(self, other): return fmax(self, other)
    def fmin(self, other): return fmin(self, other)
    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return isclose(self, other, rtol, atol, equal_nan)
    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return allclose(self, other, rtol, atol, equal_nan)
    def isposinf(self): return isposinf(self)
    def isneginf(self): return isneginf(self)
    def isreal(self): return isreal(self)
    def clamp(self, min=None, max=None): return clamp(self, min, max)
    clip = clamp
    def where(self, condition, other): return where(condition, self, other)
    def masked_fill(self, mask, value):  # torch keeps self's dtype: an int tensor filled with -1.5 holds -1
        if isinstance(mask, Tensor) and mask.dtype != dtypes.bool_:
            raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                               f"{_MASK_DTYPE_NAMES[mask.dtype.name]}")
        if isinstance(value, Tensor):
            if value.ndim:
                raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                                   f"{value.ndim} dimension(s).")
            return where(mask, value.to(self.dtype), self)
        return where(mask, _const(_checked_scalar(value, self.dtype), (), self.dtype), self)
    def logical_not(self): return logical_not(self)
    def logical_and(self, other): return logical_and(self, other)
    def logical_or(self, other): return logical_or(self, other)
    def logical_xor(self, other): return logical_xor(self, other)
    def bitwise_not(self): return bitwise_not(self)
    def bitwise_and(self, other): return bitwise_and(self, other)
    def bitwise_or(self, other): return bitwise_or(self, other)
    def bitwise_xor(self, other): return bitwise_xor(self, other)
    def isnan(self): return isnan(self)
    def isinf(self): return isinf(self)
    def isfinite(self): return isfinite(self)
    def negative(self): return neg(self)
    def multiply(self, other): return mul(self, other)
    def divide(self, other): return div(self, other)
    def true_divide(self, other): return div(self, other)
    def subtract(self, other, alpha=1): return self.sub(other, alpha)
    def mm(self, other): return mm(self, other)
    def addmm(self, mat1, mat2, *, beta=1, alpha=1): return addmm(self, mat1, mat2, beta=beta, alpha=alpha)
    def addbmm(self, batch1, batch2, *, beta=1, alpha=1): return addbmm(self, batch1, batch2, beta=beta, alpha=alpha)
    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)
    def addmv(self, mat, vec, *, beta=1, alpha=1): return addmv(self, mat, vec, beta=beta, alpha=alpha)
    def mv(self, vec): return mv(self, vec)
    def dot(self, tensor): return dot(self, tensor)
    def vdot(self, other): return vdot(self, other)
    def outer(self, vec2): return outer(self, vec2)
    def ger(self, vec2): return outer(self, vec2)
    def addr(self, vec1, vec2, *, beta=1, alpha=1): return addr(self, vec1, vec2, beta=beta, alpha=alpha)
    def cross(self, other, dim=None): return cross(self, other, dim)
    def diagflat(self, offset=0): return diagflat(self, offset)
    def kron(self, other): return kron(self, other)
    def trace(self): return trace(self)
    def diag(self, diagonal=0): return diag(self, diagonal)
    def diagonal(self, offset=0, dim1=0, dim2=1): return diagonal(self, offset, dim1, dim2)
    def diag_embed(self, offset=0, dim1=-2, dim2=-1): return diag_embed(self, offset, dim1, dim2)
    def bmm(self, other): return bmm(self, other)
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
    def nansum(self, dim=None, keepdim=False, *, dtype=None): return nansum(self, dim, keepdim, dtype=dtype)
    def nanmean(self, dim=None, keepdim=False, *, dtype=None): return nanmean(self, dim, keepdim, dtype=dtype)
    def aminmax(self, *, dim=None, keepdim=False): return aminmax(self, dim=dim, keepdim=keepdim)
    def count_nonzero(self, dim=None): return count_nonzero(self, dim)
    def norm(self, p="fro", dim=None, keepdim=False, dtype=None): return norm(self, p, dim, keepdim, dtype)
    def dist(self, other, p=2): return dist(self, other, p)
    def logsumexp(self, dim, keepdim=False): return logsumexp(self, dim, keepdim)
    def lerp(self, end, weight): return lerp(self, end, weight)
    def repeat_interleave(self, repeats, dim=None, *, output_size=None):
        return repeat_interleave(self, repeats, dim, output_size=output_size)
    def mean(self, dim=None, keepdim=False): return mean(self, dim, keepdim)
    def prod(self, dim=None, keepdim=False, dtype=None): return prod(self, dim, keepdim, dtype=dtype)
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
    def sort(self, dim=-1, descending=False, stable=False): return sort(self, dim, descending, stable)
    def argsort(self, dim=-1, descending=False, stable=False): return argsort(self, dim, descending, stable)
    def msort(self): return msort(self)
    def inner(self, other): return inner(self, other)
    def ravel(self): return self.reshape(-1)
    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
        return unique(self, sorted, return_inverse, return_counts, dim)
    def unique_consecutive(self, return_inverse=False, return_counts=False, dim=None):
        return unique_consecutive(self, return_inverse, return_counts, dim)
    def masked_select(self, mask): return masked_select(self, mask)
    def nonzero(self, *, as_tuple=False): return nonzero(self, as_tuple=as_tuple)
    def argwhere(self): return argwhere(self)
    def bincount(self, weights=None, minlength=0): return bincount(self, weights, minlength)
    def topk(self, k, dim=-1, largest=True, sorted=True): return topk(self, k, dim, largest, sorted)
    def kthvalue(self, k, dim=-1, keepdim=False): return kthvalue(self, k, dim, keepdim)
    def median(self, dim=None, keepdim=False): return median(self, dim, keepdim)
    def nanmedian(self, dim=None, keepdim=False): return nanmedian(self, dim, keepdim)
    def cumprod(self, dim, dtype=None): return cumprod(self, dim, dtype)
    def logcumsumexp(self, dim): return logcumsumexp(self, dim)
    def cummax(self, dim): return cummax(self, dim)
    def cummin(self, dim): return cummin(self, dim)
    def histc(self, bins=100, min=0, max=0): return histc(self, bins, min, max)  # noqa: A002
    def hypot(self, other): return hypot(self, other)
    def diff(self, n=1, dim=-1, prepend=None, append=None): return diff(self, n, dim, prepend, append)
    def triu(self, diagonal=0): return triu(self, diagonal)
    def tril(self, diagonal=0): return tril(self, diagonal)
    def matmul(self, other): return matmul(self, other)



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
    if dt == dtypes.bool_:  # torch's CPU kernels for the shapes, by name
        kernel = ("dot" if a.ndim == b.ndim == 1 else "addmv_impl_cpu" if b.ndim == 1
                  else "addmm_impl_cpu_" if b.ndim == 2 else "bmm")
        raise NotImplementedError(f'"{kernel}" not implemented for \'Bool\'')
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
    if dt.is_floating_point:  # (lowering, on a plan-cache miss, picks its GEMM variant and may split K: lower.py)
        out = _make(MATMUL, None, (a3, b3), None, (B_, M_, N), dt)
    else:  # integers exactly: the products summed along K in one reduction (its int32 overflow test included)
        out = (a3.unsqueeze(-1) * b3.unsqueeze(-3)).sum(-2)
    out = out.reshape(batch + (M, N))
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



_core.register(Tensor)
