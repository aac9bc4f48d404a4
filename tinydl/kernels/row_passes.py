"""WGSL for kernels that give one workgroup to each row and pass over it several times (kernels/sample.py,
kernels/sort.py): a pass over the row's elements, a workgroup reduction, and radix select.

Radix select finds a row's "crossing" element without sorting: over the elements' order-preserving 32-bit keys
(bigger key = selected first), two bits per pass (SELECT_PASSES passes), a pass sums a weight per digit over the
elements whose higher bits match the prefix found so far; walking the digits from the top, the first where the
running sum reaches the target fixes that digit. With weight 1 and target k the crossing element is the k-th
largest key; with probabilities as weights, the first element whose cumulative probability from the top
reaches the target. `above` is then the weight of the elements with bigger keys.
"""
from __future__ import annotations

import math

THREADS = 256
TREE = int(math.log2(THREADS))  # trips of a workgroup reduction's halving loop
PER_TRIP = 4        # elements a thread takes per trip of a pass (adjacent: one 16-byte span per thread)
DIGIT_BITS = 2      # bits of the key fixed per select pass: 4 sums per pass, one vec4 reduction
SELECT_PASSES = 32 // DIGIT_BITS
# the WGSL of the shared memory the reductions use
REDUCTION_MEMORY = f"var<workgroup> red: array<vec4<f32>, {THREADS}>;"


def pass_trips(length: int) -> int:
    """Loop trips of one pass over a row of `length` (each) plus a reduction."""
    return -(-length // (THREADS * PER_TRIP)) + TREE


def select_trips(length: int) -> int:
    return SELECT_PASSES * (1 + pass_trips(length) + (1 << DIGIT_BITS))


class RowPasses:
    """The body of a kernel over rows of `length` elements; `load` is the WGSL statement(s) making `v` and `key`
    of column `c` (of row `r`)."""

    def __init__(self, length: int, load: str):
        self.length, self.load = length, load
        self.body: list[str] = []

    def add(self, *lines: str) -> None:
        self.body.extend(lines)

    def each(self, stmt: str, pad: str = "  ") -> None:
        """stmt over this thread's elements: `v` the value, `key` its key, `c` its column."""
        span = THREADS * PER_TRIP
        self.body.append(f"{pad}for (var i: i32 = 0; i < {-(-self.length // span)}; i++) {{")
        for j in range(PER_TRIP):
            self.body.append(f"{pad}  {{ let c = i * {span} + lid * {PER_TRIP} + {j}; if (c < {self.length}) {{ "
                             f"{self.load} {stmt} }} }}")
        self.body.append(f"{pad}}}")

    def reduce4(self, value: str, combine: str, name: str, pad: str = "  ") -> None:
        """vec4 `value` of every thread combined over the workgroup (combine: a format of two operands): `name`,
        the same in every thread."""
        self.body.extend(pad + line for line in [
            f"red[lid] = {value};", "workgroupBarrier();",
            f"for (var s: i32 = {THREADS // 2}; s > 0; s >>= 1u) {{",
            f"  if (lid < s) {{ red[lid] = {combine.format('red[lid]', 'red[lid + s]')}; }}",
            "  workgroupBarrier();", "}", f"let {name} = red[0];", "workgroupBarrier();"])

    def select(self, name: str, weight: str, target: str, above: str, key: str = "key") -> None:
        """Declares `var name: u32`, the key of the crossing element for weights `weight` (of v, key, c) and the
        target sum `target`, and `var above: f32`, the weight of the bigger keys. key: the WGSL of the key
        selected on (`key`, or another expression of v and c)."""
        self.body.extend([f"  var {name} = 0u;", f"  var {above} = 0.0;",
                          f"  for (var p: i32 = 0; p < {SELECT_PASSES}; p++) {{",
                          f"    let shift = {32 - DIGIT_BITS}u - u32(p) * {DIGIT_BITS}u;",
                          # the bits above this digit (none in the first pass: a shift by 32 is not a WGSL shift)
                          f"    let high = select(0xffffffffu << (shift + {DIGIT_BITS}u), 0u, p == 0);",
                          "    var h = vec4<f32>(0.0);"])
        self.each(f"let sel = {key}; if ((sel & high) == {name}) {{ h[(sel >> shift) & 3u] += {weight}; }}", "    ")
        self.reduce4("h", "{} + {}", "hist", "    ")
        top = (1 << DIGIT_BITS) - 1
        self.body.extend([
            "    var found = false;",
            f"    for (var j: i32 = 0; j < {1 << DIGIT_BITS}; j++) {{",
            f"      let d = {top} - j;",
            # a digit without weight never crosses (a target of 0 stops at the first weighted element)
            f"      if (!found) {{ if ({above} + hist[d] >= {target} && hist[d] > 0.0) "
            f"{{ {name} |= u32(d) << shift; found = true; }} else {{ {above} += hist[d]; }} }}",
            "    }",
            # never reached (rounding in the target): digit 0, which keeps every element of this prefix
            f"    if (!found) {{ {above} -= hist[0]; }}",
            "  }"])


__all__ = ["RowPasses", "pass_trips", "select_trips", "THREADS", "TREE", "REDUCTION_MEMORY"]
