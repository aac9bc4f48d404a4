"""from_torch through torch.fx: torch-level graphs (call_module / call_function / call_method) run with tinydl.

The mapping is data: FUNCTIONS (torch function -> tinydl callable) and METHODS (Tensor method name -> tinydl
callable), filled mostly by name, since tinydl's API mirrors torch's; OVERRIDES hold the few calls whose
arguments differ.
"""
from __future__ import annotations

import builtins
import functools
import importlib
import math
import operator
import weakref

from .. import dtypes
from .. import nn as tnn
from ..nn import functional as F
from ..nn.module import Module
from ..tensor import Tensor

# the module tinydl.tensor: `from .. import tensor` would give the function tinydl.tensor (the package re-exports it)
T = importlib.import_module("..tensor", __package__)
from . import modules, timm_ops, torchvision_ops
from ..jit import Jit
from .convert import UnsupportedTorchOps
from .weights import torch_to_numpy


def trace(tm):
    import torch.fx

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return modules.is_layer(m)

    tracer = Tracer(autowrap_functions=timm_ops.autowrap_functions())  # timm's notrace functions stay whole
    graph = tracer.trace(tm)
    return torch.fx.GraphModule(tracer.root, graph, type(tm).__name__)


# -- the mapping ---------------------------------------------------------------------------------------------
def _dtype(x):
    """torch dtypes appearing as arguments (x.to(torch.float32), dtype=torch.int64) -> tinydl dtypes."""
    return dtypes.to_dtype(x) if type(x).__module__ == "torch" and type(x).__name__ == "dtype" else x


def _to(x, *args, **kwargs):
    for a in list(args) + list(kwargs.values()):
        a = _dtype(a)
        if isinstance(a, dtypes.DType):
            return x.to(a)
        if isinstance(a, Tensor):
            return x.to(a.dtype)
    return x  # device moves are no-ops


def _size(x, dim=None):
    return x.size(dim) if dim is not None else tuple(x.shape)


def _flatten(x, start_dim=0, end_dim=-1):
    return x.flatten(start_dim, end_dim)


def _view(x, *shape):
    if len(shape) == 1 and type(shape[0]).__module__ == "torch" and type(shape[0]).__name__ == "dtype":
        raise NotImplementedError("Tensor.view(dtype) (a bitcast) is not supported")
    return x.reshape(*shape)


def _permute(x, *dims):
    return x.permute(*dims)


def _repeat(x, *sizes):
    sizes = T._varargs(sizes)
    lead = len(sizes) - x.ndim
    x = x.reshape((1,) * lead + x.shape)
    out = x
    for d, r in enumerate(sizes):
        if r != 1:
            out = T.cat([out] * r, d)
    return out


def _scalar_tensor(v, dtype=None, **_):
    return T.full((), v, dtype=_dtype(dtype))


