"""from_torch through torch.export: for models torch.fx cannot trace (Hugging Face transformers, code with
Python control flow on shapes, item assignment on tensors, ...), given example inputs.

    torch.export.export(module, example_inputs, strict=False).run_decompositions({})

gives an ATen graph without mutations ("inference IR") that still keeps high-level ops (linear, layer_norm,
scaled_dot_product_attention, ...), which map 1:1 to tinydl ops. aten_ops.py registers the mapping in the op
registry, keyed by the ATen op overload's name (str(torch.ops.aten.linear.default) == "aten.linear.default"). An
op missing from the registry is first decomposed by torch into smaller ATen ops, where torch has a decomposition
for it; whatever is still missing after that is reported at once (UnsupportedTorchOps, with node names and module
paths), before anything is built.

Parameters and buffers are read by their state_dict names (ExportedProgram.graph_signature) from the returned
module, which mirrors the torch module tree (modules.mirror + copy_weights), so it has the same state_dict keys
and load_state_dict works on it; lifted tensor constants (tensors created inside forward) come from
ExportedProgram.constants; a buffer that forward assigns is assigned in the converted module too.

Shapes: by default every dim of every tensor input is exported dynamic where the model allows it
(torch.export.Dim.AUTO; dynamic_dims.py), so one conversion takes other batch sizes and sequence lengths. The graph
then reads sizes at run time (aten.sym_size and integer arithmetic on them: symbolic_ops.py), which the
interpreter evaluates on the tinydl tensors' concrete shapes. A call is checked against the exported dims first:
a dim the model forces static, a size outside the exported range (dynamic dims start at 2: torch specializes
sizes 0 and 1 of the example), or dims torch found equal that differ raise an error naming the input and the
dim. The values of non-tensor arguments stay baked in. Each new input shape is captured and planned anew on its
first call (kernels are compiled for concrete sizes); a shape seen before replays. Outputs keep the torch model's
structure (a tuple, a dict, a Hugging Face ModelOutput, ...) with tinydl tensors in it.
"""
from __future__ import annotations

import contextlib
import inspect
import operator

import numpy as np

from .. import dtypes
from .._tensor import Tensor, full, tensor
from . import aten_ops, complex_pairs, fx, modules, passes, symbolic_ops, torch_ops  # noqa: F401 - the registered ops
from ..options import current as current_options
from .dynamic_dims import AUTO, InputDims, auto_spec
from .program import Program, TorchFxModule, as_input, binding_stub, fetch, where
from .recurrences import selective_scans
from .registry import INDICES_READ, VALUES_ONLY, UnsupportedTorchOps, lookup, reads_past_values
from .time_limit import Limit, time_limit
from .weights import torch_to_numpy


def op_name(target) -> str:
    """The table key of a call_function target: 'aten.linear.default', '_operator.getitem', ..."""
    if target is operator.getitem:
        return "_operator.getitem"
    name = str(target)
    if name.startswith("<") and hasattr(target, "__name__"):
        name = f"{getattr(target, '__module__', '') or ''}.{target.__name__}".lstrip(".")
    return name


# -- the program ------------------------------------------------------------------------------------------
# why an as_strided over a view is refused: torch reads the view's base, which tinydl does not keep
STRIDED_VIEW = "of a view of another tensor's storage"


def _owns_storage(arg) -> bool:
    """The traced tensor `arg` is contiguous at offset 0 of a storage of its own size: its elements in row-major
    order are the storage as_strided reads (a tensor not traced: assumed, tinydl's own check follows at the call)."""
    val = getattr(arg, "meta", {}).get("val")
    if val is None or not hasattr(val, "is_contiguous"):
        return True
    try:
        return bool(val.is_contiguous() and val.storage_offset() == 0
                    and val.untyped_storage().nbytes() == val.numel() * val.element_size())
    except Exception:  # noqa: BLE001 - a layout that cannot be read: not known to be plain
        return False


