"""Soak: N forwards of a converted torchvision model at 224x224; prints process RSS at intervals, GPU buffers created
after warm-up, and whether every output is bit-identical to the first (and close to torch CPU's).

    python benchmarks/soak.py --model resnet18 --calls 10000 --batch 1 [--every 1000]

Exit code 1 when any output differs from the first call's bits or RSS grows by more than --max-growth-mb after
warm-up. tests/test_soak.py is the small CI version.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:  # Linux; VmRSS is the resident set now
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet18", choices=["resnet18", "mobilenet_v2"])
    p.add_argument("--calls", type=int, default=10000)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--every", type=int, default=1000, help="print RSS every this many calls")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--max-growth-mb", type=float, default=50.0)
    args = p.parse_args(argv)

    import torch

    import tinydl
    from tinydl.interop.torchvision_compat import import_torchvision
    from tinydl.runtime import get_runtime
    tv = import_torchvision()

    torch.manual_seed(0)
    tm = getattr(tv.models, args.model)(weights=None).eval()  # random init: no download
    model = tinydl.from_torch(tm)
    x = np.random.default_rng(0).standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    print(f"soak: {args.model} batch {args.batch} {args.size}x{args.size}, {args.calls} calls on "
          f"{tinydl.device_info().get('adapter')}", flush=True)

    first = model(x).numpy()
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    err = float(np.abs(first - ref).max())
    print(f"vs torch CPU: max abs err {err:.3g} (max |torch| {float(np.abs(ref).max()):.3g})", flush=True)

    rt = get_runtime()
    created = [0]
    real_create = type(rt.device).create_buffer

    def counting_create(self, *a, **k):
        created[0] += 1
        return real_create(self, *a, **k)

    for _ in range(args.warmup):
        model(x).numpy()
    gc.collect()
    type(rt.device).create_buffer = counting_create
    base, differ, t0 = rss_mb(), 0, time.time()
    print(f"after {args.warmup} warm-up calls: RSS {base:.1f} MB", flush=True)
    for i in range(1, args.calls + 1):
        out = model(x).numpy()
        differ += not np.array_equal(out.view(np.uint32), first.view(np.uint32))
        if i % args.every == 0 or i == args.calls:
            print(f"call {i:6d}: RSS {rss_mb():8.1f} MB ({rss_mb() - base:+.1f}), GPU buffers created since "
                  f"warm-up {created[0]}, outputs differing from call 1: {differ}, "
                  f"{(time.time() - t0) / i * 1e3:.2f} ms/call", flush=True)
    gc.collect()
    growth = rss_mb() - base
    ok = differ == 0 and growth <= args.max_growth_mb
    print(f"soak {'PASS' if ok else 'FAIL'}: {args.calls} calls, bit-identical: {differ == 0} ({differ} differ), "
          f"RSS growth after warm-up {growth:+.1f} MB (limit {args.max_growth_mb}), "
          f"GPU buffers created after warm-up {created[0]}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
