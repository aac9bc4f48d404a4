"""generate's settings with Hugging Face's precedence: the call's arguments over the model's
generation_config over transformers' global defaults. Every setting that would change the result and that
tinydl's generate does not implement (beam search, most logits processors, extra outputs, ...) is an
error naming it: never silently ignored."""
from __future__ import annotations

import dataclasses

# what the decode loop implements
SUPPORTED = {"max_new_tokens", "max_length", "do_sample", "temperature", "top_k", "top_p", "min_p", "eos_token_id",
             "pad_token_id", "decoder_start_token_id", "forced_bos_token_id", "forced_eos_token_id",
             "repetition_penalty", "min_length", "min_new_tokens", "suppress_tokens", "begin_suppress_tokens",
             "num_beams", "length_penalty", "early_stopping", "num_return_sequences", "no_repeat_ngram_size",
             "encoder_no_repeat_ngram_size", "use_cache", "bad_words_ids", "sequence_bias"}
# bookkeeping that does not change the tokens (the loop always uses its own static cache)
NEUTRAL = {"bos_token_id", "_from_model_config", "transformers_version",
           "cache_implementation", "cache_config", "compile_config", "disable_compile", "max_cache_len",
           "low_memory", "is_assistant"}


@dataclasses.dataclass
class Settings:
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_k: int | None
    top_p: float
    eos_token_id: list[int]
    pad_token_id: int | None
    decoder_start_token_id: int | None = None  # encoder-decoder models: the decoder's first token
    forced_bos_token_id: int | None = None  # the token after the first one
    forced_eos_token_id: int | None = None  # the last token at the length limit
    # logits processors (choose.py)
    repetition_penalty: float = 1.0
    min_length: int = 0          # EOS suppressed while the sequence is shorter
    min_new_tokens: int = 0      # EOS suppressed while fewer new tokens
    suppress_tokens: tuple = ()
    begin_suppress_tokens: tuple = ()  # suppressed at the first generated position
    no_repeat_ngram_size: int = 0      # no n-gram of this size twice in a row's tokens
    encoder_no_repeat_ngram_size: int = 0  # no n-gram of this size that the encoder's input ids hold
    min_p: float | None = None   # sampling: tokens less likely than min_p times the top one are dropped
    # sequence_bias and bad_words_ids (at -inf): ((tokens...), bias) pairs, added to the score of a sequence's last
    # token where the row's tokens end with the rest of it
    sequence_bias: tuple = ()
    # beam search (beam.py)
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    num_return_sequences: int = 1
    # False: as HF, each token runs the whole sequence (the same tokens as with a cache, except for a model that
    # attends both ways, whose prompt keys then see the new tokens)
    use_cache: bool = True


def _defaults() -> dict:
    from transformers import GenerationConfig
    return GenerationConfig._get_default_generation_params()


