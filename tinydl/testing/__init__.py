"""Parity helpers: compare tinydl results with torch/numpy values."""
from __future__ import annotations

import numpy as np

from .._tensor import Tensor

_DTYPE_NAMES = {"float32": "float32", "float16": "float16", "int32": "int32", "int64": "int32", "bool": "bool",
                "float64": "float32"}


def to_numpy(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.numpy()
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _dtype_name(x) -> str:
    if isinstance(x, Tensor):
        return x.dtype.name
    name = str(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype).replace("torch.", "")
    return _DTYPE_NAMES.get(name, name)


def assert_close(actual, expected, rtol: float = 1e-4, atol: float = 1e-5, check_dtype: bool = True,
                 equal_nan: bool = True) -> None:
    """Raise AssertionError unless actual ≈ expected elementwise (|a - e| <= atol + rtol * |e|), with the
    same shape (and, by default, the same dtype, where torch's int64 counts as tinydl's int32)."""
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(f"shape mismatch: got {list(a.shape)}, expected {list(e.shape)}")
    if check_dtype and _dtype_name(actual) != _dtype_name(expected):
        raise AssertionError(f"dtype mismatch: got {_dtype_name(actual)}, expected {_dtype_name(expected)}")
    if a.dtype == np.bool_ or e.dtype == np.bool_:
        bad = a != e
        if bad.any():
            i = np.unravel_index(np.argmax(bad), a.shape)
            raise AssertionError(f"{bad.sum()} of {a.size} booleans differ (first at {tuple(map(int, i))}: "
                                 f"got {a[i]}, expected {e[i]})")
        return
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    ok = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if not ok.all():
        err = np.array(np.abs(a64 - e64))  # np.array: a 0-d result stays an array
        err[np.isnan(err)] = np.inf
        i = np.unravel_index(np.argmax(np.where(ok, -1, err)), a.shape)
        raise AssertionError(
            f"{(~ok).sum()} of {a.size} elements differ beyond rtol={rtol}, atol={atol}: worst at {tuple(map(int, i))}"
            f" got {a64[i]!r}, expected {e64[i]!r} (abs err {err[i]:.3g}); max abs err {np.nanmax(err):.3g}")


def max_error(actual, expected) -> tuple[float, float]:
    """(max abs error, max relative error) between two values."""
    a, e = to_numpy(actual).astype(np.float64), to_numpy(expected).astype(np.float64)
    if a.size == 0:
        return 0.0, 0.0
    abs_err = np.abs(a - e)
    return float(abs_err.max()), float((abs_err / np.maximum(np.abs(e), 1e-12)).max())


# -- whole-model parity --------------------------------------------------------------------------------------
class OutputReport:
    """One output of compare(): its name in the output structure, shapes and errors."""
    __slots__ = ("name", "shape", "expected_shape", "dtype", "max_abs", "max_rel", "ok", "note", "vs_float32",
                 "torch_vs_float32")

    def __init__(self, name, shape, expected_shape, dtype, max_abs, max_rel, ok, note=""):
        self.name, self.shape, self.expected_shape, self.dtype = name, shape, expected_shape, dtype
        self.max_abs, self.max_rel, self.ok, self.note = max_abs, max_rel, ok, note
        # a float16 model's: tinydl's and torch's own float16 max abs error against a float32 copy of the model
        self.vs_float32: float | None = None
        self.torch_vs_float32: float | None = None

    def __repr__(self):
        return (f"OutputReport({self.name!r}, shape={self.shape}, max_abs={self.max_abs:.3g}, "
                f"max_rel={self.max_rel:.3g}, ok={self.ok})")


class CompareReport:
    """compare()'s result: `.outputs` (one OutputReport per tensor output), `.ok`, `str()` is a table, and
    `.assert_ok()` raises AssertionError naming the failing outputs."""

    def __init__(self, outputs, rtol, atol, title=""):
        self.outputs, self.rtol, self.atol, self.title = outputs, rtol, atol, title

    @property
    def ok(self) -> bool:
        return bool(self.outputs) and all(o.ok for o in self.outputs)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    def __getitem__(self, name) -> OutputReport:
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(name)

    def __iter__(self):
        return iter(self.outputs)

    def __len__(self):
        return len(self.outputs)

    def __str__(self):
        head = (f"{self.title + ': ' if self.title else ''}{len(self.outputs)} output(s), rtol={self.rtol:g}, "
                f"atol={self.atol:g}: {'PASS' if self.ok else 'FAIL'}")
        half = any(o.vs_float32 is not None for o in self.outputs)
        rows = [("output", "shape", "max abs err", "max rel err")
                + (("vs float32 model", "torch fp16 vs float32") if half else ()) + ("result",)]
        for o in self.outputs:
            shape = "x".join(map(str, o.shape)) if o.shape else "scalar"
            if o.expected_shape != o.shape:
                shape += f" (torch: {'x'.join(map(str, o.expected_shape or ())) or 'scalar'})"
            context = tuple("-" if v is None else f"{v:.3g}" for v in (o.vs_float32, o.torch_vs_float32)) \
                if half else ()
            rows.append((o.name, shape, f"{o.max_abs:.3g}", f"{o.max_rel:.3g}") + context
                        + (("ok" if o.ok else "FAIL") + (f"  {o.note}" if o.note else ""),))
        n = len(rows[0]) - 1
        widths = [max(len(r[i]) for r in rows) for i in range(n)]
        lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:n], widths)) + "  " + r[n] for r in rows]
        if half:
            lines.append("  (a float16 model: 'vs float32 model' is tinydl's max abs error against a float32 copy of "
                         "the torch model, 'torch fp16 vs float32' torch's own float16 error against it: the share of "
                         "a difference that float16 itself explains)")
        return "\n".join([head] + lines)

    __repr__ = __str__

    def assert_ok(self):
        if not self.ok:
            raise AssertionError(str(self))
        return self


