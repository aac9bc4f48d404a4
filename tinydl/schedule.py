"""The lazy fusion: from the recorded graph to a list of kernels, executed together.

realize(tensors)
  1. walk the unrealized graph behind the tensors (stopping at realized buffers) in a fixed order;
     its structure (ops, args, shapes, dtypes - not data) is the cache key of the plan;
  2. on a cache miss, partition it into kernels (FUSION RULES below), generate WGSL, get pipelines;
  3. bind this graph's buffers by position, encode the kernels and submit them (runtime.submit: in chunks, so
     the GPU starts while the rest is encoded), read-backs in the same submit as the last kernels.
"""
from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

import numpy as np

from . import checks, debug, dtypes, errors, profiler, runtime
from .kernels import build
from .ops import (BUFFER, CAT, CONST, CONV, ELEMENTWISE, GATHER, HEAVY_KINDS, IM2COL, INTERP, IOTA, MATMUL, POOL,
                  REDUCE, ROWNORM, VIEW, Node)
from .runtime import get_runtime

# -- FUSION RULES ---------------------------------------------------------------------------------------
# Inline kinds (ops.INLINE_KINDS: elementwise, views, constants, cat, gather, interpolation) are computed
# inside the kernel that reads them, and heavy kinds (ops.HEAVY_KINDS) are kernels, unless the rules below
# say otherwise. Heavy ops read their inputs through generated load functions, so views and single-reader
# elementwise producers are inlined there (a prologue), never copied first.
# An inline node read by more than one consumer becomes a kernel output (computed once), except these
# kinds, which are free to recompute.
RECOMPUTE_FREELY = {CONST, IOTA, VIEW}
# A node read twice is still recomputed (not given a kernel of its own) when it is a short formula over data
# (realized buffers, constants, heavy ops' results): e.g. batch norm's per-channel scale rsqrt(var + eps) *
# weight, read by both the scale and the shift, or var's x - mean (x.var(dim)), read by the square's two
# operands; a few ALU ops per element cost less than a dispatch plus a round trip through memory.
CHEAP_PARAM_OPS = 6
# Heavy ops absorb a chain of same-element-count elementwise consumers and reshapes as their epilogue.
EPILOGUE_HOSTS = {MATMUL, CONV, REDUCE, POOL, ROWNORM}
# A short sum (a split-K GEMM's sum over its slices) whose single reader chain leads into a row kernel is added
# up inside that kernel's loads instead of in a kernel of its own: the row kernel reads each element once (or
# once per pass), so the S loads cost less than a dispatch and a round trip (BERT's dense + residual ->
# LayerNorm: 24 kernels fewer per forward).
INLINE_SUM_MAX = 16
_HEAVY_LABEL = {MATMUL: "matmul", CONV: "conv2d", POOL: "pool", IM2COL: "im2col"}
# The first queue submit of a plan carries its first kernels up to about FIRST_SUBMIT_GPU_US of estimated GPU
# time (between SMALL_FIRST_SUBMIT and runtime.SUBMIT_FIRST kernels): enough to keep the GPU busy while the
# host encodes the next chunk, no more, so big kernels start sooner. The estimate is an H200-class rate
# (ESTIMATE_FLOPS, ESTIMATE_BYTES per second, plus a launch each); it only decides the first submit's size.
# On the H200 box (2026-11-21), a first submit of 8 against 32: MobileNetV2-b16 2.42 -> 2.32 ms, ResNet-50-b16
# 7.90 -> 7.76; but MobileNetV2-b1 1.20 -> 1.26 (its kernels, 5-10 us, cannot cover the next chunk's encoding).
FIRST_SUBMIT_GPU_US = 250.0
SMALL_FIRST_SUBMIT = 8
ESTIMATE_FLOPS, ESTIMATE_BYTES, ESTIMATE_LAUNCH_US = 30e12, 3e12, 3.0

_plans: dict[tuple, "Plan"] = {}


@dataclass
class KernelStep:
    pipeline: object
    out: int              # position of the output node in the walk order
    inputs: list[int]     # positions of the nodes bound at 1..
    grid: tuple
    name: str
    wgsl: str
    flops: int = 0        # for the profiler: arithmetic of the core op (2 per multiply-add) or of the chain
    bytes: int = 0        # buffers read and written
    checks: int = 0       # codes it may report (tinydl/checks.py): it binds the runtime's status buffer last


