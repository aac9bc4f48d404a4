"""Inclusive scans along a dim: `cumsum`, `cumprod`, `logcumsumexp`, `cummax`, `cummin`, and the linear recurrence
`linear_recurrence` (h_t = a_t * h_(t-1) + b_t: one RECURRENCE kernel, kernels/recurrence.py). Part of the tensor
API: Tensor's methods delegate here.

Every kernel computes by output index, so a scan is built from reductions, blocked so that it stays linear in the
length: the dim is cut into blocks of SCAN_BLOCK; inside a block each output reduces the inputs up to it (one
masked REDUCE, SCAN_BLOCK elements per output at most); the blocks' totals (each block's last output) are scanned
the same way, one level up, and combined back into the blocks after them. Work per element: about SCAN_BLOCK per
level, over log_SCAN_BLOCK(n) levels; no thread loops more than a block. Integer sums and products are combined by
reductions too (a REDUCE of two), so one that does not fit int32 is reported as every integer reduction is."""
from __future__ import annotations

import math

from . import dtypes
from .ops import MAX_TRIPS, RECURRENCE
from .shapes import broadcast_shapes, normalize_dim
from ._core import MaxMin, Tensor, _const, _make, _view
from .creation import arange
from .elementwise import exp, isinf, isnan, log, maximum, minimum, where
from .joining import cat, stack
from .reductions import _reduce, logsumexp

SCAN_BLOCK = 32  # elements per block: each output of a level reduces at most this many

_NEUTRAL = {"sum": 0, "prod": 1, "logsumexp": -math.inf, "max": -math.inf, "min": math.inf}
_INT_NEUTRAL = {"max": -2 ** 31, "min": 2 ** 31 - 1}


def _neutral(op: str, dt):
    """The value that changes no output of op's scan, in dtype dt."""
    return _INT_NEUTRAL[op] if op in _INT_NEUTRAL and not dt.is_floating_point else _NEUTRAL[op]


def _block_scan(op: str, x: Tensor) -> Tensor:
    """The inclusive scan of x's last dim (length <= SCAN_BLOCK): out[..., i] = op over x[..., :i + 1]."""
    n = x.shape[-1]
    keep = arange(n).reshape(1, n) <= arange(n).reshape(n, 1)         # (i, j): j <= i
    masked = where(keep, x.unsqueeze(-2), _const(_neutral(op, x.dtype), (), x.dtype))  # (..., i, j)
    if op == "logsumexp":
        return logsumexp(masked, -1)
    return _reduce(op, masked, -1).to(x.dtype)


def _combine(op: str, a: Tensor, b: Tensor) -> Tensor:
    """a op b, elementwise (b broadcast): integer sums and products as a REDUCE of two, which reports overflow."""
    if op == "logsumexp":  # log(exp(a) + exp(b)), shifted by the larger (0 where it is infinite: -inf stays -inf)
        top = maximum(a, b)
        shift = where(isinf(top), _const(0.0, (), a.dtype), top)
        return log(exp(a - shift) + exp(b - shift)) + shift
    if op in ("max", "min"):  # NaN propagates, as torch's
        return maximum(a, b) if op == "max" else minimum(a, b)
    if not a.dtype.is_floating_point:
        return _reduce(op, stack([a, b.expand(a.shape)], -1), -1)
    return a + b if op == "sum" else a * b


