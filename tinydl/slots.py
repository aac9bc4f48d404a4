"""Writing one slot of a cache: `write_slot(cache, new, position)` is `cache` with the slice at `position` along
`dim` replaced by `new` (a KV cache taking a decode step's keys). Out of place, as every tinydl op, unless the
cache was donated.

`donate(cache)` says the caller will not read `cache` again. Then a write_slot that is the only reader of that
realized tensor writes `new` into its storage (one slice, not a copy of the whole cache: lowering sets the node's
in_place, the plan aliases its result to the cache's buffer) and the donated tensor is gone: reading it raises.
A jit replays such a plan with the buffer of whichever donated tensor it is given, so a decode loop that feeds each
step's cache to the next writes one buffer in place from the first token to the last (generation/loop.py).
"""
from __future__ import annotations

from . import dtypes
from ._core import Tensor, _make
from .creation import tensor
from .ops import WRITE_SLOT
from .shapes import normalize_dim


def donate(*tensors: Tensor):
    """Mark tensors as given up by the caller: a kernel may write its result into their storage (write_slot), after
    which reading them raises. Returns its argument (one tensor) or arguments (a tuple)."""
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"donate() expects tinydl tensors, got {type(t).__name__}")
        t.node.donated = True
    return tensors[0] if len(tensors) == 1 else tensors


def write_slot(cache: Tensor, new: Tensor, position, dim: int = -2) -> Tensor:
    """cache with index `position` along dim replaced by new (cache's shape with 1 along dim; broadcast to it).
    position: an int or a one-element integer tensor (on the GPU: decode steps replay with it as data); a position
    outside [0, size) writes nothing, as `torch.where(arange(size) == position, new, cache)`."""
    d = normalize_dim(dim, cache.ndim)
    want = cache.shape[:d] + (1,) + cache.shape[d + 1:]
    if not isinstance(new, Tensor):
        new = tensor(new, dtype=cache.dtype)
    if new.shape != want:
        try:
            new = new.expand(*want)
        except (RuntimeError, ValueError) as e:
            raise RuntimeError(f"write_slot: new of shape {list(new.shape)} does not fit one slot of a cache of shape "
                               f"{list(cache.shape)} along dim {dim} (expected {list(want)})") from e
    if new.dtype != cache.dtype:
        new = new.to(cache.dtype)
    if not isinstance(position, Tensor):
        position = tensor([int(position)], dtype=dtypes.int32)
    if position.numel() != 1 or position.dtype.is_floating_point or position.dtype == dtypes.bool_:
        raise RuntimeError(f"write_slot: position must be one integer, got a {position.dtype.name} tensor of shape "
                           f"{list(position.shape)}")
    if position.dtype != dtypes.int32:
        position = position.to(dtypes.int32)
    return _make(WRITE_SLOT, None, (cache, new, position.reshape(1)), (d, False), cache.shape, cache.dtype)


__all__ = ["donate", "write_slot"]
