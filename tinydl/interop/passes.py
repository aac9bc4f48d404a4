"""Graph passes of from_torch, run once at conversion on a program's steps.

`sibling_linears`: linear layers that read the same input with parameter weights (attention's q/k/v
projections, a gated MLP's gate/up) run as one GEMM over their weights concatenated along the output features,
its result sliced per layer. One wide GEMM fills the GPU better than several narrow ones, and saves their
dispatches. The concatenated weights are a copy, made once and kept (see run_sibling_linears).
"""
from __future__ import annotations

import functools

from ..nn import functional as F
from .._tensor import cat



def sibling_linears(steps, is_param, linear_target: str = "aten.linear.default", name_of=str) -> dict:
    """Groups of 2+ linear call nodes (target named linear_target, no kwargs) on the same input whose weight (and
    bias, if any) are parameters (is_param(node)). Returns node name -> the group's nodes in graph order."""
    groups: dict = {}
    for node, _ in steps:
        if node.op != "call_function" or name_of(node.target) != linear_target or node.kwargs:
            continue
        x, w, b = (list(node.args) + [None])[:3]
        if is_param(w) and (b is None or is_param(b)):
            groups.setdefault((x, b is None), []).append(node)
    return {n.name: g for g in groups.values() if len(g) > 1 for n in g}


def merge_sibling_linears(groups: dict, joined: dict) -> dict:
    """The program's `fused` entries for groups (from sibling_linears): node name -> fn(env) running its group
    as one GEMM, the joined weights kept in `joined`."""
    return {name: functools.partial(run_sibling_linears, group, joined=joined) for name, group in groups.items()}


def run_sibling_linears(group, env, joined: dict) -> None:
    """Run a group of sibling linears as one GEMM. joined: group -> its concatenated weight and bias, realized
    the first time and kept while the parameters are the same tensors (loading or casting weights gives them
    new nodes: joined again). A copy costs the group's weight memory once more, but a GEMM that reads the
    weights where they lie, through a cat's index math in its loads (a branch per element), measured 15
    TFLOP/s against 24 from one buffer (BERT-b8's q/k/v projection, H100, 2026-11-21)."""
    x = env[group[0].args[0].name]
    weights = [env[n.args[1].name] for n in group]
    biases = [env[n.args[2].name] for n in group] if len(group[0].args) > 2 else None
    if x.shape[-1] != weights[0].shape[1] or any(w.ndim != 2 or w.shape[1] != weights[0].shape[1] or
                                                   w.dtype != weights[0].dtype for w in weights):
        for k, (n, w) in enumerate(zip(group, weights)):  # a fused GEMM cannot take these: each alone, its errors
            env[n.name] = F.linear(x, w, biases[k] if biases else None)
        return
    key = tuple(t.node.uid for t in weights + (biases or []))
    cached = joined.get(group[0].name)
    if cached is None or cached[0] != key:
        cached = joined[group[0].name] = (key, cat(weights).clone().realize(),
                                          cat(biases).clone().realize() if biases else None)
    y = F.linear(x, cached[1], cached[2])
    for n, part in zip(group, y.split([w.shape[0] for w in weights], -1)):
        env[n.name] = part
