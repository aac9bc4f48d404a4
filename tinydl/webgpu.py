"""Which WebGPU implementation tinydl runs on, as a value: wgpu-native (the `wgpu` package, the default) or Dawn,
Google's implementation (the `wgpudawn` package, `pip install tinydl[dawn]`), which reaches tensor cores through
its subgroup matrices. Both speak wgpu-py's API; everything above the runtime is shared. What differs lives here:
the module, the C entry points tinydl calls directly, the errors each raises, the feature names asked for, and
the WGSL dialect (directives one compiler needs and the other refuses).

Chosen by tinydl.use_backend(name) before the first tensor op, else TINYDL_BACKEND (wgpu or dawn), else wgpu."""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from types import ModuleType

from . import ctypes_cache
from .transfers import NativeMaps

BACKEND_ENV = "TINYDL_BACKEND"
NAMES = {"wgpu": "wgpu-native", "wgpu-native": "wgpu-native", "dawn": "dawn"}

# Dawn's toggles: experimental features (subgroup matrices) are "unsafe APIs"; f16 on NVIDIA's Vulkan driver is
# behind a toggle of its own
DAWN_TOGGLES = ("allow_unsafe_apis", "vulkan_enable_f16_on_nvidia")
# and off: timestamps rounded to steps of ~3.3 us (a browser's guard against timing attacks) would blur the
# profiler's and the sweeps' kernel times
DAWN_TOGGLES_OFF = ("timestamp_quantization",)
# more of Dawn's toggles to enable ("name") or disable ("-name"), comma-separated: how a Dawn setting is tried
# (docs/benchmarks.md has the ones measured)
DAWN_TOGGLES_ENV = "TINYDL_DAWN_TOGGLES"
SUBGROUP_MATRIX = "chromium-experimental-subgroup-matrix"


@dataclass(frozen=True)
class Backend:
    name: str               # "wgpu-native" or "dawn"
    api: ModuleType         # the wgpu-py-style module: wgpu or wgpudawn
    ffi: object             # cffi's ffi of its C API, for the dispatch loop (Runtime._encode); None: the public API
    lib: object             # its C library (webgpu.h names)
    maps: object            # transfers.NativeMaps: read-backs mapped through lib; None: wgpu-py's map_sync
    errors: tuple           # the exception classes its calls raise
    features: tuple         # the device features tinydl asks for where the adapter has them
    threads: bool           # its device may be called from several threads at once (split uploads, compile_all)
    staged_uploads: bool    # big uploads go through pooled mapped buffers (transfers.UploadStaging), not queue writes

    def prepare(self, wgsl: str) -> str:
        """The shader as this implementation's compiler takes it: Tint (Dawn) needs `enable subgroups;` before
        any subgroup builtin, which naga (wgpu-native) refuses."""
        if self.name != "dawn" or "enable subgroups;" in wgsl or not _SUBGROUP_USE.search(wgsl):
            return wgsl
        return "enable subgroups;\n" + wgsl

    def adapters(self) -> list:
        return list(self.api.gpu.enumerate_adapters_sync())

    def matrix_configs(self, adapter) -> list[dict]:
        """The subgroup-matrix shapes and types the adapter has (Dawn's adapter properties): dicts with
        component_type, result_component_type, m, n, k, min/max_subgroup_size; [] without the feature."""
        if self.name != "dawn" or SUBGROUP_MATRIX not in adapter.features:
            return []
        from wgpudawn.backends.dawn import extras
        return list(extras.get_adapter_properties(adapter).get("subgroup_matrix_configs", []))

    def has_f16_matrices(self, adapter, features) -> bool:
        """Whether float16 16x16x16 subgroup matrices accumulating in float32 are there (kernels/gemm_matrix.py's
        tiles) for a subgroup of 32 lanes, and the device was granted the feature."""
        return SUBGROUP_MATRIX in features and any(
            (c["component_type"], c["result_component_type"], c["m"], c["n"], c["k"]) == ("f16", "f32", 16, 16, 16)
            and c["min_subgroup_size"] <= 32 <= c["max_subgroup_size"] for c in self.matrix_configs(adapter))


