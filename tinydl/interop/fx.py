"""from_torch through torch.fx: torch-level graphs (call_module / call_function / call_method) run with tinydl.

Each call resolves once, at conversion: the registry first (registry.py: torch_ops.py's calls whose arguments
differ from tinydl's, Python operators, the zoo shims torchvision_ops.py and timm_ops.py), else by name, since
tinydl's API mirrors torch's: `torch.nn.functional.x` -> `tinydl.nn.functional.x`, `torch.Tensor.x` -> the
Tensor method, `torch.x` -> `tinydl.tensor.x`, `F.x` or the method.
"""
from __future__ import annotations


from ..nn import functional as F
from ..nn.module import Module
from .._tensor import Tensor
from . import arguments, modules, timm_ops, torch_ops, torchvision_ops  # noqa: F401 - the op tables register on import
from . import cache_ops, transformers_ops  # noqa: F401 - (both paths: export imports fx)
from .program import Program, TorchFxModule, as_input, binding_stub, fetch, where
from .registry import (INDICES_READ, VALUES_ONLY, UnsupportedTorchOps, autowrap_functions, lookup,
                       reads_past_values)
from .weights import torch_to_numpy

from .. import _tensor as T


def trace(tm):
    import torch.fx

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return modules.is_layer(m)

    tracer = Tracer(autowrap_functions=autowrap_functions())  # timm's notrace functions stay whole
    graph = tracer.trace(tm)
    return torch.fx.GraphModule(tracer.root, graph, type(tm).__name__)


# torch's C submodules -> their public names (torch._C._linalg.linalg_svd is torch.linalg.svd)
_C_SUBMODULES = {"torch._C._fft": "fft", "torch._C._linalg": "linalg", "torch._C._special": "special",
                 "torch._C._nn": "nn.functional"}


def _qualname(fn) -> str:
    if type(fn).__module__ == "torch._ops" and type(fn).__name__ in ("OpOverload", "OpOverloadPacket"):
        # torch.ops.ns.op(...) in a forward: the op's registry name, as torch.export records it (a packet with one
        # overload calls that one; which of several a call picks is torch's dispatch, not decided here)
        only_default = type(fn).__name__ == "OpOverloadPacket" and fn.overloads() == ["default"]
        return f"{fn}.default" if only_default else str(fn)
    mod = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    if "<locals>" in name and getattr(fn, "__name__", None):  # a function a factory made (F.max_pool2d is
        name = fn.__name__                                     # boolean_dispatch's fn): its public name
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
    q = _qualname(fn)
    if lookup(q) is not None:
        return lookup(q)
    name = q.rsplit(".", 1)[-1]
    if q.startswith("torch.nn.functional."):
        return getattr(F, name, None)
    if q.startswith("torch.Tensor."):
        return resolve_method(name)
    if q.startswith("torch.") and q.count(".") == 1:  # torch.foo(x, ...): tinydl's foo, else x.foo(...)
        return getattr(T, name, None) or getattr(F, name, None) or resolve_method(name)
    if q.startswith("torch.special."):  # torch.special's names are torch.X's aliases (expm1, log1p, logit, xlogy, ...)
        return getattr(T, name, None) or getattr(F, name, None)
    return None


def resolve_method(name: str):
    if lookup(f"torch.Tensor.{name}") is not None:
        return lookup(f"torch.Tensor.{name}")
    attr = getattr(Tensor, name, None)
    if attr is None or not callable(attr):
        return None
    call = lambda x, *a, **k: getattr(x, name)(*a, **k)  # noqa: E731
    call.__wrapped__ = attr  # its signature is the method's: arguments.fit fits torch.transpose(input=x, dim0=...)
    return call


