"""Fusion: which nodes of a walked (and lowered) graph are kernel outputs, and which heavy op is each kernel's
core. Pure: nodes and a Target in, kernel groups out (no GPU, no code generation).

FUSION RULES, each a function below, applied in this order:
- inline_sums:       a short sum (a split-K GEMM's sum over its slices) whose one reader chain leads into a row
                     kernel is added up inside that kernel's loads, in no kernel of its own (INLINE_SUM_MAX).
- kernel_outputs:    heavy kinds (ops.HEAVY_KINDS) are kernels; an inline node (elementwise, views, constants,
                     cat, gather, interpolation) is computed inside the kernel that reads it, unless more than
                     one consumer reads it (then it is computed once, as a kernel output), except the kinds that
                     are free to recompute (RECOMPUTE_FREELY) and short formulas over data (CHEAP_PARAM_OPS).
                     Heavy ops read their inputs through generated load functions, so views and single-reader
                     elementwise producers are inlined there (a prologue), never copied first.
- take_epilogues:    a heavy op (EPILOGUE_HOSTS) absorbs the chain of same-element-count elementwise consumers
                     and reshapes that follows it (bias, BN, residual add, activation) as its epilogue.
- stats_in_gemvs:    a small float sum (a norm's statistic: RMSNorm's mean square over the hidden size) read only
                     by one gemv's operand loads is computed by each of that gemv's workgroups before its K loop,
                     in no kernel of its own (GEMV_STAT_OUTPUTS): a decode step's norm costs no dispatch.
- respect_binding_limit: a kernel that would bind more storage buffers than the adapter allows is split.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import checks
from ..kernels.tiles import gemv_lanes
from ..ops import BUFFER, CONST, CONV, ELEMENTWISE, HEAVY_KINDS, IOTA, MATMUL, POOL, RECURRENCE, REDUCE, ROWNORM, VIEW, Node
from .target import Target

# An inline node read by more than one consumer becomes a kernel output (computed once), except these kinds,
# which are free to recompute.
RECOMPUTE_FREELY = {CONST, IOTA, VIEW}
# A node read twice is still recomputed (not given a kernel of its own) when it is a short formula over data
# (realized buffers, constants, heavy ops' results): e.g. batch norm's per-channel scale rsqrt(var + eps) *
# weight, read by both the scale and the shift, or var's x - mean (x.var(dim)), read by the square's two
# operands; a few ALU ops per element cost less than a dispatch plus a round trip through memory.
CHEAP_PARAM_OPS = 6
# Heavy ops absorb a chain of same-element-count elementwise consumers and reshapes as their epilogue.
EPILOGUE_HOSTS = {MATMUL, CONV, REDUCE, POOL, ROWNORM, RECURRENCE}
# A short sum (a split-K GEMM's sum over its slices) whose single reader chain leads into a row kernel is added
# up inside that kernel's loads instead of in a kernel of its own: the row kernel reads each element once (or
# once per pass), so the S loads cost less than a dispatch and a round trip (BERT's dense + residual ->
# LayerNorm: 24 kernels fewer per forward).
INLINE_SUM_MAX = 16
# A float sum with at most this many outputs (rows: a decode step's batch), each over at most GEMV_STAT_MAX_LEN
# elements, read only by one gemv's operands, is recomputed by every workgroup of that gemv (kernels/row_stats.py):
# the few kilobytes it re-reads come from cache, the dispatch and round trip it saves do not.
GEMV_STAT_OUTPUTS, GEMV_STAT_MAX_LEN = 4, 1 << 16


@dataclass
class Fusion:
    """The kernels of a graph: groups [(output position, core position or None)] in walk order; materialized:
    the positions kernels read from buffers (kernel outputs; the leaves are buffers anyway)."""
    order: list[Node]
    index: dict[int, int]          # node uid -> position
    roots: list[int]
    groups: list[tuple[int, int | None]]
    materialized: set[int]
    rounded: set[int] = frozenset()  # inline values a kernel rounds as their store would have (stats_in_gemvs)


def fuse(order: list[Node], roots: list[int], target: Target, stats_in_gemv: bool = False) -> Fusion:
    index = {n.uid: i for i, n in enumerate(order)}
    consumers: list[list[int]] = [[] for _ in order]
    for i, n in enumerate(order):
        for s in n.srcs:
            consumers[index[s.uid]].append(i)
    root_set = set(roots)
    sums = inline_sums(order, consumers, root_set)
    out_nodes = kernel_outputs(order, index, consumers, root_set, sums)
    core_of = take_epilogues(order, consumers, root_set, out_nodes, sums)
    stats = stats_in_gemvs(order, consumers, root_set, out_nodes, core_of) if stats_in_gemv else {}
    respect_binding_limit(order, index, out_nodes, core_of, target, set(stats))
    groups = []
    for i in sorted(out_nodes):
        core = core_of.get(i, i if order[i].kind in HEAVY_KINDS else None)
        groups.append((i, core))
    return Fusion(order, index, list(roots), groups, out_nodes, set(stats.values()))


def inline_sums(order: list[Node], consumers: list[list[int]], root_set: set[int]) -> set[int]:
    """Short float sums whose one reader chain (elementwise ops, views) ends in a row kernel: added up in its loads."""
    def feeds_row_kernel(i: int) -> bool:
        cur = i
        while len(consumers[cur]) == 1 and cur not in root_set:
            c = consumers[cur][0]
            if order[c].kind == ROWNORM:
                return True
            if order[c].kind not in (ELEMENTWISE, VIEW):
                return False
            cur = c
        return False

    return {i for i, n in enumerate(order) if n.kind == REDUCE and n.op == "sum" and not n.stored
            and n.numel and n.srcs[0].numel // n.numel <= INLINE_SUM_MAX and feeds_row_kernel(i)
            and type(n.arg) is tuple and n.dtype.is_floating_point}  # (not a staged or integer sum)


def kernel_outputs(order: list[Node], index: dict[int, int], consumers: list[list[int]], root_set: set[int],
                   sums: set[int]) -> set[int]:
    """The roots, the heavy ops, and the inline nodes read more than once that are not free to recompute."""
    eff: dict[int, int] = {}

    def effective(i: int) -> int:
        """Readers of node i's values, counting through views."""
        if i not in eff:
            k = 1 if i in root_set else 0
            for c in consumers[i]:
                k += effective(c) if order[c].kind == VIEW and c not in root_set else 1
            eff[i] = k
        return eff[i]

    cost: dict[int, int | None] = {}

    def cheap_param(i: int) -> bool:
        """A short elementwise formula over data: realized buffers, constants, or heavy ops' results (which
        are kernel outputs anyway): e.g. batch norm's rsqrt(var + eps) * weight, read by scale and shift."""
        def ops(j):  # elementwise ops under j, or None if it reaches anything but data/consts/views
            if j not in cost:
                n = order[j]
                if n.kind in (BUFFER, CONST, IOTA) or n.kind in HEAVY_KINDS:
                    cost[j] = 0
                elif n.kind in (ELEMENTWISE, VIEW):
                    subs = [ops(index[s.uid]) for s in n.srcs]
                    cost[j] = None if None in subs else sum(subs) + (n.kind == ELEMENTWISE)
                else:
                    cost[j] = None
            return cost[j]
        try:
            c = ops(i)
        finally:
            ops = None  # ops refers to itself: a reference cycle holding order's nodes (their buffers) until gc
        return c is not None and c <= CHEAP_PARAM_OPS

    out_nodes: set[int] = set(root_set)
    try:
        for i, n in enumerate(order):
            if n.kind == BUFFER or i in sums:
                continue
            if n.kind in HEAVY_KINDS:
                out_nodes.add(i)
            elif n.stored:
                continue  # already data (a big tensor in pieces): read in place however many consumers it has
            elif n.kind not in RECOMPUTE_FREELY and effective(i) > 1 and not cheap_param(i):
                out_nodes.add(i)
    finally:  # the recursive closure refers to itself: a cycle holding order's nodes (their buffers) until gc
        effective = None
    return out_nodes


