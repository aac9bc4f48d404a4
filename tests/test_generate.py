"""tm.generate on converted Hugging Face causal LMs (tinydl.generation): greedy tokens equal to HF's generate on
torch CPU at float32 (left-padded batches with a mask, EOS per sequence), the input's kind kept, sampling
reproducible from a seed and filtered as HF's warpers, decode steps replayed (nothing planned or compiled after
the first), memory flat over repeated calls, and the error cases.

Tiny random configs (HF_HUB_OFFLINE=1), attn_implementation="eager", untied LM heads scaled x20 so that the
argmax is decided by the model and not by float noise.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tinydl.interop.torchvision_compat import import_torchvision  # noqa: E402

import_torchvision()  # before transformers, which may import torchvision

import transformers  # noqa: E402

import tinydl  # noqa: E402
from tinydl import debug, generation  # noqa: E402
from tinydl.generation import loop, sampling  # noqa: E402
from tinydl.runtime import get_runtime  # noqa: E402

transformers.logging.set_verbosity_error()

VOCAB, PROMPT = 100, 7
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
GQA = dict(SMALL, num_key_value_heads=2)
# architecture -> (config / model class prefix, config arguments)
ARCHS = {
    "gpt2": ("GPT2", dict(n_positions=64, n_embd=32, n_layer=2, n_head=4)),
    "llama": ("Llama", dict(GQA, max_position_embeddings=64)),
    "mistral": ("Mistral", GQA),
    "qwen2": ("Qwen2", GQA),
    "qwen3": ("Qwen3", dict(GQA, head_dim=8)),
    "phi3": ("Phi3", dict(GQA, pad_token_id=0)),
    "gemma": ("Gemma", dict(GQA, head_dim=8)),
    "gpt_neox": ("GPTNeoX", SMALL),
    "opt": ("OPT", dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                        word_embed_proj_dim=32)),
    "falcon": ("Falcon", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4)),
    "bloom": ("Bloom", dict(hidden_size=32, n_layer=2, n_head=4)),
    "gptj": ("GPTJ", dict(n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=64)),
    "phi": ("Phi", SMALL),
    "olmo": ("Olmo", SMALL),
    "granite": ("Granite", GQA),
    # mixture of experts: the experts' grouped matmul (transformers.grouped_mm_fallback) in prefill and decode
    "mixtral": ("Mixtral", dict(GQA, num_local_experts=4, num_experts_per_tok=2)),
    "gemma2": ("Gemma2", dict(GQA, head_dim=8)),          # logit soft-capping, sliding layers within the window
    "gpt_bigcode": ("GPTBigCode", dict(n_embd=32, n_layer=2, n_head=4)),  # multi-query attention
    "cohere": ("Cohere", GQA),                             # parallel attention/MLP block, scaled logits
}
GPT2 = "GPT2LMHeadModel"


def hf_model(arch, seed=0, **extra):
    torch.manual_seed(seed)
    prefix, args = ARCHS[arch]
    cfg = getattr(transformers, prefix + "Config")(**{**dict(
        vocab_size=VOCAB, attn_implementation="eager", initializer_range=0.2, use_cache=False,
        tie_word_embeddings=False), **args, **extra})
    cls = getattr(transformers, GPT2 if arch == "gpt2" else prefix + "ForCausalLM")
    m = cls(cfg).eval()
    with torch.no_grad():
        m.get_output_embeddings().weight.mul_(20)
    return m


def prompt(batch=2, seed=0):
    """Ids and a left-padded mask: the second sequence has 3 padding tokens (id 0) in front."""
    ids = np.random.default_rng(seed).integers(1, VOCAB, (batch, PROMPT))
    mask = np.ones((batch, PROMPT), np.int64)
    if batch > 1:
        mask[1, :3] = 0
        ids[1, :3] = 0
    return ids, mask


def convert(m, ids, mask):
    return tinydl.from_torch(m, example_inputs=((torch.from_numpy(ids),), {"attention_mask": torch.from_numpy(mask)}))


def hf_generate(m, ids, mask, **kwargs):
    with torch.no_grad():
        return m.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), **kwargs).numpy()


@pytest.fixture(scope="module")
def llama():
    m = hf_model("llama")
    return m, convert(m, *prompt())


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_matches_hf_left_padded_batch(arch):
    m = hf_model(arch)
    ids, mask = prompt()
    ref = hf_generate(m, ids, mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert len(set(ref[:, PROMPT:].ravel())) > 2  # not a degenerate run
    out = convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False,
                                         pad_token_id=0)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma", "cohere"])
def test_norm_statistics_inside_the_gemvs(use_options, arch):
    """Options.stats_in_gemv: the decode steps' norm statistics computed by the gemvs that read them: HF's tokens,
    in fewer kernels than with a reduce kernel per norm."""
    m = hf_model(arch)
    ids, mask = prompt()
    ref = hf_generate(m, ids, mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    tm = convert(m, ids, mask)
    counts = {}
    for on in (False, True):
        use_options(stats_in_gemv=on)
        with debug.count_kernels() as c:
            out = tm.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
        np.testing.assert_array_equal(out, ref)
        counts[on] = c.count
    assert counts[True] < counts[False], counts


def test_falcon_alibi_names_its_bfloat16_slopes():
    """Falcon's ALiBi rounds its slopes through bfloat16, which tinydl does not compute in: the error names it
    (Bloom's ALiBi, in float32, generates above)."""
    m = hf_model("falcon", alibi=True, new_decoder_architecture=False)
    ids, mask = prompt()
    with pytest.raises(TypeError, match="unsupported dtype torch.bfloat16"):
        convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=2, pad_token_id=0)


