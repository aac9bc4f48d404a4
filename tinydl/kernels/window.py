"""Sliding-window kernels: direct convolution (depthwise and other convs with few output channels per group,
where a GEMM tile would sit mostly idle), one thread per strip of outputs, and pooling, one thread per output."""
from __future__ import annotations

import math

from ..ops import Node
from ..options import DEFAULT, Options
from ..shapes import conv_out_size
from .common import WG, epilogue, thread_per_output
from .expr import Expr, KernelSource, idx_vars, linear_index
from .reduce import MAX_TRIPS
from .snippets import SUM_START, literal


# (rows, cols) of outputs per thread, most shared loads first: 4x2 for maps 28+ wide, single columns below
# (measured on MobileNetV2's depthwise convs: docs/benchmarks.md, "direct-conv strips").
WIDE_STRIPS = ((4, 2), (2, 2), (1, 2))
NARROW_STRIPS = ((8, 1), (4, 1), (2, 1))
NARROW_WIDTH = 14
STRIP_MAX_WASTE = 1.15  # outputs past the edge a ragged strip computes for nothing, as a share of the real ones
# a strip kernel unrolls its window up to Options.max_unrolled_taps taps: larger windows (a 9x9 or 31x31 depthwise
# conv) loop over it per output. Fewer threads than Options.strip_min_threads leave the GPU idle: batch-1 layers
# ran fastest with the smaller strips.


