"""The GPU runtime: device info, adapter choice (TINYDL_ADAPTER), float16 storage and fused f16 kernels."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinydl
from tinydl.debug import count_kernels
from tinydl.runtime import get_runtime
from tinydl.testing import assert_close


# -- device_info -----------------------------------------------------------------------------------------
def test_device_info_describes_the_adapter_in_use():
    rt = get_runtime()
    info = tinydl.device_info()
    assert set(info) == {"adapter", "backend", "webgpu", "adapter_type", "description", "features", "limits",
                         "flushes_subnormals"}
    assert info["webgpu"] == rt.webgpu.name in ("wgpu-native", "dawn")
    assert isinstance(info["flushes_subnormals"], bool)
    assert info["adapter"] == rt.adapter_name and info["adapter"]
    assert info["adapter"] == (rt.adapter.info.get("device") or rt.adapter.summary)
    assert info["backend"] == rt.adapter.info.get("backend_type") and info["backend"]
    assert info["adapter_type"] == rt.adapter.info.get("adapter_type")
    assert info["description"] == rt.adapter.info.get("description", "")
    assert info["features"] == sorted(info["features"])
    assert set(info["features"]) <= set(rt.webgpu.features)
    assert set(info["features"]) <= set(rt.adapter.features)
    assert ("shader-f16" in info["features"]) == rt.has_f16
    limits = info["limits"]
    assert limits["max-storage-buffers-per-shader-stage"] == rt.max_storage_buffers >= 8  # WebGPU's minimum
    assert min(limits["max-storage-buffer-binding-size"], limits["max-buffer-size"]) == rt.max_binding_size
    assert limits["max-compute-workgroups-per-dimension"] == rt.max_workgroups
    # tinydl asks the device for the adapter's best limits, not WebGPU's defaults
    for k in ("max-storage-buffers-per-shader-stage", "max-storage-buffer-binding-size",
              "max-compute-invocations-per-workgroup"):
        assert limits[k] == rt.adapter.limits[k], k
    info["limits"]["max-buffer-size"] = -1  # a copy: the caller cannot change the runtime's limits
    assert tinydl.device_info()["limits"]["max-buffer-size"] == rt.limits["max-buffer-size"] > 0


def test_device_info_is_json_serializable():
    assert json.loads(json.dumps(tinydl.device_info())) == tinydl.device_info()


# -- TINYDL_ADAPTER ---------------------------------------------------------------------------------------
_PROBE = ("import json, numpy as np, tinydl; i = tinydl.device_info(); "
          "from tinydl.runtime import get_runtime; "
          "y = (tinydl.tensor(np.array([1.0, -2.0, 3.0], np.float32)) * 2.0).relu().numpy().tolist(); "
          "print(json.dumps({'summary': get_runtime().adapter.summary, 'backend': i['backend'], 'y': y}))")


def _probe(value):
    env = dict(os.environ, TINYDL_ADAPTER=value)
    return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=180)


def _adapters():
    return [a.summary for a in get_runtime().webgpu.adapters()]  # through the backend the probes use


def _ok(res):
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["y"] == [2.0, 0.0, 6.0]  # the chosen adapter computes
    return out


def test_adapter_by_index():
    summaries = _adapters()
    assert _ok(_probe("0"))["summary"] == summaries[0]


def test_adapter_by_name_substring():
    name = get_runtime().adapter_name
    sub = name[1:max(2, len(name) // 2)].upper()  # a proper substring, in another case: matching ignores case
    out = _ok(_probe(sub))
    assert sub.lower() in out["summary"].lower()
    # the first adapter (in enumeration order) whose description contains it
    assert out["summary"] == next(s for s in _adapters() if sub.lower() in s.lower())


def test_adapter_by_name_selects_a_different_backend():
    """Where the machine offers two backends, naming the non-default one switches to it."""
    summaries = _adapters()
    current = get_runtime().backend
    other = next((s for s in summaries if f"via {current}" not in s and " via " in s), None)
    if other is None:
        pytest.skip("only one backend available on this machine")
    backend = other.rsplit(" via ", 1)[1]
    # only the choice is checked: whether that backend can run compute depends on the machine's drivers
    # (seen: an NVIDIA box whose OpenGL adapter enumerates but loses its device)
    code = "from tinydl.adapter import pick_adapter; print(pick_adapter().summary)"
    res = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, TINYDL_ADAPTER=f"via {backend}"),
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == other


def test_adapter_no_match_lists_adapters():
    res = _probe("no-such-gpu-xyz")
    assert res.returncode != 0
    assert "NoAdapterError" in res.stderr
    assert "TINYDL_ADAPTER='no-such-gpu-xyz' matches no adapter; found: 0: " in res.stderr
    for i, s in enumerate(_adapters()):
        assert f"{i}: {s}" in res.stderr


def test_adapter_index_out_of_range_lists_adapters():
    n = len(_adapters())
    res = _probe(str(n))
    assert res.returncode != 0
    assert f"TINYDL_ADAPTER={n}: only {n} adapters: 0: " in res.stderr


def test_no_adapter_error_is_a_runtime_error():
    from tinydl.adapter import NoAdapterError
    assert issubclass(NoAdapterError, RuntimeError)


# -- float16 -----------------------------------------------------------------------------------------------
needs_f16 = pytest.mark.skipif(not get_runtime().has_f16, reason="adapter lacks shader-f16")


@needs_f16
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (1,), (0, 4), ()])
def test_f16_round_trip_is_exact(rng, shape):
    a = np.asarray(rng.standard_normal(shape) * 100).astype(np.float16)
    if a.size:
        a.flat[0] = np.float16(65504)  # the largest half
    x = tinydl.tensor(a)
    assert x.dtype == tinydl.float16
    out = x.numpy()
    assert out.dtype == np.float16 and out.shape == a.shape
    np.testing.assert_array_equal(out, a)
    assert_close(x, torch.from_numpy(a), rtol=0, atol=0)


@needs_f16
@pytest.mark.parametrize("shape", [(5,), (3, 7), (2, 3, 5)])
def test_f16_casts_match_torch(rng, shape):
    a = (rng.standard_normal(shape) * 10).astype(np.float32)
    x, tx = tinydl.tensor(a), torch.from_numpy(a)
    h = x.half()
    assert_close(h, tx.half(), rtol=0, atol=0)  # f32 -> f16 rounds to nearest even, like torch
    assert_close(h.float(), tx.half().float(), rtol=0, atol=0)  # f16 -> f32 is exact


@needs_f16
@pytest.mark.parametrize("shape", [(64,), (4, 17), (2, 3, 11)])
def test_fused_f16_chain_vs_torch(rng, shape):
    a = (rng.standard_normal(shape) * 2).astype(np.float16)
    x, tx = tinydl.tensor(a), torch.from_numpy(a)

    def chain(v, lib):
        m = tinydl if lib == "tinydl" else torch
        return m.tanh((v * 1.5 + 0.25) * 0.5) * m.exp(v * -0.5) + v.abs() * 0.125

    y = chain(x, "tinydl")
    with count_kernels() as c:
        y.realize()
    assert c.count == 1, c.names
    ty = chain(tx, "torch")
    assert y.dtype == tinydl.float16
    out = y.numpy()
    assert out.dtype == np.float16 and out.shape == tuple(ty.shape)
    # one kernel, yet each op's result rounded to f16 as torch's 9 kernels round it: the same values (an exp or
    # tanh a float32 ulp off torch's may round the other way: 1 f16 ulp on a few elements at most)
    ulps = np.abs(out.view(np.int16).astype(np.int32) - ty.numpy().view(np.int16).astype(np.int32))
    assert ulps.max() <= 1 and (ulps > 0).mean() <= 0.02, (ulps.max(), (ulps > 0).mean())


@needs_f16
def test_f16_matmul_and_reduce_accumulate_in_f32(rng):
    a = rng.standard_normal((4, 32)).astype(np.float16)
    b = rng.standard_normal((32, 3)).astype(np.float16)
    x, w = tinydl.tensor(a), tinydl.tensor(b)
    y = (x @ w) * 0.5
    s = x.sum(1)
    tinydl.realize(y, s)
    assert y.dtype == tinydl.float16 and s.dtype == tinydl.float16
    truth_mm = (a.astype(np.float64) @ b.astype(np.float64)) * 0.5
    truth_s = a.astype(np.float64).sum(1)
    # f32 accumulation of 32 exact f16 products, one f16 rounding at the store: half an ulp (2^-11 relative)
    # plus the f32 summation error (32 * 2^-24 relative to the sum of magnitudes)
    mag_mm = (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))) * 0.5
    assert (np.abs(y.numpy() - truth_mm) <= 2.0 ** -11 * np.abs(truth_mm) + 32 * 2.0 ** -24 * mag_mm + 2.0 ** -24).all()
    mag_s = np.abs(a.astype(np.float64)).sum(1)
    assert (np.abs(s.numpy() - truth_s) <= 2.0 ** -11 * np.abs(truth_s) + 32 * 2.0 ** -24 * mag_s + 2.0 ** -24).all()
    # and torch (which also accumulates half matmuls/sums in f32 on CPU) agrees to f16 precision
    assert_close(y, torch.from_numpy(a) @ torch.from_numpy(b) * 0.5, rtol=2e-3, atol=2e-3)
    assert_close(s, torch.from_numpy(a).sum(1), rtol=2e-3, atol=2e-3)


@needs_f16
def test_f16_mixed_with_f32_promotes_like_torch(rng):
    a16 = rng.standard_normal((3, 4)).astype(np.float16)
    a32 = rng.standard_normal((3, 4)).astype(np.float32)
    y = tinydl.tensor(a16) + tinydl.tensor(a32)
    ty = torch.from_numpy(a16) + torch.from_numpy(a32)
    assert y.dtype == tinydl.float32
    assert_close(y, ty)  # the f16 value converts to f32 exactly; one f32 add
    z = tinydl.tensor(a16) * 2.5  # a python float keeps half
    assert z.dtype == tinydl.float16
    assert_close(z, torch.from_numpy(a16) * 2.5, rtol=0, atol=0)  # one op: both round the same exact product once


def test_f16_without_shader_f16_raises(rng, use_options):
    use_options(shader_f16=False)
    a = rng.standard_normal((2, 3)).astype(np.float16)
    with pytest.raises(RuntimeError, match="float16 needs the adapter feature 'shader-f16'"):
        tinydl.tensor(a)
    x = tinydl.tensor(a.astype(np.float32))
    with pytest.raises(RuntimeError, match="float16 needs the adapter feature 'shader-f16'"):
        x.half()


# -- encoding and submission ---------------------------------------------------------------------------------
def test_chunk_sizes_grow_from_the_first_to_the_cap(use_options):
    """Submits start small (the GPU starts early) and double up to Options.submit_chunk; 0 puts everything in one."""
    from tinydl import runtime
    use_options(submit_chunk=32, submit_first=4)
    assert runtime.chunk_sizes(65) == [4, 8, 16, 32, 5]
    assert runtime.chunk_sizes(3) == [3] and runtime.chunk_sizes(0) == []
    assert sum(runtime.chunk_sizes(1000)) == 1000 and max(runtime.chunk_sizes(1000)) == 32
    use_options(submit_first=0)
    assert runtime.chunk_sizes(65) == [32, 32, 1]
    use_options(submit_chunk=0)
    assert runtime.chunk_sizes(65) == [65]


@pytest.mark.parametrize("first", [1, 4])
@pytest.mark.parametrize("chunk", [0, 1, 2, 32])
def test_submit_chunks_give_the_same_results(rng, use_options, chunk, first):
    """Dispatches in one submit or in chunks (down to one dispatch each): the same values, bit for bit, for a
    graph of several kernels whose later kernels read earlier ones' outputs across submits."""
    a, b = rng.standard_normal((9, 40)).astype(np.float32), rng.standard_normal((40, 7)).astype(np.float32)

    def run():
        x = tinydl.tensor(a)
        h = (x @ tinydl.tensor(b)).relu()
        return (h.softmax(-1) + h.sum(0)).numpy()

    ref = run()
    use_options(submit_chunk=chunk, submit_first=first)
    with count_kernels() as c:
        out = run()
    assert c.count >= 3, c.names
    np.testing.assert_array_equal(out, ref)