def test_padding_changes_the_tokens(llama):
    """The mask is applied: the padded sequence's tokens differ when its padding is attended to."""
    m, tm = llama
    ids, mask = prompt()
    padded = tm.generate(ids, attention_mask=mask, max_new_tokens=4, pad_token_id=0)
    unmasked = tm.generate(ids, attention_mask=np.ones_like(mask), max_new_tokens=4, pad_token_id=0)
    np.testing.assert_array_equal(padded[0], unmasked[0])
    assert not np.array_equal(padded[1], unmasked[1])


def test_eos_stops_each_sequence_as_hf(llama):
    m, tm = llama
    ids, mask = prompt()
    free = hf_generate(m, ids, mask, max_new_tokens=8, pad_token_id=0)
    eos = int(free[0, PROMPT + 1])  # the first sequence ends at its second new token
    kwargs = dict(max_new_tokens=8, eos_token_id=eos, pad_token_id=0)
    ref = hf_generate(m, ids, mask, **kwargs)
    out = tm.generate(ids, attention_mask=mask, **kwargs)
    np.testing.assert_array_equal(out, ref)
    assert (out[0, PROMPT + 2:] == 0).all()  # finished: padded
    # every sequence finished: generation stops before max_new_tokens, as HF's
    eos_both = [eos, int(free[1, PROMPT + 2])]
    ref = hf_generate(m, ids, mask, max_new_tokens=8, eos_token_id=eos_both, pad_token_id=0)
    out = tm.generate(ids, attention_mask=mask, max_new_tokens=8, eos_token_id=eos_both, pad_token_id=0)
    assert out.shape[1] < PROMPT + 8
    np.testing.assert_array_equal(out, ref)


def processor_cases(free):
    """Options for HF's logits processors, built from a free run's tokens so that each one changes them."""
    first, second = int(free[0, PROMPT]), int(free[0, PROMPT + 1])
    return {
        "repetition_penalty": dict(repetition_penalty=1.8),
        "repetition_reward": dict(repetition_penalty=0.6),
        "min_new_tokens": dict(min_new_tokens=5, eos_token_id=second),
        "min_length": dict(min_length=PROMPT + 4, eos_token_id=[first, second]),
        "suppress_tokens": dict(suppress_tokens=[first, second]),
        "begin_suppress_tokens": dict(begin_suppress_tokens=[first, int(free[1, PROMPT])]),
        "no_repeat_ngram_size": dict(no_repeat_ngram_size=1),
        "no_repeat_bigrams": dict(no_repeat_ngram_size=2, max_new_tokens=20),
        "encoder_no_repeat": dict(encoder_no_repeat_ngram_size=1),  # no token of the prompt (its padding included)
        "all": dict(repetition_penalty=1.3, min_new_tokens=3, eos_token_id=second, suppress_tokens=[first],
                    no_repeat_ngram_size=3),
        "bad_words_ids": dict(bad_words_ids=[[first], [int(free[1, PROMPT]), int(free[1, PROMPT + 1])]]),
        "bad_words_after_their_prefix": dict(bad_words_ids=[[first, second]]),  # only where `first` came before
        "sequence_bias": dict(sequence_bias={(first,): -4.0, (int(free[1, PROMPT]), int(free[1, PROMPT + 1])): -9.0}),
        "sequence_bias_as_list": dict(sequence_bias=[[[second], 6.0]]),
        "sequence_bias_then_penalty": dict(sequence_bias={(first,): 2.5}, repetition_penalty=1.6),
    }