class ExportProgram(Program):
    """The exported ATen graph with resolved tinydl callables: inputs bound by the graph signature (parameters and
    buffers by state_dict name, lifted constants, user inputs checked against the exported dims)."""

    def __init__(self, ep, signature, example_args, example_kwargs, dims: InputDims | None = None):
        import torch
        import torch.utils._pytree as pytree

        graph = ep.graph_module.graph
        super().__init__(graph, [(node, lookup(op_name(node.target)) if node.op == "call_function" else None)
                                 for node in graph.nodes])
        self.pytree = pytree
        self.in_spec, self.out_spec = ep.call_spec.in_spec, ep.call_spec.out_spec
        self.example_nargs = len(example_args)
        self.example_kwarg_names = list(example_kwargs)
        self.signature = signature
        self.dims = dims or InputDims(ep.range_constraints)
        # input -> (fill value, the input whose shape it takes) for an int input a call may leave out
        self.filled_like: dict = {}
        # tensors created inside forward (lifted constants, or get_attr constants): host copies here, uploaded
        # at the first run in the model's floating dtype (and again if that changes)
        self.host_constants = {k: torch_to_numpy(v) for k, v in getattr(ep, "constants", {}).items()
                               if isinstance(v, torch.Tensor)}
        # the model's floating dtype: after .half() the graph's float32 (traced in float32: dtype=torch.float32
        # arguments, float32 constants) is read as float16, as the torch model would have built them
        self.float_dtype = dtypes.float32
        self._uploaded_as = None  # the float dtype self.constants / self.attrs were uploaded in
        self.constants, self.attrs = {}, {}
        self.host_attrs = {}
        for node in self.graph.nodes:
            if node.op == "get_attr":
                obj = ep.graph_module
                for part in node.target.split("."):
                    obj = getattr(obj, part)
                self.host_attrs[node.name] = torch_to_numpy(obj) if isinstance(obj, torch.Tensor) else obj
        specs = ep.graph_signature.input_specs
        self.inputs = {}  # placeholder name -> ("state", state_dict name) | ("constant", name) | ("user", k)
        self.user_examples = []
        for s in specs:
            kind = s.kind.name
            if kind == "USER_INPUT":
                self.inputs[s.arg.name] = ("user", len(self.user_examples))
                self.user_examples.append(s)
            elif kind in ("PARAMETER", "BUFFER"):
                self.inputs[s.arg.name] = ("state", s.target)
            elif kind == "CONSTANT_TENSOR" and s.target in self.host_constants:
                self.inputs[s.arg.name] = ("constant", s.target)
            else:
                self.inputs[s.arg.name] = ("unsupported", f"input of kind {kind}")
        # the output node lists buffer mutations (new values of buffers forward assigns) before the user outputs
        self.outputs = [(o.kind.name, o.target) for o in ep.graph_signature.output_specs]
        self.sibling_linears = passes.sibling_linears(self.steps, self._is_state, name_of=op_name)
        self.joined_weights: dict = {}  # see passes.run_sibling_linears
        self.fused = passes.merge_sibling_linears(self.sibling_linears, self.joined_weights)

    def _is_state(self, a) -> bool:
        """a is a placeholder bound to a parameter or buffer."""
        return getattr(a, "op", None) == "placeholder" and self.inputs.get(a.name, ("",))[0] == "state"

    def missing(self) -> list[tuple[str, str, str]]:
        out = []
        complex_ops = self.graph.owning_module.meta.get("complex_unsupported", {})
        for node, fn in self.steps:
            if node.name in complex_ops:
                if complex_ops[node.name] is not None:
                    out.append((f"{complex_ops[node.name]} ({complex_pairs.COMPUTED})", node.name, where(node)))
            elif node.op == "call_function" and fn is None:
                out.append((op_name(node.target), node.name, where(node)))
            elif node.op == "call_function" and op_name(node.target) in VALUES_ONLY and reads_past_values(node):
                out.append((f"{op_name(node.target)} ({INDICES_READ})", node.name, where(node)))
            elif node.op == "call_function" and op_name(node.target) == "aten.as_strided.default" and \
                    not _owns_storage(node.args[0]):
                out.append((f"aten.as_strided.default ({STRIDED_VIEW})", node.name, where(node)))
            elif node.op == "placeholder" and self.inputs.get(node.name, ("",))[0] == "unsupported":
                out.append((self.inputs[node.name][1], node.name, ""))
            elif node.op == "get_attr" and not isinstance(self.host_attrs.get(node.name), np.ndarray):
                out.append((f"attribute of type {type(self.host_attrs.get(node.name)).__name__}", node.name,
                            where(node)))
            elif node.op not in ("placeholder", "call_function", "output", "get_attr"):
                out.append((f"graph node kind {node.op}", node.name, where(node)))
        for kind, target in self.outputs:
            if kind not in ("USER_OUTPUT", "BUFFER_MUTATION"):
                out.append((f"output of kind {kind}", str(target), ""))
        return out

    # -- inputs
    def _user_leaves(self, args, kwargs, model: str = "Module") -> list:
        sig = self.signature
        if sig is not None and not any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
            # arrange the call like the example: the same arguments positional, the same ones by keyword
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as e:
                binding_stub(model, sig)(None, *args, **kwargs)  # Python's own wording, as torch's call
                raise TypeError(f"{model}.forward(): {e}") from None
            values = {}
            for name, v in bound.arguments.items():
                if sig.parameters[name].kind == inspect.Parameter.VAR_KEYWORD:
                    values.update(v)
                else:
                    values[name] = v
            pos_names = [n for n, p in sig.parameters.items() if p.kind != p.VAR_KEYWORD][:self.example_nargs]
            extra = [k for k, v in values.items()
                     if k not in pos_names and k not in self.example_kwarg_names and v is not None]
            if extra:
                raise RuntimeError(f"the model was exported without argument(s) {extra}; pass them in example_inputs "
                                   f"to from_torch to use them (the exported graph takes the example's arguments "
                                   f"only)")

            for name, (fill, like) in self.filled_like.items():  # as the torch model fills them
                if values.get(name) is None and values.get(like) is not None:
                    values[name] = full(tuple(as_input(values[like]).shape), fill, dtype=dtypes.int32)

            def value(n):
                if n in values:
                    return values[n]
                p = sig.parameters.get(n)
                return p.default if p is not None and p.default is not inspect.Parameter.empty else None
            args = tuple(value(n) for n in pos_names)
            kwargs = {k: value(k) for k in self.example_kwarg_names}
        leaves, spec = self.pytree.tree_flatten((tuple(args), dict(kwargs)))
        if spec != self.in_spec:
            raise RuntimeError(f"inputs do not have the structure of the example inputs the model was exported "
                               f"with: expected {self.in_spec}, got {spec}")
        return leaves

    def _upload(self, v):
        t = tensor(v)
        return t.to(self.float_dtype).realize() if t.dtype is dtypes.float32 and \
            self.float_dtype is not dtypes.float32 else t

    def cast_floats(self, dtype) -> None:
        self.float_dtype = dtype

    def accepts(self, shapes: list[tuple]) -> bool:
        """Whether the exported dims take user tensor inputs of these shapes (in the placeholders' order)."""
        users = [n for n, _ in self.steps if n.op == "placeholder" and self.inputs[n.name][0] == "user"]
        bindings = {}
        try:
            for node, shape in zip(users, shapes):
                self.dims.check(node.name, node.meta.get("val"), tuple(shape), bindings)
        except RuntimeError:
            return False
        return len(users) == len(shapes)

    def bind(self, root, args, kwargs) -> dict:
        leaves = self._user_leaves(args, kwargs, getattr(root, "_name", type(root).__name__))
        if self._uploaded_as is not self.float_dtype:
            self.constants = {k: self._upload(v) for k, v in self.host_constants.items()}
            self.attrs = {k: self._upload(v) for k, v in self.host_attrs.items()}
            self._uploaded_as = self.float_dtype
        env, sizes = {}, {}  # sizes: the call's size of each exported symbol (InputDims.check)
        for node, _ in self.steps:
            if node.op == "placeholder":
                kind, key = self.inputs[node.name]
                if kind == "state":
                    env[node.name] = fetch(root, key)
                elif kind == "constant":
                    env[node.name] = self.constants[key]
                else:
                    env[node.name] = self._check_input(node, key, leaves[key], sizes)
        return env

    def attribute(self, root, node):
        return self.attrs[node.name]

    def output(self, root, values):
        user = []
        for (kind, target), value in zip(self.outputs, values):
            if kind == "BUFFER_MUTATION":  # forward assigned the buffer: so does the converted module
                fetch(root, target).node = value.node
            else:
                user.append(value)
        return self.pytree.tree_unflatten(user, self.out_spec)

    def _check_input(self, node, k, value, sizes: dict):
        spec = self.user_examples[k]
        example = node.meta.get("val")
        if type(spec.arg).__name__ == "ConstantArgument" or not hasattr(example, "shape"):
            want = getattr(spec.arg, "value", example)
            if value != want:
                raise RuntimeError(f"argument '{node.name}' was {want!r} in the example inputs and is baked into the "
                                   f"exported graph; got {value!r}")
            return value
        value = as_input(value)
        if not isinstance(value, Tensor):
            raise TypeError(f"argument '{node.name}' must be a tensor, got {type(value).__name__}")
        self.dims.check(node.name, example, tuple(value.shape), sizes)
        return value


