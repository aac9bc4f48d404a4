"""The shared WGSL table: one snippet per elementwise op, used by every kernel kind (standalone elementwise
kernels, prologues and epilogues of matmul/conv/reduce/pool). Values are computed in f32 (floats), i32
or bool; `{0}`, `{1}`, `{2}` are the operands and `{a0}`, `{a1}` the op's literal parameters."""
from __future__ import annotations

import math

# Helpers every kernel may call. NaN/inf come from bit patterns: WGSL has no literals for them, and
# shader compilers may assume x == x, so NaN tests look at the bits.
PRELUDE = """
// WGSL lets compilers reassociate float math as if no NaN/Inf existed ((x + 1) - x -> 1, x + -x -> 0): each
// elementwise op's f32 result goes through td_opaque, an OR with a zero the compiler cannot know (main sets td_z
// from the dispatch size), so ops are computed as written; one integer op per value
var<private> td_z: u32;
fn td_opaque(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) | td_z); }
// NaN and Inf values carry td_z too: a driver that assumes no NaN/Inf (NVIDIA's) may treat a NaN or Inf constant as
// undefined and fold anything it meets; every NaN decision below is on bits or integer keys, never a float compare
fn td_nan() -> f32 { return bitcast<f32>(0x7fc00000u | td_z); }
// x rounded to the nearest float16 value (ties to even; from 65520 on an Inf), in integer ops on the bits: a driver
// may fold f32(f16(x)) or unpack(pack(x)) away, or convert toward zero or flush half subnormals
fn td_round_f16(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  let a = bits & 0x7fffffffu;
  // half's normals: 10 mantissa bits kept, ties to even (a carry moves into the exponent as it should)
  let normal = (a + 0xfffu + ((a >> 13u) & 1u)) & 0xffffe000u;
  // below them, multiples of 2^-24: the 24-bit significand shifted by d = 126 - exponent (14..25), ties to even
  let d = min(126u - min(a >> 23u, 112u), 25u);
  let m = (a & 0x7fffffu) | 0x800000u;
  let q = (m + (1u << (d - 1u)) - 1u + ((m >> d) & 1u)) >> d;
  let small = bitcast<u32>(f32(q) * 5.9604644775390625e-8);
  let r = select(small, normal, a >= 0x38800000u);
  let rounded = bitcast<f32>((bits & 0x80000000u) | select(r, 0x7f800000u | td_z, a >= 0x477ff000u));
  return select(rounded, x, a >= 0x7f800000u);  // NaN/Inf as they are
}
fn td_round_f16x4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(td_round_f16(v.x), td_round_f16(v.y), td_round_f16(v.z), td_round_f16(v.w));
}
fn td_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
// |x| < c by the bits (cbits = the bits of c > 0): false for NaN, whatever a compiler assumes about float compares
fn td_abslt(x: f32, cbits: u32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) < cbits; }
fn td_isinf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
fn td_finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }
fn td_iszero(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0u; }
// x < 0 / x > 0 by the bits: never true for NaN or +-0, whatever a compiler assumes about float compares
fn td_ltz(x: f32) -> bool { return bitcast<u32>(x) - 0x80000001u < 0x7f800000u; }
fn td_gtz(x: f32) -> bool { return bitcast<u32>(x) - 1u < 0x7f800000u; }
// an i32 that orders floats as IEEE does (-0 == +0); compares of keys are integer compares, so NaN is tested apart
fn td_key(x: f32) -> i32 { let k = bitcast<i32>(x); let m = k & 0x7fffffff; return select(m, -m, k < 0); }
fn td_eq(a: f32, b: f32) -> bool { return td_key(a) == td_key(b) && !td_isnan(a); }
fn td_lt(a: f32, b: f32) -> bool { return td_key(a) < td_key(b) && !td_isnan(a) && !td_isnan(b); }
fn td_le(a: f32, b: f32) -> bool { return td_key(a) <= td_key(b) && !td_isnan(a) && !td_isnan(b); }
// NaN-propagating max/min for reductions and pools (ties of -0 and 0 as the hardware's max gives them)
// relu6 = torch's hardtanh(x, 0, 6) by the bits: NaN and -0 kept; 6 for x > 6 (0x40c00000 is 6.0, up to +Inf)
fn td_relu6(x: f32) -> f32 { return select(select(x, 6.0, bitcast<u32>(x) - 0x40c00001u < 0x3ec00000u), 0.0, td_ltz(x)); }
fn td_max(a: f32, b: f32) -> f32 { return select(max(a, b), td_nan(), td_isnan(a) || td_isnan(b)); }
fn td_min(a: f32, b: f32) -> f32 { return select(min(a, b), td_nan(), td_isnan(a) || td_isnan(b)); }
// torch's maximum/minimum (vectorized CPU): NaN if either is NaN, else b unless a is strictly larger (smaller):
// maximum(-0, 0) is 0, maximum(0, -0) is -0; clamp(x, lo, hi) is td_minimum(hi, td_maximum(lo, x)) (ties keep x)
fn td_maximum(a: f32, b: f32) -> f32 { return select(select(b, a, td_key(a) > td_key(b)), td_nan(), td_isnan(a) || td_isnan(b)); }
fn td_minimum(a: f32, b: f32) -> f32 { return select(select(b, a, td_key(a) < td_key(b)), td_nan(), td_isnan(a) || td_isnan(b)); }
// a value with the sign of a times the sign of b, and the magnitude bits m (x*0, x/0, x/inf with literal operands)
fn td_signed(a: f32, b: u32, m: u32) -> f32 { return bitcast<f32>(((bitcast<u32>(a) ^ b) & 0x80000000u) | m); }
fn td_tanh(x: f32) -> f32 {
  if (td_isnan(x)) { return x; }
  if (td_abslt(x, 0x3d800000u)) { let x2 = x * x; return x * (1.0 - x2 * (0.33333334 - x2 * 0.13333334)); }  // tiny x and -0
  let c = clamp(x, -15.0, 15.0); let e = exp(2.0 * c); return (e - 1.0) / (e + 1.0);
}
fn td_sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
// log1p: a series near 0 (log(1 + x) loses digits there, and compilers reassociate the (u - 1) correction away)
fn td_log1p(x: f32) -> f32 {
  if (td_abslt(x, 0x3e000000u)) {  // |x| < 0.125
    return x * (1.0 - x * (0.5 - x * (0.33333334 - x * (0.25 - x * (0.2 - x * (0.16666667 - x * (0.14285715
           - x * (0.125 - x * 0.11111111))))))));
  }
  return log(1.0 + x);
}
// expm1: its series below |x| < 0.125 (exp(x) - 1 keeps only ~3 digits at 1e-4)
fn td_expm1(x: f32) -> f32 {
  if (td_abslt(x, 0x3e000000u)) {
    return x * (1.0 + x * (0.5 + x * (0.16666667 + x * (0.041666668 + x * (0.008333334 + x * (0.0013888889
           + x * 0.0001984127))))));
  }
  return exp(x) - 1.0;
}
// erfc(z) for z >= 0: Chebyshev-fitted rational form (Numerical Recipes erfcc), relative error < 1.2e-7
fn td_erfc_pos(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  return t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
          + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
}
// erf(x) for |x| < 0.5 by its series (there more accurate than 1 - erfc)
fn td_erf_series(x: f32) -> f32 {
  let z2 = x * x;
  return x * 1.1283791670955126 * (1.0 - z2 / 3.0 + z2 * z2 / 10.0 - z2 * z2 * z2 / 42.0 + z2 * z2 * z2 * z2 / 216.0
         - z2 * z2 * z2 * z2 * z2 / 1320.0);
}
// gelu from one erfc: for x < -0.7 the tail 1 + erf(x) is erfc(|x|) itself (1 - erfc would cancel to a few digits);
// multiplied in torch's order, x * (1 + erf) * 0.5 (so gelu(3e38) overflows to inf). gelu(+inf) is +inf, as in
// torch's scalar, AVX2 and CUDA kernels (its AVX-512 one gives NaN: torch's answer depends on the host there)
fn td_gelu(x: f32) -> f32 {
  let z = abs(x) * 0.7071067811865476;
  if (td_abslt(z, 0x3f000000u)) { return x * (1.0 + td_erf_series(x * 0.7071067811865476)) * 0.5; }
  // torch forms 1 + erf(x / sqrt 2) in f32, a multiple of 2^-24 below 0.5: the same steps here (0 from about x < -5.6)
  let r = td_erfc_pos(z);
  return td_opaque(x * select(2.0 - r, round(r * 16777216.0) * 5.9604644775390625e-8, td_ltz(x))) * 0.5;
}
fn td_erf(x: f32) -> f32 {
  let z = abs(x);
  if (td_abslt(z, 0x3f000000u)) { return td_erf_series(x); }
  let e = 1.0 - td_erfc_pos(z);
  return select(e, -e, td_ltz(x));
}
fn td_softplus(x: f32, beta: f32, threshold: f32) -> f32 {
  let bx = beta * x;
  if (td_lt(threshold, bx)) { return x; }
  return td_log1p(exp(bx)) / beta;
}
// atan of t in [0, 1] (Cephes atanf: above tan(pi/8) reduced by (t - 1) / (t + 1) around pi/4; ~2 ulp)
fn td_atan01(t: f32) -> f32 {
  let big = bitcast<u32>(t) > 0x3ed413cdu;  // t > tan(pi/8) on the bits (t >= 0, not NaN): no float compare
  let u = select(t, (t - 1.0) / (t + 1.0), big);
  let z = u * u;
  return select(0.0, 0.7853982, big) + ((((0.0805374449538 * z - 0.138776856032) * z + 0.199777106478) * z
         - 0.333329491539) * z * u + u);
}
// atan2 with C's special values, and its own atan (WGSL's atan2 may be 4096 ulp off; lavapipe's is ~200 off):
// NaN in, NaN out; y = +-0 gives +-0 or +-pi by x's sign bit; y = +-inf +-pi/4, +-3pi/4 or +-pi/2;
// x = +-inf +-0 or +-pi; x = +-0 +-pi/2; else the octant's atan of min / max turned around
fn td_atan2(y: f32, x: f32) -> f32 {
  if (td_isnan(x) || td_isnan(y)) { return td_nan(); }
  let xneg = (bitcast<u32>(x) & 0x80000000u) != 0u;
  var r: f32;
  if (td_iszero(y)) { r = select(0.0, 3.1415927, xneg); }
  else if (td_isinf(y)) { r = select(select(1.5707964, 0.7853982, td_isinf(x)), 2.3561945, td_isinf(x) && xneg); }
  else if (td_isinf(x)) { r = select(0.0, 3.1415927, xneg); }
  else if (td_iszero(x)) { r = 1.5707964; }
  else {
    let ay = abs(y); let ax = abs(x);
    r = td_atan01(min(ay, ax) / max(ay, ax));
    r = select(r, 1.5707964 - r, bitcast<u32>(ay) > bitcast<u32>(ax));  // |y| > |x| on the bits
    r = select(r, 3.1415927 - r, xneg);
  }
  return bitcast<f32>(bitcast<u32>(r) | (bitcast<u32>(y) & 0x80000000u));
}
fn td_pow(a: f32, b: f32) -> f32 {
  // std::pow's special values (torch CPU's): x^0 = 1^y = 1 even for NaN, (-1)^inf = 1, signs of 0 and inf
  if (td_iszero(b) || bitcast<u32>(a) == 0x3f800000u) { return 1.0; }
  if (td_isnan(a) || td_isnan(b)) { return td_nan(); }
  if (bitcast<u32>(b) == 0x3f800000u) { return a; }
  let ax = abs(a);
  if (bitcast<u32>(ax) == 0x3f800000u && td_isinf(b)) { return 1.0; }
  var r = exp2(b * log2(ax));
  if (td_iszero(a)) { r = select(0.0, bitcast<f32>(0x7f800000u | td_z), td_ltz(b)); }  // log2(0) need not be -inf
  if ((bitcast<u32>(a) & 0x80000000u) == 0u) { return r; }
  if (floor(b) != b && !td_isinf(b)) { return select(r, td_nan(), td_finite(a) && !td_iszero(a)); }
  if (abs(b) < 16777216.0 && (i32(b) & 1) == 1) { return -r; }
  return r;
}
// a / b; a divisor of 2^126 or more is scaled down first: a driver may divide as a * (1 / b), whose 1 / b is then
// subnormal and flushed to 0 (x / 2e38 would be 0, inf / 1e38 NaN); td_opaque keeps the scaling from being folded
fn td_div(a: f32, b: f32) -> f32 {
  let eb = bitcast<u32>(b) & 0x7f800000u;
  if (eb >= 0x7e800000u && eb < 0x7f800000u) { return td_opaque(a * 0.25) / td_opaque(b * 0.25); }
  return a / b;
}
// a / b for b = +-0 by the bits (a division by a literal zero may be folded to anything)
fn td_div0(a: f32, b: f32) -> f32 { return select(td_signed(a, bitcast<u32>(b), 0x7f800000u), td_nan(), td_isnan(a) || td_iszero(a)); }
// std::fmod, exactly: NaN for b = 0 or a = +-inf, a for b = +-inf, else |a| reduced by |b| * 2^k steps (each
// subtraction exact; at most ~280 of them), with a's sign (a - b*trunc(a/b) is wrong once a/b rounds: 1 % 0.1)
fn td_fmod(a: f32, b: f32) -> f32 {
  if (td_iszero(b) || !td_finite(a) || td_isnan(b)) { return td_nan(); }
  if (td_isinf(b)) { return a; }
  var r = abs(a);
  let y = abs(b);
  for (var i = 0; i < 300 && r >= y; i++) {
    let k = frexp(r).exp - frexp(y).exp;
    var t = ldexp(y, k);
    if (t > r) { t = ldexp(y, k - 1); }
    r = r - t;
  }
  return bitcast<f32>(bitcast<u32>(r) | (bitcast<u32>(a) & 0x80000000u));
}
// torch's remainder (Python's %): the sign of b
fn td_remainder(a: f32, b: f32) -> f32 {
  let m = td_fmod(a, b);
  return select(m, m + b, !td_iszero(m) && td_ltz(b) != td_ltz(m));
}
// torch's div_floor_floating
fn td_floordiv(a: f32, b: f32) -> f32 {
  if (td_isnan(a) || td_isnan(b)) { return td_nan(); }
  if (td_iszero(b)) { return td_div0(a, b); }
  let m = td_fmod(a, b);
  var d = td_div(a - m, b);
  if (!td_iszero(m) && td_ltz(b) != td_ltz(m)) { d = d - 1.0; }
  if (td_iszero(d)) { return td_signed(a, bitcast<u32>(b), 0u); }  // copysign(0, a / b)
  var f = floor(d);
  if (td_lt(0.5, d - f)) { f = f + 1.0; }
  return f;
}
// integer forms: a zero divisor is reported by the caller (checks.ZERO_DIVISION); b = 0 gives 0 here.
// The remainder is a - b * (a / b), never WGSL's `%` on i32: some drivers give it the divisor's sign
// (fmod(-1, 2) = 1 on NVIDIA). i32::MIN / -1 is i32::MIN in WGSL, so its remainder wraps to the right 0.
fn td_ifmod(a: i32, b: i32) -> i32 { if (b == 0) { return 0; } return a - b * (a / b); }
fn td_ifloordiv(a: i32, b: i32) -> i32 {
  if (b == 0) { return 0; }
  let q = a / b;
  return select(q, q - 1, (a - b * q != 0) && ((a < 0) != (b < 0)));
}
fn td_iremainder(a: i32, b: i32) -> i32 {
  let r = td_ifmod(a, b);
  return select(r, r + b, r != 0 && ((r < 0) != (b < 0)));
}
fn td_itrunc_div(a: i32, b: i32) -> i32 { if (b == 0) { return 0; } return a / b; }
fn td_ipow(a: i32, b: i32) -> i32 {
  if (b < 0) { return select(select(0, 1, a == 1), select(1, -1, (b & 1) == 1), a == -1); }  // as torch's integer pow
  var r = 1; var base = a; var e = b;
  loop { if (e <= 0) { break; } if ((e & 1) == 1) { r = r * base; } base = base * base; e = e >> 1u; }
  return r;
}
"""
# sin/cos with an exact argument reduction (td_sin, td_cos): WGSL's sin/cos have no accuracy bound outside [-pi, pi]
from .trig import TRIG_PRELUDE  # noqa: E402
PRELUDE += TRIG_PRELUDE