@pytest.mark.parametrize("case", list(processor_cases(np.zeros((2, PROMPT + 2), int))))
def test_logits_processors_match_hf(llama, case):
    """Greedy tokens with HF's processors equal HF's (left-padded batch: the penalty skips a row's padding)."""
    m, tm = llama
    ids, mask = prompt()
    free = hf_generate(m, ids, mask, max_new_tokens=8, pad_token_id=0)
    kwargs = dict(dict(max_new_tokens=8, pad_token_id=0), **processor_cases(free)[case])
    ref = hf_generate(m, ids, mask, **kwargs)
    assert not np.array_equal(ref, free[:, :ref.shape[1]]) or ref.shape != free.shape  # the option matters
    np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, **kwargs), ref)


@pytest.mark.parametrize("kwargs,message", [
    (dict(bad_words_ids=[]), r"`bad_words_ids` has to be a non-empty list, but is \[\]"),
    (dict(bad_words_ids=[3]), r"`bad_words_ids` has to be a list of lists, but is \[3\]"),
    (dict(bad_words_ids=[[-1]]), r"Each list in `bad_words_ids` has to be a list of positive integers"),
    (dict(sequence_bias={(1,): 1}), r"`sequence_bias` has to be a dict with floats as values"),
    (dict(sequence_bias={}), r"`sequence_bias` has to be a non-empty dictionary"),
    (dict(bad_words_ids=[[10 ** 6]]), r"The model vocabulary size is \d+, but the following tokens were being "
                                      r"biased: \[1000000\]"),
])
def test_bad_sequence_options_raise_as_hf(llama, kwargs, message):
    m, tm = llama
    ids, mask = prompt()
    with pytest.raises(ValueError, match=message):
        hf_generate(m, ids, mask, max_new_tokens=2, pad_token_id=0, **kwargs)
    with pytest.raises(ValueError, match=message):
        tm.generate(ids, attention_mask=mask, max_new_tokens=2, pad_token_id=0, **kwargs)


def test_sampling_several_sequences_per_input(llama):
    """num_return_sequences with sampling: each input's rows follow it (HF's order), drawn independently."""
    m, tm = llama
    ids, mask = prompt()
    out = tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0, do_sample=True, temperature=3.0,
                      num_return_sequences=3, seed=0)
    assert out.shape == (6, PROMPT + 6)
    np.testing.assert_array_equal(out[:, :PROMPT], np.repeat(ids, 3, 0))
    assert len({tuple(r) for r in out[:3, PROMPT:].tolist()}) > 1


def test_processors_and_min_p_when_sampling(llama):
    """Sampling applies the processors too (a suppressed token is never drawn) and min_p keeps the top token."""
    m, tm = llama
    ids, mask = prompt()
    greedy = tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0)
    kwargs = dict(attention_mask=mask, max_new_tokens=6, pad_token_id=0, do_sample=True, temperature=2.0)
    banned = sorted(set(greedy[:, PROMPT:].ravel().tolist()))
    for seed in range(3):
        out = tm.generate(ids, seed=seed, suppress_tokens=banned, **kwargs)
        assert not np.isin(out[:, PROMPT:], banned).any()
    # min_p=1 keeps only the most likely token: greedy's
    np.testing.assert_array_equal(tm.generate(ids, seed=0, min_p=1.0, **kwargs), greedy)


