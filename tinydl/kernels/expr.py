"""Inlining: turn the inlinable part of a graph into WGSL statements that compute one value at a
multi-index. Every kernel kind uses this for its loads (prologue), its body and its store (epilogue).

Nodes the scheduler materialized are read from storage buffers; everything else (elementwise ops, views,
constants, cat, gather, interpolation) is emitted as code, recursively, with index math for views.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import itertools
import math
import operator

from .. import checks, dtypes
from ..ops import BUFFER, CAT, CONST, ELEMENTWISE, GATHER, INTERP, IOTA, REDUCE, VIEW, Node
from ..shapes import contiguous_strides
from . import half_rounding, overflow, snippets
from .prelude import used_prelude
from .snippets import apply, convert, literal

_STORE_CONVERT = {"f32": "{}", "f16": "f16(td_round_f16({}))", "i32": "{}", "u32": "select(0u, 1u, {})"}
_LOAD_CONVERT = {"f32": "{}", "f16": "f32({})", "i32": "{}", "u32": "({} != 0u)"}
VEC4_STORAGE = ("f32", "f16")  # storage types a kernel may bind as vec4s (binding4, a vec4 output)


def _const_value(node: Node):
    """A CONST node's value (a float16 one is computed in f32: elementwise.py rounds it to half where torch does)."""
    return node.arg


INT_DIVISIONS = ("floor_divide", "trunc_divide", "remainder", "fmod")


@checks.reporter
def _int_division_checks(node) -> bool:
    return (node.kind == ELEMENTWISE and node.op in INT_DIVISIONS and node.dtype.compute == "i32"
            and const_of(node.srcs[1]) is None)


def int_overflow(node: Node) -> tuple | None:
    """How this node's int32 result can leave int32 (kernels/overflow.py), or None: only elementwise int ops."""
    if node.kind != ELEMENTWISE or node.dtype.compute != "i32" or node.op not in overflow.OVERFLOW_OPS:
        return None
    return overflow.int_overflow(node.op, [const_of(s) for s in node.srcs])


@checks.reporter
def _int_overflow_checks(node) -> bool:
    return int_overflow(node) is not None


def const_of(node: Node):
    """The value of a constant seen through views that keep values (expand, reshape, permute, slice), or None."""
    while (node.kind == VIEW and node.op != "pad") or (node.kind == ELEMENTWISE and node.op == "cast"
                                                       and node.dtype.compute == "f32"):
        node = node.srcs[0]  # an int/bool constant cast to float is that float
    if node.kind != CONST:
        return None
    return _const_value(node) if node.dtype.compute != "f32" else float(_const_value(node))


def linear_index(idx, shape) -> str:
    terms = [f"({i}) * {s}" if s != 1 else f"({i})"
             for i, s, n in zip(idx, contiguous_strides(shape), shape) if n != 1]
    return " + ".join(terms) if terms else "0"


def unravel(lin: str, shape) -> list[str]:
    if 0 in shape:  # no element: no index is ever reached (and a literal `% 0` is a compile error in Tint)
        return ["0"] * len(shape)
    out = []
    for s, n in zip(contiguous_strides(shape), shape):
        if n == 1:
            out.append("0")
        else:
            q = f"({lin})" if s == 1 else f"(({lin}) / {s})"
            out.append(q if s * n >= 2**31 or lin == "0" else f"({q} % {n})")
    return out


