"""Text generation for converted causal LMs and encoder-decoder models with a GPU-resident KV cache:
`tm.generate(...)` (generate.py) with Hugging Face's meaning, `stream(...)` for token-by-token use. step.py: the
cached step exported through torch.export; loop.py: prefill + replayed decode steps; seq2seq.py: the encoder
once, then replayed decoder steps with self- and cross-attention caches; sampling.py: temperature/top-k/top-p
on the host; settings.py: arguments and generation_config."""
from ..interop.registry import GENERATORS
from .generate import generate, stream

GENERATORS.append(generate)  # the converted module's generate() (interop sits below generation)

__all__ = ["generate", "stream"]
