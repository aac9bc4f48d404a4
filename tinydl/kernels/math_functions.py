"""torch's float functions beyond exp/log/sin/cos as WGSL (tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh,
log2, log10, exp2, erfc, erfinv), each within a few ulps of torch CPU over the whole float32 range.

WGSL's own asin/acos/atan/sinh/cosh/tan/log2/exp2 have loose accuracy bounds and no defined edge values (and
lavapipe's exp is ~40 ulps off near 88), so these are built from +, -, *, /, sqrt and bit operations only:
  - exp(a + b) = (1 + q) 2^k (td_exp_pair): k ln 2 taken off in two parts (the first exact), a Taylor series for the
    rest; the result scaled by td_scale, which reaches inf and the subnormals as IEEE's p * 2^k does (cosh(89.4)
    finite, cosh(89.5) inf);
  - log(u + c) = e ln 2 + hi + lo (td_log_parts): log(m) = 2 atanh(f / (2 + f)) with f = m - 1 exact, hi cut to 12
    bits so that hi times a 12-bit constant is exact (log2(2^k) = k, log10(1000) = 3), c what 1 + x lost (log1p);
  - tan from trig.py's exact argument reduction (tan(1e6) right); atan around the anchors 0, 1/2, 1, 3/2, inf;
  - erfc = exp(-x^2) times a fit of erfc(x) exp(x^2), x^2 split so that exp(-x^2) keeps its digits; erfinv: a first
    guess and two Newton steps on erf (from erfc above 0.84, so that 1 - y stays exact near 1).
The polynomials of asin, atan, erf, erfc and the erfinv guesses are least-squares fits (Lawson-weighted towards
minimax, mpmath values) with float32 coefficients; the others are Taylor series. The functions reach a kernel only
where an op names them (kernels/prelude.py gives each kernel the functions it names). NaN and infinity are decided on
the bits, as in the PRELUDE; the float compares left are on values known to be finite."""
from __future__ import annotations

import math
from string import Template

import numpy as np

from .trig import _lit


def _split(v: float, bits: int = 24) -> tuple[str, str]:
    """v as hi + lo: hi with `bits` significant bits (a product by a small integer or a short float stays exact),
    lo the float32 nearest the rest (the float64 v is good to 2^-53, well past hi + lo's 2^-48)."""
    e = math.floor(math.log2(abs(v)))
    hi = round(v * 2.0 ** (bits - 1 - e)) * 2.0 ** (e - bits + 1)
    assert float(np.float32(hi)) == hi
    return _lit(hi), _lit(float(np.float32(v - hi)))


_C = {}
_C["LN2_HI"], _C["LN2_LO"] = _split(math.log(2), 16)          # e ln2_hi exact for |e| < 256
_C["IL2_HI"], _C["IL2_LO"] = _split(1 / math.log(2), 12)      # hi * il2_hi exact (hi has 12 bits)
_C["IL10_HI"], _C["IL10_LO"] = _split(1 / math.log(10), 12)
_C["L10_2_HI"], _C["L10_2_LO"] = _split(math.log10(2), 16)    # e log10(2)_hi exact
_C["IL2"], _C["IL10"] = _lit(1 / math.log(2)), _lit(1 / math.log(10))
_C["PIO2_HI"], _C["PIO2_LO"] = _split(math.pi / 2)
_C["PI_HI"], _C["PI_LO"] = _split(math.pi)
_C["AT05_HI"], _C["AT05_LO"] = _split(math.atan(0.5))
_C["AT1_HI"], _C["AT1_LO"] = _split(math.atan(1.0))
_C["AT15_HI"], _C["AT15_LO"] = _split(math.atan(1.5))


def _poly(var: str, coefficients) -> str:
    """c0 + var * (c1 + var * (...)) with float32 coefficients."""
    terms = [repr(float(np.float32(c))) for c in coefficients]
    out = terms[-1]
    for c in reversed(terms[:-1]):
        out = f"{c} + {var} * ({out})"
    return f"({out})"


