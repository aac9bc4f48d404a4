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
        # in-place results (plan.aliases): computed in the buffer of the donated input each replay is given
        self.aliases = dict(plan.aliases)
        self.donated = set(self.aliases.values())
        assert self.donated <= set(inputs), "a capture writes in place only into its inputs (Jit._capture)"
        for r in roots:  # outputs: fresh in every replay (the caller may keep the previous ones)
            if r not in self.aliases:
                rt.release(bufs[r].gpu)
        self.outputs = [(r, order[r].numel * order[r].dtype.itemsize, describe(order[r].shape))
                        for r in roots]
        varying = set(roots) | set(inputs) | set(self.aliases)
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

        # pre-encoded replays read their inputs from buffers of their own, copied into first (see Options.pre_encode);
        # not a donated one: the replay writes into the buffer it is given, which the next replay is likely given
        self.input_copies = {p: rt.alloc(order[p].numel * order[p].dtype.itemsize, "jit input")
                             for p in inputs if p not in self.donated}
        # (command buffer, {root position: its fresh Buffer}, {donated position: the Buffer it binds}) of the next
        # replay
        self._next = None

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

    def _fresh_outputs(self) -> dict:
        rt = get_runtime()
        return {r: rt.alloc(nbytes, describe) for r, nbytes, describe in self.outputs if r not in self.aliases}

    def _buffers(self, inputs: dict, outs: dict) -> dict:
        """Every varying buffer by position: the inputs (or their copies), the fresh outputs, and each in-place
        result in its donated input's buffer."""
        return {**inputs, **outs, **{q: inputs[p] for q, p in self.aliases.items()}}

    def _encode_next(self, donated: dict):
        """The next replay's command buffer, binding the donated buffers given (the ones it will likely get)."""
        rt = get_runtime()
        outs = self._fresh_outputs()
        try:
            cb = rt.encode(self._dispatches(self._buffers({**self.input_copies, **donated}, outs)), self.plan.names)
            return cb, outs, donated
        except BaseException:
            self._release(outs)
            raise

    @staticmethod
    def _release(outs: dict) -> None:
        rt = get_runtime()
        for b in outs.values():
            rt.release(b.gpu)

    def run(self, inputs: dict[int, object], outputs: list[Node], plan_s: float) -> None:
        """inputs: position -> Buffer; outputs: the nodes of the roots, in order, which become buffers. The
        donated inputs' storage takes the in-place results (the caller gives those inputs' nodes away)."""
        rt = get_runtime()
        donated = {p: inputs[p] for p in self.donated}
        pre_encoded = current_options().pre_encode and profiler.active() is None
        if pre_encoded:
            nxt, self._next = self._next, None
            if nxt is not None and any(nxt[2][p] is not donated[p] for p in donated):
                self._release(nxt[1])  # encoded for other donated buffers than these
                nxt = None
            command_buffer, bufs, _ = nxt or self._encode_next(donated)
        else:
            bufs = self._fresh_outputs()
        results = list(bufs.values()) + list(donated.values()) if self.plan.checked else None
        try:
            if pre_encoded:
                rt.submit_encoded(command_buffer, [(inputs[p].gpu, self.input_copies[p].gpu, inputs[p].nbytes)
                                                   for p in inputs if p not in donated],
                                  checks=(self.plan.checked, results) if self.plan.checked else None,
                                  names=self.plan.names)
                report(self.plan)
            else:
                submit(self.plan, self._dispatches(self._buffers(inputs, bufs)), [], plan_s, results)
        except BaseException:  # no output is marked realized; its buffers go back
            self._release(bufs)
            raise
        tainted = rt.status.tainted(inputs.values()) if rt.status.bad else None  # see schedule.execute
        for (r, _, _), node in zip(self.outputs, outputs):
            node.become_buffer(donated[self.aliases[r]] if r in self.aliases else rt.adopt(bufs[r]))
            if tainted is not None:
                rt.status.bad[node.buffer] = tainted
        if pre_encoded:
            try:
                self._next = self._encode_next(donated)  # (the next replay is likely given these results)
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
