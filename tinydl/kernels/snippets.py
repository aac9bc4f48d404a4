"""The shared WGSL table: one snippet per elementwise op, used by every kernel kind (standalone elementwise
kernels, prologues and epilogues of matmul/conv/reduce/pool). Values are computed in f32 (floats), i32
or bool; `{0}`, `{1}`, `{2}` are the operands and `{a0}`, `{a1}` the op's literal parameters."""
from __future__ import annotations

import math

# Helpers every kernel may call. NaN/inf come from bit patterns: WGSL has no literals for them, and
# shader compilers may assume x == x, so NaN tests look at the bits.
PRELUDE = """
fn td_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn td_max(a: f32, b: f32) -> f32 { if (td_isnan(a) || td_isnan(b)) { return a + b; } return max(a, b); }
fn td_min(a: f32, b: f32) -> f32 { if (td_isnan(a) || td_isnan(b)) { return a + b; } return min(a, b); }
fn td_tanh(x: f32) -> f32 { if (td_isnan(x)) { return x; } let c = clamp(x, -15.0, 15.0); let e = exp(2.0 * c); return (e - 1.0) / (e + 1.0); }
fn td_sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn td_log1p(x: f32) -> f32 { let u = 1.0 + x; if (u == 1.0) { return x; } return log(u) * (x / (u - 1.0)); }
fn td_expm1(x: f32) -> f32 { if (abs(x) < 1e-5) { return x + 0.5 * x * x; } return exp(x) - 1.0; }
fn td_erf(x: f32) -> f32 {
  // erf via erfc's Chebyshev-fitted rational form (Numerical Recipes erfcc), |error| < 1.2e-7
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
          + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  let e = 1.0 - r;
  if (z < 0.5) {
    // near 0 the series is more accurate than 1 - erfc
    let z2 = x * x;
    return x * 1.1283791670955126 * (1.0 - z2 / 3.0 + z2 * z2 / 10.0 - z2 * z2 * z2 / 42.0 + z2 * z2 * z2 * z2 / 216.0
           - z2 * z2 * z2 * z2 * z2 / 1320.0);
  }
  return select(-e, e, x >= 0.0);
}
fn td_softplus(x: f32, beta: f32, threshold: f32) -> f32 {
  let bx = beta * x;
  if (bx > threshold) { return x; }
  return td_log1p(exp(bx)) / beta;
}
fn td_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (td_isnan(a) || td_isnan(b)) { return a + b; }
  if (a == 0.0) { if (b > 0.0) { return 0.0; } return bitcast<f32>(0x7f800000u); }
  let r = exp2(b * log2(abs(a)));
  if (a > 0.0) { return r; }
  if (floor(b) != b) { return bitcast<f32>(0x7fc00000u); }
  if (abs(b) < 16777216.0 && (i32(b) & 1) == 1) { return -r; }
  return r;
}
fn td_ipow(a: i32, b: i32) -> i32 {
  var r = 1; var base = a; var e = b;
  loop { if (e <= 0) { break; } if ((e & 1) == 1) { r = r * base; } base = base * base; e = e >> 1u; }
  return r;
}
"""

