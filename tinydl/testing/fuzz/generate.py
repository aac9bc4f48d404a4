"""Random graphs: one generator per op family, drawn by weight."""
from __future__ import annotations

import random
import re
import warnings

import numpy as np

from .cases import BINARY, active_gaps, GAP_RULES, Graph, REDUCE, SPECIALS, SPECIALS16, Step, UNARY_F, UNARY_L


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
        self.gaps = active_gaps()

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
        if any(GAP_RULES[gap](op, expr, [self.env[x] for x in srcs]) for gap in self.gaps):
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


