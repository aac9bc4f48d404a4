"""Tiled GEMM in workgroup memory with a register-blocked, code-generator-unrolled inner product.

One emitter serves matmul/bmm/linear and convolution (implicit GEMM, gemm_conv.py: the pixel tile is gathered
from the input image, im2col-style, inside its load function). Inputs are read through generated load functions, so views
(transposes, broadcasts) and elementwise prologues cost no copy; the store function carries the fused
epilogue (bias, BN, residual add, activation).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from ..ops import VIEW, Node
from ..options import DEFAULT, Options
from . import gemm_matrix, row_stats
from .common import function, store4_function, store_function
from .expr import VEC4_STORAGE, Expr, KernelSource, memory_layout, sub_dim_offset
from .gemm_matrix import MATRIX_TILES
from .snippets import SUM_START
from .tiles import (GEMV_INFLIGHT_BYTES, GEMV_MAX_UNROLL, GEMV_ROWS, GEMV_THREADS, TILES, Tile, gemv_columns,
                    gemv_lanes)
# the choices lowering and tuning ask for, read as gemm.X (the table and the rules live in tiles.py)
from .tiles import (GEMV_LANES, MAX_K, TUNED, choose_tile, conv_gather, conv_gemm_dims, long_k_slices,  # noqa: F401
                    rule_split, rule_tile, split_k, tap_major_fits, tile_reads_taps, tune_key, tuning_candidates,
                    use_im2col)


@dataclass(frozen=True)
class VecOperand:
    """A GEMM operand held in one float32 or float16 buffer whose elements (row r, k) and the next 3 along `fast`
    ("k" or "r") lie side by side, the first at a multiple of 4, whenever that index is a multiple of 4 (so a tile
    load fetches them as one vec4). lin(expr, b, r, k): the element's position in node's buffer."""
    node: Node
    fast: str
    lin: Callable
    eights: bool = False  # float16 whose runs along k also come in whole 8s from multiples of 8 (load8_packed)


@dataclass(frozen=True)
class TapGather:
    """A conv's pixel operand (k x pixels) gathered from its NCHW image in tap-major K order, k = tap * cin_g + ci
    (tap = kh * KW + kw), for tiled kernels whose K steps each lie within one tap (cin_g a multiple of bk) and
    whose threads each load one pixel's column: a thread splits its pixel into (n, oh, ow) once, each K step works
    out the tap's offset and whether it falls inside the image once, and each element is then one load at that
    offset plus its channel's plane (a gather in (ci, kh, kw) order splits every element's k and checks its
    bounds)."""
    image: Node
    chw: tuple[int, int, int]  # the image's C, H, W
    out_hw: tuple[int, int]
    cin_g: int
    kw: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    def setup(self, pixel: str, pixels: int) -> list[str]:
        """Once per thread, before the K loop: its pixel's image, corner and whether it exists."""
        (C, H, W), (OH, OW), (sh, sw), (ph, pw) = self.chw, self.out_hw, self.stride, self.padding
        return [f"  let gp = {pixel};",
                f"  let gy0 = ((gp / {OW}) % {OH}) * {sh} - {ph}; let gx0 = (gp % {OW}) * {sw} - {pw};",
                f"  let gbase = (gp / {OH * OW}) * {C * H * W} + b * {self.cin_g * H * W} + gy0 * {W} + gx0;",
                f"  let gin = gp < {pixels};"]

    def step(self, k0: str) -> list[str]:
        """Once per K step (k0 its first k): the tap's offset from the pixel's corner, and whether it is inside."""
        (H, W), (dh, dw) = self.chw[1:], self.dilation
        return [f"    let gtap = ({k0}) / {self.cin_g};",
                f"    let gdy = (gtap / {self.kw}) * {dh}; let gdx = (gtap % {self.kw}) * {dw};",
                f"    let gok = gin && u32(gy0 + gdy) < {H}u && u32(gx0 + gdx) < {W}u;",
                f"    let goff = select(0, gbase + gdy * {W} + gdx + (({k0}) % {self.cin_g}) * {H * W}, gok);"]

    def load(self, src: KernelSource, k: str) -> str:
        """Element k (of the step: 0..bk-1) of the thread's pixel: 0 outside the image."""
        plane = self.chw[1] * self.chw[2]
        return f"select(0.0, {src.load(self.image, f'goff + ({k}) * {plane}')}, gok)"