# -- the program ---------------------------------------------------------------------------------------------
class FxProgram(Program):
    """The fx graph with resolved tinydl callables: inputs bound as Python binds the torch forward's arguments,
    attributes read from the mirrored tree."""

    def __init__(self, graph):
        steps = []
        self.placeholders = []
        self.signature = None  # the torch forward's inspect.Signature (convert sets it): see _bind
        self._stub = None
        missing = []
        for node in graph.nodes:
            at = where(node)
            if node.op == "placeholder":
                self.placeholders.append(node)
                fn = None
            elif node.op == "call_function":
                fn = resolve_function(node.target)
                if fn is None:
                    missing.append((f"function {_qualname(node.target)}", node.name, at))
                else:
                    fn, problem = arguments.fit(node, node.target, fn)
                    if problem:
                        missing.append((f"function {_qualname(node.target)}({problem})", node.name, at))
                    elif _qualname(node.target) in VALUES_ONLY and reads_past_values(node):
                        missing.append((f"function {_qualname(node.target)}({INDICES_READ})", node.name, at))
            elif node.op == "call_method":
                fn = resolve_method(node.target)
                if fn is None:
                    missing.append((f"method Tensor.{node.target}", node.name, at))
                else:
                    generic = lookup(f"torch.Tensor.{node.target}") is None  # the Tensor method itself
                    fn, problem = arguments.fit(node, node.target, fn,
                                                getattr(Tensor, node.target, None) if generic else None)
                    if problem:
                        missing.append((f"method Tensor.{node.target}({problem})", node.name, at))
            elif node.op == "call_module" and graph.owning_module is not None:
                fn = None
                module = graph.owning_module.get_submodule(node.target)
                problem = arguments.module_problem(node, module)
                if problem:
                    missing.append((f"module {type(module).__name__}({problem})", node.name, at))
            else:
                fn = None
            steps.append((node, fn))
        super().__init__(graph, steps)
        self.missing = missing

    def _bind(self, model: str, args, kwargs) -> dict:
        """The traced forward's arguments by placeholder name, bound as Python binds them, with Python's errors
        and wording (a missing input must not surface later as an error about None): through a stub with the
        torch forward's signature (`signature`, set by convert), else from the placeholders (which fx may list
        out of the signature's order: keyword-only parameters are then not told apart)."""
        if self.signature is not None:
            if self._stub is None:
                self._stub = binding_stub(model, self.signature)
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

    def bind(self, root: Module, args, kwargs) -> dict:
        inputs = self._bind(getattr(root, "_name", type(root).__name__), args, kwargs)
        return {n.name: as_input(inputs[n.name]) for n in self.placeholders}

    def attribute(self, root: Module, node):
        return fetch(root, node.target)


def convert_child(tm) -> TorchFxModule:
    """A child module of a custom layer (timm's LiteMLA's), converted through fx on its own: part of its parent's
    graph, so without a plan capture of its own."""
    program = FxProgram(trace(tm).graph)
    if program.missing:
        raise UnsupportedTorchOps(type(tm).__name__, program.missing)
    return TorchFxModule(modules.mirror(tm, convert_child), program, type(tm).__name__, replay=False)


def convert(tm, graph_module) -> TorchFxModule:
    import inspect
    program = FxProgram(graph_module.graph)
    try:
        program.signature = inspect.signature(tm.forward)
    except (TypeError, ValueError):  # no signature to read: the placeholders decide (FxProgram._bind)
        pass
    if program.missing:
        raise UnsupportedTorchOps(type(tm).__name__, program.missing)
    tree = modules.mirror(tm, convert_child)
    modules.copy_weights(tree, tm)
    out = TorchFxModule(tree, program, type(tm).__name__)
    _copy_plain_tensors(out, graph_module)  # onto the converted root, where the tracer's root constants are read
    out.eval()
    return out


def _copy_plain_tensors(tree: Module, graph_module) -> None:
    """Tensors the graph reads with get_attr that are neither parameters nor buffers (plain attributes, and the
    `_tensor_constantN` the tracer makes of a torch.tensor(...) built in forward)."""
    import torch
    for node in graph_module.graph.nodes:
        if node.op != "get_attr":
            continue
        try:
            fetch(tree, node.target)
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


__all__ = ["trace", "convert", "convert_child", "FxProgram", "TorchFxModule", "resolve_function", "resolve_method"]
