"""Row-wise normalizations in one kernel: softmax (and attention's safe_softmax), log_softmax, layer_norm, rms_norm
over one axis.

The node has its input's shape; arg (eps, first, last) names the normalized axes first..last (lowered: a 4th
entry, whether its rows go to subgroup teams, see use_teams). A row is the values at one position of the other
axes (softmax over a middle dim reads and writes its strided rows in place). One workgroup per row. The row's values (the input computed inline: a prologue such as a residual
add) are read once into registers where they fit, the row statistics (max and sum of exponentials; mean and
variance; mean square) come from tree reductions in workgroup memory, and the normalized values leave through
the epilogue (layer_norm's affine weight and bias, a following activation). Composed from reduce and
elementwise kernels the same ops take 3-4 dispatches and round trips of the row through memory.
"""
from __future__ import annotations

import math

from ..ops import Node
from ..options import DEFAULT, Options
from .common import function, store_function
from .expr import Expr, KernelSource, unravel
from .snippets import literal

# torch CPU's row moments (layer_norm, group_norm) run in float32 vectors of 8 lanes (AVX2/NEON dispatch)
TORCH_MOMENT_LANES = 8
# ops.ROW_MAX_LEN: rows longer than this are not a row kernel (reductions.row_norm composes them from reductions):
# a thread's loop trips must stay under ops.MAX_TRIPS (drivers cap them: lavapipe ends every loop after 65535 in
# all, silently).
# With the adapter's subgroup feature (and Options.subgroup_teams), rows of up to Options.team_max_len values go
# to teams of Options.team threads, TEAM_ROWS rows per workgroup, whose sums and maxima come from subgroup
# shuffles: no barriers where a subgroup holds a whole team (32+ lanes: NVIDIA, AMD), one where it does not (the
# partial sums meet in workgroup memory). A workgroup per row spends a barrier per halving of its tree; longer
# rows stay a workgroup's (docs/benchmarks.md, "subgroup teams"). A thread keeps up to Options.max_cached values
# (Options.max_team_cached in a team) in registers; longer rows are read again in each pass.
TEAM_ROWS = 4


def use_teams(L: int, subgroups: bool, opts: Options = DEFAULT) -> bool:
    """Lowering's choice (schedule/lower.py) for rows of L values, where the adapter has subgroups or not."""
    return opts.subgroup_teams and L <= opts.team_max_len and subgroups


