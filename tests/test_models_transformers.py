"""from_torch on Hugging Face transformers models and torch.nn transformer blocks, and the torch.export path.

HF models cannot be traced by torch.fx (Python control flow, item assignment on proxies), so from_torch takes the
torch.export path with example inputs, batch and sequence length dynamic (tests/test_dynamic_shapes.py). Models are
random-init tiny configs (no network: HF_HUB_OFFLINE=1), attn_implementation="eager", in eval mode.
initializer_range is raised from HF's 0.02 so that activations and logits are O(1) and the 1e-4 tolerances
mean something.
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
from tinydl.interop import UnsupportedTorchOps, export, passes, registry  # noqa: E402
from tinydl.testing import assert_close  # noqa: E402

transformers.logging.set_verbosity_error()

VOCAB, SEQ = 100, 12
EAGER = dict(attn_implementation="eager")


def _ids(rng, batch=2, seq=SEQ):
    return torch.from_numpy(rng.integers(0, VOCAB, (batch, seq)).astype(np.int64))


def _padded_mask(batch=2, seq=SEQ):
    """Right padding: the second sequence has 4 padding tokens."""
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[1, seq - 4:] = 0
    return mask


def _check_output(out, ref, keys):
    """Same ModelOutput class, same fields, and each field equal to torch's."""
    assert type(out) is type(ref)
    assert list(out.keys()) == list(ref.keys())
    for k in keys:
        assert isinstance(out[k], tinydl.Tensor)
        assert_close(out[k], ref[k], rtol=1e-4, atol=1e-4)
    assert out[keys[0]] is getattr(out, keys[0])


def _same_state_dict_keys(tm, m):
    assert list(tm.state_dict().keys()) == list(m.state_dict().keys())


# -- Hugging Face models -----------------------------------------------------------------------------------
def _causal_lm_with_padding_mask(rng, m):
    """Convert a causal LM with ids + attention_mask (keyword) inputs; its logits and state_dict keys must match
    torch's. Returns the converted model and its output."""
    ids, mask = _ids(rng), _padded_mask()
    tm = tinydl.from_torch(m, example_inputs=((ids,), {"attention_mask": mask}))
    with torch.no_grad():
        ref = m(ids, attention_mask=mask)
    out = tm(ids, attention_mask=mask)
    _check_output(out, ref, ["logits"])
    _same_state_dict_keys(tm, m)
    return tm, out


def test_gpt2_lm_head(rng):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                  use_cache=False, initializer_range=0.2, bos_token_id=0, eos_token_id=0, **EAGER)
    tm, out = _causal_lm_with_padding_mask(rng, transformers.GPT2LMHeadModel(cfg).eval())
    assert out[0] is out.logits  # ModelOutput's tuple access works too
    # the tied input embedding / output head stay one tensor, as in torch
    assert tm.lm_head.weight is tm.transformer.wte.weight


def test_gpt2_without_attention_mask(rng):
    torch.manual_seed(1)
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=1, n_head=2,
                                  use_cache=False, initializer_range=0.2, bos_token_id=0, eos_token_id=0, **EAGER)
    m = transformers.GPT2LMHeadModel(cfg).eval()
    ids = _ids(rng, batch=1, seq=9)
    tm = tinydl.from_torch(m, example_inputs=(ids,))
    with torch.no_grad():
        ref = m(ids)
    _check_output(tm(ids), ref, ["logits"])


def _tiny_bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=32, initializer_range=0.2, **EAGER)
    return transformers.BertModel(cfg).eval()


def test_bert_padded_batch(rng):
    m = _tiny_bert()
    ids, mask = _ids(rng), _padded_mask()
    tm = tinydl.from_torch(m, example_inputs=(ids, mask))
    with torch.no_grad():
        ref = m(ids, mask)
        unpadded = m(ids, torch.ones_like(mask))
    # the mask matters (so the comparison below checks that it is applied)
    assert not torch.allclose(ref.last_hidden_state[1], unpadded.last_hidden_state[1], atol=1e-3)
    out = tm(ids, mask)
    _check_output(out, ref, ["last_hidden_state", "pooler_output"])
    _same_state_dict_keys(tm, m)


