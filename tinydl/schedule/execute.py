"""Running a plan: bind this graph's buffers by position, encode and submit the kernels (runtime.submit: in
chunks, so the GPU starts while the rest is encoded), read-backs in the same submit as the last kernels."""
from __future__ import annotations

from .. import counters, errors, profiler
from ..ops import BUFFER, Node
from ..options import current as current_options
from ..runtime import get_runtime
from .plan import Plan


def describe(shape: tuple) -> str:
    return f"result of shape {list(shape)}"


def bind(order: list[Node], plan: Plan, roots: list[int], private=None):
    """Buffers for the plan's results and the dispatch list [(pipeline, [gpu buffers], grid)]: the roots get
    fresh buffers, temporaries come from the pool (or from `private`, a jit.PrivateBuffers) and go back after
    their last reader. A key that is not a computed result is a leaf of the walk order (a realized buffer). An
    aliased result (plan.aliases: an in-place slot write) is its donated input's buffer."""
    rt = get_runtime()
    bufs: dict[int, object] = {q: order[p].buffer for q, p in plan.aliases.items()}
    dispatches = []
    root_set = set(roots)
    for p in plan.empty:
        bufs[p] = rt.alloc(0)
    for k, step in enumerate(plan.steps):
        if step.out not in bufs:
            temp = private is not None and step.out not in root_set
            try:
                bufs[step.out] = (private.take(rt, step.out_bytes, describe(step.out_shape)) if temp else
                                  rt.alloc(step.out_bytes, describe(step.out_shape)))
            except errors.KernelError as e:  # out of memory, device lost: name the kernel that needed it
                raise e.about([step.name]) from e
        gpus = [bufs[step.out].gpu]
        for p in step.inputs:
            b = bufs.get(p)
            gpus.append(order[p].buffer.gpu if b is None else b.gpu)
        if step.checks:
            gpus.append(rt.status.gpu)
        if step.sizes_gpu is not None:
            gpus.append(step.sizes_gpu)
        dispatches.append((step.pipeline, gpus, step.grid))
        for p in plan.frees[k]:
            if private is not None:
                private.give(bufs.pop(p))
            else:
                rt.release(bufs.pop(p).gpu)
    return bufs, dispatches


def execute(order: list[Node], plan: Plan, roots: list[int], readback: list[int], plan_s: float = 0.0,
            later: bool = False):
    """Run the plan; the read-backs' arrays (later: a function that waits for them, see Runtime.submit)."""
    rt = get_runtime()
    # data from a result whose checks failed on the GPU (tinydl/checks.py): raise again, never a wrong number
    tainted = rt.status.tainted([n.buffer for n in order if n.kind == BUFFER]) if rt.status.bad else None
    if tainted is not None and readback:
        raise tainted[0](tainted[1])
    bufs, dispatches = bind(order, plan, roots)
    donated = [order[p] for p in plan.aliases.values()]
    reads = []
    for p in readback:
        n = order[p]
        buf = n.buffer if n.kind == BUFFER else bufs[p]
        reads.append((buf.gpu, n.numel * n.dtype.itemsize))
    try:
        data = submit(plan, dispatches, reads, plan_s, [bufs[p] for p in set(roots) - set(readback) if p in bufs],
                      later)
    except BaseException:  # nothing is marked realized: the buffers go back, whatever they hold
        for q, b in bufs.items():
            if q not in plan.aliases:
                rt.release(b.gpu)
        give_storage_away(donated)  # (a slot may have been written)
        raise
    # the roots, and each in-place result (a later graph may read it: the donated tensor it replaced cannot be)
    for p in set(roots) | set(plan.aliases):
        n = order[p]
        if n.kind != BUFFER:
            n.become_buffer(bufs[p] if p in plan.aliases else rt.adopt(bufs[p]))
            if tainted is not None:
                rt.status.bad[n.buffer] = tainted
    give_storage_away(donated)
    return data


def give_storage_away(donated: list[Node]) -> None:
    """The donated inputs whose storage took a result (an in-place slot write): their own values are gone."""
    for n in donated:
        n.give_storage_away()


def submit(plan: Plan, dispatches: list, reads: list, plan_s: float, results=(), later: bool = False):
    """Run the dispatches (and read-backs) on the GPU; tell the profiler and the kernel counters. results: the
    buffers computed and not read back (suspects until the status is read, if the plan has checked kernels).
    later: see Runtime.submit (under the profiler the read-backs are waited for at once)."""
    rt = get_runtime()
    prof = profiler.active()
    status = (plan.checked, results) if plan.checked else None
    first = plan.first_submit(current_options().submit_first)
    if prof is None:
        data = rt.submit(dispatches, reads, first=first, checks=status, names=plan.names, first_run=not plan.ran,
                         later=later)
        plan.ran = True
    else:
        times: list[tuple[float, float]] = []
        t0 = profiler.now()
        data = rt.submit(dispatches, reads, timings=times, first=first, checks=status,
                         names=plan.names)
        profiler.record(plan.steps, times, plan_s, profiler.now() - t0, bool(times) or not dispatches, t0)
        if later:
            return lambda: data
    report(plan)
    return data


def report(plan: Plan) -> None:
    """Tell the kernel counters (and the TINYDL_DEBUG printout) which kernels a realization dispatched."""
    counters.record(plan.names)
    if counters.LEVEL:
        for s in plan.steps:
            print(f"tinydl kernel: {s.name}")
            if counters.LEVEL >= 2:
                print(s.wgsl)
