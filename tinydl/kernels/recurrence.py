"""A first-order linear recurrence along the middle dim of [R, L, C] (ops.RECURRENCE): h_t = a_t * h_(t-1) + b_t
from h_(-1) = the initial state (or 0), every h_t stored (through the fused epilogue). Mamba's selective scan is one.

A thread per (r, c) walks t in order, loading step t + 1's a and b before it computes step t, so a load is in
flight while the thread waits on the one before. The loads are the kernel's inputs computed inline (Mamba's
exp(A * dt) and dt * B * u are never stored). Float16 rounds the product and the sum, as torch's loop of float16
ops does."""
from __future__ import annotations

from ..ops import MAX_TRIPS, Node
from .common import WG, function, store_function
from .expr import Expr, KernelSource


def recurrence(src: KernelSource, core: Node):
    a, b = core.srcs[:2]
    initial = core.srcs[2] if len(core.srcs) > 2 else None
    R, L, C = core.shape
    assert 0 < L <= MAX_TRIPS, L
    half = core.dtype.storage == "f16"
    for name, x in (("a", a), ("b", b)):
        function(src, f"load_{name}(r: i32, t: i32, c: i32) -> f32",
                 lambda e, x=x: e.emit(f"return f32({e.value(x, ['r', 't', 'c'])});"))
    if initial is not None:
        function(src, "load_h(r: i32, c: i32) -> f32",
                 lambda e: e.emit(f"return f32({e.value(initial, ['r', '0', 'c'])});"))
    store_function(src, core, "r: i32, t: i32, c: i32", lambda e: ["r", "t", "c"])
    rounded = (lambda v: f"td_round_f16({v})") if half else (lambda v: v)
    lines: list[str] = []
    e = Expr(src, lines)
    e.emit(f"let gi = wg * {WG} + lid;")
    e.emit(f"if (gi >= {R * C}) {{ return; }}")
    e.emit(f"let r = gi / {C}; let c = gi % {C};")
    e.emit(f"var h = {'load_h(r, c)' if initial is not None else 'td_opaque(0.0)'};")  # (inf * 0 is NaN: not folded)
    e.emit("var next_a = load_a(r, 0, c); var next_b = load_b(r, 0, c);")
    e.emit(f"for (var t: i32 = 0; t < {L}; t++) {{")
    e.emit("  let at = next_a; let bt = next_b;")
    e.emit(f"  if (t + 1 < {L}) {{ next_a = load_a(r, t + 1, c); next_b = load_b(r, t + 1, c); }}")
    product = rounded("at * h")
    e.emit(f"  h = {rounded(product + ' + bt')};")
    e.emit("  store_out(r, t, c, h);")
    e.emit("}")
    return src.render("\n".join(lines), WG), -(-(R * C) // WG), "serial"


__all__ = ["recurrence"]
