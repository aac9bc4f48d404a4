"""The cached forward step of a causal LM, as torch modules torch.export can capture, converted to tinydl.

A Hugging Face model appends each layer's new keys/values to its cache object (`cache.update(k, v, layer)`)
in place; torch.export cannot return such an object, and an in-place update of a module buffer would change
the converted module's state each token (tinydl.capture.Jit drops its captures on that). So the cache here is
functional: the step takes the cache tensors as inputs and returns the updated ones as outputs, a pure
function that one captured plan replays with new input buffers every token.

- Prefill (T prompt tokens): attends over its own T keys and returns them; the loop pads them to the cache
  length L.
- Decode (one token per sequence): writes slot `cache_position` of every layer's cache (tinydl::write_slot,
  interop/cache_ops.py: shapes never change; in place, as the loop donates the cache) and attends over all L slots.

Both are exported with dynamic dims (batch, prompt length, cache length), so one conversion serves every
size torch keeps dynamic (sizes >= 2); a size it specialized gets a conversion of its own (`Steps`).

The mask comes in as the 4-D additive mask HF models take as-is ([B, 1, T, L]: 0 where a key is visible, the
dtype's lowest value where not), so padding and causality are data made on the host. Both steps return the
last position's logits and their argmax (greedy decoding reads back only the token ids).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import sys

from ..interop import export as ex
from ..interop.cache_ops import fits, torch_write_slot, where_slot
from ..interop.program import TorchFxModule
from ..interop.registry import UnsupportedTorchOps
from ..nn.module import Module


@functools.cache
def torch_classes():
    """(FunctionalCache, Step, FullStep, StateStep): made on first use (torch and transformers are imported only then)."""
    import torch
    from transformers.cache_utils import Cache

    from .states import KV, LinearStates, model_masks

    class FunctionalCache(LinearStates, Cache):
        """The cache a HF model writes through update() (and a state-space layer through update_conv_state /
        update_recurrent_state, states.py): records the new tensors instead of mutating. past: the tensors the
        previous step left, named in order by layout (default: keys and values of layers 0, 1, ...).
        position_as_length: get_seq_length() is the step's position (a tensor), for models that place their
        positions from it (BART's decoder, T5's relative bias) rather than from position ids."""

        is_compileable = True

        def __init__(self, past, cache_position, position_as_length=False, layout=None):
            # Cache.__init__ builds layer objects this cache does not use
            self.past, self.cache_position = past, cache_position
            if past is not None and layout is None:
                layout = [(KV, i) for i in range(len(past) // 2)]
            self.layout = layout
            self.position_as_length = position_as_length
            self.new: dict[int, tuple] = {}
            self.states: dict[tuple, object] = {}
            self.layers = _NoLayers(self)

        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            if self.past is None:  # prefill: attends over its own keys, which are the new cache
                self.new[layer_idx] = (key_states, value_states)
                return key_states, value_states
            at = self._where()[KV, layer_idx]
            k, v = self.write(self.past[at], key_states), self.write(self.past[at + 1], value_states)
            self.new[layer_idx] = (k, v)
            return k, v

        def write(self, cache, new):
            """cache with slot cache_position (dim -2) replaced by new: tinydl's op (in place where the loop
            donates the cache) where new is one slot of it, else torch.where (broadcasting, promoting)."""
            if fits(cache, new):
                return torch_write_slot()(cache, new, self.cache_position)
            return where_slot(cache, new, self.cache_position)

        def get_seq_length(self, layer_idx=0):
            if self.past is None:
                return 0
            if self.position_as_length or self.layout[0][0] != KV:  # (a model of recurrent layers: no length)
                return self.cache_position
            return self.past[0].shape[-2]

        def get_mask_sizes(self, query_length, layer_idx=0):
            return (query_length if self.past is None else self.get_seq_length()), 0

        def get_query_offset(self, layer_idx=0):
            """The new tokens' first position (models that place queries from it: Inkling's relative positions);
            get_seq_length is the cache's length here, which only equals it in the prefill."""
            return 0 if self.past is None else self.cache_position

        def new_layout(self) -> list:
            """The names of flat_new(self)'s tensors: each layer's keys and values, then the states."""
            return [(KV, i) for i in sorted(self.new)] + sorted(self.states)

        def __len__(self):
            return len(self.new)

    class Step(torch.nn.Module):
        """model(ids, mask, positions, cache) -> (argmax [B], last logits [B, V], *new cache). cache_class: the
        functional cache it gives the model (a subclass may write slots otherwise: an ONNX export's torch.where)."""

        cache_class = FunctionalCache

        def __init__(self, model):
            super().__init__()
            self.model = model
            params = inspect.signature(model.forward).parameters
            self.cache_arg = cache_argument(params)
            self.keep = "logits_to_keep" in params
            self.positions_from_cache = positions_from_cache(model)

        def forward(self, input_ids, attention_mask, position_ids, cache_position, *past):
            cache = self.cache_class(past or None, cache_position, self.positions_from_cache)
            return self.run(cache, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)

        def run(self, cache, **inputs):
            kwargs = {self.cache_arg: cache, "use_cache": True}
            if self.keep:
                kwargs["logits_to_keep"] = 1
            with alibi_from_4d_masks(self.model):
                out = self.model(**inputs, **kwargs)
            logits = out.logits[:, -1, :]
            self.left = cache.new_layout()  # (read by convert_step after the trace: the cache tensors returned)
            return (torch.argmax(logits, -1), logits, *flat_new(cache))

    class StateStep(Step):
        """Step for a model whose layers keep recurrent or convolution states (STATE): model(ids, mask, padding,
        positions, cache) -> (argmax, last logits, *keys and values, *states). padding: the 2-D mask of the new
        tokens, which its recurrent layers take (states.model_masks). layout: the names of the cache tensors a
        decode step takes, the prefill's (`left`, which every Step's trace leaves: FunctionalCache.new_layout)."""

        layout = None

        def forward(self, input_ids, attention_mask, padding, position_ids, cache_position, *past):
            cache = FunctionalCache(past or None, cache_position, self.positions_from_cache,
                                    self.layout if past else None)
            mask = model_masks(self.model.config, attention_mask, padding, input_ids.shape[1])
            return self.run(cache, input_ids=input_ids, attention_mask=mask, position_ids=position_ids)

    class FullStep(torch.nn.Module):
        """For a model that keeps no cache: model(ids, mask[, positions]) over the whole sequence so far, as HF's
        generate recomputes it each token -> (argmax [B], logits [B, V] at position `last`)."""

        def __init__(self, model):
            super().__init__()
            self.model = model
            self.takes_positions = not positions_from_cache(model)

        def forward(self, input_ids, attention_mask, position_ids, last):
            kwargs = {"position_ids": position_ids} if self.takes_positions else {}
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
            logits = out.logits.index_select(1, last)[:, 0, :]
            return torch.argmax(logits, -1), logits

    return FunctionalCache, Step, FullStep, StateStep


