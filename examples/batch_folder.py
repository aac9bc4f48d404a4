"""Batch inference over a folder of images with torchvision's ImageNet MobileNetV2 (real weights) converted by
tinydl.from_torch: prints the top-1 class per file.

    python examples/batch_folder.py DIR --batch 8
    python examples/batch_folder.py "$(.venv/bin/python -c 'import importlib.util as u; print(u.find_spec("skimage").submodule_search_locations[0])')/data" --check

Every image is preprocessed like torchvision (resize 256, center crop 224, normalize; grayscale and RGBA
become RGB). Batches all have --batch images (the last one is padded by repeating its last image), so one
compiled plan serves every batch. --check also runs torch on the CPU and reports files whose top-1 differs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from PIL import Image, UnidentifiedImageError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imagenet_common as common  # noqa: E402

import tinydl  # noqa: E402

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def images_in(folder: str) -> list[tuple[str, np.ndarray]]:
    out = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.lower().endswith(EXTENSIONS) or not os.path.isfile(path):
            continue
        try:
            out.append((name, common.preprocess(path)))
        except (UnidentifiedImageError, OSError) as e:
            print(f"skipped {name}: {e}", file=sys.stderr)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--batch", type=int, default=8, help="images per forward (default 8)")
    parser.add_argument("--check", action="store_true", help="compare every top-1 with torch on the CPU")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if not os.path.isdir(args.folder):
        parser.error(f"not a folder: {args.folder}")

    files = images_in(args.folder)
    if not files:
        print(f"no images in {args.folder}", file=sys.stderr)
        return 1
    torch_model = common.torch_mobilenet_v2()
    model = tinydl.from_torch(torch_model)
    names = common.categories()
    print(f"{len(files)} images, batches of {args.batch}, on {tinydl.device_info()['adapter']}")

    width = max(len(n) for n, _ in files)
    mismatches, t_start, batch_times = [], time.perf_counter(), []
    for start in range(0, len(files), args.batch):
        chunk = files[start:start + args.batch]
        x = np.stack([a for _, a in chunk] + [chunk[-1][1]] * (args.batch - len(chunk)))
        t0 = time.perf_counter()
        probs = common.softmax(model(tinydl.tensor(x)).numpy())[:len(chunk)]
        batch_times.append(time.perf_counter() - t0)
        if args.check:
            import torch
            with torch.no_grad():
                ref = torch_model(torch.from_numpy(x)).numpy()[:len(chunk)].argmax(1)
        for i, (name, _) in enumerate(chunk):
            top = int(probs[i].argmax())
            line = f"{name:<{width}}  {names[top]:<28} {probs[i, top] * 100:6.2f}%"
            if args.check:
                agrees = top == int(ref[i])
                line += "  (torch agrees)" if agrees else f"  (torch: {names[int(ref[i])]})"
                if not agrees:
                    mismatches.append(name)
            print(line)
    total = time.perf_counter() - t_start
    steady = f", {np.median(batch_times[1:]) / args.batch * 1e3:.0f} ms per image after the first batch" \
        if len(batch_times) > 1 else ""
    print(f"{len(files)} images in {total:.1f} s (the first batch compiles the kernels){steady}")
    if args.check:
        print(f"top-1 identical to torch for {len(files) - len(mismatches)}/{len(files)} images")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
