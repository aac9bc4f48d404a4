"""`tinydl cache` and `tinydl cache clear`: what is kept on disk for faster first calls, and removing it."""
from __future__ import annotations

import typer
from tabulate import tabulate

app = typer.Typer(no_args_is_help=False, invoke_without_command=True, help="""What is kept on disk across
processes for faster first calls (tinydl's tuning cache, the GPU driver's shader cache): where, how big.

Examples:

\b
  tinydl cache
  tinydl cache clear              # tinydl's own files
  tinydl cache clear --driver     # also the driver's shader cache (the next first call compiles every kernel)
""")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n else "-"


@app.callback()
def show(ctx: typer.Context):
    if ctx.invoked_subcommand is not None:
        return
    from ..caches import caches
    rows = [[c.name, str(c.path), _mib(c.size()) if c.path.exists() else "absent", c.what] for c in caches()]
    typer.echo(tabulate(rows, headers=["cache", "path", "size", "what"], disable_numparse=True))


@app.command(help="Remove tinydl's cache files (with --driver, also the driver's shader cache).")
def clear(driver: bool = typer.Option(False, "--driver", help="Also remove the GPU driver's shader cache (shared "
                                      "with other programs that use the driver).")):
    from ..caches import caches
    for c in caches():
        if c.path.exists() and (driver or not c.driver):
            size = c.size()
            c.clear()
            typer.echo(f"removed {c.name}: {c.path} ({_mib(size)})")
