"""Text generation for converted causal LMs with a GPU-resident KV cache: `tm.generate(...)` (generate.py)
with Hugging Face's meaning, `stream(...)` for token-by-token use. step.py: the cached step exported through
torch.export; loop.py: prefill + replayed decode steps; sampling.py: temperature/top-k/top-p on the host;
settings.py: arguments and generation_config."""
from .generate import generate, stream

__all__ = ["generate", "stream"]
