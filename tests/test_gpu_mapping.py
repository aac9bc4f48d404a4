"""Which WebGPU adapter a scheduler-assigned GPU (Ray's id: an nvidia-smi index or a UUID) maps to: by Vulkan's
device UUID, else by enumeration order with a warning; TINYDL_ADAPTER always wins. Fake adapter lists, no GPU;
one test reads the real Vulkan list (lavapipe in CI)."""
import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest

from tinydl import adapter
from tinydl.adapter import NoAdapterError, adapter_for_gpu
from tinydl.gpu_ids import VulkanDevice, uuid_string, vulkan_devices

H200 = dict(device="NVIDIA H200", vendor_id=0x10DE, device_id=0x2335, adapter_type="DiscreteGPU")
UUIDS = ["GPU-aaaa0000-0000-0000-0000-000000000000", "GPU-bbbb0000-0000-0000-0000-000000000000",
         "GPU-cccc0000-0000-0000-0000-000000000000"]


def fake(backend, **info):
    info = dict(info, backend_type=backend)
    return SimpleNamespace(info=info, summary=f"{info['device']} ({info['adapter_type']}) via {backend}")


def host(n=3):
    """A node's adapters as wgpu lists them: n GPUs via Vulkan, the same via OpenGL, lavapipe last."""
    cpu = dict(device="llvmpipe", vendor_id=0x10005, device_id=0, adapter_type="CPU")
    return [fake("Vulkan", **H200) for _ in range(n)] + [fake("Vulkan", **cpu)] + \
           [fake("OpenGL", **H200) for _ in range(n)]


def vulkan(n=3, order=None):
    """Vulkan's own list for host(n), in the same order, with UUIDs (`order`: which UUID each position has)."""
    order = order or list(range(n))
    return [VulkanDevice("NVIDIA H200", 0x10DE, 0x2335, UUIDS[k]) for k in order] + \
           [VulkanDevice("llvmpipe", 0x10005, 0, "GPU-11111111-0000-0000-0000-000000000000")]


def test_index_maps_through_the_uuid_not_the_order():
    # Vulkan lists the GPUs in another order than nvidia-smi: nvidia-smi index 0 is the third Vulkan device
    nvidia = {0: UUIDS[0], 1: UUIDS[1], 2: UUIDS[2]}
    order = [2, 0, 1]
    for index in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a UUID match never warns
            got = adapter_for_gpu(host(), index, vulkan=vulkan(order=order), nvidia=nvidia)
        assert got == order.index(index)


def test_uuid_and_unique_uuid_prefix():
    assert adapter_for_gpu(host(), UUIDS[1], vulkan=vulkan(), nvidia={}) == 1
    assert adapter_for_gpu(host(), "GPU-cccc", vulkan=vulkan(), nvidia={}) == 2  # CUDA_VISIBLE_DEVICES' short form
    with pytest.raises(NoAdapterError, match="GPU-dddd.*no Vulkan adapter has this UUID"):
        adapter_for_gpu(host(), "GPU-dddd", vulkan=vulkan(), nvidia={})
    with pytest.raises(NoAdapterError, match="no Vulkan adapter"):
        adapter_for_gpu(host(), "GPU-", vulkan=vulkan(), nvidia={})  # a prefix of every UUID: ambiguous


def test_no_uuid_source_falls_back_to_order_with_a_warning():
    for vk, nvidia in (([], {0: UUIDS[0], 1: UUIDS[1]}), (vulkan(), {})):  # no Vulkan loader; no nvidia-smi
        with pytest.warns(RuntimeWarning, match="enumeration order"):
            assert adapter_for_gpu(host(), "1", vulkan=vk, nvidia=nvidia) == 1


def test_lists_that_do_not_pair_up_are_not_trusted():
    # wgpu skipped a device Vulkan lists (or the names differ): positions say nothing, so order with a warning
    shifted = [VulkanDevice("Other GPU", 0x1002, 1, UUIDS[0])] + vulkan()
    with pytest.warns(RuntimeWarning, match="enumeration order"):
        assert adapter_for_gpu(host(), 0, vulkan=shifted, nvidia={0: UUIDS[1]}) == 0


def test_order_fallback_counts_only_the_best_adapters():
    with pytest.raises(NoAdapterError, match="gpu=3: only 3 adapters of the best kind"):
        adapter_for_gpu(host(), 3, vulkan=[], nvidia={})


def test_bad_gpu_value():
    with pytest.raises(NoAdapterError, match="expected a GPU index or a UUID"):
        adapter_for_gpu(host(), "cuda:0", vulkan=[], nvidia={})


def test_pick_adapter_passes_the_gpu_and_tinydl_adapter_wins(monkeypatch):
    listed = host()
    monkeypatch.setattr(adapter.webgpu.load("wgpu").api.gpu, "enumerate_adapters_sync", lambda: listed)
    monkeypatch.setattr(adapter.gpu_ids, "vulkan_devices", lambda: vulkan(order=[1, 2, 0]))
    monkeypatch.setattr(adapter.gpu_ids, "nvidia_uuids", lambda: dict(enumerate(UUIDS)))
    monkeypatch.delenv("TINYDL_ADAPTER", raising=False)
    assert adapter.pick_adapter(gpu="0") is listed[2]
    assert adapter.pick_adapter() is listed[0]
    monkeypatch.setenv("TINYDL_ADAPTER", "3")
    assert adapter.pick_adapter(gpu="0") is listed[3]


def test_uuid_string():
    assert uuid_string(bytes(range(16))) == "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"


def test_real_vulkan_list_pairs_with_wgpus():
    """The ctypes read of Vulkan's devices pairs with wgpu's Vulkan adapters, and each adapter is found by its
    own UUID (on lavapipe in CI: one device)."""
    import wgpu
    listed = list(wgpu.gpu.enumerate_adapters_sync())
    vk = vulkan_devices()
    ours = [i for i, a in enumerate(listed) if a.info.get("backend_type") == "Vulkan"]
    assert [d.name for d in vk] == [listed[i].info["device"] for i in ours]
    for i, d in zip(ours, vk):
        assert d.uuid.startswith("GPU-") and len(d.uuid) == 40
        assert adapter_for_gpu(listed, d.uuid, nvidia={}) == i


def test_use_gpu_starts_the_device_on_that_adapter():
    """In a fresh process: use_gpu(uuid) runs tinydl on that adapter; asking for another GPU afterwards raises."""
    code = ("import tinydl; from tinydl.gpu_ids import vulkan_devices; u = vulkan_devices()[0].uuid;"
            "rt = tinydl.use_gpu(u); print(rt.adapter.info['backend_type'], float(tinydl.tensor([2.0]).sum().item()));"
            "assert tinydl.use_gpu(u) is rt\n"
            "try:\n    tinydl.use_gpu('GPU-ffff')\nexcept RuntimeError as e:\n    print('refused:', e)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "TINYDL_ADAPTER"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == "Vulkan 2.0"
    assert "refused: tinydl already runs on" in res.stdout
