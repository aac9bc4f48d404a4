"""Sorting rows, or their k first, in one kernel (ops.SORT): the indices of each row's elements in sorted order
(torch's sort / topk / argsort; the values are a gather of them).

One workgroup per row. The elements are ordered by a 32-bit key (kernels/row_passes.py: order-preserving, NaN
above +inf as torch sorts it; inverted for descending order) and then by index, so equal elements keep their
order (torch's stable sort; topk's ties go to the lowest indices).
- A row of up to SORT_MAX elements is sorted whole: keys and indices in workgroup memory, a bitonic sort.
- A longer row's first k (k <= TOPK_MAX): radix select finds the k-th key and how many keys come before it;
  a second select, over the indices of the elements equal to it, keeps the ties with the lowest indices; those
  k elements are gathered into workgroup memory (any order) and sorted there.
"""
from __future__ import annotations

import math

from ..ops import MAX_TRIPS, Node
from .common import function
from .expr import Expr, KernelSource
from .row_passes import REDUCTION_MEMORY, THREADS, RowPasses, pass_trips, select_trips

SORT_MAX = 2048  # keys and indices of 2048 elements: 16 KiB, the workgroup memory every adapter has
TOPK_MAX = 1024  # with the reductions' 4 KiB beside them


def _size(n: int) -> int:
    return 1 << max(1, math.ceil(math.log2(max(n, 2))))


def _bitonic_trips(p: int) -> int:
    stages = int(math.log2(p))
    return stages * (stages + 1) // 2 * (1 + -(-p // THREADS)) + stages


def trips(length: int, k: int) -> int | None:
    """One thread's loop trips, or None where no form of the kernel takes the row."""
    if length <= SORT_MAX:
        p = _size(length)
        return -(-p // THREADS) + _bitonic_trips(p) + -(-k // THREADS)
    if k > TOPK_MAX:
        return None
    p = _size(k)
    t = 2 * select_trips(length) + pass_trips(length) + -(-p // THREADS) + _bitonic_trips(p) + -(-k // THREADS)
    return t if t <= MAX_TRIPS else None


def sort(src: KernelSource, core: Node):
    (x,) = core.srcs
    rows, n = x.shape
    k, descending = core.arg
    assert trips(n, k) is not None, (n, k)
    whole = n <= SORT_MAX
    p = _size(n if whole else k)

    def load(e: Expr):
        e.emit(f"return {e.value(x, ['r', 'c'])};")
    function(src, f"load_x(r: i32, c: i32) -> {x.dtype.compute}", load)
    ct = x.dtype.compute
    key = {"f32": "select(bitcast<u32>(td_key(v)) ^ 0x80000000u, 0xffffffffu, td_isnan(v))",
           "i32": "bitcast<u32>(v) ^ 0x80000000u", "bool": "select(0u, 1u, v)"}[ct]
    # first_key: bigger comes first (descending: the value's key; ascending: inverted); the sort is ascending
    # by its inverse
    function(src, f"first_key(v: {ct}) -> u32",
             lambda e: e.emit(f"return {key};" if descending else f"return ~({key});"))
    rp = RowPasses(n, "let v = load_x(r, c); let key = first_key(v);")
    rp.add("  let r = wg;")
    per = -(-p // THREADS)

    def over_slots(stmt: str, bound: int = p) -> None:
        rp.add(f"  for (var m: i32 = 0; m < {-(-bound // THREADS)}; m++) {{ let t = lid + m * {THREADS}; "
               f"if (t < {bound}) {{ {stmt} }} }}")

    if whole:
        over_slots(f"if (t < {n}) {{ let c = t; let v = load_x(r, c); sk[t] = ~first_key(v); si[t] = u32(t); }} "
                   "else { sk[t] = 0xffffffffu; si[t] = 0xffffffffu; }")
    else:
        rp.add("  if (lid == 0) { atomicStore(&filled, 0u); }")
        rp.select("kth", "1.0", f"{float(k)}", "before")
        # of the elements equal to the k-th, those with the lowest indices: bigger key = lower index
        rp.select("tie", "select(0.0, 1.0, key == kth)", f"{float(k)} - before", "unused", key="~u32(c)")
        rp.each("if (key > kth || (key == kth && ~u32(c) >= tie)) { let slot = atomicAdd(&filled, 1u); "
                "sk[slot] = ~key; si[slot] = u32(c); }")
        over_slots(f"if (t >= {k}) {{ sk[t] = 0xffffffffu; si[t] = 0xffffffffu; }}")
    rp.add("  workgroupBarrier();",
           f"  for (var size = 2u; size <= {p}u; size <<= 1u) {{",
           "    for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {",
           f"      for (var m: i32 = 0; m < {per}; m++) {{",
           f"        let t = u32(lid + m * {THREADS});",
           "        let o = t ^ stride;",
           f"        if (t < {p}u && o > t) {{",
           "          let a = sk[t]; let b = sk[o]; let ia = si[t]; let ib = si[o];",
           "          if ((a > b || (a == b && ia > ib)) == ((t & size) == 0u)) {",
           "            sk[t] = b; sk[o] = a; si[t] = ib; si[o] = ia;",
           "          }",
           "        }",
           "      }",
           "      workgroupBarrier();",
           "    }",
           "  }")
    over_slots(src.store(f"r * {k} + t", "i32(si[t])"), k)
    shared = [f"var<workgroup> sk: array<u32, {p}>;", f"var<workgroup> si: array<u32, {p}>;"]
    if not whole:
        shared += [REDUCTION_MEMORY, "var<workgroup> filled: atomic<u32>;"]
    return src.render("\n".join(rp.body), THREADS, "\n".join(shared)), rows, "whole" if whole else "select"


__all__ = ["sort", "trips", "SORT_MAX", "TOPK_MAX"]
