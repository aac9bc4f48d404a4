"""Which GPU tinydl runs on, and the device it asks of it: the adapter choice (TINYDL_ADAPTER, else the best
backend and type), and the features and limits requested (the adapter's best, not WebGPU's defaults)."""
from __future__ import annotations

import os
import tempfile

import wgpu

WANTED_FEATURES = ("shader-f16", "timestamp-query", "subgroup")
WANTED_LIMITS = (
    "max-storage-buffers-per-shader-stage", "max-storage-buffer-binding-size", "max-buffer-size",
    "max-compute-workgroup-storage-size", "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-size-x", "max-compute-workgroup-size-y", "max-compute-workgroup-size-z",
    "max-compute-workgroups-per-dimension", "max-bindings-per-bind-group",
)
_TYPE_RANK = {"DiscreteGPU": 0, "IntegratedGPU": 1, "VirtualGPU": 2, "CPU": 3, "Unknown": 4}
_BACKEND_RANK = {"Vulkan": 0, "Metal": 0, "D3D12": 0, "OpenGL": 2}


class NoAdapterError(RuntimeError):
    pass


NO_ADAPTER = ("tinydl found no WebGPU adapter. Install a GPU driver with Vulkan/Metal/D3D12 support, or on Linux "
              "without a GPU the software Vulkan driver: `apt-get install mesa-vulkan-drivers`.")


def list_adapters() -> list:
    """Every adapter wgpu finds, in its order (the indices TINYDL_ADAPTER and `tinydl info` use)."""
    # Mesa warns when XDG_RUNTIME_DIR is unset (headless machines): set it only while the adapters are listed
    unset = "XDG_RUNTIME_DIR" not in os.environ
    if unset:
        os.environ["XDG_RUNTIME_DIR"] = tempfile.gettempdir()
    try:
        return list(wgpu.gpu.enumerate_adapters_sync())
    finally:
        if unset:
            os.environ.pop("XDG_RUNTIME_DIR", None)


def pick_adapter():
    """The adapter tinydl runs on: TINYDL_ADAPTER (an index or part of its summary) or the best by backend and type."""
    return choose(list_adapters())[0]


def choose(adapters: list) -> tuple[object, str]:
    """(the adapter tinydl runs on, why): TINYDL_ADAPTER (an index or part of its summary), else the best by
    backend and type. Raises NoAdapterError when there is none, or none that TINYDL_ADAPTER names."""
    if not adapters:
        raise NoAdapterError(NO_ADAPTER)
    choice = os.environ.get("TINYDL_ADAPTER", "").strip()
    if choice:
        if choice.isdigit():
            idx = int(choice)
            if idx >= len(adapters):
                raise NoAdapterError(f"TINYDL_ADAPTER={choice}: only {len(adapters)} adapters: "
                                     + "; ".join(f"{i}: {a.summary}" for i, a in enumerate(adapters)))
            return adapters[idx], f"TINYDL_ADAPTER={choice} (an index)"
        for a in adapters:
            if choice.lower() in a.summary.lower():
                return a, f"TINYDL_ADAPTER={choice!r} (the first adapter whose description contains it)"
        raise NoAdapterError(f"TINYDL_ADAPTER={choice!r} matches no adapter; found: "
                             + "; ".join(f"{i}: {a.summary}" for i, a in enumerate(adapters)))
    best = min(adapters, key=lambda a: (_BACKEND_RANK.get(a.info.get("backend_type"), 1),
                                        _TYPE_RANK.get(a.info.get("adapter_type"), 4)))
    return best, ("the best found: Vulkan/Metal/D3D12 before OpenGL, then discrete > integrated > virtual > CPU "
                  "(TINYDL_ADAPTER=N or =name picks another)")


def request_device(adapter):
    """A device with the WANTED_FEATURES the adapter has and its best WANTED_LIMITS; returns (device, features)."""
    feats = [f for f in WANTED_FEATURES if f in adapter.features]
    limits = {k: adapter.limits[k] for k in WANTED_LIMITS if k in adapter.limits}
    return adapter.request_device_sync(required_features=feats, required_limits=limits), set(feats)
