"""tm.generate on converted Hugging Face encoder-decoder models (tinydl.generation.seq2seq): the encoder once,
then one replayed decoder step per token with the self- and cross-attention caches on the GPU. Greedy tokens
equal to HF's generate on torch CPU at float32 (a padded batch with a mask), forced BOS/EOS and EOS per
sequence as HF, sampling reproducible, decoding planning nothing after its first steps, and the error cases.

Tiny random configs (HF_HUB_OFFLINE=1), attn_implementation="eager", weights drawn wide (init_std /
initializer_factor) so that the tokens depend on the input and are not one token repeated.
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

transformers.logging.set_verbosity_error()

VOCAB, PROMPT = 100, 7
LAYERS = dict(encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
              encoder_ffn_dim=64, decoder_ffn_dim=64, d_model=32, max_position_embeddings=64)
# architecture -> (model class, config class, config arguments, generate arguments both sides get)
ARCHS = {
    "bart": ("BartForConditionalGeneration", "BartConfig", dict(LAYERS, init_std=0.5),
             dict(eos_token_id=97, forced_eos_token_id=97)),
    "t5": ("T5ForConditionalGeneration", "T5Config",
           dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, initializer_factor=20.0),
           dict(decoder_start_token_id=0)),
    "marian": ("MarianMTModel", "MarianConfig", dict(LAYERS, init_std=0.5, decoder_start_token_id=99,
                                                     pad_token_id=99), dict(eos_token_id=97, forced_eos_token_id=97)),
    "mbart": ("MBartForConditionalGeneration", "MBartConfig", dict(LAYERS, init_std=0.5),
              dict(eos_token_id=97, forced_eos_token_id=97)),
    "m2m100": ("M2M100ForConditionalGeneration", "M2M100Config", dict(LAYERS, init_std=2.0, decoder_start_token_id=2),
               dict(eos_token_id=97)),
    # mixture of experts with expert capacity; its model reads the encoder's output as .last_hidden_state
    "nllb_moe": ("NllbMoeForConditionalGeneration", "NllbMoeConfig", dict(LAYERS, init_std=1.0, num_experts=4,
                                                                          expert_capacity=8), dict(eos_token_id=97)),
}


def hf_model(arch, seed=0):
    torch.manual_seed(seed)
    model_cls, config_cls, args, _ = ARCHS[arch]
    cfg = getattr(transformers, config_cls)(vocab_size=VOCAB, attn_implementation="eager", **args)
    return getattr(transformers, model_cls)(cfg).eval()


def prompt():
    """Two sequences, the second with 2 padding positions masked out."""
    ids = np.random.default_rng(0).integers(3, 90, (2, PROMPT))
    mask = np.ones((2, PROMPT), np.int64)
    mask[1, :2] = 0
    return ids, mask


def hf_generate(m, ids, mask, **kwargs):
    with torch.no_grad():
        return m.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), **kwargs).numpy()


@pytest.fixture(scope="module")
def bart():
    m = hf_model("bart")
    return m, tinydl.from_torch(m)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_greedy_matches_hf(arch):
    m = hf_model(arch)
    ids, mask = prompt()
    kwargs = dict(ARCHS[arch][3], max_new_tokens=10, do_sample=False)
    ref = hf_generate(m, ids, mask, **kwargs)
    assert len(set(ref[:, 1:].ravel())) > 2 and not np.array_equal(ref[0], ref[1])  # not a degenerate run
    use_cache = [mod.config.use_cache for mod in m.modules() if hasattr(mod, "config")]
    tm = tinydl.from_torch(m)  # no example inputs: HF's dummy inputs (T5's decoder: use_cache=True, own config)
    out = tm.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), **kwargs)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), ref)
    assert [mod.config.use_cache for mod in m.modules() if hasattr(mod, "config")] == use_cache  # restored


def test_mask_is_applied(bart):
    m, tm = bart
    ids, mask = prompt()
    kwargs = ARCHS["bart"][3]
    masked = tm.generate(ids, attention_mask=mask, max_new_tokens=6, **kwargs)
    unmasked = tm.generate(ids, attention_mask=np.ones_like(mask), max_new_tokens=6, **kwargs)
    np.testing.assert_array_equal(masked[0], unmasked[0])
    assert not np.array_equal(masked[1], unmasked[1])


def test_forced_tokens_and_eos_per_sequence_as_hf(bart):
    m, tm = bart
    ids, mask = prompt()
    free = hf_generate(m, ids, mask, max_new_tokens=8, eos_token_id=97)
    eos = int(free[0, 3])  # the first sequence ends at its third new token
    for kwargs in (dict(max_new_tokens=8, eos_token_id=eos, pad_token_id=1),  # EOS per sequence, then padding
                   dict(max_new_tokens=5, eos_token_id=97, forced_bos_token_id=7, forced_eos_token_id=96),
                   dict(max_new_tokens=5, eos_token_id=97, forced_eos_token_id=[96, 95])):
        ref = hf_generate(m, ids, mask, **kwargs)
        np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, **kwargs), ref)
    out = tm.generate(ids, attention_mask=mask, max_new_tokens=5, eos_token_id=97, forced_bos_token_id=7,
                      forced_eos_token_id=96)
    assert (out[:, 1] == 7).all() and (out[:, -1] == 96).all()


def test_encoder_no_repeat_ngram_size_as_hf(bart):
    """encoder_no_repeat_ngram_size bans what would repeat an n-gram of the encoder's input ids (Blenderbot's
    generation settings set it)."""
    m, tm = bart
    rng = np.random.default_rng(1)
    ids = np.stack([rng.permutation(np.arange(3, 90))[:40] for _ in range(2)])  # inputs holding many tokens
    ids[:, 10:12] = 14  # and the bigram the free run repeats
    mask = np.ones_like(ids)
    kwargs = dict(ARCHS["bart"][3], max_new_tokens=8)
    for n in (1, 2):
        ref = hf_generate(m, ids, mask, encoder_no_repeat_ngram_size=n, **kwargs)
        assert not np.array_equal(ref, hf_generate(m, ids, mask, **kwargs))  # the option matters
        np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, encoder_no_repeat_ngram_size=n,
                                                  **kwargs), ref)


def test_decoder_prefix_as_hf(bart):
    """decoder_input_ids start the decoder (the start token put in front when no row begins with it, as HF)."""
    m, tm = bart
    ids, mask = prompt()
    start = m.generation_config.decoder_start_token_id
    for prefix in ([[5, 6], [7, 8]], [[start, 9, 10], [start, 11, 12]]):
        kwargs = dict(ARCHS["bart"][3], max_new_tokens=5, decoder_input_ids=torch.tensor(prefix))
        ref = hf_generate(m, ids, mask, **kwargs)
        np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, **kwargs), ref)
    with pytest.raises(NotImplementedError, match="decoder_attention_mask with padding"):
        tm.generate(ids, attention_mask=mask, decoder_input_ids=np.array([[5, 6], [7, 8]]),
                    decoder_attention_mask=np.array([[1, 1], [0, 1]]))


def test_sampling_reproducible_and_streamed(bart):
    m, tm = bart
    ids, mask = prompt()
    kwargs = dict(max_new_tokens=6, do_sample=True, top_k=20, eos_token_id=97, forced_eos_token_id=None)
    a = tm.generate(ids, attention_mask=mask, seed=3, **kwargs)
    np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, seed=3, **kwargs), a)
    streamed = list(generation.stream(tm, ids, attention_mask=mask, seed=3, **kwargs))
    np.testing.assert_array_equal(np.stack(streamed, 1), a[:, 1:])
    assert (a[:, 0] == m.generation_config.decoder_start_token_id).all()


def test_decoding_plans_nothing_new(bart):
    """After the first decoder steps, each step replays: no plan and no pipeline made."""
    m, tm = bart
    ids, mask = prompt()
    marks = []
    tm.generate(ids, attention_mask=mask, max_new_tokens=10, eos_token_id=97,
                streamer=lambda t: marks.append(dict(debug.stats)))
    assert len(marks) == 10 and marks[3] == marks[-1], "decoder steps after the first planned or compiled"


def test_errors(bart):
    m, tm = bart
    ids, mask = prompt()
    with pytest.raises(ValueError, match=r"the decoder's first tokens \(1\) plus max_new_tokens \(64\) is 65 positions, "
                                         r"more than the model's maximum of 64 \(max_position_embeddings\)"):
        tm.generate(ids, attention_mask=mask, max_new_tokens=64)
    with pytest.raises(NotImplementedError, match=r"encoder_repetition_penalty=1.5.*not supported"):
        tm.generate(ids, attention_mask=mask, num_beams=4, encoder_repetition_penalty=1.5)
    t5 = hf_model("t5")  # HF's own T5 config sets no decoder start in its generation settings: HF raises too
    with pytest.raises(ValueError, match="`decoder_start_token_id` or `bos_token_id` has to be defined"):
        tinydl.from_torch(t5).generate(ids, attention_mask=mask, max_new_tokens=2)