# -- conversion -------------------------------------------------------------------------------------------
def _to_torch(x):
    import torch
    if isinstance(x, Tensor):
        a = x.numpy()
        return torch.from_numpy(a.astype(np.int64) if a.dtype == np.int32 else a)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_torch(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_torch(v) for k, v in x.items()}
    return x


def split_example(example_inputs):
    """example_inputs: a tuple of positional arguments, a dict of keyword arguments, or (tuple, dict)."""
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if (isinstance(example_inputs, tuple) and len(example_inputs) == 2 and isinstance(example_inputs[0], tuple)
            and isinstance(example_inputs[1], dict)):
        return example_inputs[0], dict(example_inputs[1])
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    return tuple(example_inputs), {}


def export(module, args, kwargs, dynamic_shapes=AUTO, signature=None):
    """torch.export with dynamic dims: "auto" (Dim.AUTO on every dim of every tensor input; where that fails or
    runs past Options.export_budget_s, on dim 0 only; then static, with a warning saying why), torch.export's own
    dynamic_shapes spec, or None/False (static: every dim as in the example). Returns (the ExportedProgram,
    whether it is static)."""
    ep, static, _ = _export(module, args, kwargs, dynamic_shapes, signature, lambda ep: ep)
    return ep, static


def export_lowered(module, args, kwargs, dynamic_shapes=AUTO, signature=None, budget: bool = True):
    """export() followed by lower() (within the same time budget: torch's symbolic shape reasoning runs again in
    the decompositions; budget=False: no limit). Returns (the lowered ExportedProgram, its InputDims)."""
    lowered, static, fallback = _export(module, args, kwargs, dynamic_shapes, signature, lambda ep: lower(ep)[0],
                                        budget)
    return lowered, InputDims(lowered.range_constraints, static, fallback)


