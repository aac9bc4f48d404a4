"""Integer overflow of elementwise int32 ops: tinydl stores torch's int64 as int32, so an int32 result that does not
fit int32 (2**30 * 4, -(-2**31), abs(-2**31), 3 ** 40, -2**31 // -1) is one torch would return as an int64. Such a
result is reported on the GPU (checks.Code.INTEGER_OVERFLOW, raised at the read-back, see tinydl/checks.py), never
returned wrapped. The reductions (kernels/reduce.py) report theirs the same way.

Which ops can overflow, and the WGSL test of each (`a`, `b` the operands, `r` the wrapped result):
- add: the operands' signs agree and the result's differs: ((a ^ r) & (b ^ r)) < 0
- sub: the operands' signs differ and the result's differs from a's: ((a ^ b) & (a ^ r)) < 0
- mul: td_imul_ovf, the exact 64-bit magnitude of the product from 16-bit halves (no division a compiler could fold)
- neg, abs: a == -2**31
- pow: td_ipow_checked, the exponentiation by squaring with each product tested as mul's
- floor_divide, trunc_divide: a == -2**31 && b == -1 (remainder and fmod never overflow)
With a literal operand (x * 3, x + 1, x ** 3, x // -1) the test is a range check on the other operand, computed
here exactly in Python, and none at all where no int32 operand can overflow (x * 1, x + 0, x ** 1, x // 2).
Every other int32 op (comparisons, bitwise ops, max/min, clamp, sign, relu, where, casts) has no test; float and
bool values have none. This module is pure: the operands' literal values in, a description of the test out.
"""
from __future__ import annotations

INT_MIN, INT_MAX = -2**31, 2**31 - 1
OVERFLOW_OPS = ("add", "sub", "mul", "neg", "abs", "pow", "floor_divide", "trunc_divide")

# WGSL functions, in a kernel only when one of its int ops calls them (kernels/prelude.py)
IMUL_OVF = """// a * b does not fit i32: |a| * |b| exactly, from 16-bit halves (a bound of 2^31 for a negative product)
fn td_imul_ovf(a: i32, b: i32) -> bool {
  let ua = select(bitcast<u32>(a), 0u - bitcast<u32>(a), a < 0);
  let ub = select(bitcast<u32>(b), 0u - bitcast<u32>(b), b < 0);
  let a1 = ua >> 16u; let b1 = ub >> 16u;
  if (a1 != 0u && b1 != 0u) { return true; }  // both 2^16 or more: 2^32 or more
  let mid = a1 * (ub & 0xffffu) + (ua & 0xffffu) * b1;  // one of the two terms is 0
  if (mid > 0x8000u) { return true; }
  let lo = (ua & 0xffffu) * (ub & 0xffffu);
  let p = (mid << 16u) + lo;
  return p < lo || p > select(0x7fffffffu, 0x80000000u, (a < 0) != (b < 0));
}"""
IPOW_CHECKED = """// td_ipow's value and whether a product it needs overflows i32: vec2(value, 1 if it does not fit)
fn td_ipow_checked(a: i32, b: i32) -> vec2<i32> {
  if (b < 0) { return vec2<i32>(td_ipow(a, b), 0); }
  var r = 1; var base = a; var e = b; var bad = false; var big = false;  // big: base no longer exact
  loop {
    if (e <= 0) { break; }
    if ((e & 1) == 1) { bad = bad || big || td_imul_ovf(r, base); r = r * base; }
    e = e >> 1u;
    if (e > 0) { big = big || td_imul_ovf(base, base); base = base * base; }
  }
  return vec2<i32>(r, select(0, 1, bad));
}"""


def wrap32(v) -> int:
    """A literal operand as the kernel computes with it (snippets.literal wraps Python ints beyond int32)."""
    return (int(v) + 2**31) % 2**32 - 2**31


def _ceil_div(p: int, q: int) -> int:
    return -((-p) // q)


def _iroot(n: int, e: int) -> int:
    """The largest y >= 0 with y ** e <= n (n >= 1, e >= 2)."""
    if e >= 32:
        return 1  # 2 ** e > n for every n < 2**32
    lo, hi = 1, 1 << 16
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mid ** e <= n:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _valid(op: str, c: int, const_first: bool) -> tuple[int, int]:
    """The int32 values x of the other operand for which `x op c` (`c op x` when const_first) fits int32."""
    if op == "add":
        lo, hi = INT_MIN - c, INT_MAX - c
    elif op == "sub":
        lo, hi = (c - INT_MAX, c - INT_MIN) if const_first else (INT_MIN + c, INT_MAX + c)
    elif op == "mul":
        if c == 0:
            lo, hi = INT_MIN, INT_MAX
        elif c > 0:
            lo, hi = _ceil_div(INT_MIN, c), INT_MAX // c
        else:
            lo, hi = _ceil_div(-INT_MAX, -c), INT_MIN // c
    elif op == "pow":  # x ** c: c <= 1 never overflows (0, +-1 for negative exponents, 1, x)
        if c <= 1:
            lo, hi = INT_MIN, INT_MAX
        else:
            hi = _iroot(INT_MAX, c)
            lo = -_iroot(-INT_MIN, c) if c % 2 else -hi  # (-2) ** 31 is -2**31, which fits
    else:  # floor_divide, trunc_divide with the divisor c
        lo, hi = (INT_MIN + 1, INT_MAX) if c == -1 else (INT_MIN, INT_MAX)
    return max(lo, INT_MIN), min(hi, INT_MAX)


def int_overflow(op: str, consts: list) -> tuple | None:
    """How an int32 elementwise op's result can leave int32, given its operands' literal values (None where an
    operand is not a literal): None when it never can; ("range", k, lo, hi): operand k below lo or above hi (either
    None: no bound on that side) overflows; ("ops",): the op's own test on both operands (module docstring)."""
    if op not in OVERFLOW_OPS:
        return None
    consts = [None if c is None else wrap32(c) for c in consts]
    if op in ("neg", "abs"):
        lo, hi, k = INT_MIN + 1, INT_MAX, 0
    else:
        a, b = consts
        if b is not None:
            k, c, const_first = 0, b, False
        elif a is not None and op in ("add", "sub", "mul"):
            k, c, const_first = 1, a, True
        elif a is not None and op in ("floor_divide", "trunc_divide"):
            return ("ops",) if a == INT_MIN else None  # only -2**31 // -1 overflows
        else:
            return ("ops",)  # two tensors, or a literal base with a tensor exponent
        lo, hi = _valid(op, c, const_first)
    if consts[k] is not None:  # both literals: decided here
        return None if lo <= consts[k] <= hi else ("range", k, None, None)
    if (lo, hi) == (INT_MIN, INT_MAX):
        return None
    return ("range", k, lo if lo > INT_MIN else None, hi if hi < INT_MAX else None)