@pytest.mark.skipif(not tinydl.runtime.get_runtime().has_f16, reason="adapter lacks shader-f16")
@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_half_after_conversion(rng, arch):
    """model.half() on a converted HF model: the graph was traced in float32 (its attention masks are built with
    dtype=float32 and its constants are float32), and must run in float16 as the torch model would. float16
    activations over 2 layers: within 2e-2 of torch's float32."""
    if arch == "bert":
        m, inputs, key = _tiny_bert(), (_ids(rng), _padded_mask()), "last_hidden_state"
    else:
        torch.manual_seed(0)
        m = transformers.GPT2LMHeadModel(transformers.GPT2Config(
            vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4, initializer_range=0.2,
            use_cache=False, **EAGER)).eval()
        inputs, key = (_ids(rng),), "logits"
    tm = tinydl.from_torch(m, example_inputs=inputs)
    with torch.no_grad():
        ref = m(*inputs)[key]
    tm.half()
    out = tm(*inputs)[key]
    assert out.dtype == tinydl.float16
    assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


def test_distilbert_and_call_conventions(rng):
    torch.manual_seed(0)
    cfg = transformers.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                        max_position_embeddings=32, initializer_range=0.2, **EAGER)
    m = transformers.DistilBertModel(cfg).eval()
    ids, mask = _ids(rng), _padded_mask()
    tm = tinydl.from_torch(m, example_inputs=(ids, mask))
    with torch.no_grad():
        ref = m(ids, mask)
    _check_output(tm(ids, mask), ref, ["last_hidden_state"])
    # keyword arguments and tinydl inputs work as well as the positional torch tensors of the example
    out = tm(input_ids=tinydl.tensor(ids), attention_mask=tinydl.tensor(mask))
    assert_close(out.last_hidden_state, ref.last_hidden_state, rtol=1e-4, atol=1e-4)
    _same_state_dict_keys(tm, m)
    # batch and length are dynamic: a shorter call needs no new conversion
    with torch.no_grad():
        ref = m(ids[:, :10], mask[:, :10])
    assert_close(tm(ids[:, :10], mask[:, :10]).last_hidden_state, ref.last_hidden_state, rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError, match=r"exported without argument\(s\) \['head_mask'\]"):
        tm(ids, mask, head_mask=torch.ones(2, 4))


def test_llama_gqa_rope(rng):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                                   use_cache=False, initializer_range=0.2, **EAGER)
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # grouped-query attention
    # the state_dict keys match torch's: the rotary embedding's inv_freq buffer is non-persistent in both
    _causal_lm_with_padding_mask(rng, transformers.LlamaForCausalLM(cfg).eval())


def test_vit(rng):
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64, initializer_range=0.2, **EAGER)
    m = transformers.ViTModel(cfg).eval()
    x = torch.from_numpy(rng.standard_normal((2, 3, 16, 16), dtype=np.float32))
    tm = tinydl.from_torch(m, example_inputs=(x,))
    with torch.no_grad():
        ref = m(x)
    _check_output(tm(x), ref, ["last_hidden_state", "pooler_output"])
    _same_state_dict_keys(tm, m)


# -- torch.nn transformer blocks ---------------------------------------------------------------------------
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder(rng, norm_first, batch_first):
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=batch_first, norm_first=norm_first)
    norm = torch.nn.LayerNorm(16) if norm_first else None
    # enable_nested_tensor=False: torch's nested-tensor fast path leaves padded positions 0 (see the next test)
    m = torch.nn.TransformerEncoder(layer, 2, norm=norm, enable_nested_tensor=False).eval()
    x = torch.from_numpy(rng.standard_normal((2, 6, 16) if batch_first else (6, 2, 16), dtype=np.float32))
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    tm = tinydl.from_torch(m, example_inputs=((x,), {"src_key_padding_mask": pad}))
    with torch.no_grad():
        ref = m(x, src_key_padding_mask=pad)
    assert_close(tm(x, src_key_padding_mask=pad), ref, rtol=1e-4, atol=1e-5)
    assert_close(tm(x, None, pad), ref, rtol=1e-4, atol=1e-5)  # the same argument, positionally
    _same_state_dict_keys(tm, m)


