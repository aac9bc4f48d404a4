"""How the runtime's failures reach the caller: a wgpu error (or a Failure) becomes the KernelError that names
the kernel concerned, the one to blame found by encoding each dispatch alone; a lost device is noted for good;
and the faults a test forces (tinydl.debug.inject_fault, Runtime.faults) are made real where wgpu can fail
without aborting the process. Only error paths and tests come here: the hot path validates whole passes."""
from __future__ import annotations

from .errors import DeviceLostError, Failure, KernelError, uncycle
from .transfers import READBACK


class Progress:
    """How far a submit got, for its error: the stage and the dispatches [start, stop) it was at, and whether
    the earlier submits' pending command buffers were sent (else they are kept for the next)."""
    __slots__ = ("stage", "start", "stop", "sent")

    def __init__(self, stop: int):
        self.stage, self.start, self.stop, self.sent = "encode", 0, stop, False


def failure(rt, stage: str, error, names=None, dispatches=(), wgsl=None, detail=None) -> KernelError:
    """The KernelError to raise for `error` (a wgpu error or Failure) at `stage` on runtime rt, naming the kernels
    concerned; for a failing dispatch list, the one kernel to blame and its WGSL, found by encoding each alone.
    A lost device is kept in rt.lost: every later failure is a DeviceLostError."""
    if isinstance(error, KernelError):
        return error
    uncycle(error)
    names = [n for n in names or [] if n]
    text = str(error)
    if rt.lost or "device is lost" in text or "evice lost" in text or "was lost" in text:
        rt.lost = rt.lost or text.strip().splitlines()[-1].strip()
        return DeviceLostError("device lost", names, f"the GPU device was lost ({rt.lost}), seen at {stage}; "
                               f"every tensor on it is gone with it: start a new process")
    if stage == "encode" and dispatches:
        found = isolate(rt, dispatches)
        if found is not None:
            i, stage, error = found
            uncycle(error)
            error.__traceback__ = None  # only its text is used; its frames lead back to this one: a cycle
            names = [names[i]] if i < len(names) else [f"dispatch {i}"]
            wgsl = next((w for w, p in rt._pipelines.items() if p is dispatches[i][0]), None)
    kind = "" if isinstance(error, Failure) else f"{type(error).__name__}: "
    return KernelError(stage, names, detail or f"{kind}{error}", wgsl)


def isolate(rt, dispatches):
    """(index, stage, error) of the first dispatch that fails on its own on rt's device ("bind group" or
    "encode"), or None if each passes alone."""
    for i, (pipeline, gpus, grid) in enumerate(dispatches):
        try:
            bind_group = rt.bind_groups.get(pipeline, gpus)
        except rt.errors as e:
            return i, "bind group", e
        try:
            enc = rt.device.create_command_encoder()
            cp = enc.begin_compute_pass()
            cp.set_pipeline(pipeline)
            cp.set_bind_group(0, bind_group)
            cp.dispatch_workgroups(*grid)
            cp.end()
            enc.finish()
        except rt.errors as e:
            return i, "encode", e
    return None


def fault(faults: dict, stages, names) -> str | None:
    """The stage among `stages` at which a test forces one of these kernels to fail (faults: stage -> a part of
    the kernel's name, Runtime.faults)."""
    for stage in stages:
        part = faults.get(stage)
        if part is not None and any(part in n for n in names if n):
            return stage
    return None


def inject(rt, dispatches, names):
    """The faults rt.faults forces, made real where wgpu can fail without aborting the process: the named kernels
    get a buffer without STORAGE usage ("bind group") or a grid over the adapter's limit ("encode"). Returns the
    dispatches and the stages ("submit", "map") to fail in place: wgpu-native aborts the process on a real
    queue-submit error."""
    dispatches, names = list(dispatches), list(names or [])
    for i, name in enumerate(names[:len(dispatches)]):
        pipeline, gpus, grid = dispatches[i]
        if fault(rt.faults, ("bind group",), [name]):
            gpus = [rt.device.create_buffer(size=gpus[0].size, usage=READBACK), *gpus[1:]]
        if fault(rt.faults, ("encode",), [name]):
            grid = (rt.max_workgroups + 1, 1, 1)
        dispatches[i] = (pipeline, gpus, grid)
    return dispatches, {stage for stage in ("submit", "map") if fault(rt.faults, (stage,), names)}
