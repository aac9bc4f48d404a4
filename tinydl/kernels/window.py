"""Sliding-window kernels with one thread per output element: direct convolution (depthwise and other
convs with few output channels per group, where a GEMM tile would sit mostly idle) and pooling."""
from __future__ import annotations

from ..ops import Node
from .common import epilogue, thread_per_output
from .expr import Expr, KernelSource
from .snippets import literal


def direct_conv(src: KernelSource, core: Node):
    x, w = core.srcs
    a = core.arg
    _, C, H, W = x.shape
    Cout = core.shape[1]
    KH, KW = w.shape[2:]
    cin_g, cout_g = C // a.groups, Cout // a.groups
    (sh, sw), (ph, pw), (dh, dw) = a.stride, a.padding, a.dilation

    def compute(e: Expr, idx):
        n, co, oh, ow = idx
        g = e.let(f"{co} / {cout_g}", "g")
        e.emit("var acc: f32 = 0.0;")
        with e.scope(f"for (var ci: i32 = 0; ci < {cin_g}; ci++)"):
            with e.scope(f"for (var kh: i32 = 0; kh < {KH}; kh++)"):
                ih = e.let(f"{oh} * {sh} - {ph} + kh * {dh}", "ih")
                with e.scope(f"if ({ih} >= 0 && {ih} < {H})"):
                    with e.scope(f"for (var kw: i32 = 0; kw < {KW}; kw++)"):
                        iw = e.let(f"{ow} * {sw} - {pw} + kw * {dw}", "iw")
                        with e.scope(f"if ({iw} >= 0 && {iw} < {W})"):
                            xv = e.value(x, (n, f"{g} * {cin_g} + ci", ih, iw))
                            wv = e.value(w, (co, "ci", "kh", "kw"))
                            e.emit(f"acc = fma({xv}, {wv}, acc);")
        return epilogue(e, src.out, core, idx, "acc")

    wgsl, groups = thread_per_output(src, core.shape, compute)
    return wgsl, groups, "direct"


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
        acc_t = "f32"
        if a.kind == "max":
            e.emit(f"var acc: {acc_t} = {literal(float('-inf'), 'f32')};")
        else:
            e.emit("var acc: f32 = 0.0;")
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
                            e.emit(f"acc = td_max(acc, {v});")
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
