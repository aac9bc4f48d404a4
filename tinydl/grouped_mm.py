"""`grouped_mm`: the grouped matmul of Hugging Face's MoE experts (transformers 5.x `grouped_mm_fallback`, the op
torch.export records for `experts_implementation="grouped_mm"` on float32/float16 weights), with the fallback's
exact semantics.

The fallback loops `for i, end in enumerate(offs.tolist())` and writes `input[start:end] @ weight[i]` into
`output[start:end]` (`start` the previous offset, 0 first), the rest of the output zeros. Python's slicing
decides the rows: a negative offset counts from the end, one past the end stops there, and a later group
overwrites an earlier one where their slices overlap (offsets that go down). Here each row finds its group on the
GPU instead: the last i whose slice [norm(offs[i-1]), norm(offs[i])) holds it (a comparison with every offset
and one max over the groups: rows x groups, small), then `input[r] @ weight[group[r]]`, one batched gemv whose
gather of each row's expert is inlined into the product's loads (two kernels, no [rows, K, N] copy). So the
group sizes, which depend on the routing, never become shapes, and the cost is that of the useful products (not
experts x rows): each row reads its expert's matrix, the same one as its neighbours' (the rows come sorted by
expert). A non-empty group past the last expert raises IndexError, as the fallback's `weight[i]` does (checked
on the GPU, at the next read-back).

Shape and dtype errors are raised at the call whatever the offsets, as torch.export's fake of the op does; the
eager fallback raises them only where some group is non-empty."""
from __future__ import annotations

from . import dtypes
from ._tensor import Tensor, arange, cat, full, matmul, where, zeros
from .checks import Code
from .indexing import gather_rows

# torch.mm's names of the dtypes in its "expected m1 and m2 to have the same dtype" error
_MM_NAMES = {dtypes.float32: "float", dtypes.float16: "c10::Half", dtypes.int32: "long", dtypes.bool_: "bool"}


def grouped_mm(input: Tensor, weight: Tensor, offs: Tensor) -> Tensor:  # noqa: A002 - the op's names
    """transformers::grouped_mm_fallback(input [S, K], weight [G, K, N], offs [G]) -> [S, N]: rows
    [offs[i-1], offs[i]) of input times weight[i] (offs[-1] read as 0), rows in no group zeros."""
    _check(input, weight, offs)
    S, N = input.shape[0], weight.shape[2]
    if S == 0 or offs.shape[0] == 0:  # no row, or no group: the fallback's zeros
        return zeros((S, N), dtype=input.dtype)
    ends = _slice_bound(offs.to(dtypes.int32), S)
    starts = cat([zeros((1,), dtype=dtypes.int32), ends[:-1]])
    rows = arange(S).reshape(S, 1)
    member = (rows >= starts) & (rows < ends)  # [S, groups]: which groups' slices hold each row
    group = where(member, arange(offs.shape[0]), -1).amax(1)  # the last one wins (it wrote last); -1: none
    # rows in no group read expert 0 and are zeroed below; a group past the last expert reports IndexError
    experts = gather_rows(weight, group.clamp(0, None), Code.INDEX)  # [S, K, N], inlined into the gemv's loads
    out = matmul(input.reshape(S, 1, input.shape[1]), experts).reshape(S, N)
    return where((group >= 0).reshape(S, 1), out, full((), 0, dtype=input.dtype))


def _slice_bound(b: Tensor, n: int) -> Tensor:
    """Python's slice bound on a length n: negative counts from the end, both clamped to [0, n] (clamped to
    [-n, n] first, so that adding n cannot overflow int32)."""
    c = b.clamp(-n, n)
    return where(c < 0, c + n, c)


def _check(input: Tensor, weight: Tensor, offs: Tensor) -> None:
    """The fallback's errors, in torch's words (its fake's asserts where torch's eager ops would fail later)."""
    if input.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    if weight.ndim < 3:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-max(weight.ndim, 1)}, "
                         f"{max(weight.ndim, 1) - 1}], but got 2)")
    if offs.ndim == 0:
        raise TypeError(f"'{'float' if offs.dtype.is_floating_point else 'int'}' object is not iterable")
    if offs.ndim != 1 or offs.dtype.is_floating_point:
        raise TypeError("slice indices must be integers or None or have an __index__ method")
    if input.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if weight.ndim != 3:
        raise RuntimeError("mat2 must be a matrix")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {_MM_NAMES[input.dtype]} != "
                           f"{_MM_NAMES[weight.dtype]}")
    if input.shape[1] != weight.shape[1]:  # torch names a group's rows; every row here
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x{input.shape[1]} and "
                           f"{weight.shape[1]}x{weight.shape[2]})")
