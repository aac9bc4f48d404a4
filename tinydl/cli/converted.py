"""The named model as tinydl runs it: converted by from_torch, in float32 or (--dtype float16) after .half(),
called on numpy inputs with float16 inputs and float32 outputs, so it compares with torch's float32 directly."""
from __future__ import annotations

import enum

import numpy as np


class DType(str, enum.Enum):
    """--dtype: the precision tinydl runs the model in (torch's reference stays float32)."""
    float32 = "float32"
    float16 = "float16"


def convert(model, args: list, kwargs: dict, dtype: DType = DType.float32):
    """A callable taking numpy inputs (positional and keyword, as the torch model does) and returning tinydl
    tensors in the model's output structure; float16: the weights and floating inputs in float16, the
    floating outputs back in float32."""
    import torch

    import tinydl
    tm = tinydl.from_torch(model, example_inputs=(tuple(torch.from_numpy(a) for a in args),
                                                  {k: torch.from_numpy(v) for k, v in kwargs.items()}))
    half = dtype == DType.float16
    if half:
        tm.half()

    def put(a):
        t = tinydl.tensor(a) if isinstance(a, np.ndarray) else a
        return t.half() if half and isinstance(t, tinydl.Tensor) and t.dtype == tinydl.float32 else t

    def call(*xs, **kw):
        out = tm(*map(put, xs), **{k: put(v) for k, v in kw.items()})
        return _as_float32(out) if half else out
    call.module = tm
    return call


def _as_float32(x):
    """x's float16 tensors as float32, in the same structure (tuples, lists, namedtuples, dicts, HF ModelOutput)."""
    import tinydl
    if isinstance(x, tinydl.Tensor):
        return x.float() if x.dtype == tinydl.float16 else x
    if isinstance(x, dict) or hasattr(x, "keys") and hasattr(x, "__setitem__"):
        for k in list(x.keys()):
            x[k] = _as_float32(x[k])
        return x
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*map(_as_float32, x))
    if isinstance(x, (tuple, list)):
        return type(x)(map(_as_float32, x))
    return x


def run(call, args: list, kwargs: dict) -> None:
    """One forward of a converted model, every tensor output computed (in one plan)."""
    import tinydl
    from ..testing import leaves
    out = [v for _, v in leaves(call(*args, **kwargs)) if isinstance(v, tinydl.Tensor)]
    if out:
        tinydl.realize(*out)
