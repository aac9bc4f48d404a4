"""Standalone elementwise kernels: a fused chain of elementwise/view/cat/gather ops; each thread computes
one output, or Options.per_thread of them in big tensors (more loads in flight per thread: see thread_per_output)."""
from __future__ import annotations

import math

from .common import thread_per_output
from ..options import DEFAULT, Options
from .expr import KernelSource


def elementwise(src: KernelSource, opts: Options = DEFAULT):
    """Below Options.per_thread_min outputs, one per thread keeps more threads, and so more SMs, busy."""
    n = math.prod(src.out.shape)
    return thread_per_output(src, src.out.shape, lambda e, idx: e.value(src.out, idx),
                             opts.per_thread if n >= max(opts.per_thread_min, 1) else 1)