# torch's loggers that report the symbolic evaluation a stopped export was in the middle of
_SYMBOLIC_LOGGERS = ("torch.fx.experimental.sym_node", "torch.fx.experimental.symbolic_shapes")


def _export(module, args, kwargs, dynamic_shapes, signature, then, budget: bool = True):
    """(then(the ExportedProgram), whether it is static, what was given up on the way ("auto" only; else None))."""
    import logging
    import warnings

    import torch
    check_dynamic_shapes(dynamic_shapes)
    with torch.no_grad(), selective_scans():
        if dynamic_shapes is None or dynamic_shapes is False:
            return then(torch.export.export(module, args, kwargs, strict=False)), True, None
        if dynamic_shapes != AUTO:
            ep = torch.export.export(module, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)
            return then(ep), False, None
        seconds = current_options().export_budget_s if budget else None
        why = []
        for dims, first_dim_only in (("every input dim", False), ("dim 0 of each input", True)):
            limit = Limit()
            quiet = logging.Filter()
            quiet.filter = lambda record, limit=limit: not limit.expired
            for name in _SYMBOLIC_LOGGERS:
                logging.getLogger(name).addFilter(quiet)
            try:
                with time_limit(seconds, limit):
                    spec = auto_spec(signature, args, kwargs, first_dim_only)
                    # on copies: a failed export leaves its dynamic-dim marks on the tensors it was given, and the
                    # next export would then see those dims as dynamic again (and the user's tensors would keep them)
                    ep = torch.export.export(module, _copies(args), _copies(kwargs), dynamic_shapes=spec,
                                             strict=False)
                    lowered = then(ep)
            except Exception as e:  # noqa: BLE001 - fewer dynamic dims next, saying why
                if limit.expired:
                    why.append(f"with {dims} dynamic (it ran past {seconds:g} s: Options.export_budget_s)")
                else:
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    why.append(f"with {dims} dynamic ({type(e).__name__}: {first})")
                continue
            finally:
                for name in _SYMBOLIC_LOGGERS:
                    logging.getLogger(name).removeFilter(quiet)
            if not why:
                return lowered, False, None
            warnings.warn(f"from_torch({type(module).__name__}): torch.export failed {why[0]}; exported with {dims} "
                          f"dynamic, the other dims specialized to the example shapes", stacklevel=6)
            return lowered, False, f"torch.export failed {why[0]}, so only {dims} was kept dynamic"
        static = then(torch.export.export(module, args, kwargs, strict=False))  # (said only where this works)
        failed = f"torch.export failed {'; '.join(why)}"
        warnings.warn(f"from_torch({type(module).__name__}): {failed}; the converted module is specialized to the "
                      f"example shapes", stacklevel=6)
        return static, True, failed


