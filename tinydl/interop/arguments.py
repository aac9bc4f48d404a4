"""Fitting an fx call's arguments to the tinydl callable it resolved to, once per node at conversion.

tinydl's functions mirror torch's, but not always by parameter name (`x.add(o)` for torch's `other`) and not
every no-op keyword (`inplace`, `memory_format`, ...). A call is checked against torch's own parameters of the
function (its Python signature, or for C functions and Tensor methods its ATen schemas): a keyword tinydl's callable takes by name is passed as is; one it takes at the
same position as torch's is passed there; a keyword that cannot change a value is dropped; anything else is an
unsupported argument, listed with the unmapped ops at conversion (never a TypeError at the call, never ignored).

In-place keywords: `inplace=True` is dropped only where nothing reads the input after the call (torch would see
the input changed; tinydl's call does not change it).
"""
from __future__ import annotations

import functools
import inspect

# keywords that change no value on one device, whatever they are set to
NO_OP_KEYWORDS = {"memory_format", "non_blocking", "copy", "layout", "device", "requires_grad", "pin_memory",
                  "_stacklevel", "sparse_grad"}


AMBIGUOUS = "ambiguous"


@functools.cache
def _schema_parameters(name: str) -> dict:
    """name -> (position, or None for keyword-only, or AMBIGUOUS where overloads differ; default) over the ATen
    overloads of `name` (a C-implemented torch function or Tensor method, which has no Python signature)."""
    import torch
    found: dict = {}
    for schema in torch._C._jit_get_schemas_for_operator(f"aten::{name}"):
        position = 0
        for a in schema.arguments:
            at = None if a.kwarg_only else position
            position += not a.kwarg_only
            names = (a.name, "input") if a.name == "self" else (a.name,)  # torch.x(input=...) is ATen's self
            for n in names:
                prev = found.get(n)
                found[n] = (at if prev is None or prev[0] == at else AMBIGUOUS, a.default_value)
    return found


def torch_parameters(target) -> dict | None:
    """torch's parameters of a function object or a Tensor method name: name -> (position or None; default)."""
    import torch
    fn = getattr(torch.Tensor, target, None) if isinstance(target, str) else target
    try:
        sig = inspect.signature(fn)  # torch's Python-level functions (torch.nn.functional, torch.functional)
    except (TypeError, ValueError):
        name = target if isinstance(target, str) else getattr(fn, "__name__", None)
        return _schema_parameters(name) or None if name else None
    out, position = {}, 0
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            out[p.name] = (position, p.default)
            position += 1
        elif p.kind == p.KEYWORD_ONLY:
            out[p.name] = (None, p.default)
    return out


def _params(fn):
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def fit(node, target, fn, tinydl_signature_of=None):
    """(callable, problem): fn wrapped so that node's arguments reach it as it takes them, or fn itself where they
    do already; problem names an argument that cannot be passed (None when all can). tinydl_signature_of: the
    callable whose signature fn forwards to (a Tensor method behind a method lambda)."""
    torch_params = torch_parameters(target)
    inplace_at = (torch_params or {}).get("inplace", (None, None))[0]
    inplace = node.kwargs.get("inplace", node.args[inplace_at] if isinstance(inplace_at, int)
                              and inplace_at < len(node.args) else False)
    if inplace is True and _read_after(node):
        return fn, "inplace=True on an input read again later"
    kwargs = dict(node.kwargs)
    if not kwargs:
        return fn, None
    params = _params(tinydl_signature_of or fn)
    if torch_params is None or params is None or any(p.kind == p.VAR_KEYWORD for p in params):
        return fn, None
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
    by_position = {at: n for n, (at, _) in torch_params.items() if isinstance(at, int)}
    moves, drops = {}, []
    for name, value in kwargs.items():
        if name in named:
            continue
        at = torch_params.get(name, (None, None))[0]
        if name in NO_OP_KEYWORDS or (name == "out" and value is None):
            drops.append(name)
        elif name == "inplace":  # (True only where nothing reads the input later: above)
            drops.append(name)
        elif isinstance(at, int) and (at < len(positional) or takes_varargs) and all(
                k in by_position for k in range(at)):
            # (a method's self is the first of both: torch's schema and the Tensor method)
            moves[name] = at
        else:
            return fn, f"{name}={value!r}"
    if not moves and not drops:
        return fn, None
    defaults = {n: d for n, (_, d) in torch_params.items()}

    def call(*args, **kw):
        for name in drops:
            kw.pop(name, None)
        if moves:
            args = list(args)
            for name, at in sorted(moves.items(), key=lambda m: m[1]):
                while len(args) < at:  # a skipped parameter: torch's default
                    args.append(defaults[by_position[len(args)]])
                value = kw.pop(name)
                if at < len(args):
                    args[at] = value
                else:
                    args.append(value)
        return fn(*args, **kw)

    return call, None


def module_problem(node, module) -> str | None:
    """What keeps a call of torch module `module` (an activation with inplace=True) from running as tinydl's."""
    if getattr(module, "inplace", False) is True and _read_after(node):
        return "inplace=True on an input read again later"
    return None


def _read_after(node) -> bool:
    """Whether the call's input (its first argument) is read by a node after this one."""
    first = node.args[0] if node.args else None
    if not hasattr(first, "users"):
        return False
    later = False
    for n in node.graph.nodes:
        if n is node:
            later = True
        elif later and first in n.all_input_nodes:
            return True
    return False


__all__ = ["fit", "module_problem", "torch_parameters", "NO_OP_KEYWORDS"]
