"""generate on models whose layers keep recurrent or convolution states (state-space and linear-attention layers,
alone or beside attention): the states live on the GPU as step inputs and outputs next to the keys and values,
against HF's generate with its cache on torch CPU (greedy and beam search, left-padded batch); and the functional
cache's answers to HF's linear-attention cache calls, on torch alone."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tinydl.interop.torchvision_compat import import_torchvision  # noqa: E402

import_torchvision()

import transformers  # noqa: E402

import tinydl  # noqa: E402
from tinydl.debug import stats  # noqa: E402
from tinydl.generation import step  # noqa: E402
from tinydl.generation.states import model_masks  # noqa: E402

transformers.logging.set_verbosity_error()

VOCAB, PROMPT = 100, 7
COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, initializer_range=0.2,
              use_cache=True, tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)
ATTENTION = dict(num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                 attn_implementation="eager")
# name -> (config class, model class, config arguments, the cache tensors a decode step takes)
MODELS = {
    # recurrent layers only: a conv and a recurrent state per layer
    "mamba": ("MambaConfig", "MambaForCausalLM", dict(time_step_rank=2, state_size=8),
              [("conv", 0, 0), ("conv", 1, 0), ("recurrent", 0, 0), ("recurrent", 1, 0)]),
    # a gated-delta-rule layer beside an attention layer
    "qwen3_next": ("Qwen3NextConfig", "Qwen3NextForCausalLM",
                   dict(ATTENTION, head_dim=8, moe_intermediate_size=32, num_experts_per_tok=2, num_experts=4,
                        layer_types=["linear_attention", "full_attention"]),
                   [("kv", 1), ("conv", 0, 0), ("recurrent", 0, 0)]),
    # a hybrid layer: attention and a state-space mixer in one layer (keys, values and states of layer 1)
    "zamba": ("ZambaConfig", "ZambaForCausalLM",
              dict(ATTENTION, attention_hidden_size=64, attention_head_dim=16, mamba_dt_rank=2,
                   layers_block_type=["linear_attention", "hybrid"]),
              [("kv", 1), ("conv", 0, 0), ("conv", 1, 0), ("recurrent", 0, 0), ("recurrent", 1, 0)]),
}


def hf_model(name):
    cfg_name, cls_name, args, _ = MODELS[name]
    torch.manual_seed(0)
    m = getattr(transformers, cls_name)(getattr(transformers, cfg_name)(**{**COMMON, **args})).eval()
    with torch.no_grad():
        m.get_output_embeddings().weight.mul_(20)  # float noise must not decide the argmax
    return m


def prompt():
    """Ids and a left-padded mask: the second sequence has 3 padding tokens (id 0) in front."""
    ids = np.random.default_rng(0).integers(3, VOCAB, (2, PROMPT))
    mask = np.ones((2, PROMPT), np.int64)
    mask[1, :3], ids[1, :3] = 0, 0
    return ids, mask


def hf_generate(m, ids, mask, **kwargs):
    with torch.no_grad():
        return m.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), do_sample=False,
                          pad_token_id=0, **kwargs).numpy()


@pytest.fixture(scope="module", params=list(MODELS))
def converted(request):
    m = hf_model(request.param)
    ids, mask = prompt()
    tm = tinydl.from_torch(m, example_inputs=((torch.from_numpy(ids),), {"attention_mask": torch.from_numpy(mask)}))
    return request.param, m, tm


def test_greedy_matches_hf_with_states_on_the_gpu(converted):
    """HF's tokens, from one state prefill and one replayed state decode step (never the whole sequence again);
    the decode step takes the keys and values of the attention layers and every layer's states."""
    name, m, tm = converted
    ids, mask = prompt()
    ref = hf_generate(m, ids, mask, max_new_tokens=8)
    assert len(set(ref[:, PROMPT:].ravel())) > 2  # not a degenerate run
    np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, max_new_tokens=8, pad_token_id=0), ref)
    steps = tm.__dict__["_generation_steps"]
    assert steps.cache_kind == step.STATE and steps.cache_refused is None
    assert {k: len(v) for k, v in steps.converted.items() if v} == {step.STATE_PREFILL: 1, step.STATE_DECODE: 1}
    assert steps.layout == MODELS[name][3]
    plans = stats["plans"]
    again = np.random.default_rng(1).integers(3, VOCAB, ids.shape) * mask
    np.testing.assert_array_equal(tm.generate(again, attention_mask=mask, max_new_tokens=8, pad_token_id=0),
                                  hf_generate(m, again, mask, max_new_tokens=8))
    assert stats["plans"] == plans  # the same shapes: nothing planned (or compiled) again


