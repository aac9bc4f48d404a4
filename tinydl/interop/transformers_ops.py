"""Hugging Face transformers' own custom ops (`torch.library.custom_op` under the `transformers` namespace), as
torch.export records them: the op's qualified overload name -> tinydl's version. They only register; nothing here
imports transformers."""
from __future__ import annotations

from ..grouped_mm import grouped_mm
from .registry import implements

# MoE experts (transformers/integrations/moe.py): what `experts_implementation="grouped_mm"` exports as where
# torch's own grouped_mm cannot be compiled (float32 / float16 weights)
implements("transformers.grouped_mm_fallback.default")(grouped_mm)