@dataclass
class Plan:
    steps: list[KernelStep]
    frees: list[list[int]] = field(default_factory=list)  # temporaries whose last reader is step k
    empty: list[int] = field(default_factory=list)        # zero-size outputs: a buffer, no kernel

    def __post_init__(self):
        self.names = [s.name for s in self.steps]  # for the kernel counters (debug.record)
        self.checked = [(s.name, s.checks) for s in self.steps if s.checks]  # kernels that may report
        # estimated GPU microseconds of the first k + 1 kernels (see FIRST_SUBMIT_GPU_US)
        self.est_us = list(itertools.accumulate(
            s.flops / ESTIMATE_FLOPS * 1e6 + s.bytes / ESTIMATE_BYTES * 1e6 + ESTIMATE_LAUNCH_US for s in self.steps))

    def first_submit(self) -> int:
        """How many kernels the plan's first queue submit carries (see FIRST_SUBMIT_GPU_US)."""
        needed = bisect.bisect_left(self.est_us, FIRST_SUBMIT_GPU_US) + 1
        return max(min(needed, runtime.SUBMIT_FIRST), min(SMALL_FIRST_SUBMIT, runtime.SUBMIT_FIRST))


def _walk(roots: list[Node]):
    """Post-order walk of the unrealized graph. Returns (order, signature)."""
    pos: dict[int, int] = {}
    order: list[Node] = []
    sig: list[tuple] = []
    for root in roots:
        stack = [(root, False)]
        while stack:
            n, expanded = stack.pop()
            if n.uid in pos:
                continue
            if n.kind == BUFFER:
                pos[n.uid] = len(order)
                order.append(n)
                sig.append(("L", n.shape, n.dtype.name))
                continue
            if not expanded:
                stack.append((n, True))
                for s in reversed(n.srcs):
                    if s.uid not in pos:
                        stack.append((s, False))
                continue
            pos[n.uid] = len(order)
            order.append(n)
            sig.append((n.kind, n.op, n.arg, n.shape, n.dtype.name, tuple(pos[s.uid] for s in n.srcs)))
    sig.append(("roots", tuple(pos[r.uid] for r in roots)))
    return order, tuple(sig), pos