def test_public_api_encoding_gives_the_same_results(rng, monkeypatch):
    """Dispatches are recorded through wgpu-native's C functions where wgpu-py exposes them; the fallback
    through wgpu-py's public methods must give the same values."""
    a = rng.standard_normal((9, 40)).astype(np.float32)

    def run():
        x = tinydl.tensor(a)
        return ((x @ x.T).relu().softmax(-1) + 1.0).numpy()

    rt = get_runtime()
    assert rt.webgpu.lib is not None  # this wgpu-py build: the fast path is the one tested everywhere else
    ref = run()
    _public_api_only(monkeypatch, rt)
    np.testing.assert_array_equal(run(), ref)


def _public_api_only(monkeypatch, rt):
    """rt records dispatches and maps read-backs through wgpu-py's public methods only."""
    import dataclasses
    monkeypatch.setattr(rt, "webgpu", dataclasses.replace(rt.webgpu, ffi=None, lib=None, maps=None))


@pytest.mark.parametrize("native", [True, False])
def test_invalid_dispatch_still_raises_through_direct_encoding(monkeypatch, native):
    """Encoding without wgpu-py's per-call error capture loses no check: wgpu reports a pass's validation
    errors when the command encoder finishes, which still raises."""
    from tinydl import runtime
    rt = get_runtime()
    if not native:
        _public_api_only(monkeypatch, rt)
    wgsl = ("@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n"
            "@compute @workgroup_size(1) fn main(@builtin(global_invocation_id) g: vec3<u32>) { out[0] = 1.0; }\n")
    buf = rt.alloc(16)
    too_many = rt.max_workgroups + 1  # over the adapter's per-dimension limit
    with pytest.raises(runtime.KernelError, match="(?i)workgroup|dispatch") as e:
        rt.submit([(rt.pipeline(wgsl), [buf.gpu], (too_many, 1, 1))], [(buf.gpu, 4)], names=["big grid"])
    assert e.value.stage == "encode" and e.value.kernels == ["big grid"] and e.value.wgsl == wgsl
    assert isinstance(e.value.__cause__, rt.webgpu.api.GPUValidationError)
    rt.release(buf.gpu)
    np.testing.assert_array_equal(tinydl.tensor(np.ones(3, np.float32)).numpy() * 2, [2, 2, 2])  # still usable


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("n", [1, 5, 17, 1000, 4099])
def test_split_upload_writes_every_byte(use_options, threads, n):
    """An upload past Options.upload_split_bytes is written in pieces from worker threads (sizes in multiples of 4, the
    last piece shorter): the GPU copy equals the array, for sizes the pieces divide unevenly and arrays whose
    byte size is not a multiple of 4 (written through a padded copy)."""
    use_options(upload_threads=threads, upload_split_bytes=16)
    for dtype in (np.float32, np.float16, np.uint8):
        host = (np.arange(n) % 251).astype(dtype)
        np.testing.assert_array_equal(tinydl.tensor(host).numpy(), host)