# cache_kind's answers beyond keys and values: layers with recurrent or convolution states (StateStep's kinds); a
# cache the functional cache cannot stand in for (a class of the model's own, its layers read directly): each token
# then runs the whole sequence
STATE, FOREIGN = "state", "foreign"
STATE_PREFILL, STATE_DECODE = "state prefill", "state decode"


def cache_kind(model) -> str:
    """How the model keeps its KV cache: "kept" (it returns the cache it is given, use_cache=True, 2 tokens);
    "none" (its forward takes no cache: OpenAI GPT; HF's generate runs the whole sequence again each token);
    "dropped" (it takes one and returns none: an encoder's LM head without is_decoder; HF's generate does the same
    only with use_cache=False); STATE (it keeps recurrent or convolution states through HF's linear-attention cache
    calls: Mamba, hybrids); FOREIGN (it refuses any cache but its own class, MiniMax's, or reads the cache's layer
    objects)."""
    import torch
    params = inspect.signature(model.forward).parameters
    arg = cache_argument(params)
    if arg is None:
        return "none"
    cache = torch_classes()[0](None, torch.zeros(1, dtype=torch.long))
    try:
        with torch.no_grad():
            out = model(input_ids=torch.zeros((1, 2), dtype=torch.long), use_cache=True, **{arg: cache})
    except ReadsCacheState:
        return FOREIGN
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001 - the cached path's conversion reports what stops it
        if type(cache).__name__ in str(e):  # it checks its cache's class: one of its own (MiniMax's linear attention)
            return FOREIGN
        return "kept"
    if cache.states:
        return STATE
    return "kept" if any(getattr(out, name, None) is not None for name in ("past_key_values", "cache")) else "dropped"


