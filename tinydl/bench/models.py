"""The benchmark's named models (torchvision CNNs, Hugging Face BERT and GPT-2, random weights) and their
inputs, and the main output of a model's result."""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def vision(name):
    def build(batch, quick):
        from tinydl.interop.torchvision_compat import import_torchvision
        tv = import_torchvision()
        import torch
        torch.manual_seed(0)
        model = getattr(tv.models, name)().eval()
        size = 64 if quick else 224
        x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
        return model, (x,)
    return build


def _transformers():
    from tinydl.interop.torchvision_compat import import_torchvision
    import_torchvision()  # transformers imports torchvision when present; on CPU torch it needs the fix first
    import transformers
    return transformers


def bert(batch, quick):
    import torch
    transformers = _transformers()
    cfg = transformers.BertConfig(num_hidden_layers=2 if quick else 12, hidden_size=768, num_attention_heads=12,
                                  intermediate_size=3072, attn_implementation="eager", use_cache=False)
    torch.manual_seed(0)
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    seq = 16 if quick else 128
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq)).astype(np.int64)
    return model, (ids,)


def gpt2(batch, quick):
    import torch
    transformers = _transformers()
    cfg = transformers.GPT2Config(n_layer=2 if quick else 12, attn_implementation="eager", use_cache=False)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    seq = 16 if quick else 128
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq)).astype(np.int64)
    return model, (ids,)


MODELS = {"resnet18": (vision("resnet18"), (1, 16)), "mobilenet_v2": (vision("mobilenet_v2"), (1, 16)),
          "resnet50": (vision("resnet50"), (1, 16)), "bert_base": (bert, (1, 8)), "gpt2": (gpt2, (1,))}


def first_tensor(out):
    """The main output of a model (logits / last hidden state) as a torch/tinydl tensor."""
    if hasattr(out, "logits") and out.logits is not None:
        return out.logits
    if hasattr(out, "last_hidden_state"):
        return out.last_hidden_state
    if isinstance(out, dict):
        return first_tensor(next(iter(out.values())))
    if isinstance(out, (tuple, list)):
        return first_tensor(out[0])
    return out


def builder(name):
    """(build, default batches) of a named benchmark model; a name outside MODELS is taken as a torchvision
    classifier (vit_b_16, convnext_tiny, densenet121, ...) at batches 1 and 16."""
    return MODELS[name] if name in MODELS else (vision(name), (1, 16))