def test_input_kinds_and_defaults(llama):
    m, tm = llama
    ids, mask = prompt()
    ref = hf_generate(m, ids, mask, max_new_tokens=3, pad_token_id=0)
    out = tm.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=3, pad_token_id=0)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), ref)
    out = tm.generate(ids.astype(np.int32), attention_mask=mask, max_new_tokens=3, pad_token_id=0)
    assert isinstance(out, np.ndarray) and out.dtype == np.int32
    np.testing.assert_array_equal(out, ref)
    out = tm.generate(tinydl.tensor(ids), attention_mask=mask, max_new_tokens=3, pad_token_id=0)
    assert isinstance(out, tinydl.Tensor)
    np.testing.assert_array_equal(out.numpy(), ref)
    # no max_new_tokens nor max_length anywhere: 20 new tokens, as HF; no mask: all ones
    one = ids[:1]
    with torch.no_grad():
        ref = m.generate(torch.from_numpy(one)).numpy()
    assert ref.shape[1] == PROMPT + 20
    np.testing.assert_array_equal(tm.generate(one), ref)


def test_streaming(llama):
    m, tm = llama
    ids, mask = prompt()
    full = tm.generate(ids, attention_mask=mask, max_new_tokens=5, pad_token_id=0)
    steps = list(generation.stream(tm, ids, attention_mask=mask, max_new_tokens=5, pad_token_id=0))
    assert len(steps) == 5 and all(s.shape == (2,) for s in steps)
    np.testing.assert_array_equal(np.stack(steps, 1), full[:, PROMPT:])
    seen = []
    tm.generate(ids, attention_mask=mask, max_new_tokens=5, pad_token_id=0, streamer=seen.append)
    np.testing.assert_array_equal(np.stack(seen, 1), full[:, PROMPT:])

    class Streamer:  # HF's streamer protocol: the prompt first, then each step's tokens, then end()
        def __init__(self):
            self.put_calls, self.ended = [], False

        def put(self, value):
            self.put_calls.append(value)

        def end(self):
            self.ended = True

    s = Streamer()
    tm.generate(ids, attention_mask=mask, max_new_tokens=5, pad_token_id=0, streamer=s)
    assert s.ended and len(s.put_calls) == 6 and isinstance(s.put_calls[0], torch.Tensor)
    np.testing.assert_array_equal(s.put_calls[0].numpy(), ids)


def test_sampling_reproducible_from_a_seed(llama):
    m, tm = llama
    ids, mask = prompt()
    kwargs = dict(attention_mask=mask, max_new_tokens=8, do_sample=True, temperature=3.0, top_k=0, pad_token_id=0)
    a = tm.generate(ids, seed=1, **kwargs)
    np.testing.assert_array_equal(tm.generate(ids, seed=1, **kwargs), a)
    with tinydl.options(decode_ahead=False):  # every token drawn on the host's path (no step queued ahead)
        np.testing.assert_array_equal(tm.generate(ids, seed=1, **kwargs), a)
    assert not np.array_equal(tm.generate(ids, seed=2, **kwargs), a)
    # top_k=1 samples the argmax: greedy's tokens
    greedy = tm.generate(ids, attention_mask=mask, max_new_tokens=8, pad_token_id=0)
    np.testing.assert_array_equal(tm.generate(ids, seed=3, **dict(kwargs, top_k=1)), greedy)


@pytest.mark.parametrize("temperature,top_k,top_p,min_p", [(1.0, 5, 1.0, None), (0.7, None, 0.8, None),
                                                           (1.5, 10, 0.5, None), (1.0, None, 0.0, None),
                                                           (1.0, None, 1.0, 0.1), (0.8, 20, 0.9, 0.05)])
def test_warp_matches_hf_warpers(temperature, top_k, top_p, min_p):
    """The tokens left to sample from and their probabilities are HF's (temperature, top-k, top-p, min-p)."""
    from transformers.generation.logits_process import (MinPLogitsWarper, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)
    logits = np.random.default_rng(0).standard_normal((3, 50)).astype(np.float32) * 3
    scores = torch.from_numpy(logits)
    scores = TemperatureLogitsWarper(temperature)(None, scores)
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1:
        scores = TopPLogitsWarper(top_p)(None, scores)
    if min_p is not None:
        scores = MinPLogitsWarper(min_p)(None, scores)
    ref = torch.softmax(scores.double(), -1).numpy()
    got = sampling.warp(logits, temperature, top_k, top_p, min_p)
    got = np.exp(got - got.max(-1, keepdims=True))
    np.testing.assert_allclose(got / got.sum(-1, keepdims=True), ref, rtol=1e-5, atol=1e-7)
    draws = sampling.sample(logits, np.random.default_rng(0), temperature, top_k, top_p, min_p)
    assert (ref[np.arange(3), draws] > 0).all()


