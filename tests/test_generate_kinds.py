"""generate on causal LMs whose generation differs from the cached, position-id-driven common case, each against
HF's generate on torch CPU (greedy, left-padded batch):

- models that place tokens from the cache's length (their forward takes no position_ids: BART's, Blenderbot's
  decoders as causal LMs): left padding counts as positions there, as in HF;
- models that keep no cache (OpenAI GPT; an encoder's LM head without is_decoder, which attends both ways): HF
  runs the whole sequence again each token, and so does tinydl, replaying one plan;
- models that attend both ways and keep a cache (BigBird without is_decoder): with use_cache=True the prompt is
  prefilled both ways and each new token attends to the cache; with use_cache=False the whole sequence runs again.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tinydl.interop.torchvision_compat import import_torchvision  # noqa: E402

import_torchvision()

import transformers  # noqa: E402

import tinydl  # noqa: E402
from tinydl import debug  # noqa: E402
from tinydl.generation import step  # noqa: E402

transformers.logging.set_verbosity_error()

VOCAB, PROMPT = 100, 7
BART = dict(d_model=32, decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=64, encoder_layers=1,
            encoder_attention_heads=4, encoder_ffn_dim=64, max_position_embeddings=64)
BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64)
# name -> (config class, model class, config arguments[, seed: one whose greedy run is not degenerate])
MODELS = {
    "bart": ("BartConfig", "BartForCausalLM", BART),
    "blenderbot": ("BlenderbotConfig", "BlenderbotForCausalLM", BART),
    "openai_gpt": ("OpenAIGPTConfig", "OpenAIGPTLMHeadModel", dict(n_embd=32, n_layer=2, n_head=4, n_positions=64)),
    "bert_bidirectional": ("BertConfig", "BertLMHeadModel", dict(BERT, is_decoder=False), 1),
    "roberta_bidirectional": ("RobertaConfig", "RobertaForCausalLM", dict(BERT, is_decoder=False, pad_token_id=1), 2),
    "bert_decoder": ("BertConfig", "BertLMHeadModel", dict(BERT, is_decoder=True), 1),
    "big_bird_bidirectional": ("BigBirdConfig", "BigBirdForCausalLM",
                               dict(BERT, is_decoder=False, attention_type="original_full")),
    # they read the cache's length as a number (MVP's learned positions from an arange, MPT's ALiBi slices)
    "mvp": ("MvpConfig", "MvpForCausalLM", dict(BART, encoder_layers=2)),  # (HF sizes its cache by encoder_layers)
    "mpt": ("MptConfig", "MptForCausalLM", dict(d_model=32, n_layers=2, n_heads=4, max_seq_len=64)),
}


def hf_model(name):
    cfg_name, cls_name, args, *seed = MODELS[name]
    torch.manual_seed(seed[0] if seed else 0)
    cfg = getattr(transformers, cfg_name)(**{**dict(vocab_size=VOCAB, initializer_range=0.2, use_cache=False,
                                                    attn_implementation="eager", tie_word_embeddings=False), **args})
    m = getattr(transformers, cls_name)(cfg).eval()
    with torch.no_grad():
        m.get_output_embeddings().weight.mul_(20)
    return m


def prompt():
    ids = np.random.default_rng(0).integers(3, VOCAB, (2, PROMPT))
    mask = np.ones((2, PROMPT), np.int64)
    mask[1, :3] = 0
    ids[1, :3] = 0
    return ids, mask


def convert(m, ids, mask):
    return tinydl.from_torch(m, example_inputs=((torch.from_numpy(ids),), {"attention_mask": torch.from_numpy(mask)}))


def greedy(m, ids, mask, **kwargs):
    with torch.no_grad():
        ref = m.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=8,
                         do_sample=False, pad_token_id=0, **kwargs).numpy()
    assert len(set(ref[:, PROMPT:].ravel())) > 2  # not a degenerate run
    return ref


@pytest.mark.parametrize("name", MODELS)
def test_greedy_matches_hf(name):
    """The configs say use_cache=False: what HF's generate then does decides the tokens of the models that attend
    both ways (for the others it changes nothing)."""
    m = hf_model(name)
    ids, mask = prompt()
    ref = greedy(m, ids, mask)
    out = convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False,
                                         pad_token_id=0)
    np.testing.assert_array_equal(out, ref)


def test_both_ways_with_a_cache_matches_hf():
    """use_cache=True: BigBird's prompt keys are computed once, both ways, and kept (other tokens than without)."""
    m = hf_model("big_bird_bidirectional")
    ids, mask = prompt()
    ref = greedy(m, ids, mask, use_cache=True)
    assert not np.array_equal(ref, greedy(m, ids, mask, use_cache=False))
    out = convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False,
                                         pad_token_id=0, use_cache=True)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("name, kind, both_ways", [
    ("bert_decoder", "kept", False), ("bert_bidirectional", "dropped", True), ("openai_gpt", "none", False),
    ("bart", "kept", False), ("big_bird_bidirectional", "kept", True)])
def test_cache_kind_and_direction(name, kind, both_ways):
    m = hf_model(name)
    assert step.cache_kind(m) == kind
    assert step.attends_both_ways(m) is both_ways


def test_a_dropped_cache_with_use_cache_is_refused():
    """A model that takes a cache and returns none would, with use_cache=True, see only its newest token each step
    in HF's generate: refused by name, with the ways out."""
    m = hf_model("bert_bidirectional")
    ids, mask = prompt()
    with pytest.raises(NotImplementedError, match=r"BertLMHeadModel takes a cache but returns none .* pass "
                                                  r"use_cache=False .* or set config.is_decoder=True"):
        convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=2, pad_token_id=0, use_cache=True)


