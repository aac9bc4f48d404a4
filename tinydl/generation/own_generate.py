"""Models whose Hugging Face class has a generate of its own (Whisper's: language and task tokens, language
detection, prompts, timestamps, segments of long audio, temperature fallback) run that generate as HF does, on
the torch model, so every one of its rules is HF's own; the GenerationMixin.generate it calls underneath
(through super()) is tinydl's: the encoder and the decoding steps on the GPU (generate.generate_tokens).

The call reaches tinydl's generate by putting, for its duration, the torch model into a subclass of its class
whose MRO has `_TinydlGenerationMixin` just before GenerationMixin (so `super().generate` in the model's own
generate finds it), and back afterwards. Work the model's generate does itself in torch stays in torch
(Whisper's language detection: one encoder and decoder pass when a multilingual model is given no language).
Logits processors the model's generate passes down are read into tinydl's settings when tinydl implements
them (token suppression, at the first generated position from the processor's begin index) and refused by
name otherwise (Whisper's timestamps, no-speech detection)."""
from __future__ import annotations

import contextvars
import functools
import threading

import numpy as np

from .inputs import to_numpy

# (the converted module, seed, generate_tokens, steps_of) of the call in progress: the hooked generate's way back to tinydl
_CALL: contextvars.ContextVar = contextvars.ContextVar("tinydl_own_generate")
_SWAP_LOCK = threading.Lock()


def has_own_generate(model) -> bool:
    from transformers import GenerationMixin
    return getattr(type(model), "generate", GenerationMixin.generate) is not GenerationMixin.generate


def run(tm, model, inputs, attention_mask, streamer, seed, kwargs, generate_tokens, steps_of):
    """model.generate(inputs, attention_mask=..., streamer=..., **kwargs) as HF runs it, generate_tokens
    (generate.py's) underneath, steps_of(tm, model) giving tm's converted steps; the result in the kind of inputs
    (torch, numpy, tinydl)."""
    import torch

    args, kind = (), None
    if inputs is not None:
        array, kind = to_numpy(inputs)
        args = (torch.from_numpy(np.ascontiguousarray(array)),)
    if attention_mask is not None:
        kwargs = {**kwargs, "attention_mask": torch.from_numpy(np.ascontiguousarray(to_numpy(attention_mask)[0]))}
    if streamer is not None:
        kwargs = {**kwargs, "streamer": streamer}
    token = _CALL.set((tm, seed, generate_tokens, steps_of))
    try:
        with _hooked(model):
            out = model.generate(*args, **kwargs)
    finally:
        _CALL.reset(token)
    if kind in (None, "torch") or not isinstance(out, torch.Tensor):
        return out
    if kind == "tinydl":
        from .._tensor import tensor
        return tensor(out.numpy())
    return out.numpy()


