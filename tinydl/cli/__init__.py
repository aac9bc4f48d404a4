"""The `tinydl` command (and `python -m tinydl`): info, compare, bench, profile, cache.

app.py ties the commands together; each command is a module of its own; models.py turns MODULE:FACTORY into a
torch model and inputs.py builds its inputs (shapes, dtypes, files)."""
from .app import app, main

__all__ = ["app", "main"]
