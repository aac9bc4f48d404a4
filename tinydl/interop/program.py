"""The one interpreter of from_torch and the module it returns.

`Program` holds a torch graph (fx's torch-level graph or torch.export's ATen graph) as steps with resolved
tinydl callables, and `run` walks it: each call node calls its tinydl callable on its arguments, each
`call_module` node the mirrored tinydl layer. The two graph kinds differ only in how inputs and attributes are
bound and how the output is returned: fx.FxProgram and export.ExportProgram implement `bind`, `attribute` and
`output`. A pass may run a group of nodes at once (`fused`: node name -> a function filling env; passes.py).

`TorchFxModule` is the converted model: the mirrored module tree (same state_dict keys) plus its program, called
through tinydl.jit.
"""
from __future__ import annotations

import functools
import weakref

from .. import dtypes
from ..capture import Jit
from ..nn.module import Module
from ..opmath import rounding_at_stores
from .._tensor import Tensor, tensor
from . import registry
from .registry import to_dtype
from .weights import torch_to_numpy



class Program:
    """A graph's nodes with their tinydl callables (`steps`); `run` is the converted module's forward."""

    float_dtype = None  # export: the dtype the graph's float32 is read as (follows the weights' casts)

    def __init__(self, graph, steps):
        self.graph = graph
        # [(fx node, tinydl callable or None)] in graph order; metadata asserts nothing reads are left out (their
        # arguments may hold dtypes tinydl has not, such as a bfloat16 buffer's)
        self.steps = [(n, fn) for n, fn in steps if n.users or not getattr(fn, "reads_nothing", False)]
        self.fused: dict = {}  # node name -> fn(env) that computes the node and its group (passes.py)

    # -- what differs between fx and torch.export
    def bind(self, root: Module, args, kwargs) -> dict:
        """The placeholders' values by node name."""
        raise NotImplementedError

    def attribute(self, root: Module, node):
        """A get_attr node's value."""
        raise NotImplementedError

    def output(self, root: Module, value):
        """The forward's result from the output node's value."""
        return value

    def cast_floats(self, dtype) -> None:
        """The module's weights were cast to dtype (Module.half/float)."""

    # -- the interpreter
    def run(self, root: Module, args, kwargs):
        if self.float_dtype not in (None, dtypes.float32):  # a float32 trace run in float16 (opmath.py)
            with rounding_at_stores():
                return self._interpret(root, args, kwargs)
        return self._interpret(root, args, kwargs)

    def _interpret(self, root: Module, args, kwargs):
        env = self.bind(root, args, kwargs)
        # not a recursive closure: that is a reference cycle holding env's tensors (their buffers) until gc
        load = functools.partial(self.load, env)
        for node, fn in self.steps:
            op = node.op
            if op == "placeholder":
                continue
            if node.name in self.fused:
                if node.name not in env:  # the group's first node computes all of them
                    self.fused[node.name](env)
            elif op in ("call_function", "call_method"):
                env[node.name] = fn(*load(node.args), **load(node.kwargs))
            elif op == "call_module":
                env[node.name] = root.get_submodule(node.target)(*load(node.args), **load(node.kwargs))
            elif op == "get_attr":
                env[node.name] = self.attribute(root, node)
            elif op == "output":
                return self.output(root, load(node.args[0]))
        raise RuntimeError("graph without output")

    def load(self, env: dict, a):
        """A node's argument with its graph nodes replaced by their values in env; torch dtypes as tinydl's
        (float32 as float_dtype where that is set)."""
        import torch.fx
        if isinstance(a, torch.fx.Node):
            return env[a.name]
        if isinstance(a, list):
            return [self.load(env, x) for x in a]
        if isinstance(a, tuple):
            return type(a)(*(self.load(env, x) for x in a)) if hasattr(a, "_fields") else \
                type(a)(self.load(env, x) for x in a)
        if isinstance(a, dict):
            return {k: self.load(env, v) for k, v in a.items()}
        if isinstance(a, slice):
            return slice(self.load(env, a.start), self.load(env, a.stop), self.load(env, a.step))
        a = to_dtype(a)
        return self.float_dtype if a is dtypes.float32 and self.float_dtype is not None else a


def where(node) -> str:
    """The module path a graph node sits in (for error messages)."""
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    if stack:
        return list(stack.values())[-1][0] if isinstance(list(stack.values())[-1], tuple) else str(list(stack)[-1])
    return ""


def first_line(e: Exception) -> str:
    """An exception's type and first line, for a note that names why a path was left."""
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def as_input(v):
    """A forward argument: numpy arrays and torch tensors become tinydl tensors."""
    if v is None or isinstance(v, (Tensor, int, float, bool)):
        return v
    if type(v).__module__.startswith("torch") or type(v).__module__ == "numpy":
        return tensor(v)
    return v


def fetch(root: Module, target: str):
    """root's attribute at a dotted path (a parameter, buffer or plain tensor attribute)."""
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, Tensor) and type(obj).__module__.startswith("torch"):
        obj = tensor(torch_to_numpy(obj))  # a constant tensor attribute the tracer found
    return obj


def binding_stub(model: str, sig):
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


# -- the converted module ------------------------------------------------------------------------------------
class TorchFxModule(Module):
    """A converted torch model: the mirrored module tree (same state_dict keys) plus the captured graph."""

    def __init__(self, tree: Module, program: Program, name: str, replay: bool = True):
        super().__init__()
        for k, v in tree._modules.items():
            self.add_module(k, v)
        for k, v in tree._parameters.items():
            self.register_parameter(k, v)
        for k, v in tree._buffers.items():
            self.register_buffer(k, v, persistent=k not in tree._non_persistent)
        object.__setattr__(self, "_program", program)
        object.__setattr__(self, "_name", name)
        # repeated calls with same-shaped tensor inputs replay the captured plan (tinydl.jit): for given input
        # shapes the graph runs the same ops (an exported graph with dynamic dims computes its sizes from the
        # shapes), so only the input buffers change; a new shape is captured anew. A submodule that is part of
        # its parent's graph (replay=False) has no capture of its own (held weakly: sub.forward would be a cycle)
        object.__setattr__(self, "_replay", Jit(_Forward(self)) if replay else _Forward(self))

    def __call__(self, *args, **kwargs):
        # numpy arrays and torch tensors become tinydl tensors here, not in bind: the Jit replays only for tensors
        return self._replay(*map(as_input, args), **{k: as_input(v) for k, v in kwargs.items()})

    def forward(self, *args, **kwargs):
        return self._program.run(self, args, kwargs)

    def generate(self, *args, **kwargs):
        """Text generation for a converted causal LM, as Hugging Face's generate (tinydl.generation)."""
        return registry.generator()(self, *args, **kwargs)

    def _cast_floats(self, dtype):
        self._program.cast_floats(dtype)  # the traced graph's float32 follows the weights (export)
        return super()._cast_floats(dtype)

    def extra_repr(self):
        path = self.__dict__.get("conversion_path")
        return f"from_torch({self._name}{', via ' + path if path else ''})"


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
