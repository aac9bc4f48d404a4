"""A captured plan bound for replay (tinydl.jit): its dispatch list with every buffer that is the same in each
replay bound once, and the intermediates the capture owns."""
from __future__ import annotations

from . import profiler, schedule
from .errors import KernelError
from .ops import BUFFER, Node
from .options import current as current_options
from .runtime import get_runtime
from .schedule.execute import bind, describe, report, submit

# A jit replay submits a command buffer encoded before it was called, and encodes the next replay's while
# the GPU runs this one (BoundPlan.run): the host's encoding (~5 us per kernel, wgpu's pass validation at
# finish() most of it) leaves the critical path. Off (Options.pre_encode): each replay encodes its own kernels,
# in chunks.


class BoundPlan:
    """A captured plan (tinydl.jit) with every buffer that is the same in each replay bound once: weights
    and intermediates (owned by the capture, so the same buffers always meet the same kernels and find their
    bind groups cached). A replay submits the command buffer the previous replay encoded, reading copies of
    its inputs, and encodes the next (Options.pre_encode); profiled, it puts its inputs' buffers and fresh output
    buffers into the kernels that touch them and submits those. No walk over the graph, no buffer bookkeeping
    per kernel."""

    def __init__(self, order: list[Node], plan: schedule.Plan, roots: list[int], inputs: list[int]):
        self.plan = plan
        self.private = PrivateBuffers()
        bufs, dispatches = bind(order, plan, roots, self.private)
        rt = get_runtime()
        for r in roots:  # outputs: fresh in every replay (the caller may keep the previous ones)
            rt.release(bufs[r].gpu)
        self.outputs = [(r, order[r].numel * order[r].dtype.itemsize, describe(order[r].shape))
                        for r in roots]
        varying = set(roots) | set(inputs)
        # the realized leaves it reads (weights): held, so their buffers never go back to the pool under it
        self.leaves = [n.buffer for p, n in enumerate(order) if n.kind == BUFFER and p not in varying]
        self.dispatches, self.patches = [], []
        for k, (step, (pipeline, gpus, grid)) in enumerate(zip(plan.steps, dispatches)):
            slots = [(i, p) for i, p in enumerate([step.out, *step.inputs]) if p in varying]
            for i, _ in slots:
                gpus[i] = None  # bound per replay; holding the first call's buffer would keep it from the pool
            self.dispatches.append((pipeline, gpus, grid))
            if slots:
                self.patches.append((k, slots))

        # pre-encoded replays read their inputs from buffers of their own, copied into first (see Options.pre_encode)
        self.input_copies = {p: rt.alloc(order[p].numel * order[p].dtype.itemsize, "jit input") for p in inputs}
        self._next = None  # (command buffer, {root position: its fresh Buffer}) of the next replay

    def _dispatches(self, bufs: dict[int, object]) -> list:
        """The dispatch list with the varying buffers (inputs, outputs) from bufs: position -> Buffer."""
        dispatches = list(self.dispatches)
        for k, slots in self.patches:
            pipeline, gpus, grid = dispatches[k]
            gpus = list(gpus)
            for i, p in slots:
                gpus[i] = bufs[p].gpu
            dispatches[k] = (pipeline, gpus, grid)
        return dispatches

    def _encode_next(self):
        rt = get_runtime()
        outs = {r: rt.alloc(nbytes, describe) for r, nbytes, describe in self.outputs}
        try:
            return rt.encode(self._dispatches({**self.input_copies, **outs}), self.plan.names), outs
        except BaseException:
            for b in outs.values():
                rt.release(b.gpu)
            raise

    def run(self, inputs: dict[int, object], outputs: list[Node], plan_s: float) -> None:
        """inputs: position -> Buffer; outputs: the nodes of the roots, in order, which become buffers."""
        rt = get_runtime()
        pre_encoded = current_options().pre_encode and profiler.active() is None
        if pre_encoded:
            command_buffer, bufs = self._next or self._encode_next()
            self._next = None
        else:
            bufs = {r: rt.alloc(nbytes, describe) for r, nbytes, describe in self.outputs}
        try:
            if pre_encoded:
                rt.submit_encoded(command_buffer, [(inputs[p].gpu, self.input_copies[p].gpu, inputs[p].nbytes)
                                                   for p in inputs],
                                  checks=(self.plan.checked, list(bufs.values())) if self.plan.checked else None,
                                  names=self.plan.names)
                report(self.plan)
            else:
                submit(self.plan, self._dispatches({**inputs, **bufs}), [], plan_s, list(bufs.values()))
        except BaseException:  # no output is marked realized; its buffers go back
            for b in bufs.values():
                rt.release(b.gpu)
            raise
        tainted = rt.status.tainted(inputs.values()) if rt.status.bad else None  # see schedule.execute
        for (r, _, _), node in zip(self.outputs, outputs):
            node.become_buffer(rt.adopt(bufs[r]))
            if tainted is not None:
                rt.status.bad[node.buffer] = tainted
        if pre_encoded:
            try:
                self._next = self._encode_next()
            except KernelError:
                pass  # this call's results are good; the next replay encodes its own and raises there


class PrivateBuffers:
    """The intermediates of one captured plan (tinydl.jit), owned by the capture: taken and given back in
    the plan's order from per-size stacks (a buffer is reused once its last reader has run), once, when
    the capture binds its plan (BoundPlan)."""

    def __init__(self):
        self.owned: dict[int, list] = {}   # size -> buffers in creation order
        self._free: dict[int, list] = {}

    def take(self, rt, nbytes: int, describe: str):
        stack = self._free.get(nbytes)
        if stack:
            return stack.pop()
        buf = rt.alloc(nbytes, describe)
        self.owned.setdefault(nbytes, []).append(buf)
        return buf

    def give(self, buf) -> None:
        self._free.setdefault(buf.nbytes, []).append(buf)
