"""Bytes between the host and the GPU: uploads (written from worker threads when big), read-backs (mapped
through the implementation's C API where wgpu-py exposes it: NativeMaps, then copied out or lent as the array
itself) and the pool of read-back buffers. runtime.Runtime ties them to its device, its lock and its submits;
nothing here takes the lock.

The runtime's settings are tinydl.options.Options fields, read once per call. An upload of at least
Options.upload_split_bytes is written as Options.upload_threads pieces from worker threads at once: a queue write
is a host memcpy into wgpu's staging memory (wgpu-native releases the GIL), and one thread copies at well below
the host's memory bandwidth. A read-back of at least Options.readback_split_bytes is copied out of the mapped
staging buffer as Options.readback_threads pieces at once (numpy's copy releases the GIL); smaller outputs lose
by it. A read-back of at least Options.lend_min_bytes is not copied at all where the C API is there
(Options.native_map): it is returned as an array over the mapped staging memory itself (lend).
(docs/benchmarks.md, "runtime settings", has the numbers.)"""
from __future__ import annotations

import itertools
import os
import time
import weakref
from collections import OrderedDict

import numpy as np

import wgpu

from .errors import Failure
from .options import Options

READBACK = wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST
STAGING_KEEP = 2  # read-back buffers pooled per size
UPLOADING = wgpu.BufferUsage.MAP_WRITE | wgpu.BufferUsage.COPY_SRC
UPLOAD_KEEP = 4  # upload buffers pooled per size (Options.staged_upload_pool_bytes: in all)


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


class HostThreads:
    """The worker threads of split uploads and read-backs (and of Runtime.compile_all): called with a count, an
    executor of at least that many threads (made anew when asked for more, so tests and benchmarks can change
    the options)."""

    def __init__(self):
        self.threads, self.pool = 0, None

    def __call__(self, threads: int):
        if self.threads < threads:
            from concurrent.futures import ThreadPoolExecutor
            if self.pool is not None:
                self.pool.shutdown()
            self.pool = ThreadPoolExecutor(threads, thread_name_prefix="tinydl-host")
            self.threads = threads
        return self.pool


