"""A small transformer text classifier, written once in torch and ported by hand to tinydl.nn: the same class
layout and attribute names, so `load_state_dict(torch_model.state_dict())` matches key for key. The port
changes `torch.nn` to `tinydl.nn` and `torch.arange` to `tinydl.arange`; nothing else.

    python examples/transformer_port.py

Token embeddings (padding_idx 0) + learned positions, two pre-norm TransformerEncoderLayers (GELU) that ignore
padded positions (src_key_padding_mask), a final LayerNorm, mean pooling over the real tokens, a Linear head.
Random weights (torch.manual_seed); parity printed by tinydl.testing.compare.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch

import tinydl
import tinydl.nn as tnn
from tinydl.testing import compare

VOCAB, D_MODEL, HEADS, FF, LAYERS, CLASSES, MAX_LEN, PAD = 1000, 64, 4, 128, 2, 5, 32, 0


# -- the torch model -----------------------------------------------------------------------------------------
class TorchClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.tok = nn.Embedding(VOCAB, D_MODEL, padding_idx=PAD)
        self.pos = nn.Embedding(MAX_LEN, D_MODEL)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, dropout=0.1, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, CLASSES)

    def forward(self, ids):
        pad = ids == PAD                                       # (N, L) True at padding
        h = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=pad)
        h = self.norm(h)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))     # mean over the real tokens


# -- the same model, ported by hand to tinydl.nn -------------------------------------------------------------
class Classifier(tnn.Module):
    def __init__(self):
        super().__init__()
        nn = tnn
        self.tok = nn.Embedding(VOCAB, D_MODEL, padding_idx=PAD)
        self.pos = nn.Embedding(MAX_LEN, D_MODEL)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, dropout=0.1, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, CLASSES)

    def forward(self, ids):
        pad = ids == PAD
        h = self.tok(ids) + self.pos(tinydl.arange(ids.shape[1]))
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=pad)
        h = self.norm(h)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def main() -> int:
    torch.manual_seed(0)
    ref = TorchClassifier().eval()
    model = Classifier().eval()                     # eval(): Dropout would refuse to run in training mode
    model.load_state_dict(ref.state_dict())         # torch tensors in, key for key
    print(f"{sum(p.numel() for p in ref.parameters()) / 1e3:.0f} k parameters, {len(model.state_dict())} "
          f"state_dict entries; adapter {tinydl.device_info()['adapter']}\n")

    rng = np.random.default_rng(0)
    lengths = [16, 11, 5, 14]
    ids = np.zeros((len(lengths), 16), np.int64)     # a padded batch
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, VOCAB, n)
    report = compare(ref, model, ids, title="TorchClassifier vs its tinydl port, 4x16 token ids")

    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        logits = model(tinydl.tensor(ids)).numpy()
        times.append(time.perf_counter() - t0)
    print(f"\npredicted classes: {logits.argmax(1).tolist()} (torch: "
          f"{ref(torch.from_numpy(ids)).argmax(1).tolist()}); {len(tinydl.debug.last_kernels())} kernels, "
          f"median forward {statistics.median(times) * 1e3:.0f} ms")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
