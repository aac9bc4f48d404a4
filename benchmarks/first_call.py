"""First-call seconds, cold and warm: how long a user waits before a converted model's first answer.

    python -m benchmarks.first_call                                  # the benchmark models, their batches
    python -m benchmarks.first_call --models resnet50 densenet121 --batches 16
    python -m benchmarks.first_call --quick                          # small inputs (lavapipe smoke test)
    python -m benchmarks.first_call --models densenet121 --batches 1 --compile-threads 8 16   # a row per count

Each row runs in fresh processes (nothing shared through Python): `from_torch` on the model, then the first call
(plan, compile every kernel, run, read back) and the second call. "cold" starts with empty shader caches: the
driver's (NVIDIA's __GL_SHADER_DISK_CACHE_PATH, Mesa's MESA_SHADER_CACHE_DIR) point at a new empty folder; "warm"
is a second process over the same folders, as a user's next run of the same model is. A name outside the
benchmark table is taken as a torchvision classifier (densenet121, swin_v2_t, ...).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _child(name: str, batch: int, quick: bool, compile_threads: int | None) -> None:
    import torch

    import tinydl
    from tinydl.bench.models import builder, first_tensor
    build = builder(name)[0]
    model, inputs = build(batch, quick)
    t0 = time.perf_counter()
    tm = tinydl.from_torch(model, example_inputs=tuple(torch.from_numpy(a) for a in inputs))
    t1 = time.perf_counter()
    with tinydl.options(**({"compile_threads": compile_threads} if compile_threads else {})):
        first_tensor(tm(*[tinydl.tensor(a) for a in inputs])).numpy()
    t2 = time.perf_counter()
    first_tensor(tm(*[tinydl.tensor(a) for a in inputs])).numpy()
    t3 = time.perf_counter()
    print(json.dumps({"convert_s": t1 - t0, "first_s": t2 - t1, "second_s": t3 - t2}))


def measure(name: str, batch: int, quick: bool, cache_dir: str, compile_threads: int | None = None) -> dict:
    env = dict(os.environ, __GL_SHADER_DISK_CACHE="1", __GL_SHADER_DISK_CACHE_PATH=cache_dir,
               __GL_SHADER_DISK_CACHE_SKIP_CLEANUP="1", MESA_SHADER_CACHE_DIR=cache_dir)
    cmd = [sys.executable, "-m", "benchmarks.first_call", "--child", name, str(batch)] + (["--quick"] if quick else [])
    cmd += ["--compile-threads", str(compile_threads)] if compile_threads else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{name}-b{batch}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    from tinydl.bench.models import MODELS, builder
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=list(MODELS) + ["densenet121"])
    ap.add_argument("--batches", nargs="*", type=int, help="default: each model's benchmark batches (others: 1, 16)")
    ap.add_argument("--quick", action="store_true", help="small inputs and 2-layer transformers")
    ap.add_argument("--compile-threads", nargs="*", type=int, default=[],
                    help="Options.compile_threads for the first call, a row per count (default: the option's own)")
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]), args.quick, (args.compile_threads or [None])[0])
        return
    print("| model | batch | cold: convert s | cold: first call s | warm: convert s | warm: first call s | "
          "second call ms |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        for batch in args.batches or builder(name)[1]:
            for threads in args.compile_threads or [None]:
                label = f"{name} ({threads} compile threads)" if threads else name
                with tempfile.TemporaryDirectory(prefix="tinydl-shader-cache-") as cache_dir:
                    try:
                        cold = measure(name, batch, args.quick, cache_dir, threads)
                        warm = measure(name, batch, args.quick, cache_dir, threads)
                    except RuntimeError as e:
                        print(f"| {label} | {batch} | failed: {e} |||||", flush=True)
                        continue
                print(f"| {label} | {batch} | {cold['convert_s']:.2f} | {cold['first_s']:.2f} | "
                      f"{warm['convert_s']:.2f} | {warm['first_s']:.2f} | {warm['second_s'] * 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
