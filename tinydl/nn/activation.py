"""Activation modules: thin wrappers over the functional ops (which are rows of the op table)."""
from __future__ import annotations

from . import functional as F
from . import init as _init
from .module import Module


def _simple(name, fn, doc, shows_inplace=False):
    def forward(self, x):
        return fn(x)

    def __init__(self, inplace=False):
        Module.__init__(self)
        self.inplace = inplace  # accepted for torch compatibility; tinydl never writes in place

    def extra_repr(self):  # torch prints "inplace=True" for the modules whose inplace matters
        return "inplace=True" if shows_inplace and self.inplace else ""
    return type(name, (Module,), {"forward": forward, "__doc__": doc, "__init__": __init__,
                                  "extra_repr": extra_repr})


ReLU = _simple("ReLU", F.relu, "max(x, 0)", True)
ReLU6 = _simple("ReLU6", F.relu6, "min(max(x, 0), 6)", True)
SiLU = _simple("SiLU", F.silu, "x * sigmoid(x)", True)
Hardswish = _simple("Hardswish", F.hardswish, "x * relu6(x + 3) / 6")
Hardsigmoid = _simple("Hardsigmoid", F.hardsigmoid, "relu6(x + 3) / 6")
Sigmoid = _simple("Sigmoid", F.sigmoid, "1 / (1 + exp(-x))")
Tanh = _simple("Tanh", F.tanh, "tanh(x)")
Mish = _simple("Mish", F.mish, "x * tanh(softplus(x))", True)


def _inplace(m) -> str:
    return ", inplace=True" if getattr(m, "inplace", False) else ""


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}{_inplace(self)}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}{_inplace(self)}"


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if max_val <= min_val:  # torch's check and words (an assert there)
            raise AssertionError(f"max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}{_inplace(self)}"


class PReLU(Module):
    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = _init.constant((num_parameters,), init)

    def forward(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim if self.dim is not None else _legacy_dim(x))

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.log_softmax(x, self.dim if self.dim is not None else _legacy_dim(x))

    def extra_repr(self):
        return f"dim={self.dim}"


def _legacy_dim(x) -> int:
    """torch's implicit softmax dim (deprecated): 0 for 0-, 1- and 3-D input, else 1."""
    return 0 if x.ndim in (0, 1, 3) else 1
