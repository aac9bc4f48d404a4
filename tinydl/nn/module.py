"""Module, Parameter and the containers, with torch.nn.Module's registration, traversal and state_dict
behaviour, so a torch model's state_dict loads into its tinydl twin key for key."""
from __future__ import annotations

import copy
import weakref
from collections import OrderedDict, namedtuple

import numpy as np

from .. import dtypes
from .._tensor import Tensor, tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that a Module registers as a parameter (inference only: no gradients)."""
    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = False):
        super().__init__(data.node if isinstance(data, Tensor) else tensor(data).node)

    def __deepcopy__(self, memo):
        return Parameter(Tensor(self.node))


def _tensor_deepcopy(self, memo):
    return Tensor(self.node)  # data is immutable; a copy is a new handle (load_state_dict swaps handles' nodes)


Tensor.__deepcopy__ = _tensor_deepcopy


class Module:
    training: bool

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- calling -------------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- attribute routing ---------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign before Module.__init__() call")
        for d in (self._parameters, self._buffers, self._modules):
            if name in d and not isinstance(value, (Tensor, Module)) and value is not None:
                del d[name]
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._parameters:
            self._parameters[name] = value if value is None else Parameter(value)
        elif name in self._buffers:
            self._buffers[name] = value
        elif name in self._modules:
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
        self._changed()  # any attribute may change what forward computes (a weight, a submodule, eps)

    def __getattr__(self, name):
        d = self.__dict__
        for k in ("_parameters", "_buffers", "_modules"):
            if k in d and name in d[k]:
                return d[k][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            if name in d:
                del d[name]
                self._non_persistent.discard(name)
                self._changed()
                return
        object.__delattr__(self, name)
        self._changed()

    # -- registration --------------------------------------------------------------------------------
    def register_parameter(self, name: str, param) -> None:
        _check_name("parameter", name)
        self._parameters[name] = None if param is None else (param if isinstance(param, Parameter) else Parameter(param))
        self._changed()

    def register_buffer(self, name: str, value, persistent: bool = True) -> None:
        _check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        self._buffers[name] = None if value is None else (value if isinstance(value, Tensor) else tensor(value))
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        self._changed()

    def add_module(self, name: str, module) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_name("module", name)
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module
        self._changed()

    register_module = add_module

    # -- traversal -----------------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        memo = set() if memo is None else memo
        if remove_duplicate and id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named(self, attr, prefix, recurse):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, t in getattr(m, attr).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mp}.{name}" if mp else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        yield from self._named("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        yield from self._named("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        m = self
        for part in target.split(".") if target else []:
            if part not in m._modules:
                raise AttributeError(f"{type(m).__name__} has no attribute `{part}`")
            m = m._modules[part]
        return m

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- modes and dtypes ----------------------------------------------------------------------------
    def train(self, mode: bool = True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            if m.training != mode:
                object.__setattr__(m, "training", mode)
                m._changed()  # BatchNorm/Dropout refuse train mode: a capture made in eval must not replay
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        return self

    def _cast_floats(self, dtype):
        for m in self.modules():
            for d in (m._parameters, m._buffers):
                for k, t in d.items():
                    if t is not None and t.dtype.is_floating_point and t.dtype != dtype:
                        new = t.to(dtype).realize()
                        t.node = new.node  # keep the handle: the module's attributes see the new data
            m._changed()
        return self

    def half(self):
        return self._cast_floats(dtypes.float16)

    def float(self):
        return self._cast_floats(dtypes.float32)

    def to(self, *args, **kwargs):
        for a in list(args) + list(kwargs.values()):
            try:
                dt = dtypes.to_dtype(a)
            except TypeError:
                continue  # a device string such as "cpu"/"cuda": tinydl always runs on its WebGPU adapter
            if dt.is_floating_point:
                self._cast_floats(dt)
        return self

    def cpu(self):
        return self

    def cuda(self, *args):
        return self

    # -- state_dict ----------------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False):
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                out[prefix + name] = b
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(out, prefix + name + ".")
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy weights in (torch tensors, numpy arrays or tinydl tensors), with torch's checks: missing and
        unexpected keys (an error when strict) and shape mismatches (always an error)."""
        own = self.state_dict()
        metadata = getattr(state_dict, "_metadata", None) or {}
        given = OrderedDict(state_dict)
        missing = [k for k in own if k not in given and not self._missing_ok(k, metadata)]
        unexpected = [k for k in given if k not in own]
        errors, updates = [], []
        for k, target in own.items():
            if k not in given:
                continue
            value = _to_host_or_tensor(given[k])
            shape = tuple(value.shape)
            if shape != target.shape:
                errors.append(f"size mismatch for {k}: copying a param with shape {_torch_size(shape)} from "
                              f"checkpoint, the shape in current model is {_torch_size(target.shape)}.")
                continue
            updates.append((target, value))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        for target, value in updates:
            new = value.to(target.dtype) if isinstance(value, Tensor) else tensor(value, dtype=target.dtype)
            target.node = new.realize().node
        for m in self.modules():
            m._changed()
        return IncompatibleKeys(missing, unexpected)

    def _missing_ok(self, key: str, metadata) -> bool:
        """torch's exception to "missing key": BatchNorm's num_batches_tracked (added in its version 2) may be
        absent from a checkpoint without version metadata (a plain dict, or an old file); it keeps its value."""
        prefix, _, name = key.rpartition(".")
        owner = self.get_submodule(prefix)
        version = metadata.get(prefix, {}).get("version")
        return (name == "num_batches_tracked" and getattr(owner, "track_running_stats", False)
                and (version is None or version < 2))

    # -- the state a captured replay depends on (tinydl.jit) --------------------------------------------
    def _changed(self) -> None:
        """Something that may change forward's result happened here: the Jits whose captures read this module
        compare fingerprints at their next call (a flag each; nothing is walked now)."""
        d = self.__dict__
        d["_version"] = d.get("_version", 0) + 1
        watchers = d.get("_watchers")
        if watchers:
            for key, ref in list(watchers.items()):
                jit = ref()
                if jit is None:
                    watchers.pop(key, None)
                else:
                    jit.state_changed()

    def _fingerprint(self, watcher=None) -> tuple:
        """The tree's state as a tuple: per module its identity, version (bumped by every assignment), training
        flag, children, and its parameters' and buffers' handles with the nodes they hold now (load_state_dict
        and casts swap a handle's node). Registers `watcher` (a Jit) to be told of changes (Module._changed)."""
        out = []
        for m in self.modules():
            d = m.__dict__
            if watcher is not None:
                d.setdefault("_watchers", {})[id(watcher)] = weakref.ref(watcher)
            out.append((id(m), d.get("_version", 0), m.training,
                        tuple((k, id(t), t.node.uid) if t is not None else (k,) for k, t in m._parameters.items()),
                        tuple((k, id(t), t.node.uid) if t is not None else (k,) for k, t in m._buffers.items()),
                        tuple((k, id(c)) for k, c in m._modules.items())))
        return tuple(out)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_watchers", None)  # weak references to Jits: neither copied nor pickled
        return state

    # -- printing ------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"

    def __dir__(self):
        return list(super().__dir__()) + list(self._parameters) + list(self._buffers) + list(self._modules)


