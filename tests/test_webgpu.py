"""The WebGPU implementation as a value (tinydl/webgpu.py): names, the WGSL dialect each compiler takes, the choice
through TINYDL_BACKEND / use_backend, and Dawn's refusal of an adapter it cannot run on (CI's lavapipe) as an error
that says what to do. The Dawn suite itself runs on the GPU box (docs/benchmarks.md)."""
import dataclasses
import os
import subprocess
import sys

import pytest

import tinydl
from tinydl import webgpu
from tinydl.runtime import get_runtime

SUBGROUP_KERNEL = ("@group(0) @binding(0) var<storage, read_write> d: array<f32>;\n"
                   "@compute @workgroup_size(32) fn main(@builtin(local_invocation_index) i: u32, "
                   "@builtin(subgroup_size) sgs: u32) { d[i] = subgroupShuffleXor(d[i], 1u) + f32(sgs); }\n")


@pytest.mark.parametrize("name, canonical", [("wgpu", "wgpu-native"), ("WGPU-native", "wgpu-native"),
                                             (" dawn ", "dawn")])
def test_backend_names(name, canonical):
    assert webgpu.canonical(name) == canonical


def test_bad_backend_names_say_what_is_expected(monkeypatch):
    with pytest.raises(ValueError, match=r"backend='vulkan': expected one of 'wgpu' .* or 'dawn'"):
        webgpu.canonical("vulkan")
    monkeypatch.setenv("TINYDL_BACKEND", "metal")
    with pytest.raises(ValueError, match=r"TINYDL_BACKEND='metal': expected one of"):
        webgpu.canonical(None)
    monkeypatch.setenv("TINYDL_BACKEND", "")
    assert webgpu.canonical(None) == "wgpu-native"


def test_tint_gets_enable_subgroups_and_naga_does_not():
    """Dawn's compiler needs `enable subgroups;` before subgroup builtins; wgpu-native's refuses the directive."""
    native = webgpu.load("wgpu")
    dawn = dataclasses.replace(native, name="dawn")
    assert native.prepare(SUBGROUP_KERNEL) == SUBGROUP_KERNEL
    assert dawn.prepare(SUBGROUP_KERNEL) == "enable subgroups;\n" + SUBGROUP_KERNEL
    assert dawn.prepare(dawn.prepare(SUBGROUP_KERNEL)).count("enable subgroups;") == 1
    plain = SUBGROUP_KERNEL.replace("subgroupShuffleXor(d[i], 1u)", "d[i]").replace(
        ", @builtin(subgroup_size) sgs: u32", "").replace(" + f32(sgs)", "")
    assert dawn.prepare(plain) == plain  # no subgroup use, no directive


def test_the_prepared_subgroup_kernel_runs_on_this_backend():
    """What prepare() hands this runtime's compiler compiles (on wgpu-native: unchanged)."""
    rt = get_runtime()
    if not {"subgroup", "subgroups"} & rt.features:
        pytest.skip("adapter without subgroups")
    assert rt.pipeline(SUBGROUP_KERNEL, "subgroup probe") is not None


def test_use_backend_after_the_device_started_on_another_raises():
    rt = get_runtime()
    other = "dawn" if rt.webgpu.name == "wgpu-native" else "wgpu"
    with pytest.raises(RuntimeError, match=f"already runs on {rt.webgpu.name}; use_backend\\('{other}'\\) must come "
                                           "before the first tensor op"):
        tinydl.use_backend(other)
    assert tinydl.use_backend(rt.webgpu.name) is rt  # the one in use: no error


