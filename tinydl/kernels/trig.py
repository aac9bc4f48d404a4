"""sin/cos with an exact argument reduction (WGSL's sin/cos have no accuracy bound outside [-pi, pi]: lavapipe gives
cos(1e20) = 1), appended to the PRELUDE as td_sin / td_cos.

|x| = q * pi/2 + r, r in about [-pi/4, pi/4] as a float pair (hi, lo):
  - |x| < 2^11: Cody-Waite with a 4-part pi/2 whose first 3 parts have 13 bits (k * Pi exact without fma: lavapipe's
    fma is a multiply and an add), TwoSums keep the roundings, so r is good to ~2^-45 absolute;
  - |x| >= 2^11 (up to 3.4e38): Payne-Hanek in u32 arithmetic: the 24-bit mantissa times a 96-bit window of the bits
    of 2/pi (a WGSL const table) gives the quadrant and a ~60-bit fraction, which is multiplied by pi/2 as integers.
Then a Taylor polynomial of sin or cos on [-pi/4, pi/4] (degree 11 / 12: truncation below 2^-30) picked by q.
Float steps whose exactness matters go through td_opaque (WGSL compilers may reassociate as if no rounding)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

# 2/pi in hex, 400 bits (fdlibm's two_over_pi table, the digits of 2/pi after the binary point); checked at import
# against 2/pi computed from Machin's formula in integers, and its leading bits against math.pi
_TWO_OVER_PI_HEX = ("a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424dd2e006492eea09d1921c"
                    "fe1deb1c")
_TWO_OVER_PI_BITS = len(_TWO_OVER_PI_HEX) * 4


def _machin_pi(bits: int) -> Fraction:
    """pi to within 2^-bits (integer arithmetic: pi = 16 atan(1/5) - 4 atan(1/239))."""
    one = 1 << (bits + 16)

    def atan_inv(n: int) -> int:
        total, term, k, sign = 0, one // n, 1, 1
        while term:
            total += sign * (term // k)
            term //= n * n
            k += 2
            sign = -sign
        return total
    return Fraction(16 * atan_inv(5) - 4 * atan_inv(239), one)


def _check_two_over_pi() -> int:
    t = int(_TWO_OVER_PI_HEX, 16)
    pi = _machin_pi(_TWO_OVER_PI_BITS + 32)
    exact = (2 / pi) * 2**_TWO_OVER_PI_BITS  # 2/pi scaled; t must be its floor
    if not (t <= exact < t + 1):
        raise AssertionError("the hex digits of 2/pi disagree with Machin's formula")
    if abs(t / 2**_TWO_OVER_PI_BITS - 2 / math.pi) > 1e-15:
        raise AssertionError("the hex digits of 2/pi disagree with math.pi")
    return t


_T = _check_two_over_pi()
# TD_2OPI[i]: bits 32(i-1)+1 .. 32i of 2/pi after the binary point; word 0 is the zero integer part (bits -31..0)
_WORDS = [0] + [(_T >> (_TWO_OVER_PI_BITS - 32 * (i + 1))) & 0xFFFFFFFF for i in range(9)]


def _f32_bits(v: float) -> int:
    return int(np.array(v, np.float32).view(np.uint32))


def _round_bits(v: Fraction, bits: int) -> Fraction:
    e = math.floor(math.log2(abs(v))) - bits + 1
    return Fraction(round(v / Fraction(2) ** e)) * Fraction(2) ** e


def _pio2_parts() -> list[float]:
    """pi/2 as P1 + P2 + P3 + P4 (+ < 2^-62): P1..P3 of 13 bits (k * Pi exact for k < 2^11), P4 a float32."""
    rest = _machin_pi(200) / 2
    parts = []
    for bits in (13, 13, 13, 24):
        p = _round_bits(rest, bits)
        assert float(np.float32(float(p))) == p
        parts.append(float(p))
        rest -= p
    assert abs(rest) < Fraction(1, 2**62)
    return parts


_P = _pio2_parts()
_PIO2_Q31 = round(_machin_pi(80) / 2 * 2**31)  # pi/2 in 1.31 fixed point
assert _PIO2_Q31 == 0xC90FDAA2


def _lit(v: float) -> str:
    return f"bitcast<f32>({_f32_bits(v):#010x}u)"


TRIG_PRELUDE = f"""
// sin/cos with an exact argument reduction (tinydl/kernels/trig.py): |x| = q * pi/2 + (hi + lo)
const TD_2OPI = array<u32, {len(_WORDS)}>({", ".join(f"{w:#010x}u" for w in _WORDS)});
struct TdRed {{ q: u32, hi: f32, lo: f32 }}
// a * b as (low, high) 32-bit words, from 16-bit halves
fn td_mul64(a: u32, b: u32) -> vec2<u32> {{
  let al = a & 0xffffu; let ah = a >> 16u; let bl = b & 0xffffu; let bh = b >> 16u;
  let ll = al * bl; let lh = al * bh; let hl = ah * bl;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return vec2<u32>((mid << 16u) | (ll & 0xffffu), ah * bh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u));
}}
// bits g .. g+31 of the table (g counted from the top of word 0)
fn td_2opi_word(g: u32) -> u32 {{
  let t = TD_2OPI;
  let w = g >> 5u; let sh = g & 31u;
  return select((t[w] << sh) | (t[w + 1u] >> (32u - sh)), t[w], sh == 0u);
}}
// |x| >= 2^11 (finite): Payne-Hanek in integers
fn td_reduce_big(ax: u32) -> TdRed {{
  let m = (ax & 0x7fffffu) | 0x800000u;
  // x = m * 2^s, s = e - 150 >= -12; the window holds bits j0 = s - 1 .. s + 94 of 2/pi (earlier bits give multiples
  // of 4): m * window is x * 2/pi mod 4 with its binary point at bit 94
  let g = (ax >> 23u) - 150u - 1u + 31u;
  let w0 = td_2opi_word(g); let w1 = td_2opi_word(g + 32u); let w2 = td_2opi_word(g + 64u);
  let a2 = td_mul64(m, w2); let a1 = td_mul64(m, w1); let a0 = td_mul64(m, w0);
  let p0 = a2.x;
  let p1 = a2.y + a1.x;
  let p2 = a1.y + a0.x + select(0u, 1u, p1 < a1.x) + 0x20000000u;  // + 1/2: q rounds to nearest
  let q = p2 >> 30u;
  // the fraction - 1/2 as a signed 94-bit number (t2 the top 30 bits, with the sign), then its magnitude
  let top = i32(p2 & 0x3fffffffu) - 0x20000000;
  let neg = top < 0;
  var t2 = u32(top); var t1 = p1; var t0 = p0;
  if (neg) {{
    t0 = ~t0 + 1u; t1 = ~t1 + select(0u, 1u, t0 == 0u); t2 = ~t2 + select(0u, 1u, t0 == 0u && t1 == 0u);
  }}
  var e = -94;  // |fraction| = (t2 t1 t0) * 2^e
  if (t2 == 0u) {{ t2 = t1; t1 = t0; t0 = 0u; e = e - 32; }}
  if (t2 == 0u) {{ return TdRed(q, 0.0, 0.0); }}  // |r| < 2^-62: no float32 comes this close to a multiple of pi/2
  let lz = countLeadingZeros(t2);
  let hi = select((t2 << lz) | (t1 >> (32u - lz)), t2, lz == 0u);
  let lo = select((t1 << lz) | (t0 >> (32u - lz)), t1, lz == 0u);
  e = e + 64 - i32(lz);  // |fraction| = (hi + lo 2^-32) * 2^e, hi >= 2^31
  // times pi/2 (1.31 fixed point): a 64-bit product (ph pl) * 2^(e - 31); r = its top 24 bits + the next 32
  let ph0 = td_mul64(hi, {_PIO2_Q31:#x}u);
  let pl = ph0.x + td_mul64(lo, {_PIO2_Q31:#x}u).y;
  let ph = ph0.y + select(0u, 1u, pl < ph0.x);
  let lz2 = countLeadingZeros(ph);  // 0 or 1
  let nh = select((ph << lz2) | (pl >> (32u - lz2)), ph, lz2 == 0u);
  let nl = pl << lz2;
  let eh = e - 31 + 40 - i32(lz2);
  let rh = ldexp(f32(nh >> 8u), eh);
  let rl = ldexp(f32(((nh & 0xffu) << 24u) | (nl >> 8u)), eh - 32);
  return TdRed(q, select(rh, -rh, neg), select(rl, -rl, neg));
}}
// 0 < |x| < 2^11: Cody-Waite without fma (WGSL's fma may be a multiply and an add, as on lavapipe): pi/2 = P1 + P2
// + P3 + P4 with 13-bit P1..P3, so k * Pi is exact for k < 2^11; y - k P1 is exact, the next two subtractions are
// TwoSums (their rounding errors kept), k P4 goes into the low part
fn td_reduce(ax: u32) -> TdRed {{
  if (ax >= 0x45000000u) {{ return td_reduce_big(ax); }}
  let y = bitcast<f32>(ax);
  if (ax < 0x3f490fdbu) {{ return TdRed(0u, y, 0.0); }}  // |x| < pi/4
  let k = round(y * 0.63661975);
  let t1 = td_opaque(y - k * {_lit(_P[0])});
  let a2 = td_opaque(k * {_lit(_P[1])});
  let s1 = td_opaque(t1 - a2); let b1 = td_opaque(s1 - t1);
  let e1 = (t1 - (s1 - b1)) - (a2 + b1);
  let a3 = td_opaque(k * {_lit(_P[2])});
  let s2 = td_opaque(s1 - a3); let b2 = td_opaque(s2 - s1);
  let e2 = (s1 - (s2 - b2)) - (a3 + b2);
  let lo = (e1 + e2) - k * {_lit(_P[3])};
  let hi = td_opaque(s2 + lo);
  return TdRed(u32(k) & 3u, hi, lo - (hi - s2));
}}
// sin (c false) or cos (c true) of hi + lo, |hi + lo| <= ~0.8
fn td_sincos_poly(hi: f32, lo: f32, c: bool) -> f32 {{
  let z = hi * hi;
  if (c) {{
    let hz = 0.5 * z;
    // 0.5 hi^2 = hz + hze exactly (Dekker: hi = a + b, a of 12 bits)
    let c = td_opaque(hi * 4097.0); let a = td_opaque(c - (c - hi)); let b = hi - a;
    let hze = ((0.5 * a * a - hz) + a * b) + 0.5 * b * b;
    let w = td_opaque(1.0 - hz);
    let p = z * z * (0.041666668 + z * (-0.0013888889 + z * (2.4801588e-05 + z * (-2.7557319e-07
            + z * 2.0876757e-09))));
    return w + ((((1.0 - w) - hz) - hze) + (p - hi * lo));
  }}
  let p = z * (-0.16666667 + z * (0.008333334 + z * (-0.0001984127 + z * (2.7557319e-06 + z * -2.5052108e-08))));
  return hi + (hi * p + lo * (1.0 - 0.5 * z));
}}
// sin(q pi/2 + r): q even -> +-sin r, odd -> +-cos r; q & 2 -> negative
fn td_sincos_q(q: u32, hi: f32, lo: f32) -> f32 {{
  let v = td_sincos_poly(hi, lo, (q & 1u) == 1u);
  return select(v, -v, (q & 2u) == 2u);
}}
fn td_sin(x: f32) -> f32 {{
  let u = bitcast<u32>(x);
  let ax = u & 0x7fffffffu;
  if (ax >= 0x7f800000u) {{ return td_nan(); }}
  if (ax < 0x39800000u) {{ return x; }}  // |x| < 2^-12: sin x = x (to 2^-25), -0 and subnormals kept
  let red = td_reduce(ax);
  return bitcast<f32>(bitcast<u32>(td_sincos_q(red.q, red.hi, red.lo)) ^ (u & 0x80000000u));
}}
fn td_cos(x: f32) -> f32 {{
  let ax = bitcast<u32>(x) & 0x7fffffffu;
  if (ax >= 0x7f800000u) {{ return td_nan(); }}
  if (ax < 0x39800000u) {{ return 1.0; }}
  let red = td_reduce(ax);
  return td_sincos_q(red.q + 1u, red.hi, red.lo);
}}
"""
