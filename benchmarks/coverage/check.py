"""One model -> one row: build it, convert it with tinydl.from_torch, time its first call, compare with torch CPU.

A row's status is one of STATUSES; failures keep the reason (the unmapped ops for a failed conversion)."""
from __future__ import annotations

import time
import traceback

OK, MISMATCH, CONVERSION, RUNTIME, TORCH, TIMEOUT, CRASHED, SKIPPED, NOT_RUN = (
    "ok", "mismatch", "conversion failed", "runtime error", "torch failed", "timeout", "crashed", "skipped",
    "not run")
STATUSES = (OK, MISMATCH, CONVERSION, RUNTIME, TORCH, TIMEOUT, CRASHED, SKIPPED, NOT_RUN)
RTOL = 1e-4
DEGENERATE = 1e-6  # torch outputs all below this: any tinydl result near zero would pass


def describe(e: BaseException, limit: int = 300) -> str:
    """'Type: first line of the message', cut at limit characters."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:limit]


def atol_for(scale: float) -> float:
    """1e-4, scaled down with the outputs' magnitude (as the zoo tests: random heads give logits of 0.05-2, and an
    absolute 1e-4 on logits of 0.05 would let a 0.2% error through)."""
    return 1e-4 * min(1.0, scale)


def failed(row, status, e, **fields) -> dict:
    """row with status and the error's first line as its reason; the traceback goes to stderr (the model's log)."""
    traceback.print_exception(e)
    return dict(row, status=status, **{"reason": describe(e), **fields})


def unmapped(row, e) -> dict:
    ops = sorted({op for op, _, _ in e.ops})
    return failed(row, CONVERSION, e, ops=ops, reason=f"{len(ops)} unmapped op(s) at {len(e.ops)} node(s)")


def base_row(entry) -> dict:
    return {"key": entry.key, "source": entry.source, "group": entry.group, "model": entry.name,
            "params": entry.params}


def check(entry, size_mode: str = "small") -> dict:
    """The row of one model (see STATUSES): its inputs, conversion path, max abs error against torch, first-call
    seconds, or why it failed."""
    import numpy as np
    import torch

    import tinydl
    from tinydl.interop import UnsupportedTorchOps
    from tinydl.testing import compare, leaves

    from .zoo import TorchFailed
    row = base_row(entry)
    if entry.skip:
        return dict(row, status=SKIPPED, reason=entry.skip)
    try:
        built = entry.build(size_mode)
    except TorchFailed as e:
        return failed(row, TORCH, e, reason=str(e))
    row["inputs"] = built.inputs
    if row["params"] is None:
        row["params"] = sum(p.numel() for p in built.model.parameters())

    with torch.no_grad():
        expected = built.model(*built.args, **built.kwargs)
    scale = max((float(v.abs().max()) for _, v in leaves(expected)
                 if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel()), default=0.0)
    row.update(scale=scale, rtol=RTOL, atol=atol_for(scale))

    start = time.perf_counter()
    try:
        tm = tinydl.from_torch(built.model, example_inputs=(built.args, built.kwargs))
    except UnsupportedTorchOps as e:
        return unmapped(row, e)
    except Exception as e:  # noqa: BLE001 - any other conversion failure is this model's row, not the run's end
        return failed(row, CONVERSION, e)
    row["convert_s"] = time.perf_counter() - start

    def first_call(*args, **kwargs):
        start = time.perf_counter()
        out = tm(*args, **kwargs)
        pending = [v for _, v in leaves(out) if isinstance(v, tinydl.Tensor)]
        if pending:
            tinydl.realize(*pending)
        row["first_call_s"] = time.perf_counter() - start
        return out

    try:
        report = compare(built.model, first_call, *built.args, kwargs=built.kwargs, rtol=RTOL, atol=row["atol"],
                         print_report=False)
    except UnsupportedTorchOps as e:  # a model exported on its first call
        return unmapped(row, e)
    except Exception as e:  # noqa: BLE001 - a kernel or shape error in tinydl: this model's row
        return failed(row, RUNTIME, e, path=getattr(tm, "conversion_path", None))
    row["path"] = getattr(tm, "conversion_path", None)
    row["max_abs"] = report.max_abs if np.isfinite(report.max_abs) else None
    if report.ok:
        note = "torch's outputs are all ~0: the comparison proves little" if scale < DEGENERATE else ""
        return dict(row, status=OK, reason=note)
    bad = [o for o in report.outputs if not o.ok]
    reason = f"{len(bad)} of {len(report.outputs)} output(s) differ; {bad[0].name}: {bad[0].note}"[:300]
    errors = float64_errors(built, expected, tm)
    if errors is not None and within_torchs_own_error(*errors, row["atol"]):
        ours, torchs = errors
        return dict(row, status=OK, reason=f"differs from torch's float32 beyond the tolerance, but against a float64 "
                                           f"run its error ({ours:.2g}) is within torch float32's own ({torchs:.2g})")
    return dict(row, status=MISMATCH, reason=reason)


def float64_errors(built, expected, tm):
    """(tinydl's, torch float32's) largest error against the model run in float64 on the same inputs, over the
    floating outputs; None where the model does not run in float64."""
    import copy

    import numpy as np
    import torch

    import tinydl
    from tinydl.testing import leaves

    def to64(v):
        return v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
    try:
        with torch.no_grad():
            truth = copy.deepcopy(built.model).double()(*map(to64, built.args),
                                                        **{k: to64(v) for k, v in built.kwargs.items()})
        ours = tm(*built.args, **built.kwargs)
    except Exception:  # noqa: BLE001 - no float64 verdict for this model: its mismatch stands
        return None
    flat = [(leaf for _, leaf in leaves(x)) for x in (truth, expected, ours)]
    worst_ours = worst_torch = 0.0
    for t64, t32, mine in zip(*flat):
        if not (isinstance(t64, torch.Tensor) and t64.is_floating_point()):
            continue
        mine = mine.numpy() if isinstance(mine, tinydl.Tensor) else np.asarray(mine)
        t64 = t64.numpy()
        worst_ours = max(worst_ours, float(np.abs(mine.astype(np.float64) - t64).max(initial=0)))
        worst_torch = max(worst_torch, float(np.abs(t32.numpy().astype(np.float64) - t64).max(initial=0)))
    return worst_ours, worst_torch


def within_torchs_own_error(ours: float, torchs: float, atol: float) -> bool:
    """tinydl's error against float64 is no larger than torch float32's own (or than atol): the two float32 results
    differ by float32 rounding, not by a tinydl fault."""
    return ours <= max(torchs, atol)