def check_dynamic_shapes(dynamic_shapes) -> None:
    if isinstance(dynamic_shapes, str) and dynamic_shapes != AUTO:
        raise ValueError(f"dynamic_shapes must be \"auto\", None/False (static) or a torch.export dynamic_shapes "
                         f"spec, got {dynamic_shapes!r}")


def _copies(tree):
    """The example inputs with each tensor replaced by a copy of its own (the rest as it is)."""
    import torch
    return torch.utils._pytree.tree_map(lambda v: v.detach().clone() if isinstance(v, torch.Tensor) else v, tree)


@contextlib.contextmanager
def _without_kv_cache(tm):
    """A Hugging Face model with config.use_cache returns its cache object, which torch.export cannot return:
    the converted forward is exported without it (tinydl.generation exports its own cached step). Every config
    in the model is switched off: some models give their parts configs of their own (T5's decoder stack)."""
    configs = {}
    if is_hf_model(tm):
        for m in tm.modules():
            config = getattr(m, "config", None)
            if getattr(config, "use_cache", False) is True:
                configs[id(config)] = config
    for config in configs.values():
        config.use_cache = False
    try:
        yield
    finally:
        for config in configs.values():
            config.use_cache = True


def lower(ep):
    """run_decompositions({}): the functional inference IR, high-level ops kept. Ops the registry lacks are then
    decomposed with torch's own decompositions for just those ops, as long as that helps. Returns the lowered
    program and the op overloads still missing ([] when every op maps)."""
    import warnings

    import torch
    try:
        full_table = torch.export.default_decompositions()
    except Exception:  # noqa: BLE001 - an older torch without it: no fallback decompositions
        full_table = {}
    table = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)  # torch-internal noise
        for _ in range(6):
            lowered = ep.run_decompositions(dict(table))
            # what the rewrite leaves is listed by ExportProgram.missing
            lowered.graph_module.meta["complex_unsupported"] = complex_pairs.rewrite(lowered.graph_module.graph)
            lowered.graph_module.recompile()
            missing = sorted({n.target for n in lowered.graph.nodes
                              if n.op == "call_function" and lookup(op_name(n.target)) is None}, key=str)
            new = {op: full_table[op] for op in missing if op in full_table and op not in table}
            if not missing or not new:
                return lowered, missing
            table.update(new)
    return lowered, missing