# Explicit entries, by torch qualified name (module path + name); everything else resolves by name below.
OVERRIDES = {
    "torch.flatten": _flatten,
    "torch.Tensor.to": _to,
    "torch.Tensor.type": _to,
    "torch.Tensor.size": _size,
    "torch.Tensor.view": _view,
    "torch.Tensor.reshape": _view,
    "torch.Tensor.permute": _permute,
    "torch.Tensor.repeat": _repeat,
    "torch.Tensor.contiguous": lambda x, *a, **k: x,
    "torch.Tensor.dim": lambda x: x.ndim,
    "torch.Tensor.numel": lambda x: x.numel(),
    "torch.Tensor.float": lambda x: x.float(),
    "torch.Tensor.half": lambda x: x.half(),
    "torch.Tensor.long": lambda x: x.int(),
    "torch.Tensor.int": lambda x: x.int(),
    "torch.Tensor.bool": lambda x: x.bool(),
    "torch.Tensor.masked_fill": lambda x, mask, value: T.where(mask, value, x),
    "torch.Tensor.__getitem__": operator.getitem,
    "torch.scalar_tensor": _scalar_tensor,
    "torch._assert": lambda cond, msg=None: None,  # shape checks the tracer recorded; tinydl checks shapes itself
    "torch.tensor": lambda data, dtype=None, **_: T.tensor(data, _dtype(dtype)),
    "torch.zeros": lambda *s, dtype=None, **_: T.zeros(*s, dtype=_dtype(dtype)),
    "torch.ones": lambda *s, dtype=None, **_: T.ones(*s, dtype=_dtype(dtype)),
    "torch.full": lambda s, v, dtype=None, **_: T.full(s, v, dtype=_dtype(dtype)),
    "torch.arange": lambda *a, dtype=None, **_: T.arange(*a, dtype=_dtype(dtype)),
    "torch.nn.functional.dropout": lambda x, p=0.5, training=False, inplace=False: F.dropout(x, p, training),
    "torch.nn.functional.relu": lambda x, inplace=False: F.relu(x),
    "torch.nn.functional.relu6": lambda x, inplace=False: F.relu6(x),
    "torch.nn.functional.silu": lambda x, inplace=False: F.silu(x),
    "torch.nn.functional.hardswish": lambda x, inplace=False: F.hardswish(x),
    "torch.nn.functional.hardsigmoid": lambda x, inplace=False: F.hardsigmoid(x),
    "torch.nn.functional.leaky_relu": lambda x, negative_slope=0.01, inplace=False: F.leaky_relu(x, negative_slope),
    "torch.nn.functional.elu": lambda x, alpha=1.0, inplace=False: F.elu(x, alpha),
    "torch.nn.functional.hardtanh": lambda x, min_val=-1.0, max_val=1.0, inplace=False: F.hardtanh(x, min_val, max_val),
    "torch.nn.functional.softmax": lambda x, dim=None, _stacklevel=3, dtype=None: F.softmax(x, dim, _dtype(dtype)),
    "torch.nn.functional.log_softmax": lambda x, dim=None, _stacklevel=3, dtype=None: F.log_softmax(x, dim, _dtype(dtype)),
    "torch.softmax": lambda x, dim, dtype=None: F.softmax(x, dim, _dtype(dtype)),
    "torch.Tensor.softmax": lambda x, dim, dtype=None: F.softmax(x, dim, _dtype(dtype)),
}

OVERRIDES.update(torchvision_ops.FUNCTIONS)  # torchvision's fx-wrapped functions, by qualified name
OVERRIDES.update(timm_ops.FUNCTIONS)  # timm's notrace functions, by qualified name
modules.CUSTOM_LAYERS.update(timm_ops.LAYERS)  # timm's notrace modules: fx leaves run by tinydl modules
OVERRIDES.update({
    "torch.functional.split": lambda x, split_size_or_sections, dim=0: x.split(split_size_or_sections, dim),
    "torch.Tensor.reshape_as": lambda x, other: x.reshape(other.shape),
    "torch.Tensor.view_as": lambda x, other: x.reshape(other.shape),
})

_TENSOR_ATTRS = {"device": lambda x: "webgpu", "is_cuda": lambda x: False, "data": lambda x: x,
                 "requires_grad": lambda x: False}


def _getattr(obj, name, *default):
    """x.device & co. read in a traced forward: tinydl tensors have one device; the value only feeds str()/moves."""
    if isinstance(obj, Tensor) and name in _TENSOR_ATTRS:
        return _TENSOR_ATTRS[name](obj)
    return getattr(obj, name, *default)


_OPERATORS = {
    operator.add: operator.add, operator.sub: operator.sub, operator.mul: operator.mul,
    operator.truediv: operator.truediv, operator.floordiv: operator.floordiv, operator.matmul: operator.matmul,
    operator.neg: operator.neg, operator.pow: operator.pow, operator.getitem: operator.getitem,
    operator.eq: operator.eq, operator.ne: operator.ne, operator.lt: operator.lt, operator.le: operator.le,
    operator.gt: operator.gt, operator.ge: operator.ge, operator.and_: operator.and_, operator.or_: operator.or_,
    operator.invert: operator.invert, operator.xor: operator.xor, operator.iadd: operator.add,
    operator.imul: operator.mul, operator.mod: operator.mod, builtins.getattr: _getattr, builtins.len: builtins.len,
    math.sqrt: math.sqrt, builtins.int: builtins.int, builtins.float: builtins.float,
}


