"""GEMM tile / split-K sweep: GPU time of each forced variant on conv and matmul shapes, to set the choice rules
in tinydl/kernels/gemm.py (choose_tile, split_k) from measurements; with --direct, the direct conv's strips
(tinydl/kernels/window.py, choose_strip) on MobileNetV2's depthwise convs.

    python -m benchmarks.sweep                       # the built-in shapes (ResNet layers at batch 1, BERT GEMMs)
    python -m benchmarks.sweep --splits 1 4 16 64 --tiles tile64 tile32
    python -m benchmarks.sweep --direct --strips auto 1x1 4x2 8x1
    python -m benchmarks.sweep --mobilenet --splits auto 1 2 4
    python -m benchmarks.sweep --mobilenet --batch 1 --tiles auto tile32 tile64 --splits auto 1 4 16
    python -m benchmarks.sweep --half --splits auto   # float16: every matrix tile (on an adapter with them)

Each row: the shape, the forced tile and split (auto = the rules' own choice), GPU time per op and TFLOP/s.
Each variant runs as --copies independent copies of the op in one submit, --runs times (see
benchmarks.run.busy_gpu_ms: GPU time per copy in a chain, the split-K sum kernel included).
"""
from __future__ import annotations

import argparse

import numpy as np

from .run import busy_gpu_ms


# (batch, in channels, image size, out channels, kernel size)
CONVS = [(1, 64, 56, 64, 3), (1, 128, 28, 128, 3), (1, 256, 14, 256, 3), (1, 512, 7, 512, 3), (1, 1024, 14, 256, 1),
         (1, 2048, 7, 512, 1), (16, 64, 56, 64, 3), (16, 128, 28, 128, 3), (16, 256, 14, 256, 3), (16, 512, 7, 512, 3),
         (16, 256, 56, 64, 1), (16, 64, 56, 256, 1), (16, 1024, 14, 256, 1), (16, 256, 14, 1024, 1)]
# MobileNetV2's 1x1 convs at batch 16 (--mobilenet): short K (expansions) or few tiles (7x7 maps)
MOBILENET_1X1 = [(16, 16, 112, 96, 1), (16, 24, 56, 144, 1), (16, 144, 56, 24, 1), (16, 32, 28, 192, 1),
                 (16, 192, 28, 32, 1), (16, 64, 14, 384, 1), (16, 384, 14, 64, 1), (16, 96, 14, 576, 1),
                 (16, 576, 14, 96, 1), (16, 160, 7, 960, 1), (16, 960, 7, 160, 1), (16, 320, 7, 1280, 1)]
# depthwise 3x3 convs of MobileNetV2: (channels, input size, stride), at batch 16 and 1
DEPTHWISE = [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (192, 28, 2), (384, 14, 1),
             (576, 14, 1), (576, 14, 2), (960, 7, 1)]
