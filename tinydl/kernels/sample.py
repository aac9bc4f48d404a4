"""Sampling a token per row in one kernel: Hugging Face's top-k and top-p filters, then a draw from what is left
by inverse CDF with one uniform number per row (ops.SAMPLE).

One workgroup per row of V scores (the input computed inline: the logits cast and divided by the temperature).
No sort: both filters only need a threshold, the score of the row's "crossing" element, found by radix select
over the scores' order-preserving 32-bit keys, two bits per pass (16 passes). A pass sums a weight per digit
over the elements whose higher bits match the prefix found so far; walking the digits from the top, the first
where the running sum reaches the target fixes that digit. With weight 1 and target k the crossing element is
the k-th largest score (top-k keeps every score >= it, ties included, as HF's `scores < kth value` filter); with
weight exp(score - max) over the top-k survivors and target top_p times their sum, it is the first element from
the top whose cumulative probability reaches top_p (top-p keeps it and every larger score: HF's ascending
cumulative sum `> 1 - top_p`). The draw: each thread sums a contiguous chunk of the kept probabilities, a
scan over the chunks places u * total in one chunk, whose thread walks it in index order (the host sampler's
`cumsum < u` count).

A row with NaN or +inf (after the temperature), or only -inf, reports checks.Code.PROBABILITY (torch.multinomial
raises for those probabilities) and still writes an index in range.
"""
from __future__ import annotations

import math

from .. import checks
from ..ops import MAX_TRIPS, Node
from .common import function
from .expr import Expr, KernelSource
from .snippets import literal

THREADS = 256
PER_TRIP = 4        # elements a thread takes per trip of the filter passes (adjacent: one 16-byte span per thread)
DIGIT_BITS = 2      # bits of the key fixed per select pass: 4 sums per pass, one vec4 reduction
SELECT_PASSES = 32 // DIGIT_BITS


