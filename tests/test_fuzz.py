"""The differential fuzzer (tinydl/testing/fuzz/) in CI: FUZZ_GRAPHS random graphs against torch CPU, and proof
that the fuzzer reports and shrinks a wrong op.

Seed: fixed by default (FUZZ_SEED) so CI is deterministic and a red run reproduces; set TINYDL_FUZZ_SEED to fuzz
other graphs (the seed in use is printed either way, with `pytest -s`, and in each failure message)."""
import os

import numpy as np
import pytest

import tinydl
from tinydl.testing import fuzz

FUZZ_SEED = 20261204
FUZZ_GRAPHS = 1000
CHUNKS = 10  # separate tests, so pytest-xdist spreads them over its workers
SEED = int(os.environ.get("TINYDL_FUZZ_SEED", FUZZ_SEED))


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_fuzz_graphs_agree_with_torch(chunk):
    n = FUZZ_GRAPHS // CHUNKS
    first = SEED + chunk * n
    print(f"fuzz seed {SEED}: graphs {first}..{first + n - 1} "
          f"(rerun: python -m tinydl.testing.fuzz --graphs {n} --seed {first})")
    lines = []
    with tinydl.options(runtime_sizes=True):  # a GPU's default: graphs of one structure share lifted shaders
        found = fuzz.fuzz(n, first, max_ops=8, shrink_budget=150, out=lines.append)
    assert not found, "\n".join(lines)


# -- the fuzzer can fail --------------------------------------------------------------------------------------
@pytest.fixture
def wrong_add(monkeypatch):
    """Float addition that subtracts: a wrong kernel the fuzzer must catch. Plans are cached by graph structure,
    so the cache is emptied before and after."""
    from tinydl import schedule
    from tinydl.kernels import snippets
    monkeypatch.setitem(snippets.SNIPPETS, "add", {**snippets.SNIPPETS["add"], "f32": "({0} - {1})"})
    schedule.clear_cache()
    yield
    monkeypatch.undo()
    schedule.clear_cache()


def test_fuzzer_reports_and_shrinks_a_wrong_op(wrong_add, monkeypatch):
    lines = []
    found = fuzz.fuzz(40, 7, max_ops=8, shrink_budget=200, out=lines.append)
    assert found, "\n".join(lines)
    text = "\n".join(lines)
    assert "FAILURE 1" in text and "failed in" in text
    seed, small, report = found[0]
    assert report.startswith("wrong values"), report
    # shrunk: one or two steps over small inputs
    assert 1 <= len(small.steps) <= 2, small.code()
    assert all(a.size <= 8 for a in small.inputs.values()), small.code()
    # the printed repro runs and shows the difference
    ns = {}
    exec(small.code().replace("print(got); print(want)", ""), ns)  # noqa: S102
    assert any(not np.allclose(g.astype(np.float64), w.astype(np.float64), equal_nan=True)
               for g, w in zip(ns["got"], ns["want"])), small.code()
    # and it is the injected bug: with the real addition the repro agrees
    from tinydl import schedule
    monkeypatch.undo()
    schedule.clear_cache()
    assert fuzz.run_graph(small) is None, small.code()


def test_fuzzer_passes_a_graph_that_agrees():
    """The oracle accepts a correct graph (a fuzzer that fails everything proves nothing)."""
    g = fuzz.Graph({"x": np.array([1.0, -2.0, float("nan")], np.float32)},
                   [fuzz.Step("v", "{F}.relu({0}) + 1", ("x",), "relu")], ["v"])
    assert fuzz.run_graph(g) is None


def test_oracle_accepts_the_overflow_error_for_an_int_value_beyond_int32():
    """torch runs the graph's int32 inputs in int32 and wraps x * 4 (2^32 -> 0); tinydl's int32 stands for torch's
    int64 and raises: agreement when the int64 run leaves int32, a failure when it does not."""
    step = [fuzz.Step("v", "({0} * 4 > 0).int()", ("x",), "mul")]
    assert fuzz.run_graph(fuzz.Graph({"x": np.array([2**30, 3], np.int32)}, step, ["v"])) is None
    g = fuzz.Graph({"x": np.array([5, 3], np.int32)}, step, ["v"])
    assert fuzz.oracle._int64_overflow(RuntimeError("integer overflow: ..."), g) is False
    assert fuzz.oracle._int64_overflow(RuntimeError("integer overflow: ..."), fuzz.Graph(
        {"x": np.array([2**30], np.int32)}, step, ["v"])) is True
    # an int32 made by a cast in the graph is torch's int64 too (3 ** 60000 wraps in torch's int32)
    cast = [fuzz.Step("i", "{0}.to({L}.int32)", ("x",), "cast"), fuzz.Step("v", "{L}.pow(3, {0})", ("i",), "pow")]
    for x, beyond in ((6e4, True), (6.0, False)):
        g = fuzz.Graph({"x": np.array([x], np.float16)}, cast, ["v"])
        assert fuzz.oracle._int64_overflow(RuntimeError("integer overflow: ..."), g) is beyond
        assert fuzz.run_graph(g) is None


