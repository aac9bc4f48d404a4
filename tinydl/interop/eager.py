"""from_torch's last path: the torch model's own Python forward, run eagerly, every ATen op it dispatches
computed by tinydl. For models neither torch.fx nor torch.export can capture: Python control flow on tensor
values (`if scores.max() > t`, loops over the boxes kept), shapes that depend on data (`torch.where(mask)`,
boolean indexing, non-maximum suppression), torch.export's "Could not guard on data-dependent expression".

    torch.func.functionalize(lambda state, a, k: torch.func.functional_call(tm, state, a, k),
                             remove="mutations")(state, args, kwargs)

with the parameters, buffers and inputs as `LazyTorchTensor`s: torch tensors without storage (torch's wrapper
subclass) that hold a tinydl Tensor. functionalize turns the model's in-place ops into out-of-place ones (tinydl
tensors are values), and each op reaches `__torch_dispatch__` as an ATen overload, looked up in the same op
registry as torch.export's graphs (aten_ops.py). Every op is first run by torch on meta tensors (no data): that
gives torch's own error, in torch's words, for a bad call, and the shapes and dtypes the tinydl result must have
(a tinydl result of another shape is an error, never returned). The ops stay lazy, so the scheduler fuses them as
in any tinydl code; a value Python reads (`.item()`, `bool(t)`) or a size that depends on data (`nonzero`)
realizes the graph up to there and reads that much back.

Tensors the model makes itself (`torch.arange(n)`, anchors from Python lists) are torch CPU tensors; ops on
those alone run in torch (they do not depend on the inputs), and one that meets a lazy tensor is uploaded.
An op tinydl does not map, and that torch cannot decompose into ops it does, is computed by torch on the CPU for
this first call only, so that the call can go on and list every such op at once: then it raises
UnsupportedTorchOps (no silent fallback to torch).

Each call re-runs the model's Python (no plan replay by tinydl.jit: the ops may differ call to call); the
scheduler's plan cache still skips planning a graph it has seen.
"""
from __future__ import annotations

import weakref

import numpy as np

from .. import dtypes, schedule
from ..ops import CONST, IOTA, VIEW
from .._tensor import Tensor, nonzero, tensor
from . import aten_ops, torch_ops, torchvision_ops  # noqa: F401 - the registered ops
from .torchvision_batched import BATCHED_NMS, batched
from .program import TorchFxModule, as_input
from .registry import INDICES_READ, UnsupportedTorchOps, lookup, to_dtype
from .weights import torch_to_numpy

PATH = "eager (the torch forward, op by op)"
_TORCH_OF = {dtypes.float32: "float32", dtypes.float16: "float16", dtypes.int32: "int64", dtypes.bool_: "bool"}


class EagerTorchModule(TorchFxModule):
    """A converted model whose forward is the torch module's own, its ops computed by tinydl."""

    def __init__(self, tree, torch_module, reason: str):
        super().__init__(tree, None, type(torch_module).__name__, replay=False)
        object.__setattr__(self, "_torch_module", torch_module)
        object.__setattr__(self, "why_eager", reason)
        object.__setattr__(self, "conversion_path", PATH)

    def forward(self, *args, **kwargs):
        return run(self._torch_module, self, args, kwargs, self._name)

    def _cast_floats(self, dtype):
        return super(TorchFxModule, self)._cast_floats(dtype)


def run(tm, tree, args, kwargs, name: str):
    """tm's forward on args/kwargs with tree's weights, every op by tinydl; tinydl tensors out."""
    import torch
    from torch.utils._pytree import tree_map

    _install()
    state = {k: wrap(v) for k, v in [*tree.named_parameters(), *tree.named_buffers()]}
    args, kwargs = tree_map(_input, (tuple(args), dict(kwargs)))
    session = _Session()

    def forward(state, args, kwargs):
        return torch.func.functional_call(tm, state, args, kwargs, strict=False)

    _Session.current.append(session)
    try:
        # torchvision's per-box loops as one set of ops; a value read mid-way computes the tensors the model
        # still holds with it, so that each later read does not compute again the graph they share
        with torch.no_grad(), batched(), schedule.held_on_read(session.held):
            out = torch.func.functionalize(forward, remove="mutations")(state, args, kwargs)
    finally:
        _Session.current.pop()
    if session.missing:
        raise UnsupportedTorchOps(name, [(op, "-", where) for op, where in session.missing.items()], hint=(
            "(found running the torch forward op by op, the path taken when neither torch.fx nor torch.export "
            "could capture it)"))
    return tree_map(unwrap_output, out)


class _Session:
    """What one eager call found: the ops tinydl could not compute (op -> where); the tensors it made that the
    model may still hold (weakly: torch frees those it drops)."""
    current: list = []

    def __init__(self):
        self.missing: dict = {}
        # id -> weak reference (a WeakSet would compare torch tensors with ==, which torch computes elementwise)
        self.made: dict[int, weakref.ref] = {}

    def add(self, t) -> None:
        self.made[id(t)] = weakref.ref(t)

    def held(self) -> list:
        """The computations behind the tensors still alive and not yet computed: under views (an expand or a
        permute is index math, not worth a buffer), constants and iotas left out."""
        out = []
        for key, ref in list(self.made.items()):
            t = ref()
            node = None if t is None or t.value is None else t.value.node
            while node is not None and node.kind == VIEW:
                node = node.srcs[0]
            if node is None or node.stored:
                del self.made[key]
            elif node.kind not in (CONST, IOTA):
                out.append(node)
        return out


