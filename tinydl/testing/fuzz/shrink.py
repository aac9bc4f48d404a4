"""Shrinking a failing graph to a minimal repro (delta debugging that keeps the failure class)."""
from __future__ import annotations

import dataclasses

import numpy as np

from .cases import Graph
from .oracle import run_graph


def failure_class(report: str) -> str:
    """What a shrink must keep: the first line of the report (the kind and dtype of the failure, or the error
    types), with the output name and numbers left out."""
    return report.splitlines()[0]


def _uses(g, name):
    return [s for s in g.steps if name in s.srcs] + ([None] if name in g.outputs else [])


def _remove_step(g: Graph, i: int) -> Graph | None:
    """g without step i; its readers read its first source instead (when it has one)."""
    s = g.steps[i]
    g2 = g.copy()
    del g2.steps[i]
    sub = s.srcs[0] if s.srcs else None
    if sub is None and _uses(g, s.out):
        return None
    g2.steps = [dataclasses.replace(t, srcs=tuple(sub if x == s.out else x for x in t.srcs)) for t in g2.steps]
    g2.outputs = list(dict.fromkeys(sub if o == s.out else o for o in g2.outputs))
    return _prune(g2)


def _cut_step(g: Graph, i: int) -> Graph | None:
    """g with step i replaced by an input holding torch's value of it (what its readers saw), so a bug in a later
    op shrinks to that op alone."""
    import torch
    s = g.steps[i]
    if s.out in g.outputs:
        return None
    ns = {"torch": torch, "TF": torch.nn.functional, **{"a_" + k: v for k, v in g.inputs.items()}}
    try:
        for line in g.lines("torch")[:len(g.inputs) + i + 1]:
            exec(line, ns)  # noqa: S102
    except Exception:  # noqa: BLE001
        return None
    v = ns[s.out]
    if not isinstance(v, torch.Tensor):
        return None
    a = v.numpy()
    a = a.astype({"int64": np.int32, "float64": np.float32}.get(a.dtype.name, a.dtype))
    g2 = g.copy()
    del g2.steps[i]
    g2.inputs[s.out] = np.ascontiguousarray(a)
    return _prune(g2)


def _prune(g: Graph) -> Graph:
    """Drop steps and inputs nothing reads."""
    live = set(g.outputs)
    keep = []
    for s in reversed(g.steps):
        if s.out in live:
            keep.append(s)
            live.update(s.srcs)
    g.steps = keep[::-1]
    g.inputs = {k: v for k, v in g.inputs.items() if k in live}
    return g


def _simpler_arrays(a: np.ndarray):
    """Candidate replacements of one input, simplest first: smaller shapes, then simpler values."""
    for d in range(a.ndim):
        if a.shape[d] > 1:
            for k in range(min(a.shape[d], 8)):  # one slice: the one holding the culprit survives
                yield a[(slice(None),) * d + (slice(k, k + 1),)]
            yield a[(slice(None),) * d + (slice(0, a.shape[d] // 2),)]
    if a.dtype.kind == "f":
        special = ~np.isfinite(a) | (np.abs(a) > 1e4) | ((a != 0) & (np.abs(a) < 1e-4))
        yield np.where(special, a, 1).astype(a.dtype)
        yield np.where(special, a, np.round(a)).astype(a.dtype)
    if a.size <= 32:
        for i in range(a.size):
            b = a.copy().reshape(-1)
            if b[i] != 0:
                b[i] = 0
                yield b.reshape(a.shape)


def shrink(g: Graph, report: str, budget: int = 300, log=None) -> tuple[Graph, str]:
    """Delta-debug g to a smaller graph failing in the same class: keep one output, drop steps, shrink and
    simplify inputs; stops when nothing more helps or after `budget` runs."""
    cls = failure_class(report)
    runs = 0

    def fails(c):
        nonlocal runs
        if c is None or not c.steps or runs >= budget:
            return None
        runs += 1
        try:
            r = run_graph(c)
        except Exception:  # noqa: BLE001 - a candidate the harness cannot run is not a repro
            return None
        return r if r and failure_class(r) == cls else None

    best, best_report = _prune(g.copy()), report
    changed = True
    while changed and runs < budget:
        changed = False
        for o in list(best.outputs):  # one output
            if len(best.outputs) > 1:
                c = best.copy()
                c.outputs = [o]
                r = fails(_prune(c))
                if r:
                    best, best_report, changed = _prune(c), r, True
                    break
        for i in reversed(range(len(best.steps))):  # fewer steps
            if i < len(best.steps):
                c = _remove_step(best, i)
                r = fails(c)
                if r:
                    best, best_report, changed = c, r, True
        for i in reversed(range(len(best.steps))):  # earlier steps replaced by their values
            if i < len(best.steps) and len(best.steps) > 1:
                c = _cut_step(best, i)
                r = fails(c)
                if r:
                    best, best_report, changed = c, r, True
        for k in list(best.inputs):  # smaller, simpler inputs
            for a in _simpler_arrays(best.inputs[k]):
                if runs >= budget:
                    break
                c = best.copy()
                c.inputs[k] = np.ascontiguousarray(a)
                r = fails(c)
                if r:
                    best, best_report, changed = c, r, True
                    break
    if log:
        log(f"shrunk in {runs} runs: {len(g.steps)} -> {len(best.steps)} steps")
    return best, best_report


