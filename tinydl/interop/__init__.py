"""PyTorch interop: weights in (state_dicts, .pt/.pth, .safetensors) and whole torch modules converted
(`from_torch`)."""
from .convert import UnsupportedTorchOps, from_torch  # noqa: F401
from .weights import load  # noqa: F401