# what HF's prepare_inputs_for_generation passes for a plain prompt, which the steps reproduce
_PLAIN_INPUTS = {"input_ids", "attention_mask", "position_ids", "cache_position", "token_type_ids"}


def own_generation_inputs(model) -> str | None:
    """What the model's prepare_inputs_for_generation feeds its forward beyond the prompt's ids and mask (XLNet's
    dummy token, perm_mask and target_mapping), in words; None when nothing (or when the probe cannot tell)."""
    import torch
    ids = torch.tensor([[5, 6, 7]])
    try:
        given = model.prepare_inputs_for_generation(ids, attention_mask=torch.ones_like(ids), use_cache=True,
                                                    cache_position=torch.arange(3))
    except Exception:  # noqa: BLE001 - a signature of its own: the conversion reports what it meets
        return None
    extra = sorted(k for k, v in given.items() if torch.is_tensor(v) and k not in _PLAIN_INPUTS)
    grown = torch.is_tensor(given.get("input_ids")) and tuple(given["input_ids"].shape) != (1, 3)
    if not extra and not grown:
        return None
    return ", ".join(extra + ([f"input_ids of shape {list(given['input_ids'].shape)} for a prompt of [1, 3]"]
                              if grown else []))


def masks_right_padding(model) -> bool:
    """Whether padding after the sequence, masked out in attention_mask, leaves the real positions' logits as they
    are (what the whole-sequence path's fixed-length buffers need); not where the model reads padding from the ids
    themselves and ignores the mask (CPM-Ant)."""
    import torch
    ids = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0]])
    kwargs = {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}
    with torch.no_grad():
        alone = model(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs).logits[0, -1]
        within = model(input_ids=padded, attention_mask=torch.tensor([[1, 1, 1, 0, 0]]), **kwargs).logits[0, 2]
    return bool(torch.allclose(alone, within, rtol=1e-4, atol=1e-4 * float(alone.abs().max())))


def attends_both_ways(model) -> bool:
    """Whether the model's attention is bidirectional (an encoder's LM head without is_decoder: BigBird's): the
    first position's logits change with the second token. HF's generate then prefills the prompt both ways, and
    each new token attends to the cache as in a causal model."""
    import torch
    with torch.no_grad():
        first, second = (model(input_ids=torch.tensor([[0, token]]), use_cache=False).logits[0, 0] for token in (0, 1))
    return not torch.equal(first, second)


def positions_from_cache(model) -> bool:
    """Whether the model places its tokens from the cache's length (its forward takes no position_ids: BART's or
    Blenderbot's decoder as a causal LM) rather than from the position ids HF's generate makes from the mask.
    Then the cache reports the step's slot as its length, and left padding counts as positions, as in HF."""
    return "position_ids" not in inspect.signature(model.forward).parameters


class ReadsCacheState(NotImplementedError):
    """The model read the cache's layer objects (a state kept other than through HF's cache calls)."""


# the names under which a forward takes its cache (transformers before 5.25 named a Mamba model's `cache_params`)
CACHE_ARGUMENTS = ("cache", "past_key_values", "cache_params")


def cache_argument(params) -> str | None:
    """The forward's cache argument among its parameters, or None."""
    return next((name for name in CACHE_ARGUMENTS if name in params), None)


class _NoLayers(list):
    """The functional cache's layer list: empty; a layer read from it (`cache.layers[i]`) is a _StateView, through
    which a model may read its states only (older Mamba code: `layers[i].conv_states[0]`)."""

    def __init__(self, cache):
        super().__init__()
        self.cache = cache

    def __getitem__(self, index):
        if not isinstance(index, int):
            raise ReadsCacheState(_READS_LAYERS)
        return _StateView(self.cache, index)