def _run(code: str, backend: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TINYDL_BACKEND": backend}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)


def test_dawn_backend_loads_and_names_its_adapter_or_refuses_clearly():
    """TINYDL_BACKEND=dawn loads Dawn (wgpudawn) with its toggles and runs a tensor op on the adapter Dawn gives;
    where Dawn accepts no adapter (CI's lavapipe), the first op raises NoAdapterError saying why and what to do."""
    pytest.importorskip("wgpudawn")
    code = ("import tinydl, numpy as np\n"
            "from tinydl.adapter import NoAdapterError\n"
            "try:\n"
            "    y = (tinydl.tensor(np.arange(4, dtype=np.float32)) * 2).numpy()\n"
            "    print('ran', tinydl.device_info()['webgpu'], y.tolist())\n"
            "except NoAdapterError as e:\n"
            "    print('refused', e)\n")
    res = _run(code, "dawn")
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout.strip().splitlines()[-1]
    assert out in ("ran dawn [0.0, 2.0, 4.0, 6.0]",) or (
        out.startswith("refused tinydl's Dawn backend found no adapter Dawn accepts") and "TINYDL_BACKEND" in out), out


def test_a_bad_backend_variable_fails_at_the_first_op():
    res = _run("import tinydl; tinydl.tensor([1.0]).numpy()", "vulkan")
    assert res.returncode != 0 and "TINYDL_BACKEND='vulkan': expected one of 'wgpu'" in res.stderr, res.stderr[-2000:]


def test_dawn_toggles_from_the_environment():
    """TINYDL_DAWN_TOGGLES adds Dawn toggles to tinydl's own ("-name" disables one, tinydl's included; a name
    turns one of tinydl's off-toggles back on); a name Dawn does not have raises, naming it."""
    known = ["allow_unsafe_apis", "vulkan_enable_f16_on_nvidia", "disable_robustness", "skip_validation",
             "lazy_clear_resource_on_first_use", "timestamp_quantization"]
    off = ["timestamp_quantization"]  # tinydl's own: kernel times to the tick
    assert webgpu.dawn_toggles("", known) == (list(webgpu.DAWN_TOGGLES), off)
    assert webgpu.dawn_toggles(" disable_robustness, skip_validation -lazy_clear_resource_on_first_use", known) == (
        [*webgpu.DAWN_TOGGLES, "disable_robustness", "skip_validation"], [*off, "lazy_clear_resource_on_first_use"])
    assert webgpu.dawn_toggles("-vulkan_enable_f16_on_nvidia", known) == (
        ["allow_unsafe_apis"], [*off, "vulkan_enable_f16_on_nvidia"])
    assert webgpu.dawn_toggles("timestamp_quantization", known) == ([*webgpu.DAWN_TOGGLES, "timestamp_quantization"],
                                                                    [])
    with pytest.raises(ValueError, match="TINYDL_DAWN_TOGGLES: Dawn has no toggle 'fast'"):
        webgpu.dawn_toggles("disable_robustness,fast", known)


def test_a_bad_dawn_toggle_fails_at_the_first_op(monkeypatch):
    """The variable is read where Dawn's instance is made: a toggle Dawn lacks fails the first op, named."""
    pytest.importorskip("wgpudawn")
    monkeypatch.setenv("TINYDL_DAWN_TOGGLES", "no_such_toggle")
    res = _run("import tinydl; tinydl.tensor([1.0]).numpy()", "dawn")
    assert res.returncode != 0 and "Dawn has no toggle 'no_such_toggle'" in res.stderr, res.stderr[-2000:]


def test_primed_c_type_strings_are_the_types_cffi_parses():
    """The type strings resolved without cffi's parser (tinydl/ctypes_cache.py) are the very types cffi's parser
    gives; a model's first call then parses none."""
    from tinydl import ctypes_cache
    ffi = get_runtime().webgpu.ffi
    if not hasattr(ffi, "_parsed_types"):
        pytest.skip("a compiled FFI (Dawn): its type strings parse quickly")
    from wgpu.backends.wgpu_native import _api, _helpers
    strings = ctypes_cache.type_strings(*(open(m.__file__).read() for m in (_api, _helpers))) | set(ctypes_cache.OWN)
    primed = [s for s in strings if isinstance(ffi._parsed_types.get(s), tuple)]
    assert {"WGPUBindGroupEntry[]", "WGPUComputeState *", "WGPUCommandBuffer[]", "void *", "intptr_t"} <= set(primed)
    for text in primed:
        with ffi._lock:
            assert ffi._get_cached_btype(ffi._parser.parse_type(text)) is ffi._parsed_types[text][0], text
    assert ctypes_cache.prime(ffi, ["WGPUNoSuchType *", "int(int)", "void", "x y"]) == 0
    parsed = []
    real = type(ffi)._typeof_locked
    try:
        type(ffi)._typeof_locked = lambda self, cdecl: parsed.append(cdecl) or real(self, cdecl)
        x = tinydl.tensor([1.0, 2.0, 3.0])
        ((x * 3).exp() + x.sum()).numpy()
    finally:
        type(ffi)._typeof_locked = real
    assert not parsed, parsed  # _typeof_locked runs on a cache miss only
