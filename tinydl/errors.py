"""How tinydl's GPU work fails: the errors raised instead of a wrong answer, the stages they name, and the wgpu
errors the runtime turns into them (each WebGPU implementation's own classes: webgpu.Backend.errors)."""
from __future__ import annotations

import re

# where a kernel can fail, as KernelError.stage says (and tinydl.debug.inject_fault can force)
FAULT_STAGES = ("shader", "pipeline", "bind group", "encode", "submit", "map")


class KernelError(RuntimeError):
    """A kernel could not be compiled or run: raised instead of handing back whatever its output buffer held.
    stage: where it failed (FAULT_STAGES, or "device lost"); kernels: the names of the kernels concerned, as
    tinydl.debug.last_kernels() names them (one where the culprit is known); wgsl: that kernel's source."""

    def __init__(self, stage: str, kernels, detail: str, wgsl: str | None = None):
        self.stage, self.kernels, self.wgsl, self.detail = stage, list(kernels), wgsl, detail
        who = (f"kernel {self.kernels[0]!r}" if len(self.kernels) == 1 else
               f"one of the kernels {self.kernels}" if self.kernels else "tinydl's GPU work")
        message = f"tinydl: {who} failed at {stage}: {detail}"
        if wgsl is not None:
            message += f"\nits WGSL:\n{wgsl}"
        super().__init__(message)

    def about(self, kernels) -> "KernelError":
        """The same failure, blamed on these kernels (the caller knows which one needed what failed)."""
        return type(self)(self.stage, kernels, self.detail, self.wgsl)


class DeviceLostError(KernelError):
    """The GPU device is gone (driver reset, out of memory, destroyed): every tensor on it is lost with it."""


class Failure(Exception):
    """A failure wgpu reports other than by raising (a map request's status) or one forced by a test."""




_WEBGPU_PACKAGE = re.compile(r"[/\\](wgpu|wgpudawn)[/\\]")


def uncycle(error) -> None:
    """The WebGPU packages raise their errors from wrapper frames that keep the error in a local (wgpu-py's
    proxy_func, wgpudawn's own): error -> traceback -> that frame -> error, a cycle that keeps every frame above it
    (their tensors, so their GPU buffers) until Python's cycle collector runs. Clear the locals of the packages'
    finished frames (reading f_locals to look for the error would itself keep them)."""
    tb = getattr(error, "__traceback__", None)
    while tb is not None:
        frame = tb.tb_frame
        if _WEBGPU_PACKAGE.search(frame.f_code.co_filename):
            try:
                frame.clear()
            except RuntimeError:  # still running (the frame that caught it)
                pass
        tb = tb.tb_next
