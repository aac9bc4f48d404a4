"""Replaying a forward: after the first call, a call with inputs of the same shapes skips building the graph
(Python op by op), walking it and looking up its plan: it copies the new inputs into the capture's buffers and
submits the forward encoded during the previous call, then encodes the next one while the GPU runs
(replay.BoundPlan).

    fast = tinydl.jit(model)          # or any function of tensors
    y = fast(tinydl.tensor(x))        # 1st call: runs normally and captures the plan
    y = fast(tinydl.tensor(x2))       # later calls: replay

Captured: the plan, and the realized tensors the graph read besides the inputs (weights). The captures are
dropped, and their buffers handed back to the pool, when the state of the modules the function reads changes
(`_roots`: the function if it is a Module, the Module of a bound method, Modules in its closure or in globals it
names): a parameter or buffer assigned, registered, deleted, reloaded or cast, train()/eval(), a submodule
replaced, any attribute assigned. Module tells the Jits that watch it (`Module._changed`), so a replay checks
one flag; the Jit then compares the modules' fingerprints (`Module._fingerprint`). A change in one model never
drops another model's captures. A Jit keeps the captures of the Options.max_captures input shapes used last
(a model called with ever new shapes, e.g. growing sequence lengths, would otherwise keep every shape's plan
and buffers). The function must be shape-static: the same ops for the same input shapes,
with no data-dependent Python control flow.
"""
from __future__ import annotations

from collections import OrderedDict

from . import profiler, schedule
from .ops import BUFFER, Node
from .options import current as current_options
from .errors import KernelError
from .runtime import get_runtime, locked
from .replay import BoundPlan
from .schedule.execute import execute
from ._tensor import Tensor
from .nn.module import Module


def _flatten(obj, out: list):
    """Tensors in a nested output (tuples, lists, dicts, dataclass-like objects) and a rebuild function."""
    if isinstance(obj, Tensor):
        out.append(obj)
        i = len(out) - 1
        return lambda ts: ts[i]
    # the rebuild functions keep the containers' types, never the containers: a capture's rebuild must not hold
    # the first call's outputs (their buffers)
    kind = type(obj)
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        parts = [_flatten(o, out) for o in obj]
        return lambda ts: kind(p(ts) for p in parts)
    if isinstance(obj, tuple):  # namedtuple
        parts = [_flatten(o, out) for o in obj]
        return lambda ts: kind(*(p(ts) for p in parts))
    if isinstance(obj, dict):
        parts = {k: _flatten(v, out) for k, v in obj.items()}
        return lambda ts: kind({k: p(ts) for k, p in parts.items()}) if kind is dict else \
            _rebuild_mapping(kind, {k: p(ts) for k, p in parts.items()})
    return lambda ts: obj


def _rebuild_mapping(kind, values):
    try:
        return kind(**values)
    except TypeError:
        return dict(values)


class _Capture:
    def __init__(self, order, plan, roots, input_pos, rebuild):
        # input index -> positions in the walk order of its buffers: one, or the pieces of an input larger than
        # one storage binding (a stored cat; a same-shaped input is cut into the same pieces)
        self.input_pos = input_pos
        self.rebuild = rebuild
        self.shapes = [(order[r].shape, order[r].dtype) for r in roots]
        self.bound = BoundPlan(order, plan, roots, [p for ps in input_pos.values() for p in ps])
        self.donated_inputs = [i for i, ps in input_pos.items() if self.bound.donated.intersection(ps)]

    def replay(self, inputs):
        t0 = profiler.now()
        outs = [Node("jit", None, (), None, shape, dtype) for shape, dtype in self.shapes]
        buffers = {p: leaf.buffer for i, ps in self.input_pos.items()
                   for p, leaf in zip(ps, schedule.stored_leaves(inputs[i].node))}
        try:
            self.bound.run(buffers, outs, profiler.now() - t0)
        finally:  # the donated inputs whose storage took a result (even a failed run's, which may have written it)
            for i in self.donated_inputs:
                inputs[i].node.give_storage_away()
        return self.rebuild([Tensor(n) for n in outs])

    def close(self) -> None:
        """Hand the buffers this capture owns (intermediates, input copies, the pre-encoded next replay's
        outputs) back to the pool and let go of its weights: a dropped capture must not keep memory. Work
        already submitted that uses them runs before any later use (one queue, in order)."""
        bound, rt = self.bound, get_runtime()
        nxt, bound._next = bound._next, None
        bufs = [b for bs in bound.private.owned.values() for b in bs] + list(bound.input_copies.values())
        bufs += list(nxt[1].values()) if nxt else []
        bound.private.owned, bound.private._free, bound.input_copies, bound.leaves = {}, {}, {}, []
        for b in bufs:
            rt.release(b.gpu)


