"""Reductions (sum/prod/max/min/argmax/argmin over any set of axes), with the reduced input computed inline
(prologue: e.g. var's (x - mean)^2) and elementwise consumers fused after (epilogue: mean's 1/n).

Three variants: "serial" (one thread per output, for very short reductions with outputs enough to fill the GPU),
"lanes" (a few threads per output, for short reductions with few outputs: a global average pool at batch 1,
a split-K GEMM's sum over its slices) and "workgroup" (a workgroup per output); the last two have their threads
stride over the reduced elements, then add up in workgroup memory.

Long reductions run in two stages (schedule/lower.py builds them where `staged`): a reduction over more than
STAGE_MAX elements (or over FEW_STAGE_MIN with few outputs) first reduces chunks of `stage_chunk(R)` elements
into partials (a node whose arg is a `Partial`), then a second reduce node reduces the partials. So no thread
loops more than ~STAGE_MAX / 256 + 8 times: drivers cap the loop trips of a thread (lavapipe: 65535 over the
whole kernel, then every loop ends early, silently; a sum of 2^24 ones gave 131070), and a tree of partials keeps
float sums accurate (serial runs of at most 256).

Integer sums and products accumulate wide: a sum as 64 bits (two u32 words with a carry), a product as its i32
value plus an overflow flag from the exact 32x32 -> 64-bit product. A result that does not fit int32 (torch's
would be an int64, which tinydl does not store) is reported on the GPU (checks.Code.INTEGER_OVERFLOW, see
`_overflow_report`) and raised at the read-back, never returned wrapped. Stage-1 partials of these, and of
argmax/argmin (value bits, index), are stored as pairs of i32 words (`PAIR` ops; the stage-2 node's arg is an
`OfPairs`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ops import MAX_TRIPS, Node
from ..options import DEFAULT, Options
from .common import WG, epilogue, thread_per_output
from .expr import Expr, KernelSource, idx_vars, linear_index, unravel
from .snippets import SUM_START, literal

SERIAL_MAX = 64  # reduce lengths up to this use LANES threads per output (or one: see below) ...
# ... and one thread per output when there are Options.serial_min_outputs outputs and the length is at most
# SERIAL_UNROLL (a loop waits for each load in turn; docs/benchmarks.md, "serial vs lanes")
LANES = 16
# a serial reduction this short is written out (a split-K GEMM's sum over its slices): its loads all issue before
# the first add, where a loop waits for each in turn
SERIAL_UNROLL = 16
# Loop trips: a reduction of up to STAGE_MAX elements is one kernel (a workgroup of 256 threads per output: at most
# 256 trips each, + 8 for the tree); a longer one is staged. ops.MAX_TRIPS bounds any one thread's loop trips in
# any kernel tinydl generates (drivers may cap them: lavapipe at 65535 per invocation, all loops together).
STAGE_MAX = 1 << 16
STAGE_CHUNK = 1 << 13  # elements per stage-1 partial (more for reductions over 2^29+ elements: <= 65536 partials)
# a workgroup reduction with fewer outputs than this (too few workgroups to fill the GPU: an RMSNorm's mean of
# squares at batch 1) takes 256 threads per output at any length, so each waits for fewer loads in turn
FEW_OUTPUTS = 128
# ... and from this length such a reduction is staged, in chunks of FEW_STAGE_CHUNK elements (a workgroup each)
FEW_STAGE_MIN, FEW_STAGE_CHUNK = 1 << 14, 1024
WIDE_INT_OPS = ("sum", "prod")  # on int32: accumulated wide, overflow reported
ARG_OPS = ("argmax", "argmin")


@dataclass(frozen=True)
class Partial:
    """arg of a stage-1 reduce node: x's `axes` (their row-major flat index) cut into chunks of `chunk` elements,
    one result per chunk; the node's shape is x's kept shape (reduced axes as 1) + (C,), + (2,) for pairs."""
    axes: tuple
    chunk: int


@dataclass(frozen=True)
class OfPairs:
    """arg of a stage-2 reduce node over stage-1 pairs (its one source, shape kept + (C, 2)): argmax/argmin's
    (value bits, index), an int32 sum's 64-bit (lo, hi) words, an int32 product's (value, overflowed). ct: the
    compute type of the reduced values."""
    ct: str


def staged(R: int, outputs: int) -> bool:
    """A reduction of `outputs` results over R elements each runs in two stages: past STAGE_MAX (loop trips), or
    with fewer than FEW_OUTPUTS outputs from FEW_STAGE_MIN elements (one workgroup per output would wait on R / 256
    loads in turn while the rest of the GPU idles: a greedy decode step's argmax over the vocabulary)."""
    return R > STAGE_MAX or (outputs < FEW_OUTPUTS and R >= FEW_STAGE_MIN)


def stage_chunk(R: int) -> int:
    """Elements per stage-1 partial for a staged reduction over R elements (a multiple of 256)."""
    if R <= STAGE_MAX:
        return FEW_STAGE_CHUNK
    return max(STAGE_CHUNK, -(-R // (STAGE_MAX * 256)) * 256)


def pairs(op: str, dtype) -> bool:
    """Stage-1 partials of op over this input dtype are pairs of i32 words."""
    return op in ARG_OPS or (op in WIDE_INT_OPS and dtype.compute == "i32")


def _init(op: str, ct: str) -> str:
    if op in ("sum",):
        return SUM_START if ct == "f32" else literal(0, ct)
    if op == "prod":
        return literal(1, ct)
    big = float("inf") if ct == "f32" else 2**31 - 1
    if op in ("max", "argmax"):
        return literal(-big if ct == "f32" else -2**31, ct)
    return literal(big, ct)


def _combine(op: str, ct: str, acc: str, v: str) -> str:
    if op == "sum":
        return f"{acc} + {v}"
    if op == "prod":
        return f"{acc} * {v}"
    f = "td_max" if ct == "f32" else "max"
    if op == "min":
        f = "td_min" if ct == "f32" else "min"
    return f"{f}({acc}, {v})"


def _better(op: str, ct: str, bv, bi, av, ai) -> str:
    """(bv, bi) replaces (av, ai) in argmax/argmin: strictly better, or equal with a lower index; NaN wins."""
    cmp = ">" if op == "argmax" else "<"
    s = f"({bv} {cmp} {av} || ({bv} == {av} && {bi} < {ai}))"
    if ct == "f32":
        s = f"(({s} && !td_isnan({av})) || (td_isnan({bv}) && (!td_isnan({av}) || {bi} < {ai})))"
    return s


# 64-bit integer sums as vec2<u32>(lo, hi), and int32 products as vec2<i32>(value, overflowed)
_WIDE_FUNCTIONS = """fn td_widen(v: i32) -> vec2<u32> {
  return vec2<u32>(bitcast<u32>(v), select(0u, 0xffffffffu, v < 0));
}
fn td_wadd(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.x + b.x;
  return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}
fn td_wfits(a: vec2<u32>) -> bool {
  return a.y == select(0u, 0xffffffffu, (a.x >> 31u) != 0u);
}
fn td_wmul(a: vec2<i32>, b: vec2<i32>) -> vec2<i32> {
  if ((a.x == 0 && a.y == 0) || (b.x == 0 && b.y == 0)) { return vec2<i32>(0, 0); }
  let ua = bitcast<u32>(select(-a.x, a.x, a.x >= 0));
  let ub = bitcast<u32>(select(-b.x, b.x, b.x >= 0));
  let a0 = ua & 0xffffu; let a1 = ua >> 16u; let b0 = ub & 0xffffu; let b1 = ub >> 16u;
  let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  let lo = (mid << 16u) | (p00 & 0xffffu);
  let neg = (a.x < 0) != (b.x < 0);
  let fits = hi == 0u && (lo < 0x80000000u || (neg && lo == 0x80000000u));
  return vec2<i32>(a.x * b.x, select(1, 0, fits && a.y == 0 && b.y == 0));
}"""


class _Acc:
    """How one reduction accumulates: its WGSL type, start value, folding in an element, merging two."""

    def __init__(self, op: str, ct: str):
        self.op, self.ct = op, ct
        self.wide = op in WIDE_INT_OPS and ct == "i32"
        if self.wide and op == "sum":
            self.type, self.init = "vec2<u32>", "vec2<u32>(0u, 0u)"
        elif self.wide:
            self.type, self.init = "vec2<i32>", "vec2<i32>(1, 0)"
        else:
            self.type, self.init = ct, _init(op, ct)

    def fold(self, acc: str, v: str) -> str:
        if self.wide:
            return self.merge(acc, f"td_widen({v})" if self.op == "sum" else f"vec2<i32>({v}, 0)")
        return _combine(self.op, self.ct, acc, v)

    def merge(self, a: str, b: str) -> str:
        if self.wide:
            return f"td_wadd({a}, {b})" if self.op == "sum" else f"td_wmul({a}, {b})"
        return _combine(self.op, self.ct, a, b)

    def from_words(self, w0: str, w1: str) -> str:
        """A stage-1 pair as an accumulator."""
        return f"vec2<u32>(bitcast<u32>({w0}), bitcast<u32>({w1}))" if self.op == "sum" else f"vec2<i32>({w0}, {w1})"

    def words(self, acc: str) -> tuple[str, str]:
        return (f"bitcast<i32>({acc}.x)", f"bitcast<i32>({acc}.y)") if self.op == "sum" else (f"{acc}.x", f"{acc}.y")

    def finish(self, e: Expr, src: KernelSource, acc: str) -> str:
        """The result value; a wide result that does not fit int32 is reported."""
        if not self.wide:
            return acc
        bad = f"!td_wfits({acc})" if self.op == "sum" else f"{acc}.y != 0"
        report = _overflow_report(src)
        if report:
            e.emit(f"if ({bad}) {{ {report} }}")
        return f"bitcast<i32>({acc}.x)" if self.op == "sum" else f"{acc}.x"


def _overflow_report(src: KernelSource) -> str:
    """THE HOOK for integer overflow: the WGSL statement that reports a sum/product that does not fit int32 (the
    device status flag of tinydl/checks.py, raised at the read-back), or "" where that mechanism is missing."""
    report = getattr(src, "report", None)
    if report is None:
        return ""
    from .. import checks
    return report(checks.Code.INTEGER_OVERFLOW)


def reports_overflow(node: Node) -> bool:
    """The kernel of this node may report an integer overflow (it binds the status buffer)."""
    from ..ops import REDUCE
    return (node.kind == REDUCE and node.op in WIDE_INT_OPS and node.dtype.compute == "i32"
            and not isinstance(node.arg, Partial))


try:  # register with the device-status mechanism (tinydl/checks.py) where it exists
    from .. import checks as _checks
    if hasattr(_checks, "reporter"):
        _checks.reporter(reports_overflow)
except ImportError:  # pragma: no cover
    pass


def reduce(src: KernelSource, core: Node, opts: Options = DEFAULT):
    x = core.srcs[0]
    op = core.op
    arg = op in ARG_OPS
    if isinstance(core.arg, OfPairs):  # stage 2 over pairs: x is the stage-1 node, shape kept + (C, 2)
        mode, ct = "pairs", core.arg.ct
        R = x.shape[-2]
        out_shape = core.shape
    elif isinstance(core.arg, Partial):  # stage 1: one result per (kept index, chunk)
        mode, ct = "partial", x.dtype.compute
        axes = core.arg.axes
        r_shape = [x.shape[a] for a in axes]
        R_total, R = math.prod(r_shape), core.arg.chunk
        out_shape = core.shape[:-1] if pairs(op, x.dtype) else core.shape
    else:
        mode, ct = "plain", x.dtype.compute
        axes = core.arg
        r_shape = [x.shape[a] for a in axes]
        R = math.prod(r_shape)
        out_shape = core.shape
    assert ct != "bool", "bool reductions are reduced as int32 (reductions._reduce)"
    n_out = math.prod(out_shape)
    short = "serial" if n_out >= opts.serial_min_outputs and R <= SERIAL_UNROLL else "lanes"
    variant = opts.force_reduce or (short if R <= SERIAL_MAX else "workgroup")
    if variant == "serial" and R > MAX_TRIPS:
        variant = "workgroup"
    A = _Acc(op, ct)
    if A.wide or (mode == "pairs" and not arg):
        src.functions.append(_WIDE_FUNCTIONS)
    pair_out = mode == "partial" and pairs(op, x.dtype)

    def element(e: Expr, oidx, r: str):
        """(value, reduced index) of reduced element r (a WGSL expression) for the output at oidx."""
        if mode == "pairs":
            w0 = e.value(x, list(oidx) + [r, "0"])
            w1 = e.value(x, list(oidx) + [r, "1"])
            if arg:
                return (f"bitcast<f32>({w0})" if ct == "f32" else w0), w1
            return A.from_words(w0, w1), None
        if mode == "partial":
            r = e.let(f"{oidx[-1]} * {R} + {r}", "g")
            oidx = oidx[:-1]
        ridx = iter(unravel(r, r_shape))
        return e.value(x, [next(ridx) if d in axes else oidx[d] for d in range(len(x.shape))]), r

    def accumulate(e: Expr, oidx, r: str, acc: str, best: str | None):
        v, i = element(e, oidx, r)
        if arg:
            with e.scope(f"if ({_better(op, ct, v, i, acc, best)})"):
                e.emit(f"{acc} = {v};")
                e.emit(f"{best} = {i};")
        elif mode == "pairs":
            e.emit(f"{acc} = {A.merge(acc, v)};")
        else:
            e.emit(f"{acc} = {A.fold(acc, v)};")

    def loop_bound(e: Expr, oidx) -> str:
        if mode == "partial" and R_total % R:
            return e.let(f"min({R}, {R_total} - {oidx[-1]} * {R})", "lim")
        return str(R)

    def result(e: Expr, oidx, acc: str, best: str) -> str | None:
        """Store a stage-1 result (returns None) or return the value to push through the epilogue."""
        if mode == "partial":
            assert src.out is core
            lin = e.let(linear_index(oidx, out_shape), "lin")
            if not pair_out:
                e.emit(src.store(lin, best if arg else acc))
                return None
            if arg:
                words = (f"bitcast<i32>({acc})" if ct == "f32" else acc), best
            else:
                words = A.words(acc)
            e.emit(src.store(f"{lin} * 2", words[0]))
            e.emit(src.store(f"{lin} * 2 + 1", words[1]))
            return None
        return best if arg else A.finish(e, src, acc)

    if variant == "serial":
        def compute(e: Expr, oidx):
            acc, best = e.src.fresh("acc"), e.src.fresh("best")
            e.emit(f"var {acc}: {A.type} = {A.init};")
            e.emit(f"var {best}: i32 = 0;")
            if mode == "plain" and R <= SERIAL_UNROLL and not arg:  # every load in flight, added in order
                values = [element(e, oidx, str(r))[0] for r in range(R)]
                for v in values:
                    e.emit(f"{acc} = {A.fold(acc, v)};")
            else:
                with e.scope(f"for (var r: i32 = 0; r < {loop_bound(e, oidx)}; r++)"):
                    accumulate(e, oidx, "r", acc, best)
            res = result(e, oidx, acc, best)
            return epilogue(e, src.out, core, oidx, res) if res is not None else None
        if mode == "partial":
            wgsl, groups = _serial_partial(src, out_shape, compute)
        else:
            wgsl, groups = thread_per_output(src, core.shape, compute)
        return wgsl, groups, "serial"

    # lanes / workgroup: `lanes` threads per output (a power of two), `size // lanes` outputs per workgroup
    if variant == "workgroup":
        size = lanes = 256 if R >= 4096 or n_out < FEW_OUTPUTS else 64
    else:
        size, lanes = WG, min(LANES, 1 << max(R - 1, 0).bit_length())
    per_wg = size // lanes
    lines: list[str] = []
    e = Expr(src, lines)
    e.emit(f"let slot = wg * {per_wg} + lid / {lanes};")
    e.emit(f"let lane = lid % {lanes};")
    # threads past the last output redo it (every thread must reach the barriers), and do not store
    oidx = idx_vars(e, e.let(f"min(slot, {n_out - 1})", "gi"), out_shape)
    acc, best = "acc", "best"
    vt = ct if arg else A.type
    e.emit(f"var acc: {vt} = {_init(op, ct) if arg else A.init};")
    e.emit("var best: i32 = 0;")
    with e.scope(f"for (var r: i32 = lane; r < {loop_bound(e, oidx)}; r += {lanes})"):
        accumulate(e, oidx, "r", acc, best)
    e.emit("sh_v[lid] = acc;")
    e.emit("sh_i[lid] = best;")
    e.emit("workgroupBarrier();")
    with e.scope(f"for (var s: i32 = {lanes // 2}; s > 0; s >>= 1u)"):
        with e.scope("if (lane < s)"):
            e.emit("let ov = sh_v[lid + s];")
            e.emit("let oi = sh_i[lid + s];")
            if arg:
                with e.scope(f"if ({_better(op, ct, 'ov', 'oi', 'sh_v[lid]', 'sh_i[lid]')})"):
                    e.emit("sh_v[lid] = ov;")
                    e.emit("sh_i[lid] = oi;")
            else:
                e.emit(f"sh_v[lid] = {A.merge('sh_v[lid]', 'ov')};")
        e.emit("workgroupBarrier();")
    with e.scope(f"if (lane == 0 && slot < {n_out})"):
        v = e.let("sh_v[lid]", "res")
        res = result(e, oidx, v, e.let("sh_i[lid]", "bi"))
        if res is not None:
            e.emit(src.store(linear_index(oidx, core.shape), epilogue(e, src.out, core, oidx, res)))
    shared = f"var<workgroup> sh_v: array<{vt}, {size}>;\nvar<workgroup> sh_i: array<i32, {size}>;"
    return src.render("\n".join(lines), size, shared), -(-n_out // per_wg), variant


def _serial_partial(src: KernelSource, shape, compute):
    """thread_per_output for a stage-1 node, whose compute stores its own result(s)."""
    n = math.prod(shape)
    lines: list[str] = []
    e = Expr(src, lines)
    e.emit(f"let gi = wg * {WG} + lid;")
    e.emit(f"if (gi >= {n}) {{ return; }}")
    compute(e, idx_vars(e, "gi", shape))
    return src.render("\n".join(lines), WG), -(-n // WG)


__all__ = ["reduce", "WG", "Partial", "OfPairs", "staged", "stage_chunk", "pairs", "STAGE_MAX", "MAX_TRIPS"]
