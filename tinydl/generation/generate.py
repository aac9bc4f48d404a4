"""generate / stream for a converted causal LM or encoder-decoder model (tinydl.from_torch of a Hugging Face
...ForCausalLM, ...ForConditionalGeneration), with Hugging Face's meaning: the same arguments and defaults
(from the model's generation_config), the prompt (an encoder-decoder: the decoder's start token) followed by
the new tokens as the result, finished sequences padded with pad_token_id; beam search's best hypotheses."""
from __future__ import annotations

import warnings

import numpy as np

from . import inputs, loop, own_generate, seq2seq, settings as settings_mod, step
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


def _starts_prefix(model) -> bool:
    """Whether given decoder ids get the start token in front when none of them begins with it (HF's rule; Whisper
    and Donut take theirs as given)."""
    config = model.config
    donut = "donut" in type(model).__name__.lower() or (
        config.model_type == "vision-encoder-decoder" and "donut" in config.encoder.model_type.lower())
    return not donut and config.model_type != "whisper"


def _decoder_prefix(model, kwargs: dict):
    """The decoder ids a call gives an encoder-decoder (decoder_input_ids; a padded decoder_attention_mask is
    refused), taken out of kwargs; None when none are given."""
    prefix = kwargs.pop("decoder_input_ids", None) if _encoder_decoder(model) else None
    mask = kwargs.pop("decoder_attention_mask", None) if prefix is not None else None
    if mask is not None and not (inputs.to_numpy(mask)[0] != 0).all():
        raise NotImplementedError("generate: a decoder_attention_mask with padding (zeros) is not supported; "
                                  "give decoder_input_ids of one length without padding")
    return prefix


def steps_of(tm, model) -> loop.Steps:
    """The converted generation steps of tm (kept on it), made on first use."""
    steps = tm.__dict__.get("_generation_steps")
    if steps is None:
        steps = loop.Steps(tm, model, seq2seq.kinds() if _encoder_decoder(model) else step.causal_kinds())
        object.__setattr__(tm, "_generation_steps", steps)
    return steps


def _prepare(tm, input_ids, attention_mask, seed, kwargs, generation_config=None, prefix=None):
    """(the new tokens' iterator, the head the result starts with, the input's kind, the chooser).
    generation_config: the settings in place of the model's own (a model's own generate calling down);
    prefix: an encoder-decoder's first decoder tokens [B, k] (default: its decoder_start_token_id)."""
    model = _torch_model(tm)
    seq2seq_model = _encoder_decoder(model)
    name = getattr(model, "main_input_name", "input_ids") if seq2seq_model else "input_ids"
    if input_ids is None:
        raise ValueError(f"generate: {name} is required")
    ids, kind = inputs.as_ids(input_ids, name) if name == "input_ids" else inputs.encoder_input(input_ids, name)
    if name == "input_ids" and ids.shape[1] == 0:
        raise ValueError("generate: input_ids must hold at least one token per sequence")
    if prefix is not None:
        prefix, _ = inputs.as_ids(prefix, "decoder_input_ids")
        if prefix.shape[0] != ids.shape[0]:
            raise ValueError(f"generate: decoder_input_ids has {prefix.shape[0]} rows, {name} {ids.shape[0]}")
    s = settings_mod.resolve(model, (1 if prefix is None else prefix.shape[1]) if seq2seq_model else ids.shape[1],
                             kwargs, generation_config)
    if prefix is not None and _starts_prefix(model) and (prefix[:, 0] != s.decoder_start_token_id).all():
        # as HF: decoder ids that do not begin with the start token get it in front
        prefix = np.concatenate([np.full((len(prefix), 1), s.decoder_start_token_id, np.int64), prefix], 1)
        s = settings_mod.resolve(model, prefix.shape[1], kwargs, generation_config)
    mask, _ = inputs.as_ids(attention_mask, "attention_mask")
    if mask is None and name == "input_ids":  # as HF: padding is inferred from pad_token_id when it is not also EOS
        pad = s.pad_token_id
        mask = (ids != pad).astype(np.int64) if pad is not None and pad not in s.eos_token_id and (ids == pad).any() \
            else np.ones_like(ids)
    elif mask is not None and mask.shape != ids.shape[:2]:
        raise ValueError(f"generate: attention_mask has shape {list(mask.shape)}, {name} {list(ids.shape)}")
    steps = steps_of(tm, model)
    batch = ids.shape[0]
    # the result starts with the prompt (causal LMs) or the decoder's first tokens (encoder-decoders), as HF's
    head = ids if not seq2seq_model else prefix if prefix is not None else \
        np.full((batch, 1), s.decoder_start_token_id, np.int64)
    # the ids encoder_no_repeat_ngram_size reads: the call's input ids (HF ignores it, warning, for features)
    encoder_ids = ids if name == "input_ids" else None
    if s.encoder_no_repeat_ngram_size and encoder_ids is None:
        warnings.warn("Passing `encoder_no_repeat_ngram_size` requires some form of `input_ids` to be passed to "
                      "`generate`, ignoring the argument.", UserWarning)
    if s.num_beams > 1 or s.num_return_sequences > 1:  # a row per beam / per sample: the input repeated, as HF
        rows = s.num_beams if s.num_beams > 1 else s.num_return_sequences
        ids, head = np.repeat(ids, rows, 0), np.repeat(head, rows, 0)
        mask = None if mask is None else np.repeat(mask, rows, 0)
    if s.num_beams > 1:
        chooser = BeamChooser(model, s, head, None if seq2seq_model else mask, batch, encoder_ids)
    else:
        chooser = TokenChooser(s, np.random.default_rng(seed), head, None if seq2seq_model else mask, encoder_ids)
    tokens = seq2seq.run(steps, ids, mask, s, chooser, head) if seq2seq_model else loop.run(steps, ids, mask, s, chooser)
    return tokens, head, kind, chooser


