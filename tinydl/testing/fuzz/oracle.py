"""Running one graph on tinydl and torch CPU, and the oracle that compares them (see the package docstring)."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import warnings

import numpy as np

from .cases import FLOAT_TOL, Graph, UNSUPPORTED


@dataclasses.dataclass
class Outcome:
    values: list = None    # numpy outputs, or None when an error was raised
    error: BaseException = None
    line: int = -1
    dtypes: list = None
    beyond_int32: bool = False  # (ints64 runs) some torch op returned an integer value beyond int32
    env: dict = None       # (torch runs) every value by name


# Ops whose GPU result may be a few ulps off torch's (WGSL builtins: exp2/log2-based pow, sin, ...): the perturbed
# float64 run moves their outputs by PERTURB (4 float32 ulps) to measure how far such an error travels downstream.
INEXACT = {"exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tanh", "sigmoid", "erf", "elu", "gelu", "silu",
           "softplus", "mish", "div", "pow", "matmul", "conv2d", "softmax", "log_softmax", "layer_norm", "mean", "var",
           "std", "sum", "prod", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log2",
           "log10", "exp2", "erfc", "erfinv"}
PERTURB = 4 * 2.0 ** -23


def host_independent_gelu(x, approximate: str = "none"):
    """torch's gelu where every host agrees: its AVX-512 float kernels give gelu(+inf) NaN, its AVX2, scalar and
    CUDA ones +inf (tinydl's answer); a zero it gives for x < 0 is -0.0 on some hosts, +0.0 on others (tinydl keeps
    the sign of gelu(x) < 0)."""
    import torch
    y = torch.nn.functional.gelu(x, approximate=approximate)
    y = torch.where(torch.isposinf(x), x, y)
    return torch.where(y == 0, torch.copysign(torch.zeros_like(y), x), y)


@functools.cache
def _reference_functional():
    """torch.nn.functional as the torch side of a graph calls it, with host_independent_gelu."""
    import types

    import torch.nn.functional as TF
    ns = types.SimpleNamespace(**{k: getattr(TF, k) for k in dir(TF) if not k.startswith("__")})
    ns.gelu = host_independent_gelu
    return ns


def _execute(g: Graph, lib: str, to64: bool = False, perturb: bool = False, ints64: bool = False) -> Outcome:
    """See _run_steps; a float64 run (to64) also has float64 as torch's default dtype, so that a float made from
    an integer (sinh of an int tensor) is float64 too."""
    import torch
    default = torch.get_default_dtype()
    if to64:
        torch.set_default_dtype(torch.float64)
    try:
        return _run_steps(g, lib, to64, perturb, ints64)
    finally:
        torch.set_default_dtype(default)


def _run_steps(g: Graph, lib: str, to64: bool, perturb: bool, ints64: bool) -> Outcome:
    """Run the graph on one side. to64: float inputs as float64; ints64 (torch): integer inputs as int64 and
    `torch.int32` read as int64 (casts too: tinydl's int32 stands for torch's int64), noting whether any torch op
    (inside a step too) returns an integer value beyond int32."""
    import torch

    import tinydl
    import tinydl.nn.functional as DF
    ns = {"torch": _Int64Torch(torch) if ints64 else torch, "tinydl": tinydl, "TF": _reference_functional(),
          "DF": DF, "np": np}
    for k, v in g.inputs.items():
        ns["a_" + k] = (v.astype(np.float64) if to64 and v.dtype.kind == "f" else
                        v.astype(np.int64) if ints64 and v.dtype.kind in "iu" else v)
    watch = _int_range_mode()() if ints64 else contextlib.nullcontext()
    lines = g.lines(lib)
    gen = torch.Generator().manual_seed(0)
    for i, line in enumerate(lines):
        try:
            with watch:
                exec(line, ns)  # noqa: S102 - the graph's own text, so the repro is what ran
        except Exception as exc:  # noqa: BLE001 - any error is an outcome to compare
            return Outcome(error=exc, line=i)
        step = g.steps[i - len(g.inputs)] if i >= len(g.inputs) else None
        v = ns.get(step.out) if step else None
        if perturb and step and step.op in INEXACT and isinstance(v, torch.Tensor) and v.is_floating_point():
            sign = torch.randint(0, 2, v.shape, generator=gen).to(v.dtype) * 2 - 1
            ns[step.out] = v * (1 + PERTURB * sign)
    outs = [ns[o] for o in g.outputs]
    try:
        if lib == "tinydl":
            outs = [o if isinstance(o, tinydl.Tensor) else tinydl.tensor(o) for o in outs]
            tinydl.realize(*outs)
            return Outcome([o.numpy() for o in outs], dtypes=[o.dtype.name for o in outs])
        return Outcome([o.numpy() for o in outs], dtypes=[str(o.dtype).replace("torch.", "") for o in outs],
                       beyond_int32=ints64 and watch.beyond, env=ns)
    except Exception as exc:  # noqa: BLE001
        return Outcome(error=exc, line=len(lines))


class _Int64Torch:
    """The torch module with int32 meaning int64 (ints64 runs)."""

    def __init__(self, torch):
        self._torch, self.int32 = torch, torch.int64

    def __getattr__(self, name):
        return getattr(self._torch, name)


@functools.cache
def _int_range_mode():
    """The TorchFunctionMode class of ints64 runs (made once: torch is imported lazily, as everywhere here)."""
    from torch.overrides import TorchFunctionMode

    class IntRange(TorchFunctionMode):
        """Notes whether any torch op (inside a step too: x * 4 > 0) returns an integer value beyond int32."""
        beyond = False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            import torch
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if (not self.beyond and isinstance(t, torch.Tensor) and t.dtype in (torch.int32, torch.int64)
                        and t.numel()):
                    self.beyond = bool((t.max() > 2**31 - 1) | (t.min() < -2**31))
            return out
    return IntRange


def _int64_overflow(exc: BaseException, g: Graph) -> bool:
    """tinydl's integer-overflow error, where torch computes an integer value beyond int32 in some op once the
    graph's integer inputs are int64 (what tinydl's int32 stands for); torch's int32 run wraps it silently."""
    if not (isinstance(exc, RuntimeError) and "integer overflow" in str(exc)):
        return False
    return _execute(g, "torch", ints64=True).beyond_int32


