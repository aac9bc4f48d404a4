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
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results"


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


# -- models ------------------------------------------------------------------------------------------------
def vision(name):
    def build(batch, quick):
        from tinydl.interop.torchvision_compat import import_torchvision
        tv = import_torchvision()
        import torch
        torch.manual_seed(0)
        model = getattr(tv.models, name)().eval()
        size = 64 if quick else 224
        x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
        return model, (x,)
    return build


def _transformers():
    from tinydl.interop.torchvision_compat import import_torchvision
    import_torchvision()  # transformers imports torchvision when present; on CPU torch it needs the fix first
    import transformers
    return transformers


def bert(batch, quick):
    import torch
    transformers = _transformers()
    cfg = transformers.BertConfig(num_hidden_layers=2 if quick else 12, hidden_size=768, num_attention_heads=12,
                                  intermediate_size=3072, attn_implementation="eager", use_cache=False)
    torch.manual_seed(0)
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    seq = 16 if quick else 128
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq)).astype(np.int64)
    return model, (ids,)


def gpt2(batch, quick):
    import torch
    transformers = _transformers()
    cfg = transformers.GPT2Config(n_layer=2 if quick else 12, attn_implementation="eager", use_cache=False)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    seq = 16 if quick else 128
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq)).astype(np.int64)
    return model, (ids,)


MODELS = {"resnet18": (vision("resnet18"), (1, 16)), "mobilenet_v2": (vision("mobilenet_v2"), (1, 16)),
          "resnet50": (vision("resnet50"), (1, 16)), "bert_base": (bert, (1, 8)), "gpt2": (gpt2, (1,))}


def first_tensor(out):
    """The main output of a model (logits / last hidden state) as a torch/tinydl tensor."""
    if hasattr(out, "logits") and out.logits is not None:
        return out.logits
    if hasattr(out, "last_hidden_state"):
        return out.last_hidden_state
    if isinstance(out, dict):
        return first_tensor(next(iter(out.values())))
    if isinstance(out, (tuple, list)):
        return first_tensor(out[0])
    return out


# -- peers -------------------------------------------------------------------------------------------------
def run_torch(model, inputs, device, runs):
    import torch
    m = model.to(device)
    def call():
        with torch.no_grad():
            t = [torch.from_numpy(a).to(device) for a in inputs]
            return first_tensor(m(*t)).float().cpu().numpy()
    out = call()
    if device == "cuda":
        torch.cuda.synchronize()
    ms = median_ms(call, runs)
    m.to("cpu")
    return ms, out


def run_tinydl(model, inputs, runs, reference):
    import tinydl
    tm = tinydl.from_torch(model, example_inputs=tuple(_torch_inputs(inputs)))
    return time_converted(tm, inputs, runs, reference) + (tm,)


def run_tinydl_tuned(model, inputs, runs, reference):
    """(median ms, max abs error, seconds of the first call) of a fresh conversion with tinydl.tuning on: the
    first call measures each new GEMM shape's variants (cached on disk: a second run pays nothing)."""
    import tinydl
    from tinydl import tuning
    tuning.enable()
    try:
        tm = tinydl.from_torch(model, example_inputs=tuple(_torch_inputs(inputs)))
        t0 = time.perf_counter()
        tm(*[tinydl.tensor(a) for a in inputs])
        first_s = time.perf_counter() - t0
        return time_converted(tm, inputs, runs, reference) + (first_s,)
    finally:
        tuning.enable(False)


def run_tinydl_fp16(tm, inputs, runs, reference):
    """The converted model after .half() (float16 weights and activations, computed in float32 by the kernels;
    the output is read back as float32). It leaves the model in float16."""
    tm.half()
    return time_converted(tm, inputs, runs, reference, half=True)


def time_converted(tm, inputs, runs, reference, half=False):
    """(median ms, max abs error vs reference) of tm on the numpy inputs; half: floating inputs as float16."""
    import tinydl
    from tinydl.testing import max_error

    def call():
        xs = [tinydl.tensor(a).half() if half and np.issubdtype(a.dtype, np.floating) else tinydl.tensor(a)
              for a in inputs]
        return first_tensor(tm(*xs)).float().numpy()
    out = call()
    return median_ms(call, runs), max_error(out, reference)[0]


