"""Distances and similarities (re-exported by functional; torch.X at the top level too): cosine_similarity,
pairwise_distance and cdist, in torch's formulas (so its rounding), from reductions, elementwise ops and one
matmul."""
from __future__ import annotations

from .. import dtypes
from ..dtypes import promote
from ..shapes import broadcast_shapes, normalize_dim
from .._tensor import cat, matmul, ones, sqrt, vector_norm, zeros
from .functional_norms import _t

__all__ = ["cosine_similarity", "pairwise_distance", "cdist"]

# torch.cdist's compute modes -> ATen's int (None: the default, mm for p = 2 past 25 rows)
COMPUTE_MODES = {"use_mm_for_euclid_dist_if_necessary": None, "use_mm_for_euclid_dist": 1,
                 "donot_use_mm_for_euclid_dist": 2}
_NAMES = {dtypes.int32: "Long", dtypes.bool_: "Bool"}  # torch's int64 is tinydl's int32


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps)) over dim, after broadcasting, as torch."""
    x1, x2 = _t(x1), _t(x2)
    common = promote(x1.dtype, x2.dtype)
    if not common.is_floating_point:
        raise RuntimeError(f"expected common dtype to be floating point, yet common dtype is {_NAMES[common]}")
    shape = broadcast_shapes(x1.shape, x2.shape)
    x1, x2 = x1.to(common).expand(shape), x2.to(common).expand(shape)
    d = normalize_dim(dim, len(shape))
    n1 = vector_norm(x1, 2, d, keepdim=True).clamp(min=eps)
    n2 = vector_norm(x2, 2, d, keepdim=True).clamp(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(d)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim of the wider input."""
    x1, x2 = _t(x1), _t(x2)
    diff = x1 - x2 + eps
    return vector_norm(diff, p, max(x1.ndim, x2.ndim) - 1, keepdim)


def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """[*, P, M] x [*, R, M] -> [*, P, R] p-norm distances (batch dims broadcast). p = 2 as torch picks it: one
    matmul over [-2 x1, |x1|^2, 1] and [x2, 1, |x2|^2] where mm is asked for or P or R > 25, else the exact
    differences."""
    if compute_mode not in COMPUTE_MODES:
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    return _cdist(_t(x1), _t(x2), p, COMPUTE_MODES[compute_mode])


def _cdist(x1, x2, p, mode):
    """ATen's cdist: mode None (mm past 25 rows), 1 (mm) or 2 (never mm), as aten._cdist_forward takes it."""
    for name, x in (("X1", x1), ("X2", x2)):
        if x.ndim < 2:
            raise RuntimeError(f"cdist only supports at least 2D tensors, {name} got: {x.ndim}D")
    for name, x in (("X1", x1), ("X2", x2)):
        if not x.dtype.is_floating_point:
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: {_NAMES[x.dtype]}")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    batch = broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
    (P, M), R = x1.shape[-2:], x2.shape[-2]
    x1, x2 = x1.expand(batch + (P, M)), x2.expand(batch + (R, M))
    if M == 0:  # no coordinates: every distance 0 (a max over them would have nothing to take)
        return zeros(batch + (P, R), dtype=promote(x1.dtype, x2.dtype))
    if p == 2 and (mode == 1 or (mode is None and (P > 25 or R > 25))) and P and R and M:
        n1, n2 = (x1 * x1).sum(-1, keepdim=True), (x2 * x2).sum(-1, keepdim=True)
        a = cat([x1 * -2, n1, ones(n1.shape, dtype=n1.dtype)], -1)
        b = cat([x2, ones(n2.shape, dtype=n2.dtype), n2], -1)
        return sqrt(matmul(a, b.transpose(-1, -2)).clamp(min=0))
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)  # [*, P, R, M]
    return vector_norm(diff, p, -1)
