"""Complex values in converted models, computed as float pairs (tinydl.interop.complex_pairs): rotary embeddings
written with polar / view_as_complex / view_as_real (Llama 4's) equal torch's; complex ops outside the supported
set, and complex parameters, are errors naming them."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import tinydl  # noqa: E402
from tinydl.testing import assert_close  # noqa: E402


class Rotary(torch.nn.Module):
    """Meta's rotary embedding: x [B, T, H, D] rotated by angles position * inv_freq, as complex products."""

    def forward(self, x, positions):
        inv = 1.0 / (10000 ** (torch.arange(0, x.shape[-1], 2, dtype=torch.float32) / x.shape[-1]))
        freqs = positions[..., None].float() * inv
        cis = torch.polar(torch.ones_like(freqs), freqs) * 0.5
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * cis[:, :, None, :]).flatten(3)


class Arithmetic(torch.nn.Module):
    """Sums, differences, products with complex, real tensors and numbers, and shape ops on complex values."""

    def forward(self, a, b, r):
        ca, cb = torch.view_as_complex(a), torch.view_as_complex(b)
        c = (ca * cb - ca) * 2.0 + cb * r
        c = c.permute(1, 0, 2).unsqueeze(-1).transpose(0, 1)[:, 1:].reshape(-1, 3)
        c = torch.cat([c, c[:1]], 0)
        return torch.view_as_real(c)


def convert(m, *args):
    return tinydl.from_torch(m.eval(), example_inputs=args)


def test_rotary_as_llama4_writes_it():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((2, 5, 3, 8)).astype(np.float32))
    pos = torch.arange(5)[None].repeat(2, 1) + torch.tensor([[0], [7]])
    tm = convert(Rotary(), x, pos)
    assert_close(tm(tinydl.tensor(x.numpy()), tinydl.tensor(pos.numpy())), Rotary()(x, pos))


def test_complex_arithmetic_and_shapes():
    rng = np.random.default_rng(1)
    a, b = (torch.from_numpy(rng.standard_normal((4, 2, 3, 2)).astype(np.float32)) for _ in range(2))
    r = torch.from_numpy(rng.standard_normal((4, 2, 3)).astype(np.float32))
    tm = convert(Arithmetic(), a, b, r)
    assert_close(tm(*(tinydl.tensor(t.numpy()) for t in (a, b, r))), Arithmetic()(a, b, r))


class Magnitude(torch.nn.Module):
    def forward(self, a):
        return torch.view_as_complex(a).abs()


class ComplexBuffer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("cis", torch.polar(torch.ones(3), torch.arange(3.0)))

    def forward(self, a):
        return torch.view_as_real(torch.view_as_complex(a) * self.cis)


@pytest.mark.parametrize("module, message", [
    (Magnitude(), r"- aten.abs.default on a complex tensor \(tinydl computes complex values as float pairs [^\n]*"
                  r"\)  \(node 'abs\w*'\)"),
    (ComplexBuffer(), r"- '\w+', a complex parameter, buffer or input \(tinydl has no complex dtype\) \([^\n]*\)  "
                      r"\(node '\w+'\)"),
])
def test_unsupported_complex_is_named(module, message):
    """Through torch.export, the op (or the complex input) is named, never run on the pairs as if they were real;
    from_torch raises too (with the path that came closer)."""
    from tinydl.interop import export
    from tinydl.interop.registry import UnsupportedTorchOps
    a = torch.zeros(2, 3, 2)
    with pytest.raises(UnsupportedTorchOps, match=message):
        export.convert(module.eval(), (a,))
    with pytest.raises(UnsupportedTorchOps):
        convert(module, a)


def test_llama4_text_generates_as_hf():
    from tinydl.interop.torchvision_compat import import_torchvision
    import_torchvision()
    import transformers
    torch.manual_seed(0)
    cfg = transformers.Llama4TextConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, intermediate_size_mlp=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_local_experts=4, attn_implementation="eager",
        initializer_range=0.2, use_cache=False, tie_word_embeddings=False, pad_token_id=0)
    m = transformers.Llama4ForCausalLM(cfg).eval()
    with torch.no_grad():
        m.get_output_embeddings().weight.mul_(20)
    ids = np.random.default_rng(0).integers(3, 100, (2, 7))
    mask = np.ones((2, 7), np.int64)
    mask[1, :3] = 0
    ids[1, :3] = 0
    with torch.no_grad():
        ref = m.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=6,
                         do_sample=False, pad_token_id=0).numpy()
    assert len(set(ref[:, 7:].ravel())) > 2
    tm = tinydl.from_torch(m, example_inputs=((torch.from_numpy(ids),), {"attention_mask": torch.from_numpy(mask)}))
    np.testing.assert_array_equal(tm.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0), ref)


class MagnitudeAndSvd(torch.nn.Module):
    def forward(self, a):
        return torch.view_as_complex(a).abs(), torch.linalg.svdvals(a[..., 0])


def test_complex_failures_are_listed_with_the_other_missing_ops():
    from tinydl.interop import export
    from tinydl.interop.registry import UnsupportedTorchOps
    with pytest.raises(UnsupportedTorchOps, match=r"2 unsupported op\(s\)(.|\n)*on a complex tensor(.|\n)*svd"):
        export.convert(MagnitudeAndSvd().eval(), (torch.zeros(3, 3, 2),))
