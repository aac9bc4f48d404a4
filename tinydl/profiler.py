"""`with tinydl.profile() as prof:` ... `print(prof.table())`: where a forward's time goes.

Per kernel: GPU time from timestamp queries (wall time of the whole submit where the adapter has none),
FLOPs and bytes moved (so achieved TFLOP/s and GB/s can be compared with the device's ceilings); per
realization: the CPU time spent planning (graph walk, cache lookup) and encoding/submitting/reading back.
"""
from __future__ import annotations

import contextlib
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field

from tabulate import tabulate

_active: list["Profile"] = []


@dataclass
class KernelRecord:
    name: str
    gpu_s: float
    flops: int
    bytes: int
    start_s: float = 0.0  # on the GPU's clock (timestamp queries), else laid end to end from the submit's start


@dataclass
class Profile:
    kernels: list[KernelRecord] = field(default_factory=list)
    realizations: int = 0
    plan_s: float = 0.0      # CPU: walking the graph, signature, plan lookup (and planning on a miss)
    submit_s: float = 0.0    # CPU + wait: encoding, submit, GPU execution, read back
    timestamps: bool = True  # False where the adapter has no timestamp queries (gpu_s is then the wall time)

    def summary(self) -> dict:
        by = defaultdict(lambda: [0, 0.0, 0, 0])
        for k in self.kernels:
            name = k.name.split(" [")[0]
            e = by[name]
            e[0] += 1
            e[1] += k.gpu_s
            e[2] += k.flops
            e[3] += k.bytes
        return by

    @property
    def gpu_s(self) -> float:
        return sum(k.gpu_s for k in self.kernels)

    def table(self, top: int = 30) -> str:
        rows = []
        for name, (n, t, fl, by) in sorted(self.summary().items(), key=lambda kv: -kv[1][1])[:top]:
            rows.append([name, n, t * 1e3, t / max(n, 1) * 1e6, fl / t / 1e12 if t else 0.0, by / t / 1e9 if t else 0.0])
        head = (f"{self.realizations} realization(s), {len(self.kernels)} kernels; GPU {self.gpu_s * 1e3:.3f} ms "
                f"({'timestamp queries' if self.timestamps else 'no timestamp queries: wall time per submit'}); "
                f"CPU plan {self.plan_s * 1e3:.3f} ms, encode+submit+wait {self.submit_s * 1e3:.3f} ms")
        return head + "\n" + tabulate(rows, headers=["kernel", "calls", "total ms", "avg us", "TFLOP/s", "GB/s"],
                                      floatfmt=".3f")

    def chrome_trace(self) -> dict:
        """The kernels as a Chrome trace (chrome://tracing, Perfetto): one complete event ("ph": "X") per kernel
        run, its start and duration in microseconds from the first kernel's start."""
        t0 = min((k.start_s for k in self.kernels), default=0.0)
        events = [{"name": k.name, "cat": "kernel", "ph": "X", "pid": 0, "tid": 0,
                   "ts": (k.start_s - t0) * 1e6, "dur": k.gpu_s * 1e6, "args": {"flops": k.flops, "bytes": k.bytes}}
                  for k in self.kernels]
        source = "GPU timestamps" if self.timestamps else "no timestamp queries: submit wall time spread by work"
        return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"tinydl": source}}


@contextlib.contextmanager
def profile():
    p = Profile()
    _active.append(p)
    try:
        yield p
    finally:
        _active.remove(p)


def active() -> Profile | None:
    return _active[-1] if _active else None


def record(steps, spans: list[tuple[float, float]], plan_s: float, submit_s: float, has_timestamps: bool,
           started_s: float = 0.0) -> None:
    """A realization's kernels: spans, each kernel's (start, end) GPU timestamps in seconds; without timestamp
    queries, the submit's wall time (from started_s, on the host's clock) is spread over them."""
    p = active()
    if p is None:
        return
    p.realizations += 1
    p.plan_s += plan_s
    p.submit_s += submit_s
    p.timestamps = p.timestamps and has_timestamps
    if not has_timestamps:  # one wall-clock figure for the submit, spread by FLOPs+bytes as a rough guide
        weight = [s.flops + s.bytes for s in steps]
        total = sum(weight) or 1
        ends = [started_s + submit_s * w / total for w in itertools.accumulate(weight)]
        spans = list(zip([started_s] + ends[:-1], ends))
    for s, (start, end) in zip(steps, spans):
        p.kernels.append(KernelRecord(s.name, end - start, s.flops, s.bytes, start))


now = time.perf_counter