def test_staged_uploads_reuse_their_buffer_only_after_its_copy(use_options, rng):
    """Options.staged_uploads (Dawn's default: transfers.UploadStaging): an upload is written into a pooled mapped
    buffer and copied into the tensor's own by a submit of its own. The next upload of its size reuses that
    buffer once its map request is done (its copy has run): tensors uploaded back to back, each read by a kernel
    queued before the next upload, all keep their own values; sizes under staged_upload_min_bytes and odd byte
    counts take the queue write; empty_cache gives the pool back."""
    from tinydl import runtime
    rt = runtime.get_runtime()
    use_options(staged_uploads=True, staged_upload_min_bytes=64)
    hosts = [rng.standard_normal(1000).astype(np.float32) for _ in range(6)]
    doubled = []
    for h in hosts:
        t = tinydl.tensor(h)
        doubled.append(t * 2)  # queued (not yet run) before the next upload reuses the staging buffer
    for h, d in zip(hosts, doubled):
        np.testing.assert_array_equal(d.numpy(), h * 2)
    assert rt._uploads.nbytes == 4000  # one buffer of that size, reused
    small, odd = np.arange(8, dtype=np.float32), np.arange(37, dtype=np.float16)  # 32 bytes; 74
    np.testing.assert_array_equal(tinydl.tensor(small).numpy(), small)
    np.testing.assert_array_equal(tinydl.tensor(odd).numpy(), odd)
    assert rt._uploads.nbytes == 4000
    rt.empty_cache()
    assert rt._uploads.nbytes == 0
    np.testing.assert_array_equal(tinydl.tensor(hosts[0]).numpy(), hosts[0])