_READS_LAYERS = "generate: the model reads the cache's layer objects, which tinydl's functional cache does not keep"


class _StateView:
    """Layer i of the functional cache as transformers' linear-attention layer shows it: `conv_states[j]` and
    `recurrent_states[j]` (the copies the cache's get_conv_state / get_recurrent_state give), `record_past`
    (False); anything else raises ReadsCacheState (keys, values, a layer's own bookkeeping)."""

    record_past = False

    def __init__(self, cache, layer_idx: int):
        self._cache, self._layer = cache, layer_idx

    @property
    def conv_states(self):
        return _Indexed(lambda j: self._cache.get_conv_state(self._layer, j))

    @property
    def recurrent_states(self):
        return _Indexed(lambda j: self._cache.get_recurrent_state(self._layer, j))

    def __getattr__(self, name):
        raise ReadsCacheState(_READS_LAYERS)


class _Indexed:
    def __init__(self, get):
        self._get = get

    def __getitem__(self, j):
        if not isinstance(j, int):
            raise ReadsCacheState(_READS_LAYERS)
        return self._get(j)


@contextlib.contextmanager
def alibi_from_4d_masks(model):
    """While the step runs: the ALiBi builder of the model's module (`build_alibi_tensor(mask_2d, heads, dtype)`:
    Bloom, Falcon with alibi), which needs the 2-D padding mask, takes the step's 4-D additive mask too. The last
    query row of [B, 1, T, L] sees exactly the keys that are not padding (up to the newest one; later cache slots
    are masked out for every query, so their biases are never used), which is the 2-D mask it needs."""
    module = sys.modules.get(type(model).__module__)
    build = getattr(module, "build_alibi_tensor", None)
    if build is None:
        yield
        return

    def from_any_mask(mask, *args, **kwargs):
        if mask.ndim == 4:
            mask = (mask[:, 0, -1, :] == 0).long()
        return build(mask, *args, **kwargs)

    module.build_alibi_tensor = from_any_mask
    try:
        yield
    finally:
        module.build_alibi_tensor = build


def causal_kinds() -> dict:
    """The step kinds loop.Steps converts for a causal LM: prefill and decode are one torch module (Step), told
    apart by whether the cache comes in; the same for a model with recurrent states (StateStep); full: the whole
    sequence each token, for a model that keeps no cache."""
    _, Step, FullStep, StateStep = torch_classes()
    return {"prefill": Step, "decode": Step, "full": FullStep, STATE_PREFILL: StateStep, STATE_DECODE: StateStep}


def flat_new(cache) -> list:
    """The tensors a step's cache recorded, layer by layer: keys, values; then the states (cache.new_layout())."""
    states = getattr(cache, "states", {})  # (seq2seq's CrossCache keeps none)
    return [t for i in sorted(cache.new) for t in cache.new[i]] + [states[k] for k in sorted(states)]


def convert_step(tm: Module, step, example: tuple) -> TorchFxModule:
    """step (a torch module whose `model` is the torch model tm was converted from) for inputs like example's,
    converted through the torch.export path with dynamic dims, reading tm's weights (the step's 'model.*' state
    is tm's: no second copy)."""
    torch_model = step.model
    step = step.eval()
    # no time budget: a decode step needs its lengths dynamic (else each length exports a step of its own)
    lowered, dims = ex.export_lowered(step, tuple(example), {}, ex.AUTO, inspect.signature(step.forward),
                                      budget=False)
    program = ex.ExportProgram(lowered, None, example, {}, dims)
    missing = program.missing()
    if missing:
        raise UnsupportedTorchOps(type(torch_model).__name__, missing)
    left = getattr(step, "left", None)  # (a causal step's: the cache tensors it returns, by name)
    tree = Module()
    tree.add_module("model", tm)
    out = TorchFxModule(tree, program, f"{type(torch_model).__name__} {type(step).__name__}")
    out.eval()
    out.cache_layout = left
    return out


def accepts(step: TorchFxModule, shapes: list[tuple]) -> bool:
    """Whether the converted step's exported dims take user inputs of these shapes (in order)."""
    return step._program.accepts(shapes)
