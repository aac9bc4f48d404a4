"""Elementwise ops a torch port meets beyond the first table: log1p, expm1 and trunc (op-table rows: the series
near 0 that keep log1p / expm1 accurate where log(1 + x) and exp(x) - 1 lose digits); parity with torch CPU on
random values and special values, integer and bool inputs, float16, both from_torch paths."""
import pytest
import torch

import tinydl
from tinydl.testing import assert_close

from paths import check_paths

SPECIAL = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 0.1249, -0.1251, -1.0,
           -0.999, 88.0, -100.0, 1e38, 2.5, -2.5, 3.7, -3.7]
UNARY = ["log1p", "expm1", "trunc", "fix"]


def _t(x):
    return tinydl.tensor(x.numpy())


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", [(7, 9), (1, 3, 1), (0, 2), ()])
def test_unary_parity(name, shape):
    x = torch.randn(shape) * (0.05 if name != "trunc" else 4)
    if name == "log1p":
        x = x.clamp(min=-0.99)
    assert_close(getattr(tinydl, name)(_t(x)), getattr(torch, name)(x))
    assert_close(getattr(_t(x), name)(), getattr(x, name)())


@pytest.mark.parametrize("name", UNARY)
def test_unary_special_values(name):
    x = torch.tensor(SPECIAL)
    assert_close(getattr(tinydl, name)(_t(x)), getattr(torch, name)(x), rtol=2e-6, atol=0)


@pytest.mark.parametrize("name", UNARY)
def test_unary_integers(name):
    x = torch.arange(-3, 4)
    assert_close(getattr(tinydl, name)(_t(x)), getattr(torch, name)(x))
    b = torch.tensor([True, False])
    if name in ("trunc", "fix"):
        with pytest.raises(NotImplementedError, match="\"trunc_vml_cpu\" not implemented for 'Bool'"):
            getattr(tinydl, name)(_t(b))
    else:
        assert_close(getattr(tinydl, name)(_t(b)), getattr(torch, name)(b))


@pytest.mark.parametrize("name", UNARY)
def test_unary_float16(name):
    x = torch.randn(5, 3) * 0.3
    got = getattr(tinydl, name)(_t(x).half())
    assert got.dtype == tinydl.float16
    assert_close(got.float(), getattr(torch, name)(x.half()).float(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_unary_both_paths(path):
    check_paths(lambda x: torch.log1p(x.abs()) + x.expm1() + torch.trunc(x * 3) + torch.fix(x),
                torch.randn(3, 5), path=path)