def test_big_staged_uploads_are_written_in_pieces_from_threads(use_options, monkeypatch, rng):
    """A staged upload of Options.upload_split_bytes or more is written into its mapped buffer in
    Options.upload_threads pieces at once (transfers.fill_in_pieces, through the C API's mapped range); the
    tensor holds the same bytes, ragged last piece included; a smaller one takes one write."""
    from tinydl import runtime
    rt = runtime.get_runtime()
    if rt.webgpu.maps is None:
        pytest.skip("mapped ranges through the C API only")
    use_options(staged_uploads=True, staged_upload_min_bytes=64, upload_threads=3, upload_split_bytes=4096)
    maps, mapped = rt.webgpu.maps, []
    monkeypatch.setattr(maps, "mapped_for_write", lambda st, n, f=maps.mapped_for_write: mapped.append(n) or f(st, n))
    big, small = rng.standard_normal(5001).astype(np.float32), rng.standard_normal(700).astype(np.float32)
    np.testing.assert_array_equal(tinydl.tensor(big).numpy(), big)
    np.testing.assert_array_equal(tinydl.tensor(small).numpy(), small)
    assert mapped == [big.nbytes]


def test_staged_uploads_keep_a_bounded_pool(use_options):
    """transfers.UploadStaging keeps UPLOAD_KEEP buffers a size and Options.staged_upload_pool_bytes in all,
    dropping the least recently used sizes first (a stream of new shapes does not grow it without end)."""
    from tinydl import runtime
    rt = runtime.get_runtime()
    rt.empty_cache()
    use_options(staged_uploads=True, staged_upload_min_bytes=64, staged_upload_pool_bytes=3 * 4096)
    for n in (1024, 1024 + 64, 1024 + 128, 1024 + 192):
        host = np.full(n, n, np.float32)
        np.testing.assert_array_equal(tinydl.tensor(host).numpy(), host)
    assert rt._uploads.nbytes <= 3 * 4096 and list(rt._uploads._free)[-1] == 4 * (1024 + 192)
    rt.empty_cache()


