"""Device-side checks: what a kernel finds wrong while it runs (an index out of range, an integer overflow) is
recorded on the GPU and raised on the host at the next read-back, never turned into a silent wrong answer.

The mechanism, end to end:
- An emitter that can detect a violation writes `src.report(Code.X)` (KernelSource.report) into its WGSL: an
  `atomicOr` of the code's bit into a 16-byte status buffer that the runtime owns (`Runtime.status`, a
  DeviceStatus). Only such kernels bind it (as their last binding); the kernel must still compute something
  harmless for the bad element (e.g. read row 0, never out of bounds).
- The scheduler asks `may_report(node)` for every node a kernel evaluates, so the extra binding counts toward
  the adapter's storage-buffers-per-stage limit (schedule.fuse.respect_binding_limit). Kernels with no checks
  (GEMMs, convs, float and bool elementwise chains) bind nothing extra and pay nothing; int32 arithmetic that can
  overflow int32 reports Code.INTEGER_OVERFLOW (kernels/overflow.py, as the int32 sums and products of reduce.py).
- A submit that ran checked kernels marks the status dirty (`Runtime.submit(..., checks=(kernels, results))`,
  `submit_encoded(..., checks=...)`, from schedule.submit and replay.BoundPlan.run: kernels = [(name, codes)] of
  `Plan.checked`, results = the Buffers it computed that this submit does not read back). The next submit
  with read-backs, while dirty, also copies the status into the end of its last read-back's staging buffer (no
  extra submit, wait or map); if a bit is set, the runtime clears it (a queue write) and the read raises
  (`DeviceStatus.verify`), naming the check and the kernels that could have set it; later calls work again.

When the error surfaces (like CUDA's device-side asserts, but at a defined place):
- a realization that reads back (`.numpy()`, `.item()`, `.tolist()`, printing) raises itself if one of its own
  kernels, or any checked kernel since the last read-back, found a violation (so an unrelated read can be the
  one that raises, as with CUDA; the message names the kernel);
- results realized without a read-back (`.realize()`, a jit replay) by a realization with checked kernels are
  "suspects" until the next read-back verifies the status: if it is clean they are fine; if not, they are marked
  bad, and reading them, or realizing anything from them, raises the same error again (never a wrong number).

To add a check: a Code member (a new bit) with its exception type and message in MESSAGES, a predicate
registered with `reporter` telling the scheduler which nodes may report, and `src.report(code)` in the
emitter.
"""
from __future__ import annotations

import enum
import weakref

import numpy as np

STATUS_BYTES = 16  # word 0: the reported codes (bits); the rest reserved (a read-back copies 16 bytes at least)
SUSPECTS_PRUNE = 4096  # suspects kept before the dead ones are dropped (jit replays whose outputs nobody reads)


class Code(enum.IntFlag):
    INDEX = 1 << 0             # an index (gather, embedding, index_select, x[idx]) outside its dim
    INTEGER_OVERFLOW = 1 << 1  # an int32 result (a sum or product, elementwise arithmetic) that does not fit int32
    ZERO_DIVISION = 1 << 2     # an integer //, % or fmod by a zero element (torch CPU raises)
    PROBABILITY = 1 << 3       # sampling from scores with NaN or +inf, or only -inf (torch.multinomial raises)


# code -> (exception type, message); the message starts with torch's wording where torch has one
MESSAGES = {
    Code.INDEX: (IndexError, "index out of range in self"),
    Code.ZERO_DIVISION: (RuntimeError, "ZeroDivisionError"),
    Code.INTEGER_OVERFLOW: (RuntimeError, "integer overflow: an int32 result (a sum, product or other integer "
                                          "arithmetic) does not fit int32 (torch computes it in int64, which tinydl "
                                          "does not store)"),
    Code.PROBABILITY: (RuntimeError, "probability tensor contains either `inf`, `nan` or element < 0"),
}

_reporters: list = []


def reporter(predicate):
    """Register predicate(node) -> bool: a kernel evaluating such a node may report (binds the status buffer)."""
    _reporters.append(predicate)
    return predicate


