"""ops.WRITE_SLOT: a cache with one slot along a dim replaced (slots.py).

In place (lowering found the cache donated and read by nothing else): a thread per element of the new slice
writes it into the output, whose buffer is the cache's (the plan aliases them), so the rest of the cache is never
read or written and the cache is not bound. Out of place: a thread per element of the cache copies it or, in the
slot, takes the new value. A position outside the dim writes nothing (torch.where's meaning)."""
from __future__ import annotations

import math

from ..ops import Node
from .common import WG, thread_per_output
from .expr import Expr, KernelSource, idx_vars, linear_index


def write_slot(src: KernelSource, core: Node):
    cache, new, position = core.srcs
    dim, in_place = core.arg
    size = cache.shape[dim]
    if not in_place:
        def compute(e: Expr, idx):
            pos = e.value(position, ["0"])
            at = list(idx)
            at[dim] = "0"
            return f"select({e.value(cache, idx)}, {e.value(new, at)}, {idx[dim]} == {pos})"
        wgsl, groups = thread_per_output(src, cache.shape, compute)
        return wgsl, groups, "copy"
    n = math.prod(new.shape)
    lines: list[str] = []
    e = Expr(src, lines)
    e.emit(f"let gi = wg * {WG} + lid;")
    e.emit(f"if (gi >= {n}) {{ return; }}")
    pos = e.let(e.value(position, ["0"]), "pos")
    e.emit(f"if ({pos} < 0 || {pos} >= {size}) {{ return; }}")
    idx = idx_vars(e, "gi", new.shape)
    value = e.value(new, idx)
    at = list(idx)
    at[dim] = pos
    e.emit(src.store(linear_index(at, cache.shape), value))
    return src.render("\n".join(lines), WG), -(-n // WG), "in_place"


__all__ = ["write_slot"]
