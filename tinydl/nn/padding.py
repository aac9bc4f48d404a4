"""torch.nn's padding layers: each F.pad in one mode with the padding stored as torch stores it (a tuple of
2, 4 or 6 ints, an int repeated)."""
from __future__ import annotations

from . import functional as F
from .module import Module


def _pad_layer(name: str, mode: str, n: int, ranks: tuple | None = None):
    """torch's {Zero,Constant,Reflection,Replication,Circular}Pad{n}d. ranks: the input ranks the circular
    layers check before padding (torch's _check_input_dim, a ValueError)."""
    def __init__(self, padding, *value):
        Module.__init__(self)
        if len(value) != (mode == "constant" and not name.startswith("Zero")):
            raise TypeError(f"{name}.__init__() takes {'3' if name.startswith('Constant') else '2'} positional "
                            f"arguments but {2 + len(value)} were given")
        self.padding = (int(padding),) * (2 * n) if isinstance(padding, int) else tuple(padding)
        if mode == "constant":
            self.value = float(value[0]) if value else 0.0

    def forward(self, x):
        if ranks and x.ndim not in ranks:
            raise ValueError(f"expected {ranks[0]}D or {ranks[1]}D input (got {x.ndim}D input)")
        return F.pad(x, self.padding, mode, self.value if mode == "constant" else None)

    def extra_repr(self):  # torch prints a ZeroPad's padding alone
        return f"padding={self.padding}, value={self.value}" if name.startswith("Constant") else f"{self.padding}"
    return type(name, (Module,), {"__init__": __init__, "forward": forward, "extra_repr": extra_repr,
                                  "__doc__": f"F.pad(x, padding, {mode!r}) over the last {n} dim(s)"})


ZeroPad1d, ZeroPad2d, ZeroPad3d = (_pad_layer(f"ZeroPad{n}d", "constant", n) for n in (1, 2, 3))
ConstantPad1d, ConstantPad2d, ConstantPad3d = (_pad_layer(f"ConstantPad{n}d", "constant", n) for n in (1, 2, 3))
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = (_pad_layer(f"ReflectionPad{n}d", "reflect", n)
                                                     for n in (1, 2, 3))
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = (_pad_layer(f"ReplicationPad{n}d", "replicate", n)
                                                        for n in (1, 2, 3))
CircularPad1d, CircularPad2d, CircularPad3d = (_pad_layer(f"CircularPad{n}d", "circular", n, (n + 1, n + 2))
                                               for n in (1, 2, 3))