def _flatten_outputs(x, name, out):
    """(name, leaf) pairs of a nested output: tensors/arrays/scalars; tuples, lists, dicts (HF's ModelOutput is
    a dict), namedtuples, dataclasses and objects with to_tuple()/keys()."""
    if x is None:
        out.append((name, None))
    elif isinstance(x, Tensor) or type(x).__module__.startswith("torch") and hasattr(x, "detach") or \
            isinstance(x, (np.ndarray, np.generic, int, float, bool)):
        out.append((name, x))
    elif isinstance(x, dict) or hasattr(x, "keys") and hasattr(x, "__getitem__"):
        for k in x.keys():
            _flatten_outputs(x[k], f"{name}.{k}" if isinstance(k, str) and k.isidentifier() else f"{name}[{k!r}]",
                             out)
    elif hasattr(x, "_fields"):
        for k in x._fields:
            _flatten_outputs(getattr(x, k), f"{name}.{k}", out)
    elif hasattr(x, "__dataclass_fields__"):
        for k in x.__dataclass_fields__:
            _flatten_outputs(getattr(x, k), f"{name}.{k}", out)
    elif isinstance(x, (tuple, list)):
        for i, v in enumerate(x):
            _flatten_outputs(v, f"{name}[{i}]", out)
    else:
        out.append((name, x))
    return out


def leaves(x) -> list[tuple[str, object]]:
    """(name, leaf) pairs of a model's output structure, named from "output" (`output[0]`, `output.logits`)."""
    return _flatten_outputs(x, "output", [])


def _float32_run(torch_module, args, kwargs) -> dict | None:
    """For a float16 torch module (its parameters float16): its outputs' leaves from a float32 copy run on float32
    copies of the floating inputs, by name; None for any other module, or where the copy cannot run."""
    import copy

    import torch
    params = list(torch_module.parameters()) if isinstance(torch_module, torch.nn.Module) else []
    if not params or params[0].dtype != torch.float16:
        return None

    def widen(v):
        return v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
    try:
        out = copy.deepcopy(torch_module).float()(*map(widen, args), **{k: widen(v) for k, v in kwargs.items()})
    except Exception:  # noqa: BLE001 - the context is optional: the main comparison stands without it
        return None
    return {name: to_numpy(v).astype(np.float64) for name, v in _flatten_outputs(out, "output", [])
            if v is not None and not isinstance(v, (int, bool))}


def _max_abs(a, e) -> float:
    a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
    if a.shape != e.shape:
        return float("inf")
    err = np.abs(a - e)
    return float(np.where(np.isnan(a) & np.isnan(e), 0.0, np.nan_to_num(err, nan=np.inf)).max(initial=0.0))