def trips(vocab: int, top_k: int | None, top_p: float) -> int:
    """One thread's loop trips, all loops together (ops.MAX_TRIPS bounds them): the passes over the row with
    their tree reductions (log2(THREADS) trips), the select passes' digit loops, the chunk sum and walk."""
    tree = int(math.log2(THREADS))
    over_row = -(-vocab // (THREADS * PER_TRIP)) + tree
    select = SELECT_PASSES * (1 + over_row + (1 << DIGIT_BITS))
    chunk = -(-vocab // THREADS)
    return (over_row + select * (top_k is not None) + (over_row + select) * (top_p < 1.0)
            + 2 * chunk + tree)


def sample(src: KernelSource, core: Node):
    scores, uniform = core.srcs
    rows, V = scores.shape
    top_k, top_p = core.arg
    assert trips(V, top_k, top_p) <= MAX_TRIPS, (V, top_k, top_p)

    def load(e: Expr):
        e.emit(f"return f32({e.value(scores, ['r', 'c'])});")
    function(src, "load_x(r: i32, c: i32) -> f32", load)
    function(src, "load_u(r: i32) -> f32", lambda e: e.emit(f"return f32({e.value(uniform, ['r', '0'])});"))
    function(src, "key_of(v: f32) -> u32", lambda e: e.emit("return bitcast<u32>(td_key(v)) ^ 0x80000000u;"))

    span = THREADS * PER_TRIP
    body = ["  let r = wg;", "  if (lid == 0) { atomicStore(&pick, 0xffffffffu); }"]

    def each(stmt: str, pad: str = "  ") -> None:
        """stmt over this thread's elements in the filter passes: `v` the score, `key` its key, `c` its column."""
        body.append(f"{pad}for (var i: i32 = 0; i < {-(-V // span)}; i++) {{")
        for j in range(PER_TRIP):
            body.append(f"{pad}  {{ let c = i * {span} + lid * {PER_TRIP} + {j}; if (c < {V}) {{ "
                        f"let v = load_x(r, c); let key = key_of(v); {stmt} }} }}")
        body.append(f"{pad}}}")

    def reduce4(value: str, combine: str, name: str, pad: str = "  ") -> None:
        """vec4 `value` of every thread combined over the workgroup: `name` (the same in every thread)."""
        body.extend(pad + line for line in [
            f"red[lid] = {value};", "workgroupBarrier();",
            f"for (var s: i32 = {THREADS // 2}; s > 0; s >>= 1u) {{",
            f"  if (lid < s) {{ red[lid] = {combine.format('red[lid]', 'red[lid + s]')}; }}",
            "  workgroupBarrier();", "}", f"let {name} = red[0];", "workgroupBarrier();"])

    def select(name: str, weight: str, target: str) -> None:
        """`name`: the key of the crossing element for weights `weight` (of v, key) and target sum `target`."""
        body.extend([f"  var {name} = 0u;", "  var above = 0.0;",
                     f"  for (var p: i32 = 0; p < {SELECT_PASSES}; p++) {{",
                     f"    let shift = {32 - DIGIT_BITS}u - u32(p) * {DIGIT_BITS}u;",
                     # the bits above this digit (none in the first pass: a shift by 32 is not a WGSL shift)
                     f"    let high = select(0xffffffffu << (shift + {DIGIT_BITS}u), 0u, p == 0);",
                     "    var h = vec4<f32>(0.0);"])
        each(f"if ((key & high) == {name}) {{ h[(key >> shift) & 3u] += {weight}; }}", "    ")
        reduce4("h", "{} + {}", "hist", "    ")
        body.extend([
            "    var found = false;",
            f"    for (var j: i32 = 0; j < {1 << DIGIT_BITS}; j++) {{",
            f"      let d = {(1 << DIGIT_BITS) - 1} - j;",
            f"      if (!found) {{ if (above + hist[d] >= {target} && hist[d] > 0.0) {{ {name} |= u32(d) << shift; found = true; }} "
            "else { above += hist[d]; } }",
            "    }",
            # (a digit without weight never crosses: a target of 0 stops at the first weighted element)
            # never reached (rounding in the target): digit 0, which keeps every element of this prefix
            "    if (!found) { above -= hist[0]; }",
            "  }"])

    # the row's maximum, and whether a score makes torch's probabilities invalid (NaN, +inf)
    body += [f"  var mx = {literal(float('-inf'), 'f32')};", "  var bad = 0.0;"]
    each("mx = max(mx, v); if (td_isnan(v) || bitcast<u32>(v) == 0x7f800000u) { bad = 1.0; }")
    reduce4("vec4<f32>(mx, bad, 0.0, 0.0)", "max({}, {})", "stats")
    body += ["  let top = stats.x;",
             f"  if (stats.y > 0.0 || bitcast<u32>(top) == 0xff800000u) {{ {src.report(checks.Code.PROBABILITY)} }}"]
    body += ["  var cut_k = 0u;", "  {"]  # a select's names live in a block of their own
    if top_k is not None:
        select("kth", "1.0", literal(float(top_k), "f32"))
        body.append("  cut_k = kth;")
    body.append("  }")
    kept = "select(0.0, exp(v - top), key >= cut_k)"
    body.append("  var cut = cut_k;")
    if top_p < 1.0:
        body.append("  var z = 0.0;")
        each(f"z += {kept};")
        reduce4("vec4<f32>(z, 0.0, 0.0, 0.0)", "{} + {}", "zs")
        body.append("  {")
        select("pth", kept, f"zs.x * {literal(top_p, 'f32')}")
        body.append("  cut = max(cut_k, pth);")
        body.append("  }")
    weight = "select(0.0, exp(v - top), key >= cut)"
    # the draw: contiguous chunks in index order, a scan over their sums
    chunk = -(-V // THREADS)

    def chunk_loop(stmt: str) -> None:
        body.append(f"  for (var j: i32 = 0; j < {chunk}; j++) {{ let c = lid * {chunk} + j; if (c < {V}) {{ "
                    f"let v = load_x(r, c); let key = key_of(v); let w = {weight}; {stmt} }} }}")

    body.append("  var mass = 0.0;")
    chunk_loop("mass += w;")
    body += ["  red[lid] = vec4<f32>(mass, 0.0, 0.0, 0.0);", "  workgroupBarrier();",
             f"  for (var o: i32 = 1; o < {THREADS}; o <<= 1u) {{",  # inclusive scan (Hillis-Steele)
             "    let before = select(0.0, red[max(lid - o, 0)].x, lid >= o);", "    workgroupBarrier();",
             "    red[lid].x += before;", "    workgroupBarrier();", "  }",
             "  let through = red[lid].x;", "  let below = through - mass;",
             f"  let goal = load_u(r) * red[{THREADS - 1}].x;",
             "  var last = -1;", "  var acc = below;", "  var got = -1;"]
    chunk_loop("acc += w; if (w > 0.0) { last = c; if (got < 0 && acc > goal) { got = c; } }")
    body += [  # the chunk holding the goal picks; rounding past its end gives its last kept element
             "  if (below <= goal && goal < through) { atomicMin(&pick, u32(select(last, got, got >= 0))); }",
             "  if (last >= 0) { atomicMax(&tail, last); }",
             "  workgroupBarrier();",
             "  if (lid == 0) {",
             "    let picked = atomicLoad(&pick);",
             # the target at or past the total (u * total rounded up): the last kept element
             f"    {src.store('r', 'select(max(atomicLoad(&tail), 0), i32(picked), picked != 0xffffffffu)')}",
             "  }"]
    shared = "\n".join([f"var<workgroup> red: array<vec4<f32>, {THREADS}>;",
                        "var<workgroup> pick: atomic<u32>;", "var<workgroup> tail: atomic<i32>;"])
    variant = "+".join(["sample"] + (["top_k"] if top_k is not None else []) + (["top_p"] if top_p < 1.0 else []))
    return src.render("\n".join(body), THREADS, shared), rows, variant


__all__ = ["sample", "trips", "THREADS"]