def test_transformer_encoder_nested_fast_path(rng):
    """With torch's default enable_nested_tensor=True, eager torch runs a nested-tensor fast path in eval mode
    that returns 0 at padded positions (their values are unspecified); the exported graph is the regular path.
    Valid positions agree."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    m = torch.nn.TransformerEncoder(layer, 2).eval()
    x = torch.from_numpy(rng.standard_normal((2, 6, 16), dtype=np.float32))
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    tm = tinydl.from_torch(m, example_inputs=((x,), {"src_key_padding_mask": pad}))
    with torch.no_grad():
        ref = m(x, src_key_padding_mask=pad)
    out = tm(x, src_key_padding_mask=pad).numpy()
    valid = ~pad.numpy()
    assert_close(out[valid], ref.numpy()[valid], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention(rng, batch_first):
    torch.manual_seed(0)
    m = torch.nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    shape = (2, 5, 16) if batch_first else (5, 2, 16)
    q = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
    kv = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0, 3:] = True
    example = ((q, kv, kv), {"key_padding_mask": pad})
    tm = tinydl.from_torch(m, example_inputs=example)
    with torch.no_grad():
        ref_out, ref_w = m(q, kv, kv, key_padding_mask=pad)
    out, w = tm(q, kv, kv, key_padding_mask=pad)
    assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    assert_close(w, ref_w, rtol=1e-4, atol=1e-5)
    _same_state_dict_keys(tm, m)


# -- the export path's errors ------------------------------------------------------------------------------
class _LoopOnShape(torch.nn.Module):
    """fx cannot trace range(x.size(0)) (a Proxy is no integer); torch.export can (shapes are concrete)."""

    def __init__(self, op=None):
        super().__init__()
        self.op = op

    def forward(self, x):
        for i in range(x.size(0)):
            x = x + i
        return self.op(x) if self.op is not None else x * 2


class _UsesUnmappedOps(torch.nn.Module):
    """lgamma and mode: ATen ops with neither a tinydl mapping nor a torch decomposition."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.block = _LoopOnShape(lambda x: torch.lgamma(x).sum(-1) + torch.mode(x, dim=-1)[0])

    def forward(self, x):
        return self.block(self.lin(x))


def test_export_unsupported_ops_listed():
    m = _UsesUnmappedOps().eval()
    with pytest.raises(UnsupportedTorchOps, match=r"2 unsupported op\(s\)") as info:
        tinydl.from_torch(m, example_inputs=(torch.randn(3, 4),))
    msg = str(info.value)
    assert "aten.lgamma.default  (node 'lgamma', in block)" in msg
    assert "aten.mode.default  (node 'mode', in block)" in msg
    assert info.value.ops == [("aten.lgamma.default", "lgamma", "block"),
                              ("aten.mode.default", "mode", "block")]


def test_untraceable_model_without_examples_converts_on_its_first_call():
    m = _LoopOnShape().eval()
    tm = tinydl.from_torch(m)
    assert "on the first call" in repr(tm)
    assert_close(tm(torch.ones(3, 2)), m(torch.ones(3, 2)))
    assert tm.conversion_path == "torch.export"
    tm = tinydl.from_torch(m, example_inputs=(torch.ones(3, 2),))
    assert_close(tm(torch.ones(3, 2)), m(torch.ones(3, 2)))


# -- composed ATen ops (tinydl has no single op for these) ---------------------------------------------------
def _aten_parity(name, torch_fn, *args, **kwargs):
    to_td = lambda a: tinydl.tensor(a) if isinstance(a, torch.Tensor) else (  # noqa: E731
        [to_td(v) for v in a] if isinstance(a, list) else a)
    out = registry.lookup(name)(*(to_td(a) for a in args), **kwargs)
    assert_close(out, torch_fn(*args, **kwargs), rtol=1e-4, atol=1e-5)


