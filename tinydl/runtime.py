"""The GPU side: adapter choice, device limits/features, buffer pool, pipeline cache, and the one-submit
execution of a list of kernels (plus read-back copies) in a single command encoder."""
from __future__ import annotations

import functools
import itertools
import os
import threading
import time
import weakref
from collections import deque

import numpy as np

import wgpu  # noqa: E402

from .adapter import NoAdapterError, pick_adapter, request_device  # noqa: E402,F401 - also runtime.X
from .errors import FAULT_STAGES, GPU_ERRORS, DeviceLostError, Failure, KernelError, uncycle  # noqa: E402,F401 - also runtime.X

from .checks import STATUS_BYTES, DeviceStatus  # noqa: E402
from .options import Options, current as current_options  # noqa: E402

try:  # wgpu-native's C entry points, called without wgpu-py's per-call error capture (see Runtime._encode)
    from wgpu.backends.wgpu_native._api import ffi as _ffi
    from wgpu.backends.wgpu_native._api import lib as _native
except ImportError:  # another wgpu-py backend or layout: the public API
    _native = None

# The runtime's settings are tinydl.options.Options fields, read once per call: a read-back of at least
# Options.lend_min_bytes is returned as an array over the mapped staging memory itself (Runtime._lend, no copy
# out), where read-backs are mapped through wgpu-native directly (Options.native_map, see Runtime._map_read).
STAGING_KEEP = 2  # read-back buffers pooled per size


def _spin_wait_seconds() -> float:
    value = os.environ.get("TINYDL_SPIN_WAIT_MS", "").strip()
    try:
        ms = float(value) if value else 20.0
        if not ms >= 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"TINYDL_SPIN_WAIT_MS={value!r}: expected milliseconds >= 0 (0: always block)") from None
    return ms / 1e3


# a read-back's wait polls the device without blocking for up to SPIN_WAIT_SECONDS, then blocks: a blocking wait
# returns late on the NVIDIA boxes (docs/benchmarks.md, "spin wait"), as CUDA's default synchronization spins
# too. Never on a CPU adapter (lavapipe), whose GPU work needs the host's cores. TINYDL_SPIN_WAIT_MS sets it (0:
# always block).
SPIN_WAIT_SECONDS = _spin_wait_seconds()
_mapped: dict[int, int] = {}  # map request id -> its status, written by _on_mapped
_map_errors: dict[int, str] = {}  # map request id -> wgpu's message, for a request that failed
_map_ids = itertools.count()

if _native is not None:
    @_ffi.callback("void(WGPUMapAsyncStatus, WGPUStringView, void *, void *)")
    def _on_mapped(status, message, userdata1, userdata2):
        i = int(_ffi.cast("intptr_t", userdata1))
        if status != _native.WGPUMapAsyncStatus_Success and message.data != _ffi.NULL:
            _map_errors[i] = _ffi.string(message.data, message.length).decode("utf-8", "replace")
        _mapped[i] = status

# Dispatches per queue submit (Options.submit_chunk; 0: all in one): the GPU starts on the first chunk while the
# CPU encodes the rest. The first chunk is Options.submit_first dispatches (or the plan's own, see
# schedule.Plan.first_submit), each next one twice the one before, up to submit_chunk (measured with
# benchmarks/cpu_overhead.py --chunks / --first). An upload of at least Options.upload_split_bytes is written as
# Options.upload_threads pieces from worker threads at once: a queue write is a host memcpy into wgpu's staging
# memory (wgpu-native releases the GIL), and one thread copies at well below the host's memory bandwidth. A
# read-back of at least Options.readback_split_bytes is copied out of the mapped staging buffer as
# Options.readback_threads pieces at once (numpy's copy releases the GIL); smaller outputs lost by it. Read-backs
# of lend_min_bytes or more are not copied at all where wgpu-native's API is there. (docs/benchmarks.md, "runtime
# settings", has the numbers.)

# shaders compiled at once by compile_all
COMPILE_THREADS = min(8, os.cpu_count() or 1)

# One lock over everything that touches the device, the pools and the caches: tinydl's public API may be called
# from any thread, and such calls run one at a time (wgpu-native objects, the pending encoder, the pools and the
# plan cache are shared). Re-entrant: a realization uploads, a jit call realizes. Garbage-collector callbacks
# never wait for it (see Runtime._give_back).
_lock = threading.RLock()


