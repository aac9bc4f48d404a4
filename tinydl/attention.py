"""Attention as one node: scaled_dot_product_attention, and attention written out as softmax(q @ kᵀ ...) @ v
(HF's eager attention, nn.MultiheadAttention), become one ATTENTION node, which kernels/attention.py computes
in one kernel without the [B, L, S] scores ever reaching memory.

The node reads q [B, L, D], kᵀ [B, D, S], v [B, S, Dv] and the logits: the softmax's input as a formula over
a SCORES placeholder standing for q @ kᵀ (scale, masks, biases, a causal `where`: any elementwise chain that
reads each score at its own position). The kernel binds the placeholder to each score it computes and
evaluates the formula there, as an epilogue is evaluated over a GEMM's accumulator.
"""
from __future__ import annotations

import math

from . import debug
from .ops import ATTENTION, ELEMENTWISE, INLINE_KINDS, MATMUL, ROWNORM, SCORES, VIEW, Node
from .tensor import Tensor

# Fewer query rows than this per batch entry (decoding one token against a cache) leave the fused kernel's
# threads idle (one query row per thread or two); the composed GEMMs spread over the keys instead.
MIN_QUERIES = 16


def usable(B: int, L: int, S: int, D: int, Dv: int, dtypes) -> bool:
    """Whether attention of these sizes runs as one kernel: enough query rows, heads that fit the kernel's
    registers and workgroup memory, float data, lazy mode (eager realizes each op: nothing to fuse)."""
    from .kernels import attention as kernel
    from .runtime import get_runtime
    if debug.EAGER or L < MIN_QUERIES or 0 in (B, S, D, Dv):
        return False
    if not all(dt.is_floating_point for dt in dtypes):
        return False
    return kernel.fits(D, Dv, get_runtime().workgroup_storage)


def node(q3: Tensor, kt3: Tensor, v3: Tensor, logits, causal: bool, safe: bool) -> Tensor:
    """The [B, L, Dv] attention of q3 [B, L, D], kt3 [B, D, S], v3 [B, S, Dv]; logits(scores) builds the
    softmax's input from the [B, L, S] scores (a SCORES placeholder). causal: keys past the query's index are
    cut (and skipped). safe: a row with every key masked gives 0 (scaled_dot_product_attention), not NaN
    (softmax)."""
    B, L, _ = q3.shape
    S = kt3.shape[2]
    scores = Tensor(Node(SCORES, None, (), None, (B, L, S), q3.dtype))
    x3 = logits(scores)
    assert x3.shape == (B, L, S), x3.shape
    return Tensor(Node(ATTENTION, None, (q3.node, kt3.node, v3.node, x3.node), (causal, safe),
                       (B, L, v3.shape[2]), v3.dtype))


def from_softmax_matmul(a3: Tensor, b3: Tensor) -> Tensor | None:
    """matmul's A [B, L, S] @ B [B, S, Dv] as one ATTENTION node when A is a softmax over the last axis of
    logits that read the scores of an unrealized q @ kᵀ product element by element; else None."""
    p = _strip(a3.node)
    if p.kind != ROWNORM or p.op != "softmax" or p.arg[1] != p.arg[2] or p.arg[2] != len(p.shape) - 1:
        return None
    x = p.srcs[0]
    scores = _find_scores(x, a3.shape)
    if scores is None or scores.arg not in (None, 1):
        return None
    q3, kt3 = (Tensor(s) for s in scores.srcs)
    B, L, D = q3.shape
    if not usable(B, L, kt3.shape[2], D, b3.shape[2], (q3.dtype, kt3.dtype, b3.dtype, x.dtype)):
        return None
    try:
        return node(q3, kt3, b3, lambda placeholder: Tensor(_clone(x, scores, placeholder.node)).reshape(a3.shape),
                    causal=False, safe=False)
    except _NotAligned:
        return None


def _strip(n: Node) -> Node:
    """Below reshapes and float-to-float casts (softmax(..., dtype=float32).to(q.dtype))."""
    while True:
        if n.kind == VIEW and n.op == "reshape":
            n = n.srcs[0]
        elif n.kind == ELEMENTWISE and n.op == "cast" and n.dtype.is_floating_point \
                and n.srcs[0].dtype.is_floating_point:
            n = n.srcs[0]
        else:
            return n


def _find_scores(x: Node, shape) -> Node | None:
    """The one unrealized MATMUL of `shape` that the logits x read through elementwise ops and reshapes."""
    found, seen, stack = set(), set(), [x]
    while stack:
        n = stack.pop()
        if n.uid in seen:
            continue
        seen.add(n.uid)
        if n.kind == MATMUL and n.shape == tuple(shape):
            found.add(n)
        elif n.kind == ELEMENTWISE or (n.kind == VIEW and n.op == "reshape"):
            stack.extend(n.srcs)
    return found.pop() if len(found) == 1 else None


class _NotAligned(Exception):
    """The logits read the scores other than element by element (through an expand, a permute, ...)."""


def _clone(x: Node, scores: Node, placeholder: Node) -> Node:
    """x's formula with `scores` replaced by the placeholder: the nodes between them copied, the rest shared."""
    memo: dict[int, Node] = {scores.uid: placeholder}
    reads: dict[int, bool] = {scores.uid: True}

    def reads_scores(n: Node) -> bool:
        if n.uid not in reads:
            reads[n.uid] = n.kind in INLINE_KINDS and any(reads_scores(s) for s in n.srcs)
        return reads[n.uid]

    def copy(n: Node) -> Node:
        if n.uid in memo:
            return memo[n.uid]
        if not reads_scores(n):
            return n
        aligned = n.kind == ELEMENTWISE or (n.kind == VIEW and n.op == "reshape")
        if not aligned or math.prod(n.shape) != scores.numel:
            raise _NotAligned
        memo[n.uid] = Node(n.kind, n.op, tuple(copy(s) for s in n.srcs), n.arg, n.shape, n.dtype)
        return memo[n.uid]
    return copy(x)
