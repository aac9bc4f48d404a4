"""WGSL emitters, one per kernel kind. `build(kernel)` turns a scheduled kernel into WGSL."""
from .build import CompiledKernel, build  # noqa: F401
