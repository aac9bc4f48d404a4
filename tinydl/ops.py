"""The op set as data: graph nodes, node kinds, and the elementwise op table (dtype rules).

A `Node` is one lazy op. Its output is always a contiguous tensor of `shape`/`dtype`; views are nodes of
kind "view" whose index math the kernel emitters inline. When a node is realized it becomes a "buffer"
node holding a GPU buffer and forgets its sources, so the graph behind it can be freed.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from .dtypes import DType

# -- node kinds ----------------------------------------------------------------------------------------
# Leaves: realized data.
BUFFER = "buffer"
# A realized tensor whose storage a later kernel wrote its result into (it was donated: slots.py); reading it raises.
DONATED = "donated"
DONATED_MESSAGE = ("this tensor was donated (tinydl.donate) and a later kernel wrote its result into its storage, so "
                   "its own value is gone; keep that result instead, or do not donate the tensor")
# Inlinable: emitted as an expression inside whichever kernel consumes them.
CONST = "const"          # arg: python value, broadcast to shape
IOTA = "iota"            # arg: (dim, start, step): value = start + index[dim] * step
ELEMENTWISE = "elementwise"  # op: name in ELEMENTWISE_OPS, arg: op parameters (tuple)
VIEW = "view"            # op: reshape | permute | expand | slice | pad; index math only
CAT = "cat"              # arg: dim
GATHER = "gather"        # embedding: srcs (weight, indices)
INTERP = "interp"        # arg: (mode, align_corners, scales) - nearest / linear resampling, 1-3 spatial dims
# Heavy: always the root of a kernel (they may take elementwise consumers as an epilogue).
REDUCE = "reduce"        # op: sum|prod|max|min|argmax|argmin, arg: axes (output keeps dims)
MATMUL = "matmul"        # srcs a [B,M,K], b [B,K,N] -> [B,M,N]; arg: None, or GemmArgs (set by lowering)
CONV = "conv"            # srcs x [N,C,H,W] (or an IM2COL node of it, ConvArgs.im2col), w; arg: ConvArgs
IM2COL = "im2col"        # srcs x [N,C,H,W]; arg: ConvArgs (+ kernel size): [C*KH*KW, N*OH*OW], the conv's windows
POOL = "pool"            # arg: PoolArgs
ROWNORM = "rownorm"      # op: softmax|safe_softmax|log_softmax|layer_norm|rms_norm over axes first..last;
#                          arg: (eps, first, last), and lowered (eps, first, last, teams: kernels/rownorm.py)
SAMPLE = "sample"        # srcs scores [R, V] (float), uniform [R, 1] -> [R] int32: a token per row drawn after HF's
#                          top-k/top-p/min-p filters; arg: (top_k or None, top_p, min_p or None) (kernels/sample.py)
SORT = "sort"            # srcs x [R, N] -> [R, k] int32: the indices of each row's first k in sorted order (stable);
#                          arg: (k, descending) (kernels/sort.py)
RECURRENCE = "recurrence"  # srcs a [R, L, C], b [R, L, C] (, initial [R, 1, C]) -> [R, L, C]: h_t = a_t * h_(t-1)
#                          + b_t along L from the initial state or 0, every h_t (kernels/recurrence.py)
WRITE_SLOT = "write_slot"  # srcs cache, new (cache's shape but 1 along dim), position [1] int32 -> cache with slot
#                          `position` along dim replaced by new; arg: (dim, in_place: set by lowering, slots.py)

HEAVY_KINDS = frozenset({REDUCE, MATMUL, CONV, POOL, ROWNORM, IM2COL, SAMPLE, SORT, RECURRENCE, WRITE_SLOT})

# -- what a kernel can run: checked where a node is built, so that a call no kernel could run fails at the call --
# Loop trips: MAX_TRIPS bounds any one thread's loop trips in any kernel tinydl generates (drivers may cap them:
# lavapipe at 65535 per invocation, all loops together). A GEMM's tile loops K / 8 times or fewer, so a GEMM with
# more than GEMM_MAX_K per K slice is split (a conv's slices are whole input channels); a conv with fewer than
# DIRECT_CONV_MAX_COUT_PER_GROUP output channels per group runs as a direct conv, never split.
MAX_TRIPS = 1 << 14
GEMM_MAX_K = 8 * MAX_TRIPS
DIRECT_CONV_MAX_COUT_PER_GROUP = 8  # below this a GEMM tile (>= 32 columns) would be mostly idle
# Rows longer than ROW_MAX_LEN are not a row kernel (reductions.row_norm composes them from reductions): a workgroup
# of 256 threads makes up to 3 passes over its row, ceil(L / 256) loop trips each.
ROW_MAX_LEN = 1 << 20

_ids = itertools.count()


class Node:
    __slots__ = ("kind", "op", "srcs", "arg", "shape", "dtype", "buffer", "uid", "rounds", "donated", "__weakref__")

    def __init__(self, kind: str, op: str | None, srcs: tuple, arg, shape: tuple, dtype: DType, buffer=None):
        self.kind, self.op, self.srcs, self.arg = kind, op, srcs, arg
        self.shape, self.dtype, self.buffer = tuple(shape), dtype, buffer
        self.uid = next(_ids)
        # a float16 ELEMENTWISE result rounded to half where it is computed, as torch's op stores it (opmath.py);
        # False: kept in float32 up to the kernel's store
        self.rounds = True
        # its storage may take the result of a kernel that overwrites it (slots.donate): the caller reads it no more
        self.donated = False

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def realized(self) -> bool:
        return self.kind == BUFFER

    @property
    def stored(self) -> bool:
        """Data already on the GPU: a buffer, or a big tensor split over buffers (a cat/reshape of them)."""
        if self.kind == BUFFER:
            return True
        if self.kind == CAT or (self.kind == VIEW and self.op == "reshape"):
            return all(s.stored for s in self.srcs)
        return False

    def become_buffer(self, buffer) -> None:
        """Realized: keep the data, drop the recipe."""
        self.kind, self.op, self.srcs, self.arg, self.buffer = BUFFER, None, (), None, buffer

    @property
    def writable(self) -> bool:
        """A donated buffer that no other node holds: a kernel may write its result into it (slots.py)."""
        return self.donated and self.kind == BUFFER and not self.buffer.shared

    def give_storage_away(self) -> None:
        """A donated buffer whose storage now holds another node's result: its own value is gone (reads raise)."""
        self.kind, self.buffer = DONATED, None

    def __repr__(self) -> str:
        return f"Node({self.kind}:{self.op} {self.shape} {self.dtype.name})"


