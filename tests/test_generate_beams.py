"""Beam search (generation/beam.py): the sequences equal Hugging Face's generate with num_beams > 1 on torch CPU
(length penalty, early stopping, several returned sequences, EOS, HF's processors on log-probabilities, forced
tokens), for causal LMs (left-padded batches) and encoder-decoders; the errors HF gives."""
import numpy as np
import pytest

import test_generate as causal
import test_generate_seq2seq as seq2seq
import tinydl

CASES = {
    "beams": dict(num_beams=3),
    "returned": dict(num_beams=4, length_penalty=0.5, num_return_sequences=2),
    "early_stopping": dict(num_beams=3, early_stopping=True),
    "never": dict(num_beams=2, early_stopping="never", length_penalty=2.0),
    "processors": dict(num_beams=3, repetition_penalty=1.5, min_new_tokens=3, no_repeat_ngram_size=2,
                       encoder_no_repeat_ngram_size=2),
}


@pytest.fixture(scope="module")
def llama():
    m = causal.hf_model("llama")
    return m, causal.convert(m, *causal.prompt())


@pytest.mark.parametrize("case", list(CASES))
def test_causal_beams_match_hf(llama, case):
    m, tm = llama
    ids, mask = causal.prompt()
    free = causal.hf_generate(m, ids, mask, max_new_tokens=8, pad_token_id=0)
    kwargs = dict(max_new_tokens=8, pad_token_id=0, eos_token_id=int(free[0, causal.PROMPT + 2]), **CASES[case])
    ref = causal.hf_generate(m, ids, mask, **kwargs)
    np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, **kwargs), ref)


def test_early_stopping_ends_the_search_early(llama):
    """With an EOS every beam reaches early, HF stops before max_new_tokens: so does the loop."""
    m, tm = llama
    ids, mask = causal.prompt()
    free = causal.hf_generate(m, ids, mask, max_new_tokens=8, pad_token_id=0)
    kwargs = dict(max_new_tokens=8, pad_token_id=0, eos_token_id=int(free[0, causal.PROMPT + 2]), num_beams=3,
                  early_stopping=True)
    out = tm.generate(ids, attention_mask=mask, **kwargs)
    assert out.shape[1] < causal.PROMPT + 8
    np.testing.assert_array_equal(out, causal.hf_generate(m, ids, mask, **kwargs))


@pytest.mark.parametrize("arch", ["bart", "t5", "marian"])
@pytest.mark.parametrize("case", ["beams", "returned", "processors"])
def test_encoder_decoder_beams_match_hf(arch, case):
    m = seq2seq.hf_model(arch)
    ids, mask = seq2seq.prompt()
    kwargs = dict(seq2seq.ARCHS[arch][3], max_new_tokens=10, **CASES[case])
    ref = seq2seq.hf_generate(m, ids, mask, **kwargs)
    np.testing.assert_array_equal(tinydl.from_torch(m).generate(ids, attention_mask=mask, **kwargs), ref)


def test_beam_errors(llama):
    m, tm = llama
    ids, mask = causal.prompt()
    with pytest.raises(ValueError, match=r"`streamer` cannot be used with beam search \(yet!\)"):
        tm.generate(ids, attention_mask=mask, num_beams=2, streamer=lambda t: None)
    with pytest.raises(ValueError, match=r"`num_return_sequences` \(3\) has to be smaller or equal to `num_beams` \(2\)"):
        tm.generate(ids, attention_mask=mask, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="Greedy methods .* do not support `num_return_sequences` different than 1"):
        tm.generate(ids, attention_mask=mask, num_return_sequences=2)
    with pytest.raises(NotImplementedError, match=r"num_beams=2 with do_sample=True \(beam sampling\)"):
        tm.generate(ids, attention_mask=mask, num_beams=2, do_sample=True)
    with pytest.raises(ValueError, match="`streamer` cannot be used with beam search"):
        next(tinydl.generation.stream(tm, ids, attention_mask=mask, num_beams=2))
