"""From a scheduled kernel (its stored node, the heavy op at its core if any, which nodes are read
from buffers) to WGSL, by kernel kind."""
from __future__ import annotations

from dataclasses import dataclass

from ..ops import CONV, IM2COL, MATMUL, POOL, RECURRENCE, REDUCE, ROWNORM, SAMPLE, SORT, WRITE_SLOT, Node
from ..options import Options
from . import gemm, gemm_conv, recurrence, reduce, rownorm, sample, slot, sort, window
from .elementwise import elementwise
from .expr import KernelSource


@dataclass
class CompiledKernel:
    wgsl: str
    inputs: list[Node]  # bound at 1.. in this order (binding 0 is the output)
    workgroups: int
    variant: str
    checks: int = 0  # codes the kernel may report (tinydl/checks.py): it binds the status buffer after its inputs


def conv_uses_gemm(cout_per_group: int, transposed: bool, opts: Options) -> bool:
    """Lowering's rule (schedule/lower.py) for a conv's kernel: implicit GEMM, or direct (fewer output channels
    per group than Options.direct_conv_max_cout_per_group)."""
    return transposed or cout_per_group >= opts.direct_conv_max_cout_per_group


def build(out: Node, core: Node | None, materialized, opts: Options, rounded_uids=frozenset()) -> CompiledKernel:
    """rounded_uids: inline nodes whose float16 values are rounded where they are computed, as the store of the
    kernel they came out of rounded them (a gemv's statistic, schedule/fuse.py stats_in_gemvs)."""
    src = KernelSource(lambda n: n is not out and n is not core and materialized(n), out)
    src.rounded_uids = rounded_uids
    if core is None:
        wgsl, groups = elementwise(src, opts)
        variant = "elementwise"
    elif core.kind == REDUCE:
        wgsl, groups, variant = reduce.reduce(src, core, opts)
    elif core.kind == MATMUL:
        wgsl, groups, variant = gemm.matmul(src, core, opts)
    elif core.kind == CONV:
        if core.arg.tile is not None:  # lowering chose a GEMM variant for it
            wgsl, groups, variant = gemm_conv.conv(src, core, opts)
        else:
            wgsl, groups, variant = window.direct_conv(src, core, opts)
    elif core.kind == POOL:
        wgsl, groups, variant = window.pool(src, core)
    elif core.kind == IM2COL:
        wgsl, groups, variant = window.im2col(src, core, opts)
    elif core.kind == ROWNORM:
        wgsl, groups, variant = rownorm.rownorm(src, core, opts)
    elif core.kind == SAMPLE:
        wgsl, groups, variant = sample.sample(src, core)
    elif core.kind == SORT:
        wgsl, groups, variant = sort.sort(src, core)
    elif core.kind == RECURRENCE:
        wgsl, groups, variant = recurrence.recurrence(src, core)
    elif core.kind == WRITE_SLOT:
        wgsl, groups, variant = slot.write_slot(src, core)
    else:
        raise AssertionError(core)
    return CompiledKernel(wgsl, src.inputs, groups, variant, int(src.checks))
