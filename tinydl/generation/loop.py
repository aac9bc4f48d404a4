"""The decode loop: one prefill step over the prompt, then one replayed decode step per token, the KV cache
passed from step to step as GPU tensors (never read back). The host keeps the 2-D attention mask and builds
each step's 4-D mask and positions from it (left padding: positions from the mask's cumulative sum, as HF);
it reads back only the next token ids (choose.py: greedy, the argmax on the GPU; sampled, drawn on the GPU).
Where the token is the step's own argmax (greedy, no processor, nothing finished), the next step takes it on
the GPU and is queued before the host waits for it: host and GPU work overlap."""
from __future__ import annotations

import functools
import warnings

import numpy as np

from .. import dtypes
from .._tensor import Tensor, tensor
from ..runtime import get_runtime
from ..indexing import gather_rows
from ..options import current as current_options
from ..schedule import read_later
from ..slots import donate
from ..nn import functional as F
from .states import KV
from .step import (FOREIGN, STATE, STATE_DECODE, STATE_PREFILL, accepts, attends_both_ways, cache_kind, convert_step,
                   masks_right_padding, own_generation_inputs, positions_from_cache)

# the cache length is rounded up to a multiple of this, so that generate calls of nearby lengths share one
# converted decode step (the extra slots are masked out)
CACHE_BLOCK = 64
# the prompt is left-padded (masked out) to a multiple of this before its prefill, so that prompts of nearby
# lengths share one converted step and one plan: a server meeting a new prompt length each request compiles
# nothing new within a block (the extra rows cost prefill work, which is launch-bound at short lengths)
PROMPT_BLOCK = 32
# how many input shapes Steps remembers the step of (a server meeting ever new prompt lengths stays flat)
SHAPES_KEPT = 256
POSITION_LIMITS = ("max_position_embeddings", "n_positions", "max_sequence_length")
DECODER_POSITION_LIMITS = ("max_target_positions",)  # an encoder-decoder's decoder (Whisper), before the above


def max_positions(config, decoder: bool = False) -> tuple[int, str] | None:
    """The model's (decoder's) limit on positions, and the config field that sets it."""
    for name in (DECODER_POSITION_LIMITS if decoder else ()) + POSITION_LIMITS:
        v = getattr(config, name, None)
        if isinstance(v, int) and v > 0:
            return v, name
    return None