def resolve(torch_model, prompt_length: int, kwargs: dict, generation_config=None) -> Settings:
    """generation_config: the settings in place of the model's own (a model's own generate passing its merged
    settings down; only GenerationConfig's own fields are read: model-specific ones are that generate's)."""
    from transformers import GenerationConfig
    fields = set(GenerationConfig().to_dict())
    unknown = sorted(k for k in kwargs if k not in fields)
    if unknown:
        raise TypeError(f"generate() got unexpected keyword argument(s) {unknown} (model inputs other than "
                        f"input_ids and attention_mask are not supported)")
    defaults = _defaults()
    merged = dict(defaults)
    config = generation_config if generation_config is not None else getattr(torch_model, "generation_config", None)
    if config is not None:
        merged.update({k: v for k, v in config.to_dict().items() if v is not None
                       and (generation_config is None or k in fields)})
    merged.update({k: v for k, v in kwargs.items() if v is not None})
    unsupported = sorted(k for k, v in merged.items()
                         if k not in SUPPORTED and k not in NEUTRAL and v != defaults.get(k)
                         and v not in (None, False, [], {}))
    if unsupported:
        raise NotImplementedError(f"generate: {', '.join(f'{k}={merged[k]!r}' for k in unsupported)} not "
                                  f"supported (tinydl's generate does greedy search and sampling with "
                                  f"temperature, top_k, top_p and min_p, and applies repetition_penalty, "
                                  f"no_repeat_ngram_size, encoder_no_repeat_ngram_size, min_length, "
                                  f"min_new_tokens, suppress_tokens, begin_suppress_tokens, sequence_bias and "
                                  f"bad_words_ids; "
                                  f"beam search with "
                                  f"num_beams, length_penalty, early_stopping and num_return_sequences)")
    if merged.get("max_new_tokens") is not None:
        new = int(merged["max_new_tokens"])
        if new < 1:
            raise ValueError(f"`max_new_tokens` must be greater than 0, but is {new}.")
    else:
        max_length = int(merged["max_length"])
        if kwargs.get("max_length") is None and getattr(config, "max_length", None) is None:
            # HF: no max_length set anywhere means 20 new tokens, within max_position_embeddings
            max_length += prompt_length
            limit = getattr(torch_model.config, "max_position_embeddings", None)
            max_length = max_length if limit is None else min(max_length, limit)
        new = max_length - prompt_length
        if new <= 0:
            raise ValueError(f"Input length of input_ids is {prompt_length}, but `max_length` is set to "
                             f"{max_length}. This can lead to unexpected behavior. You should consider "
                             f"increasing `max_length` or, better yet, setting `max_new_tokens`.")
    eos = merged.get("eos_token_id")
    eos = [] if eos is None else [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]
    pad = merged.get("pad_token_id")
    if pad is None and eos:
        pad = eos[0]  # as HF (which warns)
    do_sample = bool(merged["do_sample"])
    temperature, top_p = float(merged["temperature"]), float(merged["top_p"])
    top_k = merged["top_k"]
    if do_sample:
        if not temperature > 0:
            raise ValueError(f"`temperature` (={temperature}) has to be a strictly positive float, otherwise your "
                             f"next token scores will be invalid.")
        if not 0 <= top_p <= 1:
            raise ValueError(f"`top_p` has to be a float > 0 and < 1, but is {top_p}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
            raise ValueError(f"`top_k` has to be a strictly positive integer, but is {top_k}")
    min_p = merged.get("min_p") if do_sample else None
    if min_p is not None and not 0 <= min_p <= 1.0:
        raise ValueError(f"`min_p` has to be a float in the [0, 1] interval, but is {min_p}")
    ngram = int(merged.get("no_repeat_ngram_size") or 0)
    encoder_ngram = merged.get("encoder_no_repeat_ngram_size") or 0
    if encoder_ngram and (not isinstance(encoder_ngram, int) or encoder_ngram < 0):
        raise ValueError(f"`encoder_ngram_size` has to be a strictly positive integer, but is {encoder_ngram}")
    beams, returned = int(merged.get("num_beams") or 1), int(merged.get("num_return_sequences") or 1)
    if returned > 1 and beams == 1 and not do_sample:
        raise ValueError("Greedy methods (do_sample != True) without beam search do not support "
                         f"`num_return_sequences` different than 1 (got {returned}).")
    if returned > beams > 1:
        raise ValueError(f"`num_return_sequences` ({returned}) has to be smaller or equal to `num_beams` ({beams}).")
    if beams > 1 and do_sample:
        raise NotImplementedError(f"generate: num_beams={beams} with do_sample=True (beam sampling) is not "
                                  f"supported (beam search or sampling, not both)")
    penalty = merged.get("repetition_penalty")
    penalty = 1.0 if penalty is None else penalty
    if penalty != 1.0 and (not isinstance(penalty, float) or not penalty > 0):
        raise ValueError(f"`penalty` has to be a strictly positive float, but is {penalty}")
    start = None
    if getattr(torch_model.config, "is_encoder_decoder", False):
        start = merged.get("decoder_start_token_id")  # as HF: the generation settings' own, else bos
        start = merged.get("bos_token_id") if start is None else start
        if start is None:
            raise ValueError("`decoder_start_token_id` or `bos_token_id` has to be defined for encoder-decoder "
                             "generation.")
    biases = _sequence_biases(merged.get("sequence_bias"), merged.get("bad_words_ids"), eos)
    forced_eos = merged.get("forced_eos_token_id")
    if isinstance(forced_eos, (list, tuple)):
        forced_eos = min(forced_eos)  # greedy's pick among the forced ids (all others are -inf)
    return Settings(
        new, do_sample, temperature, top_k or None, top_p, eos, None if pad is None else int(pad),
        decoder_start_token_id=None if start is None else int(start),
        forced_bos_token_id=_int(merged.get("forced_bos_token_id")), forced_eos_token_id=_int(forced_eos),
        repetition_penalty=float(penalty), min_length=int(merged.get("min_length") or 0),
        min_new_tokens=int(merged.get("min_new_tokens") or 0), suppress_tokens=_ints(merged.get("suppress_tokens")),
        begin_suppress_tokens=_ints(merged.get("begin_suppress_tokens")), no_repeat_ngram_size=ngram,
        encoder_no_repeat_ngram_size=encoder_ngram,
        min_p=None if min_p is None else float(min_p), num_beams=beams,
        length_penalty=float(merged.get("length_penalty", 1.0)), early_stopping=merged.get("early_stopping", False),
        num_return_sequences=returned, use_cache=merged.get("use_cache", True) is not False, sequence_bias=biases)


def _int(v):
    return None if v is None else int(v)


def _ints(v) -> tuple:
    return () if v is None else tuple(int(t) for t in (v if isinstance(v, (list, tuple)) else [v]))


def _token_ids(seq) -> bool:
    return all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in seq)


