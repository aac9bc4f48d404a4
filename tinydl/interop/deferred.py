"""A torch model that torch.fx cannot trace, given to from_torch without example inputs: converted on its first
call, through torch.export with that call's inputs (dynamic dims as usual, so later calls of other sizes reuse
it), or, where torch.export fails too, run op by op (eager.py) from then on. Until then it is already the
converted module's tree: state_dict, load_state_dict and half() work, and what they change is what the first call
runs."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from .._tensor import Tensor
from . import eager, export
from .program import TorchFxModule, first_line
from .registry import UnsupportedTorchOps


# the exports kept for the input shapes a model's code specializes (a Python loop over a size): the most recent
PROGRAMS_KEPT = 8


class DeferredConversion(TorchFxModule):
    def __init__(self, tree, torch_module, dynamic_shapes, reason: str):
        super().__init__(tree, None, type(torch_module).__name__)
        object.__setattr__(self, "_torch_module", torch_module)
        object.__setattr__(self, "_dynamic_shapes", dynamic_shapes)
        object.__setattr__(self, "_why_deferred", reason)
        object.__setattr__(self, "_programs", [])  # every export made, the most recent first
        object.__setattr__(self, "conversion_path", "torch.export, on the first call")

    def forward(self, *args, **kwargs):
        if self.conversion_path == eager.PATH:
            return eager.run(self._torch_module, self, args, kwargs, self._name)
        shapes = [a.shape for a in args if isinstance(a, (Tensor, np.ndarray))]
        program = next((p for p in self._programs if kwargs or p.accepts(shapes)), None)
        if program is None:  # the first call, or sizes the model's code made static in the exports so far
            try:
                program = self._capture(args, kwargs)
            except Exception as export_error:  # noqa: BLE001 - the eager path is tried next
                if self._programs:  # exported before: the model's code changed with the inputs' sizes
                    raise
                return self._run_eagerly(args, kwargs, export_error)
        object.__setattr__(self, "_program", program)
        return super().forward(*args, **kwargs)

    def _run_eagerly(self, args, kwargs, export_error):
        """torch.export failed on the first call: the torch forward op by op, for this call and the next ones."""
        why = f"{self._why_deferred}, and torch.export failed ({first_line(export_error)})"
        object.__setattr__(self, "conversion_path", eager.PATH)
        object.__setattr__(self, "why_eager", why)
        try:
            return eager.run(self._torch_module, self, args, kwargs, self._name)
        except Exception as eager_error:
            object.__setattr__(self, "conversion_path", "torch.export, on the first call")  # the next call tries again
            if isinstance(export_error, UnsupportedTorchOps) and isinstance(eager_error, UnsupportedTorchOps) \
                    and len(export_error.ops) <= len(eager_error.ops):
                raise export_error from eager_error
            eager_error.add_note(f"(from_torch: running the torch forward op by op, because {why})")
            raise

    def _capture(self, args, kwargs):
        example = (tuple(_float32(a) for a in args), {k: _float32(v) for k, v in kwargs.items()})
        try:
            program = export.capture(self._torch_module, example, self._dynamic_shapes)
        except Exception as e:
            e.add_note(f"(from_torch: converting on the first call through torch.export, because "
                       f"{self._why_deferred})")
            raise
        program.cast_floats(self._float_dtype())
        self._programs.insert(0, program)
        del self._programs[PROGRAMS_KEPT:]
        object.__setattr__(self, "conversion_path", "torch.export")
        return program

    def _float_dtype(self):
        return next((p.dtype for p in self.parameters() if p.dtype.is_floating_point), dtypes.float32)

    def _cast_floats(self, dtype):
        for program in self._programs:
            program.cast_floats(dtype)
        return super(TorchFxModule, self)._cast_floats(dtype)  # Module's: the programs are cast above


def _float32(v):
    """The torch model is exported in float32 whatever the weights are now (the graph's floats follow them)."""
    if isinstance(v, Tensor) and v.dtype == dtypes.float16:
        return v.numpy().astype(np.float32)
    if isinstance(v, np.ndarray) and v.dtype == np.float16:
        return v.astype(np.float32)
    return v