class KernelSource:
    """Bindings and helper functions of one kernel. Binding 0 is the output; inputs follow in the order
    they are first read."""

    def __init__(self, materialized, out: Node):
        self.materialized = materialized  # node -> True when its value lives in a buffer this kernel reads
        self.out = out
        self.inputs: list[Node] = []
        self._binding: dict = {}  # node uid (or ("vec4", uid)) -> binding name
        self.functions: list[str] = []
        self._tmp = 0
        self.vec4_out = False  # the output bound as array<vec4<f32>>: store4 writes 4 elements at once
        self._vec4_inputs: set[str] = set()  # input bindings declared array<vec4<f32>> (see binding4)
        self._packed_inputs: set[str] = set()  # float16 input bindings declared array<vec4<u32>> (load8_packed)
        self.checks = checks.Code(0)  # codes this kernel may report: it then binds the status buffer (last)
        self.uses_f16 = False  # the code rounds through f16 (a cast to float16 inside a chain): `enable f16;`
        self.stats_allowed = False  # a gemv: it computes the long sums its loads read itself (row_stats.py)
        self.stats: list[Node] = []  # those sums, each held in workgroup memory as td_stat<its index>
        self.rounded_uids = frozenset()  # inline nodes whose float16 values are rounded as a store would (build)

    def fresh(self, prefix="v") -> str:
        self._tmp += 1
        return f"{prefix}{self._tmp}"

    def read(self, node: Node, lin: str) -> str:
        """node's stored element at position lin, through its binding: a node already bound as vec4s (binding4)
        is read from there, so no buffer takes two of the kernel's bindings when it comes first."""
        vec = self._binding.get(("vec4", node.uid))
        if vec is not None and node.uid not in self._binding:
            return f"{vec}[({lin}) >> 2u][({lin}) & 3]"
        return f"{self.binding(node)}[{lin}]"

    def load(self, node: Node, lin: str) -> str:
        """node's element at position lin as its compute type (a float16 element as f32)."""
        return _LOAD_CONVERT[node.dtype.storage].format(self.read(node, lin))

    @functools.cached_property
    def rounded_by_store(self) -> frozenset:
        """uids of the float16 nodes whose rounding the output's store does (half_rounding.rounded_by_store)."""
        return half_rounding.rounded_by_store(self.out, self.materialized)

    def binding(self, node: Node) -> str:
        name = self._binding.get(node.uid)
        if name is None:
            self.inputs.append(node)
            name = self._binding[node.uid] = f"in{len(self.inputs)}"
        return name

    def binding4(self, node: Node) -> str:
        """A binding of node's float buffer as array<vec4<f32>> (or vec4<f16>: GEMM tile loads of 4 elements at
        once). Later element reads of the node go through it too (read); only a scalar binding made before it
        stays beside it (two read-only bindings of one buffer are allowed, but count against the adapter's
        limit)."""
        assert node.dtype.storage in VEC4_STORAGE and (node.kind == BUFFER or self.materialized(node)), node
        return self._typed_binding("vec4", node, self._vec4_inputs)

    def load8_packed(self, node: Node, lin: str) -> str:
        """A float16 node's elements lin..lin+7 (lin a multiple of 8) as one vec4<u32> of packed pairs (one
        16-byte load; unpack2x16float gives each pair as a vec2<f32>), through a binding of its buffer as
        array<vec4<u32>> of its own."""
        assert node.dtype.storage == "f16" and (node.kind == BUFFER or self.materialized(node)), node
        return f"{self._typed_binding('packed8', node, self._packed_inputs)}[({lin}) >> 3u]"

    def _typed_binding(self, kind: str, node: Node, names: set) -> str:
        """node's binding of element type `kind` (declared as render finds its name in `names`), made once."""
        key = (kind, node.uid)
        name = self._binding.get(key)
        if name is None:
            self.inputs.append(node)
            name = self._binding[key] = f"in{len(self.inputs)}"
            names.add(name)
        return name

    def stat(self, node: Node) -> str:
        """The workgroup array holding the long sum `node`'s outputs, filled at the kernel's start (row_stats.py)."""
        assert self.stats_allowed, f"{node} is neither materialized nor inlinable"
        if node not in self.stats:
            self.stats.append(node)
        return f"td_stat{self.stats.index(node)}"

    def report(self, code: checks.Code) -> str:
        """The WGSL statement that reports `code` (a violation found on the GPU, see tinydl/checks.py); the
        kernel binds the runtime's status buffer after its inputs."""
        self.checks |= code
        return checks.wgsl_report(code)

    def store(self, lin: str, value: str) -> str:
        assert not self.vec4_out  # a kernel with a vec4-bound output stores through store4 only
        return f"out[{lin}] = {_STORE_CONVERT[self.out.dtype.storage].format(value)};"

    def load4(self, node: Node, lin: str) -> str:
        """node's elements lin..lin+3 (lin a multiple of 4) as one vec4<f32>, through binding4."""
        v = f"{self.binding4(node)}[({lin}) >> 2u]"
        return v if node.dtype.storage == "f32" else f"vec4<f32>({v})"

    def store4(self, lin: str, value: str) -> str:
        """Elements lin..lin+3 (lin a multiple of 4) from a vec4<f32>: one 16-byte (float16: 8-byte) store."""
        assert self.vec4_out and self.out.dtype.storage in VEC4_STORAGE
        return f"out[({lin}) >> 2u] = {value if self.out.dtype.storage == 'f32' else f'vec4<f16>(td_round_f16x4({value}))'};"

    def render(self, body: str, workgroup_size: int, shared: str = "", subgroups: bool = False,
               enables: tuple[str, ...] = (), builtins: str = "") -> str:
        """The shader: bindings, shared memory, functions and main around body. subgroups: main also gets the
        subgroup size as `sgs` (the adapter's subgroup feature); enables: extensions the kernel needs besides f16;
        builtins: more parameters of main (", @builtin(...) name: type")."""
        needs_f16 = (self.uses_f16 or self.out.dtype == dtypes.float16
                     or any(n.dtype == dtypes.float16 for n in self.inputs))
        out_type = f"vec4<{self.out.dtype.storage}>" if self.vec4_out else self.out.dtype.storage
        decls = [f"@group(0) @binding(0) var<storage, read_write> out: array<{out_type}>;"]
        for i, n in enumerate(self.inputs, 1):
            elem = f"vec4<{n.dtype.storage}>" if f"in{i}" in self._vec4_inputs else \
                "vec4<u32>" if f"in{i}" in self._packed_inputs else n.dtype.storage
            decls.append(f"@group(0) @binding({i}) var<storage, read> in{i}: array<{elem}>;")
        if self.checks:
            decls.append(checks.wgsl_binding(len(self.inputs) + 1))
        head = ("enable f16;\n" if needs_f16 else "") + "".join(f"enable {x};\n" for x in enables)
        code = (f"{chr(10).join(self.functions)}\n"
                f"@compute @workgroup_size({workgroup_size})\n"
                f"fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n"
                f"        @builtin(local_invocation_id) lid3: vec3<u32>{_SUBGROUP_BUILTINS if subgroups else ''}"
                f"{builtins}) {{\n"
                f"  td_z = nwg.z >> 31u;\n"  # 0 (a dispatch has under 65536 workgroups), unknown to the compiler
                f"  let lid = i32(lid3.x);\n  let wg = i32(wid.x + wid.y * nwg.x);\n{body}\n}}\n")
        decls = f"{chr(10).join(decls)}\n{shared}\n"
        return f"{head}{decls}{used_prelude(decls + code)}\n{code}"


