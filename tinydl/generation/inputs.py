"""generate's inputs as numpy arrays, checked, with the kind they came as (the result is given back in it)."""
from __future__ import annotations

import numpy as np

from .._tensor import Tensor


def to_numpy(x):
    """(array, kind of x: "tinydl" / "torch" / "numpy") for a tinydl, torch or numpy (or nested list) input."""
    kind = type(x).__module__.split(".")[0]
    if isinstance(x, Tensor):
        return x.numpy(), "tinydl"
    if kind == "torch":
        return x.detach().cpu().numpy(), kind
    return np.asarray(x), "numpy"


def as_ids(x, name):
    """(int64 ids [batch, sequence], kind of x), or (None, None) for None."""
    if x is None:
        return None, None
    a, kind = to_numpy(x)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"generate: {name} must be integer ids of shape [batch, sequence], got {a.dtype} "
                         f"of shape {list(a.shape)}")
    return a.astype(np.int64), kind


def encoder_input(x, name):
    """An encoder-decoder's main input other than ids (Whisper's input_features, an image encoder's
    pixel_values): a float array, batch first."""
    a, kind = to_numpy(x)
    if a.ndim < 2 or not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"generate: {name} must be a float array of shape [batch, ...], got {a.dtype} of shape "
                         f"{list(a.shape)}")
    return a, kind