# +0.0 that no compiler can fold away: a sum starting at it gives torch's +0.0 where every term is -0.0 (a sum
# starting at the literal 0.0 had 0.0 + x folded to x, so its first term's sign survived: -0.0)
SUM_START = "bitcast<f32>(td_z)"

# op -> {compute type: template}; "*" matches every type.
SNIPPETS: dict[str, dict[str, str]] = {
    "neg": {"*": "(-{0})"},
    "abs": {"*": "abs({0})"},
    # sign(NaN) is 0 in torch; sign(-0) is +0 (by the bits: compilers turn select(0.0, -1.0, c) into -0.0)
    "sign": {"f32": "bitcast<f32>(select(0u, (bitcast<u32>({0}) & 0x80000000u) | 0x3f800000u, td_ltz({0}) || td_gtz({0})))", "i32": "sign({0})", "bool": "{0}"},
    "relu": {"f32": "select({0}, 0.0, td_ltz({0}))", "i32": "max({0}, 0)"},  # keeps NaN and -0, as torch
    "exp": {"f32": "exp({0})"},
    "log": {"f32": "log({0})"},
    "sqrt": {"f32": "sqrt({0})"},
    "rsqrt": {"f32": "inverseSqrt({0})"},
    "reciprocal": {"f32": "(1.0 / {0})"},
    "sin": {"f32": "td_sin({0})"},
    "cos": {"f32": "td_cos({0})"},
    "tanh": {"f32": "td_tanh({0})"},
    "sigmoid": {"f32": "td_sigmoid({0})"},
    "relu6": {"f32": "td_relu6({0})", "i32": "clamp({0}, 0, 6)"},
    "leaky_relu": {"f32": lambda o, p: f"select({mul_literal(o[0], p[0])}, {o[0]}, td_gtz({o[0]}))"},
    "elu": {"f32": lambda o, p: f"select({mul_literal(f'td_expm1({o[0]})', p[0])}, {o[0]}, td_gtz({o[0]}))"},
    "gelu": {"f32": "td_gelu({0})"},
    # 0.5 * x * (1 + tanh(u)) = x * sigmoid(2u): no cancellation for negative x
    "gelu_tanh": {"f32": "({0} / (1.0 + exp(-1.5957691216057308 * ({0} + 0.044715 * {0} * {0} * {0}))))"},
    "silu": {"f32": "({0} * td_sigmoid({0}))"},
    "hardswish": {"f32": "({0} * td_relu6({0} + 3.0) / 6.0)"},
    "hardsigmoid": {"f32": "(td_relu6({0} + 3.0) / 6.0)"},
    "softplus": {"f32": "td_softplus({0}, {a0}, {a1})"},
    "mish": {"f32": "({0} * td_tanh(td_softplus({0}, 1.0, 20.0)))"},
    "erf": {"f32": "td_erf({0})"},
    "floor": {"f32": "floor({0})"},
    "ceil": {"f32": "ceil({0})"},
    "round": {"f32": "round({0})"},
    "trunc": {"f32": "trunc({0})"},
    "log1p": {"f32": "td_log1p({0})"},
    "expm1": {"f32": "td_expm1({0})"},
    "signbit": {"f32": "((bitcast<u32>({0}) & 0x80000000u) != 0u)", "i32": "({0} < 0)", "bool": "false"},  # -0, -NaN
    "atan2": {"f32": "td_atan2({0}, {1})"},
    "logical_not": {"bool": "(!{0})"},
    "add": {"bool": "({0} || {1})", "*": "({0} + {1})"},  # bool + bool is logical or, as in torch
    "sub": {"*": "({0} - {1})"},
    "mul": {"bool": "({0} && {1})", "*": "({0} * {1})"},
    "div": {"f32": "td_div({0}, {1})"},
    "maximum": {"f32": "td_maximum({0}, {1})", "i32": "max({0}, {1})", "bool": "({0} || {1})"},
    "minimum": {"f32": "td_minimum({0}, {1})", "i32": "min({0}, {1})", "bool": "({0} && {1})"},
    "pow": {"f32": "td_pow({0}, {1})", "i32": "td_ipow({0}, {1})"},
    "floor_divide": {"f32": "td_floordiv({0}, {1})", "i32": "td_ifloordiv({0}, {1})"},
    "trunc_divide": {"i32": "td_itrunc_div({0}, {1})"},  # f32: trunc of div's form (expr.py)
    "remainder": {"f32": "td_remainder({0}, {1})", "i32": "td_iremainder({0}, {1})"},
    "fmod": {"f32": "td_fmod({0}, {1})", "i32": "td_ifmod({0}, {1})"},
    # float compares through td_key (integer compares) with NaN tested apart: a compiler that assumes no NaN/Inf
    # may fold x != x to false or x < inf to true; bools compare as 0/1 (WGSL has no < on bool)
    "eq": {"f32": "td_eq({0}, {1})", "*": "({0} == {1})"},
    "ne": {"f32": "(!td_eq({0}, {1}))", "*": "({0} != {1})"},
    "lt": {"f32": "td_lt({0}, {1})", "bool": "(!{0} && {1})", "*": "({0} < {1})"},
    "le": {"f32": "td_le({0}, {1})", "bool": "(!{0} || {1})", "*": "({0} <= {1})"},
    "gt": {"f32": "td_lt({1}, {0})", "bool": "({0} && !{1})", "*": "({0} > {1})"},
    "ge": {"f32": "td_le({1}, {0})", "bool": "({0} || !{1})", "*": "({0} >= {1})"},
    "logical_and": {"bool": "({0} && {1})"},
    "logical_or": {"bool": "({0} || {1})"},
    "bitwise_not": {"i32": "(~{0})", "bool": "(!{0})"},
    "bitwise_and": {"i32": "({0} & {1})", "bool": "({0} && {1})"},
    "bitwise_or": {"i32": "({0} | {1})", "bool": "({0} || {1})"},
    "bitwise_xor": {"i32": "({0} ^ {1})", "bool": "({0} != {1})"},
    # by the bits (compilers may assume no NaN/Inf); integers and bools are never NaN or Inf
    "isnan": {"f32": "td_isnan({0})", "*": "false"},
    "isinf": {"f32": "td_isinf({0})", "*": "false"},
    "isfinite": {"f32": "td_finite({0})", "*": "true"},
    "where": {"*": "select({2}, {1}, {0})"},
}
# tan, asin, ..., erfinv: functions of their own, in a kernel only where used (kernels/prelude.py)
from .math_functions import SNIPPETS as _MATH_SNIPPETS  # noqa: E402
SNIPPETS.update(_MATH_SNIPPETS)


