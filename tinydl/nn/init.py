"""Default parameter initialization with torch's distributions (numpy RNG; `tinydl.manual_seed` seeds it)."""
from __future__ import annotations

import math

import numpy as np

from .module import Parameter

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(seed)


def uniform(shape, bound: float) -> Parameter:
    return Parameter(_rng.uniform(-bound, bound, size=shape).astype(np.float32))


def kaiming_uniform(shape, fan_in: int) -> Parameter:
    """torch's default for Linear/Conv weights: kaiming_uniform_(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return uniform(shape, 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0)


def normal(shape) -> Parameter:
    return Parameter(_rng.standard_normal(size=shape).astype(np.float32))


def constant(shape, value: float) -> Parameter:
    return Parameter(np.full(shape, value, dtype=np.float32))