_SUBGROUP_BUILTINS = ", @builtin(subgroup_size) sgs: u32"
_CONSTANT_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def constant_int(index: str) -> int | None:
    """The value of an index expression made of integer literals, + - * and parentheses (a 1-element output's
    indices are such: `(0 + (0) * 3)`), else None."""
    def value(e):
        if isinstance(e, ast.Constant) and type(e.value) is int:
            return e.value
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            return -value(e.operand)
        if isinstance(e, ast.BinOp) and type(e.op) in _CONSTANT_OPS:
            return _CONSTANT_OPS[type(e.op)](value(e.left), value(e.right))
        raise ValueError(index)
    if not isinstance(index, str) or not index or index.strip("0123456789+-*() "):
        return None
    try:
        return value(ast.parse(index, mode="eval").body)
    except (SyntaxError, ValueError):
        return None


class Expr:
    """Emits statements (into `lines`) computing node values at index expressions."""

    def __init__(self, src: KernelSource, lines: list[str], indent: str = "  ", reuse_lets: bool = False):
        self.src, self.lines, self.indent = src, lines, indent
        self.memo: dict[tuple, str] = {}
        self.subst: dict[int, str] = {}
        # a let of an expression already bound in scope returns that name: only for code without `var`s, whose
        # expressions mean the same wherever they are written (store_out4's four epilogues share their index math)
        self.reuse_lets = reuse_lets
        self._let_expr: dict[str, str] = {}  # let name -> its expression (same_value: what a compiler would CSE)

    def bind(self, node: Node, var: str) -> None:
        """Declare that `node`'s value wherever it is read is `var`: the heavy op's result in its epilogue.
        (The scheduler only fuses chains that read the core once, at the element being stored.)"""
        self.subst[node.uid] = var

    def emit(self, line: str) -> None:
        self.lines.append(self.indent + line)

    def let(self, expr: str, prefix="v") -> str:
        if self.reuse_lets and ("let", expr) in self.memo:
            return self.memo["let", expr]
        name = self.src.fresh(prefix)
        self.emit(f"let {name} = {expr};")
        self._let_expr[name] = expr
        if self.reuse_lets:
            self.memo["let", expr] = name
        return name

    @contextlib.contextmanager
    def scope(self, header: str):
        """A nested block: values computed inside are not visible after it."""
        self.emit(header + " {")
        saved, self.memo, self.indent = self.memo, dict(self.memo), self.indent + "  "
        try:
            yield
        finally:
            self.memo, self.indent = saved, self.indent[:-2]
            self.emit("}")

    def value(self, node: Node, idx) -> str:
        """A WGSL name holding node's value at multi-index idx (a list of i32 expressions)."""
        if node.uid in self.subst:
            return self.subst[node.uid]
        idx = tuple(idx)
        key = (node.uid, idx)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        if node.kind == BUFFER or self.src.materialized(node):
            v = self.let(self.src.load(node, linear_index(idx, node.shape)))
        elif node.kind == CONST:
            v = literal(_const_value(node), node.dtype.compute)
        elif node.kind == IOTA:
            dim, start, step = node.arg
            if node.dtype.compute == "f32":
                v = self.let(f"({literal(start, 'f32')} + f32({idx[dim]}) * {literal(step, 'f32')})")
            else:
                v = self.let(convert(f"({int(start)} + ({idx[dim]}) * {int(step)})", "i32", node.dtype.compute))
        elif node.kind == ELEMENTWISE:
            v = self._elementwise(node, idx)
        elif node.kind == VIEW:
            v = self._view(node, idx)
        elif node.kind == CAT:
            v = self._cat(node, idx)
        elif node.kind == GATHER:
            weight, indices = node.srcs
            i = self.value(indices, idx[:-1])
            if node.arg:  # indices from the GPU: one out of range is reported (node.arg: its code), reads row 0
                ok = self.let(f"u32({i}) < {weight.shape[0]}u", "ok")
                self.emit(f"if (!{ok}) {{ {self.src.report(node.arg)} }}")
                row = self.let(f"select(0, {i}, {ok})", "row")
            else:  # indices checked on the host: the clamp only keeps a read in bounds
                row = self.let(f"clamp({i}, 0, {weight.shape[0] - 1})", "row")
            v = self.value(weight, (row,) + idx[-1:])
        elif node.kind == INTERP:
            v = self._interp(node, idx)
        elif node.kind == REDUCE and node.op == "sum" and self.src.stats_allowed:  # a gemv's statistic
            v = self.let(f"{self.src.stat(node)}[{linear_index(idx, node.shape)}]")
        elif node.kind == REDUCE and node.op == "sum":  # short, unrolled (schedule.INLINE_SUM_MAX)
            src, axes = node.srcs[0], node.arg
            terms = []
            for at in itertools.product(*(range(src.shape[a]) for a in axes)):
                sidx = list(idx)
                for a, j in zip(axes, at):
                    sidx[a] = str(j)
                terms.append(self.value(src, sidx))
            # from torch's start, +0.0 (a sum of -0.0 terms is +0.0; a sum of nothing, an empty dim's, is 0)
            start = snippets.SUM_START if node.dtype.compute == "f32" else literal(0, node.dtype.compute)
            v = self.let(" + ".join([start] + terms))
        else:
            raise AssertionError(f"{node} is neither materialized nor inlinable")
        if node.uid in self.src.rounded_uids and node.dtype == dtypes.float16:
            v = self.let(f"td_round_f16({v})")
        self.memo[key] = v
        return v

    def element(self, node: Node, lin: str) -> str:
        """node's value at row-major position lin, for a node held in memory (a buffer or materialized): lets a
        kernel that walks a tensor's memory in order skip splitting the position into a multi-index."""
        assert node.kind == BUFFER or self.src.materialized(node), node
        key = (node.uid, ("element", lin))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = self.let(self.src.load(node, lin))
        return hit

    def _canon(self, name: str) -> str:
        """The expression a let stands for, through lets that only copy another let (x.clone() is `let v2 = v1;`)."""
        seen = 0
        while name in self._let_expr and seen < 64:
            e = self._let_expr[name]
            if e not in self._let_expr:
                return e
            name, seen = e, seen + 1
        return name

    def same_value(self, a: str, b: str) -> bool:
        """a and b are one value to the shader compiler (one let, a copy of it, or the same expression of the same
        lets): it may fold a - b to 0 and a / b to 1, wrong for NaN/Inf."""
        return a == b or self._canon(a) == self._canon(b)

    def _rounded_by_store(self) -> frozenset:
        """The float16 nodes whose rounding this kernel's store does (computed on the first ask: half_rounding)."""
        return self.src.rounded_by_store

    def _elementwise(self, node: Node, idx) -> str:
        ops = [self.value(s, idx) for s in node.srcs]
        if node.srcs and all(s.dtype.compute == "f32" and const_of(s) is not None for s in node.srcs):
            # every operand a literal: WGSL would evaluate the op when compiling and reject a NaN result
            # (log(-1.0f), sqrt(-1.0f)); torch gives NaN, so the compiler must not see the values
            ops = [f"td_opaque({o})" for o in ops]
        check = int_overflow(node)  # None for every float and bool value
        if check == ("ops",) and node.op == "pow":
            p = self.let(f"td_ipow_checked({ops[0]}, {ops[1]})", "pw")
            self._report_overflow(f"{p}.y != 0")
            return self.let(f"{p}.x")
        e = self._elementwise_expr(node, ops)
        if node.dtype.compute == "f32":  # an op the compiler cannot see into: no reassociation across ops
            e = f"td_opaque({e})"           # ((x + 1) - x is not 1, x + (-x) is not 0 for Inf; see PRELUDE)
        if half_rounding.rounds_result(node, self.src.materialized, self._rounded_by_store):
            e = f"td_round_f16({e})"  # each torch op on float16 rounds its result: (x * 1000) * 0.001 overflows
        v = self.let(e)
        if check is not None:
            self._report_overflow(self._overflow_test(node.op, check, ops, v))
        return v

    def _overflow_test(self, op: str, check: tuple, ops: list[str], r: str) -> str:
        """The WGSL condition under which int32 result r of op (operands ops) does not fit int32 (kernels/overflow.py)."""
        if check[0] == "range":
            _, k, lo, hi = check
            bounds = ([f"{ops[k]} < {literal(lo, 'i32')}"] if lo is not None else []) + \
                     ([f"{ops[k]} > {literal(hi, 'i32')}"] if hi is not None else [])
            return " || ".join(bounds) or "true"
        a, b = ops
        if op == "add":
            return f"(({a} ^ {r}) & ({b} ^ {r})) < 0"
        if op == "sub":
            return f"(({a} ^ {b}) & ({a} ^ {r})) < 0"
        if op == "mul":
            return f"td_imul_ovf({a}, {b})"
        assert op in ("floor_divide", "trunc_divide"), op
        return f"{a} == {literal(overflow.INT_MIN, 'i32')} && {b} == -1"

    def _report_overflow(self, cond: str) -> None:
        self.emit(f"if ({cond}) {{ {self.src.report(checks.Code.INTEGER_OVERFLOW)} }}")

    def _elementwise_expr(self, node: Node, ops: list[str]) -> str:
        """The WGSL expression of an elementwise node over its operands' values (lets already)."""
        ct = node.dtype.compute
        if node.op == "cast":
            v = convert(ops[0], node.srcs[0].dtype.compute, ct)
            if half_rounding.cast_rounds(node, self._rounded_by_store):
                v = f"td_round_f16({v})"  # rounded to half here (65536 -> inf), as torch, not only at the store
                self.src.uses_f16 = True
            return v
        if node.op == "clamp":
            lo, hi = node.arg
            e = ops[0]
            if ct == "f32" and any(v is not None and math.isnan(float(v)) for v in (lo, hi)):
                return "td_nan()"  # torch: a NaN bound gives NaN everywhere; decided here, never by a compare at run time
            if lo is not None:
                e = f"max({e}, {literal(lo, ct)})" if ct == "i32" else f"td_maximum({literal(lo, ct)}, {e})"
            if hi is not None:  # td_maximum/td_minimum keep the second operand on ties: clamp(-0.0, 0.0) is -0.0
                e = f"min({e}, {literal(hi, ct)})" if ct == "i32" else f"td_minimum({literal(hi, ct)}, {e})"
            return e
        operand_type = node.srcs[-1].dtype.compute
        if operand_type == "i32" and node.op in INT_DIVISIONS and const_of(node.srcs[1]) is None:
            # torch raises for an integer division by zero: report it (checks.ZERO_DIVISION), never a number
            self.emit(f"if ({ops[1]} == 0) {{ {self.src.report(checks.Code.ZERO_DIVISION)} }}")
        if operand_type == "f32" and node.op == "trunc_divide":  # trunc(a / b), a / b written as div writes it
            q = (snippets.same_operand("div", ops[0]) if self.same_value(ops[0], ops[1]) else
                 snippets.with_literal("div", ops, [const_of(s) for s in node.srcs]))
            return f"trunc({q or f'({ops[0]} / {ops[1]})'})"
        if operand_type == "f32" and len(ops) == 2 and node.op in ("add", "sub", "mul", "div"):
            # literal or repeated operands get NaN/Inf/-0-exact forms (see snippets.with_literal)
            special = (snippets.same_operand(node.op, ops[0]) if self.same_value(ops[0], ops[1]) else
                       snippets.with_literal(node.op, ops, [const_of(s) for s in node.srcs]))
            if special is not None:
                return special
        return apply(node.op, operand_type, ops, node.arg)

    def _view(self, node: Node, idx) -> str:
        src = node.srcs[0]
        op, arg = node.op, node.arg
        if op == "reshape":
            a = [s for s in node.shape if s != 1]
            b = [s for s in src.shape if s != 1]
            if a == b:  # only size-1 dims added/removed: map the other indices straight through
                it = iter(i for i, s in zip(idx, node.shape) if s != 1)
                sidx = [next(it) if s != 1 else "0" for s in src.shape]
            else:  # trailing dims the two shapes share map straight through; only the rest is regrouped
                k = 0
                while k < min(len(node.shape), len(src.shape)) - 1 and node.shape[-1 - k] == src.shape[-1 - k]:
                    k += 1
                head = len(node.shape) - k
                lin = self.let(linear_index(idx[:head], node.shape[:head]), "lin")
                sidx = unravel(lin, src.shape[:len(src.shape) - k]) + list(idx[head:])
        elif op == "permute":
            sidx = [None] * len(arg)
            for i, p in enumerate(arg):
                sidx[p] = idx[i]
        elif op == "expand":
            sidx = ["0" if s == 1 and n != 1 else i for i, s, n in zip(idx, src.shape, node.shape)]
        elif op == "slice":
            starts, steps = arg
            sidx = [i if (st == 0 and sp == 1) else f"({st} + ({i}) * {sp})" for i, st, sp in zip(idx, starts, steps)]
        elif op == "pad":
            return self._pad(node, idx)
        else:
            raise AssertionError(op)
        return self.value(src, sidx)

    def _pad(self, node: Node, idx) -> str:
        src = node.srcs[0]
        pads, mode, fill = node.arg  # pads: ((lo, hi) per dim)
        sidx, conds = [], []
        for i, (lo, _hi), n in zip(idx, pads, src.shape):
            if lo == 0 and _hi == 0:
                sidx.append(i)
                continue
            if mode == "circular":  # torch crops negative pads first, then wraps within what is left (once at most)
                m, crop = n + min(lo, 0) + min(_hi, 0), max(-lo, 0)
                s = self.let(f"({i}) - {max(lo, 0)}", "p")
                sidx.append(f"(select(select({s}, {s} - {m}, {s} >= {m}), {s} + {m}, {s} < 0) + {crop})")
                continue
            s = self.let(f"({i}) - {lo}", "p")
            if mode == "constant":
                conds.append(f"({s} >= 0 && {s} < {n})")
                sidx.append(f"clamp({s}, 0, {max(n - 1, 0)})")
            elif mode == "reflect":
                sidx.append(f"({n - 1} - abs({n - 1} - abs({s})))")
            else:  # replicate
                sidx.append(f"clamp({s}, 0, {n - 1})")
        v = self.value(src, sidx)
        if conds:
            v = self.let(f"select({literal(fill, node.dtype.compute)}, {v}, {' && '.join(conds)})")
        return v

    def _cat(self, node: Node, idx) -> str:
        d = node.arg
        at = constant_int(idx[d])
        if at is not None:  # the part is known: no branch for the others (their indices, constant, may be negative,
            off = 0         # which shader compilers reject even in code that never runs)
            for s in node.srcs:
                if at < off + s.shape[d]:
                    return self.value(s, [*idx[:d], f"({at - off})", *idx[d + 1:]])
                off += s.shape[d]
        out = self.src.fresh("cat")
        self.emit(f"var {out}: {node.dtype.compute};")
        off = 0
        for k, s in enumerate(node.srcs):
            end = off + s.shape[d]
            cond = f"if ({idx[d]} < {end})" if k == 0 else (f"else if ({idx[d]} < {end})" if k < len(node.srcs) - 1
                                                              else "else")
            sidx = list(idx)
            sidx[d] = f"(({idx[d]}) - {off})" if off else idx[d]
            with self.scope(cond):
                self.emit(f"{out} = {self.value(s, sidx)};")
            off = end
        return out

    def _interp(self, node: Node, idx) -> str:
        src = node.srcs[0]
        mode, align_corners, scales = node.arg
        n, c = idx[0], idx[1]
        if mode in ("nearest", "nearest-exact"):
            sp = []
            for k, (o, scale) in enumerate(zip(idx[2:], scales)):
                size = src.shape[2 + k]
                at = f"f32({o})" if mode == "nearest" else f"(f32({o}) + 0.5)"  # nearest-exact: pixel centres
                sp.append(f"min(i32(floor({at} * {literal(scale, 'f32')})), {size - 1})")
            return self.value(src, [n, c] + sp)
        # (bi/tri)linear: per spatial dim the two taps and the weight of the upper one; a dim whose size is kept
        # (factor 1 without align_corners) is copied, one tap, as torch's kernels copy it
        taps = []
        for k, (o, scale) in enumerate(zip(idx[2:], scales)):
            size = src.shape[2 + k]
            if scale == 1.0 and not align_corners:
                taps.append((o, None, None))
                continue
            if align_corners:
                pos = self.let(f"f32({o}) * {literal(scale, 'f32')}", "pos")
            else:
                pos = self.let(f"max((f32({o}) + 0.5) * {literal(scale, 'f32')} - 0.5, 0.0)", "pos")
            lo = self.let(f"min(i32(floor({pos})), {size - 1})", "lo")
            hi = self.let(f"min({lo} + 1, {size - 1})", "hi")
            w = self.let(f"{pos} - f32({lo})", "w")
            taps.append((lo, hi, w))
        if len(taps) == 1 and taps[0][2] is not None:
            (lo, hi, w), = taps
            a, b = self.value(src, [n, c, lo]), self.value(src, [n, c, hi])
            return self.let(f"{a} + ({b} - {a}) * {w}")

        def blend(k, at):  # torch's order: the outer dim's taps weigh the inner dims' blends
            if k == len(taps):
                return self.value(src, [n, c] + at)
            lo, hi, w = taps[k]
            if w is None:
                return blend(k + 1, at + [lo])
            a, b = blend(k + 1, at + [lo]), blend(k + 1, at + [hi])
            return f"(1.0 - {w}) * ({a}) + {w} * ({b})" if k + 1 < len(taps) else f"(1.0 - {w}) * {a} + {w} * {b}"
        return self.let(blend(0, []))


