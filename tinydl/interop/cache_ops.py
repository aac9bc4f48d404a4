"""tinydl's own torch op for a KV cache: `tinydl::write_slot(cache, new, position)`, what the generation steps'
functional cache (generation/step.py) writes a decode step's keys and values with, so that torch.export records
the write as one op and tinydl runs it as slots.write_slot (in place into a donated cache). In torch it means
`torch.where(arange(L)[:, None] == position, new, cache)` over dim -2 (the sequence dim of HF's caches)."""
from __future__ import annotations

import functools

from ..slots import write_slot
from .registry import implements

implements("tinydl.write_slot.default")(write_slot)


@functools.cache
def torch_write_slot():
    """The torch op (defined on first use: torch is imported only then)."""
    import torch

    # (the schema given: this module's annotations are strings, which custom_op cannot read)
    @torch.library.custom_op("tinydl::write_slot", mutates_args=(),
                             schema="(Tensor cache, Tensor new, Tensor position) -> Tensor")
    def op(cache, new, position):
        return where_slot(cache, new, position)

    @op.register_fake
    def _(cache, new, position):
        return torch.empty_like(cache)

    return op


def where_slot(cache, new, position):
    """The op's meaning in torch ops: torch.where over an arange of dim -2 (broadcasting new, promoting dtypes)."""
    import torch
    slot = (torch.arange(cache.shape[-2]) == position)[:, None]
    return torch.where(slot, new, cache)


def fits(cache, new) -> bool:
    """Whether new (torch) is one slot of cache along dim -2, in cache's dtype (else the caller writes with
    torch.where, which broadcasts and promotes)."""
    return (new.dtype == cache.dtype and new.dim() == cache.dim() >= 2 and new.shape[-2] == 1
            and new.shape[:-2] == cache.shape[:-2] and new.shape[-1] == cache.shape[-1])
