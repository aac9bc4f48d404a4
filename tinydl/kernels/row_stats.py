"""Statistics a gemv computes for itself: a small float sum (a norm's mean square over the hidden size, a few
outputs) that only the gemv's operand loads read is reduced by each of its workgroups before the K loop
(schedule/fuse.py, stats_in_gemvs), instead of in a reduce kernel of its own.

The loads meet the sum as an inline REDUCE node (expr.Expr.value) and ask KernelSource.stat for it: the sum's
outputs land in workgroup memory, `td_stat<j>[output's flat index]`, and `prologue` writes the code that fills
them. All of the sum's outputs are computed (there are at most fuse.GEMV_STAT_OUTPUTS), so a load reads the right
one whatever the index arithmetic between the gemv's rows and the sum's outputs.
"""
from __future__ import annotations

import itertools

from .expr import Expr, KernelSource, unravel


def prologue(src: KernelSource, threads: int, subgroups: bool = False) -> tuple[list[str], str]:
    """The statements (at the top of main, all `threads` of the workgroup taking part) that fill each statistic
    the kernel's loads asked for, and the workgroup arrays they use. Each thread adds up a strided share of each
    output's elements; the shares meet in a tree in workgroup memory (the order of the reduce kernel it replaces),
    or, with subgroups (main's `sgs`), in a subgroupAdd each, whose results one thread adds up: two barriers
    instead of a tree's eight."""
    if not src.stats:
        return [], ""
    lines: list[str] = []
    shared = []
    width = max(n.numel for n in src.stats)
    shared.append(f"var<workgroup> td_pre: array<f32, {width * threads}>;")
    for j, node in enumerate(src.stats):
        x, axes = node.srcs[0], node.arg
        outputs, length = node.numel, x.numel // node.numel
        shared.append(f"var<workgroup> td_stat{j}: array<f32, {outputs}>;")
        e = Expr(src, lines)

        def each(line: str) -> None:  # the line for every output o (its share of td_pre starts at o * threads)
            for o in range(outputs):
                e.emit(line.format(s=f"td_s{j}_{o}", pre=o * threads, o=o))
        each("var {s} = 0.0;")
        reduced = [x.shape[a] for a in axes]
        with e.scope(f"for (var r: i32 = lid; r < {length}; r += {threads})"):
            at = dict(zip(axes, unravel("r", reduced)))
            kept = [1 if a in at else s for a, s in enumerate(x.shape)]
            for o, out_idx in enumerate(itertools.product(*(range(s) for s in kept))):
                idx = [at.get(a, str(i)) for a, i in enumerate(out_idx)]
                e.emit(f"td_s{j}_{o} += {e.value(x, idx)};")
        if subgroups:  # (invocations fill subgroups in order: subgroup lid / sgs)
            each("{s} = subgroupAdd({s});")
            with e.scope("if (lid % i32(sgs) == 0)"):
                each("td_pre[{pre} + lid / i32(sgs)] = {s};")
            e.emit("workgroupBarrier();")
            with e.scope("if (lid == 0)"):
                with e.scope(f"for (var p: i32 = 1; p < {threads} / i32(sgs); p++)"):
                    each("td_pre[{pre}] += td_pre[{pre} + p];")
        else:
            each("td_pre[{pre} + lid] = {s};")
            e.emit("workgroupBarrier();")
            with e.scope(f"for (var h: i32 = {threads // 2}; h > 0; h >>= 1u)"):
                with e.scope("if (lid < h)"):
                    each("td_pre[{pre} + lid] += td_pre[{pre} + lid + h];")
                e.emit("workgroupBarrier();")
        with e.scope("if (lid == 0)"):
            each(f"td_stat{j}[{{o}}] = td_pre[{{pre}}];")
        e.emit("workgroupBarrier();")
    return lines, "\n".join(shared)
