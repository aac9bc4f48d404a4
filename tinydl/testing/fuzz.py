"""Differential fuzzer: random graphs run on tinydl (lazy, several outputs realized at once) and on torch CPU,
compared with dtype-aware tolerances; a failure is shrunk to a minimal repro printed as runnable Python.

    python -m tinydl.testing.fuzz --graphs 500 --seed 7 [--max-ops 8] [--stop-on-failure]

A graph is data: numpy inputs plus steps, each step one line of library-neutral Python ("{L}.where({0}, {1}, 2.5)",
{L} = tinydl or torch, {F} = their functional modules). The same text is executed on both sides and printed as the
repro, so a repro is exactly what ran.

Oracle (see `check_output`):
- shape equal; dtype equal, where torch's int64 counts as tinydl's int32 (tinydl has no int64; a torch int64 result
  outside int32's range must make tinydl raise its integer-overflow RuntimeError, see UNSUPPORTED);
- int/bool: exact;
- floats: NaN where torch has NaN, ±Inf where torch has ±Inf, finite values within
  atol*mag + rtol*|torch| + 16*|torch - torch_float64|. `mag` (>= 1) is the largest magnitude seen at heavy ops
  (matmul/conv/reductions/norms) upstream: their absolute error grows with the size of the terms they add, not with
  the (possibly cancelled) result. The float64 term is torch's own rounding error, measured by running the same
  graph on float64 inputs: it carries the conditioning of ops chained after heavy ops (exp of a matmul,
  a sum that cancels) without a hand-written error model. fp32: rtol 1e-4, atol 1e-5 (GUIDE §3).
  fp16 (any float16 value upstream, since the float64 run does not model its roundings): rtol 1e-2, atol 1e-3:
  torch rounds to fp16 after every op, tinydl computes fp16 in f32 and rounds once per kernel, so a chain of up to
  8 ops differs by several fp16 ulps (2^-11 ≈ 4.9e-4 each);
- ill-conditioned positions are not compared: where float32 and float64 torch disagree on the class of a value
  (NaN/Inf/finite, or a bool/int result such as a comparison or argmax of a computed value), where float64 is within
  2x of the dtype's largest value, or where heavy ops upstream add terms within 1e3 of overflow (the order of the
  additions decides between a big number and Inf);
- errors: both sides raising the same exception type is agreement; tinydl raising alone is a failure (except
  UNSUPPORTED); torch raising alone (tinydl accepts more, e.g. `logical_and(t, 2.0)`) is not a wrong answer and passes.

Seeds: graph i of a run uses seed `seed + i`, so any failing graph reruns alone with `--graphs 1 --seed <its seed>`.
Exclusions: KNOWN_GAPS (one list, each entry a reason) switches on GAP_RULES the generator steers around.
"""
from __future__ import annotations

import argparse
import dataclasses
import random
import re
import sys
import time
import traceback
import warnings

import numpy as np

# Error types tinydl may raise where torch does not, because of a documented unsupported feature.
# (predicate on (tinydl exception, torch outputs) -> bool, reason). Keep this list tiny.
UNSUPPORTED = [
    (lambda exc, want: isinstance(exc, RuntimeError) and "integer overflow" in str(exc) and any(
        w is not None and w.dtype == np.int64 and w.size and (w.max() > 2**31 - 1 or w.min() < -2**31) for w in want),
     "tinydl has no int64: an int32 sum/prod that torch returns as int64 beyond int32's range raises"),
]

# THE list of exclusions: known tinydl gaps the generator steers around, each with a one-line reason (reviewed;
# every entry names a failure class in the fuzzer's findings). name -> reason. A name must be a key of GAP_RULES.
KNOWN_GAPS: dict[str, str] = {
    "subnormal_math": "float32 subnormals into log/pow/division/remainder: WGSL may flush them, torch CPU does not "
                      "(findings class 5)",
}

# name -> predicate(op, expr, source values as torch tensors): True when a step would hit that gap (not generated).
GAP_RULES = {
    # var/std/layer_norm of finite values whose squares overflow float32 (|x| > ~1e19)
    "var_std_overflow": lambda op, expr, vals: op in ("var", "std", "layer_norm") and _finite_max(vals[0]) > 1e18,
    # conv2d with padding over non-finite inputs/weights (0 * Inf in the padding)
    "conv_padding_nonfinite": lambda op, expr, vals: op == "conv2d" and "padding=0" not in expr and any(
        v.is_floating_point() and not bool(v.isfinite().all()) for v in vals[:2]),
    # float32 subnormals into ops whose WGSL builtins may flush them (log, pow, division, remainder, roots)
    "subnormal_math": lambda op, expr, vals: op in SUBNORMAL_SENSITIVE and (
        any(_has_subnormal(v) for v in vals) or any(0 < abs(float(m)) < np.finfo(np.float32).tiny
                                                     for m in re.findall(r"\d+\.?\d*e-\d+", expr))),
}
SUBNORMAL_SENSITIVE = {"log", "pow", "div", "remainder", "fmod", "floor_divide", "trunc_divide", "reciprocal",
                       "rsqrt", "sqrt"}


