"""Attention in one kernel (flash-style: the [B, L, S] scores never reach memory).

The node (ops.ATTENTION, built by tinydl/attention.py) reads q [B, L, D], kᵀ [B, D, S], v [B, S, Dv] (views
inlined) and the logits: the softmax's input as a formula over the scores (scale, masks, biases), evaluated per
score by `logits(b, r, j, s)`. One workgroup takes `rows` queries of one batch entry; each query row belongs to
`split` threads, which hold its q and its output accumulator in registers, split by interleaved vec4 columns
(so a row of D = 128 fits two threads' registers). The workgroup walks the keys in tiles staged in workgroup
memory (every thread reads the same key at once: broadcast reads), CHUNK keys at a time: scores (partial dot
products summed through workgroup memory when split > 1), logits, the causal cut, then the online softmax
(running max m and sum l; the accumulator is rescaled by exp(m_old - m_new)) and the weighted sum of the
chunk's values. A row whose keys are all masked gives 0 (scaled_dot_product_attention's safe softmax) or NaN
(softmax written out), as torch does.

Composed from a batched GEMM, a row softmax and a second GEMM the same attention takes 3 kernels and writes
and reads the [B, L, S] scores twice.
"""
from __future__ import annotations

from ..ops import SCORES, Node
from .common import function, store_function
from .expr import VEC4_STORAGE, Expr, KernelSource, memory_layout
from .snippets import literal

CHUNK = 16            # keys whose scores a thread holds at once (named registers)
MAX_REGS = 128        # floats of q plus output accumulator per thread; wider rows are split over threads
MAX_THREADS = 256
FORCE: tuple[int, int, int] | None = None  # tests force (split, rows, tile keys) so small shapes cover every path
NEG_INF_BITS = "0xff800000u"


