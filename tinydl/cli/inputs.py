"""A command's model inputs: random arrays of --input-shape (and --dtype), or named arrays from a .safetensors or
.npz file (read without unpickling)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

SHAPE_HELP = "comma-separated positive integers, such as 1,3,224,224"


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,224,224' (or 1x3x224x224) -> (1, 3, 224, 224); anything else raises BadParameter saying why."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    if not text.strip() or any(not p.isdigit() or int(p) == 0 for p in parts):
        raise typer.BadParameter(f"{text!r}: expected {SHAPE_HELP}", param_hint="--input-shape")
    return tuple(int(p) for p in parts)


def random_inputs(shapes: list[tuple[int, ...]], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s, dtype=np.float32) for s in shapes]


def read_file(path: Path) -> dict[str, np.ndarray]:
    """The named arrays of a .safetensors or .npz file (pickled objects refused: a file must not run code)."""
    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}", param_hint="--example-inputs")
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file
            arrays = load_file(str(path))
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        else:
            raise typer.BadParameter(f"{path}: expected a .safetensors or .npz file", param_hint="--example-inputs")
    except typer.BadParameter:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt file or pickled objects: say which file and why
        raise typer.BadParameter(f"cannot read {path}: {type(e).__name__}: {e}", param_hint="--example-inputs") \
            from None
    if not arrays:
        raise typer.BadParameter(f"{path} holds no arrays", param_hint="--example-inputs")
    return arrays


def model_inputs(shapes: list[str], default: tuple | None, example_inputs: Path | None, seed: int):
    """(positional inputs, keyword inputs) as numpy arrays: the file's named arrays as keywords, or one random
    float32 array per --input-shape (default: the zoo model's own input shape)."""
    if example_inputs is not None:
        if shapes:
            raise typer.BadParameter("give --input-shape or --example-inputs, not both", param_hint="--input-shape")
        return [], read_file(example_inputs)
    parsed = [parse_shape(s) for s in shapes] or ([default] if default else [])
    if not parsed:
        raise typer.BadParameter(f"this model needs it ({SHAPE_HELP}; once per input), or --example-inputs FILE "
                                 "(.safetensors / .npz of named inputs)", param_hint="--input-shape")
    return random_inputs(parsed, seed), {}
