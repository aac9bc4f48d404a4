"""The activations beyond the op table's own rows (nn/functional_activations.py): glu, selu, celu, softsign,
logsigmoid, tanhshrink, softmin, threshold, hardshrink, softshrink, rrelu (inference) and their nn layers with
Softmax2d; parity with torch CPU on odd sizes, size-0 and size-1 dims and special values, torch's errors, both
from_torch paths."""

import pytest
import torch

import tinydl
from tinydl import nn
from tinydl.debug import count_kernels
from tinydl.nn import functional as F
from tinydl.testing import assert_close

from paths import check_paths

TF = torch.nn.functional
SPECIAL = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 1e-4, -1e-4, 0.5, -0.5]
# name -> (tinydl call, torch call) on x
CALLS = {
    "selu": (F.selu, TF.selu), "celu": (lambda x: F.celu(x, 0.7), lambda x: TF.celu(x, 0.7)),
    "softsign": (F.softsign, TF.softsign), "logsigmoid": (F.logsigmoid, TF.logsigmoid),
    "tanhshrink": (F.tanhshrink, TF.tanhshrink),
    "threshold": (lambda x: F.threshold(x, 0.1, 20.0), lambda x: TF.threshold(x, 0.1, 20.0)),
    "hardshrink": (lambda x: F.hardshrink(x, 0.3), lambda x: TF.hardshrink(x, 0.3)),
    "softshrink": (lambda x: F.softshrink(x, 0.5), lambda x: TF.softshrink(x, 0.5)),
    "rrelu": (F.rrelu, TF.rrelu), "glu": (lambda x: F.glu(x, 0), lambda x: TF.glu(x, 0)),
    "softmin": (lambda x: F.softmin(x, -1), lambda x: TF.softmin(x, -1)),
    "glu_last": (F.glu, TF.glu),
}


def _t(x):
    return tinydl.tensor(x.numpy())


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("shape", [(6, 7), (2, 4, 1, 6), (0, 4), (4, 1)])
def test_parity(name, shape):
    if name == "glu_last" and shape[-1] % 2:
        shape = shape[:-1] + (shape[-1] + 1,)
    x = torch.randn(shape) * 3
    ours, theirs = CALLS[name]
    assert_close(ours(_t(x)), theirs(x))


@pytest.mark.parametrize("name", [n for n in CALLS if not n.startswith("glu") and n != "softmin"])
def test_special_values(name):
    x = torch.tensor(SPECIAL)
    ours, theirs = CALLS[name]
    assert_close(ours(_t(x)), theirs(x))