def test_oracle_accepts_an_argmax_that_a_near_tie_decides():
    """An argmax/argmin pick that differs from torch's is accepted only where the two picked values are equal within
    the float tolerance (torch's float32 var gives two rows 0.24, tinydl's an ulp apart); other picks fail."""
    import torch
    x = torch.tensor([[0.24, 0.5], [0.24000001, 0.1], [0.1, 0.9]])
    g = fuzz.Graph({"x": x.numpy()}, [fuzz.Step("v", "{0}.argmax(dim=0)", ("x",), "argmax")], ["v"])
    near_tie = fuzz.oracle._near_tie
    assert near_tie(g, "v", np.array([1, 2]), np.array([0, 2]), {"x": x}, False)
    assert not near_tie(g, "v", np.array([0, 0]), np.array([0, 2]), {"x": x}, False)  # 0.5 is not 0.9
    assert not near_tie(g, "v", np.array([2, 2]), np.array([0, 2]), {"x": x}, False)  # 0.1 is not 0.24
    flat = fuzz.Graph(g.inputs, [fuzz.Step("v", "{0}.argmin()", ("x",), "argmin")], ["v"])
    assert near_tie(flat, "v", np.array(4), np.array(4), {"x": x}, False)
    assert near_tie(flat, "v", np.array(3), np.array(4), {"x": x}, False)  # both 0.1
    assert not near_tie(flat, "v", np.array(0), np.array(4), {"x": x}, False)
    keep = fuzz.Graph(g.inputs, [fuzz.Step("v", "{0}.argmax(dim=-1, keepdim=True)", ("x",), "argmax")], ["v"])
    assert near_tie(keep, "v", np.array([[1], [0], [1]]), np.array([[1], [0], [1]]), {"x": x}, False)
    sums = fuzz.Graph(g.inputs, [fuzz.Step("v", "{0}.sum(dim=0)", ("x",), "sum")], ["v"])
    assert not near_tie(sums, "v", np.array([1, 2]), np.array([0, 2]), {"x": x}, False)  # not an argmax


def test_oracle_accepts_a_comparison_of_values_equal_within_tolerance():
    """x >= hardswish(x) with x >= 3 is True in exact arithmetic, and in float32 where hardswish(x) rounds to x; one
    ulp of x (a conv's summation order) can make it False: accepted where the compared values are equal within
    tolerance, not where they are apart."""
    import torch
    x = torch.tensor([3.3150184, 1.0, 2.0])
    y = torch.tensor([3.3150184, 1.0, 1.5])
    g = fuzz.Graph({"x": x.numpy(), "y": y.numpy()}, [fuzz.Step("v", "{0} >= {1}", ("x", "y"), "ge")], ["v"])
    env = {"x": x, "y": y}
    assert fuzz.oracle._near_tie(g, "v", np.array([False, True, True]), np.array([True, True, True]), env, False)
    assert not fuzz.oracle._near_tie(g, "v", np.array([True, True, False]), np.array([True, True, True]), env, False)


def test_the_float64_reference_computes_in_float64_after_an_integer_input():
    """sinh of an int tensor is a float of torch's default dtype: float64 in the float64 run, so that its product
    with a float64 input runs there (it raised a dtype mismatch and left no float64 reference: torch's vectorized
    float32 cosh overflowing at 88.9 then looked right)."""
    g = fuzz.Graph({"i": np.array([[4, -4]], np.int32), "w": np.array([[11.0], [0.1]], np.float32)},
                   [fuzz.Step("s", "{L}.sinh({0})", ("i",), "sinh"), fuzz.Step("v", "{0} @ {1}", ("s", "w"), "matmul")],
                   ["v"])
    out = fuzz.oracle._execute(g, "torch", to64=True)
    assert out.error is None and out.dtypes == ["float64"], out.error
    import torch
    assert torch.get_default_dtype() == torch.float32


def test_k1_products_with_a_zero_are_a_known_gap():
    import torch
    rule = fuzz.GAP_RULES["k1_zero_sign"]
    one, zero = torch.ones(1, 4, 2, 2), torch.zeros(4, 1, 1, 1)
    assert rule("conv2d", "", [one, zero]) and not rule("conv2d", "", [one, torch.ones(4, 1, 1, 1)])
    assert not rule("conv2d", "", [one, torch.zeros(4, 1, 3, 3)])  # nine products: torch's sums start at +0.0
    assert rule("matmul", "", [torch.zeros(3, 1), torch.ones(1, 3)]) and not rule("matmul", "", [torch.zeros(3, 2),
                                                                                               torch.ones(2, 3)])


