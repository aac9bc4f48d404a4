"""tinydl.nn: torch.nn-compatible layers (see functional for the ops)."""
from . import functional  # noqa: F401
