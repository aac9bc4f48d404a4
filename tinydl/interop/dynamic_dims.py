"""Dynamic dims of the torch.export path: which dims torch.export is asked to keep dynamic, and the check of a
call's input shapes against what the exported graph allows.

By default (`dynamic_shapes="auto"`) every dim of every tensor input is `torch.export.Dim.AUTO`: torch keeps a
dim dynamic unless the model's code forces it static (a Python branch or loop on it, a reshape to a constant, a
weight's size), and then specializes it silently instead of failing. Where that export fails or runs past
Options.export_budget_s (torch's symbolic shape reasoning over windowed attention's padded spatial dims can take
minutes), dim 0 alone is tried, then the example's shapes (export.export). torch always specializes a dim whose size
is 0 or 1 in the example, so example inputs should have sizes of 2 or more in the dims meant to vary.

The exported placeholders carry the shapes as torch saw them (`node.meta["val"]`): an int for a static dim, a
SymInt whose expression is a symbol (`s0`) for a dynamic one, shared by dims torch found equal, with its allowed
range in `ExportedProgram.range_constraints`. `InputDims.check` binds the symbols to the call's sizes and raises
with the input, the dim and the allowed value or range where a size does not fit.
"""
from __future__ import annotations

AUTO = "auto"


def auto_spec(signature, args, kwargs, first_dim_only: bool = False):
    """torch.export's dynamic_shapes for these example inputs with Dim.AUTO on every dim of every tensor (or on
    dim 0 only: the batch): a dict by parameter name (the form torch matches to the forward's bound arguments), or
    a tuple when forward has no signature to bind by."""
    import torch

    def spec(v):
        if isinstance(v, torch.Tensor):
            dims = range(min(v.ndim, 1) if first_dim_only else v.ndim)
            return {d: torch.export.Dim.AUTO for d in dims} if v.ndim else None
        if isinstance(v, (list, tuple)):
            return type(v)(spec(x) for x in v) if not hasattr(v, "_fields") else tuple(spec(x) for x in v)
        if isinstance(v, dict):
            return {k: spec(x) for k, x in v.items()}
        return None

    if signature is None:
        return tuple(spec(a) for a in args) + tuple(spec(v) for v in kwargs.values())
    bound = signature.bind(*args, **kwargs)
    return {name: spec(v) for name, v in bound.arguments.items()}


def _bound(value):
    try:
        return int(value)
    except Exception:  # noqa: BLE001 - torch's int_oo (sympy infinity, which int() fails on): no bound
        return None


class InputDims:
    """The exported dims of the user inputs and the ranges of their symbols. static: the graph was exported
    without dynamic dims (dynamic_shapes=None/False). fallback: why fewer dims are dynamic than asked for (export's
    "auto" gave some up), None if none were."""

    def __init__(self, ranges, static: bool = False, fallback: str | None = None):
        self.ranges = {str(k): (_bound(v.lower), _bound(v.upper)) for k, v in (ranges or {}).items()}
        self.static = static
        self.fallback = fallback

    @staticmethod
    def dims(example) -> list:
        """The example placeholder's dims: an int (static) or the SymInt's sympy expression."""
        out = []
        for s in example.shape:
            expr = getattr(getattr(s, "node", None), "expr", None)
            out.append(int(s) if expr is None or expr.is_number else expr)
        return out

    def check(self, name: str, example, shape, bindings: dict) -> None:
        """Raise if `shape` (the call's input `name`) does not fit the exported dims; binds the input's symbols
        in `bindings` (symbol name -> (size, input name, dim)), shared across the call's inputs."""
        want = self.dims(example)
        if len(shape) != len(want):
            raise RuntimeError(f"argument '{name}' has {len(shape)} dims (shape {list(shape)}), but the model was "
                               f"exported with a {len(want)}-dim input there (example shape "
                               f"{[w if isinstance(w, int) else str(w) for w in want]})")
        later = []
        for d, (got, w) in enumerate(zip(shape, want)):
            if isinstance(w, int):
                if got != w:
                    raise RuntimeError(f"argument '{name}' has size {got} at dim {d}, but the exported model only "
                                       f"accepts {w} there: {self._why_static(w)}; convert again with example "
                                       f"inputs of this size")
            elif w.is_Symbol:
                self._bind(str(w), got, name, d, bindings)
            else:
                later.append((d, got, w))
        for d, got, w in later:  # a size torch derived from other dims (2*s0, s0 + 1): checked once they are known
            free = {str(s) for s in w.free_symbols}
            if free <= set(bindings):
                value = int(w.subs({s: bindings[str(s)][0] for s in w.free_symbols}))
                if got != value:
                    raise RuntimeError(f"argument '{name}' has size {got} at dim {d}, but the exported model "
                                       f"requires {w} = {value} there")

    def _why_static(self, size: int) -> str:
        if self.static:
            return (f"it was converted with static shapes ({self.fallback})" if self.fallback else
                    "it was converted with static shapes (dynamic_shapes=None, or a model torch.export could not "
                    "export with dynamic dims)")
        if self.fallback:
            return self.fallback
        if size in (0, 1):
            return (f"the example's size there was {size}, and torch.export specializes sizes 0 and 1 "
                    f"(use an example of size 2 or more in dims meant to vary)")
        return "the model's code requires that size (torch.export specialized the dim)"

    def _bind(self, sym: str, got: int, name: str, d: int, bindings: dict) -> None:
        lo, hi = self.ranges.get(sym, (None, None))
        if (lo is not None and got < lo) or (hi is not None and got > hi):
            allowed = f"{lo} <= size <= {hi}" if hi is not None else f"size >= {lo}"
            hint = ("; torch.export keeps a dim dynamic only for sizes >= 2 (sizes 0 and 1 are special cases it "
                    "specializes): convert with example inputs of this size for it") if got < 2 <= (lo or 0) else ""
            raise RuntimeError(f"argument '{name}' has size {got} at dim {d}, outside the range the model was "
                               f"exported for ({allowed}){hint}")
        seen = bindings.get(sym)
        if seen is None:
            bindings[sym] = (got, name, d)
        elif seen[0] != got:
            raise RuntimeError(f"argument '{name}' has size {got} at dim {d}, but the exported model requires it "
                               f"equal to dim {seen[2]} of argument '{seen[1]}' ({seen[0]})")