# torch's C submodules -> their public names (torch._C._linalg.linalg_svd is torch.linalg.svd)
_C_SUBMODULES = {"torch._C._fft": "fft", "torch._C._linalg": "linalg", "torch._C._special": "special",
                 "torch._C._nn": "nn.functional"}


def _qualname(fn) -> str:
    mod = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    if mod in _C_SUBMODULES:
        sub = _C_SUBMODULES[mod]
        return f"torch.{sub}.{name.removeprefix(sub + '_')}"
    if name.startswith("_VariableFunctionsClass."):
        name = name.split(".", 1)[1]
    if mod.startswith("torch._C") or mod in ("torch._VariableFunctions",) or not mod:
        mod = "torch"
    if mod == "torch._tensor" or name.startswith("TensorBase."):
        mod, name = "torch", "Tensor." + name.split(".")[-1]
    return f"{mod}.{name}"


def resolve_function(fn):
    """The tinydl callable for a torch function object, or None."""
    if fn in _OPERATORS:
        return _OPERATORS[fn]
    q = _qualname(fn)
    if q in OVERRIDES:
        return OVERRIDES[q]
    name = q.rsplit(".", 1)[-1]
    if q.startswith("torch.nn.functional."):
        return getattr(F, name, None)
    if q.startswith("torch.Tensor."):
        return resolve_method(name)
    if q.startswith("torch.") and q.count(".") == 1:  # torch.foo(x, ...): tinydl's foo, else x.foo(...)
        return getattr(T, name, None) or getattr(F, name, None) or resolve_method(name)
    return None


def resolve_method(name: str):
    if f"torch.Tensor.{name}" in OVERRIDES:
        return OVERRIDES[f"torch.Tensor.{name}"]
    attr = getattr(Tensor, name, None)
    if attr is None or not callable(attr):
        return None
    return lambda x, *a, **k: getattr(x, name)(*a, **k)


# -- the converted module ------------------------------------------------------------------------------------
class TorchFxModule(Module):
    """A converted torch model: the mirrored module tree (same state_dict keys) plus the traced graph."""

    def __init__(self, tree: Module, program, name: str):
        super().__init__()
        for k, v in tree._modules.items():
            self.add_module(k, v)
        for k, v in tree._parameters.items():
            self.register_parameter(k, v)
        for k, v in tree._buffers.items():
            self.register_buffer(k, v, persistent=k not in tree._non_persistent)
        object.__setattr__(self, "_program", program)
        object.__setattr__(self, "_name", name)
        # repeated calls with same-shaped tensor inputs replay the captured plan (tinydl.jit): the graph is
        # static, as traced, so only the input buffers change
        object.__setattr__(self, "_replay", Jit(_Forward(self)))

    def __call__(self, *args, **kwargs):
        return self._replay(*args, **kwargs)

    def forward(self, *args, **kwargs):
        return self._program.run(self, args, kwargs)

    def _cast_floats(self, dtype):
        if hasattr(self._program, "float_dtype"):  # the traced graph's float32 follows the weights
            self._program.float_dtype = dtype
        return super()._cast_floats(dtype)

    def extra_repr(self):
        return f"from_torch({self._name})"


class _Forward:
    """A converted module's forward for its Jit, holding the module weakly: a bound method would make module ->
    Jit -> module a cycle, so a dropped model's weights would wait for Python's cycle collector. Looks like a bound
    method to the Jit (`__self__`: the Module whose state it watches)."""
    __slots__ = ("_ref",)

    def __init__(self, module):
        self._ref = weakref.ref(module)

    @property
    def __self__(self):
        return self._ref()

    def __call__(self, *args, **kwargs):
        return self._ref().forward(*args, **kwargs)

    def __deepcopy__(self, memo):  # the copy's forward: the module being copied is in memo already
        import copy
        return _Forward(copy.deepcopy(self._ref(), memo))