def _compare_leaf(name, got, want, rtol, atol) -> OutputReport:
    if got is None or want is None:
        ok = got is None and want is None
        return OutputReport(name, (), (), "-", 0.0, 0.0, ok, "" if ok else
                            f"{'tinydl' if got is None else 'torch'} returned None, the other did not")
    a, e = to_numpy(got), to_numpy(want)
    dtype = _dtype_name(got)
    if a.shape != e.shape:
        return OutputReport(name, a.shape, e.shape, dtype, float("inf"), float("inf"), False, "shape mismatch")
    note = "" if dtype == _dtype_name(want) else f"dtype {dtype}, torch {_dtype_name(want)}"
    if a.size == 0:
        return OutputReport(name, a.shape, e.shape, dtype, 0.0, 0.0, not note, note)
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
        err = np.abs(a64 - e64)
    err = np.where(np.isnan(a64) & np.isnan(e64), 0.0, err)
    err = np.where(np.isnan(err), np.inf, err)
    rel = err / np.maximum(np.abs(e64), np.finfo(np.float32).tiny)
    report = OutputReport(name, a.shape, e.shape, dtype, float(err.max()), float(rel.max()), bool(ok.all()) and not note,
                          note)
    if not ok.all():
        i = np.unravel_index(np.argmax(np.where(ok, -1, err)), a.shape)
        report.note = (note + "; " if note else "") + (f"{int((~ok).sum())} of {a.size} differ, worst at "
                                                        f"{tuple(map(int, i))}: {a64[i]:.7g} vs torch {e64[i]:.7g}")
    return report


def compare(torch_module, tinydl_module, *inputs, rtol: float = 1e-4, atol: float = 1e-4, kwargs=None,
            print_report: bool = True, title: str = "") -> CompareReport:
    """Run a torch module (on the CPU, under no_grad) and its tinydl counterpart on the same inputs (numpy
    arrays, torch tensors, tinydl tensors or Python values; `kwargs` for keyword inputs), walk both outputs
    (tensors, tuples, lists, dicts, namedtuples, dataclasses, HF ModelOutput) and report per output its name,
    shape, max abs error, max relative error and whether |tinydl - torch| <= atol + rtol * |torch| everywhere.
    Prints the report unless print_report=False; returns it (`.ok`, `.assert_ok()`, `str()`)."""
    import torch

    from .. import realize
    from .._tensor import tensor as _tensor

    def for_torch(v):
        if isinstance(v, Tensor):
            return torch.from_numpy(v.numpy())
        if isinstance(v, np.ndarray):
            return torch.from_numpy(v)
        return v

    def for_tinydl(v):
        if isinstance(v, np.ndarray) or isinstance(v, torch.Tensor):
            return _tensor(v)
        return v

    kwargs = kwargs or {}
    with torch.no_grad():
        expected = torch_module(*map(for_torch, inputs), **{k: for_torch(v) for k, v in kwargs.items()})
        float32 = _float32_run(torch_module, [for_torch(v) for v in inputs], {k: for_torch(v) for k, v in kwargs.items()})
    got = tinydl_module(*map(for_tinydl, inputs), **{k: for_tinydl(v) for k, v in kwargs.items()})
    want_leaves = _flatten_outputs(expected, "output", [])
    got_leaves = dict(_flatten_outputs(got, "output", []))
    pending = [v for v in got_leaves.values() if isinstance(v, Tensor)]
    if pending:
        realize(*pending)  # every output in one plan and one submit
    rows = []
    for name, want in want_leaves:
        short = name[len("output"):] or "output"
        if name not in got_leaves:
            rows.append(OutputReport(short, (), tuple(getattr(want, "shape", ())), "-", float("inf"), float("inf"),
                                     False, "missing from tinydl's output"))
            continue
        got_leaf = got_leaves.pop(name)
        if isinstance(got_leaf, Tensor):  # read back once, for both comparisons
            got_leaf = got_leaf.numpy()
        rows.append(_compare_leaf(short, got_leaf, want, rtol, atol))
        if float32 is not None and name in float32 and rows[-1].max_abs != float("inf"):
            rows[-1].vs_float32 = _max_abs(got_leaf, float32[name])
            rows[-1].torch_vs_float32 = _max_abs(to_numpy(want), float32[name])
    for name in got_leaves:
        rows.append(OutputReport(name[len("output"):] or "output", (), (), "-", float("inf"), float("inf"), False,
                                 "not in torch's output"))
    report = CompareReport(rows, rtol, atol, title or type(torch_module).__name__)
    if print_report:
        print(report)
    return report
