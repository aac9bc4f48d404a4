"""Attention in one kernel (flash-style: the [B, L, S] scores never reach memory).

The node (ops.ATTENTION, built by tinydl/attention.py) reads q [B, L, D], kᵀ [B, D, S], v [B, S, Dv] (views
inlined) and the logits: the softmax's input as a formula over the scores (scale, masks, biases), evaluated per
score by `logits(b, r, j, s)`. One workgroup takes `rows` queries of one batch entry (q staged once in
workgroup memory, transposed) and walks the keys in tiles of `keys` (kᵀ and v staged the same way). Its
threads form a grid of rows/4 x keys/4: each computes a 4 x 4 block of the tile's scores as a GEMM thread
does (outer products of a vec4 of q rows and a vec4 of keys: 16 FMAs per two workgroup-memory loads), applies
the logits and the causal cut, and takes part in the online softmax: the row maxima (combined over the
row's threads through workgroup memory), the rescale of the running sums by exp(m_old - m_new), the
probabilities written to workgroup memory; then it accumulates its 4 rows x (Dv / (keys/4)) columns of the
output from them and the staged v, again as outer products. Each thread keeps its part of the row sums; they
are added up once, at the end. A row whose keys are all masked gives 0 (scaled_dot_product_attention's safe
softmax) or NaN (softmax written out), as torch does.

Composed from a batched GEMM, a row softmax and a second GEMM the same attention takes 3 kernels and writes
and reads the [B, L, S] scores twice.
"""
from __future__ import annotations

from ..ops import SCORES, Node
from .common import function, store_function
from .expr import VEC4_STORAGE, Expr, KernelSource, memory_layout
from .snippets import literal

# (rows, keys) per workgroup, best first; the first whose staging fits the adapter's workgroup memory is taken
CONFIGS = ((64, 32), (32, 32), (64, 16), (32, 16), (16, 16))
FORCE: tuple[int, int] | None = None  # tests force (rows, keys) so small shapes cover every path
NEG_INF_BITS = "0xff800000u"