def _tinydl_dtype(torch_dtype: str) -> str:
    return {"int64": "int32", "float64": "float32"}.get(torch_dtype, torch_dtype)


def check_output(got, gdt, want, wdt, w64, mag, lowp=False, wp=None) -> str | None:
    """None when tinydl's output agrees with torch's, else a one-line reason. lowp: a float16 value upstream (the
    float64 run does not model its roundings, so float16's tolerance applies). wp: the float64 run with the inexact
    ops' outputs moved by a few ulps: how far their allowed error travels to this output."""
    if got.shape != want.shape:
        return f"shape {list(got.shape)} vs torch {list(want.shape)}"
    if gdt != _tinydl_dtype(wdt):
        return f"dtype {gdt} vs torch {wdt}"
    if got.size == 0:
        return None
    if w64 is not None and w64.shape != want.shape:
        w64 = None
    if want.dtype.kind in "biu":
        bad = got.astype(np.int64) != want.astype(np.int64)
        if w64 is not None:  # a comparison/argmax of a computed float that float64 decides differently
            bad &= want.astype(np.float64) == w64.astype(np.float64)
        if bad.any():
            i = tuple(int(j) for j in np.argwhere(bad)[0])
            return f"{int(bad.sum())} of {got.size} differ, first at {i}: {got[i]!r} vs torch {want[i]!r}"
        return None
    rtol, atol = FLOAT_TOL["float16" if lowp else wdt] if wdt in FLOAT_TOL else FLOAT_TOL["float32"]
    a, e = got.astype(np.float64), want.astype(np.float64)
    e64 = w64.astype(np.float64) if w64 is not None else e

    def cls(x):
        return np.where(np.isnan(x), 0, np.where(np.isposinf(x), 1, np.where(np.isneginf(x), 2, 3)))
    ill = cls(e) != cls(e64)
    # near float32's/float16's largest value, rounding decides between a big number and Inf
    big = np.finfo(want.dtype).max / 2
    ill |= np.isfinite(e64) & (np.abs(e64) > big)
    if mag > big / 1e3:  # heavy ops upstream add terms near overflow: the order of the additions decides Inf
        ill |= True
    bad = (cls(a) != cls(e)) & ~ill
    with np.errstate(invalid="ignore", over="ignore"):
        fin = (cls(e) == 3) & (cls(a) == 3) & ~ill
        tol = atol * mag + rtol * np.abs(e) + 16 * np.abs(e - e64)
        if wp is not None and wp.shape == e.shape:
            spread = np.abs(wp.astype(np.float64) - e64)
            tol = tol + 4 * np.where(np.isfinite(spread), spread, 0)
        bad |= fin & ~(np.abs(a - e) <= tol)
    if bad.any():
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        special = "special values: " if not np.isfinite(a[i]) or not np.isfinite(e[i]) else ""
        return (f"{special}{int(bad.sum())} of {got.size} differ, first at {i}: {a[i]!r} vs torch {e[i]!r} "
                f"(float64 {e64[i]!r}, tol {float(tol[i]) if np.ndim(tol) else tol:.3g})")
    return None


