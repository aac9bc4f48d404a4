"""Reductions (sum/prod/max/min/argmax/argmin over any set of axes), with the reduced input computed inline
(prologue: e.g. var's (x - mean)^2) and elementwise consumers fused after (epilogue: mean's 1/n).

Three variants: "serial" (one thread per output, for very short reductions with outputs enough to fill the GPU),
"lanes" (a few threads per output, for short reductions with few outputs: a global average pool at batch 1,
a split-K GEMM's sum over its slices) and "workgroup" (a workgroup per output); the last two have their threads
stride over the reduced elements, then add up in workgroup memory.
"""
from __future__ import annotations

import math

from ..ops import Node
from .common import WG, epilogue, thread_per_output
from .expr import Expr, KernelSource, idx_vars, linear_index, unravel
from .snippets import literal

FORCE_VARIANT: str | None = None  # tests force "serial" / "lanes" / "workgroup" to cover each on small shapes
SERIAL_MAX = 64  # reduce lengths up to this use LANES threads per output (or one: see SERIAL_MIN_OUTPUTS) ...
# ... and one thread per output when there are this many outputs and the length is at most SERIAL_UNROLL (a loop
# waits for each load in turn: ~14 us for 49 elements however few the outputs). H200, GPU us, serial vs lanes:
# MobileNetV2-b1's global average pool (1280 outputs of 49) 11.3 vs 3.3, split-K sums of 16 slices over 7840
# outputs 5.5 vs 3.7, of 8 over 12544 3.9 vs 3.3, but of 8 over 62720 4.1 vs 5.9; ResNet-50-b16's pool (32768
# outputs of 49) 14.2 vs 7.9, and 65536 of 49 15.1 vs 13.3
SERIAL_MIN_OUTPUTS = 1 << 15
LANES = 16
# a serial reduction this short is written out (a split-K GEMM's sum over its slices): its loads all issue before
# the first add, where a loop waits for each in turn
SERIAL_UNROLL = 16


def _init(op: str, ct: str) -> str:
    if op in ("sum",):
        return literal(0, ct)
    if op == "prod":
        return literal(1, ct)
    big = float("inf") if ct == "f32" else 2**31 - 1
    if op in ("max", "argmax"):
        return literal(-big if ct == "f32" else -2**31, ct)
    return literal(big, ct)


def _combine(op: str, ct: str, acc: str, v: str) -> str:
    if op == "sum":
        return f"{acc} + {v}"
    if op == "prod":
        return f"{acc} * {v}"
    f = "td_max" if ct == "f32" else "max"
    if op == "min":
        f = "td_min" if ct == "f32" else "min"
    return f"{f}({acc}, {v})"


def _better(op: str, ct: str, bv, bi, av, ai) -> str:
    """(bv, bi) replaces (av, ai) in argmax/argmin: strictly better, or equal with a lower index; NaN wins."""
    cmp = ">" if op == "argmax" else "<"
    s = f"({bv} {cmp} {av} || ({bv} == {av} && {bi} < {ai}))"
    if ct == "f32":
        s = f"(({s} && !td_isnan({av})) || (td_isnan({bv}) && (!td_isnan({av}) || {bi} < {ai})))"
    return s


def reduce(src: KernelSource, core: Node):
    x = core.srcs[0]
    axes = core.arg
    r_shape = [x.shape[a] for a in axes]
    R = math.prod(r_shape)
    n_out = math.prod(core.shape)
    short = "serial" if n_out >= SERIAL_MIN_OUTPUTS and R <= SERIAL_UNROLL else "lanes"
    variant = FORCE_VARIANT or (short if R <= SERIAL_MAX else "workgroup")
    ct = x.dtype.compute
    op = core.op
    arg = op in ("argmax", "argmin")

    def input_index(e: Expr, oidx, r: str):
        ridx = unravel(r, r_shape)
        it = iter(ridx)
        return [next(it) if d in axes else oidx[d] for d in range(len(x.shape))]

    def accumulate(e: Expr, oidx, r: str, acc: str, best: str | None):
        v = e.value(x, input_index(e, oidx, r))
        if arg:
            with e.scope(f"if ({_better(op, ct, v, r, acc, best)})"):
                e.emit(f"{acc} = {v};")
                e.emit(f"{best} = {r};")
        else:
            e.emit(f"{acc} = {_combine(op, ct, acc, v)};")

    if variant == "serial":
        def compute(e: Expr, oidx):
            acc, best = e.src.fresh("acc"), e.src.fresh("best")
            e.emit(f"var {acc}: {ct} = {_init(op, ct)};")
            e.emit(f"var {best}: i32 = 0;")
            if R <= SERIAL_UNROLL and not arg:  # every load in flight at once, added in the same order
                values = [e.value(x, input_index(e, oidx, str(r))) for r in range(R)]
                for v in values:
                    e.emit(f"{acc} = {_combine(op, ct, acc, v)};")
            else:
                with e.scope(f"for (var r: i32 = 0; r < {R}; r++)"):
                    accumulate(e, oidx, "r", acc, best)
            return epilogue(e, src.out, core, oidx, best if arg else acc)
        wgsl, groups = thread_per_output(src, core.shape, compute)
        return wgsl, groups, "serial"

    # lanes / workgroup: `lanes` threads per output (a power of two), `size // lanes` outputs per workgroup
    if variant == "workgroup":
        size = lanes = 256 if R >= 4096 else 64
    else:
        size, lanes = WG, min(LANES, 1 << max(R - 1, 0).bit_length())
    per_wg = size // lanes
    lines: list[str] = []
    e = Expr(src, lines)
    e.emit(f"let slot = wg * {per_wg} + lid / {lanes};")
    e.emit(f"let lane = lid % {lanes};")
    # threads past the last output redo it (every thread must reach the barriers), and do not store
    oidx = idx_vars(e, e.let(f"min(slot, {n_out - 1})", "gi"), core.shape)
    acc, best = "acc", "best"
    e.emit(f"var acc: {ct} = {_init(op, ct)};")
    e.emit("var best: i32 = 0;")
    with e.scope(f"for (var r: i32 = lane; r < {R}; r += {lanes})"):
        accumulate(e, oidx, "r", acc, best)
    e.emit("sh_v[lid] = acc;")
    e.emit("sh_i[lid] = best;")
    e.emit("workgroupBarrier();")
    with e.scope(f"for (var s: i32 = {lanes // 2}; s > 0; s >>= 1u)"):
        with e.scope("if (lane < s)"):
            e.emit("let ov = sh_v[lid + s];")
            e.emit("let oi = sh_i[lid + s];")
            if arg:
                with e.scope(f"if ({_better(op, ct, 'ov', 'oi', 'sh_v[lid]', 'sh_i[lid]')})"):
                    e.emit("sh_v[lid] = ov;")
                    e.emit("sh_i[lid] = oi;")
            else:
                e.emit(f"sh_v[lid] = {_combine(op, ct, 'sh_v[lid]', 'ov')};")
        e.emit("workgroupBarrier();")
    with e.scope(f"if (lane == 0 && slot < {n_out})"):
        res = e.let("sh_i[lid]" if arg else "sh_v[lid]", "res")
        v = epilogue(e, src.out, core, oidx, res)
        e.emit(src.store(linear_index(oidx, core.shape), v))
    shared = f"var<workgroup> sh_v: array<{ct}, {size}>;\nvar<workgroup> sh_i: array<i32, {size}>;"
    return src.render("\n".join(lines), size, shared), -(-n_out // per_wg), variant


__all__ = ["reduce", "WG"]
