"""Settings: what we choose, as one frozen value (schedule.Target is what the adapter is).

    with tinydl.options(force_split_k=2, vec4_loads=False):   # tests and experiments
        y = model(x)
    tinydl.options.current()                                   # the Options in effect

Planning reads the Options it is given (lowering, fusion and the emitters receive it next to the Target); the
fields marked `plan` change what planning makes (variants, WGSL), so they are part of the plan-cache key: a plan
made under one Options is never replayed under another that plans differently, and no cache needs clearing. The
runtime's fields (submit chunking, read-back and upload threading, pre-encoded replays) do not change plans and
do not split the cache; the runtime reads them once per call. Defaults come from the environment where a
variable exists (TINYDL_EAGER, TINYDL_TUNE, TINYDL_PROGRESS), read once at import.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import sys
import threading
import types
from dataclasses import dataclass, field

from .ops import DIRECT_CONV_MAX_COUT_PER_GROUP


def _plan(default):
    return field(default=default, metadata={"plan": True})


@dataclass(frozen=True)
class Options:
    # -- planning: part of the plan-cache key --------------------------------------------------------------
    force_tile: str | None = _plan(None)          # a GEMM variant for every GEMM (kernels/gemm.py TILES, "gemv")
    force_split_k: int | None = _plan(None)       # a split-K factor for every GEMM it divides (gemm.split_k)
    force_im2col: bool | None = _plan(None)       # every eligible conv with (True) or without (False) IM2COL
    tap_major: bool = _plan(True)                 # gathered convs read their pixels tap-major (gemm.conv_gather)
    vec4_loads: bool = _plan(True)                # tiled GEMMs load runs of 4 operand elements as one vec4
    vec4_stores: bool = _plan(True)               # tiled GEMMs store runs of 4 outputs as one vec4
    matrix_packed_loads: bool = _plan(True)       # matrix tiles load float16 runs of 8 as one 16-byte load
    direct_conv_max_cout_per_group: int = _plan(DIRECT_CONV_MAX_COUT_PER_GROUP)  # fewer: a direct conv
    subgroup_teams: bool = _plan(True)            # row kernels in subgroup teams where the adapter has subgroups
    team: int = _plan(32)                         # threads per team (kernels/rownorm.py)
    team_max_len: int = _plan(256)                # longest row a team takes
    max_team_cached: int = _plan(32)              # values per team thread kept in registers
    max_cached: int = _plan(16)                   # values per workgroup-row thread kept in registers
    force_strip: tuple[int, int] | None = _plan(None)  # (rows, cols) of outputs per direct-conv thread
    strip_min_threads: int = _plan(65536)         # fewer threads take smaller strips (kernels/window.py)
    max_unrolled_taps: int = _plan(49)            # larger windows loop instead of being unrolled
    force_reduce: str | None = _plan(None)        # "serial" / "lanes" / "workgroup" for every reduction
    serial_min_outputs: int = _plan(1 << 15)      # outputs from which a short reduction runs one per thread
    per_thread: int = _plan(4)                    # outputs per thread of big elementwise kernels ...
    per_thread_min: int = _plan(1 << 20)          # ... from this many outputs on
    gemv_columns: int | None = _plan(None)        # output columns per gemv thread (None: tiles.gemv_columns's rule)
    stats_in_gemv: bool = _plan(False)            # a norm's statistic computed inside the gemv reading it (fuse.py)
    runtime_sizes: bool | None = _plan(None)      # kernels seen at several shapes read their sizes at run time
                                                  # (None: on a GPU, not on a CPU driver: schedule/sizes.py)
    plan_family_max: int = _plan(6)               # more kernels of one plan differing only in sizes share one shader
                                                  # reading them at run time (sizes.py; a dense block's layers)
    tune: bool = _plan(False)                     # GEMM variants measured on this GPU (tinydl.tuning, TINYDL_TUNE)
    in_place_slots: bool = _plan(True)            # a slot write into a donated cache goes in place (slots.py; off:
                                                  # it copies the cache, as before donation: an A/B switch)
    # -- a smaller adapter, simulated: planning and allocation honour these where they are below the adapter's
    # own limits (None: the adapter's); they reach plans through schedule.Target, which is part of the plan key
    max_storage_buffers: int | None = None        # storage buffers one kernel may bind
    max_binding_size: int | None = None           # bytes of one storage binding (bigger tensors stored in pieces)
    shader_f16: bool = True                       # False: float16 refused, as on an adapter without 'shader-f16'
    # -- not planning ----------------------------------------------------------------------------------------
    tune_splits: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16)  # split counts tuning may measure (tinydl.tuning)
    tune_tiles: tuple[str, ...] | None = None     # tiles tuning may measure (None: every tile)
    tune_rounds: int = 5                          # timed submits per candidate (their median)
    tune_warm_seconds: float = 0.3                # runs of the candidates before each race (GPUs raise clocks under load)
    eager: bool = False                           # realize after every op (TINYDL_EAGER, debug.eager())
    pool_max_bytes: int = 1 << 31                 # freed GPU memory kept for reuse (least recently freed given back past it)
    plan_cache_size: int = 256                    # plans kept (the least recently used dropped past it)
    pipeline_cache_size: int = 1024               # compiled shaders kept by the runtime (least recently used dropped)
    pre_encode: bool = True                       # replays submit a command buffer encoded beforehand (replay.py)
    submit_first: int = 32                        # dispatches in a submit's first chunk (or the plan's own) ...
    submit_chunk: int = 32                        # ... each next one twice the one before, up to this (0: one)
    spin_wait_s: float | None = None              # read-backs poll this long before blocking (None: the runtime's)
    native_map: bool = True                       # read-backs mapped through the C API directly
    lend_min_bytes: int = 1 << 18                 # read-backs from this size lend the mapped staging memory
    upload_threads: int = min(4, os.cpu_count() or 1)     # uploads from upload_split_bytes on are written in
    upload_split_bytes: int = 1 << 21                     # this many pieces from worker threads
    staged_uploads: bool | None = None            # uploads from staged_upload_min_bytes on through pooled mapped
    staged_upload_min_bytes: int = 1 << 20        # buffers (None: where the WebGPU implementation's writes are slow),
    staged_upload_pool_bytes: int = 1 << 28       # keeping this many bytes of them (least recently used sizes go)
    readback_threads: int = min(8, os.cpu_count() or 1)   # read-backs from readback_split_bytes on are copied
    readback_split_bytes: int = 1 << 24                   # out in this many pieces
    compile_threads: int = min(8, os.cpu_count() or 1)    # a new plan's shaders compiled side by side (compile_all)
    scatter_max_work: int = 1 << 32               # comparisons a scatter with GPU indices makes (tinydl/scatter.py) ...
    max_captures: int = 16                        # input shapes a jit keeps captured (least recently used dropped)
    decode_ahead: bool = True                     # generate queues a step fed its token on the GPU before it reads it
    progress: bool = True                         # a progress bar on a terminal while kernels compile (TINYDL_PROGRESS)
    progress_delay_s: float = 0.5                 # shown only once the work has lasted this long (a few kernels: none)
    export_budget_s: float = 300.0                # from_torch's torch.export with dynamic dims is stopped past this
                                                  # and tried with fewer dynamic dims (interop/dynamic_dims.py)

    def __post_init__(self):
        for name in ("max_storage_buffers", "max_binding_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"tinydl option {name}={value!r}: expected a positive int or None")
        # the plan-cache key's share: a small int per distinct tuple of the planning fields' values (interned
        # once, here; so the keys built per realize and per jit call hash an int, not the tuple)
        planning = tuple(getattr(self, f.name) for f in _PLANNING)
        with _lock:
            key = _plan_keys.setdefault(planning, len(_plan_keys))
        object.__setattr__(self, "plan_key", key)

    def replace(self, **changes) -> "Options":
        """These options with some fields changed; unknown names raise TypeError naming them."""
        unknown = sorted(set(changes) - _NAMES)
        if unknown:
            raise TypeError(f"unknown tinydl option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(_NAMES))})")
        return dataclasses.replace(self, **changes)


_PLANNING = tuple(f for f in dataclasses.fields(Options) if f.metadata.get("plan"))
_plan_keys: dict[tuple, int] = {}
_lock = threading.Lock()
_NAMES = frozenset(f.name for f in dataclasses.fields(Options))
PLANNING = tuple(f.name for f in _PLANNING)


TUNE_ENV, PROGRESS_ENV = "TINYDL_TUNE", "TINYDL_PROGRESS"


def _switch(name: str, meaning: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value in ("0", "false", "off", "no"):
        return False
    if value not in ("1", "true", "on", "yes"):
        raise ValueError(f"{name}={os.environ[name]!r}: expected 1 ({meaning}) or 0 (off)")
    return True


def _from_environment() -> Options:
    return Options(eager=os.environ.get("TINYDL_EAGER", "0") not in ("", "0"),
                   tune=_switch(TUNE_ENV, "tune GEMM variants on this GPU"),
                   progress=_switch(PROGRESS_ENV, "a progress bar while kernels compile", default=True))


DEFAULT = _from_environment()
_current: contextvars.ContextVar[Options] = contextvars.ContextVar("tinydl_options", default=DEFAULT)


# current() -> Options: the Options in effect (in this thread / context). The contextvar's own get, no Python
# frame: the tensor API reads it per op (Options.eager), the runtime once per call.
current = _current.get


@contextlib.contextmanager
def use(**changes):
    """Options changed for the block (nested blocks change the enclosing one's), restored after it, also on an
    exception. Yields the Options in effect inside."""
    new = current().replace(**changes)
    token = _current.set(new)
    try:
        yield new
    finally:
        _current.reset(token)


def update(**changes) -> Options:
    """Options changed from here on in this context (this thread, or asyncio task), not for a block: what
    tinydl.tuning.enable() does. Returns the Options now in effect."""
    new = current().replace(**changes)
    _current.set(new)
    return new


class _CallableModule(types.ModuleType):
    def __call__(self, **changes):
        """tinydl.options(**changes): see use()."""
        return use(**changes)


sys.modules[__name__].__class__ = _CallableModule
