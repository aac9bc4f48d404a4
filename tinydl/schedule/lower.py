"""Lowering: the backend's choices, made once per graph structure (on a plan-cache miss), before fusion.

The graph the tensor API builds says what to compute (MATMUL [B,M,K] @ [B,K,N], CONV with its ConvArgs). Lowering
rewrites a copy of it into what the kernels compute, and records each choice on the node, where the emitters read
it (they never choose):
- a forward conv wide enough for a GEMM tile first writes its windows as data: IM2COL + CONV (gemm.use_im2col);
- split-K: a GEMM whose output alone gives too few workgroups (batch-1 convs over small images) runs as S slices of
  K, batch entries of one GEMM (GemmArgs.split / ConvArgs.split), and a sum over them. That sum is a REDUCE made
  here, before fusion, so it takes over the epilogue (bias, BN, activation). A K too long for drivers' loop caps
  (gemm.MAX_K) is always split;
- each GEMM's variant (its tile, or gemv): GemmArgs.tile / ConvArgs.tile; a conv without one runs as a direct conv;
- each row kernel's layout (ROWNORM): a workgroup per row, or rows in subgroup teams (Target.subgroups);
- a reduction over more than kernels.reduce.STAGE_MAX elements per output, or a long one with few outputs
  (reduce.staged), runs in two REDUCE nodes: partials over chunks of the reduced elements (Partial), then over the
  partials (no thread loops for long, and a greedy step's argmax over the vocabulary spread over workgroups);
- a slot write (WRITE_SLOT) into a donated cache that nothing else in the graph reads, and that is no root itself,
  writes in place (its arg's in_place; the plan aliases its result to the cache's buffer: plan.steps_of).
The choices come from a chooser: RULES (variants forced by the Options, measured ones, the rules in
kernels/gemm.py), or tinydl.tuning's, which measures a new shape first. The limits (the binding size) come in as a
Target value, the settings (forced variants, tap-major, subgroup teams) as an Options value.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .. import dtypes
from ..kernels import gemm, gemm_matrix, reduce, rownorm, window
from ..kernels.build import conv_uses_gemm
from ..options import Options
from ..ops import BUFFER, CONV, ELEMENTWISE, IM2COL, MATMUL, REDUCE, ROWNORM, VIEW, WRITE_SLOT, ConvArgs, GemmArgs, Node
from .graph import walk
from .target import Target


@dataclass
class Lowered:
    order: list[Node]   # the lowered graph, walked
    roots: list[int]    # its roots' positions
    keys: list[int]     # per position, its key in the plan: the walk position of the original node it stands
    #                     for, or (a node lowering made) a number past the original walk


class Rules:
    """The GEMM choices by kernels/gemm.py's rules: forced (Options.force_*), measured (gemm.TUNED), or the rules.
    `node` is the original (unlowered) MATMUL / CONV the choice is for."""

    def key(self) -> tuple:
        """What besides the Options changes this chooser's choices (part of the plan key): nothing."""
        return ()

    def split(self, node: Node, batch: int, M: int, N: int, K: int, divides: int, gather: bool | str,
              itemsize: int, opts: Options) -> int:
        return gemm.split_k(batch, M, N, K, divides, gather, itemsize, opts)

    def tile(self, batch: int, M: int, N: int, K: int, gather: bool | str, itemsize: int, opts: Options) -> str:
        return gemm.choose_tile(batch, M, N, K, gather, itemsize, opts)


RULES = Rules()