@pytest.mark.parametrize("name", ["selu", "celu", "softsign", "logsigmoid", "tanhshrink", "softshrink", "hardshrink"])
def test_float16(name):  # float16 in, float16 out, within half's rounding
    x = torch.randn(3, 5) * 3
    ours, theirs = CALLS[name]
    got = ours(_t(x).half())
    assert got.dtype == tinydl.float16
    assert_close(got.float(), theirs(x.half()).float(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("name", [n for n in CALLS if n not in ("softmin", "glu")])
def test_one_kernel_with_its_producer(name):
    """Each activation is one fused elementwise kernel with the op that feeds it."""
    x = _t(torch.randn(4, 6))
    with count_kernels() as c:
        CALLS[name][0](x * 2).numpy()
    assert c.count == 1, c.names


def test_threshold_keeps_integer_dtype():
    x = torch.arange(-3, 5)
    assert_close(F.threshold(_t(x), 1, 5.7), TF.threshold(x, 1, 5.7))
    assert_close(tinydl.threshold(_t(x), 0, -1), torch.threshold(x, 0, -1))


def test_top_level_and_methods():
    x = torch.randn(3, 5)
    for name in ("selu", "celu", "rrelu", "hardshrink"):
        assert_close(getattr(tinydl, name)(_t(x)), getattr(torch, name)(x))
    assert_close(_t(x).hardshrink(0.2), x.hardshrink(0.2))
    assert_close(tinydl.threshold(_t(x), 0.3, -2.0), torch.threshold(x, 0.3, -2.0))


@pytest.mark.parametrize("call,exc,message", [
    (lambda x: F.glu(x), RuntimeError, "Halving dimension must be even, but dimension 1 is size 3"),
    (lambda x: F.glu(x[0, 0]), RuntimeError, "glu does not support scalars because halving size must be even"),
    (lambda x: F.glu(x, 2), IndexError, r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
    (lambda x: F.glu(x.int()[:, :2]), NotImplementedError, "\"glu_cpu\" not implemented for 'Int'"),
    (lambda x: F.softshrink(x, -1), RuntimeError,
     r"lambda must be in range \[0, 3.40282e\+38\] for input dtype Float, but found -1"),
    (lambda x: F.celu(x, 0), RuntimeError, "ZeroDivisionError: alpha cannot be 0 for CELU"),
    (lambda x: F.selu(x.int()), NotImplementedError, "\"elu_cpu\" not implemented for 'Int'"),
    (lambda x: F.logsigmoid(x.int()), NotImplementedError, "\"log_sigmoid_cpu\" not implemented for 'Int'"),
    (lambda x: F.hardshrink(x.bool()), NotImplementedError, "\"hardshrink_cpu\" not implemented for 'Bool'"),
    (lambda x: F.softshrink(x.int()), NotImplementedError, "\"softshrink_check\" not implemented for 'Int'"),
    (lambda x: F.rrelu(x.int()), NotImplementedError, "\"leaky_relu_cpu\" not implemented for 'Int'"),
    (lambda x: F.rrelu(x, training=True), RuntimeError, "rrelu with training=True draws random slopes"),
    (lambda x: nn.Softmax2d()(x[0]), ValueError, "Softmax2d: expected input to be 3D or 4D, got 1D instead"),
])
def test_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call(tinydl.zeros(2, 3))


def test_rrelu_layer_refuses_training():
    m = nn.RReLU(0.1, 0.3)
    x = torch.randn(4, 3)
    assert_close(m.eval()(_t(x)), torch.nn.RReLU(0.1, 0.3).eval()(x))
    with pytest.raises(RuntimeError, match="call model.eval"):
        m.train()(_t(x))


LAYERS = [("GLU", (1,)), ("SELU", ()), ("CELU", (0.5,)), ("Softsign", ()), ("LogSigmoid", ()), ("Tanhshrink", ()),
          ("Softmin", (1,)), ("Threshold", (0.1, 20.0)), ("Hardshrink", (0.3,)), ("Softshrink", (0.2,)),
          ("RReLU", (0.2, 0.4)), ("Softmax2d", ()), ("Softmin", ())]


@pytest.mark.parametrize("name,args", LAYERS)
def test_layers(name, args):
    m, tm = getattr(torch.nn, name)(*args).eval(), getattr(nn, name)(*args).eval()
    x = torch.randn(2, 4, 3, 5)
    assert_close(tm(_t(x)), m(x))
    assert repr(tm) == repr(m)


def test_layer_reprs_with_inplace():
    for name, args in [("SELU", (True,)), ("CELU", (1.0, True)), ("Threshold", (1, 2, True))]:
        assert repr(getattr(nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))


class Family(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(getattr(torch.nn, name)(*args) for name, args in LAYERS)

    def forward(self, x):
        out = [layer(x) for layer in self.layers]
        out.append(TF.glu(x, 1) + TF.softmin(x, 2)[:, :2] + TF.rrelu(x)[:, :2])
        out.append(TF.celu(x) + TF.logsigmoid(x) + TF.threshold(x, 0.2, 1.0) + TF.softshrink(x) + TF.hardshrink(x)
                   + TF.selu(x) + TF.softsign(x) + TF.tanhshrink(x) + torch.selu(x) + x.hardshrink()
                   + torch.log1p(x.abs()) + torch.expm1(x) + torch.trunc(x * 3))
        return tuple(out)


@pytest.mark.parametrize("path", ["fx", "torch.export"])
def test_both_paths(path):
    check_paths(Family().eval(), torch.randn(2, 4, 3, 5), path=path)
