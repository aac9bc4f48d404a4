"""Activation modules: thin wrappers over the functional ops (which are rows of the op table)."""
from __future__ import annotations

from . import functional as F
from . import init as _init
from .module import Module


def _simple(name, fn, doc):
    def forward(self, x):
        return fn(x)
    return type(name, (Module,), {"forward": forward, "__doc__": doc,
                                  "__init__": lambda self, inplace=False: Module.__init__(self)})


ReLU = _simple("ReLU", F.relu, "max(x, 0)")
ReLU6 = _simple("ReLU6", F.relu6, "min(max(x, 0), 6)")
SiLU = _simple("SiLU", F.silu, "x * sigmoid(x)")
Hardswish = _simple("Hardswish", F.hardswish, "x * relu6(x + 3) / 6")
Hardsigmoid = _simple("Hardsigmoid", F.hardsigmoid, "relu6(x + 3) / 6")
Sigmoid = _simple("Sigmoid", F.sigmoid, "1 / (1 + exp(-x))")
Tanh = _simple("Tanh", F.tanh, "tanh(x)")
Mish = _simple("Mish", F.mish, "x * tanh(softplus(x))")


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class ELU(Module):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return F.elu(x, self.alpha)


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)


class Hardtanh(Module):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)


class PReLU(Module):
    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = _init.constant((num_parameters,), init)

    def forward(self, x):
        return F.prelu(x, self.weight)


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim if self.dim is not None else _legacy_dim(x))


class LogSoftmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.log_softmax(x, self.dim if self.dim is not None else _legacy_dim(x))


def _legacy_dim(x) -> int:
    """torch's implicit softmax dim (deprecated): 0 for 0-, 1- and 3-D input, else 1."""
    return 0 if x.ndim in (0, 1, 3) else 1