def test_one_prefill_takes_every_prompt_length(converted):
    """Mamba's scan exports as one recurrence (interop/recurrences.py), not a loop unrolled to the example's
    length: longer and shorter prompts run the prefill converted first."""
    name, m, tm = converted
    _one_prefill_for_every_length(m, tm, (PROMPT + 9, PROMPT - 2), max_new_tokens=4)


def _one_prefill_for_every_length(m, tm, lengths, max_new_tokens):
    """tm generates HF's tokens for prompts of these lengths, all through the prefill step converted first."""
    for length in lengths:
        ids = np.random.default_rng(length).integers(3, VOCAB, (2, length))
        mask = np.ones_like(ids)
        np.testing.assert_array_equal(
            tm.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, pad_token_id=0),
            hf_generate(m, ids, mask, max_new_tokens=max_new_tokens))
    assert len(tm.__dict__["_generation_steps"].converted[step.STATE_PREFILL]) == 1


def test_the_generation_steps_export_without_a_time_budget(use_options):
    """Options.export_budget_s limits from_torch's own export, never a generation step's: the step keeps its
    lengths dynamic however long torch takes, so one prefill takes every length."""
    use_options(export_budget_s=0.0)
    m = hf_model("mamba")
    ids, mask = prompt()
    with pytest.warns(UserWarning, match=r"ran past 0 s: Options.export_budget_s"):
        tm = tinydl.from_torch(m, example_inputs=((torch.from_numpy(ids),), {"attention_mask": torch.from_numpy(mask)}))
    _one_prefill_for_every_length(m, tm, (PROMPT + 5, PROMPT - 2), max_new_tokens=3)


def test_beam_search_moves_the_states_with_their_beams():
    m = hf_model("mamba")
    ids, mask = prompt()
    tm = tinydl.from_torch(m, example_inputs=((torch.from_numpy(ids),), {"attention_mask": torch.from_numpy(mask)}))
    ref = hf_generate(m, ids, mask, max_new_tokens=6, num_beams=3)
    np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, max_new_tokens=6, num_beams=3,
                                              pad_token_id=0), ref)


# -- the functional cache's state calls, on torch alone ------------------------------------------------------
def test_a_prefill_leaves_the_last_kernel_columns_padded_on_the_left():
    cache = step.torch_classes()[0](None, torch.zeros(1, dtype=torch.long))
    short = torch.arange(6.0).reshape(1, 2, 3)
    full = cache.update_conv_state(short, 0, conv_kernel_size=4)
    assert torch.equal(full, torch.nn.functional.pad(short, (1, 0))) and torch.equal(cache.states["conv", 0, 0], full)
    long = torch.arange(12.0).reshape(1, 2, 6)
    assert torch.equal(cache.update_conv_state(long, 1, conv_kernel_size=4), long)
    assert torch.equal(cache.states["conv", 1, 0], long[..., -4:])
    history = [torch.ones(1, 2), torch.full((1, 2), 3.0)]
    assert cache.update_recurrent_state(history, 0) is history[-1]  # a list of states: the last one is kept
    assert cache.get_conv_state(0) is None and cache.get_recurrent_state(0) is None
    assert not cache.has_previous_state() and cache.get_seq_length() == 0
    assert cache.new_layout() == [("conv", 0, 0), ("conv", 1, 0), ("recurrent", 0, 0)]


