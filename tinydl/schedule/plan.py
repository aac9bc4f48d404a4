"""Plans: the kernels of a graph structure, cached by its signature. On a miss the graph is lowered (lower.py),
fused (fuse.py), and each kernel group gets its WGSL (kernels.build), a name, its FLOPs and bytes, and (with a
runtime) its pipeline."""
from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

from ..errors import DeviceLostError, KernelError
from ..kernels import build
from ..options import Options, current as current_options
from ..ops import (BUFFER, CAT, CONV, ELEMENTWISE, GATHER, IM2COL, INTERP, MATMUL, POOL, RECURRENCE, REDUCE, ROWNORM,
                   SAMPLE, SORT, WRITE_SLOT, Node)
from .fuse import Fusion, fuse
from .lower import lower
from .sizes import SizeLifter
from .target import Target

_HEAVY_LABEL = {MATMUL: "matmul", CONV: "conv2d", POOL: "pool", IM2COL: "im2col", SAMPLE: "sample", SORT: "sort",
                RECURRENCE: "linear_recurrence", WRITE_SLOT: "write_slot"}
# The first queue submit of a plan carries its first kernels up to about FIRST_SUBMIT_GPU_US of estimated GPU
# time (between SMALL_FIRST_SUBMIT and Options.submit_first kernels): enough to keep the GPU busy while the
# host encodes the next chunk, no more, so big kernels start sooner. The estimate is an H200-class rate
# (ESTIMATE_FLOPS, ESTIMATE_BYTES per second, plus a launch each); it only decides the first submit's size
# (docs/benchmarks.md, "first submit").
FIRST_SUBMIT_GPU_US = 250.0
SMALL_FIRST_SUBMIT = 8
ESTIMATE_FLOPS, ESTIMATE_BYTES, ESTIMATE_LAUNCH_US = 30e12, 3e12, 3.0
# the kernel families seen, whose shaders read their varying sizes at run time (sizes.py; schedule.clear_cache)
SIZES = SizeLifter()
_PLAN_IDS = itertools.count(1)


@dataclass
class KernelStep:
    pipeline: object
    out: int              # key of its output: the position in the walk order of the node it computes, or (a node
    inputs: list[int]     # lowering made) a key past the walk; inputs: the keys of the nodes bound at 1..
    grid: tuple
    name: str
    wgsl: str
    flops: int = 0        # for the profiler: arithmetic of the core op (2 per multiply-add) or of the chain
    bytes: int = 0        # buffers read and written
    checks: int = 0       # codes it may report (tinydl/checks.py): it binds the runtime's status buffer last
    out_bytes: int = 0    # the output's size, and its shape (for messages)
    out_shape: tuple = ()
    sizes: tuple = ()     # the values its shader reads at run time (sizes.py), bound last as a uniform buffer
    sizes_gpu: object = None


@dataclass
class Plan:
    steps: list[KernelStep]
    frees: list[list[int]] = field(default_factory=list)  # temporaries whose last reader is step k
    empty: list[int] = field(default_factory=list)        # zero-size outputs: a buffer, no kernel
    key: tuple = ()                                       # what the plan cache holds it under
    ran: bool = False                                     # run once (its first run may compile: runtime.submit)
    # results computed in the storage of a donated input (an in-place slot write, slots.py): result key -> input key
    aliases: dict[int, int] = field(default_factory=dict)

    def __post_init__(self):
        self.names = [s.name for s in self.steps]  # for the kernel counters (debug.record)
        self.checked = [(s.name, s.checks) for s in self.steps if s.checks]  # kernels that may report
        # estimated GPU microseconds of the first k + 1 kernels (see FIRST_SUBMIT_GPU_US)
        self.est_us = list(itertools.accumulate(
            s.flops / ESTIMATE_FLOPS * 1e6 + s.bytes / ESTIMATE_BYTES * 1e6 + ESTIMATE_LAUNCH_US for s in self.steps))

    def first_submit(self, submit_first: int | None = None) -> int:
        """How many kernels the plan's first queue submit carries (see FIRST_SUBMIT_GPU_US), at most
        submit_first (default: the current Options.submit_first)."""
        if submit_first is None:
            submit_first = current_options().submit_first
        needed = bisect.bisect_left(self.est_us, FIRST_SUBMIT_GPU_US) + 1
        return max(min(needed, submit_first), min(SMALL_FIRST_SUBMIT, submit_first))


def build_plan(order: list[Node], roots: list[int], target: Target, opts: Options, chooser, runtime=None) -> Plan:
    """The kernels of a walked graph: lowered, fused, their WGSL, and (with a runtime) their pipelines, the new
    ones compiled at once on worker threads (Runtime.compile_all; a progress bar on a terminal)."""
    low = lower(order, roots, target, opts, chooser)
    plan = steps_of(fuse(low.order, low.roots, target, opts.stats_in_gemv), low.keys, target, opts)
    if runtime is not None:
        families, plan_id = {}, next(_PLAN_IDS)
        # a GPU reads sizes at run time for every family met at another shape; a CPU driver (slower with sizes it
        # did not compile in) only for a plan's crowded families, whose compiles would cost far more, and never
        # the numbers it divides by
        across_plans = opts.runtime_sizes if opts.runtime_sizes is not None else not target.cpu
        if opts.runtime_sizes is not False:
            for crowd in SIZES.crowds([s.wgsl for s in plan.steps], opts.plan_family_max, not across_plans):
                SIZES.crowd(crowd, plan_id, opts.pipeline_cache_size)
            for s in plan.steps:
                baked = s.wgsl
                s.wgsl, s.sizes, key = SIZES.resolve(baked, plan_id, opts.pipeline_cache_size, across_plans)
                if s.sizes:
                    families[id(s)] = key, baked
        runtime.compile_all([s.wgsl for s in plan.steps], opts)
        for s in plan.steps:  # compiled by now; a shader that failed raises here, naming its kernel
            if id(s) in families:
                s.pipeline = _lifted_pipeline(runtime, s, *families[id(s)])
            else:
                s.pipeline = runtime.pipeline(s.wgsl, s.name)
    return plan