def literal(value, wgsl_type: str) -> str:
    """A WGSL literal of `value` in a compute type. Integers outside i32 wrap (two's complement), as torch's int32
    ops wrap a Python int; callers that must refuse them (full, masked_fill) check before."""
    if wgsl_type == "bool":
        return "true" if value else "false"
    if wgsl_type == "i32":
        v = (int(value) + 2**31) % 2**32 - 2**31
        return "i32(-2147483647 - 1)" if v == -2**31 else f"i32({v})"  # -2147483648 is not a WGSL literal
    v = float(value)
    if math.isnan(v):
        return "td_nan()"
    if math.isinf(v):
        return "bitcast<f32>(0x7f800000u | td_z)" if v > 0 else "bitcast<f32>(0xff800000u | td_z)"  # see td_nan
    if v == 0.0:
        # -0.0 by its bits, as NaN and Inf: a driver that assumes no signed zeros (Dawn's shaders on NVIDIA) may
        # fold a -0.0 constant into 0.0
        return "bitcast<f32>(0x80000000u | td_z)" if math.copysign(1.0, v) < 0 else "0.0"
    import numpy as np
    f = np.float32(v) if abs(v) < 3.4028235677973366e38 else np.float32(math.copysign(math.inf, v))
    if np.isinf(f):  # a double beyond float32 rounds to inf, as torch's float32 ops round it
        return literal(float(f), wgsl_type)
    # the shortest repr that round-trips float32, as a WGSL f32 literal
    return f"{repr(float(f))}f"


