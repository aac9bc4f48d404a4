"""Dynamic shapes on the torch.export path: one from_torch conversion, then calls with other batch sizes and
sequence lengths, each equal to torch; the errors where a dim is static or outside the exported range; torch's
own dynamic_shapes spec passed through; Hugging Face models converted without example inputs.

Models are random-init tiny configs (no network: HF_HUB_OFFLINE=1), attn_implementation="eager", in eval mode,
initializer_range raised from HF's 0.02 so that activations are O(1) and the 1e-4 tolerances mean something.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import math  # noqa: E402
import operator  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tinydl.interop.torchvision_compat import import_torchvision  # noqa: E402

import_torchvision()  # before transformers, which may import torchvision

import transformers  # noqa: E402

import tinydl  # noqa: E402
from tinydl.interop import registry  # noqa: E402
from tinydl.testing import assert_close  # noqa: E402
from test_models_transformers import EAGER, VOCAB, _tiny_bert  # noqa: E402 - the same tiny configs

transformers.logging.set_verbosity_error()

# (batch, length) of the calls after one conversion: smaller and larger than the example, both dims changing
SHAPES = [(2, 12), (3, 7), (2, 20), (4, 5)]


def _ids(rng, batch, seq):
    return torch.from_numpy(rng.integers(0, VOCAB, (batch, seq)).astype(np.int64))


def _padded_mask(batch, seq):
    """Right padding: the last sequence has 3 padding tokens."""
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[-1, seq - 3:] = 0
    return mask


def _check_calls(rng, m, tm, key, shapes=SHAPES, **extra):
    """tm called with ids and a padded mask of each shape (and extra inputs built from the ids) equals torch."""
    for batch, seq in shapes:
        ids, mask = _ids(rng, batch, seq), _padded_mask(batch, seq)
        kwargs = {k: f(ids) for k, f in extra.items()}
        with torch.no_grad():
            ref = m(input_ids=ids, attention_mask=mask, **kwargs)
        out = tm(input_ids=tinydl.tensor(ids), attention_mask=tinydl.tensor(mask),
                 **{k: tinydl.tensor(v) for k, v in kwargs.items()})
        assert out[key].shape == tuple(ref[key].shape)
        assert_close(out[key], ref[key], rtol=1e-4, atol=1e-4)


def _gpt2(n_layer=2):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=n_layer, n_head=4,
                                  use_cache=False, initializer_range=0.2, **EAGER)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _convert_with_mask(rng, m, batch=2, seq=8):
    ids = _ids(rng, batch, seq)
    return tinydl.from_torch(m, example_inputs={"input_ids": ids, "attention_mask": _padded_mask(batch, seq)})


# -- Hugging Face models: one conversion, many shapes -------------------------------------------------------
def test_gpt2_any_batch_and_length(rng):
    m = _gpt2()
    tm = _convert_with_mask(rng, m)
    _check_calls(rng, m, tm, "logits")
    # the padding matters (so the comparisons above check that the mask is applied at every shape): the padded
    # sequence's last position attends to fewer tokens
    ids = _ids(rng, 3, 7)
    with torch.no_grad():
        padded, full = m(ids, attention_mask=_padded_mask(3, 7)).logits, m(ids).logits
    assert not torch.allclose(padded[-1, -1], full[-1, -1], atol=1e-3)


def test_llama_gqa_rope_any_batch_and_length(rng):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                                   use_cache=False, initializer_range=0.2, **EAGER)
    m = transformers.LlamaForCausalLM(cfg).eval()
    _check_calls(rng, m, _convert_with_mask(rng, m), "logits")


def test_bert_any_batch_and_length_within_its_positions(rng):
    m = _tiny_bert()
    tm = _convert_with_mask(rng, m)
    _check_calls(rng, m, tm, "last_hidden_state")
    _check_calls(rng, m, tm, "pooler_output", shapes=[(3, 32)])  # the longest its position embeddings allow
    # torch.export found the length bounded by max_position_embeddings: the range is in the error
    with pytest.raises(RuntimeError, match=r"argument 'input_ids' has size 33 at dim 1, outside the range the "
                                           r"model was exported for \(2 <= size <= 32\)"):
        tm(input_ids=_ids(rng, 2, 33), attention_mask=_padded_mask(2, 33))


@pytest.mark.parametrize("arch", ["bart", "t5"])
def test_encoder_decoder_any_lengths(rng, arch):
    """Encoder and decoder lengths vary independently; the batch is shared. T5 computes its relative position
    buckets from the lengths."""
    torch.manual_seed(0)
    if arch == "bart":
        cfg = transformers.BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                                      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                                      decoder_ffn_dim=64, max_position_embeddings=32, use_cache=False, init_std=0.2,
                                      **EAGER)
        m = transformers.BartModel(cfg).eval()
    else:
        cfg = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                    use_cache=False, initializer_factor=1.0, **EAGER)
        m = transformers.T5Model(cfg).eval()
    tm = tinydl.from_torch(m)  # the example comes from the model (ids, mask, decoder ids)
    for batch, seq, dec in [(2, 8, 8), (3, 5, 11), (2, 13, 4)]:
        dec_ids = _ids(rng, batch, dec)
        _check_calls(rng, m, tm, "last_hidden_state", shapes=[(batch, seq)], decoder_input_ids=lambda _: dec_ids)


# -- from_torch(hf_model) without example inputs -------------------------------------------------------------
def test_hf_model_without_example_inputs(rng):
    m = _gpt2(n_layer=1)
    tm = tinydl.from_torch(m)
    _check_calls(rng, m, tm, "logits", shapes=[(2, 8), (3, 5)])
    ids = _ids(rng, 2, 6)  # attention_mask is optional, as in torch
    with torch.no_grad():
        ref = m(ids).logits
    assert_close(tm(ids).logits, ref, rtol=1e-4, atol=1e-4)


def test_hf_bert_without_example_inputs_takes_tokenizer_outputs(rng):
    """A tokenizer's ids, attention_mask and token_type_ids, or ids alone (the mask then attends to every token,
    the token types are 0, as in the torch model)."""
    m = _tiny_bert()
    tm = tinydl.from_torch(m)
    ids, mask = _ids(rng, 3, 6), _padded_mask(3, 6)
    types = torch.from_numpy(rng.integers(0, 2, (3, 6)).astype(np.int64))
    for kwargs in ({"attention_mask": mask, "token_type_ids": types}, {}):
        with torch.no_grad():
            ref = m(ids, **kwargs).last_hidden_state
        assert_close(tm(ids, **kwargs).last_hidden_state, ref, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # the token types matter (so the comparison above checks they are read)
        assert not torch.allclose(m(ids, token_type_ids=types).last_hidden_state, m(ids).last_hidden_state,
                                  atol=1e-3)


def test_hf_vision_model_without_example_inputs(rng):
    """pixel_values of the configured size: the batch is dynamic; the image size is fixed by the position
    embeddings, and the error says so."""
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=4, intermediate_size=64, initializer_range=0.2, **EAGER)
    m = transformers.ViTModel(cfg).eval()
    tm = tinydl.from_torch(m)
    for batch in (2, 3):
        x = _x(rng, batch, 3, 16, 16)
        with torch.no_grad():
            ref = m(x).last_hidden_state
        assert_close(tm(tinydl.tensor(x)).last_hidden_state, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError, match=r"argument 'pixel_values' has size 20 at dim 2, but the exported model "
                                           r"only accepts 16 there: the model's code requires that size"):
        tm(_x(rng, 2, 3, 20, 20))


def test_hf_example_inputs_from_the_model():
    from tinydl.interop import export
    inputs = export.hf_example_inputs(_gpt2(n_layer=1))
    assert list(inputs) == ["input_ids", "attention_mask"]
    assert inputs["input_ids"].shape == (2, 8) and int(inputs["input_ids"].max()) < VOCAB
    assert export.is_hf_model(_gpt2(n_layer=1)) and not export.is_hf_model(torch.nn.Linear(2, 2))


# -- plain torch modules ------------------------------------------------------------------------------------
class _Branchy(torch.nn.Module):
    """fx cannot trace it (a branch on a size, a loop over a size); torch.export keeps the batch and the length
    dynamic and specializes the last dim (the loop runs over it). Sizes feed view, arange, new_zeros, expand."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):  # x: (batch, length, 4)
        b, n, c = x.shape
        h = self.lin(x)
        if b > 1:  # true for every batch export allows (>= 2): no guard, the batch stays dynamic
            h = h - h.mean(0, keepdim=True)
        for i in range(c):
            h = h + x[..., i:i + 1] * (i + 1)
        pos = torch.arange(n, dtype=torch.float32).view(1, n, 1).expand(b, n, 1)
        flat = h.reshape(b * n, c) + x.new_zeros(b * n, 1)
        return flat.view(b, n, c) + pos