@pytest.mark.parametrize("settings,overlaps", [
    (dict(), True),                                        # greedy: the token is the step's argmax
    (dict(repetition_penalty=1.3), False),                 # a processor: the host has the token first
    (dict(do_sample=True, top_k=20, seed=1), True),        # sampled: the GPU draw is the token
    (dict(do_sample=True, top_k=20, seed=1, repetition_penalty=1.3), False),
])
def test_decoding_queues_the_next_step_before_it_waits_for_the_token(llama, monkeypatch, settings, overlaps):
    """Greedy or sampled decoding without processors feeds the step's argmax or GPU draw to the next step on the
    GPU: each decode step goes to the queue before the host waits for the previous token's copy (host and GPU work
    overlap); the tokens are HF's either way. Where the host must choose the token first, it waits and then
    submits."""
    from tinydl.generation import loop
    m, tm = llama
    ids, mask = prompt()
    rt = get_runtime()
    events = []
    real_encoded, real_read_later = rt.submit_encoded, loop.read_later
    tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0, **settings)  # steps captured

    def read_later(t):
        wait = real_read_later(t)
        events.append("copy")
        return lambda: events.append("wait") or wait()
    monkeypatch.setattr(rt, "submit_encoded", lambda *a, **k: events.append("step") or real_encoded(*a, **k))
    monkeypatch.setattr(loop, "read_later", read_later)
    got = tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0, **settings)
    if "seed" not in settings:  # (sampled tokens: their own tests)
        np.testing.assert_array_equal(got, hf_generate(m, ids, mask, max_new_tokens=6, pad_token_id=0, **settings))
    if overlaps:
        # the prefill, then each token's copy, the next step, the wait (the last token: no step after it)
        assert events == ["step"] + ["copy", "step", "wait"] * 5, events
    else:
        assert events == ["step"] * 6, events


@pytest.mark.parametrize("sampled", [False, True])
def test_decode_steps_replay_without_planning(llama, monkeypatch, sampled):
    """After the first decode step, each step is one submit of the replayed plan plus the read-back of the token
    ids (greedy: a submit without kernels; sampled: the sampling kernel's submit, which reads the ids back): no
    plan, no pipeline, no GPU buffer created."""
    m, tm = llama
    ids, mask = prompt()
    rt = get_runtime()
    counts = {"replays": 0, "kernel_submits": 0, "readbacks": 0, "buffers": 0}

    def bump(name):
        counts[name] += 1

    real_encoded, real_submit, real_create = rt.submit_encoded, rt.submit, type(rt.device).create_buffer
    monkeypatch.setattr(rt, "submit_encoded", lambda *a, **k: bump("replays") or real_encoded(*a, **k))
    monkeypatch.setattr(rt, "submit", lambda dispatches, *a, **k: bump(
        "kernel_submits" if dispatches else "readbacks") or real_submit(dispatches, *a, **k))
    monkeypatch.setattr(type(rt.device), "create_buffer",
                        lambda self, *a, **k: bump("buffers") or real_create(self, *a, **k))
    marks = []
    sampling_args = dict(do_sample=True, top_k=20, top_p=0.9, seed=1) if sampled else {}
    tm.generate(ids, attention_mask=mask, max_new_tokens=12, pad_token_id=0, **sampling_args,
                streamer=lambda t: marks.append((dict(debug.stats), dict(counts))))
    assert len(marks) == 12
    (stats2, counts2), (stats_end, counts_end) = marks[2], marks[-1]
    assert stats_end == stats2, "decode steps after the first planned or compiled"
    steps = len(marks) - 1 - 2
    ahead = 1  # the step after token i is queued before token i is yielded
    assert {k: counts_end[k] - counts2[k] for k in counts} == {
        "replays": steps - ahead, "kernel_submits": steps if sampled else 0, "readbacks": 0 if sampled else steps,
        "buffers": 0}