def _fast_axis(off: int, db: list, dr: list, dk: list, width: int = 4):
    """Which of r / k runs with stride 1 in runs of `width` (its innermost sub-dim: `width` indices from a multiple
    of it stay in it; a whole dim's length is checked by the caller) while every other step moves in multiples of
    `width` elements. db / dr / dk: the batch, row and k dims' sub-dims (expr.memory_layout)."""
    def steps_of(*dims):
        return all(stride % width == 0 for d in dims for _, stride in d)
    if off % width or not steps_of(db):
        return None
    for fast, run, other in (("k", dk, dr), ("r", dr, dk)):
        if run and run[-1][1] == 1 and (len(run) == 1 or run[-1][0] % width == 0) and steps_of(run[:-1], other):
            return fast
    return None


def gemm(src: KernelSource, core: Node, tile: str, batch: int, M: int, N: int, K: int, a_value, b_value, out_index,
         a_m_fastest: bool = False, b_k_fastest: bool = False, split: int = 1, gather: bool | str = False,
         n_runs: bool = False, a_vec: VecOperand | None = None, b_vec: VecOperand | None = None,
         b_gather: TapGather | None = None, opts: Options = DEFAULT):
    """tile: the variant lowering chose (TILES, or a gemv: GEMV_LANES). a_value(expr, b, m, k) / b_value(expr, b, k, n) emit the operand values (they may emit early
    `return 0.0;` guards); out_index(expr, b, m, n) gives the output multi-index. a_m_fastest / b_k_fastest:
    the operand's memory runs along m (im2col rows, X.T) / along k (x @ W.T, conv weights), so the tile loads
    walk that index across neighbouring threads (coalesced global reads). split: how many of the batch entries
    are K slices of one product; gather: see choose_tile.
    n_runs: outputs n..n+3 (n a multiple of 4) are stored side by side from a multiple of 4 on, so a tiled
    kernel stores each thread's groups of 4 columns as one vec4 (float32 or float16 outputs). a_vec / b_vec: the
    operand's memory layout where 4 elements at a time can be loaded as one vec4 (a tiled kernel then does so).
    b_gather: B is a conv's pixels in tap-major K order, read through it (the caller checked tap_major_fits).
    opts: the vec4 switches (Options.vec4_loads / vec4_stores)."""
    name = tile
    # a tiled kernel's loads stay inside every dimension its tile divides: those need no bounds check
    t = TILES.get(name) or MATRIX_TILES.get(name)
    # a gemv whose weights (B) run along k reads them 4 k's at a time as one vec4, float16 ones 8 at a time as
    # one 16-byte load of packed pairs; A follows in the same runs, as vectors where it lies along k in memory,
    # element by element (computed: a norm's prologue, a gather) otherwise
    lanes = gemv_lanes(name)
    src.stats_allowed = lanes is not None  # a gemv computes the statistics its loads read (row_stats.py)
    gemv_loads = _gemv_loads(lanes is not None and opts.vec4_loads, K, a_vec, b_vec)
    inside = {"m": t and M % t.bm == 0, "n": t and N % t.bn == 0, "k": t and K % t.bk == 0}
    # per operand: the index its memory runs along ("r": its rows, m for A / n for B; or "k"), and whether a
    # tiled kernel's loads fetch 4 elements as one vec4 (each thread's share of a tile is whole vec4s; a matrix
    # tile's: 8, packed float16 pairs)
    fast = {"a": "r" if a_m_fastest else "k", "b": "k" if b_k_fastest else "r"}
    vec = {"a": False, "b": False}
    operands = (("a", a_vec, "m", t and t.bm, M, a_value), ("b", b_vec, "n", t and t.bn, N, b_value))
    for op, v, r, rows, lim_r, fn in operands:
        if op == "b" and b_gather:
            continue
        if gemv_loads and gemv_loads[op] == "packed":
            _load8_function(src, f"load_{op}8", v, r, inside, (lim_r, K))
            continue
        if (name in MATRIX_TILES and opts.matrix_packed_loads and v and v.eights and K % 8 == 0
                and t.whole_vecs(rows, 8)):  # float16 runs of 8 along k as one 16-byte load
            vec[op], fast[op] = 8, "k"
            _load8_function(src, f"load_{op}8", v, r, inside, (lim_r, K))
            continue
        whole = t.whole_vec4s(rows) if t else bool(gemv_loads) and gemv_loads[op] == "vec4"
        if opts.vec4_loads and v and whole and (K if v.fast == "k" else lim_r) % 4 == 0:
            vec[op], fast[op] = True, v.fast
            _load4_function(src, f"load_{op}4", v, r, inside, (lim_r, K))
            continue
        idx = (r, "k") if op == "a" else ("k", r)

        def body(e: Expr, idx=idx, lim=(lim_r, K) if op == "a" else (K, lim_r), fn=fn):
            checks = [f"{i} >= {n}" for i, n in zip(idx, lim) if not inside[i]]
            if checks:
                e.emit(f"if ({' || '.join(checks)}) {{ return 0.0; }}")
            e.emit(f"return f32({fn(e, 'b', *idx)});")
        function(src, f"load_{op}(b: i32, {idx[0]}: i32, {idx[1]}: i32) -> f32", body)
    if lanes is not None:
        store_function(src, core, "b: i32, m: i32, n: i32", lambda e: out_index(e, "b", "m", "n"))
        b_load = gemv_loads and gemv_loads["b"]
        load_bytes = 16 if b_load == "packed" else 4 * b_vec.node.dtype.itemsize if b_load else 4  # scalar: f32
        unroll = min(GEMV_MAX_UNROLL, max(1, GEMV_INFLIGHT_BYTES // load_bytes))
        columns = gemv_columns(batch, M, N, lanes, gemv_loads, opts)
        unroll = max(1, unroll // columns)  # the loads in flight per trip stay as many with more columns
        wgsl, groups = _gemv(src, batch, M, N, K, gemv_loads, lanes, unroll, getattr(core.arg, "subgroups", False),
                             columns)
        name += f"x{columns}" if columns > 1 else ""
        return wgsl, groups, name + (" stats" if src.stats else "")  # (it computes a statistic: row_stats.py)
    vec4 = opts.vec4_stores and n_runs and N % 4 == 0 and src.out.dtype.storage in VEC4_STORAGE
    if vec4:
        src.vec4_out = True
        store4_function(src, core, "b: i32, m: i32, n: i32",
                        lambda e, c: out_index(e, "b", "m", f"(n + {c})" if c else "n"))
    else:
        store_function(src, core, "b: i32, m: i32, n: i32", lambda e: out_index(e, "b", "m", "n"))
    if name in MATRIX_TILES:
        return gemm_matrix.tiled(src, t, batch, M, N, K, fast, vec, vec4, b_gather) + (name,)
    return _tiled(src, t, batch, M, N, K, fast, vec, vec4, b_gather) + (name,)


def _gemv_loads(vectors: bool, K: int, a_vec: VecOperand | None, b_vec: VecOperand | None) -> dict | None:
    """How a gemv loads each operand ({"a": ..., "b": ...}: "packed", "vec4" or "scalar"), or None where it reads
    both element by element: B (the weights) decides the run (8 packed float16 k's, or 4), A is read in the same
    runs, as one load where it lies along k in whole runs, as single elements gathered into vectors otherwise."""
    if not (vectors and b_vec is not None and b_vec.fast == "k" and K % 4 == 0):
        return None
    a_along_k = a_vec is not None and a_vec.fast == "k"
    if K % 8 == 0 and b_vec.eights:
        return {"b": "packed", "a": "packed" if a_along_k and a_vec.eights else "vec4" if a_along_k else "scalar"}
    return {"b": "vec4", "a": "vec4" if a_along_k else "scalar"}


def _load4_function(src: KernelSource, fname: str, v: VecOperand, r: str, inside: dict, lim: tuple[int, int]):
    """fn <fname>(b, r, k) -> vec4<f32>: the operand's elements at (r, k) and the next 3 along v.fast, read as one
    vec4 (they are all inside or all outside the operand: its extent along v.fast is a multiple of 4)."""
    _vector_load(src, fname, r, inside, lim, "vec4<f32>", "vec4<f32>(0.0)",
                 lambda e: src.load4(v.node, v.lin(e, "b", r, "k")))


def _load8_function(src: KernelSource, fname: str, v: VecOperand, r: str, inside: dict, lim: tuple[int, int]):
    """fn <fname>(b, r, k) -> vec4<u32>: the float16 operand's elements (r, k..k+7) as packed pairs (k a multiple
    of 8; zeros outside the operand)."""
    _vector_load(src, fname, r, inside, lim, "vec4<u32>", "vec4<u32>(0u)",
                 lambda e: src.load8_packed(v.node, v.lin(e, "b", r, "k")))


def _vector_load(src: KernelSource, fname: str, r: str, inside: dict, lim: tuple[int, int], kind: str, zero: str,
                 load):
    def body(e: Expr):
        checks = [f"{i} >= {n}" for i, n in ((r, lim[0]), ("k", lim[1])) if not inside[i]]
        if checks:
            e.emit(f"if ({' || '.join(checks)}) {{ return {zero}; }}")
        e.emit(f"return {load(e)};")
    function(src, f"{fname}(b: i32, {r}: i32, k: i32) -> {kind}", body)


def _tiled(src: KernelSource, t: Tile, batch: int, M: int, N: int, K: int, fast: dict, vec: dict,
           vec4_out: bool = False, b_gather: TapGather | None = None):
    """Workgroup tiles in shared memory; each thread owns tm x tn outputs in groups of 4 rows / 4 columns
    spaced a quarter-warp apart. Shared memory holds, per thread row (A) / column (B) of the workgroup, one
    block with the vec4s that thread reads, in the order it reads them: every read index is a constant in the
    block it locates once (WGSL clamps each dynamic index into workgroup memory: a 4096^3 SGEMM took 3.78 ms
    with the flat tiles' clamped reads, 3.25 ms with constant ones, H200, benchmarks/sweep.py). Tile loads
    fetch 4 operand elements as one vec4 where vec[op]; `fast[op]` is the index ("r" or "k") its memory runs
    along, so neighbouring threads read neighbouring addresses. The next K step's global loads are issued into
    registers before the current step's inner product (register double buffering)."""
    T = t.wx * t.wy
    assert t.tm % 4 == 0 and t.tn % 4 == 0 and (t.bm * t.bk) % T == 0 and (t.bk * t.bn) % T == 0
    tiles_m, tiles_n = -(-M // t.bm), -(-N // t.bn)
    body = _tile_origin(batch * tiles_m * tiles_n, tiles_m, tiles_n, t.bm) + [
            f"  let n0 = (rem % {tiles_n}) * {t.bn};",
            f"  let tx = lid % {t.wx};",
            f"  let ty = lid / {t.wx};"]
    # (shared array, register prefix, rows in the tile, threads across them, vec4s per thread row, origin)
    operands = {"a": ("As", "ra", t.bm, t.wy, t.tm // 4, "m0"), "b": ("Bs", "rb", t.bn, t.wx, t.tn // 4, "n0")}
    # a block's k-th row of G vec4s starts at k * G + (k / 4) * pad vec4s; see _block_layout
    pads, blocks = {}, {}
    for op, (_arr, _reg, rows, w, g4, _o) in operands.items():
        pads[op], blocks[op] = _block_layout(t.bk, rows, w, g4, fast[op], vec[op])

    def koff(op, k):
        g4, pad = operands[op][4], pads[op]
        if isinstance(k, int):
            return k * g4 + (k // 4) * pad
        return f"({k}) * {g4} + (({k}) >> 2u) * {pad}" if pad else f"({k}) * {g4}"

    slots, stores = [], []
    for op, (arr, reg, rows, w, g4, origin) in operands.items():
        per = rows * t.bk // (4 * T if vec[op] else T)
        for s in range(per):
            q, name = f"(lid + {s * T})", f"{reg}{s}"
            if vec[op] and fast[op] == "k":  # 4 k's of one row: 4 scalar stores into its block
                r, k = f"{q} / {t.bk // 4}", f"({q} % {t.bk // 4}) * 4"
                stores += [f"{arr}[{name}t][{name}v + {c * g4}][{name}c] = {name}[{c}];" for c in range(4)]
            elif vec[op]:  # 4 rows of one k: one vec4 of the block
                r, k = f"({q} % {rows // 4}) * 4", f"{q} / {rows // 4}"
                stores.append(f"{arr}[{name}t][{name}v] = {name};")
            else:
                r, k = (f"{q} % {rows}", f"{q} / {rows}") if fast[op] == "r" else (f"{q} / {t.bk}", f"{q} % {t.bk}")
                stores.append(f"{arr}[{name}t][{name}v][{name}c] = {name};")
            body.append(f"  let {name}r = {r}; let {name}k = {k};")
            body.append(f"  let {name}t = ({name}r / 4) % {w}; let {name}c = {name}r % 4; "
                        f"let {name}v = {koff(op, name + 'k')} + {name}r / {4 * w};")
            slots.append((op, name, origin))

    def fetch(k0: str, decl: str):
        if b_gather:
            body.extend(b_gather.step(k0))
        for op, name, origin in slots:
            if op == "b" and b_gather:  # every B slot of a thread is its one pixel's column
                body.append(f"    {decl}{name} = {b_gather.load(src, name + 'k')};")
                continue
            rk = (f"{origin} + {name}r", f"{k0} + {name}k")  # load_b takes (k, n); the vec4 loads take (r, k)
            fn, args = (f"load_{op}4", rk) if vec[op] else (f"load_{op}", rk if op == "a" else rk[::-1])
            body.append(f"    {decl}{name} = {fn}(b, {', '.join(args)});")

    ga, gb = t.tm // 4, t.tn // 4
    body += [f"  var acc{i}_{j}: vec4<f32> = vec4<f32>({SUM_START});" for i in range(t.tm) for j in range(gb)]
    if b_gather:
        body += b_gather.setup("n0 + rb0r", N)
    fetch("0", "var ")
    body.append("  let pa = &As[ty];")
    body.append("  let pb = &Bs[tx];")
    body.append(f"  for (var k0: i32 = 0; k0 < {K}; k0 += {t.bk}) {{")
    body += ["    " + st for st in stores]
    body.append("    workgroupBarrier();")
    body.append(f"    if (k0 + {t.bk} < {K}) {{")
    fetch(f"k0 + {t.bk}", "")
    body.append("    }")
    for kk in range(t.bk):  # written out in full: 10-20 % faster than a loop on the H100 (benchmarks/sweep.py)
        body.append("    {")
        body += [f"      let a{g} = (*pa)[{koff('a', kk) + g}];" for g in range(ga)]
        body += [f"      let b{g} = (*pb)[{koff('b', kk) + g}];" for g in range(gb)]
        body += [f"      acc{i}_{j} = fma(vec4<f32>(a{i // 4}[{i % 4}]), b{j}, acc{i}_{j});"
                 for i in range(t.tm) for j in range(gb)]
        body.append("    }")
    body.append("    workgroupBarrier();")
    body.append("  }")
    for i in range(t.tm):  # acc{i}_{j} holds columns n..n+3 of row m
        body.append(f"  {{ let m = m0 + {(i // 4) * t.wy * 4 + i % 4} + ty * 4; if (m < {M}) {{")
        for j in range(gb):
            if vec4_out:  # N % 4 == 0: the 4 columns are all in or all out
                body.append(f"    {{ let n = n0 + {j * t.wx * 4} + tx * 4; "
                            f"if (n < {N}) {{ store_out4(b, m, n, acc{i}_{j}); }} }}")
                continue
            for c in range(4):
                body.append(f"    {{ let n = n0 + {j * t.wx * 4 + c} + tx * 4; "
                            f"if (n < {N}) {{ store_out(b, m, n, acc{i}_{j}[{c}]); }} }}")
        body.append("  } }")
    shared = (f"var<workgroup> As: array<array<vec4<f32>, {blocks['a']}>, {t.wy}>;\n"
              f"var<workgroup> Bs: array<array<vec4<f32>, {blocks['b']}>, {t.wx}>;")
    return src.render("\n".join(body), T, shared), batch * tiles_m * tiles_n


@functools.lru_cache(maxsize=None)  # counting takes ~2 ms; a handful of distinct arguments
def _block_layout(bk: int, rows: int, w: int, g4: int, fast: str, vec: bool) -> tuple[int, int]:
    """(pad, block length in vec4s) of an operand's shared tile: thread t (of w across its rows) reads its G = g4
    vec4s of k-th row from block t at k * G + (k / 4) * pad. Blocks are 1 mod 8 vec4s long, so the blocks that a
    warp's threads read at once start in different banks. The pad is the smallest that spreads the tile
    stores of one warp (the first 32 threads' elements, in the order the loads assign them) over the most banks:
    found by counting, since it depends on the tile shape and the load pattern."""
    def cost(pad):
        n = bk * g4 + (bk // 4) * pad
        block = n + (1 - n) % 8

        def word(r, k):  # 4-byte word of element (row r, k) in the tile
            return ((r // 4) % w * block + k * g4 + (k // 4) * pad + r // (4 * w)) * 4 + r % 4
        if vec and fast == "r":  # one 16-byte store per thread, served 8 threads at a time
            phases = [[word((q % (rows // 4)) * 4, q // (rows // 4)) for q in range(p, p + 8)] for p in range(0, 32, 8)]
            return sum(max(len({a for a in ph if (a // 4) % 8 == b}) for b in range(8)) for ph in phases)
        if vec:  # four 4-byte stores per thread, one per k
            stores = [[word(q // (bk // 4), (q % (bk // 4)) * 4 + c) for q in range(32)] for c in range(4)]
        elif fast == "r":
            stores = [[word(q % rows, q // rows) for q in range(32)]]
        else:
            stores = [[word(q // bk, q % bk) for q in range(32)]]
        return sum(max(len({a for a in st if a % 32 == b}) for b in range(32)) for st in stores)
    pad = min(range(9), key=lambda p: (cost(p), p))
    n = bk * g4 + (bk // 4) * pad
    return pad, n + (1 - n) % 8


def _tile_origin(groups: int, tiles_m: int, tiles_n: int, rows: int) -> list[str]:
    """Which batch entry (b) and output rows (m0..) this workgroup computes; `rem` locates its columns."""
    return [f"  if (wg >= {groups}) {{ return; }}",
            f"  let b = wg / {tiles_m * tiles_n};",
            f"  let rem = wg % {tiles_m * tiles_n};",
            f"  let m0 = (rem / {tiles_n}) * {rows};"]


# float16 elements 0-3 / 4-7 of 8 loaded as packed pairs
PACKED_HALVES = """fn td_lo8(w: vec4<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
fn td_hi8(w: vec4<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)); }"""


def _gemv(src: KernelSource, batch: int, M: int, N: int, K: int, loads: dict | None, L: int, U: int,
          subgroups: bool = False, J: int = 1):
    """L lanes share each output column's K loop, GEMV_THREADS / L columns per workgroup row of lanes, J such
    rows (each thread sums J columns, GEMV_THREADS / L apart, over the same A values: A's loads and float16
    unpacking shared by J columns); each lane keeps U loads of each operand in flight per trip. subgroups: the
    statistics it computes (row_stats.py) add up through subgroup operations. loads (see _gemv_loads): B runs
    along k in memory (x @ W.T) and each lane loads 4 k's of it at once ("vec4"), or 8 float16 k's as one
    16-byte load ("packed"); A's same k's come as one load of its own or element by element ("scalar"). None:
    both element by element."""
    R, T = min(GEMV_ROWS, M), GEMV_THREADS
    C = T // L
    tiles_m, tiles_n = -(-M // R), -(-N // (C * J))
    groups = batch * tiles_m * tiles_n
    stats, stats_shared = row_stats.prologue(src, T, subgroups)
    body = _tile_origin(groups, tiles_m, tiles_n, R) + stats + [
            f"  let n = (rem % {tiles_n}) * {C * J} + lid / {L};",
            f"  let lane = lid % {L};"]
    if loads is None:
        kind, step, load_b = "f32", 1, "load_b(b, {k}, {n})"
    elif loads["b"] == "packed":
        src.functions.append(PACKED_HALVES)
        kind, step, load_b = "vec4<f32>", 8, "load_b8(b, {n}, {k})"
    else:
        kind, step, load_b = "vec4<f32>", 4, "load_b4(b, {n}, {k})"
    column = [f"n + {j * C}" if j else "n" for j in range(J)]

    def a_runs(i: int, k: str, u: int) -> list[str]:
        """A's row m0 + i at k..k+step-1 (trip u) as WGSL values matching B's: one f32, or vec4<f32>s (two for 8
        k's; packed ones from the av{i}_{u} loaded just before)."""
        row = f"m0 + {i}"
        if loads is None:
            return [f"load_a(b, {row}, {k})"]
        if loads["a"] == "packed":
            return [f"td_lo8(av{i}_{u})", f"td_hi8(av{i}_{u})"]
        if loads["a"] == "vec4":
            return [f"load_a4(b, {row}, {k} + {j})" for j in range(0, step, 4)]
        return ["vec4<f32>(" + ", ".join(f"load_a(b, {row}, {k} + {j + c})" for c in range(4)) + ")"
                for j in range(0, step, 4)]
    stride = step * L
    body += [f"  var part{i}_{j}_{u} = {kind}({SUM_START});" for i in range(R) for j in range(J) for u in range(U)]
    body.append(f"  for (var k: i32 = lane * {step}; k < {K}; k += {stride * U}) {{")
    for u in range(U):
        k = f"k + {u * stride}" if u else "k"
        guard = u and K % (stride * U) != 0
        ind = "      " if guard else "    "
        if guard:
            body.append(f"    if ({k} < {K}) {{")
        for j in range(J):
            body.append(f"{ind}let bv{j}_{u} = {load_b.format(k=k, n=column[j])};")
            if step == 8:
                body.append(f"{ind}let bl{j}_{u} = td_lo8(bv{j}_{u}); let bh{j}_{u} = td_hi8(bv{j}_{u});")
        for i in range(R):
            if loads and loads["a"] == "packed":
                body.append(f"{ind}let av{i}_{u} = load_a8(b, m0 + {i}, {k});")
            for h, a in enumerate(a_runs(i, k, u)):
                body.append(f"{ind}let a{i}_{u}_{h} = {a};")
            for j in range(J):
                p = f"part{i}_{j}_{u}"
                if step == 8:
                    body.append(f"{ind}{p} = fma(a{i}_{u}_0, bl{j}_{u}, fma(a{i}_{u}_1, bh{j}_{u}, {p}));")
                else:
                    body.append(f"{ind}{p} = fma(a{i}_{u}_0, bv{j}_{u}, {p});")
        if guard:
            body.append("    }")
    body.append("  }")
    slots = [(i, j) for i in range(R) for j in range(J)]
    for s, (i, j) in enumerate(slots):
        total = " + ".join(f"part{i}_{j}_{u}" for u in range(U))
        body.append(f"  let sum{s} = {total};")
        body.append(f"  red[{s * T} + lid] = " + (f"sum{s}.x + sum{s}.y + sum{s}.z + sum{s}.w;" if loads else f"sum{s};"))
    body.append("  workgroupBarrier();")
    body.append(f"  for (var s: i32 = {L // 2}; s > 0; s >>= 1u) {{")
    body.append("    if (lane < s) {")
    body += [f"      red[{s * T} + lid] += red[{s * T} + lid + s];" for s in range(len(slots))]
    body.append("    }")
    body.append("    workgroupBarrier();")
    body.append("  }")
    body.append("  if (lane == 0) {")
    for s, (i, j) in enumerate(slots):
        body.append(f"    if (m0 + {i} < {M} && {column[j]} < {N}) {{ store_out(b, m0 + {i}, {column[j]}, red[{s * T} + lid]); }}")
    body.append("  }")
    shared = f"var<workgroup> red: array<f32, {len(slots) * T}>;\n{stats_shared}"
    return src.render("\n".join(body), T, shared, subgroups=subgroups and bool(stats)), groups


def matmul(src: KernelSource, core: Node, opts: Options = DEFAULT):
    """Batched matmul; with split-K (core.arg.split = S) batch entry s*B + b multiplies slice s of K."""
    a, b = core.srcs
    B, M, K = a.shape
    N = b.shape[2]
    S, tile = core.arg.split, core.arg.tile
    Ks = K // S

    def vec_operand(x: Node, r_dim: int) -> VecOperand | None:
        """x [B, rows, K] (r_dim 1) or [B, K, rows] (r_dim 2) as a VecOperand; batch entry bb of a split product
        is slice bb / B of K for product bb % B."""
        layout = memory_layout(x, src.materialized)
        if layout is None or layout[0].dtype.storage not in VEC4_STORAGE:
            return None
        base, off, dims = layout
        db, dr, dk = dims[0], dims[r_dim], dims[3 - r_dim]
        fast = _fast_axis(off, db, dr, dk)
        if fast is None:
            return None
        eights = layout[0].dtype.storage == "f16" and fast == "k" and _fast_axis(off, db, dr, dk, 8) == "k"

        def lin(e, bb, r, k):
            bi, ki = (bb, k) if S == 1 else (f"({bb}) % {B}", f"(({bb}) / {B}) * {Ks} + {k}")
            return f"{off} + {sub_dim_offset(e, db, bi)} + {sub_dim_offset(e, dr, r)} + {sub_dim_offset(e, dk, ki)}"
        return VecOperand(base, fast, lin, eights)

    layout = dict(a_m_fastest=last_two_swapped(a), b_k_fastest=last_two_swapped(b),
                  a_vec=vec_operand(a, 1), b_vec=vec_operand(b, 2))
    if S == 1:
        return gemm(src, core, tile, B, M, N, K,
                    lambda e, bb, m, k: e.value(a, (bb, m, k)),
                    lambda e, bb, k, n: e.value(b, (bb, k, n)),
                    lambda e, bb, m, n: [bb, m, n], **layout, n_runs=True, opts=opts)

    def ab(e, bb, kk):
        return e.let(f"{bb} % {B}", "bi"), e.let(f"({bb} / {B}) * {Ks} + {kk}", "kk")

    def a_value(e, bb, m, k):
        bi, kk = ab(e, bb, k)
        return e.value(a, (bi, m, kk))

    def b_value(e, bb, k, n):
        bi, kk = ab(e, bb, k)
        return e.value(b, (bi, kk, n))

    return gemm(src, core, tile, S * B, M, N, Ks, a_value, b_value, lambda e, bb, m, n: [bb, m, n], **layout, split=S,
                n_runs=True, opts=opts)


def last_two_swapped(x: Node) -> bool:
    """x is a view whose last two axes are the transpose of its data's (W.T in x @ W.T, k.T in q @ k.T): its
    memory runs along the second-to-last axis."""
    while x.kind == VIEW and x.op in ("reshape", "expand"):
        x = x.srcs[0]
    return x.kind == VIEW and x.op == "permute" and len(x.arg) >= 2 and \
        tuple(x.arg[-2:]) == (len(x.arg) - 1, len(x.arg) - 2)