def _scan_last(op: str, x: Tensor) -> Tensor:
    n = x.shape[-1]
    if n <= SCAN_BLOCK:
        return _block_scan(op, x)
    blocks = -(-n // SCAN_BLOCK)
    lead = x.shape[:-1]
    # zeros after the end change no real output: an inclusive scan's output only reads inputs before it
    pads = ((0, 0),) * len(lead) + ((0, blocks * SCAN_BLOCK - n),)
    padded = _view(x, "pad", (pads, "constant", 0), lead + (blocks * SCAN_BLOCK,)) if blocks * SCAN_BLOCK != n else x
    inner = _block_scan(op, padded.reshape(lead + (blocks, SCAN_BLOCK)))
    totals = _scan_last(op, inner[..., -1])                                  # (..., blocks): through each block
    before = _view(totals, "pad", (((0, 0),) * len(lead) + ((1, 0),), "constant", 0), lead + (blocks + 1,))
    first = arange(blocks) == 0
    before = where(first, _const(_neutral(op, x.dtype), (), x.dtype), before[..., :blocks])  # through the block before
    out = _combine(op, inner, before.unsqueeze(-1)).reshape(lead + (blocks * SCAN_BLOCK,))
    return out[..., :n] if blocks * SCAN_BLOCK != n else out


def _scan(op: str, x: Tensor, dim: int, dt) -> Tensor:
    x = x.to(dt)
    if dt == dtypes.float16:  # torch accumulates half in float32, each output rounded once (not each partial)
        return _scan(op, x.float(), dim, dtypes.float32).half()
    if x.ndim == 0:
        return x
    d = normalize_dim(dim, x.ndim)
    if x.numel() == 0:
        return x
    moved = x.transpose(d, -1) if d != x.ndim - 1 else x
    out = _scan_last(op, moved)
    return out.transpose(d, -1) if d != x.ndim - 1 else out


def _int_default(x: Tensor, dtype):
    """torch's result dtype of cumsum / cumprod: dtype if given, else int64 (int32 here) for integers and bool."""
    return dtypes.to_dtype(dtype) if dtype is not None else dtypes.int32 if x.dtype.category < 2 else x.dtype


def cumsum(x: Tensor, dim: int, dtype=None) -> Tensor:
    """Inclusive prefix sums along dim. Integer and bool inputs sum as int64 (stored as int32: a sum past int32
    raises), as torch."""
    return _scan("sum", x, dim, _int_default(x, dtype))


def cumprod(x: Tensor, dim: int, dtype=None) -> Tensor:
    """Inclusive prefix products along dim (integers and bool as int64, stored as int32: overflow raises)."""
    return _scan("prod", x, dim, _int_default(x, dtype))


def logcumsumexp(x: Tensor, dim: int) -> Tensor:
    """log(cumsum(exp(x))) along dim, computed without overflow (shifted by the running maximum of each block)."""
    if not x.dtype.is_floating_point:
        names = {dtypes.int32: "Long", dtypes.bool_: "Bool"}
        raise NotImplementedError(f"\"logcumsumexp_out_cpu\" not implemented for '{names[x.dtype]}'")
    return _scan("logsumexp", x, dim, x.dtype)


def _cum_extreme(op: str, x: Tensor, dim: int) -> MaxMin:
    """cummax / cummin: the running extreme (NaN from the first NaN on) and the index where it was last reached,
    as torch's kernel gives it: a later equal value takes the index (>= / <=), and so does every later NaN. That
    index is the last j <= i where x[j] equals the running extreme at j (or is NaN): a running scan of max over
    those positions."""
    if x.dtype == dtypes.bool_:
        out = _cum_extreme(op, x.to(dtypes.int32), dim)
        return MaxMin(out.values.to(dtypes.bool_), out.indices)
    normalize_dim(dim, max(x.ndim, 1))  # torch's IndexError for a dim out of range, 0-d tensors included
    values = _scan(op, x, dim, x.dtype)
    if x.ndim == 0:
        return MaxMin(values, _const(0, (), dtypes.int32))
    d = normalize_dim(dim, x.ndim)
    at = arange(x.shape[d]).reshape((x.shape[d],) + (1,) * (x.ndim - d - 1))
    reached = values == x
    if x.dtype.is_floating_point:
        reached = reached | isnan(x)
    last = where(reached, at, _const(-1, (), dtypes.int32))
    return MaxMin(values, _scan("max", last, d, dtypes.int32))


def cummax(x: Tensor, dim: int) -> MaxMin:
    """torch.cummax: (values, indices) of the running maximum along dim."""
    return _cum_extreme("max", x, dim)


def cummin(x: Tensor, dim: int) -> MaxMin:
    """torch.cummin: (values, indices) of the running minimum along dim."""
    return _cum_extreme("min", x, dim)


def linear_recurrence(a: Tensor, b: Tensor, dim: int, initial: Tensor | None = None) -> Tensor:
    """Every state of h_t = a_t * h_(t-1) + b_t along dim, from h_(-1) = initial (or 0: the first state is
    a_0 * 0 + b_0, NaN where a_0 is infinite, as a loop computes it). a and b broadcast together; initial is one
    step of the result (its shape without dim, broadcast to it). The result has their promoted float dtype.
    Written as a Python loop over dim this is Mamba's selective scan: one kernel instead of a kernel per step."""
    tensors = [t for t in (a, b, initial) if t is not None]
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"linear_recurrence(): expected tinydl Tensors, got {type(t).__name__}")
    dt = a.dtype
    for t in tensors[1:]:
        dt = dtypes.promote(dt, t.dtype)
    if not dt.is_floating_point:
        raise TypeError(f"linear_recurrence(): expected floating point tensors, got {dt.name}")
    shape = broadcast_shapes(a.shape, b.shape)
    if not shape:
        raise IndexError("linear_recurrence(): a and b need at least one dim, the one the recurrence runs along")
    d = normalize_dim(dim, len(shape))
    step = shape[:d] + shape[d + 1:]
    if initial is not None:
        try:
            fits = broadcast_shapes(initial.shape, step) == step
        except RuntimeError:
            fits = False
        if not fits:
            raise RuntimeError(f"linear_recurrence(): initial of shape {list(initial.shape)} does not broadcast to "
                               f"one step of the result, {list(step)}")
        initial = initial.to(dt).expand(step).unsqueeze(d)
    if math.prod(shape) == 0:
        return _const(0.0, shape, dt)
    R, L, C = math.prod(shape[:d]), shape[d], math.prod(shape[d + 1:])
    a3, b3 = (t.to(dt).expand(shape).reshape(R, L, C) for t in (a, b))
    h = initial.reshape(R, 1, C) if initial is not None else None
    pieces = []
    for start in range(0, L, MAX_TRIPS):  # a thread loops at most MAX_TRIPS steps: longer runs chain kernels
        ab = (a3, b3) if L <= MAX_TRIPS else (a3[:, start:start + MAX_TRIPS], b3[:, start:start + MAX_TRIPS])
        pieces.append(_make(RECURRENCE, None, ab if h is None else (*ab, h), None, ab[0].shape, dt))
        h = pieces[-1][:, -1:]
    return (pieces[0] if len(pieces) == 1 else cat(pieces, 1)).reshape(shape)
