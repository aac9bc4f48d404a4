"""What a computation would run as, without running it: explain.plan(fn, *inputs) lowers and fuses the graph fn
builds and writes its kernels' WGSL; nothing is compiled, run or cached. With placeholder() inputs and a made-up
schedule.Target it needs no GPU (tests/test_schedule_nogpu.py):

    from tinydl import explain, schedule
    x, w = explain.placeholder(1, 64, 56, 56), explain.placeholder(64, 64, 3, 3)
    explain.plan(lambda x, w: F.conv2d(x, w, padding=1).relu(), x, w, target=schedule.Target()).names
    # ['conv2d+relu 1x64x56x56 [tile64]']
"""
from __future__ import annotations

from . import schedule
from .dtypes import DType, float32
from .ops import BUFFER, Node
from .options import Options, current as current_options
from ._tensor import Tensor


def placeholder(*shape, dtype: DType = float32) -> Tensor:
    """A tensor of this shape and dtype with no data: an input for plan(), which never reads it (nothing is
    uploaded, no GPU is needed)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(Node(BUFFER, None, (), None, tuple(shape), dtype))


def plan(fn, *inputs, target: schedule.Target | None = None, options: Options | None = None) -> schedule.Plan:
    """The plan that would compute fn(*inputs) (a tensor, or a tuple/list of them): `.names` are its kernels'
    names as TINYDL_DEBUG prints them, `.steps` their details (WGSL, inputs, grid, FLOPs). target: the adapter's
    limits (default: this GPU's); options: the settings (default: the current tinydl.options)."""
    out = fn(*inputs)
    nodes = [t.node for t in (out if isinstance(out, (tuple, list)) else (out,))]
    pending = [n for n in nodes if not n.stored]
    order, _sig, pos = schedule.walk(pending)
    opts = options or current_options()
    return schedule.build_plan(order, [pos[n.uid] for n in pending], target or schedule.target(), opts,
                               schedule.chooser(opts))