def choose_strip(planes: int, out_h: int, out_w: int, opts: Options = DEFAULT) -> tuple[int, int]:
    """Output rows x columns per thread of the direct conv over `planes` (image, channel) planes. A strip shares
    its input rows and columns between neighbouring outputs (a 4x2 strip of a 3x3 stride-1 conv loads 6x4
    inputs for 8 outputs, against 72) and its weights and channel parameters between all of them."""
    if opts.force_strip:
        return opts.force_strip
    for rows, cols in NARROW_STRIPS if out_w <= NARROW_WIDTH else WIDE_STRIPS:
        strips = -(-out_h // rows) * -(-out_w // cols)
        if (planes * strips >= opts.strip_min_threads
                and strips * rows * cols <= STRIP_MAX_WASTE * out_h * out_w):
            return rows, cols
    return 1, 1


def direct_trips(cin_g: int, kh: int, kw: int, opts: Options = DEFAULT) -> int:
    """Loop trips per thread of a direct conv: lowering (schedule/lower.py) makes one whose trips pass MAX_TRIPS
    (drivers cap them) an implicit GEMM instead (K / 8 trips)."""
    return cin_g * kh * (1 + kw) if kh * kw > opts.max_unrolled_taps else cin_g


def direct_conv(src: KernelSource, core: Node, opts: Options = DEFAULT):
    """One thread per strip of rows x cols outputs of one (image, channel): loads each input row of the strip's
    window once, every weight once, and keeps one accumulator per output."""
    taps = math.prod(core.srcs[1].shape[2:])
    if taps > opts.max_unrolled_taps:
        return _looped_direct_conv(src, core)
    x, w = core.srcs
    a = core.arg
    N, Cout, OH, OW = core.shape
    _, C, H, W = x.shape
    KH, KW = w.shape[2:]
    cin_g, cout_g = C // a.groups, Cout // a.groups
    (sh, sw), (ph, pw), (dh, dw) = a.stride, a.padding, a.dilation
    R, T = choose_strip(N * Cout, OH, OW, opts)
    grid = (N, Cout, -(-OH // R), -(-OW // T))
    n_threads = math.prod(grid)
    lines: list[str] = []
    e = Expr(src, lines)
    e.emit(f"let gi = wg * {WG} + lid;")
    e.emit(f"if (gi >= {n_threads}) {{ return; }}")
    n, co, sr, sc = idx_vars(e, "gi", grid)
    oh0 = e.let(f"{sr} * {R}", "oh")
    ow0 = e.let(f"{sc} * {T}", "ow")
    g = e.let(f"{co} / {cout_g}", "g")
    accs = {(r, t): f"acc{r}_{t}" for r in range(R) for t in range(T)}
    for acc in accs.values():
        e.emit(f"var {acc}: f32 = {SUM_START};")
    # input row offsets (from oh0 * sh - ph) each (output row, kernel row) reads, and column offsets likewise
    row_taps: dict[int, list[tuple[int, int]]] = {}
    for r in range(R):
        for kh in range(KH):
            row_taps.setdefault(r * sh + kh * dh, []).append((r, kh))
    cols = sorted({t * sw + kw * dw for t in range(T) for kw in range(KW)})
    ih0 = e.let(f"{oh0} * {sh} - {ph}", "ih")
    iw0 = e.let(f"{ow0} * {sw} - {pw}", "iw")
    # taps past either edge read a clamped (in-range) element and select 0 in its place (multiplying by 0 would
    # turn an inf on the edge into nan); padded rows and columns are such zeros, multiplied by their weights as in
    # torch CPU (0 * inf = nan there), not skipped
    zero = opaque_zero(e)
    col_at, col_in = {}, {}
    for c in cols:
        iw = e.let(f"{iw0} + {c}", "iw")
        col_at[c] = e.let(f"clamp({iw}, 0, {W - 1})", "iwc")
        col_in[c] = e.let(f"{iw} >= 0 && {iw} < {W}", "inw")
    with e.scope(f"for (var ci: i32 = 0; ci < {cin_g}; ci++)" if cin_g > 1 else ""):
        ci = "ci" if cin_g > 1 else "0"
        chan = e.let(f"{g} * {cin_g} + {ci}" if cin_g > 1 else f"{g}", "c")
        wv = {(kh, kw): e.value(w, (co, ci, str(kh), str(kw))) for kh in range(KH) for kw in range(KW)}
        for off, taps in sorted(row_taps.items()):
            ih = e.let(f"{ih0} + {off}", "ih")
            ihc = e.let(f"clamp({ih}, 0, {H - 1})", "ihc")
            inh = e.let(f"{ih} >= 0 && {ih} < {H}", "inh")
            xv = {c: e.let(f"select({zero}, {e.value(x, (n, chan, ihc, col_at[c]))}, {inh} && {col_in[c]})", "x")
                  for c in cols}
            for r, kh in taps:
                for t in range(T):
                    for kw in range(KW):
                        acc = accs[r, t]
                        e.emit(f"{acc} = fma({xv[t * sw + kw * dw]}, {wv[kh, kw]}, {acc});")
    for (r, t), acc in accs.items():
        oh, ow = f"({oh0} + {r})" if r else oh0, f"({ow0} + {t})" if t else ow0
        guards = [f"{o} < {lim}" for o, lim, i, s in ((oh, OH, r, R), (ow, OW, t, T)) if i and (-(-lim // s)) * s > lim]
        idx = (n, co, oh, ow)
        if not guards:  # in the kernel's scope: the epilogue's per-channel loads are shared between outputs
            e.emit(src.store(linear_index(idx, core.shape), epilogue(e, src.out, core, idx, acc)))
            continue
        with e.scope(f"if ({' && '.join(guards)})"):
            e.emit(src.store(linear_index(idx, core.shape), epilogue(e, src.out, core, idx, acc)))
    return src.render("\n".join(lines), WG), -(-n_threads // WG), f"direct{R}x{T}"


def opaque_zero(e: Expr) -> str:
    """0.0 that the compiler cannot prove is 0 (the PRELUDE's td_z). A padded tap's select(0.0, x, inside) feeding
    fma(., w, acc) was turned into a skip on lavapipe (fma(0, w, acc) -> acc, as if w were finite), losing torch's
    0 * inf = nan."""
    return e.let("bitcast<f32>(td_z)", "zpad")


def _looped_direct_conv(src: KernelSource, core: Node):
    """One thread per output, looping over the window (no unrolled code that grows with the window's size)."""
    x, w = core.srcs
    a = core.arg
    _, C, H, W = x.shape
    KH, KW = w.shape[2:]
    cin_g, cout_g = C // a.groups, core.shape[1] // a.groups
    (sh, sw), (ph, pw), (dh, dw) = a.stride, a.padding, a.dilation

    def compute(e: Expr, idx):
        n, co, oh, ow = idx
        g = e.let(f"{co} / {cout_g}", "g")
        e.emit(f"var acc: f32 = {SUM_START};")
        with e.scope(f"for (var ci: i32 = 0; ci < {cin_g}; ci++)"):
            with e.scope(f"for (var kh: i32 = 0; kh < {KH}; kh++)"):
                ih = e.let(f"{oh} * {sh} - {ph} + kh * {dh}", "ih")
                with e.scope(f"for (var kw: i32 = 0; kw < {KW}; kw++)"):
                    iw = e.let(f"{ow} * {sw} - {pw} + kw * {dw}", "iw")
                    # the padding is a zero times its weight (torch CPU: nan for an inf weight), not skipped
                    inside = e.let(f"{ih} >= 0 && {ih} < {H} && {iw} >= 0 && {iw} < {W}", "in")
                    xv = e.value(x, (n, f"{g} * {cin_g} + ci", f"clamp({ih}, 0, {H - 1})", f"clamp({iw}, 0, {W - 1})"))
                    wv = e.value(w, (co, "ci", "kh", "kw"))
                    e.emit(f"acc = fma(select({opaque_zero(e)}, {xv}, {inside}), {wv}, acc);")
        return epilogue(e, src.out, core, idx, "acc")

    wgsl, groups = thread_per_output(src, core.shape, compute)
    return wgsl, groups, "direct"


def im2col(src: KernelSource, core: Node, opts: Options = DEFAULT):
    """A conv's windows as data (ops.IM2COL): element (k, p) of [C*KH*KW, N*OH*OW] is x[n, ci, ih, iw] for
    k = (ci, kh, kw) and pixel p = (n, oh, ow), 0 in the padding. Written once, it is the plain GEMM operand of the
    conv that reads it (vec4 loads, no bounds checks per tile element). Where the pixels come in whole vec4s
    (float32), a thread writes 4 neighbouring pixels of one k as one vec4 and splits k once for them."""
    x = core.srcs[0]
    a = core.arg
    _, _, H, W = x.shape
    KH, KW = a.kernel
    (sh, sw), (ph, pw), (dh, dw) = a.stride, a.padding, a.dilation
    OH, OW = conv_out_size(H, KH, sh, ph, dh), conv_out_size(W, KW, sw, pw, dw)
    K, P = core.shape

    def window_value(e: Expr, ci, kh, kw, p):
        n, oh, ow = e.let(f"{p} / {OH * OW}", "n"), e.let(f"({p} / {OW}) % {OH}", "oh"), e.let(f"{p} % {OW}", "ow")
        ih = e.let(f"{oh} * {sh} - {ph} + {kh} * {dh}", "ih")
        iw = e.let(f"{ow} * {sw} - {pw} + {kw} * {dw}", "iw")
        inside = e.let(f"{ih} >= 0 && {ih} < {H} && {iw} >= 0 && {iw} < {W}", "in")
        # the padding reads a clamped in-range element and selects 0 in its place
        v = e.value(x, (n, ci, f"clamp({ih}, 0, {H - 1})", f"clamp({iw}, 0, {W - 1})"))
        return e.let(f"select(0.0, {v}, {inside})", "x")

    def k_parts(e: Expr, k):
        return e.let(f"{k} / {KH * KW}", "ci"), e.let(f"({k} / {KW}) % {KH}", "kh"), e.let(f"{k} % {KW}", "kw")

    if P % 4 or core.dtype.storage != "f32":
        n = math.prod(core.shape)
        wgsl, groups = thread_per_output(src, core.shape, lambda e, idx: window_value(e, *k_parts(e, idx[0]), idx[1]),
                                         opts.per_thread if n >= opts.per_thread_min else 1)
        return wgsl, groups, "window"
    src.vec4_out = True
    lines: list[str] = []
    e = Expr(src, lines)
    threads = K * P // 4
    e.emit(f"let gi = wg * {WG} + lid;")
    e.emit(f"if (gi >= {threads}) {{ return; }}")
    k = e.let(f"gi / {P // 4}", "k")
    p0 = e.let(f"(gi % {P // 4}) * 4", "p")
    parts = k_parts(e, k)
    values = [window_value(e, *parts, f"({p0} + {c})" if c else p0) for c in range(4)]
    e.emit(src.store4(f"{k} * {P} + {p0}", f"vec4<f32>({', '.join(values)})"))
    return src.render("\n".join(lines), WG), -(-threads // WG), "window4"


def pool_trips(a, in_hw, out_hw) -> int:
    """An upper bound of one pool thread's loop trips (its window rows, plus their columns): kept within
    MAX_TRIPS by functional_pools._pool_node, which splits larger windows into a pool along W, then along H."""
    if a.adaptive:
        if not all(out_hw):
            return 0
        kh, kw = (-(-size // osize) + (size % osize != 0) for size, osize in zip(in_hw, out_hw))
    else:
        kh, kw = a.kernel
    return kh + kh * kw


def pool(src: KernelSource, core: Node):
    x = core.srcs[0]
    a = core.arg
    H, W = x.shape[2:]
    OH, OW = core.shape[2:]

    def compute(e: Expr, idx):
        n, c, oh, ow = idx
        bounds = []
        for o, size, osize, k, s, p in ((oh, H, OH, *(v[0] for v in (a.kernel, a.stride, a.padding))),
                                        (ow, W, OW, *(v[1] for v in (a.kernel, a.stride, a.padding)))):
            if a.adaptive:  # torch: start = floor(o*size/osize), end = ceil((o+1)*size/osize)
                lo = e.let(f"({o} * {size}) / {osize}", "lo")
                hi = e.let(f"(({o} + 1) * {size} + {osize - 1}) / {osize}", "hi")
                bounds.append((lo, hi, lo, hi))
            else:
                start = e.let(f"{o} * {s} - {p}", "st")
                # avg: the divisor counts padding up to size + p, but not past it (torch's pool_size)
                pend = e.let(f"min({start} + {k}, {size + p})", "pe")
                bounds.append((start, f"{start} + {k}", pend, None))
        acc_t = x.dtype.compute  # i32 for integer max pools (torch's max_pool2d/3d take them); avg: f32
        if a.kind == "max":
            e.emit(f"var acc: {acc_t} = {literal(-2**31 if acc_t == 'i32' else float('-inf'), acc_t)};")
        else:
            e.emit(f"var acc: f32 = {SUM_START};")
            e.emit("var cnt: i32 = 0;")
        (h0, h1, _, _), (w0, w1, _, _) = bounds
        dh, dw = a.dilation
        if a.adaptive:
            loop_h = f"for (var ih: i32 = {h0}; ih < {h1}; ih++)"
            loop_w = f"for (var iw: i32 = {w0}; iw < {w1}; iw++)"
        else:
            loop_h = f"for (var kh: i32 = 0; kh < {a.kernel[0]}; kh++)"
            loop_w = f"for (var kw: i32 = 0; kw < {a.kernel[1]}; kw++)"
        with e.scope(loop_h):
            ih = "ih" if a.adaptive else e.let(f"{h0} + kh * {dh}", "ih")
            with e.scope(f"if ({ih} >= 0 && {ih} < {H})"):
                with e.scope(loop_w):
                    iw = "iw" if a.adaptive else e.let(f"{w0} + kw * {dw}", "iw")
                    with e.scope(f"if ({iw} >= 0 && {iw} < {W})"):
                        v = e.value(x, (n, c, ih, iw))
                        if a.kind == "max":
                            e.emit(f"acc = {'max' if acc_t == 'i32' else 'td_max'}(acc, {v});")
                        else:
                            e.emit(f"acc = acc + {v};")
                            e.emit("cnt = cnt + 1;")
        if a.kind == "avg":
            if a.divisor_override:
                div = str(float(a.divisor_override))
            elif a.adaptive or not a.count_include_pad:
                div = "f32(cnt)"
            else:
                (hs, _, hpe, _), (ws, _, wpe, _) = bounds
                div = f"f32(({bounds[0][2]} - {hs}) * ({bounds[1][2]} - {ws}))"
            e.emit(f"acc = acc / {div};")
        return epilogue(e, src.out, core, idx, "acc")

    wgsl, groups = thread_per_output(src, core.shape, compute)
    return wgsl, groups, "window"