class _hooked:
    """The torch model's class swapped for its hooked subclass while the call runs (one call per model at a
    time: a second thread waits)."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        _SWAP_LOCK.acquire()
        self.cls = type(self.model)
        self.model.__class__ = _hooked_class(self.cls)

    def __exit__(self, *exc):
        self.model.__class__ = self.cls
        _SWAP_LOCK.release()


@functools.cache
def _hooked_class(cls):
    """cls with _TinydlGenerationMixin before GenerationMixin, and first the methods of cls that tinydl runs on
    the GPU (_GPU_METHODS)."""
    overrides = tuple(o for name, o in _GPU_METHODS.items() if callable(getattr(cls, name, None)))
    return type(cls.__name__, (*overrides, cls, _mixin()), {"__module__": cls.__module__})


class _LanguageDetection:
    """Whisper's detect_language from features: the encoder and the first decoder step from the start token on the
    GPU, the argmax over the language tokens read back (HF's own runs the torch model; from encoder outputs it
    still does)."""

    def detect_language(self, input_features=None, encoder_outputs=None, generation_config=None,
                        num_segment_frames: int = 3000):
        if input_features is None or encoder_outputs is not None:
            return super().detect_language(input_features, encoder_outputs, generation_config, num_segment_frames)
        import torch
        from .._tensor import arange, argmax, tensor, where
        from .loop import _float_dtype
        from .seq2seq import start

        config = generation_config or self.generation_config
        tm, _, _, steps_of = _CALL.get()
        features = input_features[:, :, :num_segment_frames].detach().cpu().numpy()
        prefix = np.full((features.shape[0], 1), config.decoder_start_token_id, np.int64)
        logits = start(steps_of(tm, self), features, None, prefix, _float_dtype(tm))[0][1].float()
        languages = tensor(np.asarray(sorted(config.lang_to_id.values()), np.int32))
        is_language = (arange(logits.shape[-1])[:, None] == languages).any(-1)
        return torch.from_numpy(argmax(where(is_language, logits, float("-inf")), -1).numpy().astype(np.int64))


_GPU_METHODS = {"detect_language": _LanguageDetection}


@functools.cache
def _mixin():
    from transformers import GenerationMixin

    class _TinydlGenerationMixin(GenerationMixin):
        def generate(self, inputs=None, generation_config=None, logits_processor=None, stopping_criteria=None,
                     prefix_allowed_tokens_fn=None, synced_gpus=None, assistant_model=None, streamer=None,
                     negative_prompt_ids=None, negative_prompt_attention_mask=None, custom_generate=None,
                     **kwargs):
            return _generate_underneath(self, inputs, generation_config, logits_processor, stopping_criteria,
                                        streamer, kwargs, prefix_allowed_tokens_fn=prefix_allowed_tokens_fn,
                                        synced_gpus=synced_gpus, assistant_model=assistant_model,
                                        negative_prompt_ids=negative_prompt_ids,
                                        negative_prompt_attention_mask=negative_prompt_attention_mask,
                                        custom_generate=custom_generate)

    return _TinydlGenerationMixin


def _generate_underneath(model, inputs, generation_config, logits_processor, stopping_criteria, streamer, kwargs,
                         **unsupported):
    import torch

    named = sorted(k for k, v in unsupported.items() if v not in (None, False))
    if stopping_criteria:
        named.append(f"stopping_criteria={[type(c).__name__ for c in stopping_criteria]}")
    if named:
        raise NotImplementedError(f"generate: {', '.join(named)} not supported by tinydl's generate")
    tm, seed, generate_tokens, _ = _CALL.get()
    kwargs = dict(kwargs)
    prefix = kwargs.pop("decoder_input_ids", None)
    mask = kwargs.pop("attention_mask", None)
    kwargs.update(_processor_settings(logits_processor, None if prefix is None else prefix.shape[-1]))
    result, _ = generate_tokens(tm, inputs, mask, streamer, seed, kwargs, generation_config, prefix)
    return torch.from_numpy(result)


def _processor_settings(processors, begin_index) -> dict:
    """The settings of the logits processors a model's generate passes down, where tinydl's generate applies
    them; any other processor raises, naming it."""
    from transformers import SuppressTokensAtBeginLogitsProcessor, SuppressTokensLogitsProcessor

    out = {}
    for p in processors or ():
        if type(p) is SuppressTokensLogitsProcessor:
            out["suppress_tokens"] = sorted({*out.get("suppress_tokens", ()), *p.suppress_tokens.tolist()})
        elif type(p) is SuppressTokensAtBeginLogitsProcessor and p.begin_index == (begin_index or 1):
            out["begin_suppress_tokens"] = sorted({*out.get("begin_suppress_tokens", ()),
                                                   *p.begin_suppress_tokens.tolist()})
        else:
            what = type(p).__name__
            if isinstance(p, SuppressTokensAtBeginLogitsProcessor):
                what += f" at position {p.begin_index} (the first generated one is {begin_index or 1})"
            raise NotImplementedError(f"generate: the logits processor {what} is not supported by tinydl's "
                                      f"generate (it applies suppress_tokens, and begin_suppress_tokens at the "
                                      f"first generated position)")
    return out