_SUBGROUP_USE = re.compile(r"\bsubgroup[A-Z]\w*\(|@builtin\(subgroup_(size|invocation_id|id)\)")


def default_name() -> str:
    return os.environ.get(BACKEND_ENV, "").strip().lower() or "wgpu"


def canonical(name: str | None) -> str:
    """The implementation a name means ("wgpu" and "wgpu-native" are one); None: TINYDL_BACKEND or wgpu."""
    given = default_name() if name is None else str(name).strip().lower()
    if given not in NAMES:
        where = f"{BACKEND_ENV}={given!r}" if name is None else f"backend={name!r}"
        raise ValueError(f"{where}: expected one of 'wgpu' (wgpu-native, the default) or 'dawn'")
    return NAMES[given]


@functools.cache
def load(name: str | None = None) -> Backend:
    """The Backend named (see canonical); raises ImportError naming the package to install where it is missing."""
    name = canonical(name)
    if name == "dawn":
        return _dawn()
    import wgpu
    try:  # wgpu-native's C entry points, called without wgpu-py's per-call error capture (see Runtime._encode)
        from wgpu.backends.wgpu_native import _api, _helpers
        from wgpu.backends.wgpu_native._api import ffi, lib
        ctypes_cache.prime_module(ffi, _api, _helpers)
    except ImportError:  # another wgpu-py layout: the public API
        ffi = lib = None
    maps = NativeMaps.wgpu_native(ffi, lib) if lib is not None else None
    return Backend("wgpu-native", wgpu, ffi, lib, maps, (wgpu.GPUError, wgpu.GPUPipelineError),
                   ("shader-f16", "timestamp-query", "subgroup"), True, False)


def dawn_toggles(spec: str, known) -> tuple[list[str], list[str]]:
    """The toggles Dawn's instance is made with: DAWN_TOGGLES (DAWN_TOGGLES_OFF disabled) and those spec
    (TINYDL_DAWN_TOGGLES) names, as (enabled, disabled); known: the toggle names Dawn has (an unknown name raises,
    naming it)."""
    enable, disable = list(DAWN_TOGGLES), list(DAWN_TOGGLES_OFF)
    names = {str(t["name"] if isinstance(t, dict) else t) for t in known}
    for item in filter(None, (part.strip() for part in spec.replace(" ", ",").split(","))):
        name = item.lstrip("-")
        if name not in names:
            raise ValueError(f"{DAWN_TOGGLES_ENV}: Dawn has no toggle {name!r} (wgpudawn's extras.all_toggles() lists "
                             "them)")
        on = not item.startswith("-")
        (enable if on else disable).append(name)
        if on and name in disable:  # asked for again: one of tinydl's own off-toggles turned back on
            disable.remove(name)
    return [t for t in enable if t not in disable], disable


def _dawn() -> Backend:
    try:
        import wgpudawn
        from wgpudawn.backends.dawn import extras
        from wgpudawn.backends.dawn._api import ffi, lib
        from wgpudawn.backends.dawn._helpers import get_wgpu_instance
    except ImportError as e:
        raise ImportError(f"tinydl's Dawn backend needs the wgpudawn package: pip install 'tinydl[dawn]' ({e})") \
            from e
    enable, disable = dawn_toggles(os.environ.get(DAWN_TOGGLES_ENV, ""), extras.all_toggles())
    try:
        extras.set_instance_extras(enable_toggles=enable, disable_toggles=disable)
    except Exception as e:  # the instance exists already (something else made it): keep it, say so if it matters
        if "instance" not in str(e).lower():
            raise
    # the dispatch loop's three calls and read-back maps have webgpu.h's signatures in Dawn too (its waits:
    # ProcessEvents and WaitAny, no wgpuDevicePoll). Dawn's device refuses calls from several threads at once
    # ("Concurrent buffer operations are not allowed"): uploads in one piece, pipelines compiled one at a time.
    maps = NativeMaps.dawn(ffi, lib, get_wgpu_instance())
    return Backend("dawn", wgpudawn, ffi, lib, maps, (wgpudawn.GPUError, wgpudawn.GPUPipelineError),
                   ("shader-f16", "timestamp-query", "subgroups", SUBGROUP_MATRIX), False, True)
