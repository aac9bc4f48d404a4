"""The ATen division ops of torch.export graphs (div with rounding_mode, floor_divide, remainder, fmod; tensor and
scalar operands) run as tinydl's own floor_divide / div / remainder / fmod: the same results as torch's CPU
kernels, special values included (a float remainder that is not a - floor(a / b) * b, NaN, infinities, zero
divisors), and torch's error for an integer division by zero."""
import numpy as np
import pytest
import torch

from tinydl.interop import export
from tinydl.testing import assert_close

INF, NAN = float("inf"), float("nan")
FLOAT_A = [1.0, -1.0, 7.5, -7.5, 0.0, -0.0, 5.0, -5.0, INF, -INF, NAN, 3.0, -3.0, 1e30, 0.3, 2.0, 1.0]
FLOAT_B = [0.1, 0.1, 2.0, 2.0, 3.0, -3.0, INF, -INF, 2.0, -2.0, 1.0, 0.0, -0.0, 3.0, -0.1, NAN, 1e-30]
INT_A = [7, -7, 7, -7, 0, 0, 2**31 - 1, -2**31, 5, -5, 1, 100]
INT_B = [2, 2, -2, -2, 3, -3, 2, 3, 5, 5, -7, 7]


class Division(torch.nn.Module):
    def forward(self, a, b):
        return (a // b, a % b, torch.div(a, b, rounding_mode="trunc"), torch.div(a, b, rounding_mode="floor"),
                torch.fmod(a, b), torch.remainder(a, b), torch.floor_divide(a, b),
                a // 3, a % -3, 7 % b, torch.div(a, -2, rounding_mode="trunc"), torch.div(a, 2, rounding_mode="floor"),
                torch.fmod(a, 3), torch.fmod(a, -3))


class FloatScalars(torch.nn.Module):
    def forward(self, a, b):
        return a % 0.1, a // 0.1, 1.0 % b, torch.fmod(a, 0.1), torch.div(a, 0.1, rounding_mode="trunc")


def ops_of(module, args) -> set[str]:
    ep, _ = export.export(module, args, {}, None)
    return {export.op_name(n.target) for n in ep.graph.nodes if n.op == "call_function"}


def check(module, a, b):
    tm = export.convert(module, (a, b), dynamic_shapes=None)
    with torch.no_grad():
        expected = module(a, b)
    got = tm(a, b)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        try:
            assert_close(g, e, rtol=1e-6, atol=0)
            g, e = g.numpy(), e.numpy()
            zero = e == 0
            assert (np.signbit(g[zero]) == np.signbit(e[zero])).all(), "signs of zero differ"
        except AssertionError as err:
            raise AssertionError(f"output {i}: {err}\n got {g}\n expected {e}") from None


def test_the_graph_holds_the_aten_division_ops():
    a, b = torch.tensor(FLOAT_A), torch.tensor(FLOAT_B)
    ops = ops_of(Division().eval(), (a, b)) | ops_of(FloatScalars().eval(), (a, b))
    assert {"aten.div.Tensor_mode", "aten.remainder.Tensor", "aten.fmod.Tensor", "aten.remainder.Scalar",
            "aten.fmod.Scalar"} <= ops, ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_float_division_matches_torch(dtype):
    a, b = torch.tensor(FLOAT_A, dtype=dtype), torch.tensor(FLOAT_B, dtype=dtype)
    check(Division().eval(), a, b)
    check(FloatScalars().eval(), a, b)


def test_int_division_matches_torch():
    a, b = torch.tensor(INT_A, dtype=torch.int32), torch.tensor(INT_B, dtype=torch.int32)
    check(Division().eval(), a, b)


@pytest.mark.parametrize("op", ["floor", "trunc", "remainder", "fmod"])
def test_int_division_by_zero_raises_as_torch(op):
    fn = {"floor": lambda a, b: a // b, "trunc": lambda a, b: torch.div(a, b, rounding_mode="trunc"),
          "remainder": lambda a, b: a % b, "fmod": torch.fmod}[op]

    class M(torch.nn.Module):
        def forward(self, a, b):
            return fn(a, b) + 1

    a, b = torch.tensor([5, -5, 7], dtype=torch.int32), torch.tensor([1, 2, 3], dtype=torch.int32)
    tm = export.convert(M().eval(), (a, b), dynamic_shapes=None)
    zero = torch.tensor([1, 0, 3], dtype=torch.int32)
    with pytest.raises(RuntimeError, match="ZeroDivisionError") as torch_error:
        M()(a, zero)
    with pytest.raises(RuntimeError, match="ZeroDivisionError") as ours:
        tm(a, zero).numpy()
    assert str(torch_error.value) == "ZeroDivisionError" and str(ours.value).startswith("ZeroDivisionError")


def test_an_integer_division_of_an_empty_tensor_by_zero_divides_nothing():
    """torch raises ZeroDivisionError for an integer tensor divided by a Python 0 only where there is an element to
    divide (fuzz graph 20333919: an empty bool tensor's fmod by 0 raised in tinydl)."""
    import tinydl
    for name in ("fmod", "remainder", "floor_divide"):
        for arr in (np.zeros((1, 0), bool), np.zeros((0,), np.int32)):
            got = getattr(tinydl, name)(tinydl.tensor(arr), 0)
            assert tuple(got.shape) == tuple(getattr(torch, name)(torch.from_numpy(arr), 0).shape)
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            getattr(tinydl, name)(tinydl.tensor(np.array([3], np.int32)), 0)
