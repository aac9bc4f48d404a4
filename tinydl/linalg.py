"""Matrix and vector products and diagonals beyond matmul (tensor-level ops; tinydl._tensor re-exports them):
the add-products (addmm, addbmm, baddbmm, addmv: beta * input + alpha * product, input ignored where beta is 0,
as torch), mv, dot, vdot, outer, tensordot, kron, trace, diagonal (a strided slice of the flattened matrix: a
view), diag, diag_embed, tril/triu_indices (host-computed constants) and block_diag. Each product is one matmul
node (addbmm's batch sum folded into K); the rest views and elementwise ops."""
from __future__ import annotations

import math

import numpy as np

from . import dtypes
from ._core import Tensor
from .creation import arange, full, tensor, zeros
from .elementwise import where
from .joining import cat
from .opmath import computes_in_float32
from .shapes import normalize_dim

_NAMES = {dtypes.float32: "Float", dtypes.float16: "Half", dtypes.int32: "Long", dtypes.bool_: "Bool"}


def _add_product(input, product: Tensor, beta, alpha) -> Tensor:
    """beta * input + alpha * product, input broadcast to the product's shape; beta 0 ignores input (NaN too).
    One op in torch: scaled, the float16 terms are computed in float32 (input + product is one add anyway)."""
    if alpha == 1 and beta in (0, 1):
        return _scaled_sum(input, product, beta, alpha)
    return _scaled_sum_in_float32(input, product, beta, alpha)


def _scaled_sum(input, product: Tensor, beta, alpha) -> Tensor:
    out = product if alpha == 1 else product * alpha
    if beta == 0:
        return out
    input = input.expand(product.shape)
    return out + (input if beta == 1 else input * beta)


_scaled_sum_in_float32 = computes_in_float32(_scaled_sum)


def _matrix(x, name: str) -> None:
    if x.ndim != 2:
        raise RuntimeError(f"{name} must be a matrix, got {x.ndim}-D tensor")


def addmm(input, mat1, mat2, *, beta=1, alpha=1) -> Tensor:  # noqa: A002 - torch's names
    _matrix(mat1, "mat1")
    _matrix(mat2, "mat2")
    if mat1.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({mat1.shape[0]}x{mat1.shape[1]} and "
                           f"{mat2.shape[0]}x{mat2.shape[1]})")
    return _add_product(input, mat1 @ mat2, beta, alpha)


def _batches(batch1, batch2) -> None:
    for name, b in (("batch1", batch1), ("batch2", batch2)):
        if b.ndim != 3:
            raise RuntimeError(f"{name} must be a 3D tensor")
    if batch1.shape[0] != batch2.shape[0]:
        raise RuntimeError(f"batch1 and batch2 must have same number of batches, got {batch1.shape[0]} and "
                           f"{batch2.shape[0]}")
    if batch1.shape[2] != batch2.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{batch1.shape[0]}, "
                           f"{batch1.shape[2]}] but got: [{batch2.shape[0]}, {batch2.shape[1]}].")


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    _batches(batch1, batch2)
    return _add_product(input, batch1 @ batch2, beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    """The batch's products summed: one [M, B*K] @ [B*K, N] matmul (the sum runs inside the GEMM's K loop)."""
    _batches(batch1, batch2)
    B, M, K = batch1.shape
    a = batch1.permute(1, 0, 2).reshape(M, B * K)
    return _add_product(input, a @ batch2.reshape(B * K, batch2.shape[2]), beta, alpha)


def _mv_check(input_shape: tuple, mat, vec) -> None:
    """torch's addmv checks (mv is addmv with an input of mat's rows)."""
    if len(input_shape) != 1 or mat.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {len(input_shape)}, {mat.ndim}, {vec.ndim}")
    if mat.shape[1] != vec.shape[0] or input_shape[0] not in (1, mat.shape[0]):
        raise RuntimeError(f"size mismatch, got input ({input_shape[0]}), mat ({mat.shape[0]}x{mat.shape[1]}), vec "
                           f"({vec.shape[0]})")


def mv(input, vec) -> Tensor:  # noqa: A002
    _mv_check(input.shape[:1], input, vec)
    return input @ vec


def addmv(input, mat, vec, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    _mv_check(input.shape if input.ndim else (1,), mat, vec)  # a 0-d input broadcasts as one element
    return _add_product(input, mat @ vec, beta, alpha)


def dot(input, tensor) -> Tensor:  # noqa: A002 - torch's parameter names (fx passes them by name)
    a, b = input, tensor
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a.shape != b.shape:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src [{b.shape[0]}] to have "
                           f"the same number of elements, but got {a.shape[0]} and {b.shape[0]} elements respectively")
    if a.dtype != b.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {_NAMES[a.dtype]} and "
                           f"{_NAMES[b.dtype]}")
    return _sum_of_products(a, b)


