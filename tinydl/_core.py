"""The core of a tensor: a lazy handle on a graph node, its metadata and views (index math, no copies), and
how every op builds its node (`_make`, `_const`). The op modules (creation, joining, elementwise, reductions,
indexing) build on this module only; the class users hold, with a method per op, is tinydl._tensor.Tensor (a
subclass of this one, defined above them all, which registers itself here so that every op returns one)."""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from . import dtypes
from .dtypes import DType
from .ops import CAT, CONST, IOTA, VIEW, Node
from .options import current as current_options
from .shapes import infer_reshape, normalize_dim, normalize_dims

Scalar = (int, float, bool, np.number, np.bool_)
MaxMin = namedtuple("MaxMin", ["values", "indices"])


class Tensor:
    """State, metadata and views; the op methods are tinydl._tensor.Tensor's."""
    __slots__ = ("node", "__weakref__")
    __array_priority__ = 1000  # numpy scalars/arrays on the left defer to Tensor operators

    def __init__(self, node: Node):
        self.node = node

    # -- metadata ------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.shape

    @property
    def dtype(self) -> DType:
        return self.node.dtype

    @property
    def ndim(self) -> int:
        return len(self.node.shape)

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return self.node.numel

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[normalize_dim(dim, self.ndim)]

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # -- movement (views: index math, no copies) -----------------------------------------------------
    def reshape(self, *shape) -> "Tensor":
        shape = infer_reshape(_varargs(shape), self.numel())
        if shape == self.shape:
            return self
        n = self.node
        if n.kind == VIEW and n.op == "reshape":  # reshape of reshape: one reshape of the original
            return _wrap(n.srcs[0]).reshape(shape)
        if n.kind == CONST:
            return _const(n.arg, shape, n.dtype)
        return _view(self, "reshape", shape, shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        if self.ndim == 0:
            return self.reshape(1)
        s, e = normalize_dim(start_dim, self.ndim), normalize_dim(end_dim, self.ndim)
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        return self.reshape(self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:])

    def unflatten(self, dim: int, sizes) -> "Tensor":
        d = normalize_dim(dim, self.ndim)
        sizes = infer_reshape(sizes, self.shape[d]) if -1 in tuple(sizes) else tuple(sizes)
        if math.prod(sizes) != self.shape[d]:
            raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim "
                               f"{dim} ({self.shape[d]}) in the input tensor")
        return self.reshape(self.shape[:d] + sizes + self.shape[d + 1:])

    def squeeze(self, dim=None) -> "Tensor":
        dims = normalize_dims(dim, self.ndim) if dim is not None else tuple(range(self.ndim))
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))

    def unsqueeze(self, dim: int) -> "Tensor":
        d = normalize_dim(dim, self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def permute(self, *dims) -> "Tensor":
        dims = _varargs(dims)
        if len(dims) != self.ndim:
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                               f"length of the desired ordering of dimensions i.e. input.dim() = {self.ndim} is not "
                               f"equal to len(dims) = {len(dims)}")
        dims = tuple(normalize_dim(d, self.ndim) for d in dims)
        if len(set(dims)) != len(dims):
            raise RuntimeError("permute(): duplicate dims are not allowed.")
        if dims == tuple(range(self.ndim)):
            return self
        n = self.node
        if n.kind == VIEW and n.op == "permute":  # compose: a double transpose vanishes
            inner = n.arg
            return _wrap(n.srcs[0]).permute(tuple(inner[d] for d in dims))
        if n.kind == CONST:
            return _const(n.arg, tuple(self.shape[d] for d in dims), n.dtype)
        return _view(self, "permute", dims, tuple(self.shape[d] for d in dims))

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        d0, d1 = normalize_dim(dim0, self.ndim), normalize_dim(dim1, self.ndim)
        order = list(range(self.ndim))
        order[d0], order[d1] = order[d1], order[d0]
        return self.permute(order)

    swapaxes = swapdims = transpose

    def movedim(self, source, destination) -> "Tensor":
        """Dims source moved to positions destination, the others keeping their order (a permute)."""
        src = [source] if isinstance(source, int) else list(source)
        dst = [destination] if isinstance(destination, int) else list(destination)
        if len(src) != len(dst):
            raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) should contain the "
                               f"same number of dims as destination ({dst} dims)")
        src = [normalize_dim(d, self.ndim) for d in src]
        dst = [normalize_dim(d, self.ndim) for d in dst]
        for name, ds in (("source", src), ("destination", dst)):
            if len(set(ds)) != len(ds):
                raise RuntimeError(f"movedim: repeated dim in `{name}` ({ds})")
        order = [None] * self.ndim
        for s, d in zip(src, dst):
            order[d] = s
        rest = iter(d for d in range(self.ndim) if d not in src)
        return self.permute([o if o is not None else next(rest) for o in order])

    moveaxis = movedim

    def t(self) -> "Tensor":
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self.transpose(0, 1) if self.ndim == 2 else self

    @property
    def T(self) -> "Tensor":
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> "Tensor":
        if self.ndim < 2:
            raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got {self.ndim}-D "
                               f"tensor.")
        return self.transpose(-2, -1)

    def expand(self, *shape) -> "Tensor":
        shape = _varargs(shape)
        if len(shape) < self.ndim:
            raise RuntimeError(f"expand(torch.FloatTensor{{{list(self.shape)}}}, size={list(shape)}): the number of "
                               f"sizes provided ({len(shape)}) must be greater or equal to the number of dimensions "
                               f"in the tensor ({self.ndim})")
        lead = len(shape) - self.ndim
        full = (1,) * lead + self.shape
        out = []
        for i, (have, want) in enumerate(zip(full, shape)):
            if want == -1:
                if i < lead:
                    raise RuntimeError(f"The expanded size of the tensor (-1) isn't allowed in a leading, "
                                       f"non-existing dimension {i}")
                want = have
            if have != want and have != 1:
                raise RuntimeError(f"The expanded size of the tensor ({want}) must match the existing size ({have}) "
                                   f"at non-singleton dimension {i}.  Target sizes: {list(shape)}.  Tensor sizes: "
                                   f"{list(self.shape)}")
            out.append(want)
        out = tuple(out)
        if out == self.shape:
            return self
        if self.node.kind == CONST:
            return _const(self.node.arg, out, self.dtype)
        base = self.reshape(full) if lead else self
        if out == base.shape:
            return base
        return _view(base, "expand", out, out)

    def expand_as(self, other: "Tensor") -> "Tensor":
        return self.expand(other.shape)

    def broadcast_to(self, size) -> "Tensor":
        return self.expand(size)

    def contiguous(self) -> "Tensor":
        return self  # every node's output is contiguous; views are materialized by the kernel reading them

    def _slice(self, dim: int, start: int, stop: int, step: int) -> "Tensor":
        size = self.shape[dim]
        start, stop, step = slice(start, stop, step).indices(size)
        length = builtins.max(0, (stop - start + step - 1) // step)
        if start == 0 and step == 1 and length == size:
            return self
        starts = [0] * self.ndim
        steps = [1] * self.ndim
        starts[dim], steps[dim] = start, step
        shape = self.shape[:dim] + (length,) + self.shape[dim + 1:]
        return _view(self, "slice", (tuple(starts), tuple(steps)), shape)


_tensor_class = Tensor  # every op's result: tinydl._tensor.Tensor once it is defined (register)


def register(cls) -> None:
    """Make cls (tinydl._tensor.Tensor: this class with the op methods) the class of every tensor an op returns."""
    global _tensor_class
    _tensor_class = cls


def _wrap(node: Node) -> Tensor:
    return _tensor_class(node)


# -- construction ----------------------------------------------------------------------------------------
def _make(kind, op, srcs, arg, shape, dtype) -> Tensor:
    t = _tensor_class(Node(kind, op, tuple(s.node for s in srcs), arg, shape, dtype))
    if current_options().eager and kind not in (VIEW, CONST, IOTA):
        t.realize()
    return t


INDEX_LIMIT = 2**31  # kernels index in i32: each dim, and each run of dims a reshape regroups, stays below this


def _view(t: Tensor, op: str, arg, shape) -> Tensor:
    if t.node.kind != CONST:  # a constant's views never compute an index
        _check_index_range(op, t.shape, shape)
    return _make(VIEW, op, (t,), arg, shape, t.dtype)


def _check_index_range(op: str, src_shape, shape) -> None:
    """Views of 2^31+ elements work while every index a kernel computes fits i32 (expand(4096, 4096, 256) does); a
    dim of 2^31+ or a reshape that regroups 2^31+ elements would need wider indices: raise here, at the call, not
    with WGSL a driver rejects or an index that wraps."""
    big = next((d for d in tuple(shape) + tuple(src_shape) if d >= INDEX_LIMIT), None)
    if big is not None:
        raise NotImplementedError(f"{op} to shape {list(shape)}: a dimension of {big} elements; tinydl indexes with "
                                  f"32-bit integers (dimensions up to {INDEX_LIMIT - 1})")
    if op == "reshape" and math.prod(shape) >= INDEX_LIMIT:
        a, b = [d for d in shape if d != 1], [d for d in src_shape if d != 1]
        while a and b and a[-1] == b[-1]:  # trailing dims both shapes share pass through (expr._view)
            a, b = a[:-1], b[:-1]
        if a != b and math.prod(a) >= INDEX_LIMIT:
            raise NotImplementedError(f"reshape of {list(src_shape)} to {list(shape)} regroups {math.prod(a)} "
                                      f"elements; tinydl indexes with 32-bit integers (at most {INDEX_LIMIT - 1})")


def _const(value, shape, dtype: DType) -> Tensor:
    return _tensor_class(Node(CONST, None, (), dtypes.const_value(value), shape, dtype))


def _varargs(shape) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    out = []
    for s in shape:
        if isinstance(s, Tensor):
            s = s.item()
        out.append(builtins.int(s))
    return tuple(out)



# -- joining (cat and stack: joining.py) ---------------------------------------------------------------
CAT_FANIN = 4  # a cat node reads at most this many sources; longer lists become a tree (buffer limit)


def _cat_tree(parts, d):
    if len(parts) == 1:
        return parts[0]
    if len(parts) > CAT_FANIN:
        k = -(-len(parts) // CAT_FANIN)
        parts = [_cat_tree(parts[i:i + k], d) for i in range(0, len(parts), k)]
    shape = list(parts[0].shape)
    shape[d] = builtins.sum(p.shape[d] for p in parts)
    return _make(CAT, None, parts, d, tuple(shape), parts[0].dtype)

