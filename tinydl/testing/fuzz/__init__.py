"""Differential fuzzer: random graphs run on tinydl (lazy, several outputs realized at once) and on torch CPU,
compared with dtype-aware tolerances; a failure is shrunk to a minimal repro printed as runnable Python.

    python -m tinydl.testing.fuzz --graphs 500 --seed 7 [--max-ops 8] [--stop-on-failure]

A graph is data: numpy inputs plus steps, each step one line of library-neutral Python ("{L}.where({0}, {1}, 2.5)",
{L} = tinydl or torch, {F} = their functional modules). The same text is executed on both sides and printed as the
repro, so a repro is exactly what ran.

Oracle (see `check_output`):
- shape equal; dtype equal, where torch's int64 counts as tinydl's int32 (tinydl has no int64; a torch int64 result
  outside int32's range must make tinydl raise its integer-overflow RuntimeError, see UNSUPPORTED; so may an
  intermediate integer value beyond int32, which torch's int32 inputs wrap: oracle._int64_overflow reruns torch
  with int64 inputs to see it);
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
Exclusions: KNOWN_GAPS (one list, each entry a reason) switches on GAP_RULES the generator steers around;
ADAPTER_GAPS adds the rules of gaps only some adapters have, REFERENCE_GAPS those of a torch other than the
pinned one (active_gaps(): those of the current adapter and torch).

Layout: cases.py (op tables, KNOWN_GAPS, Graph), oracle.py (running a graph on both sides, check_output),
generate.py (random graphs), shrink.py (minimal repros), cli.py (the loop and the command line).
"""
from .cases import ADAPTER_GAPS, BINARY, REFERENCE_GAPS, GAP_RULES, KNOWN_GAPS, active_gaps, UNARY_F, UNARY_L, UNSUPPORTED, Graph, Step
from .cli import fuzz, main
from .generate import generate
from .oracle import check_output, run_graph
from .shrink import failure_class, shrink

__all__ = ["ADAPTER_GAPS", "BINARY", "REFERENCE_GAPS", "active_gaps", "GAP_RULES", "KNOWN_GAPS", "UNARY_F", "UNARY_L", "UNSUPPORTED", "Graph", "Step", "check_output",
           "failure_class", "fuzz", "generate", "main", "run_graph", "shrink"]
