"""Images/s of tinydl.distributed.Predictor in 1, 2, ... worker processes sharing one GPU: the per-actor work of
examples/ray_classify.py without Ray (whose wheel does not fit a GPU-box call), to see whether a second process
on the same GPU adds throughput.

    python -m benchmarks.workers                                   # resnet18, batch 16, 224 px; 1 and 2 workers
    python -m benchmarks.workers --model mobilenet_v2 --workers 1 2 4 --gpu 0
    python -m benchmarks.workers --model mobilenet_v3_small --size 64 --batch 4 --batches 3   # a quick check

Each worker is a fresh process (spawned, like a Ray actor) that builds its own Predictor (the model converted
once, its own WebGPU device; --gpu maps like Ray's assigned id), runs --warmup batches (kernels compiled), waits
for the others, then runs --batches batches of random images. Images/s = all workers' images over the time from
the common start to the last worker's end.
"""
from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import time

import numpy as np

# a worker that fails before the start (or hangs) ends the run instead of leaving the others waiting
START_TIMEOUT_S, RUN_TIMEOUT_S = 900, 1800


def build(name: str):
    from tinydl.interop.torchvision_compat import import_torchvision
    return getattr(import_torchvision().models, name)().eval()


def worker(args, barrier, results) -> None:
    from tinydl.distributed import Predictor
    predictor = Predictor(functools.partial(build, args.model), inputs="image", gpu=args.gpu)
    batch = {"image": np.random.default_rng(0).standard_normal((args.batch, 3, args.size, args.size), np.float32)}
    for _ in range(args.warmup):
        predictor(batch)
    barrier.wait()
    for _ in range(args.batches):
        predictor(batch)
    results.put((time.perf_counter(), args.batch * args.batches))


def run(args, workers: int) -> tuple[float, float]:
    """(images/s, seconds) for this many worker processes."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers + 1), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(args, barrier, results)) for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=START_TIMEOUT_S)  # every worker has its model converted and compiled
    except Exception:
        for p in procs:
            p.kill()
        raise SystemExit("a worker failed or hung before the timed batches (its traceback is above)")
    start = time.perf_counter()
    done = [results.get(timeout=RUN_TIMEOUT_S) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a worker failed (exit code {p.exitcode})")
    seconds = max(t for t, _ in done) - start
    return sum(n for _, n in done) / seconds, seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18", help="a torchvision classification model")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=50, help="timed batches per worker")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gpu", default=None, help="the GPU every worker uses (index or UUID); default: tinydl's")
    args = parser.parse_args(argv)
    import tinydl
    print(f"{args.model}, batch {args.batch}, {args.size}x{args.size}, {args.batches} batches per worker, "
          f"on {tinydl.device_info()['adapter']}")
    print("| workers | images/s | seconds | images/s per worker |\n|---|---|---|---|")
    for n in args.workers:
        rate, seconds = run(args, n)
        print(f"| {n} | {rate:.1f} | {seconds:.2f} | {rate / n:.1f} |", flush=True)


if __name__ == "__main__":
    main()
