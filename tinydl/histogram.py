"""`histc`: torch.histc's histogram of equal-width bins, counted as torch CPU counts them. Part of the tensor API:
Tensor.histc delegates here.

torch puts x in bin int((x - min) * bins / (max - min)), each step rounded in the input's dtype, the last bin
taking x == max too, and skips x outside [min, max] (NaN included). That map only grows with x, so each bin is
fixed by its first value: the smallest value of the dtype that torch's own arithmetic puts in bin k or later
(`_edges`: found on the host by bisection over the dtype's values, torch's steps done in numpy). On the GPU the
elements are only compared with those edges (exact, where a WGSL division may be 2.5 ulp off and move an element
on a bin's boundary) and counted: bin k holds #(edge_k <= x <= max) - #(edge_k+1 <= x <= max). The work is
elements x bins (one fused comparison and sum), fine for the bin counts of routing and statistics.

Counts are summed as integers and rounded once to the input's dtype. torch CPU adds ones in that dtype, so its
float16 counts stop growing at 2048 per thread (5000 equal elements: 2048 on one thread) and float32 ones at 2^24;
tinydl's keep counting (5000)."""
from __future__ import annotations

import builtins
import math
import operator

import numpy as np

from . import dtypes
from ._core import Tensor
from .creation import tensor, zeros
from .elementwise import ge, le, logical_and
from .joining import cat, stack
from .reductions import amax, amin, sum as _sum

_TORCH_NAMES = {dtypes.float32: "float", dtypes.float16: "c10::Half"}  # in torch's "cannot be converted" error


def _c_double(v: float) -> str:
    """v as C++'s ostream prints a double (torch's messages): 6 significant digits, a NaN's sign kept (glibc)."""
    if math.isnan(v):
        return "-nan" if math.copysign(1.0, v) < 0 else "nan"
    return f"{v:g}"


def _range(x: Tensor, lo: float, hi: float) -> tuple[float, float]:
    """torch's histc_select_outer_bin_edges: equal bounds mean the data's own range (read back from the GPU, as
    torch CUDA reads it), equal ones widened by 1; then its checks, in its order and words."""
    if lo == hi and x.numel() > 0:
        lo, hi = (builtins.float(v) for v in stack([amin(x), amax(x)]).numpy())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise RuntimeError(f"torch.histc: range of [{_c_double(lo)}, {_c_double(hi)}] is not finite")
    if not lo < hi:
        raise RuntimeError("torch.histc: max must be larger than min")
    return lo, hi


def _ordered(dt):
    """(to_key, from_key) for the float dtype dt: an integer order of its values (-0 and 0 both 0)."""
    bits, sign = (np.uint32, 0x80000000) if dt == np.float32 else (np.uint16, 0x8000)

    def to_key(v):
        b = int(np.array(v, dt).view(bits))
        return -(b & (sign - 1)) if b & sign else b

    def from_key(k):
        b = np.where(k < 0, (-k) | sign, k).astype(bits)
        return b.view(dt)
    return to_key, from_key


def _edges(dt, lo, hi, bins: int) -> np.ndarray:
    """The first value of each bin (lo for bin 0; inf for a bin torch's arithmetic never reaches), in dtype dt."""
    lo, hi = dt(lo), dt(hi)
    to_key, from_key = _ordered(dt)
    with np.errstate(all="ignore"):  # torch: (x - lo) * bins / (hi - lo), all in the input's dtype
        width, scale = dt(hi - lo), dt(bins)

    def reaches(keys, k):  # torch's bin of the value with each key is k or more
        with np.errstate(all="ignore"):
            return (from_key(keys) - lo) * scale / width >= k  # (a NaN quotient: bin 0)
    k = np.arange(1, bins, dtype=np.int64)
    first = np.full(k.shape, to_key(lo), np.int64)
    end = np.full(k.shape, to_key(hi) + 1, np.int64)  # one past the last: no value reaches bin k
    while (first < end).any():  # bisection, all bins at once (at most 33 rounds)
        mid = (first + end) // 2
        up = reaches(mid, k) | (first >= end)
        first, end = np.where(up, first, mid + 1), np.where(up, mid, end)
    out = np.where(first > to_key(hi), np.array(np.inf, dt), from_key(first))
    return np.concatenate([np.array([lo], dt), out.astype(dt)])


