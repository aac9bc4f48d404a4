"""torch's opmath for float16: each torch op computes in float32 and rounds its float16 result once, so a
chain of ops rounds after every op ((x * 1000) * 0.001 overflows to inf), and an op that is several nodes in
tinydl (round with decimals, logaddexp, layer_norm's affine, ...) rounds only at its end. Kernels round every
float16 elementwise node (kernels/expr.py, by the rules of kernels/half_rounding.py); a function built of several
nodes that torch runs as one op is decorated with @computes_in_float32: it runs on float32 copies of its float16
inputs, its result rounded once."""
from __future__ import annotations

import contextlib
import contextvars
import functools

from . import dtypes
from ._core import Tensor


_PER_OP = contextvars.ContextVar("tinydl_float16_rounds_per_op", default=True)


def rounds_per_op() -> bool:
    """Whether float16 elementwise nodes built now round their results (False inside `rounding_at_stores`)."""
    return _PER_OP.get()


@contextlib.contextmanager
def rounding_at_stores():
    """float16 elementwise nodes built inside keep float32 values up to their kernel's store: for a graph traced in
    float32 and run in float16 (an exported model after .half()), whose explicit float32 upcasts (a norm's variance,
    rotary angles) are indistinguishable from its other float32 ops, so rounding after every op would overflow
    or lose what torch's float16 model computes in float32."""
    token = _PER_OP.set(False)
    try:
        yield
    finally:
        _PER_OP.reset(token)


def _float_tensors(args, kwargs):
    for a in (*args, *kwargs.values()):
        if isinstance(a, Tensor) and a.dtype.is_floating_point:
            yield a
        elif isinstance(a, (tuple, list)):
            yield from (t for t in a if isinstance(t, Tensor) and t.dtype.is_floating_point)


def _widened(a):
    if isinstance(a, Tensor) and a.dtype == dtypes.float16:
        return a.float()
    if isinstance(a, (tuple, list)) and any(isinstance(t, Tensor) and t.dtype == dtypes.float16 for t in a):
        return type(a)(_widened(t) for t in a)
    return a


def _narrowed(result):
    if isinstance(result, Tensor):
        return result.half() if result.dtype == dtypes.float32 else result
    if isinstance(result, tuple):  # a named tuple (var_mean, aminmax) keeps its type
        items = [_narrowed(r) for r in result]
        return type(result)(*items) if hasattr(result, "_fields") else tuple(items)
    return result


def computes_in_float32(fn):
    """fn is one torch op: where its float tensor inputs are all float16, it computes on float32 copies and its
    float32 results are rounded to float16 once (a float32 input makes torch's result float32 anyway)."""
    @functools.wraps(fn)
    def opmath(*args, **kwargs):
        if not rounds_per_op():  # float16 nodes keep float32 up to their store anyway
            return fn(*args, **kwargs)
        floats = list(_float_tensors(args, kwargs))
        if (not floats or any(t.dtype != dtypes.float16 for t in floats)
                or any(isinstance(a, dtypes.DType) for a in (*args, *kwargs.values()))):  # a dtype argument decides
            return fn(*args, **kwargs)
        return _narrowed(fn(*(_widened(a) for a in args), **{k: _widened(v) for k, v in kwargs.items()}))
    return opmath