def test_aten_index_advanced(rng):
    x = torch.from_numpy(rng.standard_normal((3, 4, 5), dtype=np.float32))
    i0 = torch.tensor([[0], [2]])          # broadcasts against i2 to (2, 3)
    i1 = torch.tensor([3, -1, 0])
    i2 = torch.tensor([4, 1, -5])
    for idx in ([i0], [None, i1], [i0, i1], [None, i1, i2], [i0, None, i2], [None, None, i2]):
        _aten_parity("aten.index.Tensor", torch.ops.aten.index.Tensor, x, idx)


def test_aten_gather_cumsum_diff_tri(rng):
    x = torch.from_numpy(rng.standard_normal((3, 5), dtype=np.float32))
    idx = torch.from_numpy(rng.integers(0, 5, (3, 4)))
    _aten_parity("aten.gather.default", torch.ops.aten.gather.default, x, 1, idx)
    _aten_parity("aten.gather.default", torch.ops.aten.gather.default, x, 0, idx[:2] % 3)
    _aten_parity("aten.cumsum.default", torch.ops.aten.cumsum.default, x, 1)
    _aten_parity("aten.cumsum.default", torch.ops.aten.cumsum.default, x, 0)
    _aten_parity("aten.cumsum.default", torch.ops.aten.cumsum.default, x > 0, -1)  # bool -> integer
    _aten_parity("aten.diff.default", torch.ops.aten.diff.default, x, 1, -1)
    _aten_parity("aten.diff.default", torch.ops.aten.diff.default, x > 0, 1, 0)  # bool: xor
    _aten_parity("aten.triu.default", torch.ops.aten.triu.default, x, 1)
    _aten_parity("aten.tril.default", torch.ops.aten.tril.default, x, -1)


class _ExportFeatures(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))
        self.lin = torch.nn.Linear(5, 5)

    def forward(self, x):
        for i in range(x.size(0)):  # fx cannot trace this
            x = x + i
        self.calls += 1  # a buffer mutation
        scale = torch.tensor([1.0, -2.0, 3.0, 0.5, 5.0])  # a tensor constant made in forward
        y = self.lin(x) * scale
        # no tinydl mapping for logsumexp / addcmul: torch's decompositions into mapped ops are used
        return torch.logsumexp(y, -1) + torch.addcmul(y, y, y, value=0.5).sum(-1), self.calls * 1.0


def test_export_constants_buffer_mutation_and_decompositions(rng):
    torch.manual_seed(0)
    m = _ExportFeatures().eval()
    x = torch.from_numpy(rng.standard_normal((3, 5), dtype=np.float32))
    tm = tinydl.from_torch(m, example_inputs=(x,))
    m.calls.zero_()  # export ran forward once
    for step in (1, 2):
        with torch.no_grad():
            ref, ref_calls = m(x)
        out, calls = tm(x)
        assert_close(out, ref, rtol=1e-4, atol=1e-4)
        assert calls.item() == ref_calls.item() == step
        assert_close(tm.calls, m.calls)
    assert list(tm.state_dict()) == list(m.state_dict()) == ["calls", "lin.weight", "lin.bias"]