def rownorm(src: KernelSource, core: Node, opts: Options = DEFAULT):
    x = core.srcs[0]
    eps, first, last, teams = core.arg  # (teams: lowering's choice, see use_teams)
    outer, row, inner = core.shape[:first], core.shape[first:last + 1], core.shape[last + 1:]
    rows, L = math.prod(outer) * math.prod(inner), math.prod(row)
    if teams:  # `size` threads per row (a team), `per_group` rows per workgroup
        size, per_group = opts.team, TEAM_ROWS
        per = -(-L // size)
        cached = per <= opts.max_team_cached
    else:
        size, per_group = (256 if L >= 2048 else 128 if L >= 256 else 64), 1
        per = -(-L // size)
        cached = per <= opts.max_cached
    if cached and teams:  # a power of two of registers: rows of nearby lengths (decode's attention over a new
        per = min(1 << (per - 1).bit_length(), opts.max_team_cached)  # cache length) share the shader (sizes.py)
    groups = -(-rows // per_group)

    def load(e: Expr):
        e.emit(f"if (c >= {L}) {{ return 0.0; }}")
        e.emit(f"return f32({e.value(x, _at(e, outer, row, inner))});")
    function(src, "load_x(r: i32, c: i32) -> f32", load)
    store_function(src, core, "r: i32, c: i32", lambda e: _at(e, outer, row, inner))

    if teams:
        body = [f"  let r = wg * {per_group} + lid / {size};", f"  let lane = lid % {size};"]
        # the last workgroup's spare teams: no loads, no stores (always tested, so that other row counts share
        # the shader: schedule/sizes.py)
        guard = f" && r < {rows}"
    else:
        body = [f"  if (wg >= {rows}) {{ return; }}", "  let r = wg;", "  let lane = lid;"]
        guard = ""
    if cached:  # named registers, unrolled by the generator (a dynamically indexed array may live in memory)
        body += [f"  let x{i} = load_x(r, lane + {i * size});" for i in range(per)]

    def each(stmt: str) -> None:
        """stmt over this thread's elements, with `v` the element's value and `c` its column."""
        cond = f"if (c < {L}{guard}) "
        if cached:
            body.extend(f"  {{ let c = lane + {i * size}; {cond}{{ let v = x{i}; {stmt} }} }}" for i in range(per))
        else:
            body.append(f"  for (var i: i32 = 0; i < {per}; i++) {{ let c = lane + i * {size}; {cond}"
                        f"{{ let v = load_x(r, c); {stmt} }} }}")

    shared = []

    def reduce_into(name: str, init: str, stmt: str, combine: str) -> None:
        body.append(f"  var acc_{name}: f32 = {init};")
        each(stmt.replace("ACC", f"acc_{name}"))
        acc = f"acc_{name}"
        if teams:
            shared.append(f"var<workgroup> red_{name}: array<f32, {size * per_group}>;")
            body.extend([
                # lanes 2^j apart swap and combine: after log2(min(team, subgroup)) steps every lane holds the
                # result over its aligned run of that many lanes (invocations fill subgroups in order)
                f"  for (var o = 1u; o < min({size}u, sgs); o <<= 1u) {{",
                f"    {acc} = {combine.format(acc, f'subgroupShuffleXor({acc}, o)')};",
                "  }",
                f"  if (sgs < {size}u) {{  // a team spans several subgroups: their results meet in memory",
                f"    if (lid % i32(sgs) == 0) {{ red_{name}[lid / i32(sgs)] = {acc}; }}",
                "    workgroupBarrier();",
                f"    let parts = {size} / i32(sgs);",
                f"    let part0 = (lid / {size}) * parts;",
                f"    {acc} = red_{name}[part0];",
                f"    for (var j = 1; j < parts; j++) {{ {acc} = {combine.format(acc, f'red_{name}[part0 + j]')}; }}",
                "  }",
                f"  let {name} = {acc};"])
            return
        body.append(f"  red[lid] = {acc};")
        body.append("  workgroupBarrier();")
        body.append(f"  for (var s: i32 = {size // 2}; s > 0; s >>= 1u) {{")
        body.append(f"    if (lid < s) {{ red[lid] = {combine.format('red[lid]', 'red[lid + s]')}; }}")
        body.append("    workgroupBarrier();")
        body.append("  }")
        body.append(f"  let {name} = red[0];")
        body.append("  workgroupBarrier();")

    op = core.op
    if op in ("softmax", "safe_softmax", "log_softmax"):
        reduce_into("mx", literal(float("-inf"), "f32"), "ACC = td_max(ACC, v);", "td_max({}, {})")
        reduce_into("se", "0.0", "ACC = ACC + exp(v - mx);", "{} + {}")
        out = {"softmax": "exp(v - mx) / se", "log_softmax": "v - mx - log(se)",
               # a row of -inf only (attention with every key masked): 0, where softmax gives NaN
               "safe_softmax": "select(exp(v - mx) / se, 0.0, bitcast<u32>(mx) == 0xff800000u)"}[op]
    elif op == "layer_norm":
        # the mean of the values less the row's first: a row of one value gets exactly that value as its mean,
        # as torch's Welford moments give (x - mean then 0: the output is the bias, 0 * inf weight NaN); a first
        # value past 1e18 (or not finite) shifts nothing, so no difference overflows where the values did not
        body.append("  let first = load_x(r, 0);")
        body.append(f"  let shift = select(0.0, first, abs(first) < {1e18});")
        reduce_into("total", "0.0", "ACC = ACC + (v - shift);", "{} + {}")
        body.append(f"  let mean = shift + total / {float(L)};")
        reduce_into("sq", "0.0", "ACC = ACC + (v - mean) * (v - mean);", "{} + {}")
        body.append(f"  let rstd0 = inverseSqrt(sq / {float(L)} + {float(eps)});")
        if L < TORCH_MOMENT_LANES:
            # torch CPU (RowwiseMoments) folds a row shorter than its vector width into 8 empty lanes: 0 * mean^2,
            # NaN where mean^2 overflows float32 (|mean| >= 2^64). Longer rows: an overflowing variance gives
            # rstd 0, so finite values map to 0, as torch's x * rstd - mean * rstd.
            body.append(f"  let rstd = select(rstd0, {literal(float('nan'), 'f32')}, abs(mean) >= {2.0 ** 64});")
        else:
            body.append("  let rstd = rstd0;")
        out = "(v - mean) * rstd"
    elif op == "rms_norm":
        reduce_into("sq", "0.0", "ACC = ACC + v * v;", "{} + {}")
        body.append(f"  let rs = inverseSqrt(sq / {float(L)} + {float(eps)});")
        out = "v * rs"
    else:
        raise AssertionError(op)
    each(f"store_out(r, c, {out});")
    if not teams:
        shared.append(f"var<workgroup> red: array<f32, {size}>;")
    variant = ("teams " if teams else "") + ("cached" if cached else "reread")
    return src.render("\n".join(body), size * per_group, "\n".join(shared), subgroups=teams), groups, variant


def _at(e: Expr, outer, row, inner) -> list[str]:
    """The multi-index of row r's element c."""
    n_in = math.prod(inner)
    o = e.let(f"r / {n_in}", "o") if n_in > 1 else "r"
    i = e.let(f"r % {n_in}", "i") if n_in > 1 else "0"
    return unravel(o, outer) + unravel("c", row) + unravel(i, inner)
