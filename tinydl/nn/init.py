"""Default parameter initialization with torch's distributions (numpy RNG; `tinydl.manual_seed` seeds it)."""
from __future__ import annotations

import contextlib
import math

import numpy as np

from .._tensor import zeros
from .module import Parameter

_rng = np.random.default_rng()
_skip = False


@contextlib.contextmanager
def no_init():
    """Build modules without drawing or uploading initial weights (they are placeholders until
    load_state_dict): used when converting a torch model whose weights are copied right after."""
    global _skip
    old, _skip = _skip, True
    try:
        yield
    finally:
        _skip = old


def manual_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(seed)


def uniform(shape, bound: float) -> Parameter:
    if _skip:
        return Parameter(zeros(shape))
    return Parameter(_rng.uniform(-bound, bound, size=shape).astype(np.float32))


def kaiming_uniform(shape, fan_in: int) -> Parameter:
    """torch's default for Linear/Conv weights: kaiming_uniform_(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return uniform(shape, 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0)


def normal(shape) -> Parameter:
    if _skip:
        return Parameter(zeros(shape))
    return Parameter(_rng.standard_normal(size=shape).astype(np.float32))


def constant(shape, value: float) -> Parameter:
    if _skip:
        return Parameter(zeros(shape))
    return Parameter(np.full(shape, value, dtype=np.float32))
