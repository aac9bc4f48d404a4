"""Linear recurrences written as Python loops, exported as one op: the torch custom op `tinydl::linear_recurrence`
(every state of h_t = a_t * h_(t-1) + b_t along a dim; its torch implementation is that loop) and Hugging Face's
Mamba selective scan written over it.

transformers runs a Mamba layer's scan (mamba, falcon_mamba, jamba, zamba: `mamba_selective_scan`) as a loop over
the tokens wherever its CUDA kernels are absent, which torch.export unrolls: a few ops per token and layer, a graph
fixed to the prompt's length. While export traces (`selective_scans`), each modeling module's function of the known
signature is swapped for `selective_scan`, the same arithmetic with the loop as one recurrence (HF's own
associative-scan branch has the same form): one node in the graph, one kernel in tinydl (tinydl.linear_recurrence),
any length."""
from __future__ import annotations

import contextlib
import functools
import inspect
import sys

from ..scans import linear_recurrence
from .registry import implements

implements("tinydl.linear_recurrence.default")(linear_recurrence)

_SCAN_PARAMS = ("hidden_states", "dt", "A", "B", "C", "D", "z", "delta_bias", "delta_softplus", "return_last_state",
                "use_mambapy", "use_associative_scan", "kwargs")


@functools.cache
def torch_op():
    """torch.ops.tinydl.linear_recurrence, defined on first use (tinydl imports without torch)."""
    import torch

    @torch.library.custom_op("tinydl::linear_recurrence", mutates_args=(), schema="(Tensor a, Tensor b, int dim) -> Tensor")
    def recurrence(a, b, dim):
        dtype = torch.promote_types(a.dtype, b.dtype)
        a, b = (t.to(dtype) for t in torch.broadcast_tensors(a, b))
        h = torch.zeros_like(a.select(dim, 0))
        states = []
        for t in range(a.shape[dim]):
            h = a.select(dim, t) * h + b.select(dim, t)
            states.append(h)
        return torch.stack(states, dim) if states else torch.empty_like(a)

    @recurrence.register_fake
    def _(a, b, dim):
        return a.new_empty(torch.broadcast_shapes(a.shape, b.shape), dtype=torch.promote_types(a.dtype, b.dtype))

    return torch.ops.tinydl.linear_recurrence.default


def selective_scan(hidden_states, dt, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, use_mambapy=False, use_associative_scan=False, **kwargs):
    """transformers' `mamba_selective_scan` (hidden_states, dt [b, d, l], A [d, n], B, C [b, n, l]) with its loop over
    the tokens as one recurrence; the states are float32 as the loop's are (its deltaB_u is)."""
    import torch
    import torch.nn.functional as F

    input_dtype = hidden_states.dtype
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    B, C = B.transpose(1, 2), C.transpose(1, 2)
    discrete_A = torch.exp(A[None, :, None, :] * dt[:, :, :, None])
    deltaB_u = dt[:, :, :, None] * B[:, None, :, :].float() * hidden_states[:, :, :, None].float()
    states = torch_op()(discrete_A, deltaB_u, 2)                                   # [b, d, l, n]
    out = torch.matmul(states.transpose(1, 2).to(input_dtype), C.unsqueeze(-1)).squeeze(-1).transpose(1, 2)
    if D is not None:
        out = out + hidden_states * D[None, :, None]
    if z is not None:
        out = out * F.silu(z)
    return (out, states[:, :, -1]) if return_last_state else out


def _scan_functions():
    """(module, its mamba_selective_scan) for each loaded transformers modeling module that has one of the known
    signature (read from the module's own namespace: no lazy import is triggered)."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("transformers.models.") or ".modeling_" not in name or module is None:
            continue
        fn = vars(module).get("mamba_selective_scan")
        if fn is None or fn is selective_scan:
            continue
        try:  # (transformers wraps it as a module calling the function: its forward has the signature)
            params = tuple(inspect.signature(inspect.unwrap(getattr(fn, "forward", fn))).parameters)
        except (TypeError, ValueError):
            continue
        if params == _SCAN_PARAMS:
            yield module, fn


@contextlib.contextmanager
def selective_scans():
    """transformers' Mamba scans replaced by selective_scan inside the block (torch.export's trace)."""
    swapped = list(_scan_functions())
    if swapped:
        torch_op()  # defined before the trace
    for module, _ in swapped:
        module.mamba_selective_scan = selective_scan
    try:
        yield
    finally:
        for module, fn in swapped:
            module.mamba_selective_scan = fn
