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

from ..ops import GEMM_MAX_K, VIEW, Node
from ..options import DEFAULT, Options
from .common import function, store4_function, store_function
from .expr import VEC4_STORAGE, Expr, KernelSource, memory_layout, sub_dim_offset


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

    def whole_vec4s(self, rows: int) -> bool:
        """Each thread's share of an operand tile with `rows` rows (bm or bn) is whole vec4s: a condition for the
        tile loads to fetch 4 elements at once."""
        return (rows * self.bk) % (4 * self.wx * self.wy) == 0


TILES = {
    "tile128": Tile(16, 16, 8, 8, 8),  # big outputs: 64 accumulators per thread, most FLOPs per load (3x3 convs)
    "tile128k16": Tile(16, 16, 8, 8, 16),  # the same with half the barriers per FLOP: big plain GEMMs
    "tile64": Tile(16, 16, 4, 4, 16),
    "tile32": Tile(8, 8, 4, 4, 8),
    "tile64x128": Tile(16, 16, 4, 8, 8),     # 64-channel convs over many pixels
    "tile64x128t128": Tile(16, 8, 8, 8, 8),  # the same with 128 threads of 8x8: 64-channel tap-major convs
    "tile64x64t128": Tile(8, 16, 4, 8, 16),  # 64x64 with 128 threads of 4x8: more FLOPs per load than tile64
    "tile128x64t128": Tile(8, 16, 8, 8, 16),  # 128x64 with 128 threads of 8x8: BERT-sized GEMMs
    "tile128x64t128k8": Tile(8, 16, 8, 8, 8),  # the same in K steps of 8: tap-major convs over few tiles
}
# "gemv": a few rows (batch-1 linear layers): 8 output columns per workgroup, 32 threads share each column's
# K loop and add up their partial sums in workgroup memory.
GEMV_ROWS, GEMV_COLS, GEMV_LANES = 4, 8, 32
# measured choices (tinydl.tuning): tune_key(...) -> (tile, split), which override the rules below
TUNED: dict[tuple, tuple[str, int]] = {}
TARGET_WORKGROUPS = 256  # enough workgroups to fill a big GPU (an H100 has 132 SMs)
# The split-K rules' thresholds (measured: docs/benchmarks.md, "split-K thresholds"):
# plain GEMMs with 256+ rows and a K this long take tile128k16 however few its tiles when split-K fills the GPU
# (TARGET_WORKGROUPS) with slices of LONG_K_SLICE or more (BERT's FFN down projection);
LONG_K, LONG_K_SLICE = 2048, 384
# a product of this many tiles or more is not split (its slices' sum costs more than the split gains);
SPLIT_MAX_TILES = 160
# a K of SHORT_SPLIT_MIN_K..255 is split only under SHORT_SPLIT_MAX_TILES tiles, not gathered (batch-1 1x1 convs).
SHORT_SPLIT_MIN_K, SHORT_SPLIT_MAX_TILES = 144, 64
TAP_CHANNELS = 16  # the longest K step of a tile: a tap-major conv's channels (and split-K slices) divide by it
IM2COL_MIN_COUT = 256
# Loop trips: a tile's K loop makes K / bk trips (bk >= 8), gemv's at most K / 32 per lane; a thread's loop trips
# must stay under reduce.MAX_TRIPS (drivers cap them: lavapipe ends every loop after 65535 in all, silently). So a
# GEMM with more than MAX_K per K slice is always split (schedule/lower.py: a matmul's K padded to whole slices; a
# conv's slices are whole input channels).
MAX_K = GEMM_MAX_K


