"""The dtypes tinydl stores, how they map to numpy/WGSL, and torch's type-promotion rules.

Floats are computed in f32 inside every kernel (float16 is only a storage format), so a fused chain
rounds once, at its store.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DType:
    name: str
    np: type  # numpy dtype of the host side
    storage: str  # WGSL element type of the storage buffer
    compute: str  # WGSL type of values inside a kernel
    itemsize: int  # bytes per element in the storage buffer
    category: int  # 0 bool < 1 integer < 2 floating (torch's promotion categories)

    @property
    def is_floating_point(self) -> bool:
        return self.category == 2

    def __repr__(self) -> str:
        return f"tinydl.{self.name}"


float32 = DType("float32", np.float32, "f32", "f32", 4, 2)
float16 = DType("float16", np.float16, "f16", "f32", 2, 2)
int32 = DType("int32", np.int32, "i32", "i32", 4, 1)
bool_ = DType("bool", np.bool_, "u32", "bool", 4, 0)

default_float = float32
ALL = (float32, float16, int32, bool_)
_BY_NAME = {d.name: d for d in ALL} | {"float": float32, "half": float16, "int": int32, "int64": int32}


def to_dtype(x) -> DType:
    """Accept a tinydl dtype, a torch dtype, a numpy dtype or a name."""
    if isinstance(x, DType):
        return x
    name = str(x).replace("torch.", "")
    if name in _BY_NAME and name != "int64":
        return _BY_NAME[name]
    try:
        npd = np.dtype(x)
    except TypeError:
        try:
            npd = np.dtype(name)  # torch dtypes (torch.int64, torch.float64, ...) by their numpy name
        except TypeError:
            raise TypeError(f"unsupported dtype {x!r}: tinydl supports float32, float16, int32 and bool") from None
    return from_numpy_dtype(npd)


def from_numpy_dtype(npd: np.dtype) -> DType:
    npd = np.dtype(npd)
    if npd == np.float16:
        return float16
    if npd.kind == "f":
        return float32  # float64 is not a GPU type: computed as float32
    if npd.kind == "b":
        return bool_
    if npd.kind in "iu":
        return int32  # int64 / uint8 ... become int32 (range checked on conversion)
    raise TypeError(f"unsupported dtype {npd}: tinydl supports float32, float16, int32 and bool")


def promote(a: DType, b: DType) -> DType:
    """torch.promote_types for tinydl's dtypes."""
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.category == 2 and a != b:
        return float32
    return a


def scalar_dtype(v) -> DType:
    if isinstance(v, bool):
        return bool_
    if isinstance(v, (int, np.integer)):
        return int32
    if isinstance(v, (float, np.floating)):
        return default_float
    raise TypeError(f"unsupported scalar {v!r} of type {type(v).__name__}")


def promote_with_scalar(t: DType, v) -> DType:
    """torch's rule: a Python scalar only raises the category (int tensor + 1.5 -> float32; half + 1.5 -> half)."""
    s = scalar_dtype(v)
    return s if s.category > t.category else t


class BitsFloat(float):
    """A float constant that compares and hashes by its bits: plan signatures (which hold constants) then tell -0.0
    from 0.0 (x / -0.0 is -inf, x / 0.0 is inf) and find NaN equal to NaN (a NaN constant reuses its plan)."""
    __slots__ = ()

    def __eq__(self, other):
        return isinstance(other, float) and struct.pack("<d", self) == struct.pack("<d", other)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(struct.pack("<d", self))


def const_value(v):
    """A constant as a node holds it: zeros and NaN as BitsFloat (see there), everything else unchanged."""
    if isinstance(v, float) and not isinstance(v, BitsFloat) and (v == 0.0 or v != v):
        return BitsFloat(v)
    return v