def _lifted_pipeline(runtime, step: KernelStep, key: str, baked: str):
    """The pipeline of a step whose shader reads sizes at run time, and their uniform buffer; where that shader
    does not compile (an untyped literal its context needed as another type), its family is baked from now on."""
    try:
        pipeline = runtime.pipeline(step.wgsl, step.name)
    except DeviceLostError:
        raise
    except KernelError:
        SIZES.refuse(key)
        step.wgsl, step.sizes = baked, ()
        return runtime.pipeline(baked, step.name)
    step.sizes_gpu = runtime.sizes_buffer(step.sizes)
    return pipeline


def steps_of(fusion: Fusion, keys: list[int], target: Target, opts: Options) -> Plan:
    """A kernel step per group of the fusion (keys: the plan's key of each position of the fused graph), without
    pipelines (build_plan gets them)."""
    order, index = fusion.order, fusion.index
    materialized_uids = {order[i].uid for i in fusion.materialized}
    rounded_uids = {order[i].uid for i in fusion.rounded}
    steps, last_read, empty, aliases = [], {}, [], {}
    for i, c in fusion.groups:
        out = order[i]
        if out.numel == 0:
            empty.append(keys[i])
            continue
        core = order[c] if c is not None else None
        ck = build(out, core, lambda nd: nd.uid in materialized_uids, opts, rounded_uids)
        inputs = [index[nd.uid] for nd in ck.inputs]
        fused = fused_ops(out, core, materialized_uids)
        name = kernel_name(out, core, fused) + f" [{ck.variant}]"
        out_bytes = out.numel * out.dtype.itemsize
        written = out_bytes
        if core is not None and core.kind == WRITE_SLOT and core.arg[1]:
            aliases[keys[i]] = keys[index[core.srcs[0].uid]]
            written = core.srcs[1].numel * out.dtype.itemsize
        nbytes = sum(order[p].numel * order[p].dtype.itemsize for p in inputs) + written
        steps.append(KernelStep(None, keys[i], [keys[p] for p in inputs],
                                target.grid(ck.workgroups), name, ck.wgsl, flops(core, out, fused), nbytes,
                                ck.checks, out_bytes, out.shape))
        for p in inputs:
            last_read[p] = len(steps) - 1
    frees = [[] for _ in steps]
    root_set = set(fusion.roots)
    for p, k in last_read.items():
        if p in fusion.materialized and p not in root_set and keys[p] not in aliases:
            frees[k].append(keys[p])  # (an aliased result's storage is its donated input's)
    return Plan(steps, frees, empty, aliases=aliases)


def fused_ops(out: Node, core: Node | None, materialized_uids: set[int]) -> list[str]:
    """The ops a kernel computes besides its core (elementwise ops, cat, gather, interpolation), in the order they
    were built (their nodes' uids)."""
    ops, seen = [], set()
    stack = [out]
    while stack:
        n = stack.pop()
        if n.uid in seen or n is core:
            continue
        seen.add(n.uid)
        if n is not out and (n.kind == BUFFER or n.uid in materialized_uids):
            continue
        if n.kind == ELEMENTWISE:
            ops.append((n.uid, n.op if n.op != "cast" else f"cast_{n.dtype.name}"))
        elif n.kind in (CAT, GATHER, INTERP):
            ops.append((n.uid, n.kind))
        stack.extend(n.srcs)
    return [op for _, op in sorted(ops)]


def kernel_name(out: Node, core: Node | None, fused: list[str]) -> str:
    """'conv2d+add+relu 1x64x56x56': the core (if any), the fused ops, the output's shape."""
    labels = fused
    if core is not None:
        head = _HEAVY_LABEL.get(core.kind) or (core.op if core.kind == ROWNORM else f"{core.kind}_{core.op}")
        if core.kind == POOL:
            head = f"{core.arg.kind}_pool2d" + ("_adaptive" if core.arg.adaptive else "")
        if core.kind == CONV and core.arg.transposed:
            head = "conv_transpose2d"
        labels = [head] + labels
    elif not labels:
        labels = ["copy"]
    return "+".join(labels) + " " + "x".join(map(str, out.shape or (1,)))


def flops(core: Node | None, out: Node, fused: list[str]) -> int:
    """Arithmetic of a kernel: its heavy op's multiply-adds (x2) or reads, plus one op per output element for each
    fused op (a kernel with neither, a copy, counts one)."""
    base = 0
    if core is not None and core.kind == MATMUL:
        B, M, K = core.srcs[0].shape
        base = 2 * B * M * K * core.shape[2]
    elif core is not None and core.kind == CONV:
        x, w = core.srcs
        channels = (core.arg.x_shape if core.arg.im2col else x.shape)[1]  # (an IM2COL node's are its windows)
        base = 2 * core.numel * (channels // core.arg.groups) * w.shape[2] * w.shape[3]
    elif core is not None and core.kind in (REDUCE, POOL):
        base = core.srcs[0].numel
    elif core is not None and core.kind == ROWNORM:
        base = 5 * core.numel  # two reductions and the normalization, a few ops per element
    elif core is not None and core.kind == RECURRENCE:
        base = 2 * core.numel  # a multiply and an add per state
    return base + max(len(fused), core is None) * out.numel