def test_decode_writes_each_new_slot_in_place(llama):
    """Each decode step writes its keys and values into the cache it was fed (donated by the loop), one slot per
    layer: no kernel reads or copies the rest of the cache to place them, and the tokens stay HF's."""
    m, tm = llama
    ids, mask = prompt()
    layers = m.config.num_hidden_layers
    with debug.count_kernels() as c:
        got = tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0)
    np.testing.assert_array_equal(got, hf_generate(m, ids, mask, max_new_tokens=6, pad_token_id=0))
    slots = [n for n in c.names if n.startswith("write_slot")]
    assert len(slots) == 2 * layers * 5 and all(n.endswith("[in_place]") for n in slots), slots
    assert not any("where" in n for n in c.names), c.names


def test_repeated_generate_is_flat(llama, monkeypatch):
    m, tm = llama
    ids, mask = prompt()
    first = tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0)
    tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0)
    rt = get_runtime()
    created = []
    real_create = type(rt.device).create_buffer
    monkeypatch.setattr(type(rt.device), "create_buffer",
                        lambda self, *a, **k: created.append(1) or real_create(self, *a, **k))
    before = dict(debug.stats)
    for _ in range(20):
        np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0), first)
    assert dict(debug.stats) == before
    assert len(created) < 10, f"{len(created)} GPU buffers created in 20 generate calls"


# -- errors -------------------------------------------------------------------------------------------------
def test_processor_settings_errors(llama):
    m, tm = llama
    ids, mask = prompt()
    with pytest.raises(ValueError, match="`penalty` has to be a strictly positive float, but is 0.0"):
        tm.generate(ids, attention_mask=mask, repetition_penalty=0.0)
    with pytest.raises(ValueError, match=r"`min_p` has to be a float in the \[0, 1\] interval, but is 1.5"):
        tm.generate(ids, attention_mask=mask, do_sample=True, min_p=1.5)


def test_unsupported_options_are_named(llama):
    m, tm = llama
    ids, mask = prompt()
    with pytest.raises(NotImplementedError, match=r"num_beam_groups=2.*not supported"):
        tm.generate(ids, attention_mask=mask, num_beams=4, num_beam_groups=2, diversity_penalty=0.5)
    with pytest.raises(NotImplementedError, match=r"encoder_repetition_penalty=1.2, typical_p=0.5 not supported"):
        tm.generate(ids, attention_mask=mask, repetition_penalty=1.3, encoder_repetition_penalty=1.2, typical_p=0.5)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['token_type_ids'\]"):
        tm.generate(ids, attention_mask=mask, token_type_ids=mask)
    with pytest.raises(ValueError, match=r"`temperature` \(=0.0\) has to be a strictly positive float"):
        tm.generate(ids, attention_mask=mask, do_sample=True, temperature=0.0)


def test_unsupported_option_in_generation_config():
    m = hf_model("llama")
    ids, mask = prompt()
    tm = convert(m, ids, mask)
    m.generation_config.typical_p = 0.3
    with pytest.raises(NotImplementedError, match=r"typical_p=0.3 not supported"):
        tm.generate(ids, attention_mask=mask)


def test_length_errors(llama):
    m, tm = llama
    ids, mask = prompt()
    with pytest.raises(ValueError, match=r"7 tokens\) plus max_new_tokens \(58\) is 65 positions, more than the "
                                         r"model's maximum of 64 \(max_position_embeddings\)"):
        tm.generate(ids, attention_mask=mask, max_new_tokens=58)
    with pytest.raises(ValueError, match=r"`max_new_tokens` must be greater than 0, but is 0."):
        tm.generate(ids, attention_mask=mask, max_new_tokens=0)
    with pytest.raises(ValueError, match=r"Input length of input_ids is 7, but `max_length` is set to 5"):
        tm.generate(ids, attention_mask=mask, max_length=5)
    with pytest.raises(ValueError, match=r"attention_mask has shape \[2, 6\], input_ids \[2, 7\]"):
        tm.generate(ids, attention_mask=mask[:, 1:])


