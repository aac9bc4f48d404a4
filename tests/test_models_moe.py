"""Hugging Face mixture-of-experts causal LMs through from_torch, against torch CPU: Mixtral, Qwen2-MoE (with its
shared expert), Qwen3-MoE, OLMoE and PhiMoE (sparsemixer routing). transformers 5.x runs their experts as
`experts_implementation="grouped_mm"`, which torch.export records as `transformers.grouped_mm_fallback`
(tinydl/grouped_mm.py; the op's own parity tests: tests/test_grouped_mm.py); "batched_mm" (a gather of each
token's expert weights and bmm) converts too.

Tiny random configs (HF_HUB_OFFLINE=1), attn_implementation="eager", initializer_range 0.2 so that logits are O(1)
and the tolerances mean something; a right-padded batch with an attention mask.
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
from tinydl.interop import export  # noqa: E402
from tinydl.testing import assert_close  # noqa: E402

transformers.logging.set_verbosity_error()

VOCAB, SEQ = 100, 12
DECODER = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=64, max_position_embeddings=64, attn_implementation="eager", use_cache=False,
               initializer_range=0.2)
# architecture -> config arguments: 4 experts, 2 per token
ARCHS = {
    "Mixtral": dict(num_local_experts=4, num_experts_per_tok=2),
    "Qwen2Moe": dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                     shared_expert_intermediate_size=16),
    "Qwen3Moe": dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, head_dim=8),
    "Olmoe": dict(num_experts=4, num_experts_per_tok=2),
    "Phimoe": dict(num_local_experts=4, num_experts_per_tok=2),
}


def hf_model(arch, **extra):
    torch.manual_seed(0)
    cfg = getattr(transformers, arch + "Config")(**DECODER, **ARCHS[arch], **extra)
    return getattr(transformers, arch + "ForCausalLM")(cfg).eval()


def inputs(rng, seq=SEQ):
    """Ids and a right-padded mask (the second sequence's last 4 tokens)."""
    ids = torch.from_numpy(rng.integers(0, VOCAB, (2, seq)).astype(np.int64))
    mask = torch.ones(2, seq, dtype=torch.int64)
    mask[1, seq - 4:] = 0
    return ids, mask


def check_logits(tm, m, ids, mask):
    with torch.no_grad():
        expected = m(ids, attention_mask=mask).logits
    assert_close(tm(ids, attention_mask=mask).logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_moe_causal_lm(rng, arch):
    m = hf_model(arch)
    assert m.config._experts_implementation == "grouped_mm"
    ids, mask = inputs(rng)
    tm = tinydl.from_torch(m, example_inputs=((ids,), {"attention_mask": mask}))
    assert tm.conversion_path == "torch.export"
    ops = [export.op_name(n.target) for n, _ in tm._program.steps if n.op == "call_function"]
    assert ops.count("transformers.grouped_mm_fallback.default") == 4  # the experts took the op: 2 per layer
    check_logits(tm, m, ids, mask)
    assert list(tm.state_dict().keys()) == list(m.state_dict().keys())


def test_mixtral_other_lengths_and_batched_mm(rng):
    """Another sequence length on the same converted model (the routed group sizes differ: no shape depends on
    them), and the batched_mm experts."""
    m = hf_model("Mixtral")
    ids, mask = inputs(rng)
    tm = tinydl.from_torch(m, example_inputs=((ids,), {"attention_mask": mask}))
    for seq in (5, 17):
        check_logits(tm, m, *inputs(rng, seq))
    m = hf_model("Mixtral", experts_implementation="batched_mm")
    check_logits(tinydl.from_torch(m), m, *inputs(rng))
