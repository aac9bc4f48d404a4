"""Side-by-side benchmark: tinydl vs torch CPU vs torch CUDA eager vs ONNX Runtime WebGPU, in one run.

    python -m benchmarks.run                      # every model, batch 1 and 16 (BERT: 1 and 8), ≥20 runs each
    python -m benchmarks.run --models resnet18 --batches 1 --runs 30 --kernels
    python -m benchmarks.run --quick              # small inputs, few runs: a smoke test (lavapipe)
    python -m benchmarks.run --tune               # adds a column with tinydl.tuning on (measured GEMM variants)

Each figure is the median end-to-end latency (numpy in -> numpy out) over --runs runs after warm-up; the
tinydl columns (float32, and float16 after model.half()) also give their max abs error against torch CPU's
float32 on the same input, as does ORT's column. --kernels adds the kernel rooflines (matmul TFLOP/s, fused
elementwise GB/s vs a copy, ResNet-50 conv shapes). Results are printed as one table and written to
benchmarks/results/<date>-<device>.{json,md}; --plot also draws it (.png, matplotlib).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from tinydl.bench.models import MODELS, builder, first_tensor
from tinydl.bench.peers import run_ort_webgpu, run_tinydl, run_tinydl_fp16, run_tinydl_tuned, run_torch
from tinydl.bench.plot import plot

RESULTS = Path(__file__).parent / "results"


# -- kernel rooflines --------------------------------------------------------------------------------------
def kernel_rooflines(runs, quick):
    import tinydl
    rows = []
    rng = np.random.default_rng(0)
    try:
        import torch
        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    shapes = [(256, 256, 256)] if quick else [(1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096),
                                              (128, 3072, 768)]
    for M, N, K in shapes:
        a = tinydl.tensor(rng.standard_normal((M, K), dtype=np.float32))
        b = tinydl.tensor(rng.standard_normal((K, N), dtype=np.float32))
        t = busy_gpu_ms(lambda: a @ b, runs)
        peer = None
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = False
            ta, tb = torch.randn(M, K, device="cuda"), torch.randn(K, N, device="cuda")
            peer = _cuda_ms(lambda: ta @ tb, runs)
        flops = 2 * M * N * K
        rows.append([f"matmul {M}x{N}x{K}", flops / t / 1e9, flops / peer / 1e9 if peer else None, "TFLOP/s"])
    half_shapes = [(256, 256, 256)] if quick else [(4096, 4096, 4096), (1024, 768, 768), (1024, 3072, 768),
                                                   (1024, 768, 3072), (1024, 2304, 768), (3152, 2304, 768)]
    for M, N, K in half_shapes:  # float16 in and out (BERT-base batch 8, GPT-2, ViT-B/16 batch 16 shapes)
        a = tinydl.tensor(rng.standard_normal((M, K)).astype(np.float16))
        b = tinydl.tensor(rng.standard_normal((K, N)).astype(np.float16))
        t = busy_gpu_ms(lambda: a @ b, runs)
        peer = None
        if cuda:
            ta, tb = torch.randn(M, K, device="cuda").half(), torch.randn(K, N, device="cuda").half()
            peer = _cuda_ms(lambda: ta @ tb, runs)
        flops = 2 * M * N * K
        rows.append([f"matmul {M}x{N}x{K} fp16", flops / t / 1e9, flops / peer / 1e9 if peer else None, "TFLOP/s"])
    n = 1 << (20 if quick else 26)
    x = tinydl.tensor(rng.standard_normal(n, dtype=np.float32))
    chain = busy_gpu_ms(lambda: (x * 1.5 + 0.5).relu().exp() * x - 1.0, runs)
    copy = busy_gpu_ms(lambda: x * 1.0, runs)
    rows.append([f"elementwise chain (6 ops, {n} floats)", 2 * 4 * n / chain / 1e6, None, "GB/s"])
    rows.append([f"copy ({n} floats)", 2 * 4 * n / copy / 1e6, None, "GB/s"])
    import tinydl.nn.functional as F
    convs = [(1, 64, 56, 64, 1), (1, 64, 56, 64, 3), (1, 128, 28, 128, 3), (1, 256, 14, 256, 3), (1, 512, 7, 512, 3),
             (16, 64, 56, 64, 3)] if not quick else [(1, 16, 16, 16, 3)]
    for nb, c, hw, co, k in convs:
        xi = tinydl.tensor(rng.standard_normal((nb, c, hw, hw), dtype=np.float32))
        wi = tinydl.tensor(rng.standard_normal((co, c, k, k), dtype=np.float32))
        t = busy_gpu_ms(lambda: F.conv2d(xi, wi, padding=k // 2), runs)
        peer = None
        if cuda:
            tx, tw = torch.randn(nb, c, hw, hw, device="cuda"), torch.randn(co, c, k, k, device="cuda")
            torch.backends.cudnn.allow_tf32 = False
            peer = _cuda_ms(lambda: torch.nn.functional.conv2d(tx, tw, padding=k // 2), runs)
        flops = 2 * nb * co * hw * hw * c * k * k
        rows.append([f"conv2d {nb}x{c}x{hw}x{hw} -> {co}, k{k}", flops / t / 1e9, flops / peer / 1e9 if peer else None,
                     "TFLOP/s"])
    return rows


def busy_gpu_ms(build, runs: int, copies: int = 50, warm_s: float = 0.5) -> float:
    """ms per op on a busy GPU, as it runs inside a model: the op's kernels (built by build(), planned afresh)
    are encoded `copies` times into one submit over the same buffers, so each copy waits for the one before
    (wgpu puts a barrier between dispatches that write the same buffer; independent copies would overlap and
    hide how well one op fills the GPU), timed by timestamps at the start and end of their one compute pass
    (where the adapter lacks them, by the wall clock until a read-back queued after them returns: that also
    counts the host's encode time, ~6-12 us per dispatch);
    the median over `runs` submits after `warm_s` seconds of them. One short kernel per submit measures mostly
    the clock ramp (single kernels varied 5x that way on the H100 box)."""
    from tinydl import schedule
    from tinydl.runtime import get_runtime
    from tinydl.tuning import run_seconds
    kernels, out = schedule.kernels_for(build())
    try:
        t_end = time.perf_counter() + warm_s
        run_seconds(kernels, out, copies)
        while time.perf_counter() < t_end:
            run_seconds(kernels, out, copies)
        return statistics.median(run_seconds(kernels, out, copies) for _ in range(runs)) / copies * 1e3
    finally:
        get_runtime().release(out)


def _cuda_ms(fn, runs, copies: int = 10):
    """torch CUDA's counterpart of busy_gpu_ms: `copies` back-to-back calls between two events, per call."""
    import torch
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(copies):
            fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / copies)
    return statistics.median(times)