_FACT = [1 / math.factorial(n) for n in range(16)]
# asin(x) = x + x z P(z), z = x^2 <= 1/4: fitted to 2e-8 (relative to P; P is 5% of asin)
_ASIN_P = [0.16666666, 0.07500237, 0.04455027, 0.031685088, 0.014342952, 0.038366523]
# atan(u) = u - u z Q(z), z = u^2 <= (7/16)^2: 3e-9
_ATAN_Q = [0.33333334, -0.20000225, 0.14293918, -0.11207703, 0.09406118, -0.06619867]
# erf(x) = x + x P(z), z = x^2 < 0.84375^2: 1e-9 absolute
_ERF_P = [0.12837917, -0.3761263, 0.11283616, -0.026854526, 0.005187509, -0.00079696754, 7.5403696e-05]
# erfc(x) exp(x^2) in x - 1 on [1/2, 2] (exact there): 3e-9 relative; x erfc(x) exp(x^2) in 1/x on [2, 10.5]: 4e-9
_ERFC_A = [0.42758358, -0.27321202, 0.15437163, -0.07922722, 0.037571214, -0.016656952, 0.006972435, -0.0027967817,
           0.0010728289, -0.0003446291, 6.158467e-05]
_ERFC_B = [0.5641948, -0.00021522016, -0.27835622, -0.035583656, 0.6237102, -0.6566794, -0.062574156, 0.57564986,
           -0.3171905]
# erfinv(a) / a against w = -log((1 - a)(1 + a)) (M. Giles' form): in w - 2.5 for w < 5, in sqrt(w) - 3 above; 2e-5
_ERFINV_C = [1.5013878, 0.24667689, -0.004110075, -0.0012828776, 0.00018808039, 1.6022683e-06]
_ERFINV_T = [2.8329926, 1.0017745, 0.009113588, -0.008343392, 0.0069346796, -0.00266067]
_C["ASIN_P"] = _poly("z", _ASIN_P)
_C["ATAN_Q"] = _poly("z", _ATAN_Q)
_C["ERF_P"] = _poly("z", _ERF_P)
_C["ERFC_A"] = _poly("s", _ERFC_A)
_C["ERFC_B"] = _poly("t", _ERFC_B)
_C["ERFINV_C"] = _poly("v", _ERFINV_C)
_C["ERFINV_T"] = _poly("v", _ERFINV_T)
_C["EXP_R"] = _poly("r", _FACT[2:8])                                   # (e^r - 1 - r) / r^2 to r^7
_C["EXP2_F"] = _poly("f", [math.log(2) ** n * _FACT[n] for n in range(1, 8)])  # (2^f - 1) / f to f^7
_C["SINH_Z"] = _poly("z", _FACT[3:15:2])                               # (sinh x - x) / x^3 to x^13
# a logarithm's edges (below 0 and NaN: NaN; +-0: -inf; +inf: itself), then x's TdLog parts in `l`
_C["LOG_EDGES"] = """  let u = bitcast<u32>(x);
  if (u > 0x80000000u || td_isnan(x)) { return td_nan(); }
  if ((u & 0x7fffffffu) == 0u) { return bitcast<f32>(0xff800000u | td_z); }
  if (u == 0x7f800000u) { return x; }
  let l = td_log_parts(x, 0.0);"""


# name -> WGSL; `$NAME` are the constants above
_FUNCTIONS: dict[str, str] = {}


def _fn(name: str, text: str) -> None:
    _FUNCTIONS[name] = Template(text).substitute(_C).strip("\n")