def lower(order: list[Node], roots: list[int], target: Target, opts: Options, chooser: Rules = RULES) -> Lowered:
    """The walked graph lowered as above: a copy (the caller's graph is not changed), or the graph itself where
    nothing needs lowering."""
    if not any(n.kind in (MATMUL, CONV, ROWNORM, WRITE_SLOT) or _staged(n) for n in order):
        return Lowered(order, list(roots), list(range(len(order))))
    writable = (_writable_in_place(order, roots) if opts.in_place_slots and any(n.kind == WRITE_SLOT for n in order)
                else set())
    new: dict[int, Node] = {}   # original uid -> the node computing its value in the lowered graph
    made: set[int] = set()      # uids of lowered nodes that stand for an original one
    for n in order:
        if n.kind == BUFFER:
            low = n
        else:
            srcs = tuple(new[s.uid] for s in n.srcs)
            if n.kind == MATMUL:
                low = _matmul(n, srcs, target, opts, chooser)
            elif n.kind == CONV:
                low = _conv(n, srcs, target, opts, chooser)
            elif n.kind == ROWNORM:
                low = _rownorm(n, srcs, target, opts)
            elif _staged(n):
                low = _staged_reduce(n, srcs[0])
            elif n.kind == WRITE_SLOT and n.srcs[0].uid in writable:
                low = Node(WRITE_SLOT, n.op, srcs, (n.arg[0], True), n.shape, n.dtype)
                low.uid = n.uid
            else:
                low = _copy(n, srcs, made)
        new[n.uid] = low
        made.add(low.uid)
    lroots = [new[order[r].uid] for r in roots]
    lorder, _sig, lpos = walk(lroots)
    keys = list(range(len(order), len(order) + len(lorder)))
    for p, n in enumerate(order):
        q = lpos.get(new[n.uid].uid)
        if q is not None:
            keys[q] = p
    return Lowered(lorder, [lpos[n.uid] for n in lroots], keys)


def _writable_in_place(order: list[Node], roots: list[int]) -> set[int]:
    """uids of the donated buffers that one slot write reads and nothing else (no other node, no root): their
    storage may take that write's result."""
    readers: dict[int, int] = {}
    for n in order:
        for s in set(n.srcs):
            if s.kind == BUFFER and s.writable:
                readers[s.uid] = readers.get(s.uid, 0) + (1 if n.kind == WRITE_SLOT and n.srcs[0] is s
                                                          and s not in n.srcs[1:] else 2)
    root_uids = {order[r].uid for r in roots}
    return {uid for uid, count in readers.items() if count == 1 and uid not in root_uids}


def _copy(n: Node, srcs: tuple, made: set[int]) -> Node:
    """n over the lowered sources. It keeps n's uid (kernel names list fused ops in uid order: the order they
    were built). A reshape of a node that lowering rewrote into a reshape (a split GEMM's or staged reduction's
    result) is one reshape of what that one reshapes, as the tensor API builds reshapes."""
    if n.kind == VIEW and n.op == "reshape" and srcs[0].kind == VIEW and srcs[0].op == "reshape" \
            and srcs[0].uid != n.srcs[0].uid:  # (a copy keeps its original's uid; a rewrite's result does not)
        base = srcs[0].srcs[0]
        if base.shape == n.shape and base.uid not in made:
            return base
        srcs = (base,)
    low = Node(n.kind, n.op, srcs, n.arg, n.shape, n.dtype)
    low.uid, low.rounds = n.uid, n.rounds
    return low


def _slice_sum(part: Node, sliced: tuple, axis: int, shape: tuple, dt) -> Node:
    """The sum over the slice axis of a split-K GEMM's result `part` (viewed as `sliced`), shaped `shape`, in dtype
    dt: a REDUCE, which fusion gives the epilogue. A float16 product's slices are float32 (part_dtype): their sum
    is rounded to float16 once, at the end, as torch's one accumulation is."""
    pt = part.dtype
    kept = tuple(1 if i == axis else s for i, s in enumerate(sliced))
    r = Node(VIEW, "reshape", (part,), sliced, sliced, pt)
    red = Node(REDUCE, "sum", (r,), (axis,), kept, pt)
    out = Node(VIEW, "reshape", (red,), tuple(shape), tuple(shape), pt)
    return out if pt == dt else Node(ELEMENTWISE, "cast", (out,), (dt,), tuple(shape), dt)


def part_dtype(dt):
    """The dtype of a split-K GEMM's slice results: float32 for float16 products (their partial sums would lose
    the digits that cancelling terms leave), else the product's own."""
    return dtypes.float32 if dt == dtypes.float16 else dt


def _pad_last(x: Node, dim: int, to: int) -> Node:
    """x (3-D) padded with zeros along dim up to `to`."""
    pads = tuple((0, to - x.shape[d]) if d == dim else (0, 0) for d in range(3))
    shape = tuple(to if d == dim else s for d, s in enumerate(x.shape))
    return Node(VIEW, "pad", (x,), (pads, "constant", 0), shape, x.dtype)