@pytest.mark.parametrize("threads", [1, 3, 8])
@pytest.mark.parametrize("n", [1, 5, 17, 1000, 4099])
def test_split_readback_copies_every_byte(monkeypatch, use_options, threads, n):
    """A read-back past Options.readback_split_bytes is copied out of the mapping in pieces from worker threads (the last
    piece shorter, more threads than bytes for the smallest): the array equals what was written, for float32,
    float16 and uint8 data, and owns its memory (later read-backs through the same staging buffer leave it)."""
    from tinydl import runtime
    rt = runtime.get_runtime()
    use_options(readback_threads=threads, readback_split_bytes=4)
    pools = []
    pool = rt._pool
    monkeypatch.setattr(rt, "_pool", lambda k: pools.append(k) or pool(k))
    split = 0
    for dtype in (np.float32, np.float16, np.uint8):
        host = (np.arange(n) % 251).astype(dtype)
        t = tinydl.tensor(host)
        first = t.numpy()
        np.testing.assert_array_equal(tinydl.tensor(host[::-1].copy()).numpy(), host[::-1])
        np.testing.assert_array_equal(first, host)
        split += 2 if n * t.dtype.itemsize >= 4 else 0  # uint8 is stored in 32 bits
    assert pools == ([threads] * split if threads > 1 else [])  # each read-back of 4+ bytes went through them


def test_first_submit_holds_enough_estimated_gpu_work(use_options):
    """A plan's first submit carries its first kernels up to FIRST_SUBMIT_GPU_US of estimated GPU time, at least
    SMALL_FIRST_SUBMIT and at most Options.submit_first of them; its size feeds chunk_sizes."""
    from tinydl import runtime, schedule

    def plan(flops_each, n=40):
        steps = [schedule.KernelStep(None, 0, [], (1, 1, 1), f"k{i}", "", flops_each, 0) for i in range(n)]
        return schedule.Plan(steps)
    big = plan(int(100e-6 * schedule.ESTIMATE_FLOPS))   # ~103 us each: the threshold after 3, raised to 8
    small = plan(0)                                      # launches only: 250 us never within 32
    middle = plan(int(20e-6 * schedule.ESTIMATE_FLOPS))  # ~23 us each: 11 kernels reach 250 us
    assert (big.first_submit(), small.first_submit(), middle.first_submit()) == (8, 32, 11)
    assert runtime.chunk_sizes(40, middle.first_submit()) == [11, 22, 7]
    use_options(submit_first=4)  # a smaller cap wins
    assert (big.first_submit(), small.first_submit()) == (4, 4)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("lend", [True, False])
