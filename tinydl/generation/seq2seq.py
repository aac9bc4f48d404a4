"""Encoder-decoder generation (T5, BART, Marian, mBART, Pegasus, ...): the encoder runs once over the prompt;
the decoder starts from decoder_start_token_id and runs one replayed step per token, its self-attention cache
and the cross-attention keys/values (computed once, by the first decoder step, from the encoder's output) kept
on the GPU and passed from step to step.

Three converted steps (torch modules given to torch.export, as step.py's), each with the encoder's padding mask
as an input or (the `_unmasked` kinds: a call without a mask) without:
- "encoder": (the model's main input: input_ids, input_features, ...[, attention_mask]) -> the encoder's last
  hidden state;
- "first": the first decoder step (the decoder's first tokens: the start token or a given prefix, no self cache
  yet): computes and returns the cross-attention
  keys/values of every layer besides its own self-attention keys/values (which the loop pads to the cache
  length);
- "next": one token with both caches as inputs, writing slot `cache_position` of the self-attention cache.
The decoder's self-attention mask comes in 4-D and additive (made on the host, as for causal LMs); the
encoder's padding mask as the 2-D mask the model expands itself.
"""
from __future__ import annotations

import functools

import numpy as np

from .._tensor import tensor
from ..nn import functional as F
from .loop import _additive_mask, _float_dtype, as_tensors, cache_length, check_fits, decoded, handed_on, reordered
from .step import cache_argument

UNMASKED = "_unmasked"  # the step kinds converted without the encoder's padding mask