def _check_name(kind: str, name) -> None:
    """torch's checks and wording for parameter/buffer/module names."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain "."' + (f", got: {name}" if kind == "module" else ""))
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')


def _torch_size(shape) -> str:
    return f"torch.Size({list(shape)})"


def _to_host_or_tensor(v):
    if isinstance(v, Tensor):
        return v
    if type(v).__module__.startswith("torch"):
        from ..interop.weights import torch_to_numpy  # bfloat16 -> float32 as tinydl.load does
        return torch_to_numpy(v)
    return np.asarray(v)


# -- containers ------------------------------------------------------------------------------------------
class _Indexed(Module):
    """What Sequential and ModuleList share: children numbered in order, indexing, slicing, len, iteration."""

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self._sliced(idx)
        mods = list(self._modules.values())
        if not -len(mods) <= idx < len(mods):
            raise IndexError(f"index {idx} is out of range")
        return mods[idx]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class Sequential(_Indexed):
    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for k, m in args[0].items():
                self.add_module(k, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def _sliced(self, idx: slice):
        return Sequential(OrderedDict(list(self._modules.items())[idx]))


class ModuleList(_Indexed):
    def __init__(self, modules=None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def _sliced(self, idx: slice):
        return ModuleList(list(self._modules.values())[idx])

    def __setitem__(self, idx, module):
        key = list(self._modules)[idx]
        self.add_module(key, module)

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList is a container; call its modules")

    def __repr__(self) -> str:
        """torch's compressed form: runs of equal reprs print once, as "(0-5): 6 x Block(...)"."""
        reprs = [repr(m) for m in self]
        if not reprs:
            return type(self).__name__ + "()"
        runs = []  # [start, end, repr]
        for i, r in enumerate(reprs):
            if runs and runs[-1][2] == r:
                runs[-1][1] = i
            else:
                runs.append([i, i, r])
        lines = [(f"({a}): {r}" if a == b else f"({a}-{b}): {b - a + 1} x {r}").replace("\n", "\n  ")
                 for a, b, r in runs]
        return type(self).__name__ + "(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    def __init__(self, modules=None):
        super().__init__()
        for k, m in (modules or {}).items():
            self.add_module(k, m)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


def deepcopy_module(m: Module) -> Module:
    return copy.deepcopy(m)