def test_cache_too_large_for_the_adapter(llama, use_options):
    m, tm = llama
    ids, mask = prompt()
    use_options(max_binding_size=1000)
    # [2 sequences, 2 KV heads, 64 slots, 8 dims] float32 = 8192 bytes
    with pytest.raises(MemoryError, match=r"KV cache tensor would be 8192 bytes \(\[2, 2, 64, 8\] x 4 bytes\), "
                                          r"more than the adapter's maximum buffer binding size of 1000 bytes"):
        tm.generate(ids, attention_mask=mask, max_new_tokens=4)


def test_cache_size_check_reads_a_heterogeneous_config_per_layer():
    """A config whose layers differ (per_layer_config: Gemma 4's head_dim) raises when read globally: the size
    check reads every layer's value and bounds the largest layer's cache tensor."""
    from tinydl.generation import loop
    cfg = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   head_dim=8, max_position_embeddings=1 << 16)
    cfg.per_layer_config = {1: {"head_dim": 16}}
    # [2^16 sequences, 2 KV heads, 2^14 slots, 16 dims] float32 = 2^37 bytes: past any adapter's binding size
    with pytest.raises(MemoryError, match=r"would be 137438953472 bytes \(\[65536, 2, 16384, 16\] x 4 bytes\)"):
        loop.check_fits(cfg, 1 << 16, 7, 4, 1 << 14, 4)
    cfg = transformers.MistralConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, sliding_window=16)
    cfg.per_layer_config = {1: {"sliding_window": 8}}  # a narrower window on layer 1
    assert loop.sliding_window(cfg, 8) is None
    with pytest.raises(NotImplementedError, match=r"sliding windows that differ by layer \(per_layer_config: "
                                                  r"\[16, 8\]\) are not supported past 8 positions \(got 9\)"):
        loop.sliding_window(cfg, 9)


def test_not_a_causal_lm():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                  intermediate_size=64, attn_implementation="eager")
    ids, mask = prompt()
    tm = convert(transformers.BertModel(cfg).eval(), ids, mask)
    with pytest.raises(TypeError, match="generate needs a converted Hugging Face language model"):
        tm.generate(ids)


@pytest.mark.skipif(not get_runtime().has_f16, reason="adapter lacks shader-f16")
def test_half():
    """After tm.half() the steps run in float16 (the mask in float16's range): HF's float32 tokens, the heads
    being scaled so that float16's rounding does not flip them."""
    m = hf_model("llama")
    ids, mask = prompt()
    tm = convert(m, ids, mask)
    ref = hf_generate(m, ids, mask, max_new_tokens=4, pad_token_id=0)
    tm.half()
    np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, max_new_tokens=4, pad_token_id=0), ref)


def test_model_with_use_cache_converts_without_examples():
    """A config with use_cache=True (HF's default: forward returns its cache object) converts, with or without
    example inputs, and generates HF's tokens (HF's generate then uses its own dynamic cache)."""
    m = hf_model("qwen2", use_cache=True)
    assert m.config.use_cache
    ids, mask = prompt()
    ref = hf_generate(m, ids, mask, max_new_tokens=6, pad_token_id=0)
    for tm in (convert(m, ids, mask), tinydl.from_torch(m)):
        np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0), ref)
    assert m.config.use_cache  # left as it was


def test_one_conversion_serves_other_sizes():
    """The steps are exported with dynamic dims: other batch sizes (>= 2), prompt lengths and cache lengths reuse
    the converted prefill and decode steps (batch 1, which torch.export specializes, gets its own)."""
    m = hf_model("llama", max_position_embeddings=256)
    ids, mask = prompt()
    tm = convert(m, ids, mask)
    for batch, length, new in [(2, 7, 4), (3, 5, 4), (2, 9, 70)]:  # cache lengths 64, 64, 128
        i = np.random.default_rng(batch * length).integers(1, VOCAB, (batch, length))
        ref = hf_generate(m, i, np.ones_like(i), max_new_tokens=new, pad_token_id=0)
        np.testing.assert_array_equal(tm.generate(i, max_new_tokens=new, pad_token_id=0), ref)
    steps = tm._generation_steps.converted
    assert (len(steps["prefill"]), len(steps["decode"])) == (1, 1)
    ref = hf_generate(m, ids[:1], mask[:1], max_new_tokens=3, pad_token_id=0)
    np.testing.assert_array_equal(tm.generate(ids[:1], attention_mask=mask[:1], max_new_tokens=3, pad_token_id=0),
                                  ref)
    assert (len(steps["prefill"]), len(steps["decode"])) == (2, 2)


