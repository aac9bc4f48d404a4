"""generate / stream for a converted causal LM (tinydl.from_torch of a Hugging Face ...ForCausalLM), with
Hugging Face's meaning: the same arguments and defaults (from the model's generation_config), the prompt
followed by the new tokens as the result, finished sequences padded with pad_token_id."""
from __future__ import annotations

import numpy as np

from .._tensor import Tensor
from . import loop, settings as settings_mod


def _torch_model(tm):
    model = getattr(tm, "_torch_module", None)
    if model is None or not hasattr(model, "config") or not callable(getattr(model, "get_output_embeddings", None)) \
            or model.get_output_embeddings() is None:
        raise TypeError(f"generate needs a converted Hugging Face causal language model (a ...ForCausalLM given to "
                        f"tinydl.from_torch); {getattr(tm, '_name', type(tm).__name__)} is not one")
    if getattr(model.config, "is_encoder_decoder", False):
        raise NotImplementedError(f"generate: encoder-decoder models ({type(model).__name__}) are not supported")
    return model


def _as_numpy(x, name):
    if x is None:
        return None, None
    kind = type(x).__module__.split(".")[0]
    if isinstance(x, Tensor):
        a, kind = x.numpy(), "tinydl"
    elif kind == "torch":
        a = x.detach().cpu().numpy()
    else:
        a, kind = np.asarray(x), "numpy"
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"generate: {name} must be integer ids of shape [batch, sequence], got {a.dtype} "
                         f"of shape {list(a.shape)}")
    return a.astype(np.int64), kind


def _prepare(tm, input_ids, attention_mask, seed, kwargs):
    model = _torch_model(tm)
    ids, kind = _as_numpy(input_ids, "input_ids")
    if ids is None or ids.shape[1] == 0:
        raise ValueError("generate: input_ids must hold at least one token per sequence")
    s = settings_mod.resolve(model, ids.shape[1], kwargs)
    mask, _ = _as_numpy(attention_mask, "attention_mask")
    if mask is None:  # as HF: padding is inferred from pad_token_id when it is not also EOS
        pad = s.pad_token_id
        mask = (ids != pad).astype(np.int64) if pad is not None and pad not in s.eos_token_id and (ids == pad).any() \
            else np.ones_like(ids)
    elif mask.shape != ids.shape:
        raise ValueError(f"generate: attention_mask has shape {list(mask.shape)}, input_ids {list(ids.shape)}")
    steps = tm.__dict__.get("_generation_steps")
    if steps is None:
        steps = loop.Steps(tm, model)
        object.__setattr__(tm, "_generation_steps", steps)
    return steps, ids, mask, s, np.random.default_rng(seed), kind


def stream(tm, input_ids, attention_mask=None, seed=None, **kwargs):
    """Iterator of the new tokens, one numpy int64 array [batch] per step (pad_token_id for finished
    sequences), as they are generated."""
    steps, ids, mask, s, rng, _ = _prepare(tm, input_ids, attention_mask, seed, kwargs)
    yield from loop.run(steps, ids, mask, s, rng)


def generate(tm, input_ids, attention_mask=None, streamer=None, seed=None, **kwargs):
    """The prompt followed by the generated tokens, [batch, prompt + new] (new <= max_new_tokens: generation
    stops once every sequence has produced EOS), as the kind of input_ids (torch, numpy, tinydl). streamer: an
    HF streamer (put/end; put gets the prompt first, then each step's tokens, as torch tensors) or a callable
    given each step's tokens (numpy [batch]). seed: sampling's numpy Generator seed."""
    steps, ids, mask, s, rng, kind = _prepare(tm, input_ids, attention_mask, seed, kwargs)
    hf_streamer = streamer is not None and hasattr(streamer, "put")
    if hf_streamer:
        import torch
        streamer.put(torch.from_numpy(ids))
    out = [ids]
    for token in loop.run(steps, ids, mask, s, rng):
        out.append(token[:, None])
        if hf_streamer:
            streamer.put(torch.from_numpy(token))
        elif streamer is not None:
            streamer(token)
    if hf_streamer:
        streamer.end()
    result = np.concatenate(out, 1)
    if kind == "torch":
        import torch
        return torch.from_numpy(result)
    if kind == "tinydl":
        from .._tensor import tensor
        return tensor(result)
    return result.astype(np.asarray(input_ids).dtype) if kind == "numpy" else result
