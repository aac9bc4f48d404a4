"""Inclusive scans along a dim: `cumsum`, `cumprod`, `logcumsumexp`. Part of the tensor API: Tensor's methods
delegate here.

Every kernel computes by output index, so a scan is built from reductions, blocked so that it stays linear in the
length: the dim is cut into blocks of SCAN_BLOCK; inside a block each output reduces the inputs up to it (one
masked REDUCE, SCAN_BLOCK elements per output at most); the blocks' totals (each block's last output) are scanned
the same way, one level up, and combined back into the blocks after them. Work per element: about SCAN_BLOCK per
level, over log_SCAN_BLOCK(n) levels; no thread loops more than a block. Integer sums and products are combined by
reductions too (a REDUCE of two), so one that does not fit int32 is reported as every integer reduction is."""
from __future__ import annotations

import math

from . import dtypes
from .shapes import normalize_dim
from ._core import Tensor, _const, _view
from .creation import arange
from .elementwise import exp, isinf, log, maximum, where
from .joining import stack
from .reductions import _reduce, logsumexp

SCAN_BLOCK = 32  # elements per block: each output of a level reduces at most this many

_NEUTRAL = {"sum": 0, "prod": 1, "logsumexp": -math.inf}


def _block_scan(op: str, x: Tensor) -> Tensor:
    """The inclusive scan of x's last dim (length <= SCAN_BLOCK): out[..., i] = op over x[..., :i + 1]."""
    n = x.shape[-1]
    keep = arange(n).reshape(1, n) <= arange(n).reshape(n, 1)         # (i, j): j <= i
    masked = where(keep, x.unsqueeze(-2), _const(_NEUTRAL[op], (), x.dtype))  # (..., i, j)
    if op == "logsumexp":
        return logsumexp(masked, -1)
    return _reduce(op, masked, -1).to(x.dtype)


def _combine(op: str, a: Tensor, b: Tensor) -> Tensor:
    """a op b, elementwise (b broadcast): integer sums and products as a REDUCE of two, which reports overflow."""
    if op == "logsumexp":  # log(exp(a) + exp(b)), shifted by the larger (0 where it is infinite: -inf stays -inf)
        top = maximum(a, b)
        shift = where(isinf(top), _const(0.0, (), a.dtype), top)
        return log(exp(a - shift) + exp(b - shift)) + shift
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
    before = where(first, _const(_NEUTRAL[op], (), x.dtype), before[..., :blocks])  # through the block before
    out = _combine(op, inner, before.unsqueeze(-1)).reshape(lead + (blocks * SCAN_BLOCK,))
    return out[..., :n] if blocks * SCAN_BLOCK != n else out


def _scan(op: str, x: Tensor, dim: int, dt) -> Tensor:
    x = x.to(dt)
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
    if x.dtype == dtypes.float16:  # computed in float32, rounded once
        return _scan("logsumexp", x.float(), dim, dtypes.float32).half()
    return _scan("logsumexp", x, dim, x.dtype)