def _f32(c) -> float:
    """c as the f32 the kernel computes with (1e-50 is 0.0, 1e39 is inf): the special forms below key on that."""
    import numpy as np
    with np.errstate(over="ignore", under="ignore"):
        return float(np.float32(float(c)))


def _sign_bit(c: float) -> str:
    return "0x80000000u" if math.copysign(1.0, c) < 0 else "0u"


# Elementwise ops with a literal operand: a compiler may fold x * 0.0 to 0.0, x + 0.0 to x, 0.0 - x to -x or a
# division by a literal zero (or reject it), which is wrong for NaN, Inf and -0. Zero, Inf and NaN operands are
# known when the kernel is written: their IEEE results are written out by the bits, the rest stay plain.
def mul_literal(x: str, c: float) -> str:
    c = _f32(c)
    if math.isnan(c):
        return "td_nan()"
    if c == 0.0:  # NaN for NaN/Inf, else a zero with the product's sign
        return f"select(td_signed({x}, {_sign_bit(c)}, 0u), td_nan(), !td_finite({x}))"
    if math.isinf(c):  # NaN for NaN/0, else an Inf with the product's sign
        return f"select(td_signed({x}, {_sign_bit(c)}, 0x7f800000u), td_nan(), td_isnan({x}) || td_iszero({x}))"
    return f"({x} * {literal(c, 'f32')})"