def _on_matrices(target: Target, opts: Options, operands: tuple, M: int, N: int, K: int) -> bool:
    """Whether a GEMM runs on a matrix tile (kernels/gemm_matrix.py): float16 operands on a Target with subgroup
    matrices, a shape worth them, no other tile forced (float32 accumulation; K split where the output has few
    tiles: gemm_matrix.split)."""
    return (target.subgroup_matrix and all(x.dtype == dtypes.float16 for x in operands)
            and opts.force_tile in (None, *gemm_matrix.MATRIX_TILES) and gemm_matrix.fits(M, N, K)
            and K <= gemm.MAX_K)


def _matmul(n: Node, srcs: tuple, target: Target, opts: Options, chooser: Rules) -> Node:
    """[B,M,K] @ [B,K,N]: its split (K slices as extra batch entries: entry s*B + b multiplies slice s of K) and
    its tile; a float16 product on an adapter with subgroup matrices takes a matrix tile."""
    a, b = srcs
    B, M, K = a.shape
    N = b.shape[2]
    dt = n.dtype
    if _on_matrices(target, opts, (a, b), M, N, K):
        tile = gemm_matrix.choose(B, M, N, opts)
        S = gemm_matrix.split(B, M, N, K, K, 1, tile, opts)
    else:
        S = chooser.split(n, B, M, N, K, K, False, dt.itemsize, opts)
        if -(-K // S) > gemm.MAX_K:  # slices too long for drivers' loop caps: more of them, K padded with zeros
            S = gemm.long_k_slices(K)
            Kp = -(-K // S) * S
            if Kp != K:
                a, b = _pad_last(a, 2, Kp), _pad_last(b, 1, Kp)
        tile = chooser.tile(B, M, N, a.shape[2], False, dt.itemsize, opts)
    if S == 1:
        low = Node(MATMUL, None, (a, b), GemmArgs(1, tile, target.subgroups and gemm.gemv_lanes(tile) is not None),
                   n.shape, dt)
        low.uid = n.uid
        return low
    part = Node(MATMUL, None, (a, b), GemmArgs(S, tile), (S * B, M, N), part_dtype(dt))
    return _slice_sum(part, (S, B, M, N), 0, n.shape, dt)


def _conv(n: Node, srcs: tuple, target: Target, opts: Options, chooser: Rules) -> Node:
    """A conv: implicit GEMM (its windows first written by IM2COL where that pays; split-K; its tile) or direct."""
    x, w = srcs
    args: ConvArgs = n.arg
    N, cout, OH, OW = n.shape
    g, C = args.groups, x.shape[1]
    cin_g, cout_g = C // g, cout // g
    kh, kw = w.shape[2:]
    dt = n.dtype
    M, Ngemm = gemm.conv_gemm_dims(N * OH * OW, cout_g)
    if args.transposed:
        gather = gemm.conv_gather(kh * kw, False, True, cin_g, opts)
        tile = chooser.tile(g, M, Ngemm, cin_g * kh * kw, gather, dt.itemsize, opts)
        return _node_like(n, (x, w), dataclasses.replace(args, tile=tile))
    on_gemm = conv_uses_gemm(cout_g, False, opts)
    if not on_gemm:  # a direct conv, unless its loops would pass drivers' caps (then a GEMM of its own shape)
        if window.direct_trips(cin_g, kh, kw, opts) <= window.MAX_TRIPS:
            return _node_like(n, (x, w), args)
        gather = gemm.conv_gather(kh * kw, False, False, cin_g, opts)
        tile = chooser.tile(g, M, Ngemm, cin_g * kh * kw, gather, dt.itemsize, opts)
        return _node_like(n, (x, w), dataclasses.replace(args, tile=tile))
    if gemm.use_im2col(g, cout, N * OH * OW, C, kh * kw, dt.itemsize, target.max_binding_size, opts):
        # the windows written once as a [C*KH*KW, N*OH*OW] matrix, which the conv's GEMM reads as plain data
        col_args = dataclasses.replace(args, x_shape=x.shape, kernel=(kh, kw))
        x = Node(IM2COL, None, (x,), col_args, (C * kh * kw, N * OH * OW), dt)
        args = dataclasses.replace(args, im2col=True, x_shape=col_args.x_shape)
    S, tile = _conv_slices(n, (x, w), args, target, opts, chooser, M, Ngemm, cin_g, kh * kw)
    if S == 1:
        return _node_like(n, (x, w), dataclasses.replace(args, tile=tile))
    # slice s of group gi runs as group gi*S + s over input channels [s*cin_g/S, (s+1)*cin_g/S) of gi; the
    # kernel indexes the original weight (ConvArgs.split), so no view of it is needed
    part = Node(CONV, None, (x, w), dataclasses.replace(args, groups=g * S, split=S, tile=tile),
                (N, g * S * cout_g, OH, OW), part_dtype(dt))
    return _slice_sum(part, (N, g, S, cout_g, OH, OW), 2, n.shape, dt)


def _conv_slices(n: Node, operands: tuple, args: ConvArgs, target: Target, opts: Options, chooser: Rules, M: int,
                 N: int, cin_g: int, taps: int) -> tuple[int, str]:
    """A GEMM conv's K slices and tile: a matrix tile and its split (gemm_matrix) for float16 on subgroup matrices,
    else the rules' split (kept under drivers' loop caps) and the tile of the GEMM as the kernel runs it."""
    g, K = args.groups, cin_g * taps
    if _on_matrices(target, opts, operands, M, N, K):
        tile = gemm_matrix.choose(g, M, N, opts)
        # slices of whole K steps where the pixels are read tap-major (gemm_conv: TapGather)
        step = gemm_matrix.MATRIX_TILES[tile].bk if gemm.tile_reads_taps(tile, cin_g) and not args.im2col else 1
        return gemm_matrix.split(g, M, N, K, cin_g, step, tile, opts), tile
    itemsize = n.dtype.itemsize
    S = chooser.split(n, g, M, N, K, cin_g, gemm.conv_gather(taps, args.im2col, False, cin_g, opts), itemsize, opts)
    if cin_g // S * taps > gemm.MAX_K:  # slices too long for drivers' loop caps (the API refused what cannot fit)
        S = next(s for s in range(S, cin_g + 1) if cin_g % s == 0 and cin_g // s * taps <= gemm.MAX_K)
    # S * g groups of cin_g / S channels
    return S, chooser.tile(g, M, N, K, gemm.conv_gather(taps, args.im2col, False, cin_g // S, opts), itemsize, opts)


def _node_like(n: Node, srcs: tuple, arg) -> Node:
    low = Node(n.kind, n.op, srcs, arg, n.shape, n.dtype)
    low.uid, low.rounds = n.uid, n.rounds
    return low


def _rownorm(n: Node, srcs: tuple, target: Target, opts: Options) -> Node:
    """A row kernel: its rows in subgroup teams or a workgroup per row (the 4th entry of its arg)."""
    eps, first, last = n.arg
    teams = rownorm.use_teams(math.prod(n.shape[first:last + 1]), target.subgroups, opts)
    return _node_like(n, srcs, (eps, first, last, teams))


def _staged(n: Node) -> bool:
    """A reduction (as the tensor API builds them: arg = its axes) that reduce.staged runs in two stages."""
    return n.kind == REDUCE and type(n.arg) is tuple and \
        reduce.staged(math.prod(n.srcs[0].shape[a] for a in n.arg), math.prod(n.shape))


def _staged_reduce(n: Node, x: Node) -> Node:
    """n in two reduce nodes: partials over chunks of its reduced elements, then over the partials."""
    op, axes, kept = n.op, n.arg, n.shape
    R = math.prod(x.shape[a] for a in axes)
    L = reduce.stage_chunk(R)
    C = -(-R // L)
    part = reduce.Partial(axes, L)
    if reduce.pairs(op, x.dtype):  # (value bits, index) or a wide integer: two i32 words per partial
        p = Node(REDUCE, op, (x,), part, kept + (C, 2), dtypes.int32)
        return Node(REDUCE, op, (p,), reduce.OfPairs(x.dtype.compute), kept, n.dtype)
    p = Node(REDUCE, op, (x,), part, kept + (C,), dtypes.float32 if x.dtype.is_floating_point else x.dtype)
    total = Node(REDUCE, op, (p,), (len(kept),), kept + (1,), n.dtype)
    return Node(VIEW, "reshape", (total,), kept, kept, n.dtype)
