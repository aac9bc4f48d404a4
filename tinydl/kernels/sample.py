"""Sampling a token per row in one kernel: Hugging Face's top-k and top-p filters, then a draw from what is left
by inverse CDF with one uniform number per row (ops.SAMPLE).

One workgroup per row of V scores (the input computed inline: the logits cast and divided by the temperature).
No sort: both filters only need a threshold, the score of the row's "crossing" element, found by radix select
over the scores' order-preserving keys (kernels/row_passes.py). With weight 1 and target k the crossing element
is the k-th largest score (top-k keeps every score >= it, ties included, as HF's `scores < kth value` filter); with
weight exp(score - max) over the top-k survivors and target top_p times their sum, it is the first element from
the top whose cumulative probability reaches top_p (top-p keeps it and every larger score: HF's ascending
cumulative sum `> 1 - top_p`). The draw: each thread sums a contiguous chunk of the kept probabilities, a
scan over the chunks places u * total in one chunk, whose thread walks it in index order (the host sampler's
`cumsum < u` count).

A row with NaN or +inf (after the temperature), or only -inf, reports checks.Code.PROBABILITY (torch.multinomial
raises for those probabilities) and still writes an index in range.
"""
from __future__ import annotations

from .. import checks
from ..ops import MAX_TRIPS, Node
from . import row_passes
from .common import function
from .expr import Expr, KernelSource
from .row_passes import THREADS, TREE, RowPasses
from .snippets import literal


def trips(vocab: int, top_k: int | None, top_p: float) -> int:
    """One thread's loop trips, all loops together (ops.MAX_TRIPS bounds them): the passes over the row, the
    selects, the chunk sum and walk and the scan over the chunks."""
    over_row, select = row_passes.pass_trips(vocab), row_passes.select_trips(vocab)
    chunk = -(-vocab // THREADS)
    return over_row + select * (top_k is not None) + (over_row + select) * (top_p < 1.0) + 2 * chunk + TREE


def sample(src: KernelSource, core: Node):
    scores, uniform = core.srcs
    rows, V = scores.shape
    top_k, top_p, min_p = core.arg
    assert trips(V, top_k, top_p) <= MAX_TRIPS, (V, top_k, top_p)

    def load(e: Expr):
        e.emit(f"return f32({e.value(scores, ['r', 'c'])});")
    function(src, "load_x(r: i32, c: i32) -> f32", load)
    function(src, "load_u(r: i32) -> f32", lambda e: e.emit(f"return f32({e.value(uniform, ['r', '0'])});"))
    function(src, "key_of(v: f32) -> u32", lambda e: e.emit("return bitcast<u32>(td_key(v)) ^ 0x80000000u;"))

    rp = RowPasses(V, "let v = load_x(r, c); let key = key_of(v);")
    # workgroup memory set before use, not left to its zero-initialization (which Dawn's disable_workgroup_init skips)
    rp.add("  let r = wg;", "  if (lid == 0) { atomicStore(&pick, 0xffffffffu); atomicStore(&tail, 0); }")
    # the row's maximum, and whether a score makes torch's probabilities invalid (NaN, +inf)
    rp.add(f"  var mx = {literal(float('-inf'), 'f32')};", "  var bad = 0.0;")
    rp.each("mx = max(mx, v); if (td_isnan(v) || bitcast<u32>(v) == 0x7f800000u) { bad = 1.0; }")
    rp.reduce4("vec4<f32>(mx, bad, 0.0, 0.0)", "max({}, {})", "stats")
    rp.add("  let top = stats.x;",
           f"  if (stats.y > 0.0 || bitcast<u32>(top) == 0xff800000u) {{ {src.report(checks.Code.PROBABILITY)} }}")
    if top_k is not None:
        rp.select("cut_k", "1.0", literal(float(top_k), "f32"), "above_k")
    else:
        rp.add("  let cut_k = 0u;")
    kept = "select(0.0, exp(v - top), key >= cut_k)"
    if top_p < 1.0:
        rp.add("  var z = 0.0;")
        rp.each(f"z += {kept};")
        rp.reduce4("vec4<f32>(z, 0.0, 0.0, 0.0)", "{} + {}", "zs")
        rp.select("cut_p", kept, f"zs.x * {literal(top_p, 'f32')}", "above_p")
        rp.add("  let cut = max(cut_k, cut_p);")
    else:
        rp.add("  let cut = cut_k;")
    # HF's min-p: a probability below min_p times the top one's (exp(v - top) is that ratio) is dropped too
    keep = "key >= cut" if min_p is None else f"key >= cut && exp(v - top) >= {literal(min_p, 'f32')}"
    weight = f"select(0.0, exp(v - top), {keep})"
    # the draw: contiguous chunks in index order, a scan over their sums
    chunk = -(-V // THREADS)

    def chunk_loop(stmt: str) -> None:
        rp.add(f"  for (var j: i32 = 0; j < {chunk}; j++) {{ let c = lid * {chunk} + j; if (c < {V}) {{ "
               f"let v = load_x(r, c); let key = key_of(v); let w = {weight}; {stmt} }} }}")

    rp.add("  var mass = 0.0;")
    chunk_loop("mass += w;")
    rp.add("  red[lid] = vec4<f32>(mass, 0.0, 0.0, 0.0);", "  workgroupBarrier();",
           f"  for (var o: i32 = 1; o < {THREADS}; o <<= 1u) {{",  # inclusive scan (Hillis-Steele)
           "    let before = select(0.0, red[max(lid - o, 0)].x, lid >= o);", "    workgroupBarrier();",
           "    red[lid].x += before;", "    workgroupBarrier();", "  }",
           "  let through = red[lid].x;", "  let below = through - mass;",
           f"  let goal = load_u(r) * red[{THREADS - 1}].x;",
           "  var last = -1;", "  var acc = below;", "  var got = -1;")
    chunk_loop("acc += w; if (w > 0.0) { last = c; if (got < 0 && acc > goal) { got = c; } }")
    # the chunk holding the goal picks; rounding past its end gives its last kept element
    rp.add("  if (below <= goal && goal < through) { atomicMin(&pick, u32(select(last, got, got >= 0))); }",
           "  if (last >= 0) { atomicMax(&tail, last); }",
           "  workgroupBarrier();",
           "  if (lid == 0) {",
           "    let picked = atomicLoad(&pick);",
           # the target at or past the total (u * total rounded up): the last kept element
           f"    {src.store('r', 'select(max(atomicLoad(&tail), 0), i32(picked), picked != 0xffffffffu)')}",
           "  }")
    shared = "\n".join([row_passes.REDUCTION_MEMORY,
                        "var<workgroup> pick: atomic<u32>;", "var<workgroup> tail: atomic<i32>;"])
    variant = "+".join(["sample"] + (["top_k"] if top_k is not None else []) + (["top_p"] if top_p < 1.0 else [])
                        + (["min_p"] if min_p is not None else []))
    return src.render("\n".join(rp.body), THREADS, shared), rows, variant


__all__ = ["sample", "trips", "THREADS"]