def add_literal(x: str, c: float) -> str:
    c = _f32(c)
    if math.isnan(c):
        return "td_nan()"
    if c == 0.0:  # x + 0.0 is x except -0 + 0 = +0; x + -0.0 is x
        return x if math.copysign(1.0, c) < 0 else f"select({x}, 0.0, bitcast<u32>({x}) == 0x80000000u)"
    if math.isinf(c):  # Inf, or NaN for NaN and the opposite Inf
        opp = "0xff800000u" if c > 0 else "0x7f800000u"
        return f"select({literal(c, 'f32')}, td_nan(), td_isnan({x}) || bitcast<u32>({x}) == {opp})"
    return f"({x} + {literal(c, 'f32')})"


def div_literal(x: str, c: float) -> str:
    """x / c for a literal c."""
    c = _f32(c)
    if math.isnan(c):
        return "td_nan()"
    if c == 0.0:  # NaN for NaN/0, else an Inf with the quotient's sign
        return f"select(td_signed({x}, {_sign_bit(c)}, 0x7f800000u), td_nan(), td_isnan({x}) || td_iszero({x}))"
    if math.isinf(c):  # NaN for NaN/Inf, else a zero with the quotient's sign
        return f"select(td_signed({x}, {_sign_bit(c)}, 0u), td_nan(), !td_finite({x}))"
    if abs(c) >= 2.0 ** 126:  # see td_div
        return f"td_div({x}, {literal(c, 'f32')})"
    return f"({x} / {literal(c, 'f32')})"