def test_without_cache_tokens_replay_one_plan():
    """Each token of a model without a cache runs the same shapes: nothing is planned or compiled after the
    first token, however many follow."""
    m = hf_model("openai_gpt")
    ids, mask = prompt()
    tm = convert(m, ids, mask)
    marks = []
    tm.generate(ids, attention_mask=mask, max_new_tokens=10, pad_token_id=0,
                streamer=lambda t: marks.append(dict(debug.stats)))
    assert len(marks) == 10 and marks[-1] == marks[1]


def test_without_cache_positions_limit():
    m = hf_model("openai_gpt")
    ids, mask = prompt()
    with pytest.raises(ValueError, match=r"plus max_new_tokens \(60\) is 67 positions, more than the model's "
                                         r"maximum of 64 \(max_position_embeddings\)"):
        convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=60, pad_token_id=0)


def test_a_model_with_a_cache_class_of_its_own_runs_the_whole_sequence():
    """MiniMax's linear-attention layers keep a state in a cache class of its own and refuse any other: generate
    says so, naming the model, and runs the whole sequence each token (HF's tokens)."""
    cfg = transformers.MiniMaxConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, head_dim=8, vocab_size=VOCAB, num_local_experts=2,
                                     num_experts_per_tok=1, max_position_embeddings=64, attn_implementation="eager")
    torch.manual_seed(0)
    m = transformers.MiniMaxForCausalLM(cfg).eval()
    with torch.no_grad():
        m.get_output_embeddings().weight.mul_(20)
    assert step.cache_kind(m) == step.FOREIGN
    ids, mask = prompt()
    ref = greedy(m, ids, mask, use_cache=True)
    with pytest.warns(UserWarning, match=r"MiniMaxForCausalLM keeps its state in a cache of its own \(its class, or "
                                         r"its layer objects read directly\), which tinydl's cache does not stand in "
                                         r"for; each token runs the whole sequence instead"):
        out = convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=8, pad_token_id=0)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("name", ["mvp", "mpt"])
def test_a_cache_length_read_as_a_number_runs_the_whole_sequence_each_token(name):
    """A model that places its tokens from the cache's length and reads it as a Python number cannot take the
    step's slot as a tensor: its cached decode step does not convert, so generate says so and runs the whole
    sequence each token (HF's use_cache=False path), with HF's use_cache=True tokens, on later calls too."""
    m = hf_model(name)
    ids, mask = prompt()
    ref = greedy(m, ids, mask, use_cache=True)
    tm = convert(m, ids, mask)
    with pytest.warns(UserWarning, match=f"{type(m).__name__}'s cached decode step did not convert .* each token "
                                         f"runs the whole sequence instead"):
        out = tm.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0,
                          use_cache=True)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False,
                                              pad_token_id=0, use_cache=True), ref)


def test_a_model_generating_from_inputs_of_its_own_is_refused_by_name():
    """XLNet's generate appends a dummy token and feeds perm_mask and target_mapping (its prepare_inputs_for_
    generation): generate refuses it, naming those inputs, rather than return other tokens than HF's."""
    cfg = transformers.XLNetConfig(vocab_size=VOCAB, d_model=32, n_layer=2, n_head=4, d_inner=64)
    m = transformers.XLNetLMHeadModel(cfg).eval()
    assert step.own_generation_inputs(m) == ("perm_mask, target_mapping, input_ids of shape [1, 4] for a prompt "
                                              "of [1, 3]")
    ids, mask = prompt()
    with pytest.raises(NotImplementedError, match=r"XLNetLMHeadModel generates from inputs of its own \(its "
                                                  r"prepare_inputs_for_generation gives perm_mask, target_mapping"):
        convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=2, pad_token_id=0)
    assert step.own_generation_inputs(hf_model("openai_gpt")) is None  # an override that passes the plain inputs


def test_a_model_that_reads_padding_from_its_ids_is_refused_where_buffers_are_padded():
    """CPM-Ant ignores attention_mask and finds padding in its ids: the whole-sequence path's right-padded buffers
    would change its logits, so generate refuses it by name (its cached step does not convert either: it reads the
    cache's length as a number) rather than give other tokens than HF's."""
    cfg = transformers.CpmAntConfig(vocab_size=VOCAB, hidden_size=32, num_attention_heads=4, dim_head=8, dim_ff=64,
                                    num_hidden_layers=2, prompt_length=4, init_std=0.2)
    torch.manual_seed(0)
    m = transformers.CpmAntForCausalLM(cfg).eval()
    assert not step.masks_right_padding(m)
    assert step.masks_right_padding(hf_model("openai_gpt"))
    assert step.masks_right_padding(hf_model("bert_bidirectional"))
    ids, mask = prompt()
    with pytest.raises(NotImplementedError, match=r"CpmAntForCausalLM's cached decode step did not convert \(.*\), "
                                                  r"and the whole sequence cannot run each token instead: its logits "
                                                  r"change with padding that attention_mask masks out"):
        convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=4, pad_token_id=0)


def test_the_whole_sequence_path_refuses_a_model_that_does_not_mask_its_padding(monkeypatch):
    from tinydl.generation import loop
    m = hf_model("openai_gpt")
    ids, mask = prompt()
    monkeypatch.setattr(loop.Steps, "masks_right_padding", False)  # as step.masks_right_padding finds CPM-Ant
    with pytest.raises(NotImplementedError, match=r"OpenAIGPTLMHeadModel runs the whole sequence each token here, "
                                                  r"and its logits change with padding after the sequence"):
        convert(m, ids, mask).generate(ids, attention_mask=mask, max_new_tokens=2, pad_token_id=0)
