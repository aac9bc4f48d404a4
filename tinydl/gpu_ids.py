"""Who each GPU is, beyond what WebGPU tells: wgpu's adapter info has a name and vendor/device ids but no UUID or
PCI bus, so two identical GPUs look the same. Two outside sources fill the gap, both optional:
- `vulkan_devices()`: Vulkan's own list of physical devices (the loader's order, the one wgpu's Vulkan adapters
  come in), each with its deviceUUID (VkPhysicalDeviceIDProperties), read through ctypes from libvulkan;
- `nvidia_uuids()`: `nvidia-smi`'s index -> UUID, the numbering Ray and CUDA_VISIBLE_DEVICES use. NVIDIA's
  Vulkan deviceUUID is the same 16 bytes as this UUID ("GPU-" + 8-4-4-4-12 hex digits).
Each returns an empty result where its source is missing; adapter.adapter_for_gpu decides what to do then."""
from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
from typing import NamedTuple

# Vulkan constants (vulkan_core.h)
_APP_INFO, _INSTANCE_CREATE_INFO = 0, 1
_PROPERTIES_2, _ID_PROPERTIES = 1000059001, 1000071004
_API_1_1 = (1 << 22) | (1 << 12)
_NAME_AT, _NAME_LEN = 20, 256  # deviceName's offset and size in VkPhysicalDeviceProperties
_PROPS_BYTES = 1024            # VkPhysicalDeviceProperties is 824 bytes on 64-bit; room to spare
NVIDIA_SMI_TIMEOUT_S = 10


class VulkanDevice(NamedTuple):
    name: str
    vendor_id: int
    device_id: int
    uuid: str  # "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (NVIDIA's spelling of the 16 bytes); "" if unknown


def uuid_string(raw: bytes) -> str:
    h = raw.hex()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class _AppInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("pApplicationName", ctypes.c_char_p),
                ("applicationVersion", ctypes.c_uint32), ("pEngineName", ctypes.c_char_p),
                ("engineVersion", ctypes.c_uint32), ("apiVersion", ctypes.c_uint32)]


class _InstanceInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("pApplicationInfo", ctypes.POINTER(_AppInfo)), ("enabledLayerCount", ctypes.c_uint32),
                ("ppEnabledLayerNames", ctypes.c_void_p), ("enabledExtensionCount", ctypes.c_uint32),
                ("ppEnabledExtensionNames", ctypes.c_void_p)]


class _IdProps(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("deviceUUID", ctypes.c_uint8 * 16),
                ("driverUUID", ctypes.c_uint8 * 16), ("deviceLUID", ctypes.c_uint8 * 8),
                ("deviceNodeMask", ctypes.c_uint32), ("deviceLUIDValid", ctypes.c_uint32)]


class _Props2(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("properties", ctypes.c_uint8 * _PROPS_BYTES)]


def _libvulkan():
    for name in ("libvulkan.so.1", ctypes.util.find_library("vulkan"), "vulkan-1.dll"):
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    return None


def vulkan_devices() -> list[VulkanDevice]:
    """Vulkan's physical devices in the loader's order; [] without a Vulkan loader or on any Vulkan error."""
    vk = _libvulkan()
    if vk is None:
        return []
    app = _AppInfo(_APP_INFO, None, b"tinydl", 0, b"tinydl", 0, _API_1_1)
    create = _InstanceInfo(_INSTANCE_CREATE_INFO, None, 0, ctypes.pointer(app), 0, None, 0, None)
    instance = ctypes.c_void_p()
    if vk.vkCreateInstance(ctypes.byref(create), None, ctypes.byref(instance)) != 0:
        return []
    try:
        count = ctypes.c_uint32(0)
        if vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None) != 0:
            return []
        handles = (ctypes.c_void_p * count.value)()
        if vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles) not in (0, 5):  # 5: VK_INCOMPLETE
            return []
        out = []
        for handle in handles[:count.value]:
            ids = _IdProps(_ID_PROPERTIES, None)
            props = _Props2(_PROPERTIES_2, ctypes.cast(ctypes.pointer(ids), ctypes.c_void_p))
            vk.vkGetPhysicalDeviceProperties2(ctypes.c_void_p(handle), ctypes.byref(props))
            raw = bytes(props.properties)
            api, vendor, device = (int.from_bytes(raw[i:i + 4], "little") for i in (0, 8, 12))
            name = raw[_NAME_AT:_NAME_AT + _NAME_LEN].split(b"\0")[0].decode(errors="replace")
            # the ID properties are Vulkan 1.1: a 1.0 device leaves them unfilled
            uuid = uuid_string(bytes(ids.deviceUUID)) if api >= _API_1_1 else ""
            out.append(VulkanDevice(name, vendor, device, uuid))
        return out
    finally:
        vk.vkDestroyInstance(instance, None)


def nvidia_uuids() -> dict[int, str]:
    """nvidia-smi's GPU index -> UUID (Ray's and CUDA_VISIBLE_DEVICES' numbering); {} without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    try:
        text = subprocess.run([exe, "--query-gpu=index,uuid", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in text.splitlines():
        index, _, uuid = line.partition(",")
        if index.strip().isdigit():
            out[int(index)] = uuid.strip()
    return out