def literal_div(c: float, x: str) -> str:
    """c / x for a literal c."""
    c = _f32(c)
    if math.isnan(c):
        return "td_nan()"
    if c == 0.0:  # NaN for NaN/0, else a zero with the quotient's sign
        return f"select(td_signed({x}, {_sign_bit(c)}, 0u), td_nan(), td_isnan({x}) || td_iszero({x}))"
    if math.isinf(c):  # NaN for NaN/Inf, else an Inf with the quotient's sign
        return f"select(td_signed({x}, {_sign_bit(c)}, 0x7f800000u), td_nan(), !td_finite({x}))"
    return f"({literal(c, 'f32')} / {x})"


def with_literal(op: str, operands: list[str], consts: list) -> str | None:
    """The f32 form of a binary op whose operand(s) are literals (consts[i] is the value or None), or None."""
    a, b = consts
    x, y = operands
    if (a is None) == (b is None):
        return None
    if op == "mul":
        return mul_literal(y, a) if a is not None else mul_literal(x, b)
    if op == "add":
        return add_literal(y, a) if a is not None else add_literal(x, b)
    if op == "sub":  # c - y = c + (-y); x - c = x + (-c), exactly
        return add_literal(f"(-{y})", a) if a is not None else add_literal(x, -float(b))
    if op == "div":
        return literal_div(a, y) if a is not None else div_literal(x, b)
    return None


