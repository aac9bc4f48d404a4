"""What every command shares: tinydl's expected failures (no adapter, a missing optional package, ops it cannot
convert) shown as one `Error: ...` line and exit code 1 instead of a traceback. Bad arguments raise
typer.BadParameter (exit code 2)."""
from __future__ import annotations

import functools

import typer

from ..adapter import NoAdapterError
from ..interop.registry import UnsupportedTorchOps


class CommandError(Exception):
    """A command cannot go on; the message says why and what to do."""


class MissingPackage(CommandError):
    """An optional package a command needs is not installed: says which and how to install it."""

    def __init__(self, what: str, package: str, install: str):
        super().__init__(f"{what} needs {package}, which is not installed: {install}")


def reported(fn):
    """fn with CommandError, NoAdapterError (which says what to install) and UnsupportedTorchOps (a model tinydl
    cannot convert: every missing op listed) as `Error: ...` and exit code 1."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (CommandError, NoAdapterError, UnsupportedTorchOps) as e:
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(1) from None
    return run
