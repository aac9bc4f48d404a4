"""Tiled GEMM in workgroup memory with a register-blocked, code-generator-unrolled inner product.

One emitter serves matmul/bmm/linear and convolution (implicit GEMM: the A tile is gathered from the
input image, im2col-style, inside load_a). Inputs are read through generated load functions, so views
(transposes, broadcasts) and elementwise prologues cost no copy; the store function carries the fused
epilogue (bias, BN, residual add, activation).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ops import Node
from .common import epilogue
from .expr import Expr, KernelSource, linear_index


@dataclass(frozen=True)
class Tile:
    wx: int  # threads along N
    wy: int  # threads along M
    tm: int  # outputs per thread along M
    tn: int  # outputs per thread along N
    bk: int  # K step held in workgroup memory

    @property
    def bm(self):
        return self.wy * self.tm

    @property
    def bn(self):
        return self.wx * self.tn


TILES = {
    "tile128": Tile(16, 16, 8, 8, 8),  # big outputs: 64 accumulators per thread, most FLOPs per load
    "tile64": Tile(16, 16, 4, 4, 16),
    "tile32": Tile(8, 8, 4, 4, 16),
}
# "gemv": a few rows (batch-1 linear layers): 8 output columns per workgroup, 32 threads share each column's
# K loop and add up their partial sums in workgroup memory.
GEMV_ROWS, GEMV_COLS, GEMV_LANES = 4, 8, 32
FORCE_TILE: str | None = None  # tests force each variant so small shapes cover every code path
FORCE_SPLIT_K: int | None = None  # tests force a split-K factor (see split_k)
TARGET_WORKGROUPS = 256  # enough workgroups to fill a big GPU (an H100 has 132 SMs)


def choose_tile(batch: int, M: int, N: int) -> str:
    """The biggest tile that both sides fill and that still gives enough workgroups to occupy the GPU."""
    if FORCE_TILE:
        return FORCE_TILE
    if M <= GEMV_ROWS:
        return "gemv"
    # 256-thread tiles beat many 64-thread ones (measured on an H100: 128x3072x768 ran at 6.3 TFLOP/s as 96
    # tile64 workgroups, 2.7 as 384 tile32 ones), so a big tile only needs about one workgroup per SM
    for name, enough in (("tile128", TARGET_WORKGROUPS // 2), ("tile64", TARGET_WORKGROUPS // 4)):
        t = TILES[name]
        if min(M, N) >= t.bm and batch * -(-M // t.bm) * -(-N // t.bn) >= enough:
            return name
    return "tile32"


def split_k(batch: int, M: int, N: int, K: int, divides: int) -> int:
    """How many slices to cut K into when the output alone gives too few workgroups to fill the GPU (batch-1
    convs over small images: ResNet-50's 7x7x512 layers have 32 tiles). Each slice becomes a batch entry of the
    same GEMM and a sum over slices (a reduce kernel carrying the epilogue) adds them up. `divides`: the
    slice count must divide it (K, or a conv's input channels per group). Returns 1 for no split."""
    if FORCE_SPLIT_K is not None:
        return FORCE_SPLIT_K if divides % FORCE_SPLIT_K == 0 else 1
    name = choose_tile(batch, M, N)
    if name == "gemv" or K < 256:
        return 1
    t = TILES[name]
    tiles = batch * -(-M // t.bm) * -(-N // t.bn)
    s = 1
    while tiles * s < TARGET_WORKGROUPS and K // (s * 2) >= 32 and divides % (s * 2) == 0:
        s *= 2
    return s


def gemm(src: KernelSource, core: Node, batch: int, M: int, N: int, K: int, a_value, b_value, out_index):
    """a_value(expr, b, m, k) / b_value(expr, b, k, n) emit the operand values (they may emit early
    `return 0.0;` guards); out_index(expr, b, m, n) gives the output multi-index."""
    name = choose_tile(batch, M, N)
    t = TILES.get(name)
    for fname, (r0, r1), lim, fn in (("load_a", ("m", "k"), (M, K), a_value), ("load_b", ("k", "n"), (K, N), b_value)):
        lines: list[str] = []
        e = Expr(src, lines)
        e.emit(f"if ({r0} >= {lim[0]} || {r1} >= {lim[1]}) {{ return 0.0; }}")
        v = fn(e, "b", r0, r1) if fname == "load_a" else fn(e, "b", "k", "n")
        e.emit(f"return f32({v});")
        args = "b: i32, m: i32, k: i32" if fname == "load_a" else "b: i32, k: i32, n: i32"
        src.functions.append(f"fn {fname}({args}) -> f32 {{\n" + "\n".join(lines) + "\n}")
    lines = []
    e = Expr(src, lines)
    oidx = out_index(e, "b", "m", "n")
    v = epilogue(e, src.out, core, oidx, "acc")
    e.emit(src.store(linear_index(oidx, core.shape), v))
    src.functions.append("fn store_out(b: i32, m: i32, n: i32, acc: f32) {\n" + "\n".join(lines) + "\n}")

    if name == "gemv":
        return _gemv(src, batch, M, N, K)
    T = t.wx * t.wy
    tiles_m, tiles_n = -(-M // t.bm), -(-N // t.bn)
    groups = batch * tiles_m * tiles_n
    body = _tile_origin(groups, tiles_m, tiles_n, t.bm) + [
            f"  let n0 = (rem % {tiles_n}) * {t.bn};",
            f"  let tx = lid % {t.wx};",
            f"  let ty = lid / {t.wx};"]
    body += [f"  var acc{i}_{j}: f32 = 0.0;" for i in range(t.tm) for j in range(t.tn)]
    body.append(f"  for (var k0: i32 = 0; k0 < {K}; k0 += {t.bk}) {{")
    for arr, rows, cols, load, order in (("As", t.bm, t.bk, "load_a", "mk"), ("Bs", t.bk, t.bn, "load_b", "kn")):
        total = rows * cols
        if -(-total // T) > 4:
            n = -(-total // T)
            g = f"if (q < {total}) " if n * T > total else ""
            if order == "mk":
                body.append(f"    for (var s: i32 = 0; s < {n}; s++) {{ let q = lid + s * {T}; {g}{{ let mm = q / {t.bk}; let kk = q % {t.bk}; As[kk * {t.bm} + mm] = load_a(b, m0 + mm, k0 + kk); }} }}")
            else:
                body.append(f"    for (var s: i32 = 0; s < {n}; s++) {{ let q = lid + s * {T}; {g}{{ let kk = q / {t.bn}; let nn = q % {t.bn}; Bs[kk * {t.bn} + nn] = load_b(b, k0 + kk, n0 + nn); }} }}")
            continue
        for s in range(-(-total // T)):
            guard = f"if (lid + {s * T} < {total}) " if (s + 1) * T > total else ""
            if order == "mk":  # A tile stored k-major: As[k * BM + m]
                body.append(f"    {guard}{{ let q = lid + {s * T}; let mm = q / {t.bk}; let kk = q % {t.bk}; "
                            f"As[kk * {t.bm} + mm] = load_a(b, m0 + mm, k0 + kk); }}")
            else:
                body.append(f"    {guard}{{ let q = lid + {s * T}; let kk = q / {t.bn}; let nn = q % {t.bn}; "
                            f"Bs[kk * {t.bn} + nn] = load_b(b, k0 + kk, n0 + nn); }}")
    body.append("    workgroupBarrier();")
    body.append(f"    for (var kk: i32 = 0; kk < {t.bk}; kk++) {{")
    body += [f"      let a{i} = As[kk * {t.bm} + ty * {t.tm} + {i}];" for i in range(t.tm)]
    body += [f"      let b{j} = Bs[kk * {t.bn} + tx * {t.tn} + {j}];" for j in range(t.tn)]
    body += [f"      acc{i}_{j} = fma(a{i}, b{j}, acc{i}_{j});" for i in range(t.tm) for j in range(t.tn)]
    body.append("    }")
    body.append("    workgroupBarrier();")
    body.append("  }")
    for i in range(t.tm):
        for j in range(t.tn):
            body.append(f"  {{ let m = m0 + ty * {t.tm} + {i}; let n = n0 + tx * {t.tn} + {j}; "
                        f"if (m < {M} && n < {N}) {{ store_out(b, m, n, acc{i}_{j}); }} }}")
    shared = (f"var<workgroup> As: array<f32, {t.bm * t.bk}>;\n"
              f"var<workgroup> Bs: array<f32, {t.bk * t.bn}>;")
    return src.render("\n".join(body), T, shared), groups, name


def _tile_origin(groups: int, tiles_m: int, tiles_n: int, rows: int) -> list[str]:
    """Which batch entry (b) and output rows (m0..) this workgroup computes; `rem` locates its columns."""
    return [f"  if (wg >= {groups}) {{ return; }}",
            f"  let b = wg / {tiles_m * tiles_n};",
            f"  let rem = wg % {tiles_m * tiles_n};",
            f"  let m0 = (rem / {tiles_n}) * {rows};"]


def _gemv(src: KernelSource, batch: int, M: int, N: int, K: int):
    R, C, L = GEMV_ROWS, GEMV_COLS, GEMV_LANES
    T = C * L
    tiles_m, tiles_n = -(-M // R), -(-N // C)
    groups = batch * tiles_m * tiles_n
    body = _tile_origin(groups, tiles_m, tiles_n, R) + [
            f"  let n = (rem % {tiles_n}) * {C} + lid / {L};",
            f"  let lane = lid % {L};"]
    body += [f"  var acc{i}: f32 = 0.0;" for i in range(R)]
    body.append(f"  for (var k: i32 = lane; k < {K}; k += {L}) {{")
    body.append("    let bv = load_b(b, k, n);")
    body += [f"    acc{i} = fma(load_a(b, m0 + {i}, k), bv, acc{i});" for i in range(R)]
    body.append("  }")
    body += [f"  red[{i * T} + lid] = acc{i};" for i in range(R)]
    body.append("  workgroupBarrier();")
    body.append(f"  for (var s: i32 = {L // 2}; s > 0; s >>= 1u) {{")
    body.append("    if (lane < s) {")
    body += [f"      red[{i * T} + lid] += red[{i * T} + lid + s];" for i in range(R)]
    body.append("    }")
    body.append("    workgroupBarrier();")
    body.append("  }")
    body.append(f"  if (lane == 0 && n < {N}) {{")
    body += [f"    if (m0 + {i} < {M}) {{ store_out(b, m0 + {i}, n, red[{i * T} + lid]); }}" for i in range(R)]
    body.append("  }")
    shared = f"var<workgroup> red: array<f32, {R * T}>;"
    return src.render("\n".join(body), T, shared), groups, "gemv"


def matmul(src: KernelSource, core: Node):
    """Batched matmul; with split-K (core.arg = S) batch entry s*B + b multiplies slice s of K."""
    a, b = core.srcs
    B, M, K = a.shape
    N = b.shape[2]
    S = core.arg or 1
    if S == 1:
        return gemm(src, core, B, M, N, K,
                    lambda e, bb, m, k: e.value(a, (bb, m, k)),
                    lambda e, bb, k, n: e.value(b, (bb, k, n)),
                    lambda e, bb, m, n: [bb, m, n])
    Ks = K // S

    def ab(e, bb, kk):
        return e.let(f"{bb} % {B}", "bi"), e.let(f"({bb} / {B}) * {Ks} + {kk}", "kk")

    def a_value(e, bb, m, k):
        bi, kk = ab(e, bb, k)
        return e.value(a, (bi, m, kk))

    def b_value(e, bb, k, n):
        bi, kk = ab(e, bb, k)
        return e.value(b, (bi, kk, n))

    return gemm(src, core, S * B, M, N, Ks, a_value, b_value, lambda e, bb, m, n: [bb, m, n])


def conv(src: KernelSource, core: Node):
    """Implicit GEMM: batch = groups, M = N*OH*OW, N = output channels per group, K = Cin/g * KH * KW."""
    x, w = core.srcs
    a = core.arg
    Nb, C, H, W = x.shape
    _, Cout, OH, OW = core.shape
    KH, KW = w.shape[2:]
    g = a.groups
    cin_g = C // g
    cout_g = Cout // g
    (sh, sw), (ph, pw), (dh, dw) = a.stride, a.padding, a.dilation

    def split_m(e: Expr, m):
        return (e.let(f"{m} / {OH * OW}", "n"), e.let(f"({m} / {OW}) % {OH}", "oh"), e.let(f"{m} % {OW}", "ow"))

    def k_parts(e: Expr, k):
        return (e.let(f"{k} / {KH * KW}", "ci"), e.let(f"({k} / {KW}) % {KH}", "kh"), e.let(f"{k} % {KW}", "kw"))

    def a_value(e: Expr, bb, m, k):
        n, oh, ow = split_m(e, m)
        ci, kh, kw = k_parts(e, k)
        if not a.transposed:
            ih = e.let(f"{oh} * {sh} - {ph} + {kh} * {dh}", "ih")
            iw = e.let(f"{ow} * {sw} - {pw} + {kw} * {dw}", "iw")
            e.emit(f"if ({ih} < 0 || {ih} >= {H} || {iw} < 0 || {iw} >= {W}) {{ return 0.0; }}")
        else:
            th = e.let(f"{oh} + {ph} - {kh} * {dh}", "th")
            tw = e.let(f"{ow} + {pw} - {kw} * {dw}", "tw")
            e.emit(f"if ({th} < 0 || {tw} < 0 || {th} % {sh} != 0 || {tw} % {sw} != 0 || {th} / {sh} >= {H} || "
                   f"{tw} / {sw} >= {W}) {{ return 0.0; }}")
            ih, iw = e.let(f"{th} / {sh}", "ih"), e.let(f"{tw} / {sw}", "iw")
        return e.value(x, (n, f"{bb} * {cin_g} + {ci}", ih, iw))

    def b_value(e: Expr, bb, k, nn):
        ci, kh, kw = k_parts(e, k)
        if not a.transposed and a.split > 1:  # group bb is slice bb % S of real group bb / S
            return e.value(w, (f"({bb} / {a.split}) * {cout_g} + {nn}", f"({bb} % {a.split}) * {cin_g} + {ci}", kh, kw))
        if not a.transposed:
            return e.value(w, (f"{bb} * {cout_g} + {nn}", ci, kh, kw))
        return e.value(w, (f"{bb} * {cin_g} + {ci}", nn, kh, kw))

    def out_index(e: Expr, bb, m, nn):
        n, oh, ow = split_m(e, m)
        return [n, e.let(f"{bb} * {cout_g} + {nn}", "co"), oh, ow]

    return gemm(src, core, g, Nb * OH * OW, cout_g, cin_g * KH * KW, a_value, b_value, out_index)