def locked(fn):
    """fn runs holding tinydl's lock (see _lock)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with _lock:
            return fn(*args, **kwargs)
    return run


class _Progress:
    """How far a submit got, for its error: the stage and the dispatches [start, stop) it was at, and whether
    the earlier submits' pending command buffers were sent (else they are kept for the next)."""
    __slots__ = ("stage", "start", "stop", "sent")

    def __init__(self, stop: int):
        self.stage, self.start, self.stop, self.sent = "encode", 0, stop, False


STORAGE = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
READBACK = wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST


def chunk_sizes(n: int, first: int | None = None, opts: Options | None = None) -> list[int]:
    """How n dispatches are cut into queue submits (see Options.submit_chunk); first: the first chunk's size in
    place of Options.submit_first. opts: the Options in effect (default: the current ones)."""
    opts = opts or current_options()
    chunk = opts.submit_chunk
    if not chunk:
        return [n] if n else []
    sizes, step = [], max(1, min(first or opts.submit_first or chunk, chunk))
    while n > 0:
        sizes.append(min(step, n))
        n -= step
        step = min(step * 2, chunk)
    return sizes


class Buffer:
    """A storage buffer from the pool. `nbytes` is the size asked for (the GPU buffer may be the same)."""
    __slots__ = ("gpu", "nbytes", "__weakref__")

    def __init__(self, gpu, nbytes):
        self.gpu, self.nbytes = gpu, nbytes


class _MappedBytes:
    """Mapped read-back memory as numpy sees it (the base of a lent array: the buffer goes back when this dies)."""
    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, address: int, nbytes: int):
        self.__array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (address, False), "version": 3}


