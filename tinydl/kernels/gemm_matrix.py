"""Float16 GEMMs on subgroup matrices: WGSL's chromium_experimental_subgroup_matrix (Dawn), which compiles to the
GPU's matrix units (tensor cores). gemm.gemm emits the operands' load functions and the epilogue's store function
as for its other tiles; this module emits the kernel around them.

A workgroup computes a bm x bn output tile with sm x sn subgroups of 32 lanes, each owning fm x fn fragments of
16 x 16, accumulated in float32 result matrices. Each K step of bk, every thread loads its share of the A (bm x bk)
and B (bk x bn) tiles through the load functions (a conv's pixels through a TapGather where its channels come in
whole K steps: one tap a step), rounds them to float16 (the operands are float16 already: the rounding is exact)
and writes them to workgroup memory laid out along the operand's fast axis (so 4 elements a thread loads lie side
by side); the subgroups then load 16 x 16 fragments from there, row- or column-major to match, and
multiply-accumulate. At the end each subgroup stores a row of result fragments at a time into its own float32
scratch, from which its lanes push the values through the epilogue (store_out / store_out4): bias, activation
and residual stay fused. A product of few tiles splits K (split): float32 partial sums, added by a reduce."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .expr import KernelSource

if TYPE_CHECKING:
    from .gemm import TapGather

ENABLE = "chromium_experimental_subgroup_matrix"
LANES = 32   # the subgroup size the tiles are written for (webgpu.Backend.has_f16_matrices checks the adapter's)
FRAG = 16    # the f16 x f16 -> f32 fragment: 16 x 16 x 16
PAD = 8      # float16 elements after each row of a workgroup tile: rows start in different banks
# main's subgroup index (uniform within a subgroup, as the fragments' offsets must be) and lane
BUILTINS = ", @builtin(subgroup_id) sgid: u32, @builtin(subgroup_invocation_id) sglane: u32"
# workgroup memory the tiles may use (the adapter must grant it: runtime.Runtime.subgroup_matrix_f16); adapters
# with these fragments (NVIDIA, AMD, Intel) have 48 KiB or more
SHARED_BYTES = 48 * 1024


@dataclass(frozen=True)
class MatrixTile:
    sm: int  # subgroups along M
    sn: int  # subgroups along N
    fm: int  # 16-row fragments per subgroup along M
    fn: int  # 16-column fragments per subgroup along N
    bk: int  # K step held in workgroup memory (a multiple of 16)

    @property
    def bm(self) -> int:
        return self.sm * self.fm * FRAG

    @property
    def bn(self) -> int:
        return self.sn * self.fn * FRAG

    @property
    def threads(self) -> int:
        return self.sm * self.sn * LANES

    def whole_vec4s(self, rows: int) -> bool:
        """Each thread's share of an operand tile with `rows` rows (bm or bn) is whole vec4s."""
        return self.whole_vecs(rows, 4)

    def workgroups(self, batch: int, M: int, N: int) -> int:
        """Tiles of a batch of M x N products: one workgroup each."""
        return batch * -(-M // self.bm) * -(-N // self.bn)

    def whole_vecs(self, rows: int, width: int) -> bool:
        return (rows * self.bk) % (width * self.threads) == 0


MATRIX_TILES = {
    "mma128w8": MatrixTile(2, 4, 4, 2, 32),  # 128 x 128 by 8 subgroups of 64 x 32: big products
    "mma64x128": MatrixTile(1, 4, 4, 2, 32),  # 64 x 128 by 4 subgroups of 64 x 32: big products of few rows
    "mma64": MatrixTile(2, 2, 2, 2, 32),     # 64 x 64 by 4 subgroups of 32 x 32: products of few big tiles
    # candidates for the rules, measured by `python -m benchmarks.sweep --half --tiles ...` (Options.force_tile)
    "mma128": MatrixTile(2, 2, 4, 4, 32),        # 128 x 128 by 4 subgroups of 64 x 64
    "mma128k64": MatrixTile(2, 2, 4, 4, 64),     # longer K steps: half the barriers
    "mma128w8k64": MatrixTile(2, 4, 4, 2, 64),   # mma128w8 with K steps of 64
    "mma256": MatrixTile(4, 2, 4, 4, 32),        # 256 x 128 by 8 subgroups of 64 x 64
    "mma128x256": MatrixTile(2, 4, 4, 4, 32),    # 128 x 256 by 8 subgroups of 64 x 64
    "mma64x256": MatrixTile(1, 8, 4, 2, 32),     # 64 x 256 by 8 subgroups of 64 x 32
}
# a product needs this many 128 x 128 tiles to take mma128w8 (about a wave on a big GPU), else mma64
MMA128_MIN_TILES = 128
# a big product takes 64-row tiles where 128-row ones would compute this much more (rows of zero padding: a conv
# with 64 or 192 output channels)
SHORT_TILE_MIN_SAVING = 1.25


def choose(batch: int, M: int, N: int, opts=None) -> str:
    """The matrix tile for a batch of M x N products (Options.force_tile where it names one): 128 x 128 tiles for
    products of many such tiles, 64 x 128 ones where M would leave much of a 128-row tile padding, else 64 x 64
    (docs/benchmarks.md: the sweeps that chose them)."""
    if opts is not None and opts.force_tile in MATRIX_TILES:
        return opts.force_tile
    big, short = MATRIX_TILES["mma128w8"], MATRIX_TILES["mma64x128"]
    if big.workgroups(batch, M, N) < MMA128_MIN_TILES:
        return "mma64"
    padded = {t.bm: -(-M // t.bm) * t.bm for t in (big, short)}
    return "mma64x128" if padded[big.bm] >= SHORT_TILE_MIN_SAVING * padded[short.bm] else "mma128w8"


# a product of fewer workgroups than this cuts K into slices (partial sums in float32, added by the reduce kernel that
# carries the epilogue), each slice keeping at least MATRIX_SPLIT_MIN_K of K: ResNet's 7x7 and 14x14 layers
MATRIX_SPLIT_WORKGROUPS = 192
MATRIX_SPLIT_MIN_K = 256


def split(batch: int, M: int, N: int, K: int, divides: int, step: int, tile: str, opts=None) -> int:
    """K slices for a product on the matrix tile `tile` (Options.force_split_k where it divides): doubled while the
    workgroups number under MATRIX_SPLIT_WORKGROUPS; the count must divide `divides` (K, or a conv's input
    channels per group) in slices of whole `step`s (a tap-major conv's K steps). 1: no split."""
    if opts is not None and opts.force_split_k is not None:
        return opts.force_split_k if divides % (opts.force_split_k * step) == 0 else 1
    groups = MATRIX_TILES[tile].workgroups(batch, M, N)
    s = 1
    while groups * s < MATRIX_SPLIT_WORKGROUPS and K // (s * 2) >= MATRIX_SPLIT_MIN_K and divides % (s * 2 * step) == 0:
        s *= 2
    return s


def fits(M: int, N: int, K: int) -> bool:
    """Products worth the matrix tiles: more than a few rows (fewer go to the gemvs) and a K of whole fragments'
    worth (a shorter K leaves the matrix units idle; its zero-padding costs more than it saves)."""
    return M >= FRAG and N >= FRAG and K >= 2 * FRAG


def epilogue_fragments(t: MatrixTile, operand_bytes: int) -> int:
    """Result fragments of a row each subgroup stores to its scratch at once in the epilogue: as many of its fn as
    fit SHARED_BYTES beside the operand tiles (one barrier pair per round, and longer runs of n to store)."""
    per_fragment = t.sm * t.sn * FRAG * FRAG * 4
    return max(d for d in range(1, t.fn + 1)
               if t.fn % d == 0 and (d == 1 or operand_bytes + d * per_fragment <= SHARED_BYTES))


def tiled(src: KernelSource, t: MatrixTile, batch: int, M: int, N: int, K: int, fast: dict, vec: dict,
          vec4_out: bool = False, b_gather: TapGather | None = None):
    """The kernel's WGSL and workgroup count. fast[op]: the index ("r" or "k") the operand's memory runs along;
    vec[op]: its tile loads fetch 8 float16 elements along k at once (8: load_a8 / load_b8, packed pairs), 4 (True:
    load_a4 / load_b4), or one (load_a / load_b). vec4_out: the output is stored 4 side-by-side n at a time
    (store_out4; N % 4 == 0). b_gather: B is a conv's pixels in tap-major K order (gemm.TapGather; the caller
    checked tiles.tile_reads_taps: each thread's B slots are one pixel's column, every K step one tap)."""
    T = t.threads
    tiles_m, tiles_n = -(-M // t.bm), -(-N // t.bn)
    groups = t.workgroups(batch, M, N)
    # per operand: (array, rows, origin, its tile's fast axis) and the stride of its workgroup layout: a row of the
    # fast axis is contiguous ("k": rows of bk; "r": columns of bm / bn)
    rows = {"a": t.bm, "b": t.bn}
    stride = {op: (t.bk if fast[op] == "k" else rows[op]) + PAD for op in ("a", "b")}
    size = {op: (rows[op] if fast[op] == "k" else t.bk) * stride[op] for op in ("a", "b")}

    def at(op: str, r: str, k: str) -> str:
        """Position of (row r, k) of the operand's tile in its workgroup array."""
        return f"({r}) * {stride[op]} + ({k})" if fast[op] == "k" else f"({k}) * {stride[op]} + ({r})"

    body = [f"  if (wg >= {groups}) {{ return; }}",
            f"  let b = wg / {tiles_m * tiles_n};",
            f"  let rem = wg % {tiles_m * tiles_n};",
            f"  let m0 = (rem / {tiles_n}) * {t.bm};",
            f"  let n0 = (rem % {tiles_n}) * {t.bn};",
            "  let sg = i32(sgid);",           # this subgroup: uniform within it, as fragment offsets must be
            "  let lane = i32(sglane);",
            f"  let fr0 = (sg / {t.sn}) * {t.fm * FRAG};",  # its first row / column in the tile
            f"  let fc0 = (sg % {t.sn}) * {t.fn * FRAG};"]
    body += [f"  var acc{i}_{j} = subgroup_matrix_result<f32, {FRAG}, {FRAG}>();"
             for i in range(t.fm) for j in range(t.fn)]
    # each thread's slots of the two tiles: (register, operand, row and k expressions within the tile, 4 wide)
    slots = []
    for op in ("a", "b"):
        width = 8 if vec[op] == 8 else 4 if vec[op] else 1
        along = (t.bk if fast[op] == "k" else rows[op]) // width  # loads across the fast axis
        for s in range(-(-rows[op] * t.bk // (width * T))):
            q = f"(lid + {s * T})"
            across, down = f"({q} % {along}) * {width}", f"{q} / {along}"
            r, k = (down, across) if fast[op] == "k" else (across, down)
            ragged = (rows[op] * t.bk) % (width * T) and s == -(-rows[op] * t.bk // (width * T)) - 1
            slots.append((f"g{op}{s}", op, r, k, width, f"{q} < {rows[op] * t.bk // width}" if ragged else None))

    def fetch(k0: str, decl: str):
        """Each slot's global load for the K step at k0 into its registers (float16: exact)."""
        if b_gather:
            body.extend(b_gather.step(k0))
        for reg, op, r, k, width, guard in slots:
            origin = "m0" if op == "a" else "n0"
            if op == "b" and b_gather:
                load = f"f16({b_gather.load(src, reg + 'k')})"
            elif width == 8:  # 8 float16 along k as 4 packed pairs
                load = f"load_{op}8(b, {origin} + {reg}r, {k0} + {reg}k)"
            elif width == 4:
                load = f"vec4<f16>(load_{op}4(b, {origin} + {reg}r, {k0} + {reg}k))"
            else:
                load = (f"f16(load_a(b, m0 + {reg}r, {k0} + {reg}k))" if op == "a"
                        else f"f16(load_b(b, {k0} + {reg}k, n0 + {reg}r))")
            if guard:
                zero = {8: "vec4<u32>(0u)", 4: "vec4<f16>(0.0h)", 1: "0.0h"}[width]
                load = f"select({zero}, {load}, {guard})"
            body.append(f"    {decl}{reg} = {load};")

    for reg, op, r, k, width, guard in slots:
        body.append(f"  let {reg}r = {r}; let {reg}k = {k};")
    if b_gather:
        assert fast["b"] == "r" and vec["b"] is False and t.threads % t.bn == 0
        body += b_gather.setup("n0 + gb0r", N)
    fetch("0", "var ")
    body.append(f"  for (var k0: i32 = 0; k0 < {K}; k0 += {t.bk}) {{")
    for reg, op, r, k, width, guard in slots:  # registers into the workgroup tiles
        arr = "As" if op == "a" else "Bs"
        dr, dk = (0, 1) if fast[op] == "k" else (1, 0)  # a vec4's elements step along k or r
        if width == 8:  # along k: pair c // 2's half c % 2
            parts = [(f"bitcast<vec2<f16>>({reg}[{c // 2}])[{c % 2}]", f"{reg}r", f"{reg}k + {c}") for c in range(8)]
        elif width == 4:
            parts = [(f"{reg}[{c}]", f"{reg}r + {c * dr}", f"{reg}k + {c * dk}") for c in range(4)]
        else:
            parts = [(reg, f"{reg}r", f"{reg}k")]
        stores = " ".join(f"{arr}[{at(op, rr, kk)}] = {v};" for v, rr, kk in parts)
        body.append(f"    if ({guard}) {{ {stores} }}" if guard else f"    {stores}")
    body.append("    workgroupBarrier();")
    body.append(f"    if (k0 + {t.bk} < {K}) {{")  # the next step's loads in flight while this one multiplies
    fetch(f"k0 + {t.bk}", "")
    body.append("    }")
    left, right = (f"subgroup_matrix_{kind}<f16, {FRAG}, {FRAG}>" for kind in ("left", "right"))
    # a fragment's (row, k) layout: A row-major where its tile rows are contiguous (fast "k"), else column-major;
    # B's fragment is k x n: row-major where its tile holds rows of n (fast "r"), else column-major
    a_col, b_col = ("true" if fast["a"] == "r" else "false"), ("true" if fast["b"] == "k" else "false")
    for kk in range(0, t.bk, FRAG):  # each 16-deep sub-step in a scope of its own (its fragments' names)
        body.append("    {")
        body += [f"      let a{i} = subgroupMatrixLoad<{left}>(&As, u32({at('a', f'fr0 + {i * FRAG}', kk)}), "
                 f"{a_col}, {stride['a']}u);" for i in range(t.fm)]
        body += [f"      let b{j} = subgroupMatrixLoad<{right}>(&Bs, u32({at('b', f'fc0 + {j * FRAG}', kk)}), "
                 f"{b_col}, {stride['b']}u);" for j in range(t.fn)]
        body += [f"      acc{i}_{j} = subgroupMatrixMultiplyAccumulate(a{i}, b{j}, acc{i}_{j});"
                 for i in range(t.fm) for j in range(t.fn)]
        body.append("    }")
    body.append("    workgroupBarrier();")
    body.append("  }")
    # the epilogue: `per_round` fragments of a row at a time through this subgroup's scratch (a 16 x W strip),
    # from which its lanes push 4 side-by-side values (vec4_out) or one at a time through the epilogue
    per_round = epilogue_fragments(t, 2 * (size["a"] + size["b"]))
    W = FRAG * per_round
    region = FRAG * W  # a subgroup's scratch
    width = 4 if vec4_out else 1
    for i in range(t.fm):
        for j0 in range(0, t.fn, per_round):
            body += [f"  subgroupMatrixStore(&Cs, u32(sg * {region} + {jj * FRAG}), acc{i}_{j0 + jj}, false, {W}u);"
                     for jj in range(per_round)]
            body.append("  workgroupBarrier();")
            body.append(f"  for (var e: i32 = lane; e < {region // width}; e += {LANES}) {{")
            body.append(f"    let r = e / {W // width}; let c = (e % {W // width}) * {width};")
            body.append(f"    let m = m0 + fr0 + {i * FRAG} + r; let n = n0 + fc0 + {j0 * FRAG} + c;")
            body.append(f"    let at = sg * {region} + r * {W} + c;")
            value = "vec4<f32>(Cs[at], Cs[at + 1], Cs[at + 2], Cs[at + 3])" if vec4_out else "Cs[at]"
            body.append(f"    if (m < {M} && n < {N}) {{ store_out{'4' if vec4_out else ''}(b, m, n, {value}); }}")
            body.append("  }")
            body.append("  workgroupBarrier();")
    shared = (f"var<workgroup> As: array<f16, {size['a']}>;\n"
              f"var<workgroup> Bs: array<f16, {size['b']}>;\n"
              f"var<workgroup> Cs: array<f32, {t.sm * t.sn * region}>;")
    return src.render("\n".join(body), T, shared, enables=("subgroups", ENABLE), builtins=BUILTINS), groups