def _input(v):
    import torch
    if isinstance(v, (Tensor, np.ndarray)) or isinstance(v, torch.Tensor):
        return wrap(as_input(v))
    return v


def unwrap_output(v):
    import torch
    if isinstance(v, LazyTorchTensor):
        return v.value
    if isinstance(v, torch.Tensor):  # made by the model from constants alone
        return tensor(torch_to_numpy(v))
    return v


def wrap(value: Tensor, torch_dtype=None):
    import torch
    if torch_dtype is None:
        torch_dtype = getattr(torch, _TORCH_OF[value.dtype])
    return LazyTorchTensor(value, torch_dtype)


def _lazy_class():
    import torch

    class LazyTorchTensor(torch.Tensor):
        """A torch tensor without storage holding a tinydl Tensor (`value`; None for results tinydl does not
        compute, such as a max pool's indices: `missing` says why)."""

        @staticmethod
        def __new__(cls, value, torch_dtype, shape=None, missing: str = "", strides=None, view_of: str = ""):
            shape = tuple(value.shape) if value is not None else tuple(shape)
            r = torch.Tensor._make_wrapper_subclass(cls, shape, dtype=torch_dtype, device="cpu", strides=strides)
            # view_of: the view op that made it (torch's strides then describe another tensor's storage)
            r.value, r.missing, r.view_of = value, missing, view_of
            if _Session.current and value is not None:
                _Session.current[-1].add(r)
            return r

        def __repr__(self, *, tensor_contents=None):
            return f"LazyTorchTensor({self.value!r})"

        @classmethod
        def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
            return _dispatch(func, args, kwargs or {})

    return LazyTorchTensor


LazyTorchTensor = None  # the class, made on first use: it needs torch, which tinydl imports only when asked


def _install():
    global LazyTorchTensor
    if LazyTorchTensor is None:
        LazyTorchTensor = _lazy_class()


# -- one op --------------------------------------------------------------------------------------------------
def _dispatch(func, args, kwargs, special: bool = True):
    from torch.utils._pytree import tree_map
    name = str(func)
    handler = _SPECIAL.get(name) if special else None
    if handler is not None:
        return handler(func, args, kwargs)
    try:
        expected = func(*tree_map(_meta, args), **tree_map(_meta, kwargs))
    except Exception as e:  # noqa: BLE001 - torch's own error for the call, or a size that depends on data
        if name not in _DATA_DEPENDENT:
            _raise_as_torch_cpu(func, args, kwargs)
            raise
        expected = e
    fn = lookup(name)
    if fn is None:
        decomposed = _decompose(func, args, kwargs)
        if decomposed is not NotImplemented:
            return decomposed
        return _in_torch(func, args, kwargs, missing=True)
    result = fn(*tree_map(_tinydl_arg, args), **tree_map(_tinydl_arg, kwargs))
    if isinstance(expected, Exception):
        return tree_map(lambda r: wrap(r, _result_dtype(args, r)) if isinstance(r, Tensor) else r, result)
    return _match(name, result, expected, _view_of(func, args))


def _meta(a):
    import torch
    if isinstance(a, LazyTorchTensor):
        return torch.empty(a.shape, dtype=a.dtype, device="meta")
    if isinstance(a, torch.Tensor):
        return a.to("meta")
    if isinstance(a, torch.device):  # `x.to(device="cpu")`: the meta run stays on meta
        return torch.device("meta")
    return a


def _raise_as_torch_cpu(func, args, kwargs) -> None:
    """A call meta tensors refuse, made on zero-filled CPU tensors of the same shapes: torch CPU's own error (its
    message can differ from the meta kernel's). Returns where the CPU kernel accepts it."""
    import torch
    from torch.utils._pytree import tree_map

    def zeros(a):
        if isinstance(a, LazyTorchTensor):
            return torch.zeros(a.shape, dtype=a.dtype)
        return a
    func(*tree_map(zeros, args), **tree_map(zeros, kwargs))


def _tinydl_arg(a):
    import torch
    if isinstance(a, LazyTorchTensor):
        if a.value is None:
            raise NotImplementedError(f"from_torch (eager): {a.missing}")
        return a.value
    if isinstance(a, torch.Tensor):
        return tensor(torch_to_numpy(a))
    return to_dtype(a)


def _view_of(func, args) -> str:
    """What a result shares its storage with, in torch: "" for a tensor of its own, else the view op's name."""
    if not func.is_view:
        return ""
    op = func.__name__.split(".")[0]
    source = args[0] if args and isinstance(args[0], LazyTorchTensor) else None
    if op in _ORDER_KEEPING and source is not None and not source.view_of and source.is_contiguous():
        return ""  # the same elements in the same order: torch's storage of it is its own
    return op