def histc(input: Tensor, bins: int = 100, min=0, max=0) -> Tensor:  # noqa: A002 - torch's names
    """torch.histc: counts of input's elements in `bins` equal bins over [min, max] (the data's range when
    min == max), elements outside ignored; float input, float counts of its dtype."""
    x, input_bins = input, bins
    try:  # an int, a numpy integer; not a bool (as torch's argument parser)
        bins = operator.index(bins) if not isinstance(bins, bool) else None
    except TypeError:
        bins = None
    if bins is None:
        raise TypeError(f"histc(): argument 'bins' must be int, not {type(input_bins).__name__}")
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    if not x.dtype.is_floating_point:  # (torch reads no data range first: integers' range always passes its checks)
        lo, hi = builtins.float(min), builtins.float(max)
        if lo != hi:
            _range(x, lo, hi)
        raise NotImplementedError("\"linspace_cpu\" not implemented for 'Bool'" if x.dtype == dtypes.bool_
                                  else "\"histogram_cpu\" not implemented for 'Long'")
    lo, hi = _range(x, builtins.float(min), builtins.float(max))
    dt = x.dtype.np
    if builtins.max(abs(lo), abs(hi)) > builtins.float(np.finfo(dt).max):  # torch's edges are in the input's dtype
        raise RuntimeError(f"value cannot be converted to type {_TORCH_NAMES[x.dtype]} without overflow")
    with np.errstate(all="ignore"):
        width = dt(hi) - dt(lo)
        if width == 0 or not np.isfinite(width * dt(bins)):  # torch's bin of some element is then inf or NaN
            raise RuntimeError(f"histc: (max - min) * bins {'is 0' if width == 0 else 'overflows'} in {x.dtype.name} "
                               f"(range [{_c_double(lo)}, {_c_double(hi)}], {bins} bins), where torch CPU's bins "
                               f"are undefined (an inf or NaN bin index converted to an integer)")
    if x.numel() == 0:
        return zeros(bins, dtype=x.dtype)
    edges = _edges(dt, lo, hi, bins)
    flat = x.reshape(-1, 1)
    # at or past each bin's first value, and not past max: #(x in bin k or later); bin k is the step down
    later = _sum(logical_and(ge(flat, tensor(edges.reshape(1, -1))), le(flat, builtins.float(dt(hi)))), 0)
    return (later - cat([later[1:], zeros(1, dtype=later.dtype)])).to(x.dtype)


def bincount(input: Tensor, weights=None, minlength: int = 0) -> Tensor:  # noqa: A002 - torch's names
    """torch.bincount: how often each value 0..max(input) occurs (or the sum of its weights), at least minlength
    bins. The length depends on the values, so their minimum and maximum are read back first."""
    from .scatter import scatter_add
    names = {dtypes.float32: "Float", dtypes.float16: "Half", dtypes.bool_: "Bool"}
    if input.dtype in names:
        raise NotImplementedError(f"\"bincount_cpu\" not implemented for '{names[input.dtype]}'")
    if input.ndim != 1:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    if weights is not None:
        if weights.ndim != 1 or weights.shape[0] != input.shape[0]:
            raise RuntimeError("weights should be 1-d and have the same length as input")
        if weights.dtype != dtypes.float32:
            raise NotImplementedError(f"bincount with {weights.dtype.name} weights gives float64, which tinydl does "
                                      f"not have: pass float32 weights")
    if input.shape[0] == 0:
        return zeros(minlength, dtype=dtypes.int32 if weights is None else weights.dtype)
    low, high = (int(v) for v in stack([amin(input), amax(input)]).tolist())
    if low < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    size = builtins.max(high + 1, minlength)
    src = weights if weights is not None else zeros(input.shape[0], dtype=dtypes.int32) + 1
    return scatter_add(zeros(size, dtype=src.dtype), 0, input, src)
