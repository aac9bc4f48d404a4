"""Timing end-to-end calls the same way for every column of the benchmark."""
from __future__ import annotations

import statistics
import time


def median_ms(fn, runs: int, warmup: int = 3, warm_s: float = 1.0) -> float:
    """Median ms of fn() over `runs` calls, after at least `warmup` calls and `warm_s` seconds of calls: GPUs
    lower their clocks when idle, so every column is measured on a device that has been kept busy."""
    t_end = time.perf_counter() + warm_s
    for i in range(10**9):
        fn()
        if i + 1 >= warmup and time.perf_counter() >= t_end:
            break
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3
