"""Debug switches and counters.

TINYDL_DEBUG=1 prints one line per kernel of each realization, =2 also its WGSL.
TINYDL_EAGER=1 (or `with tinydl.debug.eager():`, i.e. `tinydl.options(eager=True)`) realizes after every op: the
reference the lazy, fused run must agree with.
tinydl.explain.plan(fn, *inputs) shows the kernels fn's result would run as, without running them.
"""
from __future__ import annotations

import contextlib
import os
import threading

LEVEL = int(os.environ.get("TINYDL_DEBUG", "0") or 0)

_kernels_run = 0
# planning/codegen work done so far: a second forward of a cached graph must not move these
stats = {"plans": 0, "pipelines": 0}
# per thread: last_kernels() and count_kernels() see the realizations of the thread that asks
_local = threading.local()


class KernelCounter:
    def __init__(self):
        self.names: list[str] = []

    @property
    def count(self) -> int:
        return len(self.names)


def record(names: list[str]) -> None:
    """Called by the scheduler once per realization with the names of the kernels it dispatched."""
    global _kernels_run
    _kernels_run += len(names)  # under tinydl's lock (runtime.locked), as every realization is
    _local.last = list(names)
    for c in getattr(_local, "counters", ()):
        c.names.extend(names)


def kernel_count() -> int:
    """Kernels dispatched since the process started."""
    return _kernels_run


def last_kernels() -> list[str]:
    """Names of the kernels of this thread's most recent realization."""
    return list(getattr(_local, "last", ()))


@contextlib.contextmanager
def count_kernels():
    """`with count_kernels() as c: y.numpy()` then `c.count`, `c.names`: the kernels this thread dispatched
    inside."""
    c = KernelCounter()
    if not hasattr(_local, "counters"):
        _local.counters = []
    _local.counters.append(c)
    try:
        yield c
    finally:
        _local.counters.remove(c)


@contextlib.contextmanager
def inject_fault(stage: str, kernel: str = ""):
    """For tests: kernels whose name contains `kernel` ("": every kernel) fail at `stage` (one of
    errors.FAULT_STAGES: "shader", "pipeline", "bind group", "encode", "submit", "map") while inside, so
    that the error path can be checked: an errors.KernelError naming the kernel, nothing marked realized.
    Shader, pipeline, bind-group and encode faults are real wgpu errors (a corrupted shader, a missing entry
    point, a buffer without storage usage, a grid over the limit); submit and map faults are raised in place
    (a real queue-submit error aborts the process in wgpu-native). Shader and pipeline faults strike when a
    kernel is planned: the plan cache is cleared on entry."""
    from . import errors, runtime, schedule
    if stage not in errors.FAULT_STAGES:
        raise ValueError(f"inject_fault: unknown stage {stage!r}; expected one of {errors.FAULT_STAGES}")
    rt = runtime.get_runtime()
    with runtime._lock:
        old = rt.faults.get(stage)
        rt.faults[stage] = kernel
        if stage in ("shader", "pipeline"):
            schedule.clear_cache()
    try:
        yield
    finally:
        with runtime._lock:
            if old is None:
                rt.faults.pop(stage, None)
            else:
                rt.faults[stage] = old


def eager():
    """Realize after every op (the unfused reference): tinydl.options(eager=True)."""
    from . import options
    return options.use(eager=True)
