"""The recurrent and convolution states of state-space and linear-attention layers (Mamba, Jamba, Qwen3-Next, ...)
in the functional cache: what step.FunctionalCache answers to HF's linear-attention cache calls.

HF's layers read a state (`get_conv_state`, `get_recurrent_state`: None before the first forward), update it in
place (`causal_conv1d_update` copies into the conv state) or hand a new one over (`update_conv_state`,
`update_recurrent_state`). Here the prefill records the states it hands over; a decode step takes them as inputs
(`past`, named by `layout`), gives the model copies to change in place and returns what they became. States have
fixed shapes ([B, channels, kernel] and [B, heads, ...]): the loop passes them between steps as they are, and
moves their rows with the keys and values under beam search.

Loads torch only when a cache method runs (tinydl imports this module without torch: loop.py reads the names).
"""
from __future__ import annotations

import functools

CONV, RECURRENT, KV = "conv", "recurrent", "kv"


class LinearStates:
    """HF's linear-attention cache methods over `past` / `layout` (set by step.FunctionalCache). `states` holds the
    states this step leaves: (CONV or RECURRENT, layer, state index) -> tensor."""

    past: tuple | None
    layout: list | None

    def _past_state(self, key):
        where = self._where()
        if key not in where:
            raise NotImplementedError(f"generate: the model read a {key[0]} state of layer {key[1]} that its prefill "
                                      f"did not leave (states left: {sorted(k for k in where if k[0] != KV)})")
        return self.past[where[key]]

    def _where(self) -> dict:
        """Where each named tensor sits in `past` (a key/value pair takes two places)."""
        where, at = {}, 0
        for name in self.layout or ():
            where[name] = at
            at += 2 if name[0] == KV else 1
        return where

    def _copy_to_change(self, key):
        """The past state `key` for the model to read: None in the prefill; else a copy, which the model may change
        in place (causal_conv1d_update, Zamba's per-head update) and which is the state this step leaves unless the
        model hands over another."""
        if self.past is None:
            return None
        state = self.states[key] = self._past_state(key).clone()
        return state

    def get_conv_state(self, layer_idx, state_idx=0):
        return self._copy_to_change((CONV, layer_idx, state_idx))

    def update_conv_state(self, conv_states, layer_idx, state_idx=0, conv_kernel_size=None, **kwargs):
        """HF's LinearAttentionLayer.update_conv_state without past recording: the new inputs after the state (a
        prefill's padded on the left to the kernel size); the last kernel-size columns are kept."""
        import torch
        if self.past is None:
            kernel = conv_states.shape[-1] if conv_kernel_size is None else conv_kernel_size
            full = conv_states
            if full.shape[-1] < kernel:
                full = torch.nn.functional.pad(full, (kernel - full.shape[-1], 0))
        else:
            past = self._past_state((CONV, layer_idx, state_idx))
            kernel = past.shape[-1]
            full = torch.cat([past, conv_states], dim=-1)
        self.states[CONV, layer_idx, state_idx] = full[..., -kernel:]
        return full

    def get_recurrent_state(self, layer_idx, state_idx=0):
        return self._copy_to_change((RECURRENT, layer_idx, state_idx))

    def update_recurrent_state(self, recurrent_states, layer_idx, state_idx=0, **kwargs):
        import torch
        last = recurrent_states if torch.is_tensor(recurrent_states) else recurrent_states[-1]
        self.states[RECURRENT, layer_idx, state_idx] = last
        return last

    def has_previous_state(self, layer_idx=None, state_idx=None) -> bool:
        return self.past is not None

    def is_recording_past(self, layer_idx) -> bool:
        return False

    def get_recurrent_states_to_keep(self, layer_idx=None) -> int:
        return 0

    def increase_count(self, layer_idx, state_idx) -> None:
        pass  # the loop counts the tokens


@functools.cache
def layer_mask_kinds() -> tuple[frozenset, frozenset]:
    """HF's layer types by the mask they take: (recurrent: the 2-D padding mask, create_recurrent_attention_mask;
    attention: an attention mask, the 4-D one the step takes). Types of both kinds in one layer map to a dict there
    and are in neither: such a layer picks its kinds' masks."""
    from transformers import masking_utils
    single = {name: make for name, make in masking_utils.LAYER_PATTERN_TO_MASK_FUNCTION_MAPPING.items()
              if not isinstance(make, dict)}
    recurrent = frozenset(n for n, make in single.items() if make is masking_utils.create_recurrent_attention_mask)
    return recurrent, frozenset(single) - recurrent


def model_masks(config, additive, padding, query_length: int):
    """The attention_mask a state model's forward takes, as its own mask builders would make it: its recurrent
    layers take the 2-D padding mask of the new tokens (none for one token: HF's create_recurrent_attention_mask),
    its attention layers the 4-D additive mask; a hybrid gets them as a dict by layer type (which its forward
    takes in place of building them: each layer, a "hybrid" one too, picks the kinds it has), a model of recurrent
    layers only (or without layer types) the 2-D mask."""
    recurrent_kinds, attention_kinds = layer_mask_kinds()
    recurrent = padding if query_length > 1 else None
    if set(getattr(config, "layer_types", None) or ()) <= recurrent_kinds:
        return recurrent
    return {**dict.fromkeys(attention_kinds, additive), **dict.fromkeys(recurrent_kinds, recurrent)}