def _pad(n: int, m: int) -> int:
    return -(-n // m) * m


def shared_bytes(rows: int, keys: int, D: int, Dv: int) -> int:
    """Workgroup memory of a config: q, kᵀ, v and the probabilities staged, and the row-max exchange."""
    kx = keys // 4
    return 4 * (_pad(D, 4) * (rows + keys) + keys * _pad(Dv, 4 * kx) + keys * rows + rows * kx)


def config(B: int, L: int, D: int, Dv: int, storage_limit: int) -> tuple[int, int]:
    """(rows, keys): query rows per workgroup and keys per staged tile."""
    if FORCE is not None:
        return FORCE
    fitting = [c for c in CONFIGS if shared_bytes(*c, D, Dv) <= storage_limit]
    return fitting[0]


def fits(D: int, Dv: int, storage_limit: int) -> bool:
    """Whether heads of this width fit the kernel's smallest config in workgroup memory."""
    return D <= 256 and Dv <= 256 and shared_bytes(*CONFIGS[-1], D, Dv) <= storage_limit


def attention(src: KernelSource, core: Node, storage_limit: int):
    q, kt, v, logits = core.srcs
    causal, safe = core.arg
    B, L, D = q.shape
    S, Dv = kt.shape[2], v.shape[2]
    rows, keys = config(B, L, D, Dv, storage_limit)
    ry, kx = rows // 4, keys // 4                # thread grid: row groups x key groups
    threads = ry * kx
    d4, vw = _pad(D, 4) // 4, _pad(Dv, 4 * kx) // 4  # vec4s per staged q/k row, per staged v row
    cv = vw // kx                                # output vec4 columns per thread
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
    src.functions.append("fn td_max4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {\n"
                         "  return vec4<f32>(td_max(a.x, b.x), td_max(a.y, b.y), td_max(a.z, b.z), td_max(a.w, b.w));\n}")

    neg_inf = literal(float("-inf"), "f32")
    R = range(4)
    body = [f"  let b = wg / {blocks};", f"  let r0 = (wg % {blocks}) * {rows};",
            f"  let ty = lid / {kx};", f"  let tx = lid % {kx};",
            # q, transposed: qs[d * ry + y] holds rows 4y..4y+3 at dim d
            f"  for (var t = lid; t < {rows * d4}; t += {threads}) {{",
            f"    let r = t / {d4}; let d = (t % {d4}) * 4;",
            "    let x = load_q4(b, r0 + r, d);",
            *[f"    qs[(d + {c}) * {ry} + r / 4][r % 4] = x[{c}];" for c in R],
            "  }"]
    body += [f"  var o{r}_{i} = vec4<f32>(0.0);" for r in R for i in range(cv)]
    body += [f"  var m = vec4<f32>({neg_inf});", "  var l = vec4<f32>(0.0);"]
    kend = f"min({S}, r0 + {rows})" if causal else str(S)  # causal: the block's last row sees keys up to itself
    body += [f"  let kend = {kend};",
             f"  for (var k0 = 0; k0 < kend; k0 += {keys}) {{",
             "    workgroupBarrier();",  # the previous tile is consumed (and q staged, the first time)
             f"    for (var t = lid; t < {keys * d4}; t += {threads}) {{",
             f"      let j = t / {d4}; let d = (t % {d4}) * 4;",
             "      let x = load_k4(b, k0 + j, d);",
             *[f"      ks[(d + {c}) * {kx} + j / 4][j % 4] = x[{c}];" for c in R],
             "    }",
             f"    for (var t = lid; t < {keys * vw}; t += {threads}) {{ "
             f"vs[t] = load_v4(b, k0 + t / {vw}, (t % {vw}) * 4); }}",
             "    workgroupBarrier();",
             *[f"    var s{r} = vec4<f32>(0.0);" for r in R],  # s{r}: row 4ty+r, keys 4tx..4tx+3
             f"    for (var d = 0; d < {d4 * 4}; d++) {{",
             f"      let a = qs[d * {ry} + ty];", f"      let k = ks[d * {kx} + tx];",
             *[f"      s{r} += a[{r}] * k;" for r in R],
             "    }"]
    for r in R:
        for c in R:
            j = f"k0 + tx * 4 + {c}"
            cut = f"{j} >= {S}" + (f" || {j} > r0 + ty * 4 + {r}" if causal else "")
            body.append(f"    s{r}[{c}] = select(logits(b, min(r0 + ty * 4 + {r}, {L - 1}), min({j}, {S - 1}), "
                        f"s{r}[{c}]), {neg_inf}, {cut});")
    rmax = ", ".join(f"td_max(td_max(s{r}.x, s{r}.y), td_max(s{r}.z, s{r}.w))" for r in R)
    body += [f"    red[lid] = vec4<f32>({rmax});",
             "    workgroupBarrier();",
             "    var mn = m;",
             f"    for (var x = 0; x < {kx}; x++) {{ mn = td_max4(mn, red[ty * {kx} + x]); }}",
             # rows with every key masked so far: exponents against 0, so p = 0 and the sums stay 0
             f"    let ms = select(mn, vec4<f32>(0.0), bitcast<vec4<u32>>(mn) == vec4<u32>({NEG_INF_BITS}));",
             "    let alpha = exp(m - ms);",
             "    m = mn;"]
    body += [f"    let p{r} = exp(s{r} - ms[{r}]);" for r in R]
    body += ["    l = l * alpha + vec4<f32>(" + ", ".join(f"dot(p{r}, vec4<f32>(1.0))" for r in R) + ");"]
    body += [f"    o{r}_{i} *= alpha[{r}];" for r in R for i in range(cv)]
    # probabilities, transposed: ps[j * ry + y] holds rows 4y..4y+3 at key j
    body += [f"    ps[(tx * 4 + {c}) * {ry} + ty] = vec4<f32>(p0[{c}], p1[{c}], p2[{c}], p3[{c}]);" for c in R]
    body += ["    workgroupBarrier();",
             f"    for (var j = 0; j < {keys}; j++) {{",
             f"      let a = ps[j * {ry} + ty];"]
    for i in range(cv):
        body.append(f"      let v{i} = vs[j * {vw} + {i * kx} + tx];")
        body += [f"      o{r}_{i} += a[{r}] * v{i};" for r in R]
    body += ["    }", "  }"]
    # each thread summed its own keys' probabilities: add up the row's threads
    body += ["  workgroupBarrier();", "  red[lid] = l;", "  workgroupBarrier();", "  var lt = vec4<f32>(0.0);",
             f"  for (var x = 0; x < {kx}; x++) {{ lt += red[ty * {kx} + x]; }}"]
    # every key masked (sum 0): 0 for scaled_dot_product_attention (safe), NaN as softmax gives
    empty = "0.0" if safe else literal(float("nan"), "f32")
    body.append(f"  let inv = select(1.0 / lt, vec4<f32>({empty}), lt == vec4<f32>(0.0));")
    for r in R:
        body.append(f"  let row{r} = r0 + ty * 4 + {r};")
        body.append(f"  if (row{r} < {L}) {{")
        for i in range(cv):
            for c in R:
                col = f"({i * kx} + tx) * 4 + {c}"
                body.append(f"    if ({col} < {Dv}) {{ store_out(b, row{r}, {col}, o{r}_{i}[{c}] * inv[{r}]); }}")
        body.append("  }")
    shared = "\n".join([f"var<workgroup> qs: array<vec4<f32>, {d4 * 4 * ry}>;",
                        f"var<workgroup> ks: array<vec4<f32>, {d4 * 4 * kx}>;",
                        f"var<workgroup> vs: array<vec4<f32>, {keys * vw}>;",
                        f"var<workgroup> ps: array<vec4<f32>, {keys * ry}>;",
                        f"var<workgroup> red: array<vec4<f32>, {threads}>;"])
    return src.render("\n".join(body), threads, shared), B * blocks, f"q{rows}k{keys}"


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