def in_pieces(pool, n: int, threads: int, align: int, work) -> None:
    """work(offset, size) over n bytes cut into `threads` pieces (offsets and sizes multiples of align, the last
    piece shorter), run at once on pool(threads)'s workers; returns when all are done, re-raising a worker's
    error here."""
    step = (-(-n // threads) + align - 1) // align * align
    list(pool(threads).map(lambda o: work(o, min(step, n - o)), range(0, n, step)))


def write(queue, gpu, data: memoryview, opts: Options, pool, threads: bool = True) -> None:
    """Queue-write data (a multiple of 4 bytes) into gpu from offset 0, in pieces from pool's worker threads when
    big (see Options.upload_threads) and the WebGPU implementation takes calls from several threads (`threads`);
    returns once every piece is in wgpu's staging memory."""
    n = data.nbytes
    if not threads or opts.upload_threads <= 1 or n < opts.upload_split_bytes:
        queue.write_buffer(gpu, 0, data)
        return
    write_buffer = queue.write_buffer
    # queue writes take offsets and sizes in multiples of 4
    in_pieces(pool, n, opts.upload_threads, 4, lambda o, size: write_buffer(gpu, o, data, o, size))


def fill_in_pieces(maps: NativeMaps, opts: Options, pool):
    """UploadStaging.write's fill for a big upload: the mapped buffer written in Options.upload_threads pieces
    from pool's worker threads at once (numpy's copy releases the GIL; no WebGPU call leaves this thread), as
    queue writes are split (see write); None where one thread writes it (small, or no C API to map with)."""
    if maps is None or opts.upload_threads <= 1:
        return None

    def fill(st, data: memoryview) -> None:
        n = data.nbytes
        if n < opts.upload_split_bytes:
            st.write_mapped(data)
            return
        dst, src = maps.mapped_for_write(st, n), np.frombuffer(data, np.uint8)
        in_pieces(pool, n, opts.upload_threads, 4, lambda o, size: np.copyto(dst[o:o + size], src[o:o + size]))
    return fill


def copy_out(mapped, nbytes: int, opts: Options, pool) -> np.ndarray:
    """The first nbytes of a mapped read-back buffer, copied into a new array, in pieces from pool's worker
    threads when big (see Options.readback_threads)."""
    src = np.frombuffer(mapped, np.uint8)[:nbytes]
    if opts.readback_threads <= 1 or nbytes < opts.readback_split_bytes:
        return src.copy()
    out = np.empty(nbytes, np.uint8)
    in_pieces(pool, nbytes, opts.readback_threads, 1, lambda o, size: np.copyto(out[o:o + size], src[o:o + size]))
    return out


class UploadStaging:
    """Uploads through pooled MAP_WRITE buffers, for WebGPU implementations whose big queue writes are slow (Dawn
    takes fresh staging memory for each: docs/benchmarks.md, "uploads on Dawn"): the bytes are written into a
    mapped buffer, copied into their destination by a submit of their own (queue order puts the copy before any
    later work), and the buffer is asked to map again at once, ready for the next upload of its size."""

    def __init__(self):
        self._free: OrderedDict[int, list] = OrderedDict()  # byte size -> [(buffer, its map request)]
        self.nbytes = 0

    def write(self, device, gpu, data: memoryview, map_write, keep_bytes: int, fill=None) -> None:
        """data (a multiple of 4 bytes) into gpu from offset 0; map_write: the implementation's MapMode.WRITE;
        keep_bytes: the most the pool keeps (the least recently used sizes are dropped past it); fill(st, data):
        writes data into the mapped buffer st (None: wgpu-py's write_mapped, one memcpy on this thread)."""
        n = data.nbytes
        free = self._free.get(n)
        if free:
            st, mapping = free.pop()
            self.nbytes -= n
            mapping.sync_wait()  # done long since unless the GPU is still busy with this buffer's last copy
        else:
            st = device.create_buffer(size=n, usage=UPLOADING, mapped_at_creation=True)
        st.write_mapped(data) if fill is None else fill(st, data)
        st.unmap()
        encoder = device.create_command_encoder()
        encoder.copy_buffer_to_buffer(st, 0, gpu, 0, n)
        device.queue.submit([encoder.finish()])
        free = self._free.setdefault(n, [])
        self._free.move_to_end(n)
        if len(free) >= UPLOAD_KEEP:
            st.destroy()
            return
        free.append((st, st.map_async(map_write)))
        self.nbytes += n
        while self.nbytes > keep_bytes:
            size, dropped = self._free.popitem(last=False)
            self.nbytes -= size * len(dropped)
            for buffer, _ in dropped:
                buffer.destroy()

    def close(self) -> None:
        for free in self._free.values():
            for buffer, _ in free:
                buffer.destroy()
        self._free.clear()
        self.nbytes = 0


class Staging(dict):
    """The read-back buffers not in use, by byte size: STAGING_KEEP of each (lent arrays the caller kept may have
    made many)."""

    def take(self, device, size: int):
        pool = self.setdefault(size, [])
        return pool.pop() if pool else device.create_buffer(size=size, usage=READBACK)

    def give(self, st) -> None:
        pool = self.setdefault(st.size, [])
        if len(pool) < STAGING_KEEP:
            pool.append(st)
        else:
            st.destroy()


class NativeMaps:
    """Read-back maps through a WebGPU implementation's C API, waited for on the caller's thread: map requests,
    then polls until the GPU is done and the callbacks ran, without blocking for the first spin_seconds (see
    SPIN_WAIT_SECONDS). wgpu-py's map_sync hands the wait to its poll thread (wgpu-native) or blocks in Dawn's
    WaitAny at once. poll(device, block, futures): run the callbacks that are due, blocking until one of futures
    (the map requests still pending) completes where block (wgpu-native: wgpuDevicePoll; Dawn: ProcessEvents,
    WaitAny)."""

    def __init__(self, ffi, lib, poll):
        self.ffi, self.lib, self.poll = ffi, lib, poll
        self.mapped: dict[int, int] = {}  # map request id -> its status, written by the callback
        self.errors: dict[int, str] = {}  # map request id -> the implementation's message, for a failed request
        self.ids = itertools.count()

        @ffi.callback("void(WGPUMapAsyncStatus, WGPUStringView, void *, void *)")
        def on_mapped(status, message, userdata1, userdata2):
            i = int(ffi.cast("intptr_t", userdata1))
            if status != lib.WGPUMapAsyncStatus_Success and message.data != ffi.NULL:
                self.errors[i] = ffi.string(message.data, message.length).decode("utf-8", "replace")
            self.mapped[i] = status
        self.on_mapped = on_mapped  # kept alive as long as the maps are

    @classmethod
    def wgpu_native(cls, ffi, lib) -> "NativeMaps":
        return cls(ffi, lib, lambda device, block, futures: lib.wgpuDevicePoll(device._internal, block, ffi.NULL))

    @classmethod
    def dawn(cls, ffi, lib, instance) -> "NativeMaps":
        wait = ffi.new("WGPUFutureWaitInfo *")

        def poll(device, block, futures):
            if not block:
                lib.wgpuInstanceProcessEvents(instance)
                return
            wait.future.id, wait.completed = futures[0].id, 0  # in slices of 0.1 s, so that Ctrl-C comes through
            lib.wgpuInstanceWaitAny(instance, 1, wait, 100_000_000)
        return cls(ffi, lib, poll)

    def map_read(self, device, buffers, spin_seconds: float) -> list:
        """Map read-back buffers (their copies just submitted) and return a view of each one's memory."""
        ffi, lib = self.ffi, self.lib
        info = ffi.new("WGPUBufferMapCallbackInfo *")
        info.mode = lib.WGPUCallbackMode_AllowProcessEvents
        info.callback = self.on_mapped
        ids = [next(self.ids) for _ in buffers]  # this call's requests (another thread may map its own meanwhile)
        futures = {}
        for i, st in zip(ids, buffers):
            info.userdata1 = ffi.cast("void *", i)
            futures[i] = lib.wgpuBufferMapAsync(st._internal, lib.WGPUMapMode_Read, 0, st.size, info[0])
        spin_until = time.perf_counter() + spin_seconds
        # a poll runs every callback that is due, and the implementation's own threads may run ours: poll until
        # all ran
        while not all(i in self.mapped for i in ids):
            self.poll(device, time.perf_counter() >= spin_until, [futures[i] for i in ids if i not in self.mapped])
        status = [self.mapped.pop(i) for i in ids]
        errors = sorted({self.errors.pop(i) for i in ids if i in self.errors})
        success = lib.WGPUMapAsyncStatus_Success
        if any(s != success for s in status):
            self.unmap([st for st, s in zip(buffers, status) if s == success])
            failed = [s for s in status if s != success]
            raise Failure(f"could not map {len(failed)} read-back buffer(s) (status {sorted(failed)})"
                          + "".join(f": {e}" for e in errors))
        ranges = [lib.wgpuBufferGetConstMappedRange(st._internal, 0, st.size) for st in buffers]
        if any(r == ffi.NULL for r in ranges):  # never read through a null pointer
            self.unmap(buffers)
            raise Failure("a mapped read-back buffer has no mapped range")
        return [ffi.buffer(r, st.size) for r, st in zip(ranges, buffers)]

    def unmap(self, buffers) -> None:
        for st in buffers:
            self.lib.wgpuBufferUnmap(st._internal)

    def mapped_for_write(self, st, nbytes: int) -> np.ndarray:
        """The first nbytes of buffer st, mapped for writing, as a writable array (valid until it is unmapped)."""
        ptr = self.lib.wgpuBufferGetMappedRange(st._internal, 0, nbytes)
        if ptr == self.ffi.NULL:
            raise Failure("a mapped upload buffer has no mapped range")
        return np.frombuffer(self.ffi.buffer(ptr, nbytes), np.uint8)

    def address(self, view) -> int:
        return int(self.ffi.cast("uintptr_t", self.ffi.from_buffer(view)))


def map_read(device, buffers, spin_seconds: float, fail: bool = False, maps: NativeMaps | None = None) -> list:
    """Map read-back buffers (their copies just submitted) and return a view of each one's memory: through maps
    (the implementation's C API, Options.native_map) where given, else wgpu-py's map_sync. fail: a map failure a
    test forces (tinydl.debug.inject_fault)."""
    if not buffers:
        return []
    if fail:
        raise Failure("could not map the read-back buffers (a fault forced by tinydl.debug.inject_fault)")
    if maps is not None:
        return maps.map_read(device, buffers, spin_seconds)
    views = []
    for st in buffers:
        st.map_sync(wgpu.MapMode.READ, 0, st.size)
        views.append(st.read_mapped(0, st.size, copy=False))
    return views


def unmap(buffers, maps: NativeMaps | None) -> None:
    """Unmap read-back buffers, the way they were mapped (maps: through the implementation's C API)."""
    if maps is not None:
        maps.unmap(buffers)
        return
    for st in buffers:
        st.unmap()


class _MappedBytes:
    """Mapped read-back memory as numpy sees it (the base of a lent array: the buffer goes back when this dies)."""
    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, address: int, nbytes: int):
        self.__array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (address, False), "version": 3}


def lend(st, view, nbytes: int, give_back, maps: NativeMaps) -> np.ndarray:
    """The mapped memory of read-back buffer st (mapped through maps) as the array itself, no copy: st
    stays mapped while the array (or any view of it) lives, then give_back(st, True) runs (Runtime._give_back,
    on the garbage collector's thread: it unmaps st and pools it again through return_lent)."""
    owner = _MappedBytes(maps.address(view), nbytes)
    done = weakref.finalize(owner, give_back, st, True)
    done.atexit = False  # at exit the device may be gone: nothing to give back
    return np.asarray(owner)


def return_lent(st, staging: Staging, maps: NativeMaps) -> None:
    """A lent read-back buffer, no longer referenced, unmapped and back in the pool."""
    maps.unmap([st])
    staging.give(st)