def _plan(order: list[Node], roots: list[int], compile_kernels: bool = True) -> Plan:
    """The kernels of a walked graph (compile_kernels=False: their WGSL only, no pipelines)."""
    rt = get_runtime()
    index = {n.uid: i for i, n in enumerate(order)}
    consumers: list[list[int]] = [[] for _ in order]
    for i, n in enumerate(order):
        for s in n.srcs:
            consumers[index[s.uid]].append(i)
    root_set = set(roots)

    eff: dict[int, int] = {}

    def effective(i: int) -> int:
        """Readers of node i's values, counting through views."""
        if i not in eff:
            k = 1 if i in root_set else 0
            for c in consumers[i]:
                k += effective(c) if order[c].kind == VIEW and c not in root_set else 1
            eff[i] = k
        return eff[i]

    cost: dict[int, int | None] = {}

    def cheap_param(i: int) -> bool:
        """A short elementwise formula over data: realized buffers, constants, or heavy ops' results (which
        are kernel outputs anyway): e.g. batch norm's rsqrt(var + eps) * weight, read by scale and shift."""
        def ops(j):  # elementwise ops under j, or None if it reaches anything but data/consts/views
            if j not in cost:
                n = order[j]
                if n.kind in (BUFFER, CONST, IOTA) or n.kind in HEAVY_KINDS:
                    cost[j] = 0
                elif n.kind in (ELEMENTWISE, VIEW):
                    subs = [ops(index[s.uid]) for s in n.srcs]
                    cost[j] = None if None in subs else sum(subs) + (n.kind == ELEMENTWISE)
                else:
                    cost[j] = None
            return cost[j]
        try:
            c = ops(i)
        finally:
            ops = None  # ops refers to itself: a reference cycle holding order's nodes (their buffers) until gc
        return c is not None and c <= CHEAP_PARAM_OPS

    def feeds_row_kernel(i: int) -> bool:
        """Node i's one reader chain (elementwise ops, views) ends in a row kernel reading it."""
        cur = i
        while len(consumers[cur]) == 1 and cur not in root_set:
            c = consumers[cur][0]
            if order[c].kind == ROWNORM:
                return True
            if order[c].kind not in (ELEMENTWISE, VIEW):
                return False
            cur = c
        return False

    inline_sums = {i for i, n in enumerate(order) if n.kind == REDUCE and n.op == "sum" and not n.stored
                   and n.numel and n.srcs[0].numel // n.numel <= INLINE_SUM_MAX and feeds_row_kernel(i)
                   and type(n.arg) is tuple and n.dtype.is_floating_point}  # (not a staged or integer sum)
    out_nodes: set[int] = set(root_set)  # positions that are kernel outputs
    try:
        for i, n in enumerate(order):
            if n.kind == BUFFER or i in inline_sums:
                continue
            if n.kind in HEAVY_KINDS:
                out_nodes.add(i)
            elif n.stored:
                continue  # already data (a big tensor in pieces): read in place however many consumers it has
            elif n.kind not in RECOMPUTE_FREELY and effective(i) > 1 and not cheap_param(i):
                out_nodes.add(i)
    finally:  # the recursive closure refers to itself: a cycle holding order's nodes (their buffers) until gc
        effective = None

    # epilogues: a heavy op takes over the chain of same-shape, single-reader elementwise consumers
    core_of: dict[int, int] = {}   # kernel output position -> heavy core position
    claimed: set[int] = set()
    for i, n in enumerate(order):
        if n.kind not in EPILOGUE_HOSTS or i in root_set or i in inline_sums:
            continue
        cur = i
        while True:
            cs = consumers[cur]
            if len(cs) != 1 or cur in root_set or (cur != i and cur in out_nodes):
                break
            c = cs[0]
            cn = order[c]
            # same elements in the same order: elementwise ops, and reshapes (which keep linear order)
            follows = cn.kind == ELEMENTWISE or (cn.kind == VIEW and cn.op == "reshape")
            if not follows or cn.numel != n.numel or c in claimed:
                break
            claimed.add(c)
            cur = c
        if cur != i:
            out_nodes.discard(i)
            out_nodes.add(cur)
            core_of[cur] = i

    _respect_binding_limit(order, index, out_nodes, core_of, rt.max_storage_buffers)

    materialized_uids = {order[i].uid for i in out_nodes}
    steps, last_read, empty = [], {}, []
    for i in sorted(out_nodes):
        out = order[i]
        if out.numel == 0:
            empty.append(i)
            continue
        core = order[core_of[i]] if i in core_of else (out if out.kind in HEAVY_KINDS else None)
        ck = build(out, core, lambda nd: nd.uid in materialized_uids)
        inputs = [index[nd.uid] for nd in ck.inputs]
        name = _kernel_name(order, index, out, core, materialized_uids) + f" [{ck.variant}]"
        nbytes = sum(order[p].numel * order[p].dtype.itemsize for p in inputs) + out.numel * out.dtype.itemsize
        pipeline = rt.pipeline(ck.wgsl, name) if compile_kernels else None
        steps.append(KernelStep(pipeline, i, inputs, rt.grid(ck.workgroups), name, ck.wgsl, _flops(core, out, name),
                                nbytes, ck.checks))
        for p in inputs:
            last_read[p] = len(steps) - 1
    frees = [[] for _ in steps]
    for p, k in last_read.items():
        if p in out_nodes and p not in root_set:
            frees[k].append(p)
    return Plan(steps, frees, empty)


def _reads(order, index, out_nodes, core_pos, out_pos) -> tuple[set[int], list[int]]:
    """Buffers a kernel reads, and the inline nodes on the way (candidates to materialize)."""
    reads, inline, seen = set(), [], set()
    stack = [out_pos]
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        n = order[p]
        if p != out_pos and p != core_pos and (n.kind == BUFFER or p in out_nodes):
            reads.add(p)
            continue
        if p != out_pos and p != core_pos:
            inline.append(p)
        stack.extend(index[s.uid] for s in n.srcs)
    return reads, inline