def is_hf_model(tm) -> bool:
    """A Hugging Face transformers PreTrainedModel (without importing transformers for other models)."""
    import sys
    mod = sys.modules.get("transformers")
    return mod is not None and isinstance(tm, getattr(mod, "PreTrainedModel", ()))


def hf_example_inputs(tm) -> dict | None:
    """Example keyword inputs for a Hugging Face model, from the model itself (None where it cannot tell): token
    ids of shape (2, 8), with attention_mask, token_type_ids and, for an encoder-decoder, decoder_input_ids where
    forward takes them; or pixel_values of 2 images of the configured size. Sizes of 2 or more, so that torch specializes no
    dim that may vary."""
    import torch
    params = inspect.signature(tm.forward).parameters
    cfg, main = tm.config, getattr(tm, "main_input_name", "input_ids")
    if main not in params:
        return None
    if main == "pixel_values":
        size = getattr(cfg, "image_size", None)
        channels = getattr(cfg, "num_channels", None)
        if size is None or channels is None:
            return None
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return {"pixel_values": torch.linspace(-1, 1, 2 * channels * h * w).reshape(2, channels, h, w)}
    if main != "input_ids":
        return None
    vocab = getattr(cfg, "vocab_size", None) or tm.get_input_embeddings().num_embeddings
    ids = (torch.arange(16, dtype=torch.int64).reshape(2, 8) * 7 + 3) % vocab
    out = {"input_ids": ids}
    if "attention_mask" in params:
        out["attention_mask"] = torch.ones_like(ids)
    if "token_type_ids" in params and getattr(cfg, "type_vocab_size", 0):  # BERT's tokenizers return them
        out["token_type_ids"] = torch.zeros_like(ids)
    if getattr(cfg, "is_encoder_decoder", False) and "decoder_input_ids" in params:
        out["decoder_input_ids"] = ids.flip(-1)
    return out


def convert(tm, example_inputs, dynamic_shapes=AUTO):
    program = capture(tm, example_inputs, dynamic_shapes)
    out = TorchFxModule(mirrored_tree(tm), program, type(tm).__name__)
    out.eval()
    object.__setattr__(out, "_torch_module", tm)  # tinydl.generation exports its cached step from it lazily
    return out


def mirrored_tree(tm):
    """tm's tinydl twin holding tm's weights (custom layers' children through fx, as on the fx path)."""
    tree = modules.mirror(tm, fx.convert_child)
    modules.copy_weights(tree, tm)
    return tree


def capture(tm, example_inputs, dynamic_shapes=AUTO) -> ExportProgram:
    """tm's forward for inputs like example_inputs, exported, lowered and checked against the op tables (every
    missing op at once)."""
    args, kwargs = split_example(example_inputs)
    args, kwargs = _to_torch(args), _to_torch(kwargs)
    name = type(tm).__name__
    try:
        signature = inspect.signature(tm.forward)
    except (TypeError, ValueError):
        signature = None
    with _without_kv_cache(tm):
        lowered, dims = export_lowered(tm, args, kwargs, dynamic_shapes, signature)
    program = ExportProgram(lowered, signature, args, kwargs, dims)
    if is_hf_model(tm):  # as the torch model reads them: no attention_mask attends to every token, no
        # token_type_ids is segment 0 everywhere
        program.filled_like = {"attention_mask": (1, "input_ids"), "token_type_ids": (0, "input_ids")}
    missing = program.missing()
    if missing:
        raise UnsupportedTorchOps(name, missing)
    return program


__all__ = ["convert", "capture", "export", "export_lowered", "ExportProgram", "op_name", "lower", "is_hf_model", "hf_example_inputs"]
