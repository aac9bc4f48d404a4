"""What planning needs to know about the adapter, as a value: the orchestrator reads it from the runtime on a
plan-cache miss; a test passes a made-up one and plans (lowering, fusion, WGSL) without a GPU."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    max_storage_buffers: int = 8      # storage buffers one kernel may bind (its output included)
    max_binding_size: int = 1 << 30   # bytes of one storage binding
    max_workgroups: int = 65535       # workgroups per grid dimension
    subgroups: bool = False           # the adapter's subgroup feature (row kernels in teams: kernels/rownorm.py)
    # Dawn's subgroup matrices with float16 16x16x16 tiles accumulating in float32 (tensor cores): float16 GEMMs
    # on them (kernels/gemm_matrix.py)
    subgroup_matrix: bool = False
    # a CPU driver (lavapipe): it divides by a number it did not know when compiling lane by lane, so kernels keep
    # their sizes baked in unless Options.runtime_sizes asks otherwise (schedule/sizes.py)
    cpu: bool = False

    @classmethod
    def of(cls, rt) -> "Target":
        """The limits of a live runtime.Runtime."""
        return cls(rt.max_storage_buffers, rt.max_binding_size, rt.max_workgroups,
                   bool({"subgroup", "subgroups"} & rt.features), rt.subgroup_matrix_f16, rt.compiles_on_first_run)

    def grid(self, workgroups: int) -> tuple[int, int, int]:
        """Split a 1-D workgroup count over x/y so no dimension exceeds the adapter limit."""
        if workgroups <= self.max_workgroups:
            return (max(workgroups, 1), 1, 1)
        y = -(-workgroups // self.max_workgroups)
        x = -(-workgroups // y)
        return (x, y, 1)