def padded_prompt(prompt: int, window: int | None) -> int:
    """The prompt's length as prefilled: rounded up to PROMPT_BLOCK, except under a sliding window (it counts
    cache slots, so padding would move keys out of it)."""
    return prompt if window is not None else -(-prompt // PROMPT_BLOCK) * PROMPT_BLOCK


def cache_length(prompt: int, new: int) -> int:
    need = prompt + max(new, 1)
    return -(-need // CACHE_BLOCK) * CACHE_BLOCK


def _layer_values(config, name) -> list:
    """config.name, or every layer's value where a heterogeneous config lets it vary by layer (per_layer_config:
    reading it globally raises there)."""
    if name in (getattr(config, "per_layer_attributes", None) or ()):
        return [getattr(layer, name, None) for layer in config.per_layer_config]
    return [getattr(config, name, None)]


def _first(config, names):
    """The first of names the config sets to a positive int (the largest layer's, where layers differ: the size
    checks bound the largest cache tensor)."""
    for name in names:
        values = [v for v in _layer_values(config, name) if isinstance(v, int) and v > 0]
        if values:
            return max(values)
    return None


def check_fits(config, batch: int, prompt: int, new: int, length: int, itemsize: int, decoder: bool = False) -> None:
    """Raise, before any work, when the positions or one layer's cache tensor exceed the model's or the
    adapter's limits. decoder: an encoder-decoder's decoder (prompt: its first tokens)."""
    limit = max_positions(config, decoder)
    if limit is not None and prompt + new > limit[0]:
        what = f"the decoder's first tokens ({prompt})" if decoder else f"the prompt ({prompt} tokens)"
        raise ValueError(f"generate: {what} plus max_new_tokens ({new}) is {prompt + new} "
                         f"positions, more than the model's maximum of {limit[0]} ({limit[1]})")
    heads = _first(config, ("num_attention_heads", "decoder_attention_heads", "num_heads")) or 1
    kv_heads = _first(config, ("num_key_value_heads",)) or heads
    head_dim = _first(config, ("head_dim", "d_kv")) or (_first(config, ("hidden_size", "d_model")) or 0) // heads
    nbytes = batch * kv_heads * length * head_dim * itemsize
    rt = get_runtime()
    if nbytes > rt.max_binding_size:
        raise MemoryError(f"generate: one layer's KV cache tensor would be {nbytes} bytes ([{batch}, {kv_heads}, "
                          f"{length}, {head_dim}] x {itemsize} bytes), more than the adapter's maximum buffer "
                          f"binding size of {rt.max_binding_size} bytes; use a smaller batch or fewer tokens")


def sliding_window(config, total: int) -> int | None:
    """The attention window every layer applies (Mistral's sliding_window), None when none applies within
    `total` positions; a window on some layers only (one 4-D mask serves all layers here) raises."""
    windows = [w if isinstance(w, int) else None for w in _layer_values(config, "sliding_window")]
    window = min((w for w in windows if w is not None), default=None)
    if window is None or window >= total:
        return None
    if len(set(windows)) > 1:  # a heterogeneous config's layers differ
        raise NotImplementedError(f"generate: sliding windows that differ by layer (per_layer_config: {windows}) "
                                  f"are not supported past {window} positions (got {total})")
    kinds = set(getattr(config, "layer_types", None) or ["sliding_attention"])
    if "sliding_attention" not in kinds and getattr(config, "layer_types", None) is not None:
        return None
    if kinds != {"sliding_attention"}:
        raise NotImplementedError(f"generate: a sliding window ({window}) on some layers only "
                                  f"({sorted(kinds)}) is not supported past {window} positions (got {total})")
    return window


def _float_dtype(tm):
    for p in tm.parameters():
        if p.dtype.is_floating_point:
            return p.dtype
    return dtypes.float32


def _additive_mask(visible: np.ndarray, np_dtype) -> np.ndarray:
    """[B, T, L] booleans -> HF's 4-D additive mask [B, 1, T, L]."""
    return np.where(visible, 0, np.finfo(np_dtype).min).astype(np_dtype)[:, None]


class Steps:
    """The converted prefill/decode steps of one converted model (kept on the model): each serves the input
    shapes its exported dims take, a new one is converted for shapes none takes."""

    def __init__(self, tm, torch_model, kinds: dict):
        """kinds: step kind -> a function of the torch model making the torch module to convert."""
        self.tm, self.torch_model, self.kinds = tm, torch_model, kinds
        self.converted: dict[str, list] = {k: [] for k in kinds}
        self.by_shapes: dict[tuple, object] = {}  # (kind, input shapes) -> the step that takes them
        self.cache_refused: str | None = None  # why the cached decode step did not convert (run_without_cache)
        self.layout: list | None = None  # the cache tensors a state model's decode step takes (StateStep.layout)

    @functools.cached_property
    def cache_kind(self) -> str:
        """step.cache_kind of the model: where not "kept", each token runs the whole sequence (`run_without_cache`)."""
        return "kept" if "full" not in self.kinds else cache_kind(self.torch_model)

    @functools.cached_property
    def own_inputs(self) -> str | None:
        """step.own_generation_inputs of a causal LM (None for an encoder-decoder's steps)."""
        return own_generation_inputs(self.torch_model) if "full" in self.kinds else None

    @functools.cached_property
    def masks_right_padding(self) -> bool:
        """step.masks_right_padding of the model (run_without_cache's buffers need it)."""
        return masks_right_padding(self.torch_model)

    @functools.cached_property
    def both_ways(self) -> bool:
        """Whether the prompt's tokens attend to each other both ways in the prefill (step.attends_both_ways)."""
        return attends_both_ways(self.torch_model)

    def get(self, kind, inputs, float_dtype):
        """The step taking inputs (numpy arrays / tinydl tensors), converted on first need."""
        shapes = tuple(tuple(a.shape) for a in inputs)
        step = self.by_shapes.get((kind, shapes))
        if step is None:
            step = next((s for s in self.converted[kind] if accepts(s, shapes)), None)
            if step is None:
                module = self.kinds[kind](self.torch_model)
                if kind == STATE_DECODE:
                    module.layout = self.layout
                step = convert_step(self.tm, module, _torch_example(inputs))
                self.converted[kind].append(step)
            if len(self.by_shapes) >= SHAPES_KEPT:
                self.by_shapes.clear()
            self.by_shapes[kind, shapes] = step
        step._program.cast_floats(float_dtype)  # the graph's float32 follows tm's weights (tm.half())
        return step


def reordered(cache: list, rows) -> list:
    """The cache tensors with their rows (dim 0) taken from `rows` (beam search; None: as they are)."""
    if rows is None:
        return cache
    index = tensor(np.asarray(rows, np.int32))
    return [gather_rows(t, index) for t in cache]


def handed_on(cache: list) -> list:
    """The cache tensors, donated to the step they are fed to (slots.donate): it writes its new slot into them in
    place, and the loop keeps only what the step returns."""
    for t in cache:
        donate(t)
    return cache


def _torch_example(inputs):
    """Torch tensors of the inputs' shapes and dtypes (float ones, the cache among them, as float32 zeros: the
    graph's float dtype; tinydl tensors of ids as int64 zeros)."""
    import torch
    return tuple(torch.from_numpy(a.astype(np.float32) if a.dtype == np.float16 else a)
                 if isinstance(a, np.ndarray) else
                 torch.zeros(a.shape, dtype=torch.float32 if a.dtype.is_floating_point else torch.int64)
                 for a in inputs)


def run(steps: Steps, ids: np.ndarray, mask: np.ndarray, settings, chooser):
    """Yields the next token ids [B] (np.int64) per step, as `chooser` picks them (choose.TokenChooser: finished
    sequences get pad_token_id; beam.BeamChooser: each row's beam, whose cache rows `reorder` moves)."""
    own = steps.own_inputs
    if own:
        raise NotImplementedError(
            f"generate: {type(steps.torch_model).__name__} generates from inputs of its own "
            f"(its prepare_inputs_for_generation gives {own}), which tinydl's generate does not make")
    kind = steps.cache_kind
    if kind == "dropped" and settings.use_cache:
        name = type(steps.torch_model).__name__
        raise NotImplementedError(
            f"generate: {name} takes a cache but returns none (an encoder's LM head without config.is_decoder), so "
            f"with use_cache=True HF's generate would feed it only the newest token each step; pass "
            f"use_cache=False (each token runs the whole sequence) or set config.is_decoder=True")
    if kind == FOREIGN and settings.use_cache:
        warnings.warn(f"generate: {type(steps.torch_model).__name__} keeps its state in a cache of its own (its "
                      f"class, or its layer objects read directly), which tinydl's cache does not stand in for; each "
                      f"token runs the whole sequence instead (HF's tokens, more work per token)", stacklevel=2)
    if kind not in ("kept", STATE) or (not settings.use_cache and steps.both_ways) or steps.cache_refused:
        yield from run_without_cache(steps, ids, mask, settings, chooser)
        return
    states = kind == STATE
    prefill_kind, decode_kind = (STATE_PREFILL, STATE_DECODE) if states else ("prefill", "decode")
    batch, prompt = ids.shape
    new = settings.max_new_tokens
    window = sliding_window(steps.torch_model.config, prompt + new)
    # the prompt's slots: left padding first, then the prompt (none added where padding would count as positions,
    # nor where it would pass through recurrent states)
    given = prompt if states or positions_from_cache(steps.torch_model) else padded_prompt(prompt, window)
    ids = np.pad(ids, ((0, 0), (given - prompt, 0)))
    length = cache_length(given, new)
    float_dtype = _float_dtype(steps.tm)
    np_float = np.float16 if float_dtype is dtypes.float16 else np.float32
    check_fits(steps.torch_model.config, batch, prompt, new, length, float_dtype.itemsize)
    full = np.zeros((batch, length), np.int64)
    full[:, given - prompt:given] = mask
    full[:, given:] = 1  # generated tokens are always attended to (HF appends ones)
    positions = np.where(full == 0, 1, np.cumsum(full, -1) - 1)
    slots = np.arange(length)
    # query slot q sees key slot k: k <= q, within the window (HF: k > q - window) and not padding
    seen = slots[None, :] <= slots[:, None]
    if window is not None:
        seen &= slots[None, :] > slots[:, None] - window
    causal = np.ones((given, given), bool) if steps.both_ways else seen[:given, :given]
    # a state model's recurrent layers take the 2-D mask of the new tokens (StateStep; a generated token: all ones)
    prefill_inputs = (ids, _additive_mask(causal[None] & (full[:, None, :given] > 0), np_float),
                      *((full[:, :given],) if states else ()), positions[:, :given], np.zeros(1, np.int64))
    try:
        prefill = steps.get(prefill_kind, prefill_inputs, float_dtype)
    except Exception as e:  # noqa: BLE001 - a state model's: the path HF takes with use_cache=False (others raise)
        if not states:
            raise
        refuse_cache(steps, "prefill", e)
        yield from run_without_cache(steps, ids[:, given - prompt:], mask, settings, chooser)
        return
    out = prefill(*as_tensors(prefill_inputs))
    steps.layout = prefill.cache_layout
    kv = 2 * sum(name[0] == KV for name in steps.layout)
    # key and value slots past the prompt: zero; states as they are
    cache = [F.pad(t, (0, 0, 0, length - given)) for t in out[2:2 + kv]] + list(out[2 + kv:])

    def decode_inputs(fed, i: int):
        slot = given + i
        return (fed, _additive_mask(seen[None, slot:slot + 1] & (full[:, None, :] > 0), np_float),
                *((np.ones((batch, 1), np.int64),) if states else ()), positions[:, slot:slot + 1],
                np.array([slot], np.int64))

    def decode(fed, i: int):
        """The decode step after token i (fed: the ids [B, 1], numpy or a GPU tensor)."""
        nonlocal cache
        inputs = decode_inputs(fed, i)
        cache = handed_on(reordered(cache, chooser.reorder))
        out = steps.get(decode_kind, (*inputs, *cache), float_dtype)(*as_tensors(inputs), *cache)
        cache = out[2:]
        return out

    if new > 1 and given == prompt and (states or positions_from_cache(steps.torch_model)):
        # such a model reads the cache's length, a tensor here, where it may want a number (MVP's arange, MPT's
        # slices), or its states in ways the functional cache may not follow: converted before the first token, so
        # that the whole-sequence path can still take over
        try:
            steps.get(decode_kind, (*decode_inputs(ids[:, :1], 0), *cache), float_dtype)
        except Exception as e:  # noqa: BLE001 - any failure: the path HF takes with use_cache=False
            refuse_cache(steps, "decode", e)
            yield from run_without_cache(steps, ids, mask, settings, chooser)  # (unpadded: given == prompt)
            return

    yield from decoded(out, batch, new, prompt, chooser, decode)


def refuse_cache(steps: Steps, which: str, error: Exception) -> None:
    """After the cached `which` step failed to convert with `error`: each token runs the whole sequence from here on
    (steps.cache_refused, with a warning), or NotImplementedError where the model's logits change with the padding
    that path adds."""
    reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
    name = type(steps.torch_model).__name__
    if not steps.masks_right_padding:
        raise NotImplementedError(
            f"generate: {name}'s cached {which} step did not convert ({reason}), and the whole sequence cannot run "
            f"each token instead: its logits change with padding that attention_mask masks out") from error
    steps.cache_refused = reason
    warnings.warn(f"generate: {name}'s cached {which} step did not convert ({reason}); each token runs the whole "
                  f"sequence instead (the tokens of HF's generate, more work per token)", stacklevel=3)


def as_tensors(inputs) -> list:
    """A step's inputs as tinydl tensors (numpy arrays uploaded; tensors as they are)."""
    return [a if isinstance(a, Tensor) else tensor(a) for a in inputs]


def decoded(out, batch: int, new: int, length: int, chooser, decode):
    """Yields the next token ids [B] per step, from the first step's outputs `out` on: chooser picks each token
    (the sequences are `length` tokens long before the first), decode(ids [B, 1], i) runs the step after token i.
    Where the GPU alone decides the token (chooser.token_on_gpu: the step's argmax, or its GPU draw), the next step
    takes it on the GPU and goes to the queue before the host waits for the token's copy, so the GPU never idles
    while the host makes the next step."""
    unfinished = np.ones(batch, bool)
    token_on_gpu = getattr(chooser, "token_on_gpu", None) if current_options().decode_ahead else None  # (beams: never)
    for i in range(new):
        last = i == new - 1
        ahead = None
        gpu_token = None if last or token_on_gpu is None else token_on_gpu(out, i, length + i, unfinished)
        if gpu_token is not None:
            read = read_later(gpu_token)
            ahead = decode(gpu_token.reshape(batch, 1), i)
            token = chooser.choose(out, i, length + i, unfinished, token_ids=read().astype(np.int64))
        else:
            token = chooser.choose(out, i, length + i, unfinished)
        yield token
        if not unfinished.any() or last:
            return
        out = ahead if ahead is not None else decode(token[:, None], i)


def run_without_cache(steps: Steps, ids: np.ndarray, mask: np.ndarray, settings, chooser):
    """run() for a model that keeps no cache: each token runs the whole sequence so far, as HF's generate does for
    it. The sequence sits in buffers of one length (right padding, masked out, which no real position attends to),
    so every token replays one plan; the logits are read at the last real position. A model that does not mask
    that padding out (step.masks_right_padding) is refused."""
    if not steps.masks_right_padding:
        raise NotImplementedError(
            f"generate: {type(steps.torch_model).__name__} runs the whole sequence each token here, and its logits "
            f"change with padding after the sequence that attention_mask masks out (it does not read the mask), so "
            f"tinydl's fixed-length buffers would give other tokens than HF's")
    batch, prompt = ids.shape
    new = settings.max_new_tokens
    limit = max_positions(steps.torch_model.config)
    length = cache_length(prompt, new)
    if limit is not None:
        length = min(length, max(limit[0], prompt + new))
    float_dtype = _float_dtype(steps.tm)
    check_fits(steps.torch_model.config, batch, prompt, new, 0, float_dtype.itemsize)
    ids = np.pad(ids, ((0, 0), (0, length - prompt)))
    full = np.pad(mask, ((0, 0), (0, length - prompt)))
    unfinished = np.ones(batch, bool)
    for i in range(new):
        last = prompt + i - 1
        positions = np.where(full == 0, 0, np.cumsum(full, -1) - 1)  # as HF's generate makes them
        inputs = (ids, full, positions, np.array([last], np.int64))
        out = steps.get("full", inputs, float_dtype)(*(tensor(a) for a in inputs))
        token = chooser.choose(out, i, prompt + i, unfinished)
        yield token
        if not unfinished.any() or i == new - 1:
            return
        if chooser.reorder is not None:
            ids, full = ids[chooser.reorder], full[chooser.reorder]
        ids[:, last + 1], full[:, last + 1] = token, 1