def _respect_binding_limit(order, index, out_nodes, core_of, limit):
    """Split kernels that would bind more storage buffers than the adapter allows (output included)."""
    changed = True
    while changed:
        changed = False
        for o in sorted(out_nodes):
            core = core_of.get(o)
            if core is None and order[o].kind in HEAVY_KINDS:
                core = o
            reads, inline = _reads(order, index, out_nodes, core, o)
            status = any(checks.may_report(order[p]) for p in [o, *inline] + ([core] if core is not None else []))
            if len(reads) + 1 + status <= limit:  # + the output, + the status buffer of a kernel with checks
                continue
            # materialize the inline subexpression that reads the most buffers (it becomes its own kernel)
            best, best_n = None, 1
            for p in inline:
                if core is not None and _depends_on(order, index, p, core, out_nodes):
                    continue
                r, _ = _reads(order, index, out_nodes, None, p)
                # (never a view: its source reads the same buffers, and is not broadcast to a larger shape)
                fits = order[p].numel * order[p].dtype.itemsize <= get_runtime().max_binding_size
                if len(r) > best_n and order[p].kind not in (CONST, IOTA, VIEW) and fits:
                    best, best_n = p, len(r)
            if best is None and core is not None and core != o:
                # the epilogue alone reads too many buffers: cut it off, the heavy op stores its own result
                # and the chain becomes an elementwise kernel (split further by this loop if needed)
                out_nodes.add(core)
                del core_of[o]
                changed = True
                break
            if best is None:
                raise RuntimeError(f"a kernel computing {order[o]} must read {len(reads)} buffers, more than the "
                                   f"{limit - 1} this adapter allows per shader stage (plus the output)")
            out_nodes.add(best)
            changed = True
            break


def _depends_on(order, index, p, target, out_nodes) -> bool:
    stack, seen = [p], set()
    while stack:
        q = stack.pop()
        if q == target:
            return True
        if q in seen or (q in out_nodes and q != p):
            continue
        seen.add(q)
        stack.extend(index[s.uid] for s in order[q].srcs)
    return False


def _kernel_name(order, index, out, core, materialized_uids) -> str:
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
    labels = [op for _, op in sorted(ops)]
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