MATMULS = [(128, 768, 768), (128, 3072, 768), (128, 768, 3072), (1024, 768, 768), (1024, 2304, 768), (1024, 3072, 768),
           (1024, 768, 3072),
           (2048, 2048, 2048), (4096, 4096, 4096)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", nargs="*", default=None, help="forced tiles (default: auto and every tile)")
    ap.add_argument("--splits", nargs="*", default=["auto", "1", "2", "4", "8", "16", "32", "64"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--copies", type=int, default=100)
    ap.add_argument("--warm", type=float, default=0.5, help="seconds of calls before each variant is timed")
    ap.add_argument("--quick", action="store_true", help="two tiny shapes (smoke test on a software adapter)")
    ap.add_argument("--only", help="only shapes whose label contains this text (e.g. 'x @ W.T')")
    ap.add_argument("--half", action="store_true",
                    help="float16 operands (default tiles: auto and every matrix tile, kernels/gemm_matrix.py)")
    ap.add_argument("--scalar-loads", action="store_true", help="tiles load operands element by element only")
    ap.add_argument("--channel-major", action="store_true",
                    help="gathered convs keep K in (ci, kh, kw) order (no TapGather)")
    ap.add_argument("--direct", action="store_true", help="sweep the direct conv's strips on depthwise convs")
    ap.add_argument("--mobilenet", action="store_true", help="MobileNetV2's 1x1 convs (batch 16), no matmuls")
    ap.add_argument("--batch", type=int, help="the conv shapes at this batch size instead of their own")
    ap.add_argument("--strips", nargs="*", default=["auto", "1x1", "1x2", "2x2", "4x2", "1x4", "2x4", "8x1"])
    args = ap.parse_args(argv)
    if args.direct:
        return sweep_direct(args)

    import tinydl
    import tinydl.nn.functional as F
    from tabulate import tabulate
    from tinydl.kernels import gemm, gemm_matrix

    tiles = args.tiles or ["auto", *(gemm_matrix.MATRIX_TILES if args.half else gemm.TILES)]
    dtype = np.float16 if args.half else np.float32
    switches = dict(vec4_loads=not args.scalar_loads, tap_major=not args.channel_major)
    rng = np.random.default_rng(0)
    jobs = []
    for nb, c, hw, co, k in ([(1, 16, 8, 16, 3)] if args.quick else MOBILENET_1X1 if args.mobilenet else CONVS):
        nb = args.batch or nb
        x = tinydl.tensor(rng.standard_normal((nb, c, hw, hw), dtype=np.float32).astype(dtype))
        w = tinydl.tensor(rng.standard_normal((co, c, k, k), dtype=np.float32).astype(dtype))
        jobs.append((f"conv {nb}x{c}x{hw}x{hw} -> {co} k{k}", 2 * nb * co * hw * hw * c * k * k,
                     lambda x=x, w=w, k=k: F.conv2d(x, w, padding=k // 2)))
    for M, N, K in ([(32, 32, 64)] if args.quick else [] if args.mobilenet else MATMULS):
        a = tinydl.tensor(rng.standard_normal((M, K), dtype=np.float32).astype(dtype))
        wt = tinydl.tensor(rng.standard_normal((N, K), dtype=np.float32).astype(dtype))
        jobs.append((f"x @ W.T {M}x{N}x{K}", 2 * M * N * K, lambda a=a, wt=wt: a @ wt.T))
    rows = []
    jobs = [j for j in jobs if not args.only or args.only in j[0]]
    for label, flops, build in jobs:
        for tile in tiles:
            for split in args.splits:
                forced = tinydl.options(**switches, force_tile=None if tile == "auto" else tile,
                                        force_split_k=None if split == "auto" else int(split))
                try:
                    with forced:
                        ms = busy_gpu_ms(build, args.runs, args.copies, args.warm)
                except Exception as e:  # noqa: BLE001 - a variant a shape cannot take; keep sweeping
                    rows.append([label, tile, split, None, None, f"{type(e).__name__}"])
                    continue
                rows.append([label, tile, split, ms * 1e3, flops / ms / 1e9, ""])
                print(*rows[-1][:4], flush=True)  # progress, and the rows so far should the run be cut off
    print(tabulate(rows, headers=["shape", "tile", "split", "GPU us", "TFLOP/s", "note"], floatfmt=".3g",
                   missingval="-"))


def sweep_direct(args):
    import tinydl
    import tinydl.nn.functional as F
    from tabulate import tabulate
    rng = np.random.default_rng(0)
    rows = []
    for nb, (c, hw, s) in ([(2, (8, 8, 1))] if args.quick else [(b, d) for b in (16, 1) for d in DEPTHWISE]):
        x = tinydl.tensor(rng.standard_normal((nb, c, hw, hw), dtype=np.float32))
        w = tinydl.tensor(rng.standard_normal((c, 1, 3, 3), dtype=np.float32))
        out_hw = (hw - 1) // s + 1
        mb = nb * c * (hw * hw + out_hw * out_hw) * 4 / 1e6  # read once, written once
        label = f"depthwise {nb}x{c}x{hw}x{hw} s{s}"
        if args.only and args.only not in label:
            continue
        for strip in args.strips:
            with tinydl.options(force_strip=None if strip == "auto" else tuple(int(v) for v in strip.split("x"))):
                ms = busy_gpu_ms(lambda: F.relu(F.conv2d(x, w, stride=s, padding=1, groups=c)), args.runs,
                                 args.copies, args.warm)
            rows.append([label, strip, ms * 1e3, mb / ms / 1e3])
            print(*rows[-1][:3], flush=True)
    print(tabulate(rows, headers=["shape", "strip", "GPU us", "TB/s"], floatfmt=".3g"))


if __name__ == "__main__":
    main()
