"""`tinydl bench MODEL`: the side-by-side benchmark of one model (tinydl.bench): median end-to-end ms of tinydl
and its peers, kernels per forward, the per-kernel profile, optionally a chart."""
from __future__ import annotations

import datetime
import importlib.util
import tempfile
from pathlib import Path

import typer
from tabulate import tabulate

from . import inputs, models
from .compare import SHAPE_HELP
from .errors import MissingPackage, reported

HELP = """Time MODEL end to end (numpy in, numpy out; the median of --runs calls after warm-up) in tinydl (float32,
and float16 where the adapter has shader-f16), torch on the CPU, torch CUDA (when available) and ONNX Runtime's
WebGPU provider (when onnxruntime is installed); print the kernels per forward and the per-kernel profile.

MODEL is one of the benchmark's models (resnet18, mobilenet_v2, resnet50, bert_base, gpt2; --batch, --quick), or
torchvision:NAME, timm:NAME, MODULE:FACTORY with --input-shape.

Examples:

\b
  tinydl bench resnet18 --batch 16
  tinydl bench bert_base --quick --runs 5 --no-fp16
  tinydl bench torchvision:efficientnet_b0 --input-shape 8,3,224,224 --plot effnet.png
"""


@reported
def bench(model: str = typer.Argument(..., help="A benchmark model name, torchvision:NAME, "
                                      "timm:NAME or MODULE:FACTORY."),
          input_shape: list[str] = typer.Option([], "--input-shape", "-s", help=SHAPE_HELP),
          batch: int = typer.Option(1, min=1, help="Batch size of a benchmark model."),
          quick: bool = typer.Option(False, help="Benchmark models: small inputs, 2-layer transformers."),
          runs: int = typer.Option(20, min=1, help="Timed calls per column (their median)."),
          fp16: bool = typer.Option(True, "--fp16/--no-fp16", help="The tinydl float16 column."),
          profile: bool = typer.Option(True, "--profile/--no-profile", help="The per-kernel profile."),
          plot: Path = typer.Option(None, help="Save the table as a bar chart (.png; needs matplotlib)."),
          seed: int = typer.Option(0, help="Seed of the random inputs.")):
    from ..bench import models as zoo, peers
    from ..bench import plot as chart
    if plot is not None and not chart.available():
        raise MissingPackage("--plot", "matplotlib", "pip install 'tinydl[bench]'")
    if model in zoo.MODELS:
        if input_shape:
            raise typer.BadParameter(f"{model} makes its own inputs: use --batch / --quick", param_hint="--input-shape")
        torch_model, xs = zoo.MODELS[model][0](batch, quick)
    else:
        torch_model, default = models.load(model)
        xs, _ = inputs.model_inputs(input_shape, default, None, seed)
        batch = xs[0].shape[0] if xs[0].ndim else 1
    import torch

    import tinydl
    rt_info = tinydl.device_info()
    rec = {"model": model, "batch": batch}
    rec["torch_cpu_ms"], ref = peers.run_torch(torch_model, xs, "cpu", max(3, runs // 4))
    rec["tinydl_ms"], err, tm = peers.run_tinydl(torch_model, xs, runs, ref)
    with tinydl.debug.count_kernels() as counted:
        zoo.first_tensor(tm(*[tinydl.tensor(a) for a in xs])).numpy()
    prof = None
    if profile:
        with tinydl.profile() as prof:
            zoo.first_tensor(tm(*[tinydl.tensor(a) for a in xs])).numpy()
    rows = [["tinydl", rec["tinydl_ms"], err]]
    if torch.cuda.is_available():
        rec["torch_cuda_ms"], out = peers.run_torch(torch_model, xs, "cuda", runs)
        rows.append(["torch CUDA", rec["torch_cuda_ms"], abs(out - ref).max()])
    if importlib.util.find_spec("onnxruntime"):
        with tempfile.TemporaryDirectory() as tmp:
            rec["ort_webgpu_ms"], ort_err, why = peers.run_ort_webgpu(torch_model, xs, runs, Path(tmp), ref)
        rows.append(["ORT-WebGPU", rec["ort_webgpu_ms"], ort_err] + ([why] if why else []))
    if fp16 and "shader-f16" in rt_info["features"]:  # last: it turns the converted model's weights to float16
        rec["tinydl_fp16_ms"], fp16_err = peers.run_tinydl_fp16(tm, xs, runs, ref)
        rows.insert(1, ["tinydl float16", rec["tinydl_fp16_ms"], fp16_err])
    rows.append(["torch CPU", rec["torch_cpu_ms"], None, "the reference"])
    header = {"device": rt_info["adapter"], "backend": rt_info["backend"], "date": datetime.date.today().isoformat()}
    typer.echo(f"{model} batch {batch} on {header['device']} ({header['backend']}): median of {runs} runs, "
               f"{counted.count} kernels per forward\n")
    typer.echo(tabulate(rows, headers=["column", "median ms", "max abs err vs torch CPU", "note"], floatfmt=".3g",
                        missingval="-"))
    if prof is not None:
        typer.echo("\n" + prof.table())
    if plot is not None:
        chart.plot([rec], header, plot)