def test_readback_paths_give_the_same_values(use_options, native, lend):
    """Read-backs mapped through the implementation's C API (polls on the calling thread) or wgpu-py's map_sync, copied out or
    lent (the array over the mapped memory): the same values, for several tensors read in one submit, dtypes
    whose bytes are not a multiple of 4, and empty tensors."""
    from tinydl import schedule
    if native and not get_runtime().webgpu.maps is not None:
        pytest.skip("read-backs mapped through the C API only")
    use_options(native_map=native, lend_min_bytes=1 if lend else 1 << 62)
    hosts = [np.arange(1000, dtype=np.float32), np.arange(7, dtype=np.float16), np.zeros((0, 3), np.float32),
             np.arange(5, dtype=np.int32) - 2, np.array([True, False, True])]
    tensors = [tinydl.tensor(h) * 1 for h in hosts]  # computed, so the read-back follows kernels in its submit
    for t, h in zip(tensors, hosts):
        np.testing.assert_array_equal(t.numpy(), h)
    together = schedule.realize(*[tinydl.tensor(h) + 1 for h in hosts[:2]], readback=True)
    np.testing.assert_array_equal(together[0].view(np.float32), hosts[0] + 1)
    np.testing.assert_array_equal(together[1].view(np.float16)[:7], hosts[1] + 1)


def test_lent_readback_keeps_its_buffer_while_any_view_lives(use_options):
    """A lent read-back array owns its staging buffer until it and every view of it are gone: later read-backs of
    the same size never write into it; the buffer then returns to the pool, which keeps STAGING_KEEP per size."""
    import gc

    from tinydl import runtime
    if not get_runtime().webgpu.maps is not None:
        pytest.skip("read-backs mapped through the C API only")
    use_options(lend_min_bytes=1)
    rt = get_runtime()
    host = np.arange(4096, dtype=np.float32)
    x = tinydl.tensor(host)
    size = host.nbytes
    gc.collect()
    pooled = len(rt._staging.get(size, []))
    kept = (x * 2).numpy()
    assert len(rt._staging.get(size, [])) == max(pooled - 1, 0)  # taken from the pool, not returned
    view = kept[100:200].reshape(10, 10)
    del kept
    gc.collect()
    others = [(x * k).numpy() for k in (3, 4, 5)]  # read back while the view holds the first buffer
    np.testing.assert_array_equal(view, (host[100:200] * 2).reshape(10, 10))
    for k, o in zip((3, 4, 5), others):
        np.testing.assert_array_equal(o, host * k)
    view[0, 0] = -1.0  # a lent array is writable host memory like any other
    assert view[0, 0] == -1.0
    del view, others, o
    gc.collect()
    assert len(rt._staging[size]) == runtime.STAGING_KEEP  # four came back; the pool kept its share


def test_failed_readback_map_raises(monkeypatch):
    """A read-back buffer the driver cannot map raises a RuntimeError that says so, at the read."""
    if get_runtime().webgpu.maps is None:
        pytest.skip("read-backs mapped through the C API only")
    maps = get_runtime().webgpu.maps
    native = maps.lib

    class FailingMaps:
        def __getattr__(self, name):
            return getattr(native, name)

        @staticmethod
        def wgpuBufferMapAsync(buffer, mode, offset, size, info):  # the callback reports an error, no mapping
            message = maps.ffi.new("WGPUStringView *")[0]
            maps.on_mapped(native.WGPUMapAsyncStatus_Error, message, info.userdata1, maps.ffi.NULL)
            return maps.ffi.new("WGPUFuture *")[0]
    t = tinydl.tensor(np.ones(8, np.float32)) * 2
    t.numpy()
    monkeypatch.setattr(maps, "lib", FailingMaps())
    with pytest.raises(RuntimeError, match="could not map 1 read-back buffer"):
        (t + 1).numpy()


@pytest.mark.parametrize("spin", [0.0, 5.0])
def test_readback_wait_spins_then_blocks(monkeypatch, use_options, spin):
    """A read-back's wait polls without blocking while spin_seconds last (a GPU adapter's default; never a CPU
    adapter's, whose work needs the host's cores), then blocks; the values are the same either way."""
    from tinydl import runtime
    rt = get_runtime()
    if rt.webgpu.maps is None:
        pytest.skip("read-backs mapped through the C API only")
    assert rt.spin_seconds == (0.0 if tinydl.device_info()["adapter_type"] == "CPU" else runtime.SPIN_WAIT_SECONDS)
    maps, polls = rt.webgpu.maps, []
    poll = maps.poll

    def counting_poll(device, block, futures):
        assert futures  # the requests still pending, for a blocking wait to wait on
        polls.append(bool(block))
        return poll(device, block, futures)
    host = np.arange(50000, dtype=np.float32)
    t = tinydl.tensor(host) * 3
    use_options(spin_wait_s=spin)
    monkeypatch.setattr(maps, "poll", counting_poll)
    np.testing.assert_array_equal(t.numpy(), host * 3)
    assert polls and (not any(polls) if spin else all(polls)), polls[:5]


