"""generate / stream for a converted causal LM or encoder-decoder model (tinydl.from_torch of a Hugging Face
...ForCausalLM, ...ForConditionalGeneration), with Hugging Face's meaning: the same arguments and defaults
(from the model's generation_config), the prompt (an encoder-decoder: the decoder's start token) followed by
the new tokens as the result, finished sequences padded with pad_token_id; beam search's best hypotheses."""
from __future__ import annotations

import numpy as np

from .._tensor import Tensor
from . import loop, seq2seq, settings as settings_mod, step
from .beam import BeamChooser
from .choose import TokenChooser


def _torch_model(tm):
    model = getattr(tm, "_torch_module", None)
    if model is None or not hasattr(model, "config") or not callable(getattr(model, "get_output_embeddings", None)) \
            or model.get_output_embeddings() is None:
        raise TypeError(f"generate needs a converted Hugging Face language model (a ...ForCausalLM or an "
                        f"encoder-decoder ...ForConditionalGeneration given to tinydl.from_torch); "
                        f"{getattr(tm, '_name', type(tm).__name__)} is not one")
    return model


def _encoder_decoder(model) -> bool:
    return bool(getattr(model.config, "is_encoder_decoder", False))


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
    seq2seq_model = _encoder_decoder(model)
    s = settings_mod.resolve(model, 1 if seq2seq_model else ids.shape[1], kwargs)
    mask, _ = _as_numpy(attention_mask, "attention_mask")
    if mask is None:  # as HF: padding is inferred from pad_token_id when it is not also EOS
        pad = s.pad_token_id
        mask = (ids != pad).astype(np.int64) if pad is not None and pad not in s.eos_token_id and (ids == pad).any() \
            else np.ones_like(ids)
    elif mask.shape != ids.shape:
        raise ValueError(f"generate: attention_mask has shape {list(mask.shape)}, input_ids {list(ids.shape)}")
    steps = tm.__dict__.get("_generation_steps")
    if steps is None:
        steps = loop.Steps(tm, model, seq2seq.kinds() if seq2seq_model else step.causal_kinds())
        object.__setattr__(tm, "_generation_steps", steps)
    batch = ids.shape[0]
    if s.num_beams > 1 or s.num_return_sequences > 1:  # a row per beam / per sample: the input repeated, as HF
        rows = s.num_beams if s.num_beams > 1 else s.num_return_sequences
        ids, mask = np.repeat(ids, rows, 0), np.repeat(mask, rows, 0)
    # the result starts with the prompt (causal LMs) or the decoder's start token (encoder-decoders), as HF's
    head = np.full((ids.shape[0], 1), s.decoder_start_token_id, np.int64) if seq2seq_model else ids
    if s.num_beams > 1:
        chooser = BeamChooser(model, s, head, None if seq2seq_model else mask, batch)
    else:
        chooser = TokenChooser(s, np.random.default_rng(seed), head, None if seq2seq_model else mask)
    tokens = (seq2seq.run if seq2seq_model else loop.run)(steps, ids, mask, s, chooser)
    return tokens, head, kind, chooser


def _no_beams_streamed(s, streamer=True):
    if s.num_beams > 1 and streamer:
        raise ValueError("`streamer` cannot be used with beam search (yet!). Make sure that `num_beams` is set to 1.")


def stream(tm, input_ids, attention_mask=None, seed=None, **kwargs):
    """Iterator of the new tokens, one numpy int64 array [batch] per step (pad_token_id for finished
    sequences), as they are generated."""
    tokens, _, _, chooser = _prepare(tm, input_ids, attention_mask, seed, kwargs)
    _no_beams_streamed(chooser.settings)
    yield from tokens


def generate(tm, input_ids, attention_mask=None, streamer=None, seed=None, **kwargs):
    """The prompt followed by the generated tokens, [batch, prompt + new] (an encoder-decoder model: the
    decoder's start token followed by them, [batch, 1 + new]; new <= max_new_tokens: generation stops once every
    sequence has produced EOS), as the kind of input_ids (torch, numpy, tinydl). streamer: an HF streamer
    (put/end; put gets the prompt (the start tokens) first, then each step's tokens, as torch tensors) or a
    callable given each step's tokens (numpy [batch]). seed: sampling's numpy Generator seed."""
    tokens, head, kind, chooser = _prepare(tm, input_ids, attention_mask, seed, kwargs)
    _no_beams_streamed(chooser.settings, streamer is not None)
    hf_streamer = streamer is not None and hasattr(streamer, "put")
    if hf_streamer:
        import torch
        streamer.put(torch.from_numpy(head))
    out = [head]
    for token in tokens:
        out.append(token[:, None])
        if hf_streamer:
            streamer.put(torch.from_numpy(token))
        elif streamer is not None:
            streamer(token)
    if hf_streamer:
        streamer.end()
    result = chooser.sequences_found() if isinstance(chooser, BeamChooser) else np.concatenate(out, 1)
    if kind == "torch":
        import torch
        return torch.from_numpy(result)
    if kind == "tinydl":
        from .._tensor import tensor
        return tensor(result)
    return result.astype(np.asarray(input_ids).dtype) if kind == "numpy" else result
