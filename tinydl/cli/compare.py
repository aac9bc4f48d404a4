"""`tinydl compare MODEL`: the model in torch (CPU) and in tinydl on the same inputs, tinydl.testing.compare's
table, exit code 1 when an output differs beyond the tolerance (for a user's CI)."""
from __future__ import annotations

from pathlib import Path

import typer

from . import converted, inputs, models
from .errors import reported

HELP = """Run MODEL in torch on the CPU and in tinydl on the same random inputs (or --example-inputs) and print
each output's errors. Exit code 0 when every output matches (|tinydl - torch| <= atol + rtol * |torch|), 1 when
one does not, 2 for bad arguments.

MODEL is torchvision:NAME, timm:NAME, or MODULE:FACTORY: a module path (found from the current directory) or a
.py file, and a function or class in it that builds the torch model without arguments (or a module instance).

Examples:

\b
  tinydl compare torchvision:resnet50
  tinydl compare timm:convnext_tiny --dtype float16
  tinydl compare mypackage.models:build --input-shape 1,3,64,64 --input-shape 1,10
  tinydl compare models.py:TextModel --example-inputs batch.safetensors --rtol 1e-3 --atol 1e-3
"""

DTYPE_HELP = ("float32, or float16: tinydl runs the model after .half() on float16 inputs, against torch's "
              "float32")
SHAPE_HELP = f"An input's shape ({inputs.SHAPE_HELP}); once per positional input. Zoo models default to theirs."
FILE_HELP = "A .safetensors or .npz file of named inputs, passed by name (int64 token ids, masks, ...)."
TOLERANCE = {"float32": (1e-4, 1e-4), "float16": (1e-2, 1e-2)}


def dtype_option():
    return typer.Option(converted.DType.float32.value, "--dtype", help=DTYPE_HELP)


@reported
def compare(model: str = typer.Argument(..., help="torchvision:NAME, timm:NAME or MODULE:FACTORY"),
            input_shape: list[str] = typer.Option([], "--input-shape", "-s", help=SHAPE_HELP),
            dtype: converted.DType = dtype_option(),
            example_inputs: Path = typer.Option(None, "--example-inputs", help=FILE_HELP),
            rtol: float = typer.Option(None, help="Relative tolerance (float32: 1e-4, float16: 1e-2)."),
            atol: float = typer.Option(None, help="Absolute tolerance (float32: 1e-4, float16: 1e-2)."),
            seed: int = typer.Option(0, help="Seed of the random inputs.")):
    from ..testing import compare as run_both
    torch_model, default_shape = models.load(model)
    args, kwargs = inputs.model_inputs(input_shape, default_shape, example_inputs, seed)
    tm = converted.convert(torch_model, args, kwargs, dtype)
    rtol = TOLERANCE[dtype.value][0] if rtol is None else rtol
    atol = TOLERANCE[dtype.value][1] if atol is None else atol
    title = f"{model} (tinydl {dtype.value} vs torch CPU float32)"
    report = run_both(torch_model, tm, *args, kwargs=kwargs, rtol=rtol, atol=atol, print_report=False, title=title)
    typer.echo(str(report))
    raise typer.Exit(0 if report.ok else 1)