def test_spin_wait_from_the_environment(monkeypatch):
    """TINYDL_SPIN_WAIT_MS sets the spin (milliseconds, 0: always block); a bad value says what it expects."""
    from tinydl import runtime
    for value, seconds in (("", 0.02), ("0", 0.0), ("2.5", 0.0025)):
        monkeypatch.setenv("TINYDL_SPIN_WAIT_MS", value)
        assert runtime._spin_wait_seconds() == seconds
    for bad in ("fast", "-1", "nan"):
        monkeypatch.setenv("TINYDL_SPIN_WAIT_MS", bad)
        with pytest.raises(ValueError, match="TINYDL_SPIN_WAIT_MS.*milliseconds >= 0"):
            runtime._spin_wait_seconds()


def test_import_and_first_call_leave_the_environment_alone_and_quiet():
    """tinydl does not set environment variables (Mesa's XDG_RUNTIME_DIR only while adapters are listed), and a
    headless first call prints no Mesa warning."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    code = ("import os, tinydl; before = dict(os.environ); print(tinydl.tensor([2.0]).numpy()[0]); "
            "assert dict(os.environ) == before and 'XDG_RUNTIME_DIR' not in os.environ")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2.0" and "XDG_RUNTIME_DIR" not in run.stderr, run.stderr


def test_pipeline_cache_keeps_the_newest_shaders_and_plans_keep_theirs():
    """Options.pipeline_cache_size bounds the compiled shaders the runtime keeps (the least recently used
    dropped): a server seeing ever new shapes stays flat; a plan holds its own pipelines, so it still runs after
    they are dropped, and only a plan built again compiles again."""
    from tinydl import counters, schedule
    rt = get_runtime()
    xs = [np.arange(n, dtype=np.float32) for n in range(3, 9)]  # six shapes: six shaders (sizes baked in)
    with tinydl.options(pipeline_cache_size=3, runtime_sizes=False):
        first = (tinydl.tensor(xs[0]) * 3 + 1).numpy()
        for x in xs[1:]:
            np.testing.assert_array_equal((tinydl.tensor(x) * 3 + 1).numpy(), x * 3 + 1)
            assert len(rt._pipelines) <= 3
        before = counters.stats["pipelines"]
        np.testing.assert_array_equal((tinydl.tensor(xs[0]) * 3 + 1).numpy(), first)  # its cached plan: no compile
        assert counters.stats["pipelines"] == before
        schedule.clear_cache()
        np.testing.assert_array_equal((tinydl.tensor(xs[0]) * 3 + 1).numpy(), xs[0] * 3 + 1)
        assert counters.stats["pipelines"] == before + 1  # planned again: its dropped shader compiled again
        assert len(rt._pipelines) <= 3


def test_pipeline_cache_drops_the_least_recently_used_shader():
    """A shader asked for again (a new plan reusing it) is kept over one compiled later and not asked for since:
    dropping by compile order would drop the shaders every new plan shares (a decode step's new shape)."""
    from tinydl import counters, schedule
    rt = get_runtime()
    shared = rt.pipeline(_add_one(1001))
    with tinydl.options(pipeline_cache_size=3):
        rt.pipeline(_add_one(1002))
        rt.pipeline(_add_one(1003))
        assert rt.pipeline(_add_one(1001)) is shared  # asked for again: now the most recent
        before = counters.stats["pipelines"]
        rt.pipeline(_add_one(1004))  # drops 1002, the least recently asked for
        assert rt.pipeline(_add_one(1001)) is shared and counters.stats["pipelines"] == before + 1
        rt.pipeline(_add_one(1002))
        assert counters.stats["pipelines"] == before + 2  # 1002 was the one dropped
    schedule.clear_cache()


def _add_one(n: int) -> str:
    return (f"@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n"
            f"@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {{\n"
            f"  if (g.x < {n}u) {{ out[g.x] = out[g.x] + 1.0; }}\n}}\n")


# -- the pool of freed buffers ---------------------------------------------------------------------------
def _pooled_buffers(rt):
    return [g for same_size in rt._free.values() for g in same_size]


def test_pool_of_freed_buffers_stays_within_its_cap(rng, use_options):
    """Freed tensors' buffers are pooled for reuse up to Options.pool_max_bytes; past it the least recently freed
    are given back, and results stay right."""
    import gc
    rt = get_runtime()
    tinydl.empty_cache()
    use_options(pool_max_bytes=1 << 20)
    for n in range(1, 60):
        a = rng.standard_normal(n * 3001).astype(np.float32)
        x = tinydl.tensor(a)
        assert_close((x * 2 + 1).sum(), torch.from_numpy(a * 2 + 1).sum(), rtol=1e-5, atol=1e-3)
        del x
        gc.collect()
        pooled = _pooled_buffers(rt)
        assert rt.pooled_bytes == sum(g.size for g in pooled) == sum(g.size for g in rt._pooled.values())
        assert rt.pooled_bytes <= 1 << 20
    assert rt.pooled_bytes > 0  # the recent ones stay pooled for the next tensor of their size
    size, (gpu, *_) = next(iter(rt._free.items()))
    y = tinydl.tensor(np.ones(size // 4, np.float32))  # takes that pooled buffer
    assert y.node.buffer.gpu is gpu and id(gpu) not in rt._pooled
    assert (y * 3).numpy().tolist() == [3.0] * (size // 4)


def test_trimmed_buffers_leave_no_bind_group_behind(use_options):
    """A buffer given back past the cap is not named by any cached bind group (which would keep its memory)."""
    import gc
    rt = get_runtime()
    x = tinydl.tensor(np.arange(4096, dtype=np.float32))
    assert (x + 1).numpy()[-1] == 4096.0  # a cached bind group names x's buffer now
    gpu = x.node.buffer.gpu
    assert any(gpu is g for g in _bound_buffers(rt))
    use_options(pool_max_bytes=0)
    del x
    gc.collect()
    assert rt.pooled_bytes == 0 and not _pooled_buffers(rt)
    assert not any(gpu is g for g in _bound_buffers(rt))


def _bound_buffers(rt):
    return [g for groups in rt.bind_groups.by_pipeline.values() for gpus in groups for g in gpus]


def test_a_dropped_pipeline_takes_its_bind_groups_along(use_options):
    """A cached bind group holds its pipeline (its compiled code) alive: when the pipeline cache drops a pipeline,
    its bind groups go too, so memory stays flat however many distinct kernels a process compiles."""
    import gc
    import weakref
    rt = get_runtime()
    use_options(pipeline_cache_size=4, plan_cache_size=1)
    x = tinydl.tensor(np.arange(64, dtype=np.float32))
    (x * 3.25 + 0.125).numpy()
    gpu = x.node.buffer.gpu
    first = weakref.ref(next(p for p, groups in rt.bind_groups.by_pipeline.items() if any(gpu in gpus for gpus in groups)))
    for i in range(8):  # other kernels push the first one's pipeline out of the cache
        (x * float(i) - 7.5).numpy()
    gc.collect()
    assert first() is None


def test_empty_cache_gives_pooled_memory_back_and_work_goes_on(rng):
    """tinydl.empty_cache(): nothing pooled afterwards; live tensors, cached plans and jit replays keep working."""
    import gc
    rt = get_runtime()
    a = rng.standard_normal((64, 64)).astype(np.float32)
    w = tinydl.tensor(a)
    step = tinydl.jit(lambda x: (x @ w).relu())
    x = tinydl.tensor(a)
    first = step(x).numpy()
    for n in (1000, 2000, 3000):
        tinydl.tensor(np.ones(n, np.float32)).sum().item()
    gc.collect()
    assert rt.pooled_bytes > 0
    tinydl.empty_cache()
    assert rt.pooled_bytes == 0 and not _pooled_buffers(rt) and not rt._pooled
    np.testing.assert_array_equal(step(x).numpy(), first)
    assert_close((w @ w).relu(), torch.from_numpy(a @ a).relu(), rtol=1e-4, atol=1e-4)


def test_compile_all_runs_on_options_compile_threads(use_options):
    """Options.compile_threads is how many shaders a new plan compiles side by side."""
    use_options(compile_threads=64)
    rt = get_runtime()
    shaders = [f"@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n"
               f"@compute @workgroup_size(1) fn main() {{ out[0] = {k}.5; }}\n" for k in range(3)]
    rt.compile_all(shaders)
    assert all(w in rt._pipelines for w in shaders)
    assert rt._pool.threads >= 64 or not rt.webgpu.threads  # a backend whose device takes one thread compiles in turn
