"""Encoder-decoder generation (T5, BART, Marian, mBART, Pegasus, ...): the encoder runs once over the prompt;
the decoder starts from decoder_start_token_id and runs one replayed step per token, its self-attention cache
and the cross-attention keys/values (computed once, by the first decoder step, from the encoder's output) kept
on the GPU and passed from step to step.

Three converted steps (torch modules given to torch.export, as step.py's):
- "encoder": (input_ids, attention_mask) -> the encoder's last hidden state;
- "first": the first decoder step (the start token, no self cache yet): computes and returns the cross-attention
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
from .loop import _additive_mask, _float_dtype, cache_length, check_fits, reordered

KINDS = ("encoder", "first", "next")


@functools.cache
def _torch_classes():
    import inspect

    import torch
    from transformers.cache_utils import EncoderDecoderCache

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
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class DecoderStep(torch.nn.Module):
        """model(decoder ids, 4-D decoder mask, position, encoder states, encoder mask, *self cache, *cross cache)
        -> (argmax [B], last logits [B, V], *new self cache[, *cross cache: first step])."""

        def __init__(self, model, first: bool):
            super().__init__()
            self.model, self.first = model, first
            params = inspect.signature(model.forward).parameters
            self.cache_arg = "cache" if "cache" in params else "past_key_values"
            self.position_arg = "cache_position" in params

        def forward(self, decoder_input_ids, decoder_attention_mask, cache_position, encoder_hidden_states,
                    attention_mask, *past):
            half = len(past) // 2
            self_cache = FunctionalCache(None if self.first else past[:half], cache_position,
                                         position_as_length=True)
            cross = CrossCache(None if self.first else past[half:])
            kwargs = {self.cache_arg: FunctionalEncoderDecoderCache(self_cache, cross), "use_cache": True}
            if self.position_arg:
                kwargs["cache_position"] = cache_position
            out = self.model(encoder_outputs=(encoder_hidden_states,), attention_mask=attention_mask,
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
    """The step kinds loop.Steps converts for an encoder-decoder model."""
    Encoder, DecoderStep = _torch_classes()
    return {"encoder": Encoder, "first": functools.partial(DecoderStep, first=True),
            "next": functools.partial(DecoderStep, first=False)}


def run(steps, ids: np.ndarray, mask: np.ndarray, settings, chooser):
    """Yields the next decoder token ids [B] (np.int64) per step; finished sequences get pad_token_id."""
    batch = ids.shape[0]
    new = settings.max_new_tokens
    length = cache_length(1, new)  # decoder positions: the start token, then the new tokens
    float_dtype = _float_dtype(steps.tm)
    np_float = np.float16 if float_dtype.itemsize == 2 else np.float32
    check_fits(steps.torch_model.config, batch, 1, new, length, float_dtype.itemsize, decoder=True)
    enc_inputs = (ids, mask)
    encoded = steps.get("encoder", enc_inputs, float_dtype)(*(tensor(a) for a in enc_inputs))
    enc_mask = tensor(mask)
    slots = np.arange(length)
    start = np.full((batch, 1), settings.decoder_start_token_id, np.int64)
    first = (start, _additive_mask(np.ones((batch, 1, 1), bool), np_float), np.zeros(1, np.int64))
    out = steps.get("first", (*first, encoded, mask), float_dtype)(*(tensor(a) for a in first), encoded, enc_mask)
    layers = (len(out) - 2) // 4
    self_cache = [F.pad(t, (0, 0, 0, length - 1)) for t in out[2:2 + 2 * layers]]  # later slots: zero
    cross = list(out[2 + 2 * layers:])
    unfinished = np.ones(batch, bool)
    for i in range(new):
        token = chooser.choose(out, i, 1 + i, unfinished)
        yield token
        if not unfinished.any() or i == new - 1:
            return
        slot = i + 1
        visible = np.broadcast_to(slots[None, None, :] <= slot, (batch, 1, length))
        inputs = (token[:, None], _additive_mask(visible, np_float), np.array([slot], np.int64))
        self_cache = reordered(self_cache, chooser.reorder)  # (the cross keys/values are alike across beams)
        out = steps.get("next", (*inputs, encoded, mask, *self_cache, *cross), float_dtype)(
            *(tensor(a) for a in inputs), encoded, enc_mask, *self_cache, *cross)
        self_cache = list(out[2:])
