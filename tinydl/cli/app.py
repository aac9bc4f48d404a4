"""The typer app: one command per module (info, compare, bench, profile, cache), help text with examples."""
from __future__ import annotations

import typer

from . import bench, cache, compare, info, profile

app = typer.Typer(
    name="tinydl", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="tinydl: PyTorch-style inference on WebGPU. Check the GPU, prove a model's parity with torch, time it.\n\n"
         "Examples:\n\n\b\n"
         "  tinydl info\n"
         "  tinydl compare torchvision:resnet50 --input-shape 1,3,224,224\n"
         "  tinydl bench resnet18 --batch 16 --plot resnet18.png\n"
         "  tinydl profile timm:convnext_tiny --trace trace.json")


def _version(value: bool):
    if value:
        from .._version import __version__
        typer.echo(f"tinydl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print tinydl's version and exit.")):
    pass


app.command("info", help=info.HELP)(info.info)
app.command("compare", help=compare.HELP, no_args_is_help=True)(compare.compare)
app.command("bench", help=bench.HELP, no_args_is_help=True)(bench.bench)
app.command("profile", help=profile.HELP, no_args_is_help=True)(profile.profile)
app.add_typer(cache.app, name="cache")


def main() -> None:
    app(prog_name="tinydl")