def _has_subnormal(v) -> bool:
    if not v.is_floating_point() or not v.numel():
        return False
    a = v.double().abs()
    return bool(((a > 0) & (a < np.finfo(np.float32).tiny)).any())


def _finite_max(v) -> float:
    if not v.is_floating_point() or not v.numel():
        return 0.0
    f = v.double().abs()
    f = f[f.isfinite()]
    return float(f.max()) if f.numel() else 0.0

FLOAT_TOL = {"float32": (1e-4, 1e-5), "float16": (1e-2, 1e-3)}
SPECIALS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e38, -1e38, 1e-38, 1e-40, -1e-45]
SPECIALS16 = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 6e4, -6e4, 6e-5, 1e-7]

UNARY_L = "neg abs sign relu exp log sqrt rsqrt reciprocal sin cos tanh sigmoid erf floor ceil round logical_not " \
          "bitwise_not isnan isinf isfinite".split()
UNARY_F = "relu6 leaky_relu elu gelu silu hardswish hardsigmoid softplus mish".split()
BINARY = {"logical_xor": "{L}.logical_xor({0}, {1})", "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}", "pow": "{L}.pow({0}, {1})",
          "maximum": "{L}.maximum({0}, {1})", "minimum": "{L}.minimum({0}, {1})", "eq": "{0} == {1}",
          "ne": "{0} != {1}", "lt": "{0} < {1}", "le": "{0} <= {1}", "gt": "{0} > {1}", "ge": "{0} >= {1}",
          "logical_and": "{L}.logical_and({0}, {1})", "logical_or": "{L}.logical_or({0}, {1})",
          "floor_divide": "{0} // {1}", "remainder": "{0} % {1}", "fmod": "{L}.fmod({0}, {1})",
          "trunc_divide": "{L}.div({0}, {1}, rounding_mode='trunc')", "bitwise_and": "{0} & {1}", "bitwise_or": "{0} | {1}", "bitwise_xor": "{0} ^ {1}"}
REDUCE = "sum mean prod amax amin argmax argmin var std".split()
HEAVY = {"reduce", "matmul", "conv2d", "softmax", "layer_norm"}


# -- the graph --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Step:
    out: str
    expr: str          # format string: {0}.. sources, {L} library, {F} functional
    srcs: tuple
    op: str            # the op's name (KNOWN_GAPS, reports)
    heavy: bool = False


@dataclasses.dataclass
class Graph:
    inputs: dict       # name -> np.ndarray
    steps: list
    outputs: list

    def copy(self):
        return Graph({k: v.copy() for k, v in self.inputs.items()}, list(self.steps), list(self.outputs))

    def lines(self, lib: str) -> list[str]:
        L, F = ("tinydl", "DF") if lib == "tinydl" else ("torch", "TF")
        wrap = "tinydl.tensor({})" if lib == "tinydl" else "torch.from_numpy({}.copy())"
        out = [f"{k} = {wrap.format('a_' + k)}" for k in self.inputs]
        out += [f"{s.out} = " + s.expr.format(*s.srcs, L=L, F=F) for s in self.steps]
        return out

    def code(self) -> str:
        """The graph as a runnable script: numpy inputs, the tinydl lines, the torch lines, a comparison."""
        head = ["import numpy as np, torch, tinydl", "import torch.nn.functional as TF",
                "import tinydl.nn.functional as DF", "nan, inf = float('nan'), float('inf')"]
        head += [f"a_{k} = {_array_code(v)}" for k, v in self.inputs.items()]
        outs = ", ".join(self.outputs)
        return "\n".join(head + ["# tinydl"] + self.lines("tinydl") + [f"tinydl.realize({outs})",
                         f"got = [t.numpy() for t in ({outs},)]", "# torch"] + self.lines("torch") +
                         [f"want = [t.numpy() for t in ({outs},)]", "print(got); print(want)"])


def _array_code(a: np.ndarray) -> str:
    def one(v):  # the shortest text that reads back to the same value in a's dtype
        if a.dtype.kind != "f":
            return repr(v.item())
        return str(v) if np.isfinite(v) else ("nan" if np.isnan(v) else ("inf" if v > 0 else "-inf"))
    vals = [one(v) for v in a.ravel()]
    return f"np.array([{', '.join(vals)}], np.{a.dtype.name}).reshape({tuple(a.shape)})"


# -- running one graph --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    values: list = None    # numpy outputs, or None when an error was raised
    error: BaseException = None
    line: int = -1
    dtypes: list = None