def same_operand(op: str, x: str) -> str | None:
    """The f32 form of x - x and x / x (one WGSL value twice): compilers fold them to 0 and 1, torch gives NaN for
    NaN/Inf (and 0/0)."""
    if op == "sub":
        return f"select(0.0, td_nan(), !td_finite({x}))"
    if op == "div":
        return f"select(1.0, td_nan(), !td_finite({x}) || td_iszero({x}))"
    return None


def convert(expr: str, src: str, dst: str) -> str:
    """Convert a compute value between f32 / i32 / bool."""
    if src == dst:
        return expr
    if dst == "bool":
        if src == "f32":  # nan is nonzero (true), as in torch; by the bits: -0 is false
            return f"((bitcast<u32>({expr}) & 0x7fffffffu) != 0u)"
        return f"({expr} != 0)"
    if dst == "i32" and src == "f32":
        # out of range and NaN give INT_MIN, as torch CPU (x86 cvttss2si); WGSL's i32() would saturate
        return f"select(i32({expr}), i32(-2147483647 - 1), (bitcast<u32>({expr}) & 0x7fffffffu) >= 0x4f000000u)"
    if dst == "f32" and src == "bool":
        return f"select(0.0, 1.0, {expr})"
    if dst == "i32" and src == "bool":
        return f"select(0, 1, {expr})"
    return f"{dst}({expr})"


def apply(op: str, compute_type: str, operands: list[str], params: tuple) -> str:
    table = SNIPPETS[op]
    tmpl = table.get(compute_type) or table.get("*")
    if tmpl is None:
        raise NotImplementedError(f"{op} has no {compute_type} form")
    if callable(tmpl):
        return tmpl(operands, params)
    lits = {}
    for i, p in enumerate(params):
        lits[f"a{i}"] = literal(p, "f32") if isinstance(p, (int, float)) and not isinstance(p, bool) else str(p)
    return tmpl.format(*operands, **lits)