_fn("td_scale", """
// 2^k for k in [-126, 127], from the bits
fn td_pow2i(k: i32) -> f32 { return bitcast<f32>(u32(k + 127) << 23u); }
// p * 2^k for p in [1/4, 2): beyond 2^+-100 in two steps, the first exact (td_opaque keeps a compiler from merging
// them), so the result overflows to inf and rounds once into the subnormals, as IEEE's p * 2^k would
fn td_scale(p: f32, k: i32) -> f32 {
  let kk = clamp(k, -200, 200);
  if (kk > 127) { return td_opaque(p * td_pow2i(kk - 100)) * td_pow2i(100); }
  if (kk < -100) { return td_opaque(p * td_pow2i(kk + 100)) * td_pow2i(-100); }
  return p * td_pow2i(kk);
}
""")
_fn("td_exp_pair", """
struct TdExp { k: i32, q: f32 }
// exp(a + b) = (1 + q) 2^k, q in [-0.3, 0.42], for |a + b| < 200 and |b| < 1: r = a + b - k ln2 with a - k ln2_hi
// exact (ln2_hi has 16 bits, k at most 9 bits) and the rounding of the sum kept (TwoSum), then e^r - 1 = r + r^2 (1/2 +
// r/6 + ...) (|r| <= 0.35: to r^7, 2^-27); 1 + q is left to the caller (v (1 + q) = v + v q: one rounding less)
fn td_exp_pair(a: f32, b: f32) -> TdExp {
  let k = round((a + b) * 1.44269504);
  let rh = td_opaque(a - k * $LN2_HI);
  let rl = b - k * $LN2_LO;
  let r = td_opaque(rh + rl);
  let d = td_opaque(r - rh);
  let err = (rh - td_opaque(r - d)) + (rl - d);
  return TdExp(i32(k), r + (err + r * r * $EXP_R));
}
""")
_fn("td_log_parts", """
struct TdLog { e: f32, hi: f32, lo: f32 }
// log(u + c) = e ln2 + hi + lo for u > 0 finite and |c| <= ulp(u) (c: what 1 + x lost to rounding, for log1p).
// u = 2^e m, m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), s = f / (2 + f): log m = 2 atanh(s) = f - f^2/2 +
// s (f^2/2 + R), R = 2 s^2/3 + 2 s^4/5 + ... (|s| < 0.172: to s^10, 2^-33). hi is f - f^2/2 cut to 12 bits, so
// f - hi is exact and hi times a 12-bit constant too
fn td_log_parts(u: f32, c: f32) -> TdLog {
  var b = bitcast<u32>(u);
  var e = -127;
  if (b < 0x00800000u) { b = bitcast<u32>(td_opaque(u * 33554432.0)); e = -152; }  // subnormal: times 2^25
  let big = (b & 0x7fffffu) > 0x3504f3u;  // m > sqrt(2): m / 2
  e = e + i32(b >> 23u) + select(0, 1, big);
  let m = bitcast<f32>((b & 0x7fffffu) | select(0x3f800000u, 0x3f000000u, big));
  let f = td_opaque(m - 1.0);
  let s = f / (2.0 + f);
  let z = s * s;
  let hf = 0.5 * f * f;
  let hi = bitcast<f32>(bitcast<u32>(td_opaque(f - hf)) & 0xfffff000u);
  let r = z * (0.6666667 + z * (0.4 + z * (0.2857143 + z * (0.22222222 + z * 0.18181819))));
  return TdLog(f32(e), hi, (td_opaque(f - hi) - hf) + s * (hf + r) + c / u);
}
// the value of a TdLog (e ln2_hi exact, added last)
fn td_log_value(l: TdLog) -> f32 { return ((l.e * $LN2_LO + l.lo) + l.hi) + l.e * $LN2_HI; }
// log1p's parts for x > -1: u = 1 + x rounded and what it lost (Fast2Sum, the larger operand first)
fn td_log1p_parts(x: f32) -> TdLog {
  let u = td_opaque(1.0 + x);
  let c = select(x - td_opaque(u - 1.0), 1.0 - td_opaque(u - x), td_key(x) > 0x3f800000);
  return td_log_parts(u, c);
}
""")
_fn("td_tan", """
// tan = sin / cos of trig.py's reduced argument r (q odd: -cos / sin); x below 2^-12 is its own tan (to 2^-25)
fn td_tan(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let ax = u & 0x7fffffffu;
  if (ax >= 0x7f800000u) { return td_nan(); }
  if (ax < 0x39800000u) { return x; }
  let red = td_reduce(ax);
  let s = td_sincos_poly(red.hi, red.lo, false);
  let c = td_sincos_poly(red.hi, red.lo, true);
  let t = select(s / c, -c / s, (red.q & 1u) == 1u);
  return bitcast<f32>(bitcast<u32>(t) ^ (u & 0x80000000u));
}
""")
_fn("td_atan_pos", """
// atan t for t >= 0 finite: around the anchor c in {0, 1/2, 1, 3/2, inf} next to t, atan t = atan c + atan u with
// u = (t - c) / (1 + c t) (-1/t for inf; t - c exact), |u| <= 7/16, atan u = u - u z Q(z), z = u^2
fn td_atan_pos(t: f32) -> f32 {
  let b = bitcast<u32>(t);
  var u = t;
  var hi = 0.0;
  var lo = 0.0;
  if (b >= 0x401c0000u) { u = -1.0 / t; hi = $PIO2_HI; lo = $PIO2_LO; }  // t >= 39/16
  else if (b >= 0x3f980000u) { u = (t - 1.5) / (1.0 + 1.5 * t); hi = $AT15_HI; lo = $AT15_LO; }  // >= 19/16
  else if (b >= 0x3f300000u) { u = (t - 1.0) / (t + 1.0); hi = $AT1_HI; lo = $AT1_LO; }  // >= 11/16
  else if (b >= 0x3ee00000u) { u = (2.0 * t - 1.0) / (2.0 + t); hi = $AT05_HI; lo = $AT05_LO; }  // >= 7/16
  let z = u * u;
  return hi + (lo + (u - u * z * $ATAN_Q));
}
""")
_fn("td_atan", """
fn td_atan(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let ax = u & 0x7fffffffu;
  if (ax > 0x7f800000u || ax < 0x39800000u) { return x; }  // NaN; |x| < 2^-12: x (to 2^-25), -0 kept
  var r = bitcast<f32>(0x3fc90fdbu);  // +-inf: +-pi/2
  if (ax < 0x7f800000u) { r = td_atan_pos(bitcast<f32>(ax)); }
  return bitcast<f32>(bitcast<u32>(r) | (u & 0x80000000u));
}
""")
_fn("td_asin_p", """
// asin x - x = x z P(z), z = x^2 <= 1/4: this is z P(z)
fn td_asin_p(z: f32) -> f32 { return z * $ASIN_P; }
// asin(sqrt(z)) - sh for z in (0, 1/4]: sqrt(z) = sh + sl with sh its first 12 bits (sh^2 exact, so sl is right
// whatever sqrt's rounding), and pi/2 - 2 sh, pi - 2 sh exact; 2 (sh + this) is acos of 1 - 2z
fn td_asin_sqrt_rest(z: f32) -> vec2<f32> {
  let s = sqrt(z);
  let sh = bitcast<f32>(bitcast<u32>(s) & 0xfffff000u);
  let sl = (z - sh * sh) / (s + sh);
  return vec2<f32>(sh, sl + s * td_asin_p(z));
}
""")
_fn("td_asin", """
// asin: x + x z P(z) below 1/2; above, pi/2 - 2 asin(sqrt((1 - |x|) / 2)) (1 - |x| exact); odd
fn td_asin(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let ax = u & 0x7fffffffu;
  if (ax > 0x3f800000u) { return td_nan(); }  // |x| > 1, NaN
  if (ax < 0x39800000u) { return x; }  // asin x = x to 2^-25, -0 kept
  if (ax < 0x3f000000u) { return x + x * td_asin_p(x * x); }
  var r = bitcast<f32>(0x3fc90fdbu);  // asin(+-1) = +-pi/2
  if (ax < 0x3f800000u) {
    let h = td_asin_sqrt_rest((1.0 - bitcast<f32>(ax)) * 0.5);
    r = ($PIO2_HI - 2.0 * h.x) + ($PIO2_LO - 2.0 * h.y);
  }
  return bitcast<f32>(bitcast<u32>(r) | (u & 0x80000000u));
}
""")
_fn("td_acos", """
// acos: pi/2 - asin x below 1/2; above, 2 asin(sqrt((1 - x) / 2)), or pi - that of -x for x < -1/2
fn td_acos(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let ax = u & 0x7fffffffu;
  if (ax > 0x3f800000u) { return td_nan(); }
  if (ax < 0x3f000000u) { return $PIO2_HI - (x - ($PIO2_LO - x * td_asin_p(x * x))); }
  if (u == 0x3f800000u) { return 0.0; }
  if (u == 0xbf800000u) { return bitcast<f32>(0x40490fdbu); }  // pi
  let h = td_asin_sqrt_rest((1.0 - bitcast<f32>(ax)) * 0.5);
  if (u >= 0x80000000u) { return ($PI_HI - 2.0 * h.x) + ($PI_LO - 2.0 * h.y); }
  return 2.0 * (h.x + h.y);
}
""")
_fn("td_sinh", """
// sinh: its Taylor series below 1 (to x^13: 2^-32); above, e^|x|/2 - e^-|x|/2 from one td_exp_pair: p 2^(k-1) -
// (0.5 / p) 2^-k (|x| capped at 90, where e^|x|/2 is inf already); odd
fn td_sinh(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let ax = u & 0x7fffffffu;
  if (ax >= 0x7f800000u || ax < 0x39800000u) { return x; }  // NaN, +-inf; |x| < 2^-12: x (to 2^-25), -0 kept
  if (ax < 0x3f800000u) { let z = x * x; return x + x * z * $SINH_Z; }
  let a = bitcast<f32>(min(ax, 0x42b40000u));
  let e = td_exp_pair(a, 0.0);
  let p = 1.0 + e.q;
  let v = td_scale(p, e.k - 1) - td_scale(0.5 / p, -e.k);
  return bitcast<f32>(bitcast<u32>(v) | (u & 0x80000000u));
}
""")
_fn("td_cosh", """
// cosh = p 2^(k-1) + (0.5 / p) 2^-k: finite up to 89.41, as float32's cosh; near 0 the two terms' errors cancel
fn td_cosh(x: f32) -> f32 {
  let ax = bitcast<u32>(x) & 0x7fffffffu;
  if (ax > 0x7f800000u) { return x; }
  if (ax == 0x7f800000u) { return bitcast<f32>(ax | td_z); }
  if (ax < 0x39800000u) { return 1.0; }
  let a = bitcast<f32>(min(ax, 0x42b40000u));
  let e = td_exp_pair(a, 0.0);
  let p = 1.0 + e.q;
  return td_scale(p, e.k - 1) + td_scale(0.5 / p, -e.k);
}
""")
_fn("td_asinh", """
// asinh |x|: log1p(a + a^2 / (1 + sqrt(1 + a^2))) below 2 (no cancellation near 0), log(2a + 1 / (sqrt(a^2 + 1) +
// a)) below 2^12, log(a) + ln2 above (no a^2 to overflow: asinh(1e30) is right); odd
fn td_asinh(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let ax = u & 0x7fffffffu;
  if (ax >= 0x7f800000u || ax < 0x39800000u) { return x; }  // NaN, +-inf; |x| < 2^-12: x (to 2^-25), -0 kept
  let a = bitcast<f32>(ax);
  var l: TdLog;
  if (ax < 0x40000000u) { let z = a * a; l = td_log1p_parts(a + z / (1.0 + sqrt(1.0 + z))); }
  else if (ax < 0x45800000u) { l = td_log_parts(2.0 * a + 1.0 / (sqrt(a * a + 1.0) + a), 0.0); }
  else { l = td_log_parts(a, 0.0); l.e = l.e + 1.0; }
  return bitcast<f32>(bitcast<u32>(td_log_value(l)) | (u & 0x80000000u));
}
""")
_fn("td_acosh", """
// acosh x (x >= 1): log1p(t + sqrt(2t + t^2)), t = x - 1 (exact), below 2; log(2x - 1 / (x + sqrt(x^2 - 1))) below
// 2^12; log(x) + ln2 above
fn td_acosh(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  if (u < 0x3f800000u || u > 0x7f800000u) { return td_nan(); }  // x < 1 (negatives, -0 too), NaN
  if (u == 0x7f800000u) { return x; }
  var l: TdLog;
  if (u < 0x40000000u) { let t = x - 1.0; l = td_log1p_parts(t + sqrt(2.0 * t + t * t)); }
  else if (u < 0x45800000u) { l = td_log_parts(2.0 * x - 1.0 / (x + sqrt(x * x - 1.0)), 0.0); }
  else { l = td_log_parts(x, 0.0); l.e = l.e + 1.0; }
  return td_log_value(l);
}
""")
_fn("td_atanh", """
// atanh |x| = log1p(2a / (1 - a)) / 2, as log1p(2a + 2a^2 / (1 - a)) below 1/2 (1 - a exact above); odd
fn td_atanh(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let ax = u & 0x7fffffffu;
  if (ax > 0x3f800000u) { return td_nan(); }  // |x| > 1, NaN
  if (ax == 0x3f800000u) { return bitcast<f32>((u & 0x80000000u) | 0x7f800000u | td_z); }
  if (ax < 0x39800000u) { return x; }
  let a = bitcast<f32>(ax);
  var v = 2.0 * a / (1.0 - a);
  if (ax < 0x3f000000u) { v = 2.0 * a + 2.0 * a * a / (1.0 - a); }
  return bitcast<f32>(bitcast<u32>(0.5 * td_log_value(td_log1p_parts(v))) | (u & 0x80000000u));
}
""")
_fn("td_log2", """
// log2 x = e + log(m) / ln2: hi / ln2 from a 12-bit 1/ln2 (exact), added to e by Fast2Sum (|e| >= 1 > that, or
// e = 0); log2(2^k) = k exactly. Below 0 NaN, +-0 -inf
fn td_log2(x: f32) -> f32 {
$LOG_EDGES
  let a = l.hi * $IL2_HI;
  let w = td_opaque(l.e + a);
  return w + (((l.e - w) + a) + (l.lo * $IL2 + l.hi * $IL2_LO));
}
""")
_fn("td_log10", """
// log10 x = e log10(2) + log(m) / ln10: e log10(2)_hi and hi / ln10_hi exact, summed by Fast2Sum, the small parts
// added last (log10(10^k) = k)
fn td_log10(x: f32) -> f32 {
$LOG_EDGES
  let big = l.e * $L10_2_HI;
  let a = l.hi * $IL10_HI;
  let w = td_opaque(big + a);
  return w + (((big - w) + a) + (l.e * $L10_2_LO + (l.lo * $IL10 + l.hi * $IL10_LO)));
}
""")
_fn("td_exp2", """
// 2^x = 2^k 2^f, k = round(x), f = x - k in [-1/2, 1/2] (exact), 2^f by its Taylor series (to f^7: 2^-27);
// exp2(k) exact, exp2(128) = inf, exp2(-150) = 0
fn td_exp2(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  if (td_isnan(x)) { return x; }
  if ((u & 0x7fffffffu) >= 0x43480000u) {  // |x| >= 200, +-inf
    return select(bitcast<f32>(0x7f800000u | td_z), 0.0, u >= 0x80000000u);
  }
  let k = round(x);
  let f = x - k;
  return td_scale(1.0 + f * $EXP2_F, i32(k));
}
""")
_fn("td_erfc_tail", """
// erf(x) - x = x P(x^2) for |x| < 0.84375
fn td_erf_p(a: f32) -> f32 { let z = a * a; return a * $ERF_P; }
// exp(-x^2) = p 2^k for 0 <= x <= 11: x^2 = xh^2 + (x - xh)(x + xh), xh the first 12 bits of x (xh^2 exact)
fn td_exp_negsq(x: f32) -> TdExp {
  let xh = bitcast<f32>(bitcast<u32>(x) & 0xfffff000u);
  return td_exp_pair(-(xh * xh), -((x - xh) * (x + xh)));
}
// erfc a for a in [1/2, 11]: exp(-a^2) g, g = erfc(a) exp(a^2) fitted in a - 1 (exact) below 2, a g in 1/a above
// (divided by a, not times 1/a: g is about 1/(a sqrt(pi)), the rounding of 1/a would pass into it whole)
fn td_erfc_tail(a: f32) -> f32 {
  let e = td_exp_negsq(a);
  var g: f32;
  if (bitcast<u32>(a) < 0x40000000u) { let s = a - 1.0; g = $ERFC_A; }
  else { let t = 1.0 / a; g = $ERFC_B / a; }
  return td_scale(g + g * e.q, e.k);
}
// erf a for a >= 0 finite: the series below 0.84375, else 1 - erfc
fn td_erf_pos(a: f32) -> f32 {
  let b = bitcast<u32>(a);
  if (b < 0x3f580000u) { return a + td_erf_p(a); }
  if (b >= 0x41280000u) { return 1.0; }
  return 1.0 - td_erfc_tail(a);
}
""")
_fn("td_erfc", """
// erfc: 1 - erf below 1/2 (as 1/2 - ((x - 1/2) + x P) from 1/4: x - 1/2 exact, no digits lost), the tail above;
// erfc(-x) = 2 - erfc(x); 0 from 10.5 (float32's erfc underflows at 10.06)
fn td_erfc(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let ax = u & 0x7fffffffu;
  if (ax > 0x7f800000u) { return x; }
  let neg = u >= 0x80000000u;
  let a = bitcast<f32>(ax);
  if (ax < 0x3f000000u) {
    let p = td_erf_p(a);
    if (neg) { return 1.0 + (a + p); }
    if (ax < 0x3e800000u) { return 1.0 - (a + p); }
    return 0.5 - ((a - 0.5) + p);
  }
  if (ax >= 0x41280000u) { return select(0.0, 2.0, neg); }
  let t = td_erfc_tail(a);
  return select(t, 2.0 - t, neg);
}
""")
_fn("td_erfinv", """
// a Newton step x - (erf(x) - a) / erf'(x); from 0.84375 the residual is (1 - a) - erfc(x): exact where erf(x)
// would round to 1 (1 - a is exact for a >= 1/2)
fn td_erfinv_step(x: f32, a: f32) -> f32 {
  let r = select(td_erf_pos(x) - a, (1.0 - a) - td_erfc_tail(x), bitcast<u32>(x) >= 0x3f580000u);
  let e = td_exp_negsq(x);
  return x - r / td_scale(1.12837917 * (1.0 + e.q), e.k);
}
// erfinv: a first guess a p(w), w = -log((1 - a)(1 + a)) (M. Giles' form, fitted: 2e-5), then two Newton steps;
// erfinv(+-1) = +-inf, beyond NaN; odd
fn td_erfinv(y: f32) -> f32 {
  let u = bitcast<u32>(y);
  let ay = u & 0x7fffffffu;
  if (ay > 0x3f800000u) { return td_nan(); }
  if (ay == 0x3f800000u) { return bitcast<f32>((u & 0x80000000u) | 0x7f800000u | td_z); }
  if (ay < 0x00800000u) { return y * 0.886226925; }  // zero and subnormals: sqrt(pi)/2 y
  let a = bitcast<f32>(ay);
  let w = abs(td_log_value(td_log_parts((1.0 - a) * (1.0 + a), 0.0)));
  var x: f32;
  if (bitcast<u32>(w) < 0x40a00000u) { let v = w - 2.5; x = a * $ERFINV_C; }  // w < 5
  else { let v = sqrt(w) - 3.0; x = a * $ERFINV_T; }
  x = td_erfinv_step(td_erfinv_step(x, a), a);
  return bitcast<f32>(bitcast<u32>(x) | (u & 0x80000000u));
}
""")

# op -> the function its snippet calls
OP_FUNCTIONS = {"tan": "td_tan", "asin": "td_asin", "acos": "td_acos", "atan": "td_atan", "sinh": "td_sinh",
                "cosh": "td_cosh", "asinh": "td_asinh", "acosh": "td_acosh", "atanh": "td_atanh", "log2": "td_log2",
                "log10": "td_log10", "exp2": "td_exp2", "erfc": "td_erfc", "erfinv": "td_erfinv"}
SNIPPETS = {op: {"f32": f"{fn}({{0}})"} for op, fn in OP_FUNCTIONS.items()}

# every function above, for kernels/prelude.py to give each kernel those it names
LIBRARY = "\n".join(_FUNCTIONS.values())