def config(B: int, L: int, S: int, D: int, Dv: int, storage_limit: int) -> tuple[int, int, int]:
    """(split, rows, tile): threads per query row, query rows per workgroup, keys per staged tile."""
    d4, dv4 = -(-D // 4), -(-Dv // 4)
    split = _split(d4, dv4)
    rows = 64
    while rows > 16 and B * -(-L // rows) < 256:  # enough workgroups to spread over a big GPU's SMs
        rows //= 2
    rows = min(rows, MAX_THREADS // split)
    tile = 64
    while tile > CHUNK and _shared_bytes(split, rows, tile, d4, dv4) > storage_limit:
        tile //= 2
    if FORCE is not None:
        split, rows, tile = FORCE
    return split, rows, tile


def _split(d4: int, dv4: int) -> int:
    """Threads per query row: the fewest (a power of 2) that hold its q and accumulator in MAX_REGS floats each."""
    split = 1
    while (-(-d4 // split) + -(-dv4 // split)) * 4 > MAX_REGS:
        split *= 2
    return split


def _shared_bytes(split: int, rows: int, tile: int, d4: int, dv4: int) -> int:
    kv = tile * (-(-d4 // split) + -(-dv4 // split)) * split * 16
    return kv + (rows * split * CHUNK * 4 if split > 1 else 0)


def fits(D: int, Dv: int, storage_limit: int) -> bool:
    """Whether a head of this width fits the kernel (registers, and the smallest tile in workgroup memory)."""
    d4, dv4 = -(-D // 4), -(-Dv // 4)
    split = _split(d4, dv4)
    return split <= 4 and _shared_bytes(split, 16, CHUNK, d4, dv4) <= storage_limit


def attention(src: KernelSource, core: Node, storage_limit: int):
    q, kt, v, logits = core.srcs
    causal, safe = core.arg
    B, L, D = q.shape
    S, Dv = kt.shape[2], v.shape[2]
    split, rows, tile = config(B, L, S, D, Dv, storage_limit)
    d4, dv4 = -(-D // 4), -(-Dv // 4)
    qd4, vd4 = -(-d4 // split), -(-dv4 // split)  # vec4 columns per thread
    kw, vw = qd4 * split, vd4 * split              # vec4 columns per staged key / value row (zero-padded)
    threads = rows * split
    blocks = -(-L // rows)

    _load4_function(src, "load_q4", q, L, D, rows_axis=1)
    _load4_function(src, "load_k4", kt, S, D, rows_axis=2)
    _load4_function(src, "load_v4", v, S, Dv, rows_axis=1)
    scores = _placeholder(logits)

    def logits_body(e: Expr):
        e.bind(scores, "s")
        e.emit(f"return f32({e.value(logits, ['b', 'r', 'j'])});")
    function(src, "logits(b: i32, r: i32, j: i32, s: f32) -> f32", logits_body)
    store_function(src, core, "b: i32, r: i32, c: i32", lambda e: ["b", "r", "c"])

    neg_inf = literal(float("-inf"), "f32")
    body = [f"  let b = wg / {blocks};", f"  let row = (wg % {blocks}) * {rows} + lid / {split};",
            f"  let g = lid % {split};", f"  let rowc = min(row, {L - 1});"]
    body += [f"  let q{i} = load_q4(b, rowc, ({i * split} + g) * 4);" for i in range(qd4)]
    body += [f"  var o{i} = vec4<f32>(0.0);" for i in range(vd4)]
    body += [f"  var m = {neg_inf};", "  var l = 0.0;"]
    # causal: the workgroup's last row sees keys up to its own index
    kend = f"min({S}, (wg % {blocks}) * {rows} + {rows})" if causal else str(S)
    body += [f"  let kend = {kend};",
             f"  for (var k0 = 0; k0 < kend; k0 += {tile}) {{",
             "    workgroupBarrier();",  # the previous tile is consumed
             f"    for (var t = lid; t < {tile * kw}; t += {threads}) {{ "
             f"ks[t] = load_k4(b, k0 + t / {kw}, (t % {kw}) * 4); }}",
             f"    for (var t = lid; t < {tile * vw}; t += {threads}) {{ "
             f"vs[t] = load_v4(b, k0 + t / {vw}, (t % {vw}) * 4); }}",
             "    workgroupBarrier();",
             f"    for (var c0 = 0; c0 < {tile}; c0 += {CHUNK}) {{",
             "      let j0 = k0 + c0;",
             "      if (j0 >= kend) { break; }"]
    inner = []
    for j in range(CHUNK):
        dots = " + ".join(f"dot(q{i}, ks[(c0 + {j}) * {kw} + {i * split} + g])" for i in range(qd4))
        inner.append(f"var s{j} = {dots};")
    if split > 1:  # add up the row's partial dot products through workgroup memory
        inner += [f"xs[lid * {CHUNK} + {j}] = s{j};" for j in range(CHUNK)]
        inner.append("workgroupBarrier();")
        base = f"(lid / {split}) * {split * CHUNK}"
        for j in range(CHUNK):
            inner.append(f"s{j} = " + " + ".join(f"xs[{base} + {p * CHUNK + j}]" for p in range(split)) + ";")
        inner.append("workgroupBarrier();")
    for j in range(CHUNK):
        cut = f"j0 + {j} >= {S}" + (f" || j0 + {j} > row" if causal else "")
        inner.append(f"s{j} = select(logits(b, rowc, min(j0 + {j}, {S - 1}), s{j}), {neg_inf}, {cut});")
    chunk_max = "s0"
    for j in range(1, CHUNK):
        chunk_max = f"td_max({chunk_max}, s{j})"
    inner += [f"let mn = td_max(m, {chunk_max});",
              f"let ms = select(mn, 0.0, bitcast<u32>(mn) == {NEG_INF_BITS});",  # all masked so far: p = 0
              "let alpha = exp(m - ms);"]
    inner += [f"let p{j} = exp(s{j} - ms);" for j in range(CHUNK)]
    inner.append("l = l * alpha + " + " + ".join(f"p{j}" for j in range(CHUNK)) + ";")
    for i in range(vd4):
        terms = " + ".join(f"p{j} * vs[(c0 + {j}) * {vw} + {i * split} + g]" for j in range(CHUNK))
        inner.append(f"o{i} = o{i} * alpha + {terms};")
    inner.append("m = mn;")
    body += ["      " + s for s in inner]
    # every key masked (l = 0): 0 for scaled_dot_product_attention (safe), NaN as softmax gives
    empty = "0.0" if safe else literal(float("nan"), "f32")
    body += ["    }", "  }",
             f"  if (row >= {L}) {{ return; }}",
             f"  let inv = select(1.0 / l, {empty}, l == 0.0);"]
    for i in range(vd4):
        for c in range(4):
            col = f"({i * split} + g) * 4 + {c}"
            body.append(f"  if ({col} < {Dv}) {{ store_out(b, row, {col}, o{i}[{c}] * inv); }}")
    shared = (f"var<workgroup> ks: array<vec4<f32>, {tile * kw}>;\n"
              f"var<workgroup> vs: array<vec4<f32>, {tile * vw}>;")
    if split > 1:
        shared += f"\nvar<workgroup> xs: array<f32, {threads * CHUNK}>;"
    return src.render("\n".join(body), threads, shared), B * blocks, f"q{rows}s{split}k{tile}"


def _placeholder(logits: Node) -> Node:
    """The SCORES node inside the logits formula."""
    stack, seen = [logits], set()
    while stack:
        n = stack.pop()
        if n.kind == SCORES:
            return n
        if n.uid not in seen:
            seen.add(n.uid)
            stack.extend(n.srcs)
    raise AssertionError("attention logits without scores")


def _load4_function(src: KernelSource, name: str, x: Node, rows: int, width: int, rows_axis: int) -> None:
    """fn <name>(b, r, d) -> vec4<f32>: x's elements (b, r, d..d+3) (x is [B, rows, width], or [B, width, rows]
    with rows_axis 2), zero past the row count or the width; one vec4 load where x lies in memory with d
    contiguous and everything else in steps of 4 elements."""
    d_axis = 3 - rows_axis
    layout = memory_layout(x, src.materialized)
    vec = None
    if layout is not None and layout[0].dtype.storage in VEC4_STORAGE and width % 4 == 0:
        base, off, strides = layout
        if strides[d_axis] == 1 and off % 4 == 0 and strides[0] % 4 == 0 and strides[rows_axis] % 4 == 0:
            vec = base, off, strides

    def at(r: str, d: str) -> list[str]:
        return ["b", r, d] if rows_axis == 1 else ["b", d, r]

    def body(e: Expr):
        e.emit(f"if (r >= {rows} || d >= {width}) {{ return vec4<f32>(0.0); }}")
        if vec is not None:
            base, off, strides = vec
            lin = " + ".join([str(off)] + [f"({i}) * {s}" if s != 1 else f"({i})"
                                           for i, s in zip(at("r", "d"), strides) if s])
            e.emit(f"return {src.load4(base, lin)};")
            return
        parts = []
        for c in range(4):
            d = f"min(d + {c}, {width - 1})"
            parts.append(f"select(0.0, f32({e.value(x, at('r', d))}), d + {c} < {width})")
        e.emit(f"return vec4<f32>({', '.join(parts)});")
    function(src, f"{name}(b: i32, r: i32, d: i32) -> vec4<f32>", body)