# Ops whose GPU result may be a few ulps off torch's (WGSL builtins: exp2/log2-based pow, sin, ...): the perturbed
# float64 run moves their outputs by PERTURB (4 float32 ulps) to measure how far such an error travels downstream.
INEXACT = {"exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tanh", "sigmoid", "erf", "elu", "gelu", "silu",
           "softplus", "mish", "div", "pow", "matmul", "conv2d", "softmax", "log_softmax", "layer_norm", "mean", "var",
           "std", "sum", "prod"}
PERTURB = 4 * 2.0 ** -23


def _execute(g: Graph, lib: str, to64: bool = False, perturb: bool = False) -> Outcome:
    import torch
    import torch.nn.functional as TF

    import tinydl
    import tinydl.nn.functional as DF
    ns = {"torch": torch, "tinydl": tinydl, "TF": TF, "DF": DF, "np": np}
    for k, v in g.inputs.items():
        ns["a_" + k] = v.astype(np.float64) if to64 and v.dtype.kind == "f" else v
    lines = g.lines(lib)
    gen = torch.Generator().manual_seed(0)
    for i, line in enumerate(lines):
        try:
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
        return Outcome([o.numpy() for o in outs], dtypes=[str(o.dtype).replace("torch.", "") for o in outs])
    except Exception as exc:  # noqa: BLE001
        return Outcome(error=exc, line=len(lines))


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
        if any(ok(got.error, want.values) for ok, _ in UNSUPPORTED):
            return None
        where = "at realize" if got.line == len(g.steps) + len(g.inputs) else "at the call"
        return f"tinydl raises {type(got.error).__name__} {where}, torch does not\ntinydl: {_short(got.error)}"
    mags, lowp = _magnitudes(g, want)
    for name, a, gdt, e, wdt, i in zip(g.outputs, got.values, got.dtypes, want.values, want.dtypes,
                                       range(len(g.outputs))):
        e64 = w64.values[i] if w64 is not None and w64.error is None else None
        ep = p64.values[i] if e64 is not None and p64.error is None else None
        why = check_output(a, gdt, e, wdt, e64, mags.get(name, 1.0), lowp.get(name, False), ep)
        if why:
            kind = why.split(" ")[0] if why.startswith(("shape", "dtype")) else \
                "NaN/Inf" if why.startswith("special") else "values"
            return f"wrong {kind} ({wdt})\n{name}: {why}"
    return None


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


