"""When a kernel rounds a float16 value to half. torch computes each float16 op in float32 and rounds its result
to half (its kernel stores half), so a fused chain must round after every op as torch's chain of kernels does:
(x * 1000) * 0.001 overflows to inf. The rounding can be skipped where it changes nothing: where the kernel's
store rounds next (the output, and below it through ops that commute with rounding, a node nothing else reads),
and after an op whose result on half values is one of them or exactly representable (relu, maximum, floor, ...).
The policy only: kernels/expr.py emits the rounding (td_round_f16) where these rules ask for it."""
from __future__ import annotations

import collections

from .. import dtypes
from ..ops import BUFFER, ELEMENTWISE, VIEW, Node

# ops that commute with rounding to half (op(round(v)) == round(op(v))): a store's rounding stands for one before them
COMMUTE_WITH_ROUNDING = frozenset({"relu", "relu6", "neg", "abs"})
# ops whose result on float16 values is one of them or exactly representable (no rounding needed after them)
EXACT_ON_HALVES = frozenset({"relu", "relu6", "neg", "abs", "maximum", "minimum", "where", "floor", "ceil", "round",
                             "trunc", "sign"})


def rounded_by_store(out: Node, materialized) -> frozenset:
    """uids of the float16 nodes whose rounding the store of a kernel's output `out` does: the output, and below
    it, through ops that commute with rounding, an elementwise node nothing else in this kernel reads.
    materialized(node): the node's value lives in a buffer the kernel reads."""
    uses, seen, stack = collections.Counter(), set(), [out]
    while stack:
        n = stack.pop()
        if n.uid in seen or n.kind == BUFFER or materialized(n):
            continue
        seen.add(n.uid)
        for s in n.srcs:
            uses[s.uid] += 1
            stack.append(s)
    chain, n = {out.uid}, out
    while n.kind == ELEMENTWISE and n.op in COMMUTE_WITH_ROUNDING:
        s = n.srcs[0]
        if s.kind != ELEMENTWISE or s.dtype != dtypes.float16 or uses[s.uid] != 1 or materialized(s):
            break
        chain.add(s.uid)
        n = s
    return frozenset(chain)


def is_half_value(node: Node, materialized) -> bool:
    """node's value in a kernel is a float16 value already (loaded from half storage, or rounded where
    computed)."""
    if node.dtype != dtypes.float16:
        return False
    if node.kind == BUFFER or materialized(node):
        return True
    if node.kind == ELEMENTWISE:
        return node.op == "cast" or node.rounds  # rounded, or exact on half operands (never the output)
    if node.kind == VIEW and node.op in ("reshape", "permute", "expand", "slice"):
        return is_half_value(node.srcs[0], materialized)
    return False


def rounds_result(node: Node, materialized, by_store) -> bool:
    """An elementwise node (not a cast) rounds its float32-computed result to half where it is computed: a
    float16 result that rounds per op (Node.rounds), unless the store rounds it or the op is exact on its
    operands, all half values already. by_store(): the kernel's rounded_by_store, asked only where it decides."""
    return (node.dtype == dtypes.float16 and node.op != "cast" and node.rounds and node.uid not in by_store()
            and not (node.op in EXACT_ON_HALVES
                     and all(is_half_value(s, materialized) for s in node.srcs if s.dtype.is_floating_point)))


def cast_rounds(node: Node, by_store) -> bool:
    """A cast to float16 from another type rounds to half where it is computed (65536 -> inf), as torch, unless
    the store rounds it (by_store() as in rounds_result)."""
    return node.dtype == dtypes.float16 and node.srcs[0].dtype != dtypes.float16 and node.uid not in by_store()
