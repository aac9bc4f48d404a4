"""Replaying a forward: after the first call, a call with inputs of the same shapes skips building the graph
(Python op by op), walking it and looking up its plan: it copies the new inputs into the capture's buffers and
submits the forward encoded during the previous call, then encodes the next one while the GPU runs
(schedule.BoundPlan).

    fast = tinydl.jit(model)          # or any function of tensors
    y = fast(tinydl.tensor(x))        # 1st call: runs normally and captures the plan
    y = fast(tinydl.tensor(x2))       # later calls: replay

Captured: the plan, and the realized tensors the graph read besides the inputs (weights). A capture is
dropped when weights are reloaded or cast (tinydl.nn.Module bumps WEIGHTS_VERSION). The function must be
shape-static: the same ops for the same input shapes, with no data-dependent Python control flow.
"""
from __future__ import annotations

from . import profiler, schedule
from .ops import BUFFER, Node
from .tensor import Tensor

WEIGHTS_VERSION = [0]  # bumped by Module.load_state_dict / half / float / to


def bump_weights_version() -> None:
    WEIGHTS_VERSION[0] += 1


def _flatten(obj, out: list):
    """Tensors in a nested output (tuples, lists, dicts, dataclass-like objects) and a rebuild function."""
    if isinstance(obj, Tensor):
        out.append(obj)
        i = len(out) - 1
        return lambda ts: ts[i]
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        parts = [_flatten(o, out) for o in obj]
        return lambda ts: type(obj)(p(ts) for p in parts)
    if isinstance(obj, tuple):  # namedtuple
        parts = [_flatten(o, out) for o in obj]
        return lambda ts: type(obj)(*(p(ts) for p in parts))
    if isinstance(obj, dict):
        parts = {k: _flatten(v, out) for k, v in obj.items()}
        return lambda ts: type(obj)({k: p(ts) for k, p in parts.items()}) if type(obj) is dict else \
            _rebuild_mapping(obj, {k: p(ts) for k, p in parts.items()})
    return lambda ts: obj


def _rebuild_mapping(template, values):
    try:
        return type(template)(**values)
    except TypeError:
        return dict(values)


class _Capture:
    def __init__(self, order, plan, roots, input_pos, rebuild):
        # input index -> positions in the walk order of its buffers: one, or the pieces of an input larger than
        # one storage binding (a stored cat; a same-shaped input is cut into the same pieces)
        self.input_pos = input_pos
        self.rebuild = rebuild
        self.shapes = [(order[r].shape, order[r].dtype) for r in roots]
        self.bound = schedule.BoundPlan(order, plan, roots, [p for ps in input_pos.values() for p in ps])

    def replay(self, inputs):
        t0 = profiler.now()
        outs = [Node("jit", None, (), None, shape, dtype) for shape, dtype in self.shapes]
        buffers = {p: leaf.buffer for i, ps in self.input_pos.items()
                   for p, leaf in zip(ps, schedule.stored_leaves(inputs[i].node))}
        self.bound.run(buffers, outs, profiler.now() - t0)
        return self.rebuild([Tensor(n) for n in outs])


class Jit:
    def __init__(self, fn):
        self.fn = fn
        self.captures: dict[tuple, _Capture] = {}

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
        key = (tuple((t.shape, t.dtype) for t in inputs), same, WEIGHTS_VERSION[0],
               repr([a for a in args if not isinstance(a, Tensor)]),
               repr(sorted((k, v) for k, v in kwargs.items() if not isinstance(v, Tensor))),
               tuple(sorted(k for k, v in kwargs.items() if isinstance(v, Tensor))))
        cap = self.captures.get(key)
        if cap is not None:
            return cap.replay(inputs)
        out = self.fn(*args, **kwargs)
        outs: list[Tensor] = []
        rebuild = _flatten(out, outs)
        cap = self._capture(outs, inputs, rebuild)
        if cap is not None:
            self.captures[key] = cap
        return out

    def _capture(self, outs, inputs, rebuild):
        nodes = [t.node for t in outs]
        if not nodes or any(n.kind == BUFFER or n.stored for n in nodes) or len({n.uid for n in nodes}) != len(nodes):
            return None  # an output that is already data (an input, a weight) or repeated: not worth replaying
        order, sig, pos = schedule.walk(nodes)
        plan = schedule.plan_for(order, sig, [pos[n.uid] for n in nodes])
        input_pos = {i: [pos[leaf.uid] for leaf in schedule.stored_leaves(t.node)]
                     for i, t in enumerate(inputs) if t.node.uid in pos}
        roots = [pos[n.uid] for n in nodes]
        cap = _Capture(order, plan, roots, input_pos, rebuild)
        schedule.execute(order, plan, roots, [])  # realize the first call's outputs with the same plan
        return cap


def jit(fn):
    """Wrap a function or Module so repeated calls with same-shaped inputs replay the captured plan."""
    return Jit(fn)