def _sequence_biases(sequence_bias, bad_words_ids, eos: list[int]) -> tuple:
    """HF's SequenceBiasLogitsProcessor's and NoBadWordsLogitsProcessor's sequences as ((tokens...), bias) pairs,
    checked as HF checks them; a bad word that is an EOS token alone is dropped, as HF drops it."""
    pairs = []
    if sequence_bias is not None:
        if not isinstance(sequence_bias, (dict, list)) or not sequence_bias:
            raise ValueError(f"`sequence_bias` has to be a non-empty dictionary, or non-empty list of lists but is "
                             f"{sequence_bias}.")
        if isinstance(sequence_bias, list):  # HF's list form: [[tokens], bias] pairs
            if not all(isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], list) and p[0]
                       and _token_ids(p[0]) and isinstance(p[1], float) for p in sequence_bias):
                raise ValueError(f"Each element in `sequence_bias` has to be a non-empty list of lists of positive "
                                 f"integers and float, but is {sequence_bias}.")
            sequence_bias = {tuple(p[0]): p[1] for p in sequence_bias}
        if not isinstance(sequence_bias, dict) or not all(isinstance(k, tuple) for k in sequence_bias):
            raise ValueError(f"`sequence_bias` has to be a dict with tuples as keys, but is {sequence_bias}.")
        if not all(k and _token_ids(k) for k in sequence_bias):
            raise ValueError(f"Each key in `sequence_bias` has to be a non-empty tuple of positive integers, but is "
                             f"{sequence_bias}.")
        if not all(isinstance(b, float) for b in sequence_bias.values()):
            raise ValueError(f"`sequence_bias` has to be a dict with floats as values, but is {sequence_bias}.")
        pairs += [(tuple(k), float(b)) for k, b in sequence_bias.items()]
    if bad_words_ids is not None:
        if not isinstance(bad_words_ids, list) or not bad_words_ids:
            raise ValueError(f"`bad_words_ids` has to be a non-empty list, but is {bad_words_ids}.")
        if not all(isinstance(w, list) for w in bad_words_ids):
            raise ValueError(f"`bad_words_ids` has to be a list of lists, but is {bad_words_ids}.")
        if not all(_token_ids(w) for w in bad_words_ids):
            raise ValueError(f"Each list in `bad_words_ids` has to be a list of positive integers, but is "
                             f"{bad_words_ids}.")
        pairs += [(tuple(w), float("-inf")) for w in bad_words_ids if w and w not in ([e] for e in eos)]
    return tuple(pairs)