def long_k_slices(K: int) -> int:
    """The fewest K slices (a power of 2) that keep each slice within MAX_K."""
    s = 1
    while -(-K // s) > MAX_K:
        s *= 2
    return s
IM2COL_MAX_BYTES = 1 << 28  # the windows of a batch-16 ResNet layer3 conv: 29 MB


@dataclass(frozen=True)
class VecOperand:
    """A GEMM operand held in one float32 or float16 buffer whose elements (row r, k) and the next 3 along `fast`
    ("k" or "r") lie side by side, the first at a multiple of 4, whenever that index is a multiple of 4 (so a tile
    load fetches them as one vec4). lin(expr, b, r, k): the element's position in node's buffer."""
    node: Node
    fast: str
    lin: Callable


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
        (_C, H, W), (dh, dw) = self.chw, self.dilation
        return [f"    let gtap = ({k0}) / {self.cin_g};",
                f"    let gdy = (gtap / {self.kw}) * {dh}; let gdx = (gtap % {self.kw}) * {dw};",
                f"    let gok = gin && u32(gy0 + gdy) < {H}u && u32(gx0 + gdx) < {W}u;",
                f"    let goff = select(0, gbase + gdy * {W} + gdx + (({k0}) % {self.cin_g}) * {H * W}, gok);"]

    def load(self, src: KernelSource, k: str) -> str:
        """Element k (of the step: 0..bk-1) of the thread's pixel: 0 outside the image."""
        plane = self.chw[1] * self.chw[2]
        return f"select(0.0, {src.load(self.image, f'goff + ({k}) * {plane}')}, gok)"


def _fast_axis(off: int, db: list, dr: list, dk: list):
    """Which of r / k runs with stride 1 in runs of 4 (its innermost sub-dim: 4 indices from a multiple of 4 stay
    in it; a whole dim's length is checked by the caller) while every other step moves in multiples of 4
    elements. db / dr / dk: the batch, row and k dims' sub-dims (expr.memory_layout)."""
    def steps_of_4(*dims):
        return all(stride % 4 == 0 for d in dims for _, stride in d)
    if off % 4 or not steps_of_4(db):
        return None
    for fast, run, other in (("k", dk, dr), ("r", dr, dk)):
        if run and run[-1][1] == 1 and (len(run) == 1 or run[-1][0] % 4 == 0) and steps_of_4(run[:-1], other):
            return fast
    return None


def conv_gather(taps: int, im2col: bool, transposed: bool, channels: int, opts: Options = DEFAULT) -> bool | str:
    """How a conv's GEMM reads its pixels: False (as plain data: a 1x1 conv, or its windows written by im2col),
    "tap" (gathered in tap-major K order, through a TapGather where its kernel's tile allows: the conv's input
    channels per group come in whole K steps of any tile) or True (gathered in (ci, kh, kw) order: a 3-channel
    stem)."""
    if taps == 1 or im2col:
        return False
    return "tap" if opts.tap_major and not transposed and channels % TAP_CHANNELS == 0 else True


def tune_key(batch: int, M: int, N: int, K: int, gather: bool | str, itemsize: int) -> tuple:
    """What a measured choice (TUNED) is kept under: the product's shape, how it reads its pixels, its float size."""
    return (itemsize, batch, M, N, K, gather)


def choose_tile(batch: int, M: int, N: int, K: int, gather: bool | str = False, itemsize: int = 4,
                opts: Options = DEFAULT) -> str:
    """The GEMM variant: forced (Options.force_tile), measured on this GPU (TUNED), or by the rules (rule_tile)."""
    if opts.force_tile:
        return opts.force_tile
    tuned = TUNED.get(tune_key(batch, M, N, K, gather, itemsize))
    return tuned[0] if tuned else rule_tile(batch, M, N, K, gather)


def rule_tile(batch: int, M: int, N: int, K: int, gather: bool | str = False) -> str:
    """The GEMM variant for `batch` products of M x N outputs over K (before any split-K); gather: operand loads
    are im2col gathers with bounds checks (convs wider than 1x1; "tap": in tap-major order, see conv_gather).
    Measured on an H100 with kernels serialized as in a model (benchmarks/sweep.py, 2026-11-21): tile128's 64 outputs per thread pay off where loads are
    dear (3x3 convs at batch 16: 279-332 us vs tile64's 350-476, even with only 28 tiles plus split-K) or K is
    long (2048^3: 569 vs 736 us), but lose where K is short (a 1x1 conv 256 -> 1024 at batch 16: 172 vs 105 us
    with tile64x64t128, which also wins BERT's 128-row GEMMs by a few %). Re-measured on an H200 after the
    per-thread shared blocks and vec4 loads (sweep, 2026-11-21): tile128x64t128 (8x8 per thread, 128 threads)
    wins mid-sized GEMMs with 256+ rows: BERT-b8's 1024 x 3072 x 768 126 vs 131 us, 1024 x 768 x 3072 135 vs
    150, a 1x1 conv 256 -> 1024 at batch 16 45 vs 54; tile128k16 keeps the big ones (4096^3 3.21 vs 3.41 ms).
    MobileNetV2's stem (3 -> 32 channels, 3x3 stride 2, batch 16, H200): tile32 33 us, tile64x128 43 (half of
    its 64 rows idle). MobileNetV2-b16's 1x1 convs (sweep --mobilenet, H200): with K <= 32 a tile is one K step
    and its stores dominate, so the smallest tile wins (16 -> 96 channels at 112x112: 41 vs 51 us); tile128x64t128 over fewer
    than 256 tiles needs K >= 512 to pay (960 x 784 x 160: 22 us with tile64x64t128 vs 24; 384 x 3136 x 64: 9 vs
    11); a 32-row output takes tile32 (32 x 12544 x 192: 11 vs 16 us with tile64). Tap-major gathers (H200,
    scratch sweep of ResNet's 3x3 convs, GPU us, 2026-11-22): 64 channels at 56x56, batch 16: tile64x128t128 110 vs
    tile64x128 183, tile64x64t128 124; batch 4: 37 vs 40 (tile64); 128 channels at 28x28: tile128k16 117 vs
    tile128 130 at batch 16 (98 tiles), but tile128x64t128k8 38 vs tile128k16 75 at batch 4 (25 tiles); 256 at
    14x14, batch 16 (50 tiles, im2col off) 132 vs 146; 512 at 7x7 (K 4608): tile128k16 170 vs 270."""
    if M <= GEMV_ROWS:
        return "gemv"

    def tiles(name):
        return _tiles_of(name, batch, M, N)
    if not gather and K <= 32:
        return "tile32"
    if gather == "tap" and 32 < M <= 64 and N >= 128 and tiles("tile64x128t128") >= 64:
        return "tile64x128t128"
    if gather == "tap" and M >= 128 and N >= 64:
        if tiles("tile128k16") >= 64 or K >= 4096:
            return "tile128k16"
        if tiles("tile128x64t128k8") >= 32:
            return "tile128x64t128k8"
    if M >= 128 and N >= 64 and gather and tiles("tile128") >= 24:
        return "tile128"
    if M >= 128 and N >= 64 and not gather and K >= 512 and tiles("tile128k16") >= 256:
        return "tile128k16"
    if M >= 256 and N >= 64 and not gather and K >= LONG_K \
            and K // _slices_to_fill(tiles("tile128k16")) >= LONG_K_SLICE:
        return "tile128k16"
    if M >= 256 and N >= 64 and not gather and tiles("tile128x64t128") >= (64 if K >= 512 else 256):
        return "tile128x64t128"
    if gather and 32 < M <= 64 and N >= 128 and tiles("tile64x128") >= 128:
        return "tile64x128"
    if not gather and min(M, N) >= 64:
        return "tile64x64t128"
    return "tile64" if min(M, N) > 32 else "tile32"


def _slices_to_fill(tiles: int) -> int:
    """The power of 2 of K slices that makes `tiles` tiles at least TARGET_WORKGROUPS workgroups."""
    s = 1
    while tiles * s < TARGET_WORKGROUPS:
        s *= 2
    return s


def split_k(batch: int, M: int, N: int, K: int, divides: int, gather: bool | str = False, itemsize: int = 4,
            opts: Options = DEFAULT) -> int:
    """How many slices to cut K into when the output alone gives too few workgroups to fill the GPU (batch-1
    convs over small images: ResNet-50's 7x7x512 layers have 32 tiles). Each slice becomes a batch entry of the
    same GEMM and a sum over slices (a reduce kernel carrying the epilogue) adds them up. `divides`: the
    slice count must divide it (K, or a conv's input channels per group); a tap-major gather's slices keep whole
    K steps of channels, so each still reads through a TapGather. Returns 1 for no split. Forced (Options),
    measured (TUNED; with tuning on, tinydl.tuning measures a new shape first) or by the rules (rule_split)."""
    if opts.force_split_k is not None:
        return opts.force_split_k if divides % opts.force_split_k == 0 else 1
    tuned = TUNED.get(tune_key(batch, M, N, K, gather, itemsize))
    if tuned and divides % tuned[1] == 0:
        return tuned[1]
    return rule_split(choose_tile(batch, M, N, K, gather, itemsize, opts), batch, M, N, K, divides, gather)


def _tiles_of(name: str, batch: int, M: int, N: int) -> int:
    t = TILES[name]
    return batch * -(-M // t.bm) * -(-N // t.bn)


def _split_step(gather: bool | str) -> int:
    """What each K slice's length must be a multiple of (a tap-major gather's slices keep whole K steps)."""
    return TAP_CHANNELS if gather == "tap" else 1


def rule_split(name: str, batch: int, M: int, N: int, K: int, divides: int, gather: bool | str = False) -> int:
    """split_k's rules for the tile `name`: slices (a power of 2) until the tiles fill TARGET_WORKGROUPS."""
    if name == "gemv" or K < SHORT_SPLIT_MIN_K:
        return 1
    tiles = _tiles_of(name, batch, M, N)
    if tiles >= SPLIT_MAX_TILES or K < 256 and (gather or tiles >= SHORT_SPLIT_MAX_TILES):
        return 1
    s, step = 1, _split_step(gather)
    while tiles * s < TARGET_WORKGROUPS and K // (s * 2) >= 32 and divides % (s * 2 * step) == 0:
        s *= 2
    return s


# what tuning tries (tinydl.tuning): every tile that is not mostly idle over the output, in K slices of the
# counts Options.tune_splits that keep 32+ of K each and make at most TUNE_MAX_WORKGROUPS workgroups
TUNE_MAX_WORKGROUPS = 4096


def tuning_candidates(batch: int, M: int, N: int, K: int, divides: int, gather: bool | str = False,
                      opts: Options = DEFAULT) -> dict:
    """tile -> the split counts tuning may measure it with (Options.tune_splits), the first the one that fills the
    GPU as the rules would (a tile's first try)."""
    out = {}
    step = _split_step(gather)
    for name, t in TILES.items():
        if t.bm > max(32, 2 * M) or t.bn > max(32, 2 * N):
            continue
        tiles = _tiles_of(name, batch, M, N)
        splits = [s for s in opts.tune_splits if s == 1 or (divides % (s * step) == 0 and K // s >= 32
                                                         and tiles * s <= TUNE_MAX_WORKGROUPS)]
        fill = next((s for s in splits if tiles * s >= TARGET_WORKGROUPS), splits[-1])
        out[name] = [fill] + [s for s in splits if s != fill]
    return out


def gemm(src: KernelSource, core: Node, tile: str, batch: int, M: int, N: int, K: int, a_value, b_value, out_index,
         a_m_fastest: bool = False, b_k_fastest: bool = False, split: int = 1, gather: bool | str = False,
         n_runs: bool = False, a_vec: VecOperand | None = None, b_vec: VecOperand | None = None,
         b_gather: TapGather | None = None, opts: Options = DEFAULT):
    """tile: the variant lowering chose (TILES, or "gemv"). a_value(expr, b, m, k) / b_value(expr, b, k, n) emit the operand values (they may emit early
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
    t = TILES.get(name)
    # a gemv reads both operands as vec4s along k, or neither
    gemv4 = (name == "gemv" and opts.vec4_loads and K % 4 == 0
             and all(v is not None and v.fast == "k" for v in (a_vec, b_vec)))
    inside = {"m": t and M % t.bm == 0, "n": t and N % t.bn == 0, "k": t and K % t.bk == 0}
    # per operand: the index its memory runs along ("r": its rows, m for A / n for B; or "k"), and whether a
    # tiled kernel's loads fetch 4 elements as one vec4 (each thread's share of a tile is whole vec4s)
    fast = {"a": "r" if a_m_fastest else "k", "b": "k" if b_k_fastest else "r"}
    vec = {"a": False, "b": False}
    operands = (("a", a_vec, "m", t and t.bm, M, a_value), ("b", b_vec, "n", t and t.bn, N, b_value))
    for op, v, r, rows, lim_r, fn in operands:
        if op == "b" and b_gather:
            continue
        whole = t.whole_vec4s(rows) if t else gemv4
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
    if name == "gemv":
        store_function(src, core, "b: i32, m: i32, n: i32", lambda e: out_index(e, "b", "m", "n"))
        return _gemv(src, batch, M, N, K, gemv4)
    vec4 = opts.vec4_stores and n_runs and N % 4 == 0 and src.out.dtype.storage in VEC4_STORAGE
    if vec4:
        src.vec4_out = True
        store4_function(src, core, "b: i32, m: i32, n: i32",
                        lambda e, c: out_index(e, "b", "m", f"(n + {c})" if c else "n"))
    else:
        store_function(src, core, "b: i32, m: i32, n: i32", lambda e: out_index(e, "b", "m", "n"))
    return _tiled(src, t, batch, M, N, K, fast, vec, vec4, b_gather) + (name,)


def _load4_function(src: KernelSource, fname: str, v: VecOperand, r: str, inside: dict, lim: tuple[int, int]):
    """fn <fname>(b, r, k) -> vec4<f32>: the operand's elements at (r, k) and the next 3 along v.fast, read as one
    vec4 (they are all inside or all outside the operand: its extent along v.fast is a multiple of 4)."""
    def body(e: Expr):
        checks = [f"{i} >= {n}" for i, n in ((r, lim[0]), ("k", lim[1])) if not inside[i]]
        if checks:
            e.emit(f"if ({' || '.join(checks)}) {{ return vec4<f32>(0.0); }}")
        e.emit(f"return {src.load4(v.node, v.lin(e, 'b', r, 'k'))};")
    function(src, f"{fname}(b: i32, {r}: i32, k: i32) -> vec4<f32>", body)


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
    body += [f"  var acc{i}_{j}: vec4<f32> = vec4<f32>(0.0);" for i in range(t.tm) for j in range(gb)]
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


def _gemv(src: KernelSource, batch: int, M: int, N: int, K: int, vec4: bool):
    """vec4: both operands run along k in memory (x @ W.T), each lane loads 4 k's of each at once."""
    R, C, L = min(GEMV_ROWS, M), GEMV_COLS, GEMV_LANES
    T = C * L
    tiles_m, tiles_n = -(-M // R), -(-N // C)
    groups = batch * tiles_m * tiles_n
    body = _tile_origin(groups, tiles_m, tiles_n, R) + [
            f"  let n = (rem % {tiles_n}) * {C} + lid / {L};",
            f"  let lane = lid % {L};"]
    # vec4: each lane reads 4 k's of both operands at once and adds its 4 products up at the end
    kind, step, load_b, load_a = (("vec4<f32>", 4, "load_b4(b, n, k)", "load_a4(b, m0 + {}, k)") if vec4 else
                                  ("f32", 1, "load_b(b, k, n)", "load_a(b, m0 + {}, k)"))
    body += [f"  var part{i} = {kind}(0.0);" for i in range(R)]
    body.append(f"  for (var k: i32 = lane * {step}; k < {K}; k += {step * L}) {{")
    body.append(f"    let bv = {load_b};")
    body += [f"    part{i} = fma({load_a.format(i)}, bv, part{i});" for i in range(R)]
    body.append("  }")
    body += [f"  let acc{i} = part{i}.x + part{i}.y + part{i}.z + part{i}.w;" if vec4 else f"  let acc{i} = part{i};"
             for i in range(R)]
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

        def lin(e, bb, r, k):
            bi, ki = (bb, k) if S == 1 else (f"({bb}) % {B}", f"(({bb}) / {B}) * {Ks} + {k}")
            return f"{off} + {sub_dim_offset(e, db, bi)} + {sub_dim_offset(e, dr, r)} + {sub_dim_offset(e, dk, ki)}"
        return VecOperand(base, fast, lin)

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


def tap_major_fits(batch: int, M: int, N: int, K: int, cin_g: int, itemsize: int = 4) -> bool:
    """Whether the tiled kernel choose_tile picks for a gathered conv's GEMM can read its pixels through a
    TapGather (see tile_reads_taps)."""
    return tile_reads_taps(choose_tile(batch, M, N, K, "tap", itemsize), cin_g)


def tile_reads_taps(name: str, cin_g: int) -> bool:
    """Whether a conv's GEMM in tile `name` can read its pixels through a TapGather: every K step lies within one
    tap, and each thread loads one pixel's column of the B tile."""
    t = TILES.get(name)
    return t is not None and cin_g % t.bk == 0 and (t.wx * t.wy) % t.bn == 0


def use_im2col(groups: int, cout: int, pixels: int, channels: int, taps: int, itemsize: int, max_bytes: int,
               opts: Options = DEFAULT) -> bool:
    """Whether a forward conv (GEMM path) first writes its windows as data (ops.IM2COL, channels*taps x pixels)
    and runs as a plain GEMM over them, instead of gathering each tile element with its bounds checks. Writing
    the windows costs their bytes once; the GEMM does cout multiply-adds per window element, so it pays from
    IM2COL_MIN_COUT output channels on (measured on ResNet's 3x3 convs: docs/benchmarks.md, "im2col").
    Options.force_im2col forces either form."""
    if opts.force_im2col is not None:
        return opts.force_im2col and groups == 1 and taps > 1
    nbytes = channels * taps * pixels * itemsize
    return groups == 1 and taps > 1 and cout >= IM2COL_MIN_COUT and nbytes <= min(IM2COL_MAX_BYTES, max_bytes)


def conv_gemm_dims(pixels: int, cout_g: int) -> tuple[int, int]:
    """A conv's GEMM (M, N): output channels x pixels (see conv); split_k sizes its slices with the same."""
    return cout_g, pixels