def _match(name, result, expected, view_of: str = ""):
    """Wrap tinydl's result as torch's: same structure, shapes checked, dtypes as torch's (int64 as int32)."""
    import torch
    if isinstance(expected, torch.Tensor):
        if result is None:  # an output tinydl does not compute (VALUES_ONLY ops)
            return LazyTorchTensor(None, expected.dtype, expected.shape, missing=f"{name}: {INDICES_READ}")
        if not isinstance(result, Tensor):
            result = tensor(np.asarray(result))
        if tuple(result.shape) != tuple(expected.shape):
            raise RuntimeError(f"from_torch (eager): tinydl's {name} gave shape {list(result.shape)} where torch "
                               f"gives {list(expected.shape)}")
        want = to_dtype(expected.dtype)
        if result.dtype != want:
            result = result.to(want)
        return LazyTorchTensor(result, expected.dtype, strides=expected.stride(), view_of=view_of)
    if isinstance(expected, (tuple, list)):
        if not isinstance(result, (tuple, list)):
            result = [result]
        return type(expected)(_match(name, r, e, view_of) for r, e in zip(result, expected))
    return result


def _result_dtype(args, r: Tensor):
    """The torch dtype of a data-dependent result: the input's where the kinds agree, else tinydl's dtype's."""
    import torch
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    if first is not None and to_dtype(first.dtype) == r.dtype:
        return first.dtype
    return getattr(torch, _TORCH_OF[r.dtype])


def _decompose(func, args, kwargs):
    """torch's own decomposition of func into smaller ATen ops (dispatched back here), where it has one."""
    from torch._decomp import decomposition_table
    d = decomposition_table.get(func)
    if d is None:
        return NotImplemented
    return d(*args, **kwargs)


def _in_torch(func, args, kwargs, missing: bool):
    """func computed by torch on the CPU (its lazy inputs read back); for an op tinydl lacks, recorded so that
    the call raises once it has found every such op."""
    import torch
    from torch.utils._pytree import tree_map
    if missing and _Session.current:
        _Session.current[-1].missing.setdefault(str(func), "")

    def host(a):
        if isinstance(a, LazyTorchTensor):
            v = torch.from_numpy(np.ascontiguousarray(_tinydl_arg(a).numpy()))
            return v.to(a.dtype)
        return a
    out = func(*tree_map(host, args), **tree_map(host, kwargs))
    return tree_map(lambda o: wrap(tensor(torch_to_numpy(o)), o.dtype) if isinstance(o, torch.Tensor) else o, out)


# -- ops whose results Python reads, or whose sizes depend on the data ---------------------------------------
def _item(func, args, kwargs):
    x = args[0]
    if not isinstance(x, LazyTorchTensor):
        return func(*args, **kwargs)
    v = _tinydl_arg(x).numpy().reshape(-1)[0]
    if x.dtype.is_floating_point:
        return float(v)
    return bool(v) if x.dtype == _torch().bool else int(v)


def _nonzero(func, args, kwargs):
    x = args[0]
    if not isinstance(x, LazyTorchTensor):
        return func(*args, **kwargs)
    return wrap(nonzero(_tinydl_arg(x)), _torch().int64)


def _identity(func, args, kwargs):
    """detach / alias / lift_fresh: the same value in a wrapper of its own (torch refuses a view op that returns its
    input itself: "View operation returned a tensor that is the same as the input base tensor")."""
    x = args[0]
    if not isinstance(x, LazyTorchTensor):
        return x
    return LazyTorchTensor(x.value, x.dtype, x.shape, x.missing, strides=x.stride(), view_of=x.view_of)


def _as_strided(func, args, kwargs):
    x = args[0]
    if isinstance(x, LazyTorchTensor) and (x.view_of or not x.is_contiguous()):
        raise NotImplementedError(f"as_strided of a view ({x.view_of or 'a tensor with strides'}): torch reads the "
                                  f"viewed tensor's storage, which tinydl does not keep")
    return _dispatch(func, args, kwargs, special=False)


def _torch():
    import torch
    return torch


_SPECIAL = {
    "aten._local_scalar_dense.default": _item,
    "aten.item.default": _item,
    "aten.nonzero.default": _nonzero,
    "aten.detach.default": _identity,
    "aten.alias.default": _identity,
    "aten.lift_fresh.default": _identity,
    "aten.as_strided.default": _as_strided,
    "aten.as_strided_copy.default": _as_strided,
    "aten.as_strided_scatter.default": _as_strided,
}
# view ops whose result is the same elements in the same order (torch's storage of a contiguous input)
_ORDER_KEEPING = {"view", "_unsafe_view", "reshape", "alias", "detach", "unsqueeze", "squeeze", "flatten",
                  "unflatten", "expand_as"}
# ops meta tensors cannot size (their result's shape depends on the values): computed, then described
_DATA_DEPENDENT = {"aten.index.Tensor", "torchvision.nms.default", BATCHED_NMS, "aten.masked_select.default",
                   "aten.unique_consecutive.default",
                   "aten._unique2.default", "aten.unique_dim.default", "aten.repeat_interleave.Tensor",
                   "aten.nonzero_static.default", "aten.argwhere.default"}