@functools.cache
def _torch_classes():
    import inspect

    import torch
    from transformers.cache_utils import EncoderDecoderCache
    from transformers.modeling_outputs import BaseModelOutput

    class EncoderOutput(BaseModelOutput):
        """The encoder's states as the decoder step gives them to the model: models read `.last_hidden_state` (NLLB-MoE)
        or `[0]`, and the extras an encoder of theirs returns (NLLB-MoE's router_logits) as None: not computed here."""

        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(name)
            return None

    from .step import flat_new, torch_classes
    FunctionalCache = torch_classes()[0]

    class CrossCache:
        """The cross-attention cache a HF decoder layer reads (`layers[i].keys/.values`, once is_updated) or
        writes (`update`, on the first step)."""

        def __init__(self, past):
            self.layers = [] if past is None else [
                _Layer(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
            self.new: dict[int, tuple] = {}

        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            self.new[layer_idx] = (key_states, value_states)
            return key_states, value_states

        def get_seq_length(self, layer_idx=0):
            return self.layers[layer_idx].keys.shape[-2] if self.layers else 0

        def __len__(self):
            return len(self.layers)

    class FunctionalEncoderDecoderCache(EncoderDecoderCache):
        """EncoderDecoderCache over a FunctionalCache (self-attention) and a CrossCache."""

        def __init__(self, self_cache, cross_cache):  # noqa: not EncoderDecoderCache's (it builds its caches)
            self.self_attention_cache, self.cross_attention_cache = self_cache, cross_cache
            self.is_updated = {i: True for i in range(len(cross_cache))}

    class Encoder(torch.nn.Module):
        """The encoder over the model's main input (input_ids, Whisper's input_features, pixel_values) and, when
        masked, its padding mask."""

        def __init__(self, model, masked: bool):
            super().__init__()
            self.model, self.masked = model, masked

        def forward(self, inputs, *mask):
            kwargs = {self.model.main_input_name: inputs}
            if self.masked:
                kwargs["attention_mask"] = mask[0]
            return self.model.get_encoder()(**kwargs).last_hidden_state

    class DecoderStep(torch.nn.Module):
        """model(decoder ids, 4-D decoder mask, positions, encoder states[, encoder mask: masked], *self cache,
        *cross cache) -> (argmax [B], last logits [B, V], *new self cache[, *cross cache: first step])."""

        def __init__(self, model, first: bool, masked: bool):
            super().__init__()
            self.model, self.first, self.masked = model, first, masked
            params = inspect.signature(model.forward).parameters
            self.cache_arg = cache_argument(params) or "past_key_values"
            self.position_arg = "cache_position" in params

        def forward(self, decoder_input_ids, decoder_attention_mask, cache_position, encoder_hidden_states, *rest):
            attention_mask, past = (rest[0], rest[1:]) if self.masked else (None, rest)
            half = len(past) // 2
            self_cache = FunctionalCache(None if self.first else past[:half], cache_position,
                                         position_as_length=True)
            cross = CrossCache(None if self.first else past[half:])
            kwargs = {self.cache_arg: FunctionalEncoderDecoderCache(self_cache, cross), "use_cache": True}
            if self.position_arg:
                kwargs["cache_position"] = cache_position
            out = self.model(encoder_outputs=EncoderOutput(last_hidden_state=encoder_hidden_states),
                             attention_mask=attention_mask,
                             decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask,
                             **kwargs)
            logits = out.logits[:, -1, :]
            new = flat_new(self_cache) + (flat_new(cross) if self.first else [])
            return (torch.argmax(logits, -1), logits, *new)

    return Encoder, DecoderStep


class _Layer:
    def __init__(self, keys, values):
        self.keys, self.values = keys, values


def kinds() -> dict:
    """The step kinds loop.Steps converts for an encoder-decoder model: each with the encoder's padding mask as
    an input, and (suffix UNMASKED) without one (a call without attention_mask: Whisper's features)."""
    Encoder, DecoderStep = _torch_classes()
    out = {}
    for suffix, masked in (("", True), (UNMASKED, False)):
        out["encoder" + suffix] = functools.partial(Encoder, masked=masked)
        out["first" + suffix] = functools.partial(DecoderStep, first=True, masked=masked)
        out["next" + suffix] = functools.partial(DecoderStep, first=False, masked=masked)
    return out


def start(steps, inputs: np.ndarray, mask: np.ndarray | None, prefix: np.ndarray, float_dtype):
    """The encoder over inputs and the first decoder step over prefix: (the step's outputs (argmax, last logits,
    self cache, cross cache), the encoder's states, the encoder's inputs, its mask as tensors, the kinds' suffix)."""
    np_float = np.float16 if float_dtype.itemsize == 2 else np.float32
    if np.issubdtype(inputs.dtype, np.floating):
        inputs = inputs.astype(np_float)  # features follow the weights' dtype (a .half() model's, too)
    suffix = "" if mask is not None else UNMASKED
    enc_inputs = (inputs,) if mask is None else (inputs, mask)
    encoded = steps.get("encoder" + suffix, enc_inputs, float_dtype)(*as_tensors(enc_inputs))
    enc_mask = () if mask is None else (tensor(mask),)
    batch, given = prefix.shape
    causal = np.tril(np.ones((given, given), bool))
    first = (prefix, _additive_mask(np.broadcast_to(causal, (batch, given, given)), np_float),
             np.arange(given, dtype=np.int64))
    out = steps.get("first" + suffix, (*first, encoded, *enc_inputs[1:]), float_dtype)(
        *as_tensors(first), encoded, *enc_mask)
    return out, encoded, enc_inputs, enc_mask, suffix


def run(steps, inputs: np.ndarray, mask: np.ndarray | None, settings, chooser, prefix: np.ndarray | None = None):
    """Yields the next decoder token ids [B] (np.int64) per step; finished sequences get pad_token_id.
    inputs: the encoder's main input (ids, features); mask: its padding mask or None; prefix: the decoder's
    first tokens [B, k] (default: decoder_start_token_id)."""
    batch = inputs.shape[0]
    if prefix is None:
        prefix = np.full((batch, 1), settings.decoder_start_token_id, np.int64)
    given = prefix.shape[1]
    new = settings.max_new_tokens
    length = cache_length(given, new)  # decoder positions: the prefix, then the new tokens
    float_dtype = _float_dtype(steps.tm)
    np_float = np.float16 if float_dtype.itemsize == 2 else np.float32
    check_fits(steps.torch_model.config, batch, given, new, length, float_dtype.itemsize, decoder=True)
    out, encoded, enc_inputs, enc_mask, suffix = start(steps, inputs, mask, prefix, float_dtype)
    layers = (len(out) - 2) // 4
    self_cache = [F.pad(t, (0, 0, 0, length - given)) for t in out[2:2 + 2 * layers]]  # later slots: zero
    cross = list(out[2 + 2 * layers:])
    slots = np.arange(length)

    def decode(fed, i: int):
        nonlocal self_cache
        slot = given + i
        visible = np.broadcast_to(slots[None, None, :] <= slot, (batch, 1, length))
        step_inputs = (fed, _additive_mask(visible, np_float), np.array([slot], np.int64))
        # (the cross keys/values are alike across beams)
        self_cache = handed_on(reordered(self_cache, chooser.reorder))
        out = steps.get("next" + suffix, (*step_inputs, encoded, *enc_inputs[1:], *self_cache, *cross), float_dtype)(
            *as_tensors(step_inputs), encoded, *enc_mask, *self_cache, *cross)
        self_cache = list(out[2:])
        return out

    yield from decoded(out, batch, new, given, chooser, decode)
