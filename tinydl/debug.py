"""Debug switches and counters.

TINYDL_DEBUG=1 prints one line per kernel of each realization, =2 also its WGSL.
TINYDL_EAGER=1 (or `with tinydl.debug.eager():`) realizes after every op: the reference the lazy,
fused run must agree with.
"""
from __future__ import annotations

import contextlib
import os

LEVEL = int(os.environ.get("TINYDL_DEBUG", "0") or 0)
EAGER = os.environ.get("TINYDL_EAGER", "0") not in ("", "0")

_kernels_run = 0
# planning/codegen work done so far: a second forward of a cached graph must not move these
stats = {"plans": 0, "pipelines": 0}
_last: list[str] = []
_counters: list["KernelCounter"] = []


class KernelCounter:
    def __init__(self):
        self.names: list[str] = []

    @property
    def count(self) -> int:
        return len(self.names)


def record(names: list[str]) -> None:
    """Called by the scheduler once per realization with the names of the kernels it dispatched."""
    global _kernels_run, _last
    _kernels_run += len(names)
    _last = list(names)
    for c in _counters:
        c.names.extend(names)


def kernel_count() -> int:
    """Kernels dispatched since the process started."""
    return _kernels_run


def last_kernels() -> list[str]:
    """Names of the kernels of the most recent realization."""
    return list(_last)


@contextlib.contextmanager
def count_kernels():
    """`with count_kernels() as c: y.numpy()` then `c.count`, `c.names`: the kernels dispatched inside."""
    c = KernelCounter()
    _counters.append(c)
    try:
        yield c
    finally:
        _counters.remove(c)


@contextlib.contextmanager
def eager():
    """Realize after every op (the unfused reference)."""
    global EAGER
    old, EAGER = EAGER, True
    try:
        yield
    finally:
        EAGER = old
