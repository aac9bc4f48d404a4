"""Shape rules shared by every op: dim normalization and broadcasting, with torch's error wording."""
from __future__ import annotations

import math


def normalize_dim(dim: int, ndim: int) -> int:
    lo, hi = (-ndim, ndim - 1) if ndim > 0 else (-1, 0)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if dim < lo or dim > hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")
    return dim % max(ndim, 1)


def normalize_dims(dims, ndim: int) -> tuple[int, ...]:
    """None or () means every dim; duplicates are an error as in torch."""
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, int):
        dims = (dims,)
    out = tuple(normalize_dim(d, ndim) for d in dims)
    if len(set(out)) != len(out):
        dup = next(d for i, d in enumerate(out) if d in out[:i])
        raise RuntimeError(f"dim {dup} appears multiple times in the list of dims")
    return tuple(sorted(out)) if out else tuple(range(ndim))


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    for i in range(ndim):
        for k, s in enumerate(padded):
            if s[i] == 1:
                continue
            if out[i] == 1:
                out[i] = s[i]
            elif out[i] != s[i]:
                a = next(j for j, p in enumerate(padded) if p[i] not in (1, s[i]))
                raise RuntimeError(
                    f"The size of tensor a ({padded[a][i]}) must match the size of tensor b ({s[i]}) "
                    f"at non-singleton dimension {i}")
    return tuple(out)


def infer_reshape(shape, numel: int) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    bad = next((i for i, s in enumerate(shape) if s < -1), None)
    if bad is not None:
        raise RuntimeError(f"invalid shape dimension {shape[bad]} at index {bad} of shape {list(shape)}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or numel % known != 0:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    if math.prod(shape) != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def contiguous_strides(shape) -> tuple[int, ...]:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


def as_tuple(x, n: int, name: str) -> tuple[int, ...]:
    """Conv/pool arguments: an int or a sequence of n ints."""
    if isinstance(x, int):
        return (x,) * n
    x = tuple(int(v) for v in x)
    if len(x) == 1:
        return x * n
    if len(x) != n:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} values, but got {list(x)}")
    return x


def conv_out_size(size: int, k: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution (or pooling window) along one dimension, as torch computes it."""
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1