# -- elementwise ops -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ElementwiseOp:
    arity: int
    result: str = "same"   # "same": promoted input dtype; "float": ints become float32; "bool": comparison
    ints: bool = False     # has an integer form (otherwise integer inputs are promoted to float32)


def _ops(arity, names, **kw):
    return {n: ElementwiseOp(arity, **kw) for n in names.split()}


ELEMENTWISE_OPS: dict[str, ElementwiseOp] = {
    **_ops(1, "neg abs sign relu", ints=True),
    **_ops(1, "exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu6 leaky_relu elu gelu gelu_tanh silu "
              "hardswish hardsigmoid softplus mish erf floor ceil round log1p expm1 trunc", result="float"),
    # torch's float functions of kernels/math_functions.py
    **_ops(1, "tan asin acos atan sinh cosh asinh acosh atanh log2 log10 exp2 erfc erfinv", result="float"),
    **_ops(1, "clamp", ints=True),            # arg: (min or None, max or None)
    **_ops(1, "logical_not", result="bool", ints=True),
    "cast": ElementwiseOp(1, result="cast", ints=True),  # arg: (target DType,)
    **_ops(2, "add sub mul maximum minimum", ints=True),
    **_ops(2, "div", result="float"),
    # torch.div(rounding_mode="floor"/"trunc"), %, fmod: int stays int (a zero divisor raises, checks.ZERO_DIVISION)
    **_ops(2, "floor_divide trunc_divide remainder fmod", ints=True),
    **_ops(2, "pow", ints=True),
    **_ops(2, "eq ne lt le gt ge", result="bool", ints=True),
    **_ops(2, "logical_and logical_or", result="bool", ints=True),
    **_ops(1, "bitwise_not", ints=True),      # integer and bool only (tensor._bitwise refuses floats)
    **_ops(2, "bitwise_and bitwise_or bitwise_xor", ints=True),
    **_ops(1, "isnan isinf isfinite signbit", result="bool", ints=True),
    **_ops(2, "atan2", result="float"),
    "where": ElementwiseOp(3, ints=True),     # srcs: (cond, a, b)
}

@dataclass(frozen=True)
class ConvArgs:
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    transposed: bool = False
    split: int = 1  # split-K: groups counts S slices of each real group's input channels (set by lowering)
    im2col: bool = False  # the conv's input is an IM2COL node of x (x_shape): its GEMM reads the windows as data
    x_shape: tuple = ()   # of an IM2COL node and its conv: the image input's shape
    kernel: tuple = ()    # of an IM2COL node: (KH, KW)
    tile: str | None = None  # set by lowering (schedule/lower.py): the GEMM variant, None for a direct conv


@dataclass(frozen=True)
class GemmArgs:
    """A MATMUL's lowering (schedule/lower.py): split-K (batch entry s*B + b multiplies slice s of K) and the GEMM
    variant (kernels.gemm.TILES, or "gemv")."""
    split: int = 1
    tile: str | None = None
    subgroups: bool = False  # the adapter's subgroup operations (a gemv's own statistics meet through them)


@dataclass(frozen=True)
class PoolArgs:
    kind: str                   # "max" | "avg"
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    count_include_pad: bool = True
    divisor_override: int | None = None
    adaptive: bool = False      # windows computed as torch's adaptive pools do (kernel/stride unused)