# -- main --------------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--batches", nargs="*", type=int)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="small inputs and 2-layer transformers (smoke test)")
    ap.add_argument("--kernels", action="store_true", help="also measure kernel rooflines")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--no-fp16", dest="fp16", action="store_false", help="skip the tinydl float16 column")
    ap.add_argument("--tune", action="store_true",
                    help="add a column of tinydl with tuning on (tinydl.tuning; its first call's seconds in the note)")
    ap.add_argument("--profile", action="store_true", help="print tinydl's per-kernel profile of each model")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--plot", action="store_true", help="also draw the table as a bar chart (needs matplotlib)")
    args = ap.parse_args(argv)

    import tinydl
    from tabulate import tabulate
    from tqdm import tqdm
    try:
        import torch
        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    info = tinydl.device_info()
    header = {"device": info["adapter"], "backend": info["backend"], "date": datetime.date.today().isoformat(),
              "host": platform.node(), "python": sys.version.split()[0], "runs": args.runs, "quick": args.quick}
    jobs = [(m, b) for m in args.models for b in (args.batches or builder(m)[1])]
    rows, records = [], []
    args.out.mkdir(parents=True, exist_ok=True)
    for name, batch in tqdm(jobs, desc="benchmark", file=sys.stderr):
        rec = {"model": name, "batch": batch}
        try:
            model, inputs = builder(name)[0](batch, args.quick)
            rec["torch_cpu_ms"], ref = run_torch(model, inputs, "cpu", max(3, args.runs // 4))
            rec["tinydl_ms"], rec["max_abs_err"], tm = run_tinydl(model, inputs, args.runs, ref)
            if args.profile:
                with tinydl.profile() as prof:
                    first_tensor(tm(*[tinydl.tensor(a) for a in inputs])).numpy()
                print(f"\n== {name} batch {batch}\n{prof.table()}", file=sys.stderr)
            if args.tune:
                rec["tinydl_tuned_ms"], rec["tuned_max_abs_err"], rec["tune_first_call_s"] = run_tinydl_tuned(
                    model, inputs, args.runs, ref)
            if args.fp16:  # last: it turns the converted model's weights to float16
                rec["tinydl_fp16_ms"], rec["fp16_max_abs_err"] = run_tinydl_fp16(tm, inputs, args.runs, ref)
            if cuda:
                rec["torch_cuda_ms"], _ = run_torch(model, inputs, "cuda", args.runs)
                if args.fp16:
                    rec["torch_cuda_fp16_ms"], _ = run_torch(model, inputs, "cuda", args.runs, half=True)
            if not args.no_ort:
                rec["ort_webgpu_ms"], rec["ort_max_abs_err"], why = run_ort_webgpu(model, inputs, args.runs, args.out,
                                                                                   ref)
                if why:
                    rec["ort_note"] = why
        except Exception as e:  # noqa: BLE001 - one failing row must not lose the others
            rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:120]
            traceback.print_exc(file=sys.stderr)
        records.append(rec)
        notes = [rec.get("error") or rec.get("ort_note", "")]
        if "tune_first_call_s" in rec:
            notes.append(f"tuned: first call {rec['tune_first_call_s']:.1f} s, max abs err "
                         f"{rec['tuned_max_abs_err']:.2g}")
        rows.append([name, batch, rec.get("tinydl_ms")] + ([rec.get("tinydl_tuned_ms")] if args.tune else [])
                    + [rec.get("tinydl_fp16_ms"), rec.get("torch_cpu_ms"), rec.get("torch_cuda_ms"),
                       rec.get("torch_cuda_fp16_ms"), rec.get("ort_webgpu_ms"), rec.get("max_abs_err"), rec.get("fp16_max_abs_err"),
                       rec.get("ort_max_abs_err"), "; ".join(n for n in notes if n)])
    headers = ["model", "batch", "tinydl ms"] + (["tinydl tuned ms"] if args.tune else []) + [
        "tinydl fp16 ms", "torch CPU ms", "torch CUDA ms", "torch CUDA fp16 ms", "ORT-WebGPU ms", "max abs err", "fp16 max abs err",
        "ORT max abs err", "note"]
    table = tabulate(rows, headers=headers, floatfmt=".3g", missingval="-")
    out = {"header": header, "models": records}
    text = f"{header['device']} ({header['backend']}), {header['date']}, median of {args.runs} runs\n\n{table}\n"
    if args.kernels:
        kr = kernel_rooflines(args.runs, args.quick)
        out["kernels"] = kr
        # three significant digits, but GB/s in the thousands in full (".3g" would print 2996 as 3e+03)
        text += "\n" + tabulate(kr, headers=["kernel", "tinydl", "torch CUDA", "unit"], floatfmt=".4g",
                                missingval="-") + "\n"
    print(text)
    stem = f"{header['date']}-{header['device'].replace(' ', '_').replace('/', '_')[:40]}"
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=1, default=str))
    (args.out / f"{stem}.md").write_text(text)
    if args.plot:
        plot(records, header, args.out / f"{stem}.png")


if __name__ == "__main__":
    main()
