"""torch.nn.functional's activations beyond the op table's own rows (re-exported by functional): each a short
composition of table ops (elu, leaky_relu, log1p, expm1, softmax, where, clamp), which fuses into one kernel with
its neighbours; torch's argument checks and dtype refusals at the call."""
from __future__ import annotations

from .. import dtypes
from ..elementwise import _check_float_only
from ..opmath import computes_in_float32
from ..shapes import normalize_dim
from .._tensor import clamp, elu, exp, expm1, hardshrink, leaky_relu, log1p, minimum, sigmoid, softmax, tanh, where
from .functional_norms import _t

__all__ = ["glu", "selu", "celu", "softsign", "logsigmoid", "tanhshrink", "softmin", "threshold", "hardshrink",
           "softshrink", "rrelu"]
# selu's constants, as torch's (SELU paper, arXiv:1706.02515)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def legacy_softmax_dim(x) -> int:
    """torch's implicit softmax dim (deprecated): 0 for 0-, 1- and 3-D input, else 1."""
    return 0 if x.ndim in (0, 1, 3) else 1


@computes_in_float32
def glu(input, dim=-1):  # noqa: A002 - torch's parameter names: fx may pass them by name
    """The first half along dim times the sigmoid of the second."""
    x = _t(input)
    if x.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = normalize_dim(dim, x.ndim)
    if x.shape[d] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {x.shape[d]}")
    _check_float_only("glu", x)
    a, b = x.chunk(2, d) if x.shape[d] else (x, x)
    return a * sigmoid(b)


@computes_in_float32
def selu(input, inplace=False):  # noqa: A002
    return elu(_t(input), SELU_ALPHA) * SELU_SCALE


@computes_in_float32
def celu(input, alpha=1.0, inplace=False):  # noqa: A002
    """x > 0: x, else alpha * expm1(x / alpha)."""
    x = _t(input)
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    _check_float_only("elu", x)
    return where(x > 0, x, expm1(x * (1.0 / alpha)) * alpha)


def softsign(input):  # noqa: A002
    x = _t(input)
    return x / (x.abs() + 1)


@computes_in_float32
def logsigmoid(input):  # noqa: A002
    """min(x, 0) - log1p(exp(-|x|)): no overflow for either sign."""
    x = _t(input)
    _check_float_only("log_sigmoid", x)
    return minimum(x, 0.0) - log1p(exp(-x.abs()))


def tanhshrink(input):  # noqa: A002
    x = _t(input)
    return x - tanh(x)


def softmin(input, dim=None, _stacklevel=3, dtype=None):  # noqa: A002
    x = _t(input)
    if dtype is not None:  # torch casts before negating
        x = x.to(dtype)
    return softmax(-x, legacy_softmax_dim(x) if dim is None else dim)


def threshold(input, threshold, value, inplace=False):  # noqa: A002
    """x where x > threshold, else value (NaN stays NaN, as torch's x <= threshold ? value : x); x's dtype kept."""
    x = _t(input)
    return where(x <= threshold, value, x).to(x.dtype)


@computes_in_float32
def softshrink(input, lambd=0.5):  # noqa: A002
    """x - clamp(x, -lambd, lambd): x -+ lambd outside the band, exactly 0 inside, NaN kept."""
    x = _t(input)
    _check_float_only("softshrink", x)
    top = 65504.0 if x.dtype == dtypes.float16 else 3.40282e+38
    if not 0 <= lambd <= top:
        kind = "Half" if x.dtype == dtypes.float16 else "Float"
        raise RuntimeError(f"lambda must be in range [0, {top:g}] for input dtype {kind}, but found {lambd:g}")
    return x - clamp(x, -lambd, lambd)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):  # noqa: A002
    """Inference form: leaky_relu with the mean slope (lower + upper) / 2; training draws random slopes."""
    if training:
        raise RuntimeError("tinydl is inference only: rrelu with training=True draws random slopes; "
                           "call model.eval()")
    return leaky_relu(_t(input), (lower + upper) / 2)
