"""F.embedding_bag: sums, means or maxima of bags of embedding rows (torch's semantics: offsets or fixed-length
bags, include_last_offset, per_sample_weights, padding_idx), as one gather (index_select) and one scatter."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from .._tensor import Tensor, arange, tensor, zeros
from ..indexing import host_array
from ..scatter import index_add, scatter_reduce
from ..sorting import searchsorted
from .functional_norms import _t


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,  # noqa: A002
                  mode="mean", sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Each bag's rows of weight reduced by mode: a 2-D input is one bag per row; a 1-D input is cut into bags
    at offsets. Rows at padding_idx take no part (nor count for a mean); an empty bag gives zeros. scale_grad_by_freq
    and sparse only change gradients."""
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    if max_norm is not None:
        raise NotImplementedError("embedding_bag(max_norm=...) renormalizes weights in place; not supported")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on "
                                  f"GitHub.")
    weight = _t(weight)
    indices = input if isinstance(input, Tensor) else tensor(np.asarray(input))
    if indices.ndim == 2:
        if offsets is not None:
            raise ValueError(f"if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             f"fixed length sequences. However, found offsets of type {type(offsets)}")
        bags, length = indices.shape
        bag = (arange(bags * length) // max(length, 1)) if length else zeros(0, dtype=dtypes.int32)
        indices = indices.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights.reshape(-1)
    elif indices.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        starts = host_array(offsets)
        if starts is None:
            starts = offsets.numpy()  # its first value is checked, as torch checks it
        if starts.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
        if starts.size and starts[0] != 0:
            raise RuntimeError(f"offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from "
                               f"position 0. However, got {int(starts[0])}")
        bags = starts.size - 1 if include_last_offset else starts.size
        if include_last_offset and mode == "mean" and starts.size and starts[-1] < indices.shape[0]:
            raise NotImplementedError(
                f"embedding_bag(mode='mean', include_last_offset=True) with indices past the last offset "
                f"({indices.shape[0]} indices, last offset {int(starts[-1])}): torch leaves them out of the last bag's "
                f"sum but counts them in its mean; pass offsets whose last value is the number of indices")
        positions = arange(indices.shape[0])
        bag = searchsorted(tensor(starts.astype(np.int32)), positions, right=True) - 1
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {indices.ndim}")
    if padding_idx is not None and not -weight.shape[0] <= padding_idx < weight.shape[0]:
        n = weight.shape[0]
        raise RuntimeError(f"padding_idx must be within the number of embeddings, {-n} through {n - 1}, but got "
                           f"{padding_idx}")
    rows = weight.index_select(0, indices)  # indices checked as torch checks them (out of range: IndexError)
    # rows at padding_idx and (include_last_offset) past the last bag go to one more bag, dropped at the end
    skip = bag >= bags
    if padding_idx is not None:
        skip = skip | (indices == padding_idx % weight.shape[0])
    bag = skip.to(dtypes.int32) * (bags - bag) + bag
    out = zeros(bags + 1, weight.shape[1], dtype=weight.dtype)
    if mode == "max":
        spread = bag.reshape(-1, 1).expand(rows.shape)
        return scatter_reduce(out, 0, spread, rows, "amax", include_self=False)[:bags]
    if per_sample_weights is not None:
        rows = rows * per_sample_weights.reshape(-1, 1).to(rows.dtype)
    sums = index_add(out, 0, bag, rows)[:bags]
    if mode == "sum":
        return sums
    counts = index_add(zeros(bags + 1, dtype=dtypes.float32), 0, bag, (~skip).to(dtypes.float32))[:bags]
    return sums / counts.clamp(min=1.0).reshape(-1, 1).to(sums.dtype)