def run_graph(g: Graph) -> str | None:
    """None when tinydl agrees with torch on this graph, else the failure's description (its first line is its
    class: what the shrinker keeps)."""
    import torch
    torch.set_num_threads(1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's var/std "degrees of freedom" warnings: the graph is still valid
        return _run_graph(g)


def _run_graph(g: Graph) -> str | None:
    want = _execute(g, "torch")
    got = _execute(g, "tinydl")
    w64 = _execute(g, "torch", to64=True) if want.error is None else None
    p64 = _execute(g, "torch", to64=True, perturb=True) if want.error is None else None
    if want.error is not None:
        if got.error is None:  # tinydl accepts more than torch (e.g. a scalar where torch wants a tensor):
            return None        # not a wrong answer, so not a failure
        if isinstance(got.error, type(want.error)) or isinstance(want.error, type(got.error)):
            return None
        return (f"tinydl raises {type(got.error).__name__}, torch {type(want.error).__name__}\n"
                f"tinydl: {_short(got.error)}\ntorch: {want.error}")
    if got.error is not None:
        if any(ok(got.error, want.values) for ok, _ in UNSUPPORTED) or _int64_overflow(got.error, g):
            return None
        where = "at realize" if got.line == len(g.steps) + len(g.inputs) else "at the call"
        return f"tinydl raises {type(got.error).__name__} {where}, torch does not\ntinydl: {_short(got.error)}"
    mags, lowp = _magnitudes(g, want)
    for name, a, gdt, e, wdt, i in zip(g.outputs, got.values, got.dtypes, want.values, want.dtypes,
                                       range(len(g.outputs))):
        e64 = w64.values[i] if w64 is not None and w64.error is None else None
        ep = p64.values[i] if e64 is not None and p64.error is None else None
        why = check_output(a, gdt, e, wdt, e64, mags.get(name, 1.0), lowp.get(name, False), ep)
        if why and _near_tie(g, name, a, e, want.env, lowp.get(name, False)):
            why = None
        if why:
            kind = why.split(" ")[0] if why.startswith(("shape", "dtype")) else \
                "NaN/Inf" if why.startswith("special") else "values"
            return f"wrong {kind} ({wdt})\n{name}: {why}"
    return None


_COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")


def _near_tie(g: Graph, name: str, got, want, env, lowp: bool) -> bool:
    """Whether output `name` is an argmax/argmin whose every pick that differs from torch's points at a value equal
    to torch's pick within the float tolerance (torch's own values): a tie that rounding decides (a var of 0.24 an
    ulp above another), or one torch breaks by its own ulp differences (its vectorized and scalar sinh); or a
    comparison whose every differing answer compares two values equal within that tolerance (x >= hardswish(x),
    hardswish(x) an ulp above x for some x >= 3)."""
    import torch
    step = next((s for s in g.steps if s.out == name), None)
    if step is None or env is None or got.shape != want.shape:
        return False
    rtol, atol = FLOAT_TOL["float16" if lowp else "float32"]
    if step.op in _COMPARISONS and len(step.srcs) == 2:  # a compare of two values equal within tolerance
        a, b = (env[s] for s in step.srcs)
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.is_floating_point()):
            return False
        a, b = (t.double().broadcast_to(got.shape) for t in (a, b))
        differ = torch.from_numpy(np.asarray(got) != np.asarray(want))
        return bool(((a - b).abs() <= atol + rtol * b.abs())[differ].all())
    if step.op not in ("argmax", "argmin"):
        return False
    x = env[step.srcs[0]].double()
    m = re.search(r"dim=(-?\d+)", step.expr)
    if m is None:  # over all elements
        x, dim, shape = x.reshape(-1), 0, (1,)
    else:
        dim = int(m.group(1)) % x.dim()
        shape = list(x.shape)
        shape[dim] = 1
    pick = [torch.from_numpy(np.asarray(i).astype(np.int64)).reshape(shape) for i in (got, want)]
    if any(int(p.min()) < 0 or int(p.max()) >= x.shape[dim] for p in pick):
        return False
    a, e = (torch.take_along_dim(x, p, dim) for p in pick)
    return bool(((a - e).abs() <= atol + rtol * e.abs()).all())


def _short(exc) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"


def _magnitudes(g: Graph, want: Outcome) -> tuple[dict, dict]:
    """Per value: max(1, the largest finite magnitude among the heavy ops upstream and their inputs), and whether a
    float16 value is upstream; recomputed with torch (cheap) since shrinking changes inputs."""
    import torch
    mag, lowp = {}, {}
    ns = {"torch": torch, "TF": torch.nn.functional}
    for k, v in g.inputs.items():
        ns["a_" + k] = v
    lines = g.lines("torch")
    for k, line in zip(g.inputs, lines):
        exec(line, ns)  # noqa: S102
        mag[k], lowp[k] = 1.0, ns[k].dtype == torch.float16
    for s, line in zip(g.steps, lines[len(g.inputs):]):
        exec(line, ns)  # noqa: S102
        m = max([mag.get(x, 1.0) for x in s.srcs] + [1.0])
        if s.heavy:
            for x in list(s.srcs) + [s.out]:
                v = ns.get(x)
                if hasattr(v, "dtype") and v.is_floating_point() and v.numel():
                    f = v.double().abs()
                    f = f[torch.isfinite(f)]
                    if f.numel():
                        m = max(m, float(f.max()))
        mag[s.out] = m
        lowp[s.out] = any(lowp.get(x, False) for x in s.srcs) or getattr(ns.get(s.out), "dtype", None) == torch.float16
    return mag, lowp


