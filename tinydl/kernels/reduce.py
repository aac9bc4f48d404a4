"""Reductions (sum/prod/max/min/argmax/argmin over any set of axes), with the reduced input computed inline
(prologue: e.g. var's (x - mean)^2) and elementwise consumers fused after (epilogue: mean's 1/n).

Two variants: "serial" (one thread per output, for short reductions) and "workgroup" (a workgroup per
output, threads stride over the reduced elements, then a tree in workgroup memory).
"""
from __future__ import annotations

import math

from ..ops import Node
from .common import WG, epilogue, thread_per_output
from .expr import Expr, KernelSource, idx_vars, linear_index, unravel
from .snippets import literal

FORCE_VARIANT: str | None = None  # tests force "serial" / "workgroup" to cover both on small shapes
SERIAL_MAX = 64  # reduce lengths up to this use one thread per output


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
    variant = FORCE_VARIANT or ("serial" if R <= SERIAL_MAX else "workgroup")
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
            with e.scope(f"for (var r: i32 = 0; r < {R}; r++)"):
                accumulate(e, oidx, "r", acc, best)
            return epilogue(e, src.out, core, oidx, best if arg else acc)
        wgsl, groups = thread_per_output(src, core.shape, compute)
        return wgsl, groups, "serial"

    # workgroup variant: a workgroup per output element
    size = 256 if R >= 4096 else 64
    n_out = math.prod(core.shape)
    lines: list[str] = []
    e = Expr(src, lines)
    e.emit(f"if (wg >= {n_out}) {{ return; }}")
    oidx = idx_vars(e, "wg", core.shape)
    acc, best = "acc", "best"
    e.emit(f"var acc: {ct} = {_init(op, ct)};")
    e.emit("var best: i32 = 0;")
    with e.scope(f"for (var r: i32 = lid; r < {R}; r += {size})"):
        accumulate(e, oidx, "r", acc, best)
    e.emit("sh_v[lid] = acc;")
    e.emit("sh_i[lid] = best;")
    e.emit("workgroupBarrier();")
    with e.scope(f"for (var s: i32 = {size // 2}; s > 0; s >>= 1u)"):
        with e.scope("if (lid < s)"):
            e.emit("let ov = sh_v[lid + s];")
            e.emit("let oi = sh_i[lid + s];")
            if arg:
                with e.scope(f"if ({_better(op, ct, 'ov', 'oi', 'sh_v[lid]', 'sh_i[lid]')})"):
                    e.emit("sh_v[lid] = ov;")
                    e.emit("sh_i[lid] = oi;")
            else:
                e.emit(f"sh_v[lid] = {_combine(op, ct, 'sh_v[lid]', 'ov')};")
        e.emit("workgroupBarrier();")
    with e.scope("if (lid == 0)"):
        res = e.let("sh_i[0]" if arg else "sh_v[0]", "res")
        v = epilogue(e, src.out, core, oidx, res)
        e.emit(src.store(linear_index(oidx, core.shape), v))
    shared = f"var<workgroup> sh_v: array<{ct}, {size}>;\nvar<workgroup> sh_i: array<i32, {size}>;"
    return src.render("\n".join(lines), size, shared), n_out, "workgroup"


__all__ = ["reduce", "WG"]