@computes_in_float32
def _sum_of_products(a, b) -> Tensor:
    """One op in torch: float16 products are summed in float32, not rounded one by one."""
    return (a * b).sum()


def vdot(input, other) -> Tensor:  # noqa: A002 - real tensors: the conjugate is the tensor itself
    return dot(input, other)


def outer(input, vec2) -> Tensor:  # noqa: A002
    for name, v in (("self", input), ("vec2", vec2)):
        if v.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {v.ndim}-D")
    return input.unsqueeze(1) * vec2.unsqueeze(0)


ger = outer


def addr(input, vec1, vec2, *, beta=1, alpha=1) -> Tensor:  # noqa: A002 - torch's names
    """beta * input + alpha * outer(vec1, vec2), input broadcast to the outer product's shape."""
    for name, v in (("vec1", vec1), ("vec2", vec2)):
        if v.ndim != 1:
            raise RuntimeError(f"addr: Expected 1-D argument {name}, but got {v.ndim}-D")
    return _add_product(input, vec1.unsqueeze(1) * vec2.unsqueeze(0), beta, alpha)


def cross(input, other, dim=None) -> Tensor:  # noqa: A002
    """torch.cross: dim None is the first dim of size 3 (torch's default, deprecated for linalg.cross's -1)."""
    if dim is None:
        dim = next((i for i, n in enumerate(input.shape) if n == 3), None)
        if dim is None:
            raise RuntimeError("no dimension of size 3 in input")
    return linalg_cross(input, other, dim)


def linalg_cross(input, other, dim=-1) -> Tensor:  # noqa: A002
    """torch.linalg.cross: the cross product of 3-vectors along dim (the inputs broadcast along the other dims)."""
    if input.ndim != other.ndim:
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    d = normalize_dim(dim, input.ndim)
    if input.shape[d] != 3 or other.shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {input.shape[d]} and "
                           f"{other.shape[d]}")
    if input.dtype != other.dtype:
        raise RuntimeError(f"expected scalar type {_NAMES[input.dtype]} but found {_NAMES[other.dtype]}")
    return _cross(input, other, d)


@computes_in_float32
def _cross(a, b, d: int) -> Tensor:
    """One op in torch: float16 terms computed in float32, each component rounded once."""
    (a0, a1, a2), (b0, b1, b2) = (tuple(t.narrow(d, i, 1) for i in range(3)) for t in (a, b))
    return cat([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], d)


def diagflat(input, offset: int = 0) -> Tensor:  # noqa: A002
    """The flattened input on the offset-th diagonal of a square matrix."""
    return diag_embed(input.reshape(-1), offset)


def tensordot(a, b, dims=2, out=None) -> Tensor:
    """a's dims_a against b's dims_b: both permuted to [free, contracted] / [contracted, free], one matmul."""
    if out is not None:
        raise NotImplementedError("tensordot(out=...): tinydl tensors are not written in place")
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        if dims > min(a.ndim, b.ndim):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims}")
        da, db = list(range(-dims, 0)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(da) != len(db):
        raise RuntimeError("both dimension lists should have same length")
    for x, y in zip(da, db):
        if a.shape[x] != b.shape[y]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size {a.shape[x]} in dim {x} and "
                               f"second has size {b.shape[y]} in dim {y}")
    da = [normalize_dim(d, a.ndim) for d in da]
    db = [normalize_dim(d, b.ndim) for d in db]
    fa = [d for d in range(a.ndim) if d not in da]
    fb = [d for d in range(b.ndim) if d not in db]
    k = math.prod(a.shape[d] for d in da)
    left = a.permute(fa + da).reshape(math.prod(a.shape[d] for d in fa), k)
    right = b.permute(db + fb).reshape(k, math.prod(b.shape[d] for d in fb))
    return (left @ right).reshape(tuple(a.shape[d] for d in fa) + tuple(b.shape[d] for d in fb))


def inner(input, other) -> Tensor:  # noqa: A002
    """torch.inner: the last dims contracted (a product where either is 0-d)."""
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    if input.shape[-1] != other.shape[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but got shapes "
                           f"{list(input.shape)} and {list(other.shape)}")
    return tensordot(input, other, ([-1], [-1]))


def kron(input, other) -> Tensor:  # noqa: A002
    """Every product a[i] * b[j] at i * b.shape + j: the two interleaved by broadcasting, then merged."""
    n = max(input.ndim, other.ndim)
    sa = (1,) * (n - input.ndim) + input.shape
    sb = (1,) * (n - other.ndim) + other.shape
    a = input.reshape(tuple(x for s in sa for x in (s, 1)))
    b = other.reshape(tuple(x for s in sb for x in (1, s)))
    return (a * b).reshape(tuple(x * y for x, y in zip(sa, sb)))


