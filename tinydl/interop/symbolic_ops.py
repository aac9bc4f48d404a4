"""The symbolic-size nodes of torch.export graphs with dynamic dims, evaluated on concrete shapes.

Exported with dynamic dims, an ATen graph reads sizes at run time (`aten.sym_size.int(x, 1)`), computes with them
through Python operators and `torch.sym_*` functions (`operator.mul(s0, 12)`, `torch.sym_max`), and passes the
results to view/expand/arange/full/... as sizes. tinydl tensors have concrete shapes, so every such node is a
plain Python int (or bool/float) at run time and the size arguments of the ATen ops are ordinary ints; the ops
here only have to read sizes and do integer arithmetic. Runtime asserts torch inserted on sizes
(`aten._assert_scalar`) are checked; range hints (`sym_constrain_range*`) are the input check's job
(export.ExportProgram checks each input's dims against the exported ranges first).
"""
from __future__ import annotations

import math
import operator

from .registry import implements


def _contiguous_strides(shape) -> tuple:
    strides, step = [], 1
    for s in reversed(shape):
        strides.append(step)
        step *= max(int(s), 1)
    return tuple(reversed(strides))


implements("aten.sym_size.int")(lambda x, dim: x.shape[dim])
implements("aten.sym_numel.default")(lambda x: x.numel())
# tinydl tensors are logically contiguous (views are index math, not strided storage): torch's strides of a
# contiguous tensor of that shape
implements("aten.sym_stride.int")(lambda x, dim: _contiguous_strides(x.shape)[dim])
implements("aten.sym_storage_offset.default")(lambda x: 0)


@implements("aten._assert_scalar.default")
def _assert_scalar(cond, msg=""):
    """A relation between sizes torch assumed when it exported the graph (`Eq(s0, 2*s1)`, ...): false, the
    graph would compute something else than the torch model."""
    if not cond:
        raise RuntimeError(f"{msg}: the inputs' sizes break an assumption of the exported graph (torch.export "
                           f"derived it from the model's code; convert again with example inputs of these sizes)")


# Python operators and math functions on SymInts: torch_ops.py registers the arithmetic and comparison
# operators (fx graphs call them too); these are the rest torch emits on sizes
for _op in "pos abs not_ lshift rshift".split():
    implements(f"_operator.{_op}")(getattr(operator, _op))
for _fn in "ceil floor trunc log2".split():
    implements(f"math.{_fn}")(getattr(math, _fn))


def _sym_ite(cond, a, b):
    return a if cond else b


def _sym_sum(args):
    return sum(args)


implements("torch.sym_max")(max)
implements("torch.sym_min")(min)
implements("torch.sym_not")(operator.not_)
implements("torch.sym_float")(float)
implements("torch.sym_int")(lambda x: int(math.trunc(x)))
implements("torch.sym_ite")(_sym_ite)
implements("torch.sym_sum")(_sym_sum)
