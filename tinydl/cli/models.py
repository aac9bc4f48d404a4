"""A model named on the command line: `torchvision:NAME`, `timm:NAME`, or `MODULE:FACTORY` (a module path or a
.py file, and a factory in it: a function or class called without arguments, or an nn.Module instance)."""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

import typer

from .errors import MissingPackage

EXAMPLES = "e.g. torchvision:resnet50, timm:convnext_tiny, mypackage.models:build or models.py:build"
TORCH_INSTALL = "pip install 'tinydl[torch]'"


def torch_module():
    try:
        import torch
    except ImportError:
        raise MissingPackage("this command", "torch", TORCH_INSTALL) from None
    return torch


def load(spec: str, **kwargs):
    """The torch model `spec` names, in eval mode, and the input shape it expects where it knows one (zoo models:
    torchvision's 1x3x224x224, timm's configured size), else None. kwargs go to a zoo model's builder."""
    torch = torch_module()
    source, sep, name = spec.partition(":")
    if not sep or not source or not name:
        raise typer.BadParameter(f"{spec!r} is not MODULE:FACTORY ({EXAMPLES})", param_hint="MODEL")
    if source == "torchvision":
        model, shape = _torchvision(name, kwargs), (1, 3, 224, 224)
    elif source == "timm":
        model = _timm(name, kwargs)
        shape = (1, *model.pretrained_cfg.get("input_size", (3, 224, 224))) if hasattr(model, "pretrained_cfg") \
            else None
    else:
        model, shape = _factory(source, name), None
    if not isinstance(model, torch.nn.Module):
        raise typer.BadParameter(f"{spec} gave a {type(model).__name__}, not a torch.nn.Module", param_hint="MODEL")
    return model.eval(), shape


def _close(name: str, names) -> str:
    near = difflib.get_close_matches(name, list(names), n=3)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def _torchvision(name: str, kwargs: dict):
    try:
        from ..interop.torchvision_compat import import_torchvision
        tv = import_torchvision()
    except ImportError:
        raise MissingPackage("torchvision:NAME", "torchvision", "pip install torchvision") from None
    names = tv.models.list_models()
    if name not in names:
        raise typer.BadParameter(f"torchvision has no model {name!r}{_close(name, names)}", param_hint="MODEL")
    # random weights, the backbone's too (segmentation and detection default to ImageNet ones): nothing downloaded
    if "weights_backbone" in inspect.signature(tv.models.get_model_builder(name)).parameters:
        kwargs = {"weights_backbone": None, **kwargs}
    return tv.models.get_model(name, weights=None, **kwargs)


def _torchvision_importable() -> None:
    """torchvision made importable on the CPU torch wheel (timm and users' models import it), where installed."""
    if importlib.util.find_spec("torchvision") is not None:
        from ..interop.torchvision_compat import import_torchvision
        import_torchvision()


def _timm(name: str, kwargs: dict):
    _torchvision_importable()
    try:
        import timm
    except ImportError:
        raise MissingPackage("timm:NAME", "timm", "pip install timm") from None
    names = timm.list_models()
    if name not in names:
        raise typer.BadParameter(f"timm has no model {name!r}{_close(name, names)}", param_hint="MODEL")
    return timm.create_model(name, pretrained=False, **kwargs)


def _factory(source: str, name: str):
    module = _import(source)
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            public = sorted(k for k in vars(module) if not k.startswith("_"))
            raise typer.BadParameter(f"{source} has no {name!r}{_close(name, public)}", param_hint="MODEL")
        obj = getattr(obj, part)
    torch = torch_module()
    if isinstance(obj, torch.nn.Module):
        return obj
    if not callable(obj):
        raise typer.BadParameter(f"{source}:{name} is of type {type(obj).__name__!r}, not a factory (a function or class "
                                 "called without arguments) or an nn.Module", param_hint="MODEL")
    return obj()


def _import(source: str):
    """The module `source` names: a .py file, or a dotted module path found from the current directory first
    (as `python -m` finds it)."""
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise typer.BadParameter(f"no such file: {source}", param_hint="MODEL")
        _torchvision_importable()
        sys.path.insert(0, str(path.resolve().parent))  # the file's own imports of its neighbours
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    _torchvision_importable()
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as e:
        if e.name and source.startswith(e.name) and source[len(e.name):len(e.name) + 1] in ("", "."):
            raise typer.BadParameter(f"cannot import {source!r}: no module named {e.name!r} ({EXAMPLES})",
                                     param_hint="MODEL") from None
        raise  # the module exists but imports something missing: the user's traceback says what