def diagonal(input, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:  # noqa: A002
    """The diagonal of dims (dim1, dim2), moved last: a strided slice of the two dims flattened (a view)."""
    x = input
    d1, d2 = normalize_dim(dim1, x.ndim), normalize_dim(dim2, x.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    rest = [d for d in range(x.ndim) if d not in (d1, d2)]
    x = x.permute(rest + [d1, d2])
    R, C = x.shape[-2:]
    n = max(0, min(R + min(offset, 0), C - max(offset, 0)))
    start = offset if offset >= 0 else -offset * C
    flat = x.reshape(x.shape[:-2] + (R * C,))
    if n == 0:
        return zeros(x.shape[:-2] + (0,), dtype=x.dtype)
    return flat._slice(flat.ndim - 1, start, start + (n - 1) * (C + 1) + 1, C + 1)


_diagonal = diagonal  # diag's parameter is named diagonal, as torch's


def trace(input) -> Tensor:  # noqa: A002
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim}")
    return diagonal(input).sum()


def diag_embed(input, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:  # noqa: A002
    """input's last dim on the diagonal of two new dims (dim1, dim2 of the result), zeros elsewhere."""
    x = input
    d1, d2 = normalize_dim(dim1, x.ndim + 1), normalize_dim(dim2, x.ndim + 1)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    n = x.shape[-1]
    m = n + abs(offset)
    if offset:  # the values padded to m along the diagonal's own index (row for offset > 0, column below)
        x = cat([x, zeros(x.shape[:-1] + (abs(offset),), dtype=x.dtype)], -1)
    i, j = arange(m).reshape(m, 1), arange(m).reshape(1, m)
    values = x.unsqueeze(-1) if offset >= 0 else x.unsqueeze(-2)
    out = where(j - i == offset, values, zeros((), dtype=x.dtype))  # [*, m, m]
    batch = list(range(out.ndim - 2))
    order = [None] * out.ndim
    order[d1], order[d2] = out.ndim - 2, out.ndim - 1
    it = iter(batch)
    return out.permute([o if o is not None else next(it) for o in order])


def diag(input, diagonal: int = 0) -> Tensor:  # noqa: A002 - torch's names
    if input.ndim == 1:
        return diag_embed(input, diagonal)
    if input.ndim == 2:
        return _diagonal(input, diagonal)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


def _triangle_indices(row: int, col: int, offset: int, dtype, upper: bool) -> Tensor:
    if row < 0:
        raise RuntimeError(f"row must be non-negative, got{row}")
    if col < 0:
        raise RuntimeError(f"col must be non-negative, got{col}")
    r, c = (np.triu_indices if upper else np.tril_indices)(row, offset, col)
    return tensor(np.stack([r, c]).astype(np.int32).reshape(2, -1), dtype=dtype or dtypes.int32)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=None) -> Tensor:
    """The [2, N] row-major indices of the lower triangle (computed on the host: a constant of the sizes)."""
    return _triangle_indices(row, col, offset, dtype, False)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=None) -> Tensor:
    return _triangle_indices(row, col, offset, dtype, True)


def block_diag(*tensors) -> Tensor:
    """The tensors (0-, 1- or 2-D: a scalar is 1x1, a vector one row) on the diagonal of one matrix."""
    for i, t in enumerate(tensors):
        if t.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} has "
                               f"{t.ndim} dimensions")
    blocks = [t.reshape(1, -1) if t.ndim < 2 else t for t in tensors]
    dt = dtypes.float32 if not blocks else blocks[0].dtype
    for b in blocks[1:]:
        dt = dtypes.promote(dt, b.dtype)
    width = sum(b.shape[1] for b in blocks)
    if not blocks:
        return zeros(1, 0, dtype=dt)
    rows, left = [], 0
    for b in blocks:
        r, w = b.shape
        parts = [zeros(r, left, dtype=dt), b.to(dt), zeros(r, width - left - w, dtype=dt)]
        rows.append(cat([p for p in parts if p.shape[1]] or [zeros(r, 0, dtype=dt)], 1))
        left += w
    return cat(rows, 0)


def vander(x: Tensor, N=None, increasing: bool = False) -> Tensor:  # noqa: N803 - torch's name
    """torch.vander: the powers of x as columns, highest first (increasing: lowest first), built as torch builds
    them, a cumulative product along the row (integers as tinydl's int32, each product checked)."""
    from .indexing import flip
    from .scans import cumprod
    if x.ndim != 1:
        raise RuntimeError("x must be a one-dimensional tensor.")
    n = x.shape[0] if N is None else int(N)
    if n < 0:
        raise RuntimeError("N must be non-negative.")
    dt = x.dtype if x.dtype.is_floating_point else dtypes.int32
    if n == 0:
        return zeros((x.shape[0], 0), dtype=dt)
    powers = cumprod(cat([full((x.shape[0], 1), 1, dtype=dt), x.to(dt).unsqueeze(1).expand(x.shape[0], n - 1)], 1), 1)
    return powers if increasing else flip(powers, (1,))