class Program:
    """The fx graph as a list of steps with resolved tinydl callables."""

    def __init__(self, graph):
        self.graph = graph
        self.steps = []
        self.placeholders = []
        self.signature = None  # the torch forward's inspect.Signature (convert sets it): see _bind
        self._stub = None
        missing = []
        for node in graph.nodes:
            where = _where(node)
            if node.op == "placeholder":
                self.placeholders.append(node)
                fn = None
            elif node.op == "call_function":
                fn = resolve_function(node.target)
                if fn is None:
                    missing.append((f"function {_qualname(node.target)}", node.name, where))
            elif node.op == "call_method":
                fn = resolve_method(node.target)
                if fn is None:
                    missing.append((f"method Tensor.{node.target}", node.name, where))
            else:
                fn = None
            self.steps.append((node, fn))
        self.missing = missing

    def _bind(self, model: str, args, kwargs) -> dict:
        """The traced forward's arguments by placeholder name, bound as Python binds them, with Python's errors
        and wording (a missing input must not surface later as an error about None): through a stub with the
        torch forward's signature (`signature`, set by convert), else from the placeholders (which fx may list
        out of the signature's order: keyword-only parameters are then not told apart)."""
        if self.signature is not None:
            if self._stub is None:
                self._stub = _binding_stub(model, self.signature)
            values = self._stub(None, *args, **kwargs)
            return {n.name: values[n.target.lstrip("*")] for n in self.placeholders}
        positional, keyword_only, var_pos, var_kw = [], [], None, None
        for n in self.placeholders:
            if n.target.startswith("**"):
                var_kw = n
            elif n.target.startswith("*"):
                var_pos = n
            else:
                (keyword_only if var_pos is not None else positional).append(n)
        if len(args) > len(positional) and var_pos is None:
            low = 1 + sum(1 for n in positional if not n.args)
            high = len(positional) + 1
            takes = f"{high}" if low == high else f"from {low} to {high}"
            raise TypeError(f"{model}.forward() takes {takes} positional argument{'s' if high > 1 else ''} but "
                            f"{len(args) + 1} were given")
        given = {n.target: v for n, v in zip(positional, args)}
        out = {var_pos.name: tuple(args[len(positional):])} if var_pos is not None else {}
        extra = {}
        names = {n.target for n in positional + keyword_only}
        for k, v in kwargs.items():
            if k not in names:
                if var_kw is None:
                    raise TypeError(f"{model}.forward() got an unexpected keyword argument '{k}'")
                extra[k] = v
            elif k in given:
                raise TypeError(f"{model}.forward() got multiple values for argument '{k}'")
            else:
                given[k] = v
        if var_kw is not None:
            out[var_kw.name] = extra
        for group, kind in ((positional, "positional"), (keyword_only, "keyword-only")):
            missing = []
            for n in group:
                if n.target in given:
                    out[n.name] = given[n.target]
                elif n.args:  # the parameter's default, as traced
                    out[n.name] = n.args[0]
                else:
                    missing.append(f"'{n.target}'")
            if missing:
                listed = missing[0] if len(missing) == 1 else (
                    " and ".join(missing) if len(missing) == 2 else ", ".join(missing[:-1]) + ", and " + missing[-1])
                raise TypeError(f"{model}.forward() missing {len(missing)} required {kind} argument"
                                f"{'s' if len(missing) > 1 else ''}: {listed}")
        return out

    def run(self, root: Module, args, kwargs):
        env = {}
        load = functools.partial(_load, env)  # not a recursive closure: that is a cycle holding env's tensors

        inputs = self._bind(getattr(root, "_name", type(root).__name__), args, kwargs)
        for node, fn in self.steps:
            if node.op == "placeholder":
                env[node.name] = _as_input(inputs[node.name])
            elif node.op == "get_attr":
                env[node.name] = _fetch(root, node.target)
            elif node.op == "call_module":
                env[node.name] = root.get_submodule(node.target)(*load(node.args), **load(node.kwargs))
            elif node.op in ("call_function", "call_method"):
                env[node.name] = fn(*load(node.args), **load(node.kwargs))
            elif node.op == "output":
                return load(node.args[0])
        raise RuntimeError("graph without output")