def test_prompts_of_nearby_lengths_plan_nothing_new(llama):
    """Prompts are left-padded (masked out) to a multiple of loop.PROMPT_BLOCK before their prefill: a new prompt
    length within the block plans and compiles nothing, and the tokens stay HF's (unpadded) ones."""
    m, tm = llama
    rng = np.random.default_rng(5)
    lengths = [3, 9, 20, loop.PROMPT_BLOCK]
    i = rng.integers(1, VOCAB, (2, lengths[0]))
    tm.generate(i, max_new_tokens=5, pad_token_id=0)
    before = dict(debug.stats)
    for length in lengths[1:]:
        i = rng.integers(1, VOCAB, (2, length))
        ref = hf_generate(m, i, np.ones_like(i), max_new_tokens=5, pad_token_id=0)
        np.testing.assert_array_equal(tm.generate(i, max_new_tokens=5, pad_token_id=0), ref)
    assert dict(debug.stats) == before, "a prompt length within the block planned or compiled"
    assert loop.padded_prompt(3, window=None) == loop.PROMPT_BLOCK and loop.padded_prompt(3, window=4) == 3


def test_new_batch_sizes_and_cache_lengths_compile_nothing(use_options):
    """Kernels read the sizes that change between generate calls at run time (schedule/sizes.py; a GPU's default,
    asked for here on lavapipe): once batch, prompt and cache lengths have each varied, new ones of the same size
    classes compile nothing, and the greedy tokens stay HF's."""
    use_options(runtime_sizes=True)
    m = hf_model("llama", max_position_embeddings=512)
    tm = convert(m, *prompt())
    rng = np.random.default_rng(7)

    def run(batch, length, new):
        i = rng.integers(1, VOCAB, (batch, length))
        ref = hf_generate(m, i, np.ones_like(i), max_new_tokens=new, pad_token_id=0)
        np.testing.assert_array_equal(tm.generate(i, max_new_tokens=new, pad_token_id=0), ref)
    # cache lengths 64, 128, 192, 256, 192, 128 (batches up to 4: the decode's GEMMs stay gemvs)
    for shape in [(2, 7, 4), (3, 9, 70), (2, 5, 130), (4, 8, 200), (3, 20, 100), (4, 9, 70)]:
        run(*shape)
    compiled = debug.stats["pipelines"]
    for shape in [(2, 12, 40), (2, 30, 150), (3, 3, 180)]:  # 128, 192, 256
        run(*shape)
    assert debug.stats["pipelines"] == compiled


def test_sliding_window():
    """Mistral's sliding window (every layer) past the window: the mask keeps the last `sliding_window` keys,
    as HF's."""
    m = hf_model("mistral", sliding_window=4)
    ids, mask = prompt()
    ref = hf_generate(m, ids, mask, max_new_tokens=8, pad_token_id=0)
    full = hf_generate(hf_model("mistral", sliding_window=None), ids, mask, max_new_tokens=8, pad_token_id=0)
    assert not np.array_equal(ref, full)  # the window matters
    np.testing.assert_array_equal(convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=8,
                                                                 pad_token_id=0), ref)


def test_sliding_window_on_some_layers_only_is_refused():
    from types import SimpleNamespace

    from tinydl.generation.loop import sliding_window
    mixed = SimpleNamespace(sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    assert sliding_window(mixed, 8) is None  # never reached: nothing to refuse
    with pytest.raises(NotImplementedError, match=r"a sliding window \(8\) on some layers only \(\['full_attention', "
                                                  r"'sliding_attention'\]\) is not supported past 8 positions"):
        sliding_window(mixed, 9)
    assert sliding_window(SimpleNamespace(sliding_window=8, layer_types=["full_attention"]), 20) is None
    assert sliding_window(SimpleNamespace(sliding_window=8), 20) == 8