def may_report(node) -> bool:
    return any(p(node) for p in _reporters)


@reporter
def _sample_checks(node) -> bool:
    from .ops import SAMPLE
    return node.kind == SAMPLE


@reporter
def _gather_checks(node) -> bool:
    from .ops import GATHER
    return node.kind == GATHER and bool(node.arg)  # arg: the Code reported for an index out of range (or None)


def wgsl_binding(binding: int) -> str:
    return f"@group(0) @binding({binding}) var<storage, read_write> td_status: array<atomic<u32>>;"


def wgsl_report(code: Code) -> str:
    """The statement that reports `code` from anywhere in a kernel that binds the status buffer."""
    return f"atomicOr(&td_status[0], {int(code)}u);"


class DeviceStatus:
    """The runtime's status buffer and what the host knows about it (see the module's docstring)."""

    def __init__(self, device, usage):
        self.gpu = device.create_buffer(size=STATUS_BYTES, usage=usage)  # zero-filled by WebGPU
        self.dirty = False        # a checked kernel ran since the status was last read
        self._suspects: list = []  # weakrefs to result Buffers realized by checked kernels since the last read
        self._prune_at = SUSPECTS_PRUNE
        self._kernels: dict[str, int] = {}  # names of the checked kernels since the last read -> their codes
        self.bad = weakref.WeakKeyDictionary()  # result Buffer -> (exception type, message)

    def ran(self, kernels=(), results=()) -> None:
        """Checked kernels ([(name, codes)]) were submitted; `results` (Buffers) are not read back by the same
        submit, so they stay suspects until the next read verifies the status."""
        self.dirty = True
        for name, codes in kernels:
            self._kernels[name] = self._kernels.get(name, 0) | int(codes)
        self._suspects.extend(weakref.ref(b) for b in results)
        if len(self._suspects) > self._prune_at:  # many realizations and no read-back: drop the collected ones
            self._suspects = [r for r in self._suspects if r() is not None]
            self._prune_at = max(SUSPECTS_PRUNE, 2 * len(self._suspects))  # amortized, however many stay alive

    def take(self) -> tuple:
        """What the status copied by a read-back's submit vouches for: the suspects and checked kernels so far
        (then no longer dirty). verify() judges them once the copy is mapped; work submitted in between (a read
        whose wait comes later: Runtime.submit(later=True)) starts a new set."""
        self.dirty = False
        taken = self._suspects, self._kernels
        self._suspects, self._kernels = [], {}
        return taken

    def verify(self, data: np.ndarray, taken: tuple | None = None) -> None:
        """The status bytes a read-back brought back (the buffer is cleared if set): raise if set. taken: what
        take() returned at that read-back's submit (None: take it now). A set status also condemns the results
        of checked work submitted after the copy: clearing the buffer erases whatever that work reported."""
        suspects, kernels = self.take() if taken is None else taken
        word = int(np.frombuffer(data[:4].tobytes(), np.uint32)[0]) if len(data) >= 4 else 0
        if not word:
            return
        error = self.error(word, kernels)
        for ref in suspects + self._suspects:
            buf = ref()
            if buf is not None:
                self.bad[buf] = error
        raise error[0](error[1])

    @staticmethod
    def error(word: int, kernels: dict) -> tuple:
        codes = [c for c in Code if word & c] or [Code.INDEX]
        exc, msg = MESSAGES[codes[0]]
        msg = "; ".join(MESSAGES[c][1] for c in codes)
        names = [n for n, c in kernels.items() if c & word]
        where = f" in kernel {', '.join(names)}" if names else ""
        return exc, (f"{msg} (found on the GPU{where}; raised at the first read-back after that kernel ran, "
                     f"see tinydl/checks.py)")

    def tainted(self, buffers):
        """The error of the first bad buffer among `buffers` (results of a checked realization whose status
        read found a violation), or None."""
        if not self.bad:
            return None
        for b in buffers:
            err = self.bad.get(b)
            if err is not None:
                return err
        return None