# -- sibling linears: one GEMM ---------------------------------------------------------------------------------
class _SiblingLinears(torch.nn.Module):
    """Attention-style q/k/v (biased, different widths) and a gated MLP's gate/up (no bias) on the same input;
    `other` reads another input and must stay alone."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = torch.nn.Linear(16, 8), torch.nn.Linear(16, 8), torch.nn.Linear(16, 12)
        self.gate, self.up = torch.nn.Linear(16, 20, bias=False), torch.nn.Linear(16, 20, bias=False)
        self.other = torch.nn.Linear(20, 16)

    def forward(self, x):
        att = (self.q(x) * self.k(x)).sum(-1, keepdim=True) * self.v(x)
        h = torch.nn.functional.silu(self.gate(x)) * self.up(x)
        return att, self.other(h)


def test_sibling_linears_run_as_one_gemm(rng):
    m = _SiblingLinears().eval()
    x = torch.from_numpy(rng.standard_normal((2, 5, 16), dtype=np.float32))
    tm = export.convert(m, (x,))
    assert sorted(len(g) for g in {id(g): g for g in tm._program.sibling_linears.values()}.values()) == [2, 3]
    with tinydl.debug.count_kernels() as c:
        out = tm(x)
        for o in out:
            o.numpy()
    gemms = [n for n in c.names if n.startswith("matmul")]
    assert len(gemms) == 3, c.names  # q/k/v, gate/up, other: 6 linears
    assert not any("cat" in n for n in gemms), c.names  # each group's weights and biases joined in one buffer
    with torch.no_grad():
        ref = m(x)
    for o, r in zip(out, ref):
        assert_close(o, r, rtol=1e-4, atol=1e-5)
    joined = {k: v[1] for k, v in tm._program.joined_weights.items()}
    assert len(joined) == 2
    tm(x)
    assert all(tm._program.joined_weights[k][1] is w for k, w in joined.items())  # kept between calls
    # new weights reach the fused GEMM: loading them joins the group's weights again
    m2 = _SiblingLinears().eval()
    tm.load_state_dict({k: v.numpy() for k, v in m2.state_dict().items()})
    with torch.no_grad():
        ref = m2(x)
    for o, r in zip(tm(x), ref):
        assert_close(o, r, rtol=1e-4, atol=1e-5)
    # and so does a cast
    tm.half()
    for o, r in zip(tm(x.half()), ref):
        assert_close(o.float(), r, rtol=2e-2, atol=2e-2)


def test_sibling_linears_with_mismatched_weights_raise_torchs_error():
    """Weights the fused GEMM cannot take (here: loaded with the wrong in-features) run layer by layer, so the
    error names the layer's own shapes as torch's linear does, not the concatenation's."""
    from types import SimpleNamespace as NS
    x, w1, w2 = NS(name="x"), NS(name="w1"), NS(name="w2")
    group = [NS(name="a", args=(x, w1)), NS(name="b", args=(x, w2))]
    env = {"x": tinydl.tensor(np.ones((2, 4), np.float32)), "w1": tinydl.tensor(np.ones((3, 4), np.float32)),
           "w2": tinydl.tensor(np.ones((3, 5), np.float32))}
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x4 and 5x3\)"):
        passes.run_sibling_linears(group, env, {})


def test_export_program_checks_get_attr_nodes_before_any_run(rng):
    """ExportProgram.missing() runs at conversion, before the first run(): it checks get_attr nodes from the
    host copies (it read the uploaded attributes, which only run() sets: an AttributeError)."""
    from tinydl.interop import modules
    from tinydl.interop.program import TorchFxModule
    m = torch.nn.Linear(3, 2).eval()
    args = (torch.from_numpy(rng.standard_normal((2, 3), dtype=np.float32)),)
    ep, _ = export.export(m, args, {})
    lowered, _ = export.lower(ep)
    gm, graph = lowered.graph_module, lowered.graph_module.graph
    gm.register_buffer("extra", torch.ones(2))
    gm.sub = torch.nn.Identity()
    with graph.inserting_before(next(n for n in graph.nodes if n.op == "output")):
        graph.get_attr("extra")
        sub = graph.get_attr("sub")
    assert export.ExportProgram(lowered, None, args, {}).missing() == [("attribute of type Identity", sub.name, "")]
    graph.erase_node(sub)
    program = export.ExportProgram(lowered, None, args, {})
    assert program.missing() == []
    tree = modules.mirror(m)
    modules.copy_weights(tree, m)
    with torch.no_grad():
        assert_close(program.run(TorchFxModule(tree, program, "Linear"), args, {}), m(*args))
