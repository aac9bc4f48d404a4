"""The GPU side: the device's features and limits, the buffer pool, the pipeline and bind-group caches, and the
one-submit execution of a list of kernels (plus read-back copies) in a single command encoder. Bytes moving to and
from the host are transfers.py's; turning wgpu's errors into KernelError, and the faults tests force,
failures.py's."""
from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict, deque

import numpy as np

import wgpu

from . import counters, progress, webgpu
from .adapter import NoAdapterError, pick_adapter, request_device  # noqa: F401 - also runtime.X
from .bind_groups import BindGroups
from .checks import STATUS_BYTES, DeviceStatus
from .errors import FAULT_STAGES, DeviceLostError, Failure, KernelError  # noqa: F401 - also runtime.X
from .failures import Progress, failure, fault, inject
from .kernels.gemm_matrix import SHARED_BYTES as MATRIX_SHARED_BYTES
from .options import Options, current as current_options
from .transfers import SPIN_WAIT_SECONDS, STAGING_KEEP, _spin_wait_seconds  # noqa: F401 - also runtime.X
from .transfers import (HostThreads, Staging, UploadStaging, copy_out, fill_in_pieces, lend, map_read, return_lent,
                        unmap, write)

# Dispatches per queue submit (Options.submit_chunk; 0: all in one): the GPU starts on the first chunk while the
# CPU encodes the rest. The first chunk is Options.submit_first dispatches (or the plan's own, see
# schedule.Plan.first_submit), each next one twice the one before, up to submit_chunk (measured with
# benchmarks/cpu_overhead.py --chunks / --first). Uploads and read-backs: transfers.py.

# dispatches per queue submit in a plan's first run on a driver that compiles kernels then, while a progress bar
# counts them (Runtime.compiles_on_first_run): the bar moves in steps this small
FIRST_RUN_CHUNK = 8

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


STORAGE = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
SIZES_KEEP = 4096  # uniform buffers of kernel sizes kept for reuse (Runtime.sizes_buffer)


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
    """A storage buffer from the pool. `nbytes` is the size asked for (the GPU buffer may be the same). shared:
    more than one node holds it (a realized reshape's: graph.alias_reshape), so no kernel may write it in place."""
    __slots__ = ("gpu", "nbytes", "shared", "__weakref__")

    def __init__(self, gpu, nbytes):
        self.gpu, self.nbytes, self.shared = gpu, nbytes, False


