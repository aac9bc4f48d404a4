"""Where a forward's host-side time goes: end-to-end ms next to the GPU's kernel time, and a cProfile of the
Python/native calls of repeated forwards (jit replays).

    python -m benchmarks.cpu_overhead --models mobilenet_v2 resnet18 --runs 50
    python -m benchmarks.cpu_overhead --chunks 0 16 32 64 --no-cprofile   # e2e per submit-chunk size
    python -m benchmarks.cpu_overhead --first 1 4 8 32 --no-cprofile      # e2e per first-chunk size
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

from tinydl.bench.models import MODELS, first_tensor
from tinydl.bench.timing import median_ms


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["mobilenet_v2", "resnet18"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--chunks", nargs="*", type=int, help="also time e2e with each Options.submit_chunk")
    ap.add_argument("--first", nargs="*", type=int, help="also time e2e with each Options.submit_first")
    ap.add_argument("--no-cprofile", action="store_true")
    args = ap.parse_args(argv)

    import torch

    import tinydl
    for name in args.models:
        model, inputs = MODELS[name][0](args.batch, args.quick)
        tm = tinydl.from_torch(model, example_inputs=tuple(torch.from_numpy(a) for a in inputs))

        def call():
            return first_tensor(tm(*[tinydl.tensor(a) for a in inputs])).numpy()

        for option, values in (("submit_chunk", args.chunks), ("submit_first", args.first)):
            for value in values or ():
                with tinydl.options(**{option: value}):
                    ms = median_ms(call, args.runs)
                print(f"== {name} batch {args.batch}: {option}={value}: e2e median {ms:.3f} ms")
        phases(name, args.batch, tm, inputs, args.runs)
        if args.no_cprofile:
            continue
        ms = median_ms(call, args.runs)
        with tinydl.profile() as prof:
            call()
        pr = cProfile.Profile()
        t0 = time.perf_counter()
        pr.enable()
        for _ in range(args.runs):
            call()
        pr.disable()
        per = (time.perf_counter() - t0) / args.runs * 1e3
        out = io.StringIO()
        stats = pstats.Stats(pr, stream=out).sort_stats("tottime")
        stats.print_stats(args.top)
        stats.print_callers("proxy_func")  # wgpu-native calls: which API call spends the time
        print(f"== {name} batch {args.batch}: e2e median {ms:.3f} ms, GPU {prof.gpu_s * 1e3:.3f} ms over "
              f"{len(prof.kernels)} kernels in {prof.realizations} submit(s); {per:.3f} ms per forward under cProfile")
        print(out.getvalue())


def phases(name, batch, tm, inputs, runs) -> None:
    """Median ms of a forward's three host phases, timed apart: upload the inputs, the forward (jit replay:
    bind, encode, submit), read the output back (wait for the GPU, map, copy out)."""
    import statistics

    import tinydl
    median_ms(lambda: first_tensor(tm(*[tinydl.tensor(a) for a in inputs])).numpy(), 3)  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        xs = [tinydl.tensor(a) for a in inputs]
        t1 = time.perf_counter()
        y = first_tensor(tm(*xs))
        t2 = time.perf_counter()
        y.numpy()
        times.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
    up, fwd, read = (statistics.median(t[i] for t in times) * 1e3 for i in range(3))
    print(f"== {name} batch {batch}: upload {up:.3f} ms, forward {fwd:.3f} ms, read-back {read:.3f} ms")


if __name__ == "__main__":
    main()
