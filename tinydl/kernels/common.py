"""Pieces every kernel kind shares: the epilogue and the thread-per-output skeleton."""
from __future__ import annotations

import math

from ..ops import Node
from .expr import Expr, KernelSource, idx_vars, linear_index

WG = 256  # threads per workgroup of the thread-per-output kernels


def epilogue(e: Expr, out: Node, core: Node, idx, acc: str) -> str:
    """The value stored at idx: the core op's result `acc` pushed through the fused elementwise chain."""
    if out is core:
        return acc
    e.bind(core, idx, acc)
    return e.value(out, idx)


def thread_per_output(src: KernelSource, compute):
    """A kernel with one thread per output element. compute(expr, idx) emits the value; returns
    (wgsl, workgroups)."""
    out = src.out
    n = math.prod(out.shape)
    lines: list[str] = []
    e = Expr(src, lines)
    e.emit(f"let gi = wg * {WG} + lid;")
    e.emit(f"if (gi >= {n}) {{ return; }}")
    idx = idx_vars(e, "gi", out.shape)
    v = compute(e, idx)
    e.emit(src.store("gi", v))
    return src.render("\n".join(lines), WG), -(-n // WG)


__all__ = ["epilogue", "thread_per_output", "linear_index", "WG"]
