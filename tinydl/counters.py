"""The kernel counters and planning statistics (what tinydl.debug shows), kept below the runtime and the
scheduler, which update them; tinydl.debug re-exports them next to its switches."""
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
