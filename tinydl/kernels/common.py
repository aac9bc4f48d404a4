"""Pieces every kernel kind shares: the epilogue and the thread-per-output skeleton."""
from __future__ import annotations

import math

from ..ops import Node
from .expr import Expr, KernelSource, idx_vars, linear_index

WG = 256  # threads per workgroup of the thread-per-output kernels


def epilogue(e: Expr, out: Node, core: Node, idx, acc: str) -> str:
    """The value stored for the core's element at idx: the core op's result `acc` pushed through the fused
    chain of elementwise ops and reshapes. The chain keeps linear order, so the element lands at
    linear_index(idx, core.shape) in the output too."""
    if out is core:
        return acc
    e.bind(core, acc)
    if out.shape != core.shape:
        idx = idx_vars(e, e.let(linear_index(idx, core.shape), "lin"), out.shape, "o")
    return e.value(out, idx)


def function(src: KernelSource, header: str, body, reuse_lets: bool = False) -> None:
    """Add `fn <header> { ... }` to the kernel; body(expr) emits its statements (inlined loads, guards)."""
    lines: list[str] = []
    body(Expr(src, lines, reuse_lets=reuse_lets))
    src.functions.append(f"fn {header} {{\n" + "\n".join(lines) + "\n}")


def store_function(src: KernelSource, core: Node, params: str, index) -> None:
    """`fn store_out(<params>, acc: f32)`: the core's value `acc` at the multi-index index(expr), pushed
    through the epilogue and stored (heavy kernels whose threads own several outputs call it per output)."""
    def body(e: Expr):
        idx = index(e)
        e.emit(src.store(linear_index(idx, core.shape), epilogue(e, src.out, core, idx, "acc")))
    function(src, f"store_out({params}, acc: f32)", body)


def store4_function(src: KernelSource, core: Node, params: str, index) -> None:
    """`fn store_out4(<params>, acc: vec4<f32>)`: four outputs of the core whose stored elements lie side by
    side from a multiple of 4 on (the caller checks), each pushed through the epilogue, written as one vec4:
    a quarter of the store instructions of four store_out calls. index(expr, c) gives component c's
    multi-index. The components share one scope, so what their epilogues compute at the same index (a channel's
    batch-norm scale, loaded and computed once, not four times) is emitted once; what depends on the output
    element is keyed by the component's own index."""
    # where the output's rows are whole 4s, the four lie in one row: the same multi-index but for its last entry
    # (no index arithmetic per component, whose divisions the compiler cannot share)
    one_row = core.shape[-1] % 4 == 0

    def body(e: Expr):
        first = index(e, 0)  # also where the vec4 is stored
        at = [first if not c else [*first[:-1], f"({first[-1]} + {c})"] if one_row else index(e, c) for c in range(4)]
        values = [epilogue(e, src.out, core, at[c], f"acc[{c}]") for c in range(4)]
        e.emit(src.store4(linear_index(first, core.shape), f"vec4<f32>({', '.join(values)})"))
    function(src, f"store_out4({params}, acc: vec4<f32>)", body, reuse_lets=True)


def thread_per_output(src: KernelSource, shape, compute, per_thread: int = 1):
    """A kernel whose threads each compute `per_thread` elements of `shape` (the core op's output; the stored
    output has the same elements in the same order), a workgroup's threads side by side within each round.
    compute(expr, idx) emits one element's value; returns (wgsl, workgroups). With several per thread, all the
    values are computed before any is stored (their loads are in flight together), and threads past the end
    redo the last element (the same value stored twice) rather than branch."""
    n = math.prod(shape)
    lines: list[str] = []
    e = Expr(src, lines)
    if per_thread == 1:
        e.emit(f"let gi = wg * {WG} + lid;")
        e.emit(f"if (gi >= {n}) {{ return; }}")
        v = compute(e, idx_vars(e, "gi", shape))
        e.emit(src.store("gi", v))
        return src.render("\n".join(lines), WG), -(-n // WG)
    e.emit(f"let g0 = wg * {WG * per_thread} + lid;")
    stores = []
    for j in range(per_thread):
        gi = e.let(f"min(g0 + {j * WG}, {n - 1})", "gi")
        stores.append(src.store(gi, compute(e, idx_vars(e, gi, shape))))
    for st in stores:
        e.emit(st)
    return src.render("\n".join(lines), WG), -(-n // (WG * per_thread))


__all__ = ["epilogue", "function", "store_function", "store4_function", "thread_per_output", "linear_index", "WG"]