def memory_layout(node: Node, materialized) -> tuple[Node, int, list[list[tuple[int, int]]]] | None:
    """Where node's elements lie in memory when it is a buffer (or materialized) seen through strided views
    (permute, expand, slice, reshape): (the node holding the buffer, element offset, per dim its sub-dims
    [(size, stride), ...], outermost first). A dim is one sub-dim unless a reshape merged source dims that are
    not one contiguous run (attention's heads merged back: (B, S, H, D) -> (B, S, H * D) of a permuted tensor
    gives the last dim [(H, S * D), (D, 1)]). Size-1 dims have none. None when node's elements are computed, or a
    view mixes positions in other ways (a slice of a merged dim, a pad), or it has none."""
    if 0 in node.shape:
        return None
    if node.kind == BUFFER or materialized(node):
        return node, 0, _merged([[(s, st)] for s, st in zip(node.shape, contiguous_strides(node.shape))])
    if node.kind != VIEW or node.op == "pad":
        return None
    inner = memory_layout(node.srcs[0], materialized)
    if inner is None:
        return None
    base, off, dims = inner
    src = node.srcs[0]
    if node.op == "permute":
        return base, off, [dims[p] for p in node.arg]
    if node.op == "expand":
        return base, off, [[(n, 0)] if s == 1 and n != 1 else d for d, s, n in zip(dims, src.shape, node.shape)]
    if node.op == "slice":
        starts, steps = node.arg
        out = []
        for d, a, sp, n, s in zip(dims, starts, steps, node.shape, src.shape):
            if (a, sp, n) == (0, 1, s):
                out.append(d)
                continue
            if len(d) != 1:
                return None
            off += d[0][1] * a
            out.append([(n, d[0][1] * sp)] if n != 1 else [])
        return base, off, out
    # reshape: the source's sub-dims in order, regrouped into the new dims (a sub-dim split where a new dim
    # ends inside it evenly)
    subs = [sd for d in dims for sd in d]
    out = []
    for n in node.shape:
        group, need = [], n
        while need > 1:
            if not subs:
                return None
            size, stride = subs.pop(0)
            if need % size == 0:
                group.append((size, stride))
                need //= size
            elif size % need == 0:
                group.append((need, stride * (size // need)))
                subs.insert(0, (size // need, stride))
                need = 1
            else:
                return None
        out.append(group)
    return base, off, _merged(out)


def _merged(dims: list[list[tuple[int, int]]]) -> list[list[tuple[int, int]]]:
    """Each dim's sub-dims without size-1 ones, neighbours that form one run joined: ((a, s * b), (b, s)) is
    (a * b, s)."""
    out = []
    for d in dims:
        group: list[tuple[int, int]] = []
        for size, stride in d:
            if size == 1:
                continue
            if group and group[-1][1] == stride * size:
                group[-1] = (group[-1][0] * size, stride)
            else:
                group.append((size, stride))
        out.append(group)
    return out


def sub_dim_offset(e: Expr, dim: list[tuple[int, int]], index: str) -> str:
    """The element offset of position `index` (an expression) along a dim made of these sub-dims."""
    if not dim or any(size == 0 for size, _ in dim):  # an empty dim: never indexed (Tint refuses `% 0`)
        return "0"
    if len(dim) == 1:
        return f"({index}) * {dim[0][1]}"
    i = e.let(index, "di")
    terms, inner = [], 1
    for k, (size, stride) in enumerate(reversed(dim)):
        digit = f"({i} / {inner})" if inner > 1 else i
        if k < len(dim) - 1:
            digit = f"({digit} % {size})"
        terms.append(f"{digit} * {stride}")
        inner *= size
    return "(" + " + ".join(terms) + ")"


def idx_vars(expr: Expr, lin: str, shape, prefix="i") -> list[str]:
    """Unravel a linear output index into named per-dim index variables."""
    names = []
    for k, e in enumerate(unravel(lin, shape)):
        if e == "0":
            names.append("0")
        else:
            names.append(expr.let(e, f"{prefix}{k}_"))
    return names
