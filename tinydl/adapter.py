"""Which GPU tinydl runs on, and the device it asks of it: the adapter choice (TINYDL_ADAPTER, else the GPU a
scheduler assigned, matched by UUID, else the best backend and type), and the features and limits requested
(the adapter's best, not WebGPU's defaults)."""
from __future__ import annotations

import os
import tempfile
import warnings

from . import gpu_ids, webgpu

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
NO_DAWN_ADAPTER = ("tinydl's Dawn backend found no adapter Dawn accepts (Dawn refuses Mesa's software Vulkan, lavapipe, "
                   "and GPUs without the Vulkan/Metal/D3D12 features it requires); run on the default backend "
                   "(unset TINYDL_BACKEND, or tinydl.use_backend('wgpu')).")


def list_adapters(backend: str | None = None) -> list:
    """Every adapter the WebGPU implementation finds (webgpu.load(backend): TINYDL_BACKEND or wgpu-native), in
    its order (the indices TINYDL_ADAPTER and `tinydl info` use)."""
    # Mesa warns when XDG_RUNTIME_DIR is unset (headless machines): set it only while the adapters are listed
    unset = "XDG_RUNTIME_DIR" not in os.environ
    if unset:
        os.environ["XDG_RUNTIME_DIR"] = tempfile.gettempdir()
    try:
        return webgpu.load(backend).adapters()
    finally:
        if unset:
            os.environ.pop("XDG_RUNTIME_DIR", None)


def pick_adapter(gpu: str | int | None = None, backend: str | None = None):
    """The adapter tinydl runs on: see choose."""
    found = list_adapters(backend)
    if not found and webgpu.canonical(backend) == "dawn":
        raise NoAdapterError(NO_DAWN_ADAPTER)
    return choose(found, gpu)[0]


def choose(adapters: list, gpu: str | int | None = None) -> tuple[object, str]:
    """(the adapter tinydl runs on, why): TINYDL_ADAPTER (an index or part of its summary) always; else, given
    `gpu` (the GPU a scheduler such as Ray assigned: an nvidia-smi index or a UUID), the adapter of that GPU
    (adapter_for_gpu); else the best by backend and type. Raises NoAdapterError when there is none, or none that
    TINYDL_ADAPTER names."""
    if not adapters:
        raise NoAdapterError(NO_ADAPTER)
    choice = os.environ.get("TINYDL_ADAPTER", "").strip()
    if choice:
        named = f"TINYDL_ADAPTER={choice} (an index)" if choice.isdigit() else \
            f"TINYDL_ADAPTER={choice!r} (the first adapter whose description contains it)"
        return adapters[_by_setting(adapters, choice)], named
    if gpu is not None:
        return adapters[adapter_for_gpu(adapters, gpu)], f"the GPU asked for ({gpu}; adapter_for_gpu)"
    return min(adapters, key=_rank), ("the best found: Vulkan/Metal/D3D12 before OpenGL, then discrete > integrated > "
                                      "virtual > CPU (TINYDL_ADAPTER=N or =name picks another)")


def _rank(adapter) -> tuple[int, int]:
    return (_BACKEND_RANK.get(adapter.info.get("backend_type"), 1), _TYPE_RANK.get(adapter.info.get("adapter_type"), 4))


def _listing(adapters) -> str:
    return "; ".join(f"{i}: {a.summary}" for i, a in enumerate(adapters))


def _by_setting(adapters, choice: str) -> int:
    """TINYDL_ADAPTER's adapter: an index into the list, or the first whose summary contains the text."""
    if choice.isdigit():
        if int(choice) >= len(adapters):
            raise NoAdapterError(f"TINYDL_ADAPTER={choice}: only {len(adapters)} adapters: {_listing(adapters)}")
        return int(choice)
    for i, a in enumerate(adapters):
        if choice.lower() in a.summary.lower():
            return i
    raise NoAdapterError(f"TINYDL_ADAPTER={choice!r} matches no adapter; found: {_listing(adapters)}")


def adapter_for_gpu(adapters, gpu: str | int, vulkan: list | None = None, nvidia: dict | None = None) -> int:
    """The index in `adapters` of the GPU `gpu`: a UUID ("GPU-...", or a unique prefix of one, as
    CUDA_VISIBLE_DEVICES takes) or an index in nvidia-smi's (= Ray's, = CUDA's) numbering.

    wgpu gives no UUID or PCI bus, so the UUID comes from Vulkan itself (gpu_ids.vulkan_devices; `vulkan`
    replaces it in tests): its physical devices are listed in the order wgpu's Vulkan adapters come in, checked
    pair by pair by name and vendor/device ids. An index becomes a UUID through nvidia-smi (gpu_ids.nvidia_uuids;
    `nvidia` replaces it). Without both, an index falls back to the n-th of the best adapters (backend and type, in
    enumeration order), with a warning: that order may differ from CUDA's."""
    text = str(gpu).strip()
    uuid = text if text.upper().startswith("GPU-") else None
    if uuid is None and not text.isdigit():
        raise NoAdapterError(f"gpu={gpu!r}: expected a GPU index or a UUID (GPU-...)")
    if uuid is None:
        uuid = (gpu_ids.nvidia_uuids() if nvidia is None else nvidia).get(int(text))
    if uuid is not None:
        found = _by_uuid(adapters, uuid, gpu_ids.vulkan_devices() if vulkan is None else vulkan)
        if found is not None:
            return found
        if not text.isdigit():
            raise NoAdapterError(f"gpu={text!r}: no Vulkan adapter has this UUID; adapters: {_listing(adapters)}")
    best = min(_rank(a) for a in adapters)
    candidates = [i for i, a in enumerate(adapters) if _rank(a) == best]
    if int(text) >= len(candidates):
        raise NoAdapterError(f"gpu={text}: only {len(candidates)} adapters of the best kind: {_listing(adapters)}")
    warnings.warn(f"tinydl: no UUID to match GPU {text} with a WebGPU adapter (needs nvidia-smi and a Vulkan "
                  f"loader); took adapter {candidates[int(text)]} by enumeration order, which may differ from "
                  "CUDA's: set TINYDL_ADAPTER to be sure", RuntimeWarning, stacklevel=2)
    return candidates[int(text)]


def _by_uuid(adapters, uuid: str, vulkan: list) -> int | None:
    """The adapter whose Vulkan device has this UUID (or unique UUID prefix); None when wgpu's Vulkan adapters and
    Vulkan's device list do not pair up one to one, or no UUID matches."""
    ours = [i for i, a in enumerate(adapters) if a.info.get("backend_type") == "Vulkan"]
    if len(ours) != len(vulkan) or any(
            (a.info.get("device"), a.info.get("vendor_id"), a.info.get("device_id")) != (v.name, v.vendor_id,
                                                                                      v.device_id)
            for a, v in zip((adapters[i] for i in ours), vulkan)):
        return None
    hits = [i for i, v in zip(ours, vulkan) if v.uuid and v.uuid.lower().startswith(uuid.lower())]
    return hits[0] if len(hits) == 1 else None


def request_device(adapter, backend: "webgpu.Backend | None" = None):
    """A device with the features tinydl asks for (backend.features) that the adapter has and its best
    WANTED_LIMITS; returns (device, features)."""
    feats = [f for f in (backend or webgpu.load()).features if f in adapter.features]
    limits = {k: adapter.limits[k] for k in WANTED_LIMITS if k in adapter.limits}
    return adapter.request_device_sync(required_features=feats, required_limits=limits), set(feats)