# op -> {compute type: template}; "*" matches every type.
SNIPPETS: dict[str, dict[str, str]] = {
    "neg": {"*": "(-{0})"},
    "abs": {"*": "abs({0})"},
    "sign": {"f32": "sign({0})", "i32": "sign({0})", "bool": "{0}"},
    "relu": {"f32": "select(0.0, {0}, {0} > 0.0 || td_isnan({0}))", "i32": "max({0}, 0)"},
    "exp": {"f32": "exp({0})"},
    "log": {"f32": "log({0})"},
    "sqrt": {"f32": "sqrt({0})"},
    "rsqrt": {"f32": "inverseSqrt({0})"},
    "reciprocal": {"f32": "(1.0 / {0})"},
    "sin": {"f32": "sin({0})"},
    "cos": {"f32": "cos({0})"},
    "tanh": {"f32": "td_tanh({0})"},
    "sigmoid": {"f32": "td_sigmoid({0})"},
    "relu6": {"f32": "clamp({0}, 0.0, 6.0)"},
    "leaky_relu": {"f32": "select({0} * {a0}, {0}, {0} > 0.0)"},
    "elu": {"f32": "select({a0} * td_expm1({0}), {0}, {0} > 0.0)"},
    "gelu": {"f32": "(0.5 * {0} * (1.0 + td_erf({0} * 0.7071067811865476)))"},
    "gelu_tanh": {"f32": "(0.5 * {0} * (1.0 + td_tanh(0.7978845608028654 * ({0} + 0.044715 * {0} * {0} * {0}))))"},
    "silu": {"f32": "({0} * td_sigmoid({0}))"},
    "hardswish": {"f32": "({0} * clamp({0} + 3.0, 0.0, 6.0) / 6.0)"},
    "hardsigmoid": {"f32": "(clamp({0} + 3.0, 0.0, 6.0) / 6.0)"},
    "softplus": {"f32": "td_softplus({0}, {a0}, {a1})"},
    "mish": {"f32": "({0} * td_tanh(td_softplus({0}, 1.0, 20.0)))"},
    "erf": {"f32": "td_erf({0})"},
    "floor": {"f32": "floor({0})"},
    "ceil": {"f32": "ceil({0})"},
    "round": {"f32": "round({0})"},
    "logical_not": {"bool": "(!{0})"},
    "add": {"bool": "({0} || {1})", "*": "({0} + {1})"},  # bool + bool is logical or, as in torch
    "sub": {"*": "({0} - {1})"},
    "mul": {"bool": "({0} && {1})", "*": "({0} * {1})"},
    "div": {"f32": "({0} / {1})"},
    "maximum": {"f32": "td_max({0}, {1})", "i32": "max({0}, {1})", "bool": "({0} || {1})"},
    "minimum": {"f32": "td_min({0}, {1})", "i32": "min({0}, {1})", "bool": "({0} && {1})"},
    "pow": {"f32": "td_pow({0}, {1})", "i32": "td_ipow({0}, {1})"},
    "eq": {"*": "({0} == {1})"},
    "ne": {"*": "({0} != {1})"},
    "lt": {"*": "({0} < {1})"},
    "le": {"*": "({0} <= {1})"},
    "gt": {"*": "({0} > {1})"},
    "ge": {"*": "({0} >= {1})"},
    "logical_and": {"bool": "({0} && {1})"},
    "logical_or": {"bool": "({0} || {1})"},
    "bitwise_not": {"i32": "(~{0})", "bool": "(!{0})"},
    "bitwise_and": {"i32": "({0} & {1})", "bool": "({0} && {1})"},
    "bitwise_or": {"i32": "({0} | {1})", "bool": "({0} || {1})"},
    "bitwise_xor": {"i32": "({0} ^ {1})", "bool": "({0} != {1})"},
    # by the bits (compilers may assume no NaN/Inf); integers and bools are never NaN or Inf
    "isnan": {"f32": "td_isnan({0})", "*": "false"},
    "isinf": {"f32": "((bitcast<u32>({0}) & 0x7fffffffu) == 0x7f800000u)", "*": "false"},
    "isfinite": {"f32": "((bitcast<u32>({0}) & 0x7f800000u) != 0x7f800000u)", "*": "true"},
    "where": {"*": "select({2}, {1}, {0})"},
}


def literal(value, wgsl_type: str) -> str:
    """A WGSL literal of `value` in a compute type."""
    if wgsl_type == "bool":
        return "true" if value else "false"
    if wgsl_type == "i32":
        return f"i32({int(value)})"
    v = float(value)
    if math.isnan(v):
        return "bitcast<f32>(0x7fc00000u)"
    if math.isinf(v):
        return "bitcast<f32>(0x7f800000u)" if v > 0 else "bitcast<f32>(0xff800000u)"
    # the shortest repr that round-trips float32, as a WGSL f32 literal
    import numpy as np
    return f"{repr(float(np.float32(v)))}f".replace("inf", "0")


def convert(expr: str, src: str, dst: str) -> str:
    """Convert a compute value between f32 / i32 / bool."""
    if src == dst:
        return expr
    if dst == "bool":
        if src == "f32":  # nan is nonzero (true), as in torch; ordered != would make it false
            return f"({expr} != 0.0 || td_isnan({expr}))"
        return f"({expr} != 0)"
    return f"{dst}({expr})"


def apply(op: str, compute_type: str, operands: list[str], params: tuple) -> str:
    table = SNIPPETS[op]
    tmpl = table.get(compute_type) or table.get("*")
    if tmpl is None:
        raise NotImplementedError(f"{op} has no {compute_type} form")
    lits = {}
    for i, p in enumerate(params):
        lits[f"a{i}"] = literal(p, "f32") if isinstance(p, (int, float)) and not isinstance(p, bool) else str(p)
    return tmpl.format(*operands, **lits)
