"""tinydl demo: a small CNN run lazily and fused on WebGPU, checked against torch on the CPU.

The model (random weights, torch.manual_seed) is a miniature ResNet: conv-bn-relu stem, max pool, one
residual basic block, adaptive average pool, a two-layer head with GELU, softmax. tinydl runs the same
computation with tinydl.nn.functional on the torch weights; the demo prints the adapter, the kernels the
scheduler dispatched, the difference to torch, the top-5 classes of both, and the time per forward.

Run it with `make demo` (or `.venv/bin/python examples/demo.py` once set up). Exits 1 if parity fails.
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn

import tinydl
import tinydl.nn.functional as F

TOLERANCE = 1e-3  # max abs difference allowed between tinydl and torch (fp32 on both sides)


# -- the torch reference -----------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class TinyNet(nn.Module):
    def __init__(self, c=16, hidden=32, classes=10):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.block = BasicBlock(c)
        self.fc1, self.fc2 = nn.Linear(c, hidden), nn.Linear(hidden, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.max_pool2d(x, 2)
        x = self.block(x)
        x = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
        x = torch.nn.functional.gelu(self.fc1(x))
        return torch.softmax(self.fc2(x), dim=1)


def make_model() -> TinyNet:
    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():  # non-trivial BN statistics, so the BN math is really exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


# -- the same computation in tinydl --------------------------------------------------------------------------
def load(model: TinyNet) -> dict:
    """Upload every parameter/buffer once (tinydl.tensor copies a torch tensor to the GPU)."""
    return {k: tinydl.tensor(v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def bn(x, p, name):
    return F.batch_norm(x, p[f"{name}.running_mean"], p[f"{name}.running_var"], p[f"{name}.weight"],
                        p[f"{name}.bias"])


def forward(p: dict, x):
    x = F.relu(bn(F.conv2d(x, p["conv.weight"], padding=1), p, "bn"))
    x = F.max_pool2d(x, 2)
    y = F.relu(bn(F.conv2d(x, p["block.conv1.weight"], padding=1), p, "block.bn1"))
    x = F.relu(bn(F.conv2d(y, p["block.conv2.weight"], padding=1), p, "block.bn2") + x)
    x = F.adaptive_avg_pool2d(x, 1).flatten(1)
    x = F.gelu(F.linear(x, p["fc1.weight"], p["fc1.bias"]))
    return F.softmax(F.linear(x, p["fc2.weight"], p["fc2.bias"]), dim=1)


def tinydl_forward(p: dict, x_np: np.ndarray) -> np.ndarray:
    """One forward as an application sees it: numpy in, numpy out (upload, one submit, read-back)."""
    return forward(p, tinydl.tensor(x_np)).numpy()


def main() -> int:
    t_start = time.perf_counter()
    info = tinydl.device_info()
    print(f"adapter:  {info['adapter']} ({info['backend']}, {info['adapter_type']})")

    # 1. fusion of an elementwise chain: six ops, one kernel
    a, b = tinydl.tensor(np.linspace(-2, 2, 1000, dtype=np.float32)), tinydl.tensor(np.ones(1000, np.float32))
    with tinydl.debug.count_kernels() as c:
        chain = ((a * 2 + b).exp().sigmoid() - 0.5).relu().numpy()
    an, bn_ = a.numpy(), b.numpy()
    ref = np.maximum(1 / (1 + np.exp(-np.exp(an * 2 + bn_))) - 0.5, 0)
    chain_ok = c.count == 1 and np.abs(chain - ref).max() <= 1e-5
    print(f"\nelementwise chain ((a*2+b).exp().sigmoid()-0.5).relu(): {c.count} kernel: {c.names[0]}")

    # 2. the CNN
    model = make_model()
    params = load(model)
    x_np = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x_np)).numpy()

    plans0, pipes0 = tinydl.debug.stats["plans"], tinydl.debug.stats["pipelines"]
    with tinydl.debug.count_kernels() as c:
        got = tinydl_forward(params, x_np)  # first forward: plans the graph, compiles the pipelines
    print(f"\nTinyNet forward (1x3x32x32): {c.count} kernels, one submit "
          f"({tinydl.debug.stats['plans'] - plans0} plan, {tinydl.debug.stats['pipelines'] - pipes0} pipelines built)")
    for name in c.names:
        print(f"  {name}")

    diff = float(np.abs(got - expected).max())
    ok = diff <= TOLERANCE and got.shape == expected.shape
    print(f"\nmax |tinydl - torch| = {diff:.2e}  (tolerance {TOLERANCE:g}): {'OK' if ok else 'FAILED'}")
    top_t, top_g = np.argsort(-expected[0])[:5], np.argsort(-got[0])[:5]
    print("top-5       torch               tinydl")
    for r, (i, j) in enumerate(zip(top_t, top_g), 1):
        print(f"  #{r}   class {i}: {expected[0, i]:.5f}   class {j}: {got[0, j]:.5f}")

    # 3. time per forward (the plan and pipelines are cached now: no planning, no shader compiles)
    for _ in range(2):
        tinydl_forward(params, x_np)
    plans1, pipes1 = tinydl.debug.stats["plans"], tinydl.debug.stats["pipelines"]
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        tinydl_forward(params, x_np)
        times.append(time.perf_counter() - t0)
    cached = (tinydl.debug.stats["plans"], tinydl.debug.stats["pipelines"]) == (plans1, pipes1)
    print(f"\nmedian time per forward (numpy in -> numpy out, 10 runs after warm-up): "
          f"{statistics.median(times) * 1e3:.2f} ms on {info['adapter']}"
          f"{'' if cached else '  (WARNING: plans/pipelines were rebuilt)'}")
    print(f"demo finished in {time.perf_counter() - t_start:.1f} s")

    if not (ok and chain_ok):
        print("PARITY FAILED" + ("" if chain_ok else " (elementwise chain)"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
