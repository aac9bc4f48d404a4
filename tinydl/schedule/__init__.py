"""The lazy fusion: from the recorded graph to a list of kernels, executed together.

realize(tensors)
  1. walk the unrealized graph behind the tensors (stopping at realized buffers) in a fixed order;
     its structure (ops, args, shapes, dtypes - not data) is the cache key of the plan (graph.py), with the
     chooser, the Target and the planning Options; the cache keeps the Options.plan_cache_size plans used last;
  2. on a cache miss (plan.py): lower it (lower.py: im2col, split-K, each GEMM's variant, chosen once), partition
     it into kernels (fuse.py: the fusion rules, pure, on a Target), generate WGSL, get pipelines;
  3. bind this graph's buffers by position, encode the kernels and submit them, read-backs in the same submit
     as the last kernels (execute.py).
"""
from __future__ import annotations

import contextlib
import contextvars
from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np

from .. import counters, dtypes, errors, profiler, runtime
from ..ops import BUFFER, CAT, Node
from ..options import current as current_options
from ..runtime import get_runtime
from .execute import bind, execute as _execute, submit  # noqa: F401 - schedule.X (schedule.execute: the module)
from .fuse import CHEAP_PARAM_OPS, INLINE_SUM_MAX  # noqa: F401
from .graph import alias_reshape, stored_leaves, walk  # noqa: F401
from .lower import RULES, Rules
from .plan import ESTIMATE_FLOPS, SIZES, KernelStep, Plan, build_plan  # noqa: F401
from .target import Target  # noqa: F401

# the plans by key, least recently used first (plan_for evicts from the front past Options.plan_cache_size)
_plans: OrderedDict[tuple, Plan] = OrderedDict()
# Who picks each GEMM's variant (tile, split-K) while lowering, by Options.tune: the rules, or tinydl.tuning's
# measuring chooser, which registers itself when tinydl is imported (it plans through this module).
_CHOOSERS: dict[bool, Rules] = {False: RULES}
# [(runtime, the Options' simulated limits), their Target]: read once per runtime and limits, again after clear_cache()
_target_of: list = [None, None]


def register_tuner(tuner: Rules) -> None:
    _CHOOSERS[True] = tuner


def chooser(opts) -> Rules:
    """The GEMM chooser under Options opts."""
    return _CHOOSERS[opts.tune]


def target() -> Target:
    """This runtime's adapter limits, as planning sees them (lower where the Options simulate a smaller adapter)."""
    rt, opts = get_runtime(), current_options()
    limits = (rt, opts.max_storage_buffers, opts.max_binding_size)
    if _target_of[0] != limits:
        _target_of[:] = limits, Target.of(rt)
    return _target_of[1]


def _plan(order: list[Node], roots: list[int], opts, compile_kernels: bool = True) -> Plan:
    """The kernels of a walked graph on this runtime's adapter, under Options opts (compile_kernels=False: their
    WGSL only)."""
    rt = get_runtime()
    return build_plan(order, roots, target(), opts, chooser(opts), rt if compile_kernels else None)


def plan_for(order: list[Node], sig: tuple, roots: list[int]) -> Plan:
    """The cached plan of a graph structure (lowering, planning and code generation only on a miss). The key
    holds the chooser, the Target and the Options fields that change plans (Options.plan_key; last), not the
    runtime's. Past Options.plan_cache_size plans the least recently used is dropped (a jit capture holding it
    keeps replaying it)."""
    opts = current_options()
    key = (sig, _CHOOSERS[opts.tune].key(), target(), opts.plan_key)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _plan(order, roots, opts)
        plan.key = key
        counters.stats["plans"] += 1
        while len(_plans) > opts.plan_cache_size:
            _plans.popitem(last=False)
    else:
        _plans.move_to_end(key)
    return plan


def drop_plan(plan: Plan) -> None:
    """A plan whose execution failed is not kept as good: the next call plans (and compiles) afresh."""
    if _plans.get(plan.key) is plan:
        del _plans[plan.key]


def realize(*tensors, readback=False):
    """Compute the given tensors (one plan). With readback=True returns their bytes (uint8 arrays)."""
    return realize_nodes([t.node for t in tensors], readback)


