"""Importing torchvision on a CPU-only torch.

PyPI only has CUDA builds of torchvision; on the CPU torch wheel its C++ ops fail to register and
`import torchvision` dies with "operator torchvision::nms does not exist". Model definitions do not need those
ops, so declaring their schemas first lets torchvision import (calling nms itself still fails).
"""
from __future__ import annotations


def import_torchvision():
    import importlib
    import sys

    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    try:
        return importlib.import_module("torchvision")
    except (RuntimeError, ImportError) as e:
        if "torchvision::nms" not in str(e):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    import torch

    global _lib
    _lib = torch.library.Library("torchvision", "DEF")
    _lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold, float scale) -> Tensor")
    return importlib.import_module("torchvision")


_lib = None