def _no_beams_streamed(s, streamer=True):
    if s.num_beams > 1 and streamer:
        raise ValueError("`streamer` cannot be used with beam search (yet!). Make sure that `num_beams` is set to 1.")


def stream(tm, input_ids, attention_mask=None, seed=None, **kwargs):
    """Iterator of the new tokens, one numpy int64 array [batch] per step (pad_token_id for finished
    sequences), as they are generated."""
    model = _torch_model(tm)
    if own_generate.has_own_generate(model):
        raise NotImplementedError(f"stream: {type(model).__name__} has a generate of its own, which decides the "
                                  f"tokens it starts from and returns; use generate(..., streamer=callback)")
    kwargs = dict(kwargs)
    tokens, _, _, chooser = _prepare(tm, input_ids, attention_mask, seed, kwargs,
                                     prefix=_decoder_prefix(model, kwargs))
    _no_beams_streamed(chooser.settings)
    yield from tokens


def generate(tm, input_ids=None, attention_mask=None, streamer=None, seed=None, **kwargs):
    """The prompt followed by the generated tokens, [batch, prompt + new] (an encoder-decoder model: the
    decoder's first tokens followed by them, [batch, k + new]; new <= max_new_tokens: generation stops once every
    sequence has produced EOS), as the kind of input_ids (torch, numpy, tinydl). input_ids: an encoder-decoder's
    main input (input_features, pixel_values) where that is not ids. streamer: an HF streamer (put/end; put gets
    the prompt (the start tokens) first, then each step's tokens, as torch tensors) or a callable given each
    step's tokens (numpy [batch]). seed: sampling's numpy Generator seed. A model whose HF class has a generate
    of its own (Whisper) runs that, with tinydl generating underneath (own_generate.py)."""
    model = _torch_model(tm)
    if own_generate.has_own_generate(model):
        return own_generate.run(tm, model, input_ids, attention_mask, streamer, seed, kwargs,
                                generate_tokens, steps_of)
    kwargs = dict(kwargs)
    prefix = _decoder_prefix(model, kwargs)
    result, kind = generate_tokens(tm, input_ids, attention_mask, streamer, seed, kwargs, prefix=prefix)
    if kind == "torch":
        import torch
        return torch.from_numpy(result)
    if kind == "tinydl":
        from .._tensor import tensor
        return tensor(result)
    dtype = np.asarray(input_ids).dtype if kind == "numpy" else None
    return result.astype(dtype) if dtype is not None and np.issubdtype(dtype, np.integer) else result


def generate_tokens(tm, input_ids, attention_mask, streamer, seed, kwargs, generation_config=None, prefix=None):
    """(the result as a numpy int64 array, the kind of input_ids): generate's work (see _prepare's arguments)."""
    tokens, head, kind, chooser = _prepare(tm, input_ids, attention_mask, seed, kwargs, generation_config, prefix)
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
    return result, kind
