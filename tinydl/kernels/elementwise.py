"""Standalone elementwise kernels: a fused chain of elementwise/view/cat/gather ops, one thread each."""
from __future__ import annotations

from .common import thread_per_output
from .expr import KernelSource


def elementwise(src: KernelSource):
    return thread_per_output(src, src.out.shape, lambda e, idx: e.value(src.out, idx))
