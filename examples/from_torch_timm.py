"""A timm model, unchanged, converted with tinydl.from_torch, with its parity to torch printed by
tinydl.testing.compare.

    python examples/from_torch_timm.py                       # mobilenetv3_small_100 at 224x224
    python examples/from_torch_timm.py --model efficientnet_b0 --size 160

No download: the model is built from timm's definition with random weights (timm's pretrained weights come
from the Hugging Face hub). timm's initialization leaves BatchNorm statistics at 0/1 and the classifier near
zero, which would make a weak parity check (tiny logits), so the weights and BN statistics are drawn again
with a fixed seed (the logits are then of order 10).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def randomize(model, seed: int = 0) -> None:
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.ndim > 1:  # conv / linear weights: keep activations of order 1 through the depth
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenetv3_small_100", help="a timm model name")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    args = parser.parse_args()

    import torch

    import tinydl
    from tinydl.interop.torchvision_compat import import_torchvision
    from tinydl.testing import compare
    import_torchvision()  # before timm: makes torchvision importable on the CPU-only torch wheel
    import timm

    torch.manual_seed(0)
    torch_model = timm.create_model(args.model, pretrained=False).eval()
    randomize(torch_model)
    t0 = time.perf_counter()
    model = tinydl.from_torch(torch_model)
    n_params = sum(p.numel() for p in torch_model.parameters())
    print(f"timm {args.model}: {n_params / 1e6:.2f} M parameters, converted in {time.perf_counter() - t0:.1f} s "
          f"({len(model.state_dict())} state_dict entries, same keys as torch's)")
    print(f"adapter: {tinydl.device_info()['adapter']}\n")

    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    report = compare(torch_model, model, x, title=f"{args.model} 1x3x{args.size}x{args.size}")

    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        model(tinydl.tensor(x)).numpy()
        times.append(time.perf_counter() - t0)
    print(f"\n{len(tinydl.debug.last_kernels())} kernels per forward; median forward (numpy in, numpy out) "
          f"{statistics.median(times) * 1e3:.0f} ms")
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
