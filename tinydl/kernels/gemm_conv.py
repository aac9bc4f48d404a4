"""Convolution as an implicit GEMM (gemm.gemm): out^T = W . im2col, the weights as A (output channels x K), the
image's windows as B (K x pixels), gathered inside B's load function (or read as data after an IM2COL node, or in
tap-major order through a TapGather), in the tile lowering chose."""
from __future__ import annotations

from ..ops import BUFFER, Node
from ..options import DEFAULT, Options
from .expr import VEC4_STORAGE, Expr, KernelSource
from .gemm import TapGather, VecOperand, gemm
from .gemm_matrix import MATRIX_TILES
from .tiles import conv_gather, conv_gemm_dims, tile_reads_taps


def conv(src: KernelSource, core: Node, opts: Options = DEFAULT):
    """Implicit GEMM: batch = groups, M = output channels per group (the weights' rows), N = N*OH*OW (the pixels),
    K = Cin/g * KH * KW; in the tile lowering chose (ConvArgs.tile)."""
    x, w = core.srcs  # x: the image, or its windows as data (an IM2COL node, a.im2col)
    a = core.arg
    Nb, C, H, W = a.x_shape if a.im2col else x.shape
    _, Cout, OH, OW = core.shape
    KH, KW = w.shape[2:]
    g = a.groups
    cin_g = C // g
    cout_g = Cout // g
    (sh, sw), (ph, pw), (dh, dw) = a.stride, a.padding, a.dilation

    M, N = conv_gemm_dims(Nb * OH * OW, cout_g)
    split = a.split if not a.transposed else 1
    gather = conv_gather(KH * KW, a.im2col, a.transposed, cin_g, opts)
    in_memory = x.kind == BUFFER or src.materialized(x)
    # a 1x1, stride-1, unpadded conv's pixels, 4 at a time as vec4s (4 pixels from a multiple of 4 lie in one image)
    pixels_in_vec4s = (not a.transposed and KH == KW == 1 and (sh, sw, ph, pw) == (1, 1, 0, 0)
                       and (OH * OW) % 4 == 0 and in_memory and x.dtype.storage in VEC4_STORAGE)
    # K in tap-major order (k = tap * cin_g + ci) where the pixels can be read through a TapGather; on a matrix tile
    # also a 1x1 conv's that no vec4 load reads (strided, or images of a pixel count not a multiple of 4)
    gathered_1x1 = (KH * KW == 1 and a.tile in MATRIX_TILES and not (a.im2col or a.transposed or pixels_in_vec4s)
                    and opts.tap_major)
    tap_major = (gather == "tap" or gathered_1x1) and in_memory and tile_reads_taps(a.tile, cin_g)

    def split_m(e: Expr, m):
        return (e.let(f"{m} / {OH * OW}", "n"), e.let(f"({m} / {OW}) % {OH}", "oh"), e.let(f"{m} % {OW}", "ow"))

    def k_parts(e: Expr, k):
        if tap_major:
            tap = e.let(f"{k} / {cin_g}", "tap")
            return e.let(f"{k} % {cin_g}", "ci"), e.let(f"{tap} / {KW}", "kh"), e.let(f"{tap} % {KW}", "kw")
        return (e.let(f"{k} / {KH * KW}", "ci"), e.let(f"({k} / {KW}) % {KH}", "kh"), e.let(f"{k} % {KW}", "kw"))

    def pixel_value(e: Expr, bb, k, m):  # B: the image's element under pixel m's window at k (group bb)
        if a.im2col:  # row k of this group's (split slice's) rows, pixel m
            return e.value(x, (f"{bb} * {cin_g * KH * KW} + {k}", m))
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

    def weight_value(e: Expr, bb, co, k):  # A: the weight of output channel co (of group bb) at k
        if not a.transposed and (w.kind == BUFFER or e.src.materialized(w)):
            # a weight in memory runs along k = (ci, kh, kw): its element is row * C/g*KH*KW + (first ci) * KH*KW + k,
            # with no division of k into (ci, kh, kw)
            if a.split > 1:  # group bb is slice bb % S of real group bb / S
                row, first = f"({bb} / {a.split}) * {cout_g} + {co}", f"({bb} % {a.split}) * {cin_g}"
            else:
                row, first = f"{bb} * {cout_g} + {co}", "0"
            if tap_major:
                return e.element(w, f"({row}) * {w.shape[1] * KH * KW} + ({first} + {k} % {cin_g}) * {KH * KW} + "
                                    f"{k} / {cin_g}")
            return e.element(w, f"({row}) * {w.shape[1] * KH * KW} + {first} * {KH * KW} + {k}")
        ci, kh, kw = k_parts(e, k)
        if not a.transposed and a.split > 1:  # group bb is slice bb % S of real group bb / S
            return e.value(w, (f"({bb} / {a.split}) * {cout_g} + {co}", f"({bb} % {a.split}) * {cin_g} + {ci}", kh, kw))
        if not a.transposed:
            return e.value(w, (f"{bb} * {cout_g} + {co}", ci, kh, kw))
        return e.value(w, (f"{bb} * {cin_g} + {ci}", co, kh, kw))

    def out_index(e: Expr, bb, co, m):
        n, oh, ow = split_m(e, m)
        return [n, e.let(f"{bb} * {cout_g} + {co}", "co"), oh, ow]

    # out^T = W . im2col: threads next to each other own neighbouring pixels, so the epilogue's stores into the
    # NCHW output are coalesced (as pixels x channels, each store instruction hit 32 cache lines; 1.1-1.8x
    # slower at batch 1 on the H100). W [Cout, Cin/g, KH, KW] runs along K = (ci, kh, kw); im2col along pixels.
    # vec4 tile loads: a 1x1 conv's weights along k (rows of Cin/g in memory); a 1x1, stride-1, unpadded conv's
    # input along pixels (4 pixels from a multiple of 4 lie in one image, side by side, when OH * OW % 4 == 0)
    weights_vec = pixels_vec = None
    if not a.transposed and (w.kind == BUFFER or src.materialized(w)) and w.dtype.storage in VEC4_STORAGE:
        row_len = w.shape[1] * KH * KW

        def weight_lin(e, bb, co, k):
            if a.split > 1:
                return (f"(({bb}) / {a.split} * {cout_g} + {co}) * {row_len} + "
                        f"(({bb}) % {a.split}) * {cin_g * KH * KW} + {k}")
            return f"(({bb}) * {cout_g} + {co}) * {row_len} + {k}"
        # not for gathers: 3x3 convs at batch 16 ran 171/221/234 us with vec4 weight loads, 153/199/212 without
        # (tile128, H200, sweep --scalar-loads)
        if KH * KW == 1 and row_len % 4 == 0 and cin_g % 4 == 0:
            weights_vec = VecOperand(w, "k", weight_lin)
    if pixels_in_vec4s:
        def pixel_lin(e, bb, m, k):
            img = e.let(f"({m}) / {OH * OW}", "img")
            return f"{img} * {C * H * W} + (({bb}) * {cin_g} + {k}) * {H * W} + ({m}) - {img} * {OH * OW}"
        pixels_vec = VecOperand(x, "r", pixel_lin)
    if a.im2col and (Nb * OH * OW) % 4 == 0 and x.dtype.storage in VEC4_STORAGE:  # rows of pixels in memory
        pixels_vec = VecOperand(x, "r", lambda e, bb, m, k: f"(({bb}) * {cin_g * KH * KW} + {k}) * {Nb * OH * OW} + {m}")
    pixels_gather = (TapGather(x, (C, H, W), (OH, OW), cin_g, KW, a.stride, a.padding, a.dilation) if tap_major
                     else None)
    return gemm(src, core, a.tile, g, M, N, cin_g * KH * KW,
                weight_value, pixel_value, out_index, a_m_fastest=a.transposed, b_k_fastest=False,
                split=split, gather=gather,
                n_runs=(OH * OW) % 4 == 0,  # 4 pixels from a multiple of 4 lie in one image, side by side
                a_vec=weights_vec, b_vec=pixels_vec, b_gather=pixels_gather, opts=opts)