def _load(env: dict, a):
    """An fx node's argument with its fx nodes replaced by their values in env."""
    import torch.fx
    if isinstance(a, torch.fx.Node):
        return env[a.name]
    if isinstance(a, (list, tuple)):
        return type(a)(_load(env, x) for x in a) if not hasattr(a, "_fields") else \
            type(a)(*(_load(env, x) for x in a))
    if isinstance(a, dict):
        return {k: _load(env, v) for k, v in a.items()}
    if isinstance(a, slice):
        return slice(_load(env, a.start), _load(env, a.stop), _load(env, a.step))
    return _dtype(a)


def _binding_stub(model: str, sig):
    """A function with forward's signature that returns its arguments by name: calling it binds them exactly as
    calling the torch model does, and raises Python's own TypeError ("Net.forward() missing 1 required
    positional argument: 'x'") for missing, extra or unknown ones."""
    import inspect
    P = inspect.Parameter
    params, defaults, star = ["__module"], {}, False
    kinds = [p.kind for p in sig.parameters.values()]
    for i, p in enumerate(sig.parameters.values()):
        if p.kind == P.VAR_POSITIONAL:
            params.append("*" + p.name)
            star = True
        elif p.kind == P.VAR_KEYWORD:
            params.append("**" + p.name)
        else:
            if p.kind == P.KEYWORD_ONLY and not star:
                params.append("*")
                star = True
            if p.default is not P.empty:
                defaults[p.name] = p.default
            params.append(p.name + (f"=__defaults[{p.name!r}]" if p.default is not P.empty else ""))
            if p.kind == P.POSITIONAL_ONLY and P.POSITIONAL_ONLY not in kinds[i + 1:]:
                params.append("/")
    names = [p.name for p in sig.parameters.values()]
    namespace = {"__defaults": defaults}
    exec(f"def forward({', '.join(params)}):\n    return {{{', '.join(f'{n!r}: {n}' for n in names)}}}\n",
         namespace)
    stub = namespace["forward"]
    stub.__qualname__ = f"{model}.forward"
    return stub


def _as_input(v):
    if v is None or isinstance(v, (Tensor, int, float, bool)):
        return v
    if type(v).__module__.startswith("torch") or type(v).__module__ == "numpy":
        return T.tensor(v)
    return v


def _fetch(root: Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, Tensor) and type(obj).__module__.startswith("torch"):
        obj = T.tensor(torch_to_numpy(obj))  # a constant tensor attribute the tracer found
    return obj


def _where(node) -> str:
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    if stack:
        return list(stack.values())[-1][0] if isinstance(list(stack.values())[-1], tuple) else str(list(stack)[-1])
    return ""


def convert(tm, graph_module) -> TorchFxModule:
    import inspect
    program = Program(graph_module.graph)
    try:
        program.signature = inspect.signature(tm.forward)
    except (TypeError, ValueError):  # no signature to read: the placeholders decide (Program._bind)
        pass
    if program.missing:
        raise UnsupportedTorchOps(type(tm).__name__, program.missing)
    tree = modules.mirror(tm)
    modules.copy_weights(tree, tm)
    _copy_plain_tensors(tree, graph_module)
    out = TorchFxModule(tree, program, type(tm).__name__)
    out.eval()
    return out


def _copy_plain_tensors(tree: Module, graph_module) -> None:
    """Tensors the graph reads with get_attr that are neither parameters nor buffers (plain attributes)."""
    import torch
    for node in graph_module.graph.nodes:
        if node.op != "get_attr":
            continue
        try:
            _fetch(tree, node.target)
            continue
        except AttributeError:
            pass
        obj = graph_module
        for part in node.target.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, torch.Tensor):
            owner, _, name = node.target.rpartition(".")
            mod = tree.get_submodule(owner) if owner else tree
            object.__setattr__(mod, name, T.tensor(torch_to_numpy(obj)))


__all__ = ["trace", "convert", "TorchFxModule", "resolve_function", "resolve_method", "tnn"]
