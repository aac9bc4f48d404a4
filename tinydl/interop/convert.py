"""from_torch: an unchanged torch.nn.Module (in eval mode) becomes a tinydl Module with the same state_dict keys.

1. mirror the module tree (modules.py): torch layers tinydl has become the tinydl layer, every other module a
   plain container holding its own parameters/buffers under the same names; weights are copied once;
2. capture the forward as a graph: torch.fx symbolic tracing (torch-level ops; fx.py), or, where fx cannot
   trace or its graph has ops tinydl does not map and example inputs are given (or made, for Hugging Face
   models), torch.export (ATen ops; export.py); without example inputs, a model fx cannot trace is exported on
   its first call with that call's inputs (deferred.py); where torch.export fails too (shapes that depend on
   data, Python control flow on tensor values), the torch forward itself runs, each ATen op it dispatches
   computed by tinydl (eager.py); `conversion_path` says which ("fx", "torch.export" or eager.PATH);
3. check every op against the mapping tables first, and raise ONE error listing all that are missing (op, node,
   and the module it sits in; when every path fails, those of the path that came closest) - there is no silent
   fallback to torch;
4. the returned Module's forward interprets the graph with tinydl ops (lazily, like hand-written code).
"""
from __future__ import annotations

from .program import first_line
from .registry import UnsupportedTorchOps


def from_torch(module, example_inputs=None, dynamic_shapes="auto"):
    """Convert a torch.nn.Module in eval mode.

    example_inputs are used when torch.fx cannot trace the model or its graph has ops tinydl does not map, and
    torch.export is tried instead: a tuple of positional inputs (tensors/arrays), a dict of keyword inputs, or
    (tuple, dict). A Hugging Face PreTrainedModel taking token ids or images needs none: token ids of shape (2, 8)
    (and an attention mask), or 2 images of the configured size, are made from the model
    (export.hf_example_inputs). Another model fx cannot trace, given none, is exported on its first call, with
    that call's inputs (deferred.py). A model torch.export cannot capture either runs its own torch forward, each
    op computed by tinydl (eager.py; with example inputs, it is run on them once here, to prove every op maps).

    dynamic_shapes (torch.export path only; fx-traced modules take any shape): "auto" keeps every input dim
    dynamic that the model allows to vary (torch.export.Dim.AUTO; a dim of size 0 or 1 in the example stays
    static, as torch specializes those), None or False exports with the example's shapes only, and anything else
    is passed to torch.export.export(dynamic_shapes=...) as it is (see export.py)."""
    try:
        import torch
    except ModuleNotFoundError as e:
        raise ImportError("tinydl.from_torch needs torch, which is not installed: pip install 'tinydl[torch]' "
                          "(weights in .safetensors files load without it: tinydl.load)") from e

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    if module.training:
        raise RuntimeError(f"from_torch({type(module).__name__}): the model is in training mode; tinydl is inference "
                           f"only (train mode changes BatchNorm and Dropout): call model.eval() first")
    from . import deferred, export, fx
    export.check_dynamic_shapes(dynamic_shapes)
    try:
        out = fx.convert(module, fx.trace(module))
    except Exception as fx_error:  # noqa: BLE001 - any fx failure: torch.export is tried next
        if example_inputs is None and export.is_hf_model(module):
            example_inputs = export.hf_example_inputs(module)
        if example_inputs is None:
            if isinstance(fx_error, UnsupportedTorchOps):  # listed at conversion: no path would map these
                raise UnsupportedTorchOps(fx_error.model_name, fx_error.ops, hint=(
                    "(found by torch.fx; pass example_inputs=(...) to try torch.export too, whose ATen ops may "
                    "map where these do not)")) from None
            # torch.export (else the eager path) captures it on the first call, with that call's inputs
            out = deferred.DeferredConversion(export.mirrored_tree(module), module, dynamic_shapes,
                                              f"torch.fx cannot trace it ({first_line(fx_error)})")
            out.eval()
            return out
        try:
            out = export.convert(module, example_inputs, dynamic_shapes)
        except Exception as export_error:  # noqa: BLE001 - the eager path is tried next
            return _eager(module, example_inputs, fx_error, export_error)
        object.__setattr__(out, "conversion_path", "torch.export")
        return out
    object.__setattr__(out, "conversion_path", "fx")
    return out


def _eager(module, example_inputs, fx_error, export_error):
    """Neither torch.fx nor torch.export converts it: the torch forward op by op (eager.py), run once on the
    example inputs to prove every op maps. When that fails too, the error of the path that came closest."""
    from . import eager, export
    why = f"torch.fx: {first_line(fx_error)}; torch.export: {first_line(export_error)}"
    args, kwargs = export.split_example(example_inputs)
    try:
        out = eager.EagerTorchModule(export.mirrored_tree(module), module, why)
        out.eval()
        out(*args, **kwargs)
    except Exception as eager_error:
        # the graph paths' lists (a whole graph, each op once, with nodes and modules) before the eager one's
        if isinstance(fx_error, UnsupportedTorchOps) and (not isinstance(export_error, UnsupportedTorchOps)
                                                          or len(fx_error.ops) <= len(export_error.ops)):
            raise fx_error from eager_error
        if isinstance(export_error, UnsupportedTorchOps):
            raise export_error from eager_error
        eager_error.add_note(f"(from_torch: running the torch forward op by op, because {why})")
        raise
    return out
