"""Standalone elementwise kernels: a fused chain of elementwise/view/cat/gather ops; each thread computes
one output, or PER_THREAD of them in big tensors (more loads in flight per thread: see thread_per_output)."""
from __future__ import annotations

import math

from .common import thread_per_output
from .expr import KernelSource

PER_THREAD = 4
PER_THREAD_MIN = 1 << 20  # outputs below which one per thread keeps more threads, and so more SMs, busy


def elementwise(src: KernelSource):
    n = math.prod(src.out.shape)
    return thread_per_output(src, src.out.shape, lambda e, idx: e.value(src.out, idx),
                             PER_THREAD if n >= max(PER_THREAD_MIN, 1) else 1)