def _torch_inputs(inputs):
    import torch
    return [torch.from_numpy(a) for a in inputs]


def run_ort_webgpu(model, inputs, runs, workdir: Path, reference):
    """(median ms, max abs error vs reference, note) of ONNX Runtime's WebGPU provider on an ONNX export of the
    model; ms is None (and the note says why) where it cannot run."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, None, "onnxruntime not installed"
    if "WebGpuExecutionProvider" not in ort.get_available_providers():
        return None, None, "no WebGpuExecutionProvider"
    import torch

    class MainOutput(torch.nn.Module):  # HF models return ModelOutput objects; ONNX wants plain tensors
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *args):
            return first_tensor(self.m(*args))

    path = workdir / f"model_{id(model)}.onnx"
    names = [f"input{i}" for i in range(len(inputs))]
    # eval(): the TorchScript exporter restores the wrapper's training flag afterwards, and with it the model's
    wrapped, note = MainOutput(model).eval(), None
    try:
        torch.onnx.export(wrapped, tuple(_torch_inputs(inputs)), str(path), input_names=names,
                          dynamo=False, opset_version=17)
    except Exception as e:  # noqa: BLE001 - GPT-2's packed-sequence check uses aten::diff, which it lacks
        note = f"TorchScript export failed ({type(e).__name__}), dynamo export"
        try:  # torch.export, as tinydl.from_torch traces it
            torch.onnx.export(wrapped, tuple(_torch_inputs(inputs)), str(path), input_names=names, dynamo=True)
        except Exception as e2:  # noqa: BLE001 - report why the peer is missing, keep benchmarking
            why = str(e2).splitlines()[0][:80] if str(e2) else ""
            return None, None, f"onnx export failed: {type(e2).__name__}: {why}"
    from tinydl.testing import max_error
    sess = ort.InferenceSession(str(path), providers=["WebGpuExecutionProvider"])
    feeds = {n: a for n, a in zip(names, inputs)}
    err = max_error(sess.run(None, feeds)[0], reference)[0]
    ms = median_ms(lambda: sess.run(None, feeds), runs)
    path.unlink(missing_ok=True)
    for extra in workdir.glob(path.name + "*"):
        extra.unlink()
    return ms, err, note


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
    jobs = [(m, b) for m in args.models for b in (args.batches or MODELS[m][1])]
    rows, records = [], []
    args.out.mkdir(parents=True, exist_ok=True)
    for name, batch in tqdm(jobs, desc="benchmark", file=sys.stderr):
        rec = {"model": name, "batch": batch}
        try:
            model, inputs = MODELS[name][0](batch, args.quick)
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
                       rec.get("ort_webgpu_ms"), rec.get("max_abs_err"), rec.get("fp16_max_abs_err"),
                       rec.get("ort_max_abs_err"), "; ".join(n for n in notes if n)])
    headers = ["model", "batch", "tinydl ms"] + (["tinydl tuned ms"] if args.tune else []) + [
        "tinydl fp16 ms", "torch CPU ms", "torch CUDA ms", "ORT-WebGPU ms", "max abs err", "fp16 max abs err",
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


COLUMNS = [("tinydl_ms", "tinydl"), ("tinydl_tuned_ms", "tinydl tuned"), ("tinydl_fp16_ms", "tinydl fp16"),
           ("torch_cuda_ms", "torch CUDA eager"),
           ("ort_webgpu_ms", "ORT-WebGPU"), ("torch_cpu_ms", "torch CPU")]


def plot(records, header, path: Path) -> None:
    """Grouped bars: one group per model x batch, one bar per measured column (log scale: CPU and GPU peers
    differ by 10-100x)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot: matplotlib is not installed (pip install -e '.[bench]'); no chart written", file=sys.stderr)
        return
    cols = [(k, label) for k, label in COLUMNS if any(r.get(k) for r in records)]
    groups = [f"{r['model']}\nbatch {r['batch']}" for r in records]
    width = 0.8 / max(len(cols), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(groups)), 4.5))
    for i, (k, label) in enumerate(cols):
        xs = [g + (i - (len(cols) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [r.get(k) or 0 for r in records], width, label=label)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("median end-to-end ms (lower is better)")
    ax.set_title(f"{header['device']} ({header['backend']}), {header['date']}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"chart: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
