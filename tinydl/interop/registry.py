"""The one op registry of from_torch: torch names -> tinydl callables, for both graph kinds.

A name is what a graph node calls: a torch qualified name from torch.fx (`torch.Tensor.to`,
`torch.nn.functional.relu`, `_operator.getitem`, `timm.layers.pos_embed.resample_abs_pos_embed`) or an ATen
overload from torch.export (`aten.linear.default`). Op tables register with `@implements(name, ...)`; library
modules fx cannot trace through register a tinydl builder with `@layer(qualified class name)`. Nothing here
knows a graph: fx.py and export.py look names up (`lookup`) and report what is missing (`UnsupportedTorchOps`).
"""
from __future__ import annotations

import operator
import sys

from .. import dtypes

OPS: dict = {}  # name -> tinydl callable taking the node's arguments (torch dtypes already tinydl dtypes)
LAYERS: dict = {}  # qualified class name -> builder(torch module, convert_child) of a tinydl module (fx leaves)
_AUTOWRAP: set = set()  # names of library functions fx must record whole (not trace into)
GENERATORS: list = []  # tinydl.generation registers its generate(module, ...) here (it sits above interop)
# names whose callable returns (values, None): a max pool's indices are not computed, so a graph may read only item
# 0 of the result; fx.py and export.py list a node that reads more as unsupported (`reads_past_values`)
VALUES_ONLY: set = set()
INDICES_READ = "its indices are read: tinydl computes only the pooled values"


class UnsupportedTorchOps(NotImplementedError):
    """Raised by from_torch when the model uses ops tinydl cannot map. `.ops` lists (op, node, where)."""

    def __init__(self, model_name: str, ops: list[tuple[str, str, str]], hint: str = ""):
        self.model_name, self.ops = model_name, ops
        lines = "\n".join(f"  - {op}  (node '{node}'{', in ' + where if where else ''})" for op, node, where in ops)
        super().__init__(f"from_torch({model_name}): {len(ops)} unsupported op(s); tinydl does not fall back to "
                         f"torch:\n{lines}{chr(10) + hint if hint else ''}")


def implements(*names: str, autowrap: bool = False):
    """Register the decorated callable under each name (ATen overloads may be given space-separated in one
    string). autowrap: a library function fx must keep as one call (timm's notrace functions)."""
    def register(fn):
        for group in names:
            for name in group.split():
                OPS[name] = fn
                if autowrap:
                    _AUTOWRAP.add(name)
        return fn
    return register


def layer(*class_names: str):
    """Register the decorated builder of a tinydl module for these torch module classes (qualified names)."""
    def register(builder):
        for name in class_names:
            LAYERS[name] = builder
        return builder
    return register


def reads_past_values(node) -> bool:
    """Whether a graph reads node's result other than as item 0 (the values of a VALUES_ONLY op); an item nothing
    reads does not count (fx records `values, _ = F.max_pool2d(..., return_indices=True)` as two getitems)."""
    def item(u):
        return u.args[1] if u.op == "call_function" and u.target is operator.getitem else None
    return any(item(u) != 0 and (item(u) is None or u.users) for u in node.users)


def lookup(name: str):
    """The tinydl callable registered under name, or None."""
    return OPS.get(name)


def autowrap_functions() -> tuple:
    """The function objects of registered autowrap names whose module is imported (a model built with timm has
    imported it already): the fx tracer keeps them as single call_function nodes."""
    out = []
    for q in sorted(_AUTOWRAP):
        mod, _, name = q.rpartition(".")
        if mod in sys.modules:
            fn = getattr(sys.modules[mod], name, None)
            if fn is not None:
                out.append(fn)
    return tuple(out)


def to_dtype(x):
    """torch dtypes appearing as arguments (x.to(torch.float32), dtype=torch.int64) -> tinydl dtypes; anything
    else unchanged."""
    return dtypes.to_dtype(x) if type(x).__module__ == "torch" and type(x).__name__ == "dtype" else x


def generator():
    """The generate(module, ...) that tinydl.generation registered (tinydl/__init__ imports it)."""
    return GENERATORS[-1]
