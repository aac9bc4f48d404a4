"""Where a model's GPU time goes, kernel by kernel, timed the way the sweeps time an op: each kernel of one
forward (a jit replay) is encoded --copies times back to back into one compute pass, timed by timestamps at the
pass's start and end (Runtime.gpu_seconds). tinydl.profile() gives each kernel a pass of its own, whose
boundaries add a few µs to every short kernel; here only the kernel's own time and the barrier before the next
copy count. The whole forward is also timed as one pass: its serialized GPU time, the floor of its latency.

    python -m benchmarks.kernel_times --models mobilenet_v2 bert_base --batch 1
    python -m benchmarks.kernel_times --models resnet50 --batch 16 --half   # the model after .half(), float16 in
    python -m benchmarks.kernel_times --models resnet50 --batch 16 --half --option force_im2col=true  # planned so
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np

from tinydl.bench.models import MODELS, first_tensor
from tinydl.bench.option_arg import option


def forward_dispatches(tm, inputs):
    """The dispatches and kernel names of one replay of tm (the model after from_torch) on the numpy inputs."""
    import tinydl
    from tinydl.runtime import get_runtime
    rt = get_runtime()
    call = lambda: first_tensor(tm(*[tinydl.tensor(a) for a in inputs])).numpy()  # noqa: E731
    call(), call()  # capture, then a replay
    dispatches = []
    submit = rt.submit
    rt.submit = lambda d, *a, **k: (dispatches.extend(d), submit(d, *a, **k))[1]
    try:  # a replay that encodes its kernels via rt.submit
        with tinydl.options(pre_encode=False), tinydl.debug.count_kernels() as counter:
            call()
    finally:
        del rt.submit  # back to the class's method
    return dispatches, counter.names


def gpu_us(rt, dispatches, runs: int) -> float:
    return statistics.median(rt.gpu_seconds(dispatches) for _ in range(runs)) * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["mobilenet_v2", "resnet50", "bert_base"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--warm", type=float, default=1.0, help="seconds of forwards before each model is timed")
    ap.add_argument("--quick", action="store_true", help="small inputs (smoke test on a software adapter)")
    ap.add_argument("--half", action="store_true", help="the converted model after .half(), fed float16 arrays")
    ap.add_argument("--option", type=option, action="append", default=[], metavar="NAME=VALUE",
                    help="plan and run with this tinydl.options field set (repeatable)")
    args = ap.parse_args(argv)

    import tinydl
    from tinydl.runtime import get_runtime
    rt = get_runtime()
    if "timestamp-query" not in rt.features:
        raise SystemExit(f"{rt.adapter_name} has no timestamp queries: nothing to time kernels with")
    with tinydl.options(**dict(args.option)):
        for name in args.models:
            time_model(rt, name, args)


def time_model(rt, name: str, args) -> None:
    """Print where one model's GPU time goes (args: main's parsed arguments)."""
    import torch
    from tabulate import tabulate

    import tinydl
    model, inputs = MODELS[name][0](args.batch, args.quick)
    tm = tinydl.from_torch(model, example_inputs=tuple(torch.from_numpy(a) for a in inputs))
    if args.half:
        tm.half()
        inputs = [a.astype(np.float16) if np.issubdtype(a.dtype, np.floating) else a for a in inputs]
    dispatches, names = forward_dispatches(tm, inputs)
    t_end = time.perf_counter() + args.warm
    while time.perf_counter() < t_end:  # an idle GPU runs at low clocks: keep it busy first
        rt.gpu_seconds(dispatches * 5)
    whole = gpu_us(rt, dispatches, args.runs)
    per = defaultdict(list)
    for d, kernel in zip(dispatches, names):
        per[kernel].append(gpu_us(rt, [d] * args.copies, args.runs) / args.copies)
    rows = sorted(((k, len(v), sum(v), statistics.mean(v)) for k, v in per.items()), key=lambda r: -r[2])
    total = sum(r[2] for r in rows)
    kind = " float16" if args.half else ""
    changed = "".join(f" {k}={v}" for k, v in args.option)
    print(f"== {name} batch {args.batch}{kind}{changed}: {len(dispatches)} kernels; the forward in one pass "
          f"{whole:.1f} µs of GPU time; kernels one by one {total:.1f} µs in all")
    print(tabulate([(k, n, f"{t:.1f}", f"{a:.1f}") for k, n, t, a in rows[:args.top]],
                   headers=["kernel", "calls", "total µs", "avg µs"]), flush=True)

if __name__ == "__main__":
    main()
