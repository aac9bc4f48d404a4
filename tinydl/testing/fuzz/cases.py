"""The fuzzer's vocabulary: the ops it draws (tables), the known gaps it steers around, and a graph as data
(numpy inputs plus steps of library-neutral Python)."""
from __future__ import annotations

import dataclasses
import re

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
    "nan_sign": "signbit of a NaN: IEEE 754 leaves a NaN result's sign unspecified; torch CPU's NaNs carry x86's "
                "default (sign set) or an operand's, tinydl's are positive (fuzz graph seeds 20273278, 20273604)",
    "k1_zero_sign": "the sign of a zero out of a product over K = 1 (a matmul, or a conv with one input channel per "
                    "group and a 1x1 kernel): torch CPU's depends on its kernel (-0.0 * 1 is +0.0 in a 1x1 @ 1x1, "
                    "-0.0 in a 4x1 @ 1x4 and in such a conv), tinydl's sums start at +0.0 as torch's longer ones; "
                    "atan2, 1/x or rsqrt downstream make it pi or inf (fuzz graph seeds 20285595, 20335239)",
    "reference_f16_strided_dilated_conv": "the reference crashes: torch 2.13's CPU float16 conv2d segfaults on some "
                                          "convs with stride 2 and dilation 2 ([9,1,3,1] by [8,1,3,1], padding 1; "
                                          "fuzz graph 47291), which killed the fuzzer",
}

# Gaps of some adapters only: name -> (whether this adapter has it, from tinydl.device_info(); reason). active_gaps()
# adds those the current adapter has to KNOWN_GAPS.
ADAPTER_GAPS = {
    "subnormal_flush": (lambda info: info.get("flushes_subnormals", False),
                        "float32 subnormals into any op: this adapter flushes them in all float arithmetic (NVIDIA; "
                        "README, Known differences)"),
}


# Behaviours where the installed torch is not the pinned one (pyproject: torch==2.13.0), which tinydl follows:
# name -> (whether this torch differs, probed on torch itself; reason). The GPU box may carry an older torch.
REFERENCE_GAPS = {
    "clamp_nan_bound": (lambda torch: not bool(torch.clamp(torch.ones(1), min=float("nan")).isnan().all()),
                        "clamp with a NaN bound: this torch returns the input, torch 2.13 (tinydl) NaN"),
}


def active_gaps() -> dict[str, str]:
    """KNOWN_GAPS plus the ADAPTER_GAPS the current adapter has and the REFERENCE_GAPS the installed torch has."""
    import tinydl
    import torch
    info = tinydl.device_info()
    return {**KNOWN_GAPS, **{name: why for name, (has, why) in ADAPTER_GAPS.items() if has(info)},
            **{name: why for name, (has, why) in REFERENCE_GAPS.items() if has(torch)}}


# name -> predicate(op, expr, source values as torch tensors): True when a step would hit that gap (not generated).
GAP_RULES = {
    # var/std/layer_norm of finite values whose squares overflow float32 (|x| > ~1e19)
    "var_std_overflow": lambda op, expr, vals: op in ("var", "std", "layer_norm") and _finite_max(vals[0]) > 1e18,
    # conv2d with padding over non-finite inputs/weights (0 * Inf in the padding)
    "conv_padding_nonfinite": lambda op, expr, vals: op == "conv2d" and "padding=0" not in expr and any(
        v.is_floating_point() and not bool(v.isfinite().all()) for v in vals[:2]),
    # float32 subnormals into ops whose WGSL builtins may flush them (log, pow, division, remainder, roots)
    "subnormal_math": lambda op, expr, vals: op in SUBNORMAL_SENSITIVE and _subnormal_operand(expr, vals),
    # float32 subnormals into any op (adapters that flush them everywhere)
    "subnormal_flush": lambda op, expr, vals: _subnormal_operand(expr, vals),
    # a float16 conv with stride and dilation 2: torch CPU may crash computing the reference
    "reference_f16_strided_dilated_conv": lambda op, expr, vals: (
        op == "conv2d" and str(vals[0].dtype) == "torch.float16" and "stride=2" in expr and "dilation=2" in expr),
    # signbit of an operand holding a NaN (whose sign nobody specifies)
    "nan_sign": lambda op, expr, vals: op == "signbit" and vals[0].is_floating_point() and bool(vals[0].isnan().any()),
    # a product over K = 1 with a zero in it
    "k1_zero_sign": lambda op, expr, vals: _k_is_1(op, vals) and any(bool((v == 0).any()) for v in vals[:2]),
    # a NaN clamp bound (torch versions differ)
    "clamp_nan_bound": lambda op, expr, vals: op == "clamp" and "nan" in expr,
}
SUBNORMAL_SENSITIVE = {"log", "pow", "div", "remainder", "fmod", "floor_divide", "trunc_divide", "reciprocal",
                       "rsqrt", "sqrt"}


def _k_is_1(op: str, vals) -> bool:
    """A matmul over K = 1, or a conv whose every output is one product (one input channel per group, 1x1)."""
    if op == "matmul":
        return vals[0].dim() >= 1 and vals[0].shape[-1] == 1
    return op == "conv2d" and vals[1].dim() == 4 and vals[1].shape[1] * vals[1].shape[2] * vals[1].shape[3] == 1


def _subnormal_operand(expr: str, vals) -> bool:
    return any(_has_subnormal(v) for v in vals) or any(0 < abs(float(m)) < np.finfo(np.float32).tiny
                                                       for m in re.findall(r"\d+\.?\d*e-\d+", expr))


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
          "bitwise_not isnan isinf isfinite log1p expm1 trunc signbit tan asin acos atan sinh cosh asinh acosh atanh " \
          "log2 log10 exp2 erfc erfinv".split()
UNARY_F = "relu6 leaky_relu elu gelu silu hardswish hardsigmoid softplus mish".split()
BINARY = {"logical_xor": "{L}.logical_xor({0}, {1})", "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}", "pow": "{L}.pow({0}, {1})",
          "maximum": "{L}.maximum({0}, {1})", "minimum": "{L}.minimum({0}, {1})", "eq": "{0} == {1}",
          "ne": "{0} != {1}", "lt": "{0} < {1}", "le": "{0} <= {1}", "gt": "{0} > {1}", "ge": "{0} >= {1}",
          "logical_and": "{L}.logical_and({0}, {1})", "logical_or": "{L}.logical_or({0}, {1})",
          "floor_divide": "{0} // {1}", "remainder": "{0} % {1}", "fmod": "{L}.fmod({0}, {1})",
          "trunc_divide": "{L}.div({0}, {1}, rounding_mode='trunc')", "bitwise_and": "{0} & {1}", "bitwise_or": "{0} | {1}", "bitwise_xor": "{0} ^ {1}",
          "atan2": "{L}.atan2({0}, {1})"}
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