def _flops(core: Node | None, out: Node, name: str) -> int:
    """Arithmetic of a kernel: its heavy op's multiply-adds (x2) or reads, plus one op per fused element op."""
    ops = name.split(" ")[0].count("+") + (core is None)
    base = 0
    if core is not None and core.kind == MATMUL:
        B, M, K = core.srcs[0].shape
        base = 2 * B * M * K * core.shape[2]
    elif core is not None and core.kind == CONV:
        x, w = core.srcs
        base = 2 * core.numel * (x.shape[1] // core.arg.groups) * w.shape[2] * w.shape[3]
    elif core is not None and core.kind in (REDUCE, POOL):
        base = core.srcs[0].numel
    elif core is not None and core.kind == ROWNORM:
        base = 5 * core.numel  # two reductions and the normalization, a few ops per element
    return base + ops * out.numel


class PrivateBuffers:
    """The intermediates of one captured plan (tinydl.jit), owned by the capture: taken and given back in
    the plan's order from per-size stacks (a buffer is reused once its last reader has run), once, when
    the capture binds its plan (BoundPlan)."""

    def __init__(self):
        self.owned: dict[int, list] = {}   # size -> buffers in creation order
        self._free: dict[int, list] = {}

    def take(self, rt, nbytes: int, describe: str):
        stack = self._free.get(nbytes)
        if stack:
            return stack.pop()
        buf = rt.alloc(nbytes, describe)
        self.owned.setdefault(nbytes, []).append(buf)
        return buf

    def give(self, buf) -> None:
        self._free.setdefault(buf.nbytes, []).append(buf)


def _describe(n: Node) -> str:
    return f"result of shape {list(n.shape)}"


def bind(order: list[Node], plan: Plan, roots: list[int], private: PrivateBuffers | None = None):
    """Buffers for the plan's results and the dispatch list [(pipeline, [gpu buffers], grid)]: the roots get
    fresh buffers, temporaries come from the pool (or from `private`) and go back after their last reader."""
    rt = get_runtime()
    bufs: dict[int, object] = {}
    dispatches = []
    root_set = set(roots)
    for p in plan.empty:
        bufs[p] = rt.alloc(0)
    for k, step in enumerate(plan.steps):
        out = order[step.out]
        if step.out not in bufs:
            nbytes = out.numel * out.dtype.itemsize
            temp = private is not None and step.out not in root_set
            try:
                bufs[step.out] = private.take(rt, nbytes, _describe(out)) if temp else rt.alloc(nbytes, _describe(out))
            except errors.KernelError as e:  # out of memory, device lost: name the kernel that needed it
                raise e.about([step.name]) from e
        gpus = [bufs[step.out].gpu]
        for p in step.inputs:
            n = order[p]
            gpus.append(n.buffer.gpu if n.kind == BUFFER else bufs[p].gpu)
        if step.checks:
            gpus.append(rt.status.gpu)
        dispatches.append((step.pipeline, gpus, step.grid))
        for p in plan.frees[k]:
            if private is not None:
                private.give(bufs.pop(p))
            else:
                rt.release(bufs.pop(p).gpu)
    return bufs, dispatches


def _execute(order: list[Node], plan: Plan, roots: list[int], readback: list[int], plan_s: float = 0.0):
    rt = get_runtime()
    # data from a result whose checks failed on the GPU (tinydl/checks.py): raise again, never a wrong number
    tainted = rt.status.tainted([n.buffer for n in order if n.kind == BUFFER]) if rt.status.bad else None
    if tainted is not None and readback:
        raise tainted[0](tainted[1])
    bufs, dispatches = bind(order, plan, roots)
    reads = []
    for p in readback:
        n = order[p]
        buf = n.buffer if n.kind == BUFFER else bufs[p]
        reads.append((buf.gpu, n.numel * n.dtype.itemsize))
    try:
        data = _submit(plan, dispatches, reads, plan_s, [bufs[p] for p in set(roots) - set(readback) if p in bufs])
    except BaseException:  # nothing is marked realized: the buffers go back, whatever they hold
        for b in bufs.values():
            rt.release(b.gpu)
        raise
    for p in set(roots):
        n = order[p]
        if n.kind != BUFFER:
            n.become_buffer(rt.adopt(bufs[p]))
            if tainted is not None:
                rt.status.bad[n.buffer] = tainted
    return data


def _submit(plan: Plan, dispatches: list, reads: list, plan_s: float, results=()) -> list:
    """Run the dispatches (and read-backs) on the GPU; tell the profiler and the kernel counters. results: the
    buffers computed and not read back (suspects until the status is read, if the plan has checked kernels)."""
    rt = get_runtime()
    prof = profiler.active()
    status = (plan.checked, results) if plan.checked else None
    if prof is None:
        data = rt.submit(dispatches, reads, first=plan.first_submit(), checks=status, names=plan.names)
    else:
        times: list[float] = []
        t0 = profiler.now()
        data = rt.submit(dispatches, reads, timings=times, first=plan.first_submit(), checks=status,
                         names=plan.names)
        profiler.record(plan.steps, times, plan_s, profiler.now() - t0, bool(times) or not dispatches)
    _report(plan)
    return data


def _report(plan: Plan) -> None:
    """Tell the kernel counters (and the TINYDL_DEBUG printout) which kernels a realization dispatched."""
    debug.record(plan.names)
    if debug.LEVEL:
        for s in plan.steps:
            print(f"tinydl kernel: {s.name}")
            if debug.LEVEL >= 2:
                print(s.wgsl)


# A jit replay submits a command buffer encoded before it was called, and encodes the next replay's while
# the GPU runs this one (BoundPlan.run): the host's encoding (~5 us per kernel, wgpu's pass validation at
# finish() most of it) leaves the critical path. Off: each replay encodes its own kernels, in chunks.
PRE_ENCODE = True


class BoundPlan:
    """A captured plan (tinydl.jit) with every buffer that is the same in each replay bound once: weights
    and intermediates (owned by the capture, so the same buffers always meet the same kernels and find their
    bind groups cached). A replay submits the command buffer the previous replay encoded, reading copies of
    its inputs, and encodes the next (PRE_ENCODE); profiled, it puts its inputs' buffers and fresh output
    buffers into the kernels that touch them and submits those. No walk over the graph, no buffer bookkeeping
    per kernel."""

    def __init__(self, order: list[Node], plan: Plan, roots: list[int], inputs: list[int]):
        self.plan = plan
        self.private = PrivateBuffers()
        bufs, dispatches = bind(order, plan, roots, self.private)
        rt = get_runtime()
        for r in roots:  # outputs: fresh in every replay (the caller may keep the previous ones)
            rt.release(bufs[r].gpu)
        self.outputs = [(r, order[r].numel * order[r].dtype.itemsize, _describe(order[r])) for r in roots]
        varying = set(roots) | set(inputs)
        # the realized leaves it reads (weights): held, so their buffers never go back to the pool under it
        self.leaves = [n.buffer for p, n in enumerate(order) if n.kind == BUFFER and p not in varying]
        self.dispatches, self.patches = [], []
        for k, (step, (pipeline, gpus, grid)) in enumerate(zip(plan.steps, dispatches)):
            slots = [(i, p) for i, p in enumerate([step.out, *step.inputs]) if p in varying]
            for i, _ in slots:
                gpus[i] = None  # bound per replay; holding the first call's buffer would keep it from the pool
            self.dispatches.append((pipeline, gpus, grid))
            if slots:
                self.patches.append((k, slots))

        # pre-encoded replays read their inputs from buffers of their own, copied into first (see PRE_ENCODE)
        self.input_copies = {p: rt.alloc(order[p].numel * order[p].dtype.itemsize, "jit input") for p in inputs}
        self._next = None  # (command buffer, {root position: its fresh Buffer}) of the next replay

    def _dispatches(self, bufs: dict[int, object]) -> list:
        """The dispatch list with the varying buffers (inputs, outputs) from bufs: position -> Buffer."""
        dispatches = list(self.dispatches)
        for k, slots in self.patches:
            pipeline, gpus, grid = dispatches[k]
            gpus = list(gpus)
            for i, p in slots:
                gpus[i] = bufs[p].gpu
            dispatches[k] = (pipeline, gpus, grid)
        return dispatches

    def _encode_next(self):
        rt = get_runtime()
        outs = {r: rt.alloc(nbytes, describe) for r, nbytes, describe in self.outputs}
        try:
            return rt.encode(self._dispatches({**self.input_copies, **outs}), self.plan.names), outs
        except BaseException:
            for b in outs.values():
                rt.release(b.gpu)
            raise

    def run(self, inputs: dict[int, object], outputs: list[Node], plan_s: float) -> None:
        """inputs: position -> Buffer; outputs: the nodes of the roots, in order, which become buffers."""
        rt = get_runtime()
        pre_encoded = PRE_ENCODE and profiler.active() is None
        if pre_encoded:
            command_buffer, bufs = self._next or self._encode_next()
            self._next = None
        else:
            bufs = {r: rt.alloc(nbytes, describe) for r, nbytes, describe in self.outputs}
        try:
            if pre_encoded:
                rt.submit_encoded(command_buffer, [(inputs[p].gpu, self.input_copies[p].gpu, inputs[p].nbytes)
                                                   for p in inputs],
                                  checks=(self.plan.checked, list(bufs.values())) if self.plan.checked else None,
                                  names=self.plan.names)
                _report(self.plan)
            else:
                _submit(self.plan, self._dispatches({**inputs, **bufs}), [], plan_s, list(bufs.values()))
        except BaseException:  # no output is marked realized; its buffers go back
            for b in bufs.values():
                rt.release(b.gpu)
            raise
        tainted = rt.status.tainted(inputs.values()) if rt.status.bad else None  # see _execute
        for (r, _, _), node in zip(self.outputs, outputs):
            node.become_buffer(rt.adopt(bufs[r]))
            if tainted is not None:
                rt.status.bad[node.buffer] = tainted
        if pre_encoded:
            try:
                self._next = self._encode_next()
            except errors.KernelError:
                pass  # this call's results are good; the next replay encodes its own and raises there


@runtime.locked
def realize(*tensors, readback=False):
    """Compute the given tensors (one plan). With readback=True returns their bytes (uint8 arrays)."""
    nodes = [t.node for t in tensors]
    for n in nodes:
        _alias_reshape(n)
    pending = [n for n in nodes if not n.stored]
    if not pending and not readback:
        return None
    t0 = profiler.now()
    order, sig, pos = _walk(pending or nodes)
    roots = [pos[n.uid] for n in pending]
    plan = plan_for(order, sig, roots)
    reads = [pos[n.uid] for n in nodes] if readback else []
    try:
        return _execute(order, plan, roots, reads, profiler.now() - t0)
    except errors.KernelError:
        drop_plan(sig, plan)
        raise


def drop_plan(sig: tuple, plan: Plan) -> None:
    """A plan whose execution failed is not kept as good: the next call plans (and compiles) afresh."""
    if _plans.get(sig) is plan:
        del _plans[sig]


def plan_for(order: list[Node], sig: tuple, roots: list[int]) -> Plan:
    """The cached plan of a graph structure (planning and code generation only on a miss)."""
    plan = _plans.get(sig)
    if plan is None:
        plan = _plans[sig] = _plan(order, roots)
        debug.stats["plans"] += 1
    return plan


walk = _walk
execute = _execute


@runtime.locked
def kernels_for(t):
    """The dispatches that compute tensor t, planned afresh (not cached: tuning plans one op under each variant
    it times) and bound to buffers, not submitted; and t's output buffer, which the caller gives back
    (runtime.release) once done with the dispatches (tinydl.tuning)."""
    order, _sig, pos = _walk([t.node])
    root = pos[t.node.uid]
    plan = _plan(order, [root])
    bufs, dispatches = bind(order, plan, [root])
    return dispatches, bufs[root].gpu


def shaders_for(t) -> list[str]:
    """The WGSL of the kernels that would compute tensor t, nothing compiled (tuning compiles its candidates'
    shaders all at once: runtime.Runtime.compile_all)."""
    order, _sig, pos = _walk([t.node])
    return [step.wgsl for step in _plan(order, [pos[t.node.uid]], compile_kernels=False).steps]


def _alias_reshape(n: Node) -> None:
    """A reshape of realized data is the same bytes: share the buffer instead of running a copy."""
    base = n
    while base.kind == VIEW and base.op == "reshape":
        base = base.srcs[0]
    if base is not n and base.kind == BUFFER:
        n.become_buffer(base.buffer)


def stored_leaves(n: Node) -> list[Node]:
    """The buffers behind a stored node (itself, or the pieces of a tensor larger than one binding), in order."""
    return [n] if n.kind == BUFFER else [b for s in n.srcs for b in stored_leaves(s)]


def _read_pieces(n: Node) -> np.ndarray:
    from .tensor import Tensor
    if n.kind == BUFFER:
        return read(Tensor(n))
    if n.kind == CAT:
        return np.concatenate([_read_pieces(s) for s in n.srcs], axis=n.arg)
    return _read_pieces(n.srcs[0]).reshape(n.shape)


HOST_READS = 0  # read-backs so far: a jit capture is not kept when fn read values (its graph may depend on them)


@runtime.locked
def read(t) -> np.ndarray:
    """t's values on the host: realized and copied back in the same submit."""
    global HOST_READS
    HOST_READS += 1
    if t.node.stored and t.node.kind != BUFFER:  # stored in pieces: read them, join on the host
        return _read_pieces(t.node)
    data = realize(t, readback=True)[0]
    dt = t.dtype
    arr = data.view(np.dtype(dt.storage.replace("f16", "float16").replace("f32", "float32")
                             .replace("i32", "int32").replace("u32", "uint32")))
    arr = arr[: t.numel()].reshape(t.shape)  # a view of the read-back copy, which nothing else holds
    return arr.astype(np.bool_) if dt == dtypes.bool_ else arr


@runtime.locked
def clear_cache() -> None:
    _plans.clear()