def take_epilogues(order: list[Node], consumers: list[list[int]], root_set: set[int], out_nodes: set[int],
                   sums: set[int]) -> dict[int, int]:
    """A heavy op takes over the chain of same-shape, single-reader elementwise consumers: moves its kernel's
    output to the chain's end (in out_nodes). Returns kernel output position -> heavy core position."""
    core_of: dict[int, int] = {}
    claimed: set[int] = set()
    for i, n in enumerate(order):
        if n.kind not in EPILOGUE_HOSTS or i in root_set or i in sums:
            continue
        cur = i
        while True:
            cs = consumers[cur]
            if len(cs) != 1 or cur in root_set or (cur != i and cur in out_nodes):
                break
            c = cs[0]
            cn = order[c]
            # same elements in the same order: elementwise ops, and reshapes (which keep linear order)
            follows = cn.kind == ELEMENTWISE or (cn.kind == VIEW and cn.op == "reshape")
            if not follows or cn.numel != n.numel or c in claimed:
                break
            claimed.add(c)
            cur = c
        if cur != i:
            out_nodes.discard(i)
            out_nodes.add(cur)
            core_of[cur] = i
    return core_of


def stats_in_gemvs(order: list[Node], consumers: list[list[int]], root_set: set[int], out_nodes: set[int],
                   core_of: dict[int, int]) -> dict[int, int]:
    """Small float sums (and their epilogues) read only by one gemv: made inline there (removed from out_nodes).
    Returns {sum's position: its kernel's output position} (the value the gemv rounds where it was stored)."""
    out_of = {core: o for o, core in core_of.items()}
    folded = {}
    for i, n in enumerate(order):
        o = out_of.get(i, i)
        if not (n.kind == REDUCE and n.op == "sum" and type(n.arg) is tuple and n.dtype.is_floating_point
                and o in out_nodes and o not in root_set and not n.stored
                and 0 < n.numel <= GEMV_STAT_OUTPUTS
                and INLINE_SUM_MAX < n.srcs[0].numel // n.numel <= GEMV_STAT_MAX_LEN):
            continue
        readers = _reading_kernels(order, consumers, out_nodes, o)
        if len(readers) != 1:
            continue
        g = order[next(iter(readers))]
        if g.kind == MATMUL and gemv_lanes(getattr(g.arg, "tile", None)) is not None and g.arg.split == 1:
            out_nodes.discard(o)
            core_of.pop(o, None)
            folded[i] = o
    return folded


def _reading_kernels(order, consumers, out_nodes, p) -> set[int]:
    """The kernels that read node p's value: their heavy cores, or their outputs (a kernel without a heavy core,
    or p read in a heavy op's epilogue); -1 for a kernel of another kind (then the set answers "not one gemv")."""
    found, stack, seen = set(), list(consumers[p]), set()
    while stack:
        c = stack.pop()
        if c in seen:
            continue
        seen.add(c)
        if order[c].kind == MATMUL:
            found.add(c)
        elif c in out_nodes or order[c].kind in HEAVY_KINDS:
            found.update((c, -1))
        else:
            stack.extend(consumers[c])
    return found


def _reads(order, index, out_nodes, core_pos, out_pos) -> tuple[set[int], list[int]]:
    """Buffers a kernel reads, and the inline nodes on the way (candidates to materialize)."""
    reads, inline, seen = set(), [], set()
    stack = [out_pos]
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        n = order[p]
        if p != out_pos and p != core_pos and (n.kind == BUFFER or p in out_nodes):
            reads.add(p)
            continue
        if p != out_pos and p != core_pos:
            inline.append(p)
        stack.extend(index[s.uid] for s in n.srcs)
    return reads, inline


def respect_binding_limit(order, index, out_nodes: set[int], core_of: dict[int, int], target: Target,
                          stats: set[int] = frozenset()) -> None:
    """Split kernels that would bind more storage buffers than the adapter allows (output included). An
    expression over a gemv's inline statistic (stats) is not cut out: only the gemv computes statistics."""
    limit = target.max_storage_buffers
    changed = True
    while changed:
        changed = False
        for o in sorted(out_nodes):
            core = core_of.get(o)
            if core is None and order[o].kind in HEAVY_KINDS:
                core = o
            reads, inline = _reads(order, index, out_nodes, core, o)
            status = any(checks.may_report(order[p]) for p in [o, *inline] + ([core] if core is not None else []))
            if len(reads) + 1 + status <= limit:  # + the output, + the status buffer of a kernel with checks
                continue
            # materialize the inline subexpression that reads the most buffers (it becomes its own kernel)
            best, best_n = None, 1
            for p in inline:
                if core is not None and _depends_on(order, index, p, core, out_nodes):
                    continue
                if any(_depends_on(order, index, p, st, out_nodes) for st in stats):
                    continue
                r, _ = _reads(order, index, out_nodes, None, p)
                # (never a view: its source reads the same buffers, and is not broadcast to a larger shape)
                fits = order[p].numel * order[p].dtype.itemsize <= target.max_binding_size
                if len(r) > best_n and order[p].kind not in (CONST, IOTA, VIEW) and fits:
                    best, best_n = p, len(r)
            if best is None and core is not None and core != o:
                # the epilogue alone reads too many buffers: cut it off, the heavy op stores its own result
                # and the chain becomes an elementwise kernel (split further by this loop if needed)
                out_nodes.add(core)
                del core_of[o]
                changed = True
                break
            if best is None:
                raise RuntimeError(f"a kernel computing {order[o]} must read {len(reads)} buffers, more than the "
                                   f"{limit - 1} this adapter allows per shader stage (plus the output)")
            out_nodes.add(best)
            changed = True
            break


def _depends_on(order, index, p, target, out_nodes) -> bool:
    stack, seen = [p], set()
    while stack:
        q = stack.pop()
        if q == target:
            return True
        if q in seen or (q in out_nodes and q != p):
            continue
        seen.add(q)
        stack.extend(index[s.uid] for s in order[q].srcs)
    return False
