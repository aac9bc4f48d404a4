"""Debug switches and counters.

TINYDL_DEBUG=1 prints one line per kernel of each realization, =2 also its WGSL.
TINYDL_EAGER=1 (or `with tinydl.debug.eager():`, i.e. `tinydl.options(eager=True)`) realizes after every op: the
reference the lazy, fused run must agree with.
tinydl.explain.plan(fn, *inputs) shows the kernels fn's result would run as, without running them.
"""
from __future__ import annotations

import contextlib

from . import errors, options, runtime, schedule
from .counters import LEVEL, KernelCounter, count_kernels, kernel_count, last_kernels, record, stats  # noqa: F401


@contextlib.contextmanager
def inject_fault(stage: str, kernel: str = ""):
    """For tests: kernels whose name contains `kernel` ("": every kernel) fail at `stage` (one of
    errors.FAULT_STAGES: "shader", "pipeline", "bind group", "encode", "submit", "map") while inside, so
    that the error path can be checked: an errors.KernelError naming the kernel, nothing marked realized.
    Shader, pipeline, bind-group and encode faults are real wgpu errors (a corrupted shader, a missing entry
    point, a buffer without storage usage, a grid over the limit); submit and map faults are raised in place
    (a real queue-submit error aborts the process in wgpu-native). Shader and pipeline faults strike when a
    kernel is planned: the plan cache is cleared on entry."""
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
    return options.use(eager=True)