def test_oracle_rules():
    """NaN positions must match; int/bool exact; torch int64 is tinydl int32; tolerance grows with float64
    disagreement only."""
    f = np.array([1.0, np.nan, np.inf], np.float32)
    assert fuzz.check_output(f, "float32", f, "float32", f.astype(np.float64), 1.0) is None
    assert "differ" in fuzz.check_output(np.array([1.0, 0.0, np.inf], np.float32), "float32", f, "float32",
                                         f.astype(np.float64), 1.0)
    assert "differ" in fuzz.check_output(np.float32([1.001]), "float32", np.float32([1.0]), "float32",
                                         np.float64([1.0]), 1.0)
    assert fuzz.check_output(np.int32([3]), "int32", np.int64([3]), "int64", None, 1.0) is None
    assert "dtype" in fuzz.check_output(np.float32([3]), "float32", np.int64([3]), "int64", None, 1.0)
    assert "differ" in fuzz.check_output(np.int32([4]), "int32", np.int64([3]), "int64", None, 1.0)


def test_generator_covers_every_elementwise_op():
    """A new op in the op table must get a fuzz entry (or be named here with why it has none)."""
    from tinydl.ops import ELEMENTWISE_OPS
    spoken = set(fuzz.UNARY_L) | set(fuzz.UNARY_F) | set(fuzz.BINARY) | {"clamp", "where", "cast"}
    named = {"gelu_tanh": "gelu(approximate='tanh') in g_unary"}
    missing = set(ELEMENTWISE_OPS) - spoken - set(named)
    assert not missing, f"elementwise ops the fuzzer never generates: {sorted(missing)}"


def test_a_graph_whose_reference_crashed_torch_generates():
    """Graph 47291 drew a float16 conv that segfaults torch 2.13 on CPU (the reference): the generator steers
    around it (KNOWN_GAPS), so the fuzzer runs on. In a child process: a crash would take the test's worker down."""
    import subprocess
    import sys
    code = "from tinydl.testing import fuzz; fuzz.generate(47291, 8)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300).returncode == 0


def test_known_gaps_name_a_rule_and_a_reason():
    for name, reason in fuzz.KNOWN_GAPS.items():
        assert name in fuzz.GAP_RULES and len(reason) > 20, name
    for name, (has, reason) in (fuzz.ADAPTER_GAPS | fuzz.REFERENCE_GAPS).items():
        assert name in fuzz.GAP_RULES and len(reason) > 20 and callable(has), name


def test_reference_gaps_follow_the_installed_torch():
    """The pinned torch (2.13) has none of the REFERENCE_GAPS; a torch whose clamp ignores a NaN bound has one,
    and its rule catches exactly clamps with a NaN bound."""
    import types
    import torch
    assert not any(has(torch) for has, _ in fuzz.REFERENCE_GAPS.values()), torch.__version__
    old_torch = types.SimpleNamespace(clamp=lambda x, min=None: x, ones=torch.ones)
    has, _ = fuzz.REFERENCE_GAPS["clamp_nan_bound"]
    assert has(old_torch)
    rule = fuzz.GAP_RULES["clamp_nan_bound"]
    assert rule("clamp", "{L}.clamp(x1, min=float('nan'), max=None)", []) and not rule("clamp", "x1.clamp(0, 1)", [])


def test_adapter_gaps_follow_the_adapter(monkeypatch):
    """subnormal_flush is avoided exactly on adapters that flush subnormals, and its rule catches a subnormal
    operand of any op (input or literal), not only of log/division."""
    import tinydl
    import torch
    flushes = tinydl.device_info()["flushes_subnormals"]
    assert ("subnormal_flush" in fuzz.active_gaps()) == flushes
    monkeypatch.setattr(tinydl, "device_info", lambda: {"flushes_subnormals": True})
    assert "subnormal_flush" in fuzz.active_gaps()
    rule = fuzz.GAP_RULES["subnormal_flush"]
    assert rule("mul", "x1 * 1.5", [torch.tensor([1e-40])]) and rule("add", "x1 + 1e-41", [torch.tensor([1.0])])
    assert not rule("mul", "x1 * 1.5", [torch.tensor([1e-30, 0.0])])


def test_flush_probe_agrees_with_arithmetic():
    """device_info's flushes_subnormals is what float32 arithmetic on this adapter does to a subnormal."""
    import tinydl
    x = tinydl.tensor(np.array([1e-40], np.float32)) * tinydl.tensor(np.array([1.5], np.float32))
    assert (x.numpy()[0] == 0) == tinydl.device_info()["flushes_subnormals"]
    # the probe's buffer went back to the pool once: tensors of its size made after it never share storage
    import gc
    gc.collect()
    a, b, c = (tinydl.tensor(np.full(3, v, np.float32)) for v in (1, 2, 3))
    assert [a.numpy()[0], b.numpy()[0], c.numpy()[0]] == [1, 2, 3]
