"""The GEMM tile table and the rules that pick, for a product's shape, its tile and its split-K slice count (a
measured choice in TUNED, or one forced by Options, overrides them), and whether a conv's GEMM gathers its pixels
or first writes them as windows (im2col). gemm.py emits the kernels these choices name."""
from __future__ import annotations

from dataclasses import dataclass

from ..ops import GEMM_MAX_K
from ..options import DEFAULT, Options
from .gemm_matrix import MATRIX_TILES


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
# The gemvs: a few rows (batch-1 linear layers). Each output column's K loop is shared by the lanes the
# variant names, which add up their partial sums in workgroup memory; GEMV_THREADS threads per workgroup.
# More lanes per column keep a narrow output's weight reads wide enough to fill the GPU's memory pipes.
GEMV_LANES = {"gemv": 32, "gemv64": 64, "gemv128": 128, "gemv256": 256}
GEMV_ROWS, GEMV_THREADS = 4, 256
# the bytes of B each lane loads per K-loop trip (2 vec4s of float32, 4 of float16: the loads of a trip all
# issue before the first multiply, and narrow float16 loads need more of them to keep the memory busy)
GEMV_INFLIGHT_BYTES, GEMV_MAX_UNROLL = 32, 4
# partial sums (rows x columns) a gemv thread keeps (its workgroup's reduction array: 8 KB of float32)
GEMV_MAX_SLOTS = 8
# a gemv's lanes: enough that N columns make at least this many threads in all
GEMV_MIN_THREADS = 1 << 17
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
IM2COL_MAX_BYTES = 1 << 28  # the windows of a batch-16 ResNet layer3 conv: 29 MB
# Loop trips: a tile's K loop makes K / bk trips (bk >= 8), a gemv's at most K / 64 per lane; a thread's loop trips
# must stay under reduce.MAX_TRIPS (drivers cap them: lavapipe ends every loop after 65535 in all, silently). So a
# GEMM with more than MAX_K per K slice is always split (schedule/lower.py: a matmul's K padded to whole slices; a
# conv's slices are whole input channels).
MAX_K = GEMM_MAX_K


def gemv_lanes(name: str) -> int | None:
    """The lanes per column of a gemv variant; None for a tile."""
    return GEMV_LANES.get(name)


def gemv_columns(batch: int, M: int, N: int, lanes: int, loads: dict | None, opts: Options = DEFAULT) -> int:
    """Output columns each gemv thread sums (Options.gemv_columns, else the rule): where A's values cost more than a
    load (packed float16 pairs to unpack, or computed: a norm's or an activation's prologue), the most (of 4, 2)
    that keep TARGET_WORKGROUPS workgroups and a thread's partial sums within GEMV_MAX_SLOTS, so each A value serves
    them all. A read as plain vec4s gains nothing (measured: docs/benchmarks.md, "gemv columns")."""
    if opts.gemv_columns:
        return opts.gemv_columns
    if not loads or loads["a"] == "vec4":
        return 1
    rows = min(GEMV_ROWS, M)
    row_tiles = batch * -(-M // rows)
    for columns in (4, 2):
        per_group = GEMV_THREADS // lanes * columns
        if rows * columns <= GEMV_MAX_SLOTS and row_tiles * -(-N // per_group) >= TARGET_WORKGROUPS:
            return columns
    return 1


def rule_gemv(N: int, K: int) -> str:
    """The gemv for N columns over K: the fewest lanes per column that make GEMV_MIN_THREADS threads, doubled
    only while each lane keeps 2+ vec4s of K (measured on decode steps: docs/benchmarks.md, "gemv lanes")."""
    lanes = 32
    while lanes < 256 and N * lanes < GEMV_MIN_THREADS and lanes * 2 * 4 <= K:
        lanes *= 2
    return next(name for name, n in GEMV_LANES.items() if n == lanes)


def long_k_slices(K: int) -> int:
    """The fewest K slices (a power of 2) that keep each slice within MAX_K."""
    s = 1
    while -(-K // s) > MAX_K:
        s *= 2
    return s


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
    """The GEMM variant: forced (Options.force_tile; a matrix tile forced applies to float16 products on subgroup
    matrices only), measured on this GPU (TUNED), or by the rules (rule_tile)."""
    if opts.force_tile and opts.force_tile not in MATRIX_TILES:
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
        return rule_gemv(N, K)

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
    if name in GEMV_LANES or K < SHORT_SPLIT_MIN_K:
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


def tap_major_fits(batch: int, M: int, N: int, K: int, cin_g: int, itemsize: int = 4) -> bool:
    """Whether the tiled kernel choose_tile picks for a gathered conv's GEMM can read its pixels through a
    TapGather (see tile_reads_taps)."""
    return tile_reads_taps(choose_tile(batch, M, N, K, "tap", itemsize), cin_g)


def tile_reads_taps(name: str, cin_g: int) -> bool:
    """Whether a conv's GEMM in tile `name` can read its pixels through a TapGather: every K step lies within one
    tap, and each thread loads one pixel's column of the B tile."""
    t = TILES.get(name)
    if t is not None:
        return cin_g % t.bk == 0 and (t.wx * t.wy) % t.bn == 0
    m = MATRIX_TILES.get(name)
    return m is not None and cin_g % m.bk == 0 and m.threads % m.bn == 0


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