def _x(rng, *shape):
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))


def test_plain_module_dynamic_batch_and_length(rng):
    m = _Branchy().eval()
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(m)  # the export path is the one under test
    tm = tinydl.from_torch(m, example_inputs=(_x(rng, 2, 3, 4),))
    for shape in [(2, 3, 4), (5, 3, 4), (3, 9, 4), (7, 2, 4)]:
        x = _x(rng, *shape)
        assert_close(tm(tinydl.tensor(x)), m(x), rtol=1e-4, atol=1e-5)


class _Halves(torch.nn.Module):
    """Sizes computed from a dynamic dim (n // 2) as slice bounds, view and full sizes; fx cannot trace the
    branch on a size."""

    def forward(self, x):
        n = x.shape[1]
        if n % 2:
            raise ValueError("odd length")
        y = x[:, : n // 2] * x[:, n // 2:]
        return y.reshape(-1, n // 2) + torch.full((x.shape[0], n // 2), 1.5)


def test_sizes_computed_from_dynamic_dims(rng):
    m = _Halves().eval()
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(m)
    tm = tinydl.from_torch(m, example_inputs=(_x(rng, 2, 6),))
    for shape in [(2, 6), (3, 10), (5, 4)]:
        x = _x(rng, *shape)
        out = tm(tinydl.tensor(x))
        assert out.shape == (shape[0], shape[1] // 2)
        assert_close(out, m(x), rtol=1e-4, atol=1e-5)


def test_static_dim_error_names_input_dim_and_size(rng):
    tm = tinydl.from_torch(_Branchy().eval(), example_inputs=(_x(rng, 2, 3, 4),))
    with pytest.raises(RuntimeError, match=r"argument 'x' has size 5 at dim 2, but the exported model only accepts 4 "
                                           r"there: the model's code requires that size"):
        tm(_x(rng, 2, 3, 5))
    with pytest.raises(RuntimeError, match=r"argument 'x' has 2 dims \(shape \[2, 3\]\), but the model was exported "
                                           r"with a 3-dim input"):
        tm(_x(rng, 2, 3))


def test_size_one_example_dims_stay_static_and_calls_need_size_two(rng):
    """torch.export specializes example sizes 0 and 1, and keeps dynamic dims for sizes >= 2 only."""
    m = _Branchy().eval()
    tm = tinydl.from_torch(m, example_inputs=(_x(rng, 1, 3, 4),))
    x = _x(rng, 1, 6, 4)
    assert_close(tm(tinydl.tensor(x)), m(x), rtol=1e-4, atol=1e-5)  # the length is still dynamic
    with pytest.raises(RuntimeError, match=r"argument 'x' has size 2 at dim 0, but the exported model only accepts 1 "
                                           r"there: the example's size there was 1, and torch.export specializes "
                                           r"sizes 0 and 1"):
        tm(_x(rng, 2, 3, 4))
    tm2 = tinydl.from_torch(m, example_inputs=(_x(rng, 2, 3, 4),))
    with pytest.raises(RuntimeError, match=r"argument 'x' has size 1 at dim 0, outside the range the model was "
                                           r"exported for \(size >= 2\); torch.export keeps a dim dynamic only for "
                                           r"sizes >= 2"):
        tm2(_x(rng, 1, 3, 4))


def test_dims_torch_found_equal_must_be_equal(rng):
    m = _gpt2(n_layer=1)
    tm = _convert_with_mask(rng, m)
    with pytest.raises(RuntimeError, match=r"argument 'attention_mask' has size 9 at dim 1, but the exported model "
                                           r"requires it equal to dim 1 of argument 'input_ids' \(8\)"):
        tm(input_ids=_ids(rng, 2, 8), attention_mask=_padded_mask(2, 9))


def test_dynamic_shapes_spec_passed_to_torch_export(rng):
    m = _Branchy().eval()
    batch = torch.export.Dim("batch", min=2, max=6)
    tm = tinydl.from_torch(m, example_inputs=(_x(rng, 2, 3, 4),), dynamic_shapes={"x": {0: batch}})
    x = _x(rng, 6, 3, 4)
    assert_close(tm(tinydl.tensor(x)), m(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match=r"argument 'x' has size 7 at dim 0, outside the range the model was "
                                           r"exported for \(2 <= size <= 6\)"):
        tm(_x(rng, 7, 3, 4))
    with pytest.raises(RuntimeError, match=r"argument 'x' has size 4 at dim 1, but the exported model only accepts 3 "
                                           r"there"):  # not in the spec: static, as torch.export makes it
        tm(_x(rng, 2, 4, 4))


@pytest.mark.parametrize("static", [None, False])
def test_static_conversion_on_request(rng, static):
    m = _Branchy().eval()
    tm = tinydl.from_torch(m, example_inputs=(_x(rng, 2, 3, 4),), dynamic_shapes=static)
    x = _x(rng, 2, 3, 4)
    assert_close(tm(tinydl.tensor(x)), m(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match=r"argument 'x' has size 3 at dim 0, but the exported model only accepts 2 "
                                           r"there: it was converted with static shapes"):
        tm(_x(rng, 3, 3, 4))


def test_model_torch_exports_only_statically_is_converted_static_with_a_warning(rng, monkeypatch):
    from tinydl.interop import export

    def fail(*_):
        raise RuntimeError("Constraints violated (batch)!\nmore lines")
    monkeypatch.setattr(export, "auto_spec", fail)
    m = _Branchy().eval()
    with pytest.warns(UserWarning, match=r"from_torch\(_Branchy\): torch.export failed with every input dim dynamic "
                                         r"\(RuntimeError: Constraints violated \(batch\)!\); with dim 0 of each input "
                                         r"dynamic \(RuntimeError: Constraints violated \(batch\)!\); the converted "
                                         r"module is specialized to the example shapes"):
        tm = tinydl.from_torch(m, example_inputs=(_x(rng, 2, 3, 4),))
    x = _x(rng, 2, 3, 4)
    assert_close(tm(tinydl.tensor(x)), m(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match=r"argument 'x' has size 3 at dim 0, but the exported model only accepts 2 "
                                           r"there: it was converted with static shapes \(torch.export failed with "
                                           r"every input dim dynamic \(RuntimeError: Constraints violated"):
        tm(_x(rng, 3, 3, 4))


class _NeedsStaticWidth(torch.nn.Module):
    """Raises while its width is symbolic (torch.export with dynamic dims, fx's proxies), runs with a number."""

    def forward(self, x):
        if not isinstance(x.shape[-1], int):
            raise RuntimeError("this model reads its width as a number")
        return x * 2 + 1


def test_batch_dynamic_fallback_after_a_failed_dynamic_export_converts(rng):
    """A model whose export fails with every dim dynamic is exported with dim 0 dynamic (the batch), saying so.
    torch.export leaves its dynamic-dim marks on the tensors of a failed export: the export that follows (and the
    user's tensors) must not see them, or the model fails again as if every dim were dynamic."""
    x = _x(rng, 2, 3, 4)
    with pytest.warns(UserWarning, match=r"from_torch\(_NeedsStaticWidth\): torch.export failed with every input dim "
                                         r"dynamic \(RuntimeError: this model reads its width as a number\); exported "
                                         r"with dim 0 of each input dynamic, the other dims specialized"):
        tm = tinydl.from_torch(_NeedsStaticWidth().eval(), example_inputs=(x,))
    assert not [k for k in vars(x) if k.startswith("_dynamo")], vars(x)
    assert_close(tm(tinydl.tensor(x)), x * 2 + 1)
    x5 = _x(rng, 5, 3, 4)
    assert_close(tm(tinydl.tensor(x5)), x5 * 2 + 1)  # the batch is dynamic
    with pytest.raises(RuntimeError, match=r"argument 'x' has size 5 at dim 2, but the exported model only accepts 4 "
                                           r"there: torch.export failed with every input dim dynamic \(RuntimeError: "
                                           r"this model reads its width as a number\), so only dim 0 of each input "
                                           r"was kept dynamic; convert again"):
        tm(_x(rng, 2, 3, 5))


class _SlowWithDynamicWidth(torch.nn.Module):
    """Stands for a model whose export with dynamic spatial dims reasons for minutes (torch's symbolic shapes):
    while its width is symbolic it works in Python until interrupted."""

    def forward(self, x):
        if x.shape[0] > 0:  # a branch on a size: fx cannot trace it
            while isinstance(x.shape[-1], torch.SymInt):
                sum(range(1000))
        return x * 2 + 1


def test_a_dynamic_export_past_the_budget_is_stopped_and_exported_with_dynamic_batch(rng):
    x = _x(rng, 2, 3, 4)
    # a budget the batch-only export keeps on a slow, busy CI machine (the slow one never ends by itself)
    with pytest.warns(UserWarning, match=r"from_torch\(_SlowWithDynamicWidth\): torch.export failed with every input "
                                         r"dim dynamic \(it ran past 4 s: Options.export_budget_s\); exported with "
                                         r"dim 0 of each input dynamic"), tinydl.options(export_budget_s=4.0):
        tm = tinydl.from_torch(_SlowWithDynamicWidth().eval(), example_inputs=(x,))
    x3 = _x(rng, 3, 3, 4)
    assert_close(tm(tinydl.tensor(x3)), x3 * 2 + 1)
    with pytest.raises(RuntimeError, match=r"argument 'x' has size 6 at dim 2, but the exported model only accepts 4 "
                                           r"there: torch.export failed with every input dim dynamic \(it ran past "
                                           r"4 s: Options.export_budget_s\), so only dim 0 of each input was kept"):
        tm(_x(rng, 2, 3, 6))
    # and nothing of the stopped export lingers: a later conversion exports every dim dynamic, as before
    m = _Branchy().eval()
    tm = tinydl.from_torch(m, example_inputs=(x,))
    x = _x(rng, 3, 5, 4)
    assert_close(tm(tinydl.tensor(x)), m(x), rtol=1e-4, atol=1e-5)


def test_dynamic_shapes_rejects_an_unknown_mode(rng):
    with pytest.raises(ValueError, match=r"dynamic_shapes must be \"auto\", None/False \(static\) or a torch.export "
                                         r"dynamic_shapes spec, got 'dynamic'"):
        tinydl.from_torch(_Branchy().eval(), example_inputs=(_x(rng, 2, 3, 4),), dynamic_shapes="dynamic")


# -- the symbolic-size ops -----------------------------------------------------------------------------------
def test_symbolic_size_ops_match_torch():
    x = torch.zeros(2, 3, 5).transpose(0, 1).contiguous()
    t = tinydl.tensor(x)
    assert registry.lookup("aten.sym_size.int")(t, 2) == torch.ops.aten.sym_size.int(x, 2) == 5
    assert registry.lookup("aten.sym_numel.default")(t) == torch.ops.aten.sym_numel.default(x)
    for d in range(3):
        assert registry.lookup("aten.sym_stride.int")(t, d) == torch.ops.aten.sym_stride.int(x, d)
    assert registry.lookup("aten.sym_storage_offset.default")(t) == 0
    for name, fn, args in [("torch.sym_max", torch.sym_max, (3, 7)), ("torch.sym_min", torch.sym_min, (3, 7)),
                           ("torch.sym_not", torch.sym_not, (True,)), ("torch.sym_float", torch.sym_float, (3,)),
                           ("torch.sym_int", torch.sym_int, (-3.5,)), ("torch.sym_ite", torch.sym_ite, (False, 1, 2)),
                           ("torch.sym_sum", torch.sym_sum, ([1, 2, 3],)), ("math.ceil", math.ceil, (2.5,)),
                           ("math.floor", math.floor, (-2.5,)), ("math.trunc", math.trunc, (-2.5,)),
                           ("math.log2", math.log2, (8,)), ("_operator.abs", operator.abs, (-3,)),
                           ("_operator.floordiv", operator.floordiv, (-7, 2)), ("_operator.mod", operator.mod, (-7, 2)),
                           ("_operator.lshift", operator.lshift, (3, 2)),
                           ("_operator.rshift", operator.rshift, (12, 2)),
                           ("_operator.pos", operator.pos, (-3,)), ("_operator.not_", operator.not_, (0,))]:
        assert registry.lookup(name)(*args) == fn(*args), name


def test_assert_scalar_checks_the_relation():
    check = registry.lookup("aten._assert_scalar.default")
    check(True, "Runtime assertion failed for expression Eq(s0, 4)")
    with pytest.raises(RuntimeError, match=r"Runtime assertion failed for expression Eq\(s0, 4\): the inputs' "
                                           r"sizes break an assumption of the exported graph"):
        check(False, "Runtime assertion failed for expression Eq(s0, 4)")


# -- replays per shape ---------------------------------------------------------------------------------------
def test_each_shape_captures_once_then_replays(rng):
    m = _Branchy().eval()
    tm = tinydl.from_torch(m, example_inputs=(_x(rng, 2, 3, 4),))
    jit = tm._replay
    for shape in [(2, 3, 4), (3, 5, 4), (2, 3, 4), (3, 5, 4)]:
        x = _x(rng, *shape)
        assert_close(tm(tinydl.tensor(x)), m(x), rtol=1e-4, atol=1e-5)
    assert len(jit.captures) == 2  # one per shape: the second call of each replayed


def test_captures_of_the_shapes_used_last_are_kept(rng, use_options):
    """A model called with ever new shapes keeps Options.max_captures captures: the least recently used one is
    dropped, its buffers handed back; calling its shape again captures it anew."""
    use_options(max_captures=2)
    m = _Branchy().eval()
    tm = tinydl.from_torch(m, example_inputs=(_x(rng, 2, 3, 4),))
    jit = tm._replay

    def call(*shape):
        x = _x(rng, *shape)
        assert_close(tm(tinydl.tensor(x)), m(x), rtol=1e-4, atol=1e-5)

    call(2, 3, 4)
    first = next(iter(jit.captures.values()))
    call(3, 5, 4)
    call(2, 3, 4)  # used again: now the most recent
    call(4, 6, 4)  # evicts (3, 5, 4)
    assert [k[0][0][0] for k in jit.captures] == [(2, 3, 4), (4, 6, 4)]
    assert first is jit.captures[next(iter(jit.captures))] and first.bound.private.owned
    call(3, 5, 4)  # evicts (2, 3, 4), whose buffers go back to the pool
    assert [k[0][0][0] for k in jit.captures] == [(4, 6, 4), (3, 5, 4)]
    assert first.bound.private.owned == {} and first.bound.input_copies == {}