# -- the generator --------------------------------------------------------------------------------------------
class Generator:
    """Builds one random graph, running each candidate step on torch as it goes (to know shapes and dtypes and to
    keep the steps torch accepts; one step torch rejects may end a graph: error agreement is tested too)."""

    def __init__(self, seed: int, max_ops: int = 8):
        self.r = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.max_ops = max_ops
        self.g = Graph({}, [], [])
        self.env = {}  # name -> torch value
        self.n = 0

    # values
    def _name(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    def shape(self, ndim=None):
        ndim = self.r.choice([1, 2, 2, 3, 3, 4]) if ndim is None else ndim
        return tuple(self.r.choice([1, 2, 3, 4, 5, 7]) for _ in range(ndim))

    def new_input(self, shape=None, dtype=None):
        import torch
        shape = self.shape() if shape is None else tuple(shape)
        dtype = dtype or self.r.choice(["float32"] * 6 + ["float16", "int32", "bool"])
        dtype = {"int64": "int32", "float64": "float32"}.get(dtype, dtype)  # inputs as tinydl stores them
        if dtype == "bool":
            a = np.asarray(self.np.random(shape) < 0.5)
        elif dtype == "int32":
            a = self.np.integers(-4, 5, shape).astype(np.int32)
        else:
            a = self.np.standard_normal(shape).astype(dtype)
            if self.r.random() < 0.3 and a.size:  # special values at a few positions
                flat = a.reshape(-1)
                for _ in range(self.r.randint(1, 3)):
                    flat[self.r.randrange(a.size)] = self.r.choice(SPECIALS if dtype == "float32" else SPECIALS16)
        name = self._name("x")
        self.g.inputs[name] = a
        self.env[name] = torch.from_numpy(a.copy())
        return name

    def pick(self, pred=lambda v: True):
        names = [k for k, v in self.env.items() if pred(v)]
        return self.r.choice(names) if names else None

    def pick_float(self, min_ndim=0):
        return self.pick(lambda v: v.is_floating_point() and v.dim() >= min_ndim) or \
            self.new_input(self.shape(max(min_ndim, self.r.choice([1, 2, 3]))), "float32")

    def scalar(self):
        c = self.r.random()
        if c < 0.15:
            return self.r.choice(["float('nan')", "float('inf')", "-float('inf')", "-0.0", "1e38", "1e-40"])
        if c < 0.5:
            return str(self.r.randint(-3, 3))
        if c < 0.6:
            return self.r.choice(["True", "False"])
        return repr(round(self.r.uniform(-3, 3), 2))

    def broadcast_partner(self, name):
        """An operand that broadcasts with `name`: another value of a compatible shape, a fresh input with some
        dims 1 or fewer dims, or a Python scalar."""
        shape = tuple(self.env[name].shape)
        c = self.r.random()
        if c < 0.2:
            return self.scalar()
        if c < 0.45:
            other = self.pick(lambda v: _broadcasts(tuple(v.shape), shape))
            if other:
                return other
        keep = self.r.randint(0, len(shape))
        sub = tuple(1 if self.r.random() < 0.3 else d for d in shape[len(shape) - keep:])
        if self.r.random() < 0.15 and sub:
            sub = (1,) + sub  # a bigger result rank
        return self.new_input(sub)

    # steps
    def add_step(self, op, expr, srcs, heavy=False):
        """Run the step on torch; keep it when torch accepts it (or, rarely, as the graph's last step)."""
        import torch
        import torch.nn.functional as TF
        name = self._name("v")
        step = Step(name, expr, tuple(srcs), op, heavy)
        ns = {"torch": torch, "TF": TF, **self.env}
        if any(GAP_RULES[gap](op, expr, [self.env[x] for x in srcs]) for gap in KNOWN_GAPS):
            return None
        if op == "cast" and "int" in expr:
            v = self.env[srcs[0]]  # float -> int of NaN/Inf/out of range is undefined in C++ (torch's result varies)
            if v.is_floating_point() and not bool((v.double().abs() < 2**31).all()):
                return None
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                val = eval(expr.format(*srcs, L="torch", F="TF"), ns)  # noqa: S307
        except Exception:  # noqa: BLE001 - torch rejects it: test that tinydl rejects it too, sometimes
            if self.r.random() < 0.1:
                self.g.steps.append(step)
                return "error"
            return None
        if not isinstance(val, torch.Tensor) or val.numel() > 4096 or val.dtype == torch.float64:
            return None
        self.g.steps.append(step)
        self.env[name] = val
        return name

    def build(self) -> Graph:
        import torch
        self.new_input()
        target = self.r.randint(2, self.max_ops)
        tries = 0
        while len(self.g.steps) < target and tries < 60:
            tries += 1
            kind = self.r.choices(list(GENERATORS), weights=[w for w, _ in GENERATORS.values()])[0]
            res = GENERATORS[kind][1](self)
            if res == "error":
                break
        if not self.g.steps:
            self.add_step("relu", "{F}.relu({0})", [self.pick_float()])
        # every value no later step reads (and a few more) is an output: several outputs realized at once
        produced = [s.out for s in self.g.steps if s.out in self.env]
        used = {x for s in self.g.steps for x in s.srcs}
        last = self.g.steps[-1].out
        self.g.outputs = [v for v in produced if v != last and (v not in used or self.r.random() < 0.2)] + [last]
        del torch
        return self.g


def _broadcasts(a, b):
    return len(a) <= len(b) and all(x == y or x == 1 for x, y in zip(reversed(a), reversed(b)))


def _dims(r, ndim):
    k = r.randint(1, max(1, ndim))
    return sorted(r.sample(range(ndim), min(k, ndim)))


# each generator: (weight, fn(gen) -> name | None | "error")
def g_unary(gen):
    x = gen.pick()
    if x is None:
        x = gen.new_input()
    if gen.r.random() < 0.6:
        op = gen.r.choice(UNARY_L)
        return gen.add_step(op, f"{{L}}.{op}({{0}})", [x])
    op = gen.r.choice(UNARY_F)
    arg = {"leaky_relu": ", 0.1", "elu": ", 0.7", "gelu": gen.r.choice(["", ", approximate='tanh'"])}.get(op, "")
    return gen.add_step(op, f"{{F}}.{op}({{0}}{arg})", [x])


def g_cast(gen):
    x = gen.pick() or gen.new_input()
    to = gen.r.choice([".float()", ".half()", ".int()", ".bool()", ".to({L}.float16)", ".to({L}.int32)"])
    return gen.add_step("cast", "{0}" + to, [x])


def g_binary(gen):
    x = gen.pick() or gen.new_input()
    op = gen.r.choice(list(BINARY))
    y = gen.broadcast_partner(x)
    srcs = [x, y] if gen.r.random() < 0.7 else [y, x]
    expr = BINARY[op].format(*["{%d}" % i if s in gen.env else s for i, s in enumerate(srcs)], L="{L}")
    expr = _renumber(expr)
    return gen.add_step(op, expr, [s for s in srcs if s in gen.env])


def _renumber(expr):
    """'{1} + 2.0' -> '{0} + 2.0' after a scalar took operand 0's place."""
    seen = []
    for m in re.findall(r"\{(\d)\}", expr):
        if m not in seen:
            seen.append(m)
    for new, old in enumerate(seen):
        expr = expr.replace("{%s}" % old, "{#%d}" % new)
    return expr.replace("{#", "{")


def g_reduce(gen):
    x = gen.pick(lambda v: v.dim() >= 1) or gen.new_input()
    op = gen.r.choice(REDUCE)
    nd = gen.env[x].dim()
    keep = gen.r.choice([", keepdim=True", ""])
    if op in ("argmax", "argmin") or gen.r.random() < 0.3:
        dim = "" if gen.r.random() < 0.3 else f"dim={gen.r.randrange(-nd, nd)}"
        keep = keep if dim else ""
    else:
        dims = _dims(gen.r, nd)
        dim = f"dim={tuple(dims)}" if len(dims) > 1 or gen.r.random() < 0.5 else f"dim={dims[0]}"
    if op in ("var", "std") and gen.r.random() < 0.4:
        dim += ", correction=0"
    args = ", ".join(a for a in (dim, keep.lstrip(", ")) if a)
    heavy = op not in ("amax", "amin", "argmax", "argmin")
    return gen.add_step(op, f"{{0}}.{op}({args})", [x], heavy=heavy)


def g_view(gen):
    x = gen.pick(lambda v: v.dim() >= 1) or gen.new_input()
    shape = tuple(gen.env[x].shape)
    nd = len(shape)
    r = gen.r
    kind = r.choice("reshape permute slice narrow expand squeeze unsqueeze flatten transpose".split())
    if kind == "reshape":
        n = int(np.prod(shape))
        dims = _factor(r, n)
        if dims and r.random() < 0.3:
            dims[r.randrange(len(dims))] = -1
        expr = f"{{0}}.reshape({tuple(dims)})"
    elif kind == "permute":
        p = list(range(nd))
        r.shuffle(p)
        expr = f"{{0}}.permute({tuple(p)})"
    elif kind == "slice":
        idx = []
        for d in shape:
            start, step = r.randint(0, max(0, d - 1)), r.choice([1, 1, 2, 3])
            idx.append(r.choice([":", f"{start}:", f"{start}::{step}", f"::{step}", f"{start}:{d - 1}",
                                 f"-{r.randint(1, max(1, d))}:"]))
        expr = "{0}[" + ", ".join(idx) + "]"
    elif kind == "narrow":
        d = r.randrange(nd)
        start = r.randint(0, shape[d] - 1) if shape[d] else 0
        expr = f"{{0}}.narrow({d}, {start}, {r.randint(0, shape[d] - start)})"
    elif kind == "expand":
        new = tuple(r.choice([2, 3]) if s == 1 else (-1 if r.random() < 0.5 else s) for s in shape)
        if r.random() < 0.3:
            new = (2,) + new
        expr = f"{{0}}.expand{new}"
    elif kind == "squeeze":
        ones = [i for i, s in enumerate(shape) if s == 1]
        expr = f"{{0}}.squeeze({r.choice(ones)})" if ones and r.random() < 0.7 else "{0}.squeeze()"
    elif kind == "unsqueeze":
        expr = f"{{0}}.unsqueeze({r.randint(-nd - 1, nd)})"
    elif kind == "flatten":
        s = r.randrange(nd)
        expr = f"{{0}}.flatten({s}, {r.randint(s, nd - 1)})" if r.random() < 0.7 else "{0}.flatten()"
    else:
        expr = f"{{0}}.transpose({r.randrange(nd)}, {r.randrange(-nd, nd)})"
    return gen.add_step(kind, expr, [x])


def _factor(r, n):
    """A random shape with n elements (n may be 0)."""
    dims = []
    while n > 1 and len(dims) < 3:
        ds = [d for d in range(2, n + 1) if n % d == 0]
        d = r.choice(ds)
        dims.append(d)
        n //= d
    if n != 1:
        dims.append(n)
    if r.random() < 0.3:
        dims.insert(r.randint(0, len(dims)), 1)
    return dims or [1]


def g_cat(gen):
    x = gen.pick(lambda v: v.dim() >= 1) or gen.new_input()
    shape = list(gen.env[x].shape)
    d = gen.r.randrange(len(shape))
    stack = gen.r.random() < 0.3
    parts = [x]
    for _ in range(gen.r.randint(1, 3)):
        s = list(shape)
        if not stack:
            s[d] = gen.r.randint(0, 3)
        same = gen.pick(lambda v: list(v.shape) == s and v.dtype == gen.env[x].dtype)
        parts.append(same if same and gen.r.random() < 0.5 else gen.new_input(s, str(gen.env[x].dtype)[6:]))
    fn = "stack" if stack else gen.r.choice(["cat", "cat", "concat"])
    return gen.add_step(fn, f"{{L}}.{fn}([{', '.join('{%d}' % i for i in range(len(parts)))}], {d})", parts)


def g_matmul(gen):
    r = gen.r
    x = gen.pick(lambda v: v.is_floating_point() and v.dim() >= 1 and v.shape[-1] <= 16)
    x = x or gen.new_input(gen.shape(r.choice([1, 2, 3])), "float32")
    shape = tuple(gen.env[x].shape)
    k, n = shape[-1], r.choice([1, 3, 4, 8, 5])
    c = r.random()
    if c < 0.5:
        wshape = (k, n)
    elif c < 0.75 and len(shape) >= 2:
        wshape = (r.choice([1, shape[0]]),) * (len(shape) > 2) + (k, n) if len(shape) > 2 else (2, k, n)
    else:
        wshape = (k,) if r.random() < 0.5 else (r.choice([1, 2]), k, n)
    w = gen.new_input(wshape, str(gen.env[x].dtype)[6:])
    expr = r.choice(["{0} @ {1}", "{L}.matmul({0}, {1})"])
    return gen.add_step("matmul", expr, [x, w], heavy=True)


def g_conv(gen):
    """conv2d then, as separate steps (so the shrinker can drop them), its usual epilogue: BN-style scale/shift,
    residual add, activation."""
    r = gen.r
    x = gen.pick(lambda v: v.is_floating_point() and v.dim() == 4 and v.shape[1] <= 8 and min(v.shape) >= 1)
    if x is None or r.random() < 0.3:
        x = gen.new_input((r.choice([1, 2]), r.choice([1, 2, 3, 4]), r.randint(3, 7), r.randint(3, 7)),
                          r.choice(["float32"] * 4 + ["float16"]))
    n, c, h, w_ = gen.env[x].shape
    groups = r.choice([g for g in (1, 2, c) if c % g == 0])
    cout = groups * r.choice([1, 2, 3, 8 // groups or 1])
    kh, kw = r.choice([(1, 1), (3, 3), (2, 3), (3, 1)])
    stride, pad, dil = r.choice([1, 1, 2]), r.choice([0, 1, 2]), r.choice([1, 1, 2])
    dt = str(gen.env[x].dtype)[6:]
    w = gen.new_input((cout, c // groups, kh, kw), dt)
    srcs, bias = [x, w], ""
    if r.random() < 0.6:
        srcs.append(gen.new_input((cout,), dt))
        bias = ", {2}"
    y = gen.add_step("conv2d", f"{{F}}.conv2d({{0}}, {{1}}{bias}, stride={stride}, padding={pad}, dilation={dil}, "
                     f"groups={groups})", srcs, heavy=True)
    if y in (None, "error"):
        return y
    if r.random() < 0.5:
        y = gen.add_step("mul", "{0} * {1}", [y, gen.new_input((cout, 1, 1), dt)]) or y
        y = gen.add_step("add", "{0} + {1}", [y, gen.new_input((cout, 1, 1), dt)]) or y
    if r.random() < 0.3:
        res = gen.pick(lambda v: tuple(v.shape) == tuple(gen.env[y].shape) and v.is_floating_point())
        if res and res != y:
            y = gen.add_step("add", "{0} + {1}", [y, res]) or y
    if r.random() < 0.6:
        act = r.choice(["relu", "relu6", "silu", "gelu", "hardswish"])
        y = gen.add_step(act, f"{{F}}.{act}({{0}})", [y]) or y
    return y


def g_where(gen):
    r = gen.r
    x = gen.pick() or gen.new_input()
    kind = r.choice(["where", "clamp", "masked_fill"])
    if kind == "clamp":
        lo, hi = r.choice([("-0.5", "0.5"), ("None", "1"), ("0", "None"), ("1", "-1"), ("float('nan')", "None"),
                           ("-2", "2.5")])
        return gen.add_step("clamp", f"{{0}}.clamp({lo}, {hi})" if r.random() < 0.5 else
                            f"{{L}}.clamp({{0}}, min={lo}, max={hi})", [x])
    shape = tuple(gen.env[x].shape)
    mask = gen.pick(lambda v: v.dtype.is_floating_point is False and str(v.dtype) == "torch.bool"
                    and _broadcasts(tuple(v.shape), shape))
    if mask is None:
        cmp = gen.new_input(shape[r.randint(0, len(shape)):] if shape else ())
        mask = gen.add_step("gt", "{0} > 0", [cmp]) or gen.new_input(shape, "bool")
    if kind == "masked_fill":
        return gen.add_step("masked_fill", f"{{0}}.masked_fill({{1}}, {gen.scalar()})", [x, mask])
    y = gen.broadcast_partner(x)
    if y in gen.env:
        return gen.add_step("where", "{L}.where({0}, {1}, {2})", [mask, x, y])
    return gen.add_step("where", f"{{L}}.where({{0}}, {{1}}, {y})", [mask, x])


def g_norm(gen):
    x = gen.pick_float(1)
    nd = gen.env[x].dim()
    r = gen.r
    c = r.random()
    if c < 0.4:
        fn = r.choice(["softmax", "log_softmax"])
        return gen.add_step(fn, f"{{F}}.{fn}({{0}}, dim={r.randrange(-nd, nd)})", [x], heavy=True)
    k = r.randint(1, min(2, nd))
    ns = tuple(gen.env[x].shape[nd - k:])
    dt = str(gen.env[x].dtype)[6:]
    if r.random() < 0.5:
        return gen.add_step("layer_norm", f"{{F}}.layer_norm({{0}}, {ns})", [x], heavy=True)
    return gen.add_step("layer_norm", f"{{F}}.layer_norm({{0}}, {ns}, {{1}}, {{2}}, eps=1e-5)",
                        [x, gen.new_input(ns, dt), gen.new_input(ns, dt)], heavy=True)


GENERATORS = {"unary": (5, g_unary), "cast": (1, g_cast), "binary": (6, g_binary), "reduce": (3, g_reduce),
              "view": (4, g_view), "cat": (1, g_cat), "matmul": (2, g_matmul), "conv": (1.5, g_conv),
              "where": (2, g_where), "norm": (1.5, g_norm)}


def generate(seed: int, max_ops: int = 8) -> Graph:
    return Generator(seed, max_ops).build()


# -- shrinking ------------------------------------------------------------------------------------------------
def failure_class(report: str) -> str:
    """What a shrink must keep: the first line of the report (the kind and dtype of the failure, or the error
    types), with the output name and numbers left out."""
    return report.splitlines()[0]


def _uses(g, name):
    return [s for s in g.steps if name in s.srcs] + ([None] if name in g.outputs else [])


def _remove_step(g: Graph, i: int) -> Graph | None:
    """g without step i; its readers read its first source instead (when it has one)."""
    s = g.steps[i]
    g2 = g.copy()
    del g2.steps[i]
    sub = s.srcs[0] if s.srcs else None
    if sub is None and _uses(g, s.out):
        return None
    g2.steps = [dataclasses.replace(t, srcs=tuple(sub if x == s.out else x for x in t.srcs)) for t in g2.steps]
    g2.outputs = list(dict.fromkeys(sub if o == s.out else o for o in g2.outputs))
    return _prune(g2)


def _cut_step(g: Graph, i: int) -> Graph | None:
    """g with step i replaced by an input holding torch's value of it (what its readers saw), so a bug in a later
    op shrinks to that op alone."""
    import torch
    s = g.steps[i]
    if s.out in g.outputs:
        return None
    ns = {"torch": torch, "TF": torch.nn.functional, **{"a_" + k: v for k, v in g.inputs.items()}}
    try:
        for line in g.lines("torch")[:len(g.inputs) + i + 1]:
            exec(line, ns)  # noqa: S102
    except Exception:  # noqa: BLE001
        return None
    v = ns[s.out]
    if not isinstance(v, torch.Tensor):
        return None
    a = v.numpy()
    a = a.astype({"int64": np.int32, "float64": np.float32}.get(a.dtype.name, a.dtype))
    g2 = g.copy()
    del g2.steps[i]
    g2.inputs[s.out] = np.ascontiguousarray(a)
    return _prune(g2)


def _prune(g: Graph) -> Graph:
    """Drop steps and inputs nothing reads."""
    live = set(g.outputs)
    keep = []
    for s in reversed(g.steps):
        if s.out in live:
            keep.append(s)
            live.update(s.srcs)
    g.steps = keep[::-1]
    g.inputs = {k: v for k, v in g.inputs.items() if k in live}
    return g


def _simpler_arrays(a: np.ndarray):
    """Candidate replacements of one input, simplest first: smaller shapes, then simpler values."""
    for d in range(a.ndim):
        if a.shape[d] > 1:
            for k in range(min(a.shape[d], 8)):  # one slice: the one holding the culprit survives
                yield a[(slice(None),) * d + (slice(k, k + 1),)]
            yield a[(slice(None),) * d + (slice(0, a.shape[d] // 2),)]
    if a.dtype.kind == "f":
        special = ~np.isfinite(a) | (np.abs(a) > 1e4) | ((a != 0) & (np.abs(a) < 1e-4))
        yield np.where(special, a, 1).astype(a.dtype)
        yield np.where(special, a, np.round(a)).astype(a.dtype)
    if a.size <= 32:
        for i in range(a.size):
            b = a.copy().reshape(-1)
            if b[i] != 0:
                b[i] = 0
                yield b.reshape(a.shape)


def shrink(g: Graph, report: str, budget: int = 300, log=None) -> tuple[Graph, str]:
    """Delta-debug g to a smaller graph failing in the same class: keep one output, drop steps, shrink and
    simplify inputs; stops when nothing more helps or after `budget` runs."""
    cls = failure_class(report)
    runs = 0

    def fails(c):
        nonlocal runs
        if c is None or not c.steps or runs >= budget:
            return None
        runs += 1
        try:
            r = run_graph(c)
        except Exception:  # noqa: BLE001 - a candidate the harness cannot run is not a repro
            return None
        return r if r and failure_class(r) == cls else None

    best, best_report = _prune(g.copy()), report
    changed = True
    while changed and runs < budget:
        changed = False
        for o in list(best.outputs):  # one output
            if len(best.outputs) > 1:
                c = best.copy()
                c.outputs = [o]
                r = fails(_prune(c))
                if r:
                    best, best_report, changed = _prune(c), r, True
                    break
        for i in reversed(range(len(best.steps))):  # fewer steps
            if i < len(best.steps):
                c = _remove_step(best, i)
                r = fails(c)
                if r:
                    best, best_report, changed = c, r, True
        for i in reversed(range(len(best.steps))):  # earlier steps replaced by their values
            if i < len(best.steps) and len(best.steps) > 1:
                c = _cut_step(best, i)
                r = fails(c)
                if r:
                    best, best_report, changed = c, r, True
        for k in list(best.inputs):  # smaller, simpler inputs
            for a in _simpler_arrays(best.inputs[k]):
                if runs >= budget:
                    break
                c = best.copy()
                c.inputs[k] = np.ascontiguousarray(a)
                r = fails(c)
                if r:
                    best, best_report, changed = c, r, True
                    break
    if log:
        log(f"shrunk in {runs} runs: {len(g.steps)} -> {len(best.steps)} steps")
    return best, best_report


# -- the command line --------------------------------------------------------------------------------------------
def fuzz(graphs: int, seed: int, max_ops: int = 8, stop_on_failure: bool = False, shrink_budget: int = 300,
         out=print, max_shrinks: int = 8) -> list:
    """Run `graphs` graphs (graph i from seed `seed + i`); returns [(graph seed, shrunk Graph, report)], one per
    distinct repro (failure class + the ops left after shrinking). Up to `max_shrinks` failures are shrunk; later
    ones are counted by class only."""
    found, counts = {}, {}
    t0 = time.time()
    for i in range(graphs):
        gs = seed + i
        g = None
        try:
            g = generate(gs, max_ops)
            report = run_graph(g)
        except Exception:  # noqa: BLE001 - the harness itself failed: say so with the graph
            report = "harness error\n" + traceback.format_exc()
            if g is None:  # the generator itself: nothing to shrink, still a failure
                counts["harness error"] = counts.get("harness error", 0) + 1
                found.setdefault(f"generator {gs}", (gs, None, report))
                out(f"\n=== HARNESS ERROR generating graph seed {gs}\n{report}")
                continue
        if report is None:
            continue
        cls = failure_class(report)
        counts[cls] = counts.get(cls, 0) + 1
        shrunk = sum(1 for v in found.values() if v[1] is not None)
        if shrunk < max_shrinks or not found:
            small, small_report = shrink(g, report, shrink_budget)
            key = (cls, tuple(sorted({s.op for s in small.steps})))
            if key not in found:
                found[key] = (gs, small, small_report)
                out(f"\n=== FAILURE {len(found)} (graph seed {gs}): {small_report}\n{small.code()}")
        if stop_on_failure:
            break
    n = i + 1 if graphs else 0
    out(f"\nfuzz: {n} graphs from seed {seed} in {time.time() - t0:.1f}s; "
        f"{sum(counts.values())} failed in {len(counts)} class(es)")
    for cls, c in counts.items():
        out(f"  {c:5d}  {cls}")
    return list(found.values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinydl.testing.fuzz",
                                description="Random graphs on tinydl vs torch CPU; failures shrunk to repros.")
    p.add_argument("--graphs", type=int, default=200)
    p.add_argument("--seed", type=int, default=None, help="first graph's seed (default: random, printed)")
    p.add_argument("--max-ops", type=int, default=8)
    p.add_argument("--stop-on-failure", action="store_true")
    p.add_argument("--shrink-budget", type=int, default=300, help="graph runs allowed per shrink")
    p.add_argument("--no-gaps", action="store_true", help="generate into KNOWN_GAPS too (see what they hide)")
    args = p.parse_args(argv)
    if args.no_gaps:
        KNOWN_GAPS.clear()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    import tinydl
    print(f"fuzz: seed {seed}, {args.graphs} graphs, up to {args.max_ops} ops, known gaps avoided: "
          f"{', '.join(KNOWN_GAPS) or 'none'}, adapter: {tinydl.device_info().get('adapter')}",
          flush=True)
    found = fuzz(args.graphs, seed, args.max_ops, args.stop_on_failure, args.shrink_budget,
                 out=lambda s: print(s, flush=True))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