def test_a_decode_step_changes_copies_of_its_states():
    """A state the model changes in place (causal_conv1d_update) is a copy, which the step then returns; the
    inputs are not touched; a state read but not handed back is returned as the model left it."""
    layout = [("kv", 1), ("conv", 0, 0), ("recurrent", 0, 0)]
    k, v, conv, rec = torch.zeros(1, 2, 8, 4), torch.zeros(1, 2, 8, 4), torch.ones(1, 3, 4), torch.ones(1, 2)
    cache = step.torch_classes()[0]((k, v, conv, rec), torch.tensor([5]), layout=layout)
    state = cache.get_conv_state(0)
    state.mul_(2)
    assert torch.equal(conv, torch.ones(1, 3, 4)) and torch.equal(cache.states["conv", 0, 0], 2 * conv)
    cache.get_recurrent_state(0).add_(1)
    assert torch.equal(cache.states["recurrent", 0, 0], rec + 1)
    new_k, _ = cache.update(torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4), 1)
    assert torch.equal(new_k[:, :, 5], torch.ones(1, 2, 4)) and new_k[:, :, :5].abs().sum() == 0
    assert cache.has_previous_state() and cache.get_seq_length() == 8 and cache.get_mask_sizes(1) == (8, 0)
    assert cache.get_query_offset() == 5  # the new token's position (the length is the cache's)


def test_older_mamba_code_reads_its_states_through_the_layer_objects():
    """transformers before 5.25 (Mamba: `cache_params`, `cache_params.layers[i].conv_states[0]`, `.record_past`):
    the functional cache's layers show the same copies; anything else a layer is asked for is refused by name."""
    layout = [("conv", 0, 0), ("recurrent", 0, 0)]
    conv, rec = torch.ones(1, 3, 4), torch.ones(1, 3, 2)
    cache = step.torch_classes()[0]((conv, rec), torch.tensor([5]), layout=layout)
    layer = cache.layers[0]
    assert layer.record_past is False
    layer.conv_states[0].mul_(3)
    layer.recurrent_states[0].add_(1)
    assert torch.equal(cache.states["conv", 0, 0], 3 * conv) and torch.equal(cache.states["recurrent", 0, 0], rec + 1)
    assert torch.equal(conv, torch.ones(1, 3, 4))  # the step's inputs are not touched
    with pytest.raises(step.ReadsCacheState, match="reads the cache's layer objects"):
        layer.keys
    with pytest.raises(step.ReadsCacheState):
        cache.layers[0:1]
    assert step.cache_argument({"input_ids": 0, "cache_params": 0}) == "cache_params"
    assert step.cache_argument({"input_ids": 0}) is None
    assert cache.new_layout() == layout
    with pytest.raises(NotImplementedError, match=r"the model read a conv state of layer 3 that its prefill did not "
                                                  r"leave \(states left: \[\('conv', 0, 0\), \('recurrent', 0, 0\)\]"):
        cache.get_conv_state(3)


def test_the_masks_a_state_model_takes():
    """Recurrent layers: the 2-D padding mask of the new tokens (none for one token); attention layers: the 4-D
    additive mask; a hybrid gets both as a dict by layer type, a model of recurrent layers only the 2-D mask."""
    from types import SimpleNamespace
    additive, padding = torch.zeros(2, 1, 5, 5), torch.ones(2, 5, dtype=torch.long)
    hybrid = SimpleNamespace(layer_types=["linear_attention", "full_attention"])
    masks = model_masks(hybrid, additive, padding, 5)
    assert masks["linear_attention"] is padding and masks["conv"] is padding and masks["full_attention"] is additive
    assert model_masks(hybrid, additive, padding, 1)["linear_attention"] is None
    recurrent_only = SimpleNamespace(layer_types=["linear_attention"] * 2)
    assert model_masks(recurrent_only, additive, padding, 5) is padding
    assert model_masks(recurrent_only, additive, padding[:, :1], 1) is None