@runtime.locked
def realize_nodes(nodes: list[Node], readback: bool = False, later: bool = False, also: Iterable[Node] = ()):
    """Compute the nodes (one plan); readback: return their bytes (later: a function that waits for them and
    returns them, see Runtime.submit). also: more nodes computed and kept in the same plan, not read back."""
    for n in nodes:
        alias_reshape(n)
    pending = [n for n in nodes if not n.stored]
    if pending:
        uids = {n.uid for n in pending}
        for n in also:
            alias_reshape(n)
            if not n.stored and n.uid not in uids:
                uids.add(n.uid)
                pending.append(n)
    if not pending and not readback:
        return None
    t0 = profiler.now()
    order, sig, pos = walk(pending or nodes)
    roots = [pos[n.uid] for n in pending]
    plan = plan_for(order, sig, roots)
    reads = [pos[n.uid] for n in nodes] if readback else []
    try:
        return _execute(order, plan, roots, reads, profiler.now() - t0, later)
    except errors.KernelError:
        drop_plan(plan)
        raise


@runtime.locked
def kernels_for(t):
    """The dispatches that compute tensor t, planned afresh (not cached: tuning plans one op under each variant
    it times) and bound to buffers, not submitted; and t's output buffer, which the caller gives back
    (runtime.release) once done with the dispatches (tinydl.tuning)."""
    order, _sig, pos = walk([t.node])
    root = pos[t.node.uid]
    plan = _plan(order, [root], current_options())
    bufs, dispatches = bind(order, plan, [root])
    return dispatches, bufs[root].gpu


def shaders_for(t) -> list[str]:
    """The WGSL of the kernels that would compute tensor t, nothing compiled (tuning compiles its candidates'
    shaders all at once: runtime.Runtime.compile_all)."""
    order, _sig, pos = walk([t.node])
    return [step.wgsl for step in _plan(order, [pos[t.node.uid]], current_options(), compile_kernels=False).steps]


def _read_pieces(n: Node) -> np.ndarray:
    if n.kind == BUFFER:
        return _read(n)
    if n.kind == CAT:
        return np.concatenate([_read_pieces(s) for s in n.srcs], axis=n.arg)
    return _read_pieces(n.srcs[0]).reshape(n.shape)


# who names the values a caller still holds, which a read-back computes (and keeps) in its own plan (held_on_read)
_held: contextvars.ContextVar[Callable[[], Iterable[Node]] | None] = contextvars.ContextVar("tinydl_held",
                                                                                         default=None)


@contextlib.contextmanager
def held_on_read(held: Callable[[], Iterable[Node]]):
    """In the block, a read-back that computes also computes and keeps the nodes held() names: a program that reads
    a value mid-way and goes on with others (the eager path: `scores[:, label] > t` for each label) then computes
    each shared part once, where each read would otherwise compute again the unrealized graph it shares."""
    token = _held.set(held)
    try:
        yield
    finally:
        _held.reset(token)


HOST_READS = 0  # read-backs so far: a jit capture is not kept when fn read values (its graph may depend on them)


def read(t) -> np.ndarray:
    """t's values on the host: realized and copied back in the same submit."""
    return _read(t.node)


def read_later(t):
    """Start reading t's values back: its kernels and the copy go to the GPU now; returns a function that waits
    for them and returns the array. Work submitted before that function is called runs behind the copy and is
    not waited for (the decode loop submits the next step, fed on the GPU, before it waits for the token)."""
    n = t.node
    if n.stored and n.kind != BUFFER:
        return lambda: _read(n)
    wait = _read(n, later=True)
    return lambda: _as_array(n, wait()[0])


@runtime.locked
def _read(n: Node, later: bool = False):
    global HOST_READS
    HOST_READS += 1
    if n.stored and n.kind != BUFFER:  # stored in pieces: read them, join on the host
        return _read_pieces(n)
    held = _held.get()
    also = held() if held is not None and not n.stored else ()
    if later:
        return realize_nodes([n], readback=True, later=True, also=also)
    return _as_array(n, realize_nodes([n], readback=True, also=also)[0])


def _as_array(n: Node, data: np.ndarray) -> np.ndarray:
    """The bytes read back for node n as its array."""
    dt = n.dtype
    arr = data.view(np.dtype(dt.storage.replace("f16", "float16").replace("f32", "float32")
                             .replace("i32", "int32").replace("u32", "uint32")))
    arr = arr[: n.numel].reshape(n.shape)  # a view of the read-back copy, which nothing else holds
    return arr.astype(np.bool_) if dt == dtypes.bool_ else arr


@runtime.locked
def clear_cache() -> None:
    """Forget every plan, and the Target (tests change the runtime's limits)."""
    _plans.clear()
    _target_of[:] = None, None
    SIZES.clear()
