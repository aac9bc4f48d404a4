"""`tinydl profile MODEL`: the per-kernel profile of one forward (after a first call that compiles), as a table,
and optionally as a Chrome trace of the kernels' GPU timestamps."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from . import converted, inputs, models
from .compare import FILE_HELP, SHAPE_HELP, dtype_option
from .errors import reported

HELP = """Run MODEL once in tinydl (compiling its kernels), then profile a second forward: per kernel its calls,
GPU time (timestamp queries where the adapter has them), TFLOP/s and GB/s; plus the host's planning and
submit time. --trace writes the kernels' GPU timestamps as a Chrome trace (open in chrome://tracing or
https://ui.perfetto.dev).

MODEL is torchvision:NAME, timm:NAME or MODULE:FACTORY, as for `tinydl compare`.

Examples:

\b
  tinydl profile torchvision:resnet18 --input-shape 1,3,224,224
  tinydl profile timm:convnext_tiny --dtype float16 --trace convnext.json
"""


@reported
def profile(model: str = typer.Argument(..., help="torchvision:NAME, timm:NAME or MODULE:FACTORY"),
            input_shape: list[str] = typer.Option([], "--input-shape", "-s", help=SHAPE_HELP),
            dtype: converted.DType = dtype_option(),
            example_inputs: Path = typer.Option(None, "--example-inputs", help=FILE_HELP),
            trace: Path = typer.Option(None, help="Also write a Chrome-trace JSON of the kernels here."),
            top: int = typer.Option(30, min=1, help="Rows of the table (the kernels with most GPU time)."),
            seed: int = typer.Option(0, help="Seed of the random inputs.")):
    import tinydl
    torch_model, default_shape = models.load(model)
    args, kwargs = inputs.model_inputs(input_shape, default_shape, example_inputs, seed)
    call = converted.convert(torch_model, args, kwargs, dtype)
    converted.run(call, args, kwargs)  # compiles: the profile is of a forward as it runs from then on
    with tinydl.profile() as prof:
        converted.run(call, args, kwargs)
    typer.echo(prof.table(top))
    if trace is not None:
        trace.write_text(json.dumps(prof.chrome_trace()))
        typer.echo(f"\nChrome trace of {len(prof.kernels)} kernels: {trace} (chrome://tracing or ui.perfetto.dev)")