class Runtime:
    def __init__(self, gpu: str | int | None = None, backend: str | None = None):
        self.gpu = gpu  # the GPU asked for (adapter.pick_adapter), None: TINYDL_ADAPTER or the best adapter
        self.webgpu = webgpu.load(backend)  # the WebGPU implementation (webgpu.py; None: TINYDL_BACKEND or wgpu)
        self.errors = (*self.webgpu.errors, Failure)  # what its calls raise (and the faults tests force)
        self.adapter = pick_adapter(gpu, backend)
        self.device, self.features = request_device(self.adapter, self.webgpu)
        self.limits = dict(self.device.limits)
        self.adapter_name = self.adapter.info.get("device", "") or self.adapter.summary
        self.backend = self.adapter.info.get("backend_type", "")
        self.adapter_f16 = "shader-f16" in self.features
        self.subgroup_matrix_f16 = (self.adapter_f16 and self.webgpu.has_f16_matrices(self.adapter, self.features)
                                    and self.limits.get("max-compute-workgroup-storage-size", 0) >= MATRIX_SHARED_BYTES)
        self.adapter_spin_seconds = 0.0 if self.adapter.info.get("adapter_type") == "CPU" else SPIN_WAIT_SECONDS
        # a CPU driver (lavapipe) compiles a kernel into machine code when it first runs, in the queue submit
        # that carries it, not when its pipeline is made: a plan's first run then shows a progress bar too
        self.compiles_on_first_run = self.adapter.info.get("adapter_type") == "CPU"
        self.adapter_storage_buffers = self.limits["max-storage-buffers-per-shader-stage"]
        self.adapter_binding_size = min(self.limits["max-storage-buffer-binding-size"], self.limits["max-buffer-size"])
        self.max_workgroups = self.limits["max-compute-workgroups-per-dimension"]
        self._free: dict[int, list] = {}      # pooled storage buffers by byte size
        self._pooled: OrderedDict = OrderedDict()  # the same buffers by id, the least recently freed first
        self.pooled_bytes = 0
        self._staging = Staging()             # pooled read-back buffers by byte size
        self._uploads = UploadStaging()       # pooled upload buffers by byte size (Backend.staged_uploads)
        self._pipelines: OrderedDict[str, object] = OrderedDict()  # by WGSL, the least recently asked for first
        # bind groups by pipeline, then by the buffers bound: a bind group holds its pipeline (and its compiled
        # code) alive, so a pipeline dropped from _pipelines takes its bind groups with it
        self.bind_groups = BindGroups(self.device)
        self._sizes: OrderedDict[tuple, object] = OrderedDict()  # uniform buffers by the sizes they hold
        self._pool = HostThreads()  # the worker threads of split uploads and read-backs (Options.upload_threads, ...)
        self._pending: list = []  # finished command buffers of submits without read-backs, not yet sent (see submit)
        # buffers the garbage collector freed while another thread held the lock: given back under it (_give_back)
        self._later: deque = deque()
        self.faults: dict[str, str] = {}  # test-only forced failures: stage -> kernel name part (debug.inject_fault)
        self.lost: str | None = None  # why the device was lost, once it is
        self.status = DeviceStatus(self.device, STORAGE)  # what checked kernels report (tinydl/checks.py)

    # -- the limits in effect: the adapter's, or a smaller adapter's that Options simulates ---------------
    @property
    def max_storage_buffers(self) -> int:
        cap = current_options().max_storage_buffers
        return self.adapter_storage_buffers if cap is None else min(cap, self.adapter_storage_buffers)

    @property
    def max_binding_size(self) -> int:
        cap = current_options().max_binding_size
        return self.adapter_binding_size if cap is None else min(cap, self.adapter_binding_size)

    @property
    def has_f16(self) -> bool:
        return self.adapter_f16 and current_options().shader_f16

    @property
    def spin_seconds(self) -> float:
        spin = current_options().spin_wait_s
        return self.adapter_spin_seconds if spin is None else spin

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
            gpu = free.pop()
            if not free:
                del self._free[size]
            del self._pooled[id(gpu)]
            self.pooled_bytes -= gpu.size
            return Buffer(gpu, nbytes)
        try:
            return Buffer(self.device.create_buffer(size=size, usage=STORAGE), nbytes)
        except self.errors as e:  # out of memory, device lost
            raise failure(self, f"allocation of {describe}", e) from e

    def release(self, gpu) -> None:
        """gpu's memory is free: pooled for the next tensor of its size, within Options.pool_max_bytes."""
        self._free.setdefault(gpu.size, []).append(gpu)
        self._pooled[id(gpu)] = gpu
        self.pooled_bytes += gpu.size
        cap = current_options().pool_max_bytes
        if self.pooled_bytes > cap:
            self._trim(cap)

    def _trim(self, cap: int) -> None:
        """Drop the least recently freed pooled buffers until at most cap bytes stay pooled, and the cached bind
        groups that name them (so wgpu frees their memory once no submitted work uses them)."""
        dropped = set()
        while self.pooled_bytes > cap and self._pooled:
            _, gpu = self._pooled.popitem(last=False)
            same_size = self._free[gpu.size]
            same_size.remove(gpu)
            if not same_size:
                del self._free[gpu.size]
            self.pooled_bytes -= gpu.size
            dropped.add(id(gpu))
        if dropped:
            self.bind_groups.drop_buffers(dropped)

    @locked
    def empty_cache(self) -> None:
        """Give the memory of every pooled buffer back (torch.cuda.empty_cache's counterpart)."""
        self._drain()
        self._trim(0)
        self._uploads.close()

    def adopt(self, buf: Buffer) -> Buffer:
        """buf now belongs to tensors: its GPU memory returns to the pool when the last one is collected."""
        weakref.finalize(buf, self._give_back, buf.gpu, False)
        return buf

    def _give_back(self, gpu, lent: bool) -> None:
        """A buffer the garbage collector freed (a tensor's storage; lent: a lent read-back array's, still mapped),
        on whatever thread it runs: back to its pool now if the lock is free or this thread holds it, else
        later, by the lock's holder (it may be waiting for this very thread: a worker of transfers.in_pieces)."""
        if _lock.acquire(blocking=False):
            try:
                return_lent(gpu, self._staging, self.webgpu.maps) if lent else self.release(gpu)
            finally:
                _lock.release()
        else:
            self._later.append((gpu, lent))

    def _drain(self) -> None:
        while self._later:
            gpu, lent = self._later.popleft()
            return_lent(gpu, self._staging, self.webgpu.maps) if lent else self.release(gpu)

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
                data, opts = memoryview(np.ascontiguousarray(host)).cast("B"), current_options()
                staged = self.webgpu.staged_uploads if opts.staged_uploads is None else opts.staged_uploads
                if staged and host.nbytes >= opts.staged_upload_min_bytes:
                    fill = fill_in_pieces(self.webgpu.maps, opts, self._pool)
                    self._uploads.write(self.device, buf.gpu, data, self.webgpu.api.MapMode.WRITE,
                                        opts.staged_upload_pool_bytes, fill)
                else:
                    write(self.device.queue, buf.gpu, data, opts, self._pool, self.webgpu.threads)
        except self.errors as e:
            raise failure(self, f"upload of {describe}", e) from e
        return self.adopt(buf)

    # -- pipelines -----------------------------------------------------------------------------------
    def pipeline(self, wgsl: str, name: str | None = None):
        """The compute pipeline of a shader (cached by its text); name: the kernel's, for errors (KernelError).
        Not under the lock: compile_all calls it from worker threads (wgpu-native's creation calls are
        thread-safe; a shader two threads compile at once is compiled twice, one pipeline is kept)."""
        p = self._pipelines.get(wgsl)
        if p is not None:  # recently used: the last to be dropped past Options.pipeline_cache_size
            try:
                self._pipelines.move_to_end(wgsl)
            except KeyError:  # another compile thread dropped it meanwhile (the caller still gets it)
                pass
        forced = fault(self.faults, ("shader", "pipeline"), [name]) if self.faults else None
        if p is None or forced:
            stage, kernels = "shader", [name] if name else []
            try:
                # a forced fault (tests): a real parse error, or a real pipeline error (no such entry point)
                code = wgsl + "\nfn tinydl_injected_fault( {" if forced == "shader" else wgsl
                module = self.device.create_shader_module(code=self.webgpu.prepare(code))
                stage = "pipeline"
                entry = "tinydl_injected_fault" if forced == "pipeline" else "main"
                p = self.device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": entry})
            except self.errors as e:
                detail = (f"tinydl generated WGSL that {self.adapter_name} rejected (a tinydl bug; please report it "
                          f"with this shader): {type(e).__name__}: {e}")
                raise failure(self, stage, e, kernels, wgsl=wgsl, detail=detail) from e
            if wgsl in self._pipelines:
                return self._pipelines[wgsl]
            self._pipelines[wgsl] = p
            counters.stats["pipelines"] += 1
            self._bound_pipelines(current_options().pipeline_cache_size)
        return p

    def sizes_buffer(self, values: tuple[int, ...]):
        """A uniform buffer holding the sizes a kernel reads at run time (schedule/sizes.py), as vec4<u32>s; shared
        by the kernels that read the same values (the least recently asked for dropped past SIZES_KEEP: the plans
        that bind one hold it)."""
        buf = self._sizes.get(values)
        if buf is None:
            data = np.zeros(-(-len(values) // 4) * 4, np.uint32)
            data[:len(values)] = values
            try:
                buf = self.device.create_buffer_with_data(data=data.tobytes(), usage=wgpu.BufferUsage.UNIFORM)
            except self.errors as e:
                raise failure(self, "allocation of a kernel's sizes", e) from e
            self._sizes[values] = buf
            while len(self._sizes) > SIZES_KEEP:
                self._sizes.popitem(last=False)
        self._sizes.move_to_end(values)
        return buf

    def _bound_pipelines(self, keep: int) -> None:
        """Drop the least recently asked-for pipelines past `keep` (a server seeing ever new shapes stays flat):
        the plans that use one hold it, so only a plan built again compiles it again."""
        while len(self._pipelines) > max(keep, 1):
            try:
                pipeline = self._pipelines.pop(next(iter(self._pipelines)))
            except (KeyError, RuntimeError, StopIteration):  # another compile thread dropped or added one
                break
            self.bind_groups.drop_pipeline(pipeline)

    def compile_all(self, shaders, opts: Options | None = None) -> None:
        """Pipelines for several shaders made at once on worker threads (the driver's compiles run side by side;
        wgpu's calls release the GIL): a new plan's kernels, the variants tuning times. A shader that fails is
        left for pipeline() to report when it is asked for. On a terminal, a progress bar counts them (opts:
        the Options in effect, default the current ones; Options.progress)."""
        todo = [w for w in dict.fromkeys(shaders) if w not in self._pipelines]

        def compile_one(wgsl):
            try:
                self.pipeline(wgsl)
            except RuntimeError:
                pass
        if len(todo) <= 1:  # nothing new, or one kernel (a plan's usual case after the first call): no threads
            return compile_one(todo[0]) if todo else None
        opts = opts or current_options()
        with progress.bar(len(todo), "compiling kernels", opts) as bar:
            threads = self._pool(opts.compile_threads) if self.webgpu.threads else None
            done = threads.map(compile_one, todo) if threads else map(compile_one, todo)
            for _ in done:
                bar.update(1)

    # -- execution (a plan's grids come from schedule.Target.grid) -------------------------------------
    @locked
    def submit(self, dispatches, readbacks=(), timings: list | None = None,
               first: int | None = None, checks=None, names=None, first_run: bool = False, later: bool = False):
        """See _submit; names: the dispatches' kernel names. Whatever fails (bind group, encoding, queue submit,
        map, device) raises a KernelError naming the kernel (and its WGSL where one kernel is to blame); the
        pending work of earlier submits is kept for the next, never lost with this one's. first_run: a plan's
        first run, which on a CPU driver compiles its kernels (compiles_on_first_run): a progress bar on a
        terminal counts the dispatches sent, and its last chunk is sent at once rather than kept pending.
        later: with read-backs, return once they are sent: a function that waits for them and returns the
        arrays (work submitted meanwhile runs behind them on the queue and is not waited for; a map failure
        or a checked kernel's report raises from that function)."""
        if self._later:
            self._drain()
        fail = ()
        if self.faults:
            dispatches, fail = inject(self, dispatches, names)
        at = Progress(len(dispatches))
        pending, self._pending = self._pending, []
        shown = first_run and self.compiles_on_first_run and timings is None
        try:
            with progress.bar(len(dispatches) if shown else 0, "first run, the driver compiles kernels",
                              current_options()) as bar:
                reads = self._submit(dispatches, readbacks, timings, first, checks, pending, fail, at, bar)
                if reads is None:
                    return []
                return self._mapped_reads(reads, names) if later and timings is None else reads()
        except self.errors as e:
            if not at.sent:
                self._pending = pending + self._pending
            names = list(names or [])
            if at.stage == "map":
                raise failure(self, "map", e, names) from e
            raise failure(self, at.stage, e, names[at.start:at.stop], dispatches[at.start:at.stop]) from e

    def _mapped_reads(self, reads, names):
        """A submit's deferred read-backs: the function that maps them (under tinydl's lock, errors as submit's)."""
        def wait() -> list[np.ndarray]:
            with _lock:
                try:
                    return reads()
                except self.errors as e:
                    raise failure(self, "map", e, list(names or [])) from e
        return wait

    def _submit(self, dispatches, readbacks, timings, first, checks, pending, fail, at, bar):
        """dispatches: [(pipeline, [gpu buffers], (gx, gy, gz))]; readbacks: [(gpu buffer, nbytes)]. Returns None
        where nothing is read back, else (once the read-backs are sent) the function that maps them and returns
        their arrays.
        Dispatches go into one compute pass per Options.submit_chunk of them, each chunk its own queue submit (the GPU
        runs the first ones while the CPU encodes the rest). Without read-backs the last chunk is kept pending,
        finished (so validated) but unsent: the next submit sends it with its own first command buffer, so a
        forward and the read-back of its output go to the GPU in one submit less; flush() (before any queue
        write) sends it. pending: those earlier command buffers; fail: stages a test forces to fail
        (failures.inject); at: how far it got (failures.Progress), for submit's error; bar: told the dispatches
        sent (progress.bar). With `timings` (a list) and the
        adapter's timestamp queries, each dispatch gets its own pass with timestamps, and its (start, end) on the
        GPU's clock, in seconds, is appended to `timings` (the profiler's mode; passes add a little overhead).
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
            start, n = 0, len(dispatches)
            sizes = (chunk_sizes(n, first, opts) if isinstance(bar, progress.Silent) else  # a first run, counted:
                     [min(FIRST_RUN_CHUNK, n - i) for i in range(0, n, FIRST_RUN_CHUNK)])  # small steps
            for step in sizes:
                if start:
                    cb = enc.finish()
                    at.stage = "submit"
                    if "submit" in fail:
                        raise Failure("queue submit refused (a fault forced by tinydl.debug.inject_fault)")
                    self.device.queue.submit([*pending, cb])
                    pending, at.sent = [], True
                    bar.update(at.stop - at.start)
                    enc = self.device.create_command_encoder()
                at.stage, at.start, at.stop = "encode", start, start + step
                cp = enc.begin_compute_pass()
                self._encode(cp, dispatches[start:start + step])
                cp.end()
                start += step
            if not readbacks and timings is None:
                # the last chunk waits for the next submit (one submit less for a forward and its read-back)
                self._pending = [*pending, enc.finish()]
                if not isinstance(bar, progress.Silent):  # unless a bar counts it: it compiles now
                    self.flush()
                    bar.update(at.stop - at.start)
                return None
        # the status (checks.DeviceStatus) rides in the last read-back's staging buffer, after its data (no map
        # of its own), or alone where nothing else is read; it is cleared only when found set (below)
        check, ride = self.status.dirty, None
        if check:
            check = self.status.take()
            ride = next((k for k in reversed(range(len(readbacks))) if readbacks[k][1]), None)
            if ride is None:
                readbacks, ride = [(self.status.gpu, STATUS_BYTES), *readbacks], 0
        staging = []
        for k, (gpu, nbytes) in enumerate(readbacks):
            size = max(16, (nbytes + 15) // 16 * 16)
            extra = STATUS_BYTES if k == ride and gpu is not self.status.gpu else 0
            st = self._staging.take(self.device, size + extra)
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
        bar.update(at.stop - at.start)
        return lambda: self._read_staging(staging, readbacks, ride, check, timed, timings, fail, opts)

    def _read_staging(self, staging, readbacks, ride, check, timed, timings, fail, opts) -> list[np.ndarray]:
        """The arrays of a submit's read-backs (their staging buffers' copies sent): mapped, copied or lent out,
        the status verified (see _submit)."""
        maps = self.webgpu.maps if opts.native_map else None
        mapped = self._map_read([st for st, nbytes in staging if nbytes], "map" in fail, maps)
        out, status = [], None
        for k, (st, nbytes) in enumerate(staging):
            if not nbytes:
                out.append(np.zeros(0, np.uint8))
                self._staging.give(st)
                continue
            view = mapped.pop(0)
            if k == ride:  # the status: the staging buffer's last bytes
                status = np.frombuffer(view, np.uint8)[st.size - STATUS_BYTES:st.size].copy()
            if maps is not None and nbytes >= opts.lend_min_bytes:
                out.append(lend(st, view, nbytes, self._give_back, maps))
            else:  # one copy out of the mapped memory, straight into the array the caller keeps
                out.append(copy_out(view, nbytes, opts, self._pool))
                unmap([st], maps)
                self._staging.give(st)
        if check:
            if readbacks[ride][0] is self.status.gpu:
                out.pop(ride)
            if status.any():  # reset before it raises (a queue write: ordered before any later submit)
                self.device.queue.write_buffer(self.status.gpu, 0, bytes(STATUS_BYTES))
            self.status.verify(status, check)
        if timed:
            ts = np.frombuffer(out.pop(), dtype=np.uint64).reshape(-1, 2).astype(np.int64)
            timings.extend(zip((ts[:, 0] * 1e-9).tolist(), (np.maximum(ts[:, 1], ts[:, 0]) * 1e-9).tolist()))
        return out

    def _map_read(self, buffers, fail: bool = False, maps=None) -> list:
        """transfers.map_read on this device, with this runtime's spin (see SPIN_WAIT_SECONDS)."""
        return map_read(self.device, buffers, self.spin_seconds, fail, maps)

    @locked
    def encode(self, dispatches, names=None):
        """dispatches recorded into one compute pass of a finished command buffer, for submit_encoded later: a
        jit replay encodes its next forward while the GPU runs the current one (replay.BoundPlan). names:
        their kernels' names, for errors (KernelError)."""
        if self.faults:
            dispatches, _ = inject(self, dispatches, names)
        try:
            enc = self.device.create_command_encoder()
            cp = enc.begin_compute_pass()
            self._encode(cp, dispatches)
            cp.end()
            return enc.finish()
        except self.errors as e:
            raise failure(self, "encode", e, names, dispatches) from e

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
                if self.faults and fault(self.faults, ("submit",), names or []):
                    raise Failure("queue submit refused (a fault forced by tinydl.debug.inject_fault)")
                self._pending = []
                self.device.queue.submit(cbs)
            except self.errors as e:
                raise failure(self, "submit", e, names) from e

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
            except self.errors as e:
                raise failure(self, "submit", e, []) from e

    def _encode(self, cp, dispatches) -> None:
        """Record dispatches into the compute pass cp. wgpu-py wraps each native call in an error capture
        (a thread-local stack push/pop) and a Python method: 6-8 µs of the host's time per dispatch, measured
        by benchmarks/dispatch_cost.py. Calling the three C functions directly costs 1.5-3 µs; nothing is lost
        in checking, as wgpu-core defers a pass's validation errors to the encoder's finish(), which still
        goes through wgpu-py and raises them."""
        native = self.webgpu.lib
        if native is None:
            for pipeline, gpus, grid in dispatches:
                cp.set_pipeline(pipeline)
                cp.set_bind_group(0, self.bind_groups.get(pipeline, gpus))
                cp.dispatch_workgroups(*grid)
            return
        handle, bind_group, no_offsets = cp._internal, self.bind_groups.get, self.webgpu.ffi.NULL
        set_pipeline = native.wgpuComputePassEncoderSetPipeline
        set_bind_group = native.wgpuComputePassEncoderSetBindGroup
        dispatch = native.wgpuComputePassEncoderDispatchWorkgroups
        for pipeline, gpus, (gx, gy, gz) in dispatches:
            set_pipeline(handle, pipeline._internal)
            set_bind_group(handle, 0, bind_group(pipeline, gpus)._internal, 0, no_offsets)
            dispatch(handle, gx, gy, gz)

    def info(self) -> dict:
        return {
            "adapter": self.adapter_name, "backend": self.backend, "webgpu": self.webgpu.name,
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


def use_gpu(gpu: str | int | None, backend: str | None = None) -> Runtime:
    """Start tinydl's device on `gpu`: the GPU a scheduler assigned this process (Ray's ray.get_gpu_ids()[0], an
    nvidia-smi index or a UUID; see adapter.adapter_for_gpu), unless TINYDL_ADAPTER says otherwise; backend: the
    WebGPU implementation (see use_backend). Call it before anything touches the device; once started on
    another GPU or implementation it raises (one device per process)."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(gpu, backend)
        elif gpu is not None and str(_runtime.gpu) != str(gpu):
            raise RuntimeError(f"tinydl already runs on {_runtime.adapter_name} (gpu={_runtime.gpu}); "
                               f"use_gpu({gpu!r}) must come before the first tensor op of the process")
        elif backend is not None and webgpu.canonical(backend) != _runtime.webgpu.name:
            raise RuntimeError(f"tinydl already runs on {_runtime.webgpu.name}; use_backend({backend!r}) must come "
                               f"before the first tensor op of the process (or set {webgpu.BACKEND_ENV})")
    return _runtime


def use_backend(name: str) -> Runtime:
    """Run on the WebGPU implementation `name`: "wgpu" (wgpu-native, the default) or "dawn" (Google's Dawn through
    the wgpudawn package, `pip install 'tinydl[dawn]'`; its subgroup matrices reach tensor cores). Same as
    TINYDL_BACKEND=name; call it before the first tensor op of the process."""
    return use_gpu(None, name)


def device_info() -> dict:
    """The adapter tinydl runs on: name, backend, type, the features and limits it was granted."""
    return get_runtime().info()


def empty_cache() -> None:
    """Give back the GPU memory tinydl keeps pooled for reuse: buffers of freed tensors (a deleted model's weights
    among them), which the next tensor of the same size would take. The pool never holds more than
    Options.pool_max_bytes; live tensors are untouched."""
    if _runtime is not None:
        _runtime.empty_cache()
