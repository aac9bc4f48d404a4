"""F.local_response_norm: each value over the mean square of its neighbouring channels, as torch computes it
(the squares zero-padded along channels, then an average pool that counts the padding)."""
from __future__ import annotations

from .._tensor import _view
from .functional_pools import avg_pool2d, avg_pool3d


def _pad_channels(x, dim: int, size: int):
    """x with size // 2 zeros before and (size - 1) // 2 after along dim (torch's F.pad of the squares)."""
    pads = tuple((size // 2, (size - 1) // 2) if d == dim else (0, 0) for d in range(x.ndim))
    shape = tuple(n + sum(p) for n, p in zip(x.shape, pads))
    return _view(x, "pad", (pads, "constant", 0), shape)


def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):  # noqa: A002
    """torch's F.local_response_norm: input / (k + alpha * mean of squares over `size` neighbouring channels) **
    beta, the mean taken as torch takes it (zero-padded channels, an average pool counting the padding)."""
    dim = input.ndim
    if dim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality                          input (got {dim} dimensions)")
    if input.numel() == 0:
        return input
    div = input * input
    if dim == 3:
        div = _pad_channels(div.unsqueeze(1), 2, size)
        div = avg_pool2d(div, (size, 1), stride=1).squeeze(1)
    else:
        sizes = input.shape
        div = div.reshape(sizes[0], 1, sizes[1], sizes[2], -1)
        div = _pad_channels(div, 2, size)
        div = avg_pool3d(div, (size, 1, 1), stride=1).squeeze(1).reshape(sizes)
    return input / (div * alpha + k) ** beta