class Jit:
    def __init__(self, fn):
        self.fn = fn
        self.captures: OrderedDict[tuple, _Capture] = OrderedDict()  # least recently used first
        # the fingerprint of the watched modules' state the captures were made under; stale: a watched
        # module changed since it was taken (set by Module._changed), so the next call compares again
        self._state = None
        self._stale = True

    @locked  # any thread: calls run one at a time (their captures and replay buffers are shared)
    def __call__(self, *args, **kwargs):
        inputs: list[Tensor] = []
        _flatten((args, kwargs), inputs)
        if not inputs or not all(
                isinstance(a, (Tensor, int, float, bool, str, type(None))) for a in list(args) + list(kwargs.values())):
            return self.fn(*args, **kwargs)  # host inputs (arrays, nested containers): run normally
        lazy = [t for t in inputs if t.node.kind != BUFFER]
        if lazy:  # e.g. model(x.half()): compute the inputs first (their kernels ride in the replay's submit)
            schedule.realize(*lazy)
        # non-tensor arguments (scale=2.0, flags) shape the graph: they are part of the key, by value; so does
        # which inputs are the same tensor (f(x, x) captures one graph input where f(x, y) has two)
        first: dict[int, int] = {}
        same = tuple(first.setdefault(t.node.uid, i) for i, t in enumerate(inputs))
        if self._stale:
            self._check_state()
        key = (tuple((t.shape, t.dtype, t.node.writable) for t in inputs), same,
               repr([a for a in args if not isinstance(a, Tensor)]),
               repr(sorted((k, v) for k, v in kwargs.items() if not isinstance(v, Tensor))),
               tuple(sorted(k for k, v in kwargs.items() if isinstance(v, Tensor))),
               current_options().plan_key)  # a capture's plan holds for the settings it was planned under
        cap = self.captures.get(key)
        if cap is not None:
            self.captures.move_to_end(key)
            try:
                return cap.replay(inputs)
            except KernelError:  # not kept as good: the next call runs fn and captures afresh
                if self.captures.get(key) is cap:
                    del self.captures[key]
                    cap.close()
                raise
        reads = schedule.HOST_READS
        out = self.fn(*args, **kwargs)
        if schedule.HOST_READS != reads:  # fn read values (x[mask], .item()): a replay would reuse this call's
            return out                    # values, so it runs each call instead
        outs: list[Tensor] = []
        rebuild = _flatten(out, outs)
        cap = self._capture(outs, inputs, rebuild)
        if cap is not None:
            before, self._state = self._state, self._fingerprint()
            if self._state == before:
                self.captures[key] = cap
                while len(self.captures) > max(current_options().max_captures, 1):
                    self.captures.popitem(last=False)[1].close()
            else:  # fn changed the state it reads (e.g. assigns a buffer): a replay would not; run it each call
                cap.close()
        return out

    def __deepcopy__(self, memo):
        """copy.deepcopy of a model that holds its Jit (from_torch modules): the copy replays for the copied
        model, with no captures (they hold GPU objects, and the original's state)."""
        import copy
        return Jit(copy.deepcopy(self.fn, memo))

    # -- the state captures depend on ---------------------------------------------------------------------
    def state_changed(self) -> None:
        """Called by a watched Module on any change that may alter fn's result."""
        self._stale = True

    def _roots(self) -> list:
        """The Modules fn reads: fn itself, a bound method's Module, Modules in its closure or in the globals
        its code names (rebinding such a name to another Module is not seen: nothing tells the Jit)."""
        fn = self.fn
        found = [fn, getattr(fn, "__self__", None)]
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                found.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
        code, glob = getattr(fn, "__code__", None), getattr(fn, "__globals__", None)
        if code is not None and glob is not None:
            found += [glob.get(name) for name in code.co_names]
        roots, seen = [], set()
        for m in found:
            if isinstance(m, Module) and id(m) not in seen:
                seen.add(id(m))
                roots.append(m)
        return roots

    def _fingerprint(self) -> tuple:
        return tuple(m._fingerprint(self) for m in self._roots())

    def _check_state(self) -> None:
        self._stale = False  # first: a change while the fingerprint is taken marks it stale again
        state = self._fingerprint()
        if state != self._state:
            self.drop_captures()
            self._state = state

    def drop_captures(self) -> None:
        """Forget every capture and give its buffers back (the plan cache keeps the plans: same graph
        structure, same plan)."""
        caps = list(self.captures.values())
        self.captures.clear()
        for cap in caps:
            cap.close()

    def _capture(self, outs, inputs, rebuild):
        nodes = [t.node for t in outs]
        if not nodes or any(n.kind == BUFFER or n.stored for n in nodes) or len({n.uid for n in nodes}) != len(nodes):
            return None  # an output that is already data (an input, a weight) or repeated: not worth replaying
        order, sig, pos = schedule.walk(nodes)
        plan = schedule.plan_for(order, sig, [pos[n.uid] for n in nodes])
        input_pos = {i: [pos[leaf.uid] for leaf in schedule.stored_leaves(t.node)]
                     for i, t in enumerate(inputs) if t.node.uid in pos}
        if not set(plan.aliases.values()) <= {p for ps in input_pos.values() for p in ps}:
            return None  # a donated tensor fn reads from elsewhere (a closure): its storage is written once, here
        roots = [pos[n.uid] for n in nodes]
        cap = _Capture(order, plan, roots, input_pos, rebuild)
        try:
            execute(order, plan, roots, [])  # realize the first call's outputs with the same plan
        except KernelError:  # neither the capture nor the plan is kept as good
            cap.close()
            schedule.drop_plan(plan)
            raise
        return cap


def jit(fn):
    """Wrap a function or Module so repeated calls with same-shaped inputs replay the captured plan."""
    return Jit(fn)