class Runtime:
    def __init__(self):
        self.adapter = pick_adapter()
        self.device, self.features = request_device(self.adapter)
        self.limits = dict(self.device.limits)
        self.adapter_name = self.adapter.info.get("device", "") or self.adapter.summary
        self.backend = self.adapter.info.get("backend_type", "")
        self.has_f16 = "shader-f16" in self.features
        self.spin_seconds = 0.0 if self.adapter.info.get("adapter_type") == "CPU" else SPIN_WAIT_SECONDS
        self.max_storage_buffers = self.limits["max-storage-buffers-per-shader-stage"]
        self.max_binding_size = min(self.limits["max-storage-buffer-binding-size"], self.limits["max-buffer-size"])
        self.max_workgroups = self.limits["max-compute-workgroups-per-dimension"]
        self._free: dict[int, list] = {}      # pooled storage buffers by byte size
        self._staging: dict[int, list] = {}   # pooled read-back buffers by byte size
        self._pipelines: dict[str, object] = {}
        self._bind_groups: dict[tuple, object] = {}
        self._host_pool = (0, None)  # (threads, executor) of split uploads and read-backs (Options.upload_threads, ...)
        self._pending: list = []  # finished command buffers of submits without read-backs, not yet sent (see submit)
        # buffers the garbage collector freed while another thread held the lock: given back under it (_give_back)
        self._later: deque = deque()
        self.faults: dict[str, str] = {}  # test-only forced failures: stage -> kernel name part (debug.inject_fault)
        self.lost: str | None = None  # why the device was lost, once it is
        self.status = DeviceStatus(self.device, STORAGE)  # what checked kernels report (tinydl/checks.py)

    # -- buffers -------------------------------------------------------------------------------------
    def alloc(self, nbytes: int, describe: str = "tensor") -> Buffer:
        size = max(16, (nbytes + 15) // 16 * 16)
        if size > self.max_binding_size:
            raise RuntimeError(
                f"{describe} needs {nbytes} bytes, more than this adapter's largest storage binding "
                f"({self.max_binding_size} bytes on {self.adapter_name}); split the tensor or use a GPU "
                f"with a larger max-storage-buffer-binding-size")
        free = self._free.get(size)
        if not free and self._later:
            self._drain()
            free = self._free.get(size)
        if free:
            return Buffer(free.pop(), nbytes)
        try:
            return Buffer(self.device.create_buffer(size=size, usage=STORAGE), nbytes)
        except GPU_ERRORS as e:  # out of memory, device lost
            raise self._failure(f"allocation of {describe}", e) from e

    def release(self, gpu) -> None:
        self._free.setdefault(gpu.size, []).append(gpu)

    def adopt(self, buf: Buffer) -> Buffer:
        """buf now belongs to tensors: its GPU memory returns to the pool when the last one is collected."""
        weakref.finalize(buf, self._give_back, buf.gpu, False)
        return buf

    def _give_back(self, gpu, lent: bool) -> None:
        """A buffer the garbage collector freed (a tensor's storage; lent: a lent read-back array's, still mapped),
        on whatever thread it runs: back to its pool now if the lock is free or this thread holds it, else
        later, by the lock's holder (it may be waiting for this very thread: a worker of _in_pieces)."""
        if _lock.acquire(blocking=False):
            try:
                self._return_lent(gpu) if lent else self.release(gpu)
            finally:
                _lock.release()
        else:
            self._later.append((gpu, lent))

    def _drain(self) -> None:
        while self._later:
            gpu, lent = self._later.popleft()
            self._return_lent(gpu) if lent else self.release(gpu)

    @locked
    def upload(self, host: np.ndarray, describe: str = "tensor") -> Buffer:
        """A contiguous array into a new buffer: written straight from the array's memory (no host copy) when
        its size is a multiple of 4 bytes, as queue writes require; else through a zero-padded copy."""
        try:
            buf = self.alloc(host.nbytes, describe)
            self.flush()  # the buffer may have been freed by work still pending: that work runs before this write
            if host.nbytes % 4:
                data = host.tobytes() + b"\0" * (4 - host.nbytes % 4)
                self.device.queue.write_buffer(buf.gpu, 0, data)
            elif host.nbytes:
                self._write(buf.gpu, memoryview(np.ascontiguousarray(host)).cast("B"))
        except GPU_ERRORS as e:
            raise self._failure(f"upload of {describe}", e) from e
        return self.adopt(buf)

    def _write(self, gpu, data: memoryview) -> None:
        """Queue-write data (a multiple of 4 bytes) into gpu from offset 0, in pieces from worker threads when big
        (see Options.upload_threads); returns once every piece is in wgpu's staging memory."""
        n = data.nbytes
        opts = current_options()
        if opts.upload_threads <= 1 or n < opts.upload_split_bytes:
            self.device.queue.write_buffer(gpu, 0, data)
            return
        write = self.device.queue.write_buffer
        # queue writes take offsets and sizes in multiples of 4
        self._in_pieces(n, opts.upload_threads, 4, lambda o, size: write(gpu, o, data, o, size))

    def _copy_out(self, mapped, nbytes: int, opts: Options) -> np.ndarray:
        """The first nbytes of a mapped read-back buffer, copied into a new array, in pieces from worker threads
        when big (see Options.readback_threads)."""
        src = np.frombuffer(mapped, np.uint8)[:nbytes]
        if opts.readback_threads <= 1 or nbytes < opts.readback_split_bytes:
            return src.copy()
        out = np.empty(nbytes, np.uint8)
        self._in_pieces(nbytes, opts.readback_threads, 1, lambda o, size: np.copyto(out[o:o + size], src[o:o + size]))
        return out

    def _in_pieces(self, n: int, threads: int, align: int, work) -> None:
        """work(offset, size) over n bytes cut into `threads` pieces (offsets and sizes multiples of align, the
        last piece shorter), run at once on the worker threads; returns when all are done, re-raising a
        worker's error here."""
        step = (-(-n // threads) + align - 1) // align * align
        list(self._pool(threads).map(lambda o: work(o, min(step, n - o)), range(0, n, step)))

    def _pool(self, threads: int):
        """The worker threads of split uploads and read-backs: an executor of at least `threads` (made anew when
        the knobs grow, so tests and benchmarks can change them)."""
        have, pool = self._host_pool
        if have < threads:
            from concurrent.futures import ThreadPoolExecutor
            if pool is not None:
                pool.shutdown()
            pool = ThreadPoolExecutor(threads, thread_name_prefix="tinydl-host")
            self._host_pool = (threads, pool)
        return pool

    # -- pipelines -----------------------------------------------------------------------------------
    def pipeline(self, wgsl: str, name: str | None = None):
        """The compute pipeline of a shader (cached by its text); name: the kernel's, for errors (KernelError).
        Not under the lock: compile_all calls it from worker threads (wgpu-native's creation calls are
        thread-safe; a shader two threads compile at once is compiled twice, one pipeline is kept)."""
        p = self._pipelines.get(wgsl)
        fault = self._fault(("shader", "pipeline"), [name]) if self.faults else None
        if p is None or fault:
            stage, kernels = "shader", [name] if name else []
            try:
                # a forced fault (tests): a real parse error, or a real pipeline error (no such entry point)
                code = wgsl + "\nfn tinydl_injected_fault( {" if fault == "shader" else wgsl
                module = self.device.create_shader_module(code=code)
                stage = "pipeline"
                entry = "tinydl_injected_fault" if fault == "pipeline" else "main"
                p = self.device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": entry})
            except GPU_ERRORS as e:
                detail = (f"tinydl generated WGSL that {self.adapter_name} rejected (a tinydl bug; please report it "
                          f"with this shader): {type(e).__name__}: {e}")
                raise self._failure(stage, e, kernels, wgsl=wgsl, detail=detail) from e
            if wgsl in self._pipelines:
                return self._pipelines[wgsl]
            self._pipelines[wgsl] = p
            from . import debug
            debug.stats["pipelines"] += 1
        return p

    def compile_all(self, shaders) -> None:
        """Pipelines for several shaders made at once on worker threads (the driver's compiles run side by side;
        wgpu's calls release the GIL): tuning compiles every variant it times. A shader that fails is left
        for pipeline() to report when it is asked for."""
        todo = [w for w in dict.fromkeys(shaders) if w not in self._pipelines]

        def compile_one(wgsl):
            try:
                self.pipeline(wgsl)
            except RuntimeError:
                pass
        list(self._pool(COMPILE_THREADS).map(compile_one, todo))

    def _bind_group(self, pipeline, gpus):
        # keyed by the objects themselves (identity hash; the bind group holds them alive anyway)
        key = (pipeline, *gpus)
        bg = self._bind_groups.get(key)
        if bg is None:
            if len(self._bind_groups) > 8192:
                self._bind_groups.clear()
            layout = pipeline.get_bind_group_layout(0)
            entries = [{"binding": i, "resource": {"buffer": g, "offset": 0, "size": g.size}}
                       for i, g in enumerate(gpus)]
            bg = self._bind_groups[key] = self.device.create_bind_group(layout=layout, entries=entries)
        return bg

    # -- execution (a plan's grids come from schedule.Target.grid) -------------------------------------
    @locked
    def submit(self, dispatches, readbacks=(), timings: list | None = None,
               first: int | None = None, checks=None, names=None) -> list[np.ndarray]:
        """See _submit; names: the dispatches' kernel names. Whatever fails (bind group, encoding, queue submit,
        map, device) raises a KernelError naming the kernel (and its WGSL where one kernel is to blame); the
        pending work of earlier submits is kept for the next, never lost with this one's."""
        if self._later:
            self._drain()
        fail = ()
        if self.faults:
            dispatches, fail = self._inject(dispatches, names)
        at = _Progress(len(dispatches))
        pending, self._pending = self._pending, []
        try:
            return self._submit(dispatches, readbacks, timings, first, checks, pending, fail, at)
        except GPU_ERRORS as e:
            if not at.sent:
                self._pending = pending + self._pending
            names = list(names or [])
            if at.stage == "map":
                raise self._failure("map", e, names) from e
            raise self._failure(at.stage, e, names[at.start:at.stop], dispatches[at.start:at.stop]) from e

    def _submit(self, dispatches, readbacks, timings, first, checks, pending, fail, at) -> list[np.ndarray]:
        """dispatches: [(pipeline, [gpu buffers], (gx, gy, gz))]; readbacks: [(gpu buffer, nbytes)].
        Dispatches go into one compute pass per Options.submit_chunk of them, each chunk its own queue submit (the GPU
        runs the first ones while the CPU encodes the rest). Without read-backs the last chunk is kept pending,
        finished (so validated) but unsent: the next submit sends it with its own first command buffer, so a
        forward and the read-back of its output go to the GPU in one submit less; flush() (before any queue
        write) sends it. pending: those earlier command buffers; fail: stages a test forces to fail (_inject);
        at: how far it got (_Progress), for submit's error. With `timings` (a list) and the
        adapter's timestamp queries, each dispatch gets its own pass with timestamps, and the GPU time of
        each, in seconds, is appended to `timings` (the profiler's mode; passes add a little overhead).
        checks: (checked kernels, results not read back) when dispatches bind the status buffer
        (checks.DeviceStatus.ran); a submit with read-backs reads the status too while any such kernel may have
        reported, and raises what it finds."""
        if checks:
            self.status.ran(*checks)
        opts = current_options()
        timed = timings is not None and "timestamp-query" in self.features and dispatches
        if timed:
            if pending:
                self.device.queue.submit(pending)
                pending, at.sent = [], True
            enc = self.device.create_command_encoder()
            qs = self.device.create_query_set(type="timestamp", count=2 * len(dispatches))
            for i, (pipeline, gpus, grid) in enumerate(dispatches):
                cp = enc.begin_compute_pass(timestamp_writes={
                    "query_set": qs, "beginning_of_pass_write_index": 2 * i, "end_of_pass_write_index": 2 * i + 1})
                self._encode(cp, [(pipeline, gpus, grid)])
                cp.end()
            readbacks = list(readbacks) + [self._resolved(enc, qs, 2 * len(dispatches))]
        else:
            # each chunk is finished (validated) before anything is sent: a failing chunk loses no earlier work
            enc = self.device.create_command_encoder()
            start = 0
            for step in chunk_sizes(len(dispatches), first, opts):
                if start:
                    cb = enc.finish()
                    at.stage = "submit"
                    if "submit" in fail:
                        raise Failure("queue submit refused (a fault forced by tinydl.debug.inject_fault)")
                    self.device.queue.submit([*pending, cb])
                    pending, at.sent = [], True
                    enc = self.device.create_command_encoder()
                at.stage, at.start, at.stop = "encode", start, start + step
                cp = enc.begin_compute_pass()
                self._encode(cp, dispatches[start:start + step])
                cp.end()
                start += step
            if not readbacks and timings is None:
                # the last chunk waits for the next submit (one submit less for a forward and its read-back)
                self._pending = [*pending, enc.finish()]
                return []
        # the status (checks.DeviceStatus) rides in the last read-back's staging buffer, after its data (no map
        # of its own), or alone where nothing else is read; it is cleared only when found set (below)
        check, ride = self.status.dirty, None
        if check:
            ride = next((k for k in reversed(range(len(readbacks))) if readbacks[k][1]), None)
            if ride is None:
                readbacks, ride = [(self.status.gpu, STATUS_BYTES), *readbacks], 0
        staging = []
        for k, (gpu, nbytes) in enumerate(readbacks):
            size = max(16, (nbytes + 15) // 16 * 16)
            extra = STATUS_BYTES if k == ride and gpu is not self.status.gpu else 0
            pool = self._staging.setdefault(size + extra, [])
            st = pool.pop() if pool else self.device.create_buffer(size=size + extra, usage=READBACK)
            if nbytes:
                enc.copy_buffer_to_buffer(gpu, 0, st, 0, size)
            if extra:
                enc.copy_buffer_to_buffer(self.status.gpu, 0, st, size, STATUS_BYTES)
            staging.append((st, nbytes))
        cb = enc.finish()
        at.stage = "submit"
        if "submit" in fail:
            raise Failure("queue submit refused (a fault forced by tinydl.debug.inject_fault)")
        self.device.queue.submit([*pending, cb])
        at.stage, at.sent = "map", True
        native = _native is not None and opts.native_map
        mapped = self._map_read([st for st, nbytes in staging if nbytes], "map" in fail, native)
        out, status = [], None
        for k, (st, nbytes) in enumerate(staging):
            if not nbytes:
                out.append(np.zeros(0, np.uint8))
                self._give_staging(st)
                continue
            view = mapped.pop(0)
            if k == ride:  # the status: the staging buffer's last bytes
                status = np.frombuffer(view, np.uint8)[st.size - STATUS_BYTES:st.size].copy()
            if native and nbytes >= opts.lend_min_bytes:
                out.append(self._lend(st, view, nbytes))
            else:  # one copy out of the mapped memory, straight into the array the caller keeps
                out.append(self._copy_out(view, nbytes, opts))
                self._unmap([st], native)
                self._give_staging(st)
        if check:
            if readbacks[ride][0] is self.status.gpu:
                out.pop(ride)
            if status.any():  # reset before it raises (a queue write: ordered before any later submit)
                self.device.queue.write_buffer(self.status.gpu, 0, bytes(STATUS_BYTES))
            self.status.verify(status)
        if timed:
            ts = np.frombuffer(out.pop(), dtype=np.uint64).reshape(-1, 2).astype(np.int64)
            timings.extend(((ts[:, 1] - ts[:, 0]).clip(min=0) * 1e-9).tolist())
        return out

    def _lend(self, st, view, nbytes: int) -> np.ndarray:
        """The mapped memory of read-back buffer st as the array itself, no copy: st stays mapped while the
        array (or any view of it) lives, then is unmapped and pooled again."""
        owner = _MappedBytes(int(_ffi.cast("uintptr_t", _ffi.from_buffer(view))), nbytes)
        done = weakref.finalize(owner, self._give_back, st, True)
        done.atexit = False  # at exit the device may be gone: nothing to give back
        return np.asarray(owner)

    def _return_lent(self, st) -> None:
        """A lent read-back buffer back (through _give_back: the garbage collector's call)."""
        _native.wgpuBufferUnmap(st._internal)  # lent buffers are mapped through wgpu-native (see submit)
        self._give_staging(st)

    def _give_staging(self, st) -> None:
        """A read-back buffer back to the pool, which keeps STAGING_KEEP of each size (lent arrays the caller
        kept may have made many)."""
        pool = self._staging.setdefault(st.size, [])
        if len(pool) < STAGING_KEEP:
            pool.append(st)
        else:
            st.destroy()

    def _map_read(self, buffers, fail: bool = False, native: bool = True) -> list:
        """Map read-back buffers (their copies just submitted) and return a view of each one's memory. Through
        wgpu-native directly where it can: map requests, then polls on this thread until the GPU is done and
        the map callbacks ran (without blocking for the first spin_seconds, see SPIN_WAIT_SECONDS). wgpu-py's
        map_sync hands the wait to its poll thread and waits for that thread to wake this one, and first submits
        an empty command buffer. native: through wgpu-native (Options.native_map, where it is there)."""
        if not buffers:
            return []
        if fail:  # a map failure forced by a test (tinydl.debug.inject_fault)
            raise Failure("could not map the read-back buffers (a fault forced by tinydl.debug.inject_fault)")
        if not native:
            views = []
            for st in buffers:
                st.map_sync(wgpu.MapMode.READ, 0, st.size)
                views.append(st.read_mapped(0, st.size, copy=False))
            return views
        info = _ffi.new("WGPUBufferMapCallbackInfo *")
        info.mode = _native.WGPUCallbackMode_AllowProcessEvents
        info.callback = _on_mapped
        ids = [next(_map_ids) for _ in buffers]  # this call's requests (another thread may map its own meanwhile)
        for i, st in zip(ids, buffers):
            info.userdata1 = _ffi.cast("void *", i)
            _native.wgpuBufferMapAsync(st._internal, _native.WGPUMapMode_Read, 0, st.size, info[0])
        device = self.device._internal
        spin_until = time.perf_counter() + self.spin_seconds
        # a poll runs every callback that is due, and wgpu-py's poll thread may run ours: poll until all ran
        while not all(i in _mapped for i in ids):
            _native.wgpuDevicePoll(device, time.perf_counter() >= spin_until, _ffi.NULL)
        status = [_mapped.pop(i) for i in ids]
        errors = sorted({_map_errors.pop(i) for i in ids if i in _map_errors})
        if any(s != _native.WGPUMapAsyncStatus_Success for s in status):
            self._unmap([st for st, s in zip(buffers, status) if s == _native.WGPUMapAsyncStatus_Success], True)
            failed = [s for s in status if s != _native.WGPUMapAsyncStatus_Success]
            raise Failure(f"could not map {len(failed)} read-back buffer(s) (status {sorted(failed)})"
                           + "".join(f": {e}" for e in errors))
        ranges = [_native.wgpuBufferGetConstMappedRange(st._internal, 0, st.size) for st in buffers]
        if any(r == _ffi.NULL for r in ranges):  # never read through a null pointer
            self._unmap(buffers, True)
            raise Failure("a mapped read-back buffer has no mapped range")
        return [_ffi.buffer(r, st.size) for r, st in zip(ranges, buffers)]

    def _unmap(self, buffers, native: bool) -> None:
        """Unmap read-back buffers, the way they were mapped (native: through wgpu-native)."""
        for st in buffers:
            if not native:
                st.unmap()
            else:
                _native.wgpuBufferUnmap(st._internal)

    @locked
    def encode(self, dispatches, names=None):
        """dispatches recorded into one compute pass of a finished command buffer, for submit_encoded later: a
        jit replay encodes its next forward while the GPU runs the current one (replay.BoundPlan). names:
        their kernels' names, for errors (KernelError)."""
        if self.faults:
            dispatches, _ = self._inject(dispatches, names)
        try:
            enc = self.device.create_command_encoder()
            cp = enc.begin_compute_pass()
            self._encode(cp, dispatches)
            cp.end()
            return enc.finish()
        except GPU_ERRORS as e:
            raise self._failure("encode", e, names, dispatches) from e

    def submit_encoded(self, command_buffer, copies=(), checks=None, names=None) -> None:
        """Submit a command buffer from encode(), after the pending work of the last submit and the buffer copies
        [(source gpu, destination gpu, nbytes)] (a replay's inputs into the buffers its command buffer reads)."""
        with _lock:
            if checks:  # as in submit
                self.status.ran(*checks)
            enc = None
            try:
                for src, dst, nbytes in copies:
                    if nbytes:
                        enc = enc or self.device.create_command_encoder()
                        enc.copy_buffer_to_buffer(src, 0, dst, 0, (nbytes + 3) // 4 * 4)
                cbs = [*self._pending, *([enc.finish()] if enc is not None else []), command_buffer]
                if self.faults and self._fault(("submit",), names or []):
                    raise Failure("queue submit refused (a fault forced by tinydl.debug.inject_fault)")
                self._pending = []
                self.device.queue.submit(cbs)
            except GPU_ERRORS as e:
                raise self._failure("submit", e, names) from e

    def gpu_seconds(self, dispatches) -> float | None:
        """GPU time of `dispatches` run back to back in one compute pass, from timestamps written at the pass's
        start and end (None where the adapter lacks timestamp queries): the benchmarks' measure of a chain of
        kernels that the host's encode time cannot blur."""
        if "timestamp-query" not in self.features or not dispatches:
            return None
        self.flush()
        enc = self.device.create_command_encoder()
        qs = self.device.create_query_set(type="timestamp", count=2)
        cp = enc.begin_compute_pass(timestamp_writes={
            "query_set": qs, "beginning_of_pass_write_index": 0, "end_of_pass_write_index": 1})
        self._encode(cp, dispatches)
        cp.end()
        resolved = self._resolved(enc, qs, 2)
        self._pending.append(enc.finish())
        ts = np.frombuffer(self.submit([], [resolved])[0], dtype=np.uint64).astype(np.int64)
        return max(int(ts[1] - ts[0]), 0) * 1e-9

    def _resolved(self, enc, query_set, count: int):
        """Resolve `count` timestamps into a new buffer, as a (buffer, bytes) read-back for submit."""
        usage = wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC
        buf = self.device.create_buffer(size=8 * count, usage=usage)
        enc.resolve_query_set(query_set, 0, count, buf, 0)
        return buf, 8 * count

    @locked
    def flush(self) -> None:
        """Submit the pending last chunk of the previous submit (see submit)."""
        if self._pending:
            cbs, self._pending = self._pending, []
            try:
                self.device.queue.submit(cbs)
            except GPU_ERRORS as e:
                raise self._failure("submit", e, []) from e

    # -- failures ------------------------------------------------------------------------------------
    def _failure(self, stage: str, error, names=None, dispatches=(), wgsl=None, detail=None) -> KernelError:
        """The KernelError to raise for `error` (a wgpu error or Failure) at `stage`, naming the kernels
        concerned; for a failing dispatch list, the one kernel to blame and its WGSL, found by encoding each
        alone (only on this error path: the hot path validates whole passes)."""
        if isinstance(error, KernelError):
            return error
        uncycle(error)
        names = [n for n in names or [] if n]
        text = str(error)
        if self.lost or "device is lost" in text or "evice lost" in text or "was lost" in text:
            self.lost = self.lost or text.strip().splitlines()[-1].strip()
            return DeviceLostError("device lost", names, f"the GPU device was lost ({self.lost}), seen at {stage}; "
                                   f"every tensor on it is gone with it: start a new process")
        if stage == "encode" and dispatches:
            found = self._isolate(dispatches)
            if found is not None:
                i, stage, error = found
                uncycle(error)
                error.__traceback__ = None  # only its text is used; its frames lead back to this one: a cycle
                names = [names[i]] if i < len(names) else [f"dispatch {i}"]
                wgsl = next((w for w, p in self._pipelines.items() if p is dispatches[i][0]), None)
        kind = "" if isinstance(error, Failure) else f"{type(error).__name__}: "
        return KernelError(stage, names, detail or f"{kind}{error}", wgsl)

    def _isolate(self, dispatches):
        """(index, stage, error) of the first dispatch that fails on its own ("bind group" or "encode"), or
        None if each passes alone."""
        for i, (pipeline, gpus, grid) in enumerate(dispatches):
            try:
                bind_group = self._bind_group(pipeline, gpus)
            except GPU_ERRORS as e:
                return i, "bind group", e
            try:
                enc = self.device.create_command_encoder()
                cp = enc.begin_compute_pass()
                cp.set_pipeline(pipeline)
                cp.set_bind_group(0, bind_group)
                cp.dispatch_workgroups(*grid)
                cp.end()
                enc.finish()
            except GPU_ERRORS as e:
                return i, "encode", e
        return None

    def _fault(self, stages, names) -> str | None:
        """The stage among `stages` at which a test forces one of these kernels to fail (see self.faults)."""
        for stage in stages:
            part = self.faults.get(stage)
            if part is not None and any(part in n for n in names if n):
                return stage
        return None

    def _inject(self, dispatches, names):
        """Faults forced by a test (tinydl.debug.inject_fault), made real where wgpu can fail without aborting
        the process: the named kernels get a buffer without STORAGE usage ("bind group") or a grid over the
        adapter's limit ("encode"). Returns the dispatches and the stages ("submit", "map") to fail in place:
        wgpu-native aborts the process on a real queue-submit error."""
        dispatches, names = list(dispatches), list(names or [])
        for i, name in enumerate(names[:len(dispatches)]):
            pipeline, gpus, grid = dispatches[i]
            if self._fault(("bind group",), [name]):
                gpus = [self.device.create_buffer(size=gpus[0].size, usage=READBACK), *gpus[1:]]
            if self._fault(("encode",), [name]):
                grid = (self.max_workgroups + 1, 1, 1)
            dispatches[i] = (pipeline, gpus, grid)
        return dispatches, {stage for stage in ("submit", "map") if self._fault((stage,), names)}

    def _encode(self, cp, dispatches) -> None:
        """Record dispatches into the compute pass cp. wgpu-py wraps each native call in an error capture
        (a thread-local stack push/pop) and a Python method: 6-8 µs of the host's time per dispatch, measured
        by benchmarks/dispatch_cost.py. Calling the three C functions directly costs 1.5-3 µs; nothing is lost
        in checking, as wgpu-core defers a pass's validation errors to the encoder's finish(), which still
        goes through wgpu-py and raises them."""
        if _native is None:
            for pipeline, gpus, grid in dispatches:
                cp.set_pipeline(pipeline)
                cp.set_bind_group(0, self._bind_group(pipeline, gpus))
                cp.dispatch_workgroups(*grid)
            return
        handle, bind_group, no_offsets = cp._internal, self._bind_group, _ffi.NULL
        set_pipeline = _native.wgpuComputePassEncoderSetPipeline
        set_bind_group = _native.wgpuComputePassEncoderSetBindGroup
        dispatch = _native.wgpuComputePassEncoderDispatchWorkgroups
        for pipeline, gpus, (gx, gy, gz) in dispatches:
            set_pipeline(handle, pipeline._internal)
            set_bind_group(handle, 0, bind_group(pipeline, gpus)._internal, 0, no_offsets)
            dispatch(handle, gx, gy, gz)

    def info(self) -> dict:
        return {
            "adapter": self.adapter_name, "backend": self.backend,
            "adapter_type": self.adapter.info.get("adapter_type", ""),
            "description": self.adapter.info.get("description", ""),
            "features": sorted(self.features), "limits": dict(self.limits),
            "flushes_subnormals": self.flushes_subnormals,
        }

    @functools.cached_property
    def flushes_subnormals(self) -> bool:
        """Whether float32 arithmetic on this adapter reads and writes subnormals as zero (WGSL allows it;
        NVIDIA's drivers do it): a probe kernel multiplies a subnormal by 1.5, both loaded from memory."""
        with _lock:
            probe = np.array([np.float32(1e-40), np.float32(1.5), 0], np.float32).view(np.uint32)
            buf = self.upload(probe, "the subnormal probe")  # back to the pool when collected (adopted)
            pipeline = self.pipeline(_SUBNORMAL_PROBE, "subnormal probe")
            (out,) = self.submit([(pipeline, [buf.gpu], (1, 1, 1))], [(buf.gpu, probe.nbytes)],
                                 names=["subnormal probe"])
            return int(np.frombuffer(out.tobytes(), np.uint32)[2]) == 0


_SUBNORMAL_PROBE = """@group(0) @binding(0) var<storage, read_write> d: array<u32>;
@compute @workgroup_size(1) fn main() { d[2] = bitcast<u32>(bitcast<f32>(d[0]) * bitcast<f32>(d[1])); }
"""

_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _lock:  # two threads' first calls must not make two devices
            if _runtime is None:
                _runtime = Runtime()
    return _runtime


def device_info() -> dict:
    """The adapter tinydl runs on: name, backend, type, the features and limits it was granted."""
    return get_runtime().info()
