"""Autotuning: the GEMM variant (tile x split-K) of each matmul / conv shape measured on this GPU, cached on disk.

The rules in kernels/gemm.py (choose_tile, split_k) were set from sweeps on NVIDIA H100/H200 boxes; another GPU
(or the odd shape the rules did not foresee) may run best with another tile or K split. With tuning on, the first
time a GEMM shape is built, its candidate variants are each timed on the GPU (the same op on fresh data, its
kernels run back to back as in a model, GPU timestamps where the adapter has them) and the fastest is kept for
that shape: in memory, and in a JSON file per user (`cache_file()`), keyed by adapter, driver and kernel code,
so the next process pays nothing. The rules' choice stays unless a candidate beats it by KEEP_RULE_WITHIN.

    tinydl.tuning.enable()       # or TINYDL_TUNE=1 in the environment; off by default
    y = model(x)                 # the first call of each new shape measures its candidates (seconds, once)

Off by default: tuning a model costs seconds of compiling and timing on its first call, and on the GPUs the
rules were measured on it gains little (docs/benchmarks.md); where it found nothing, results are identical.
TINYDL_CACHE_DIR moves the cache (default: the platform's user cache dir, e.g. ~/.cache/tinydl).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from .kernels import gemm

ENV, CACHE_ENV = "TINYDL_TUNE", "TINYDL_CACHE_DIR"
FORMAT = 1
KEEP_RULE_WITHIN = 0.03  # a candidate must beat the rules' choice by 3 % to replace it (timing noise)
TIMED_SECONDS = 2e-3     # GPU time per timed submit: the op's kernels repeated (at most MAX_COPIES) to fill it
MAX_COPIES = 64
RUNS = 5                 # timed submits per candidate (median)
STAGE2_TILES = 2         # tiles whose other splits are measured, after each tile's first try
TILES: tuple[str, ...] | None = None  # tiles tuning may pick from (None: all); tests narrow it

_loaded_for: list = [None]  # the adapter key whose choices gemm.TUNED holds (loaded once per process)


def enabled() -> bool:
    return gemm.TUNER is not None


def enable(on: bool = True) -> None:
    """Turn tuning on (new shapes are measured as they are first built; measured ones come from the cache) or
    off (the rules alone). Plans cached so far are dropped, as their kernels may change."""
    from . import schedule
    gemm.TUNER = _tune if on else None
    gemm.TUNED.clear()
    _loaded_for[0] = None
    schedule.clear_cache()


def cache_file() -> Path:
    """The JSON file of measured choices: $TINYDL_CACHE_DIR/tuning.json, else in the user cache dir."""
    root = os.environ.get(CACHE_ENV, "").strip()
    if not root:
        import platformdirs
        root = platformdirs.user_cache_dir("tinydl")
    return Path(root) / "tuning.json"


def choices() -> dict[str, tuple[str, int]]:
    """The measured choices this process uses, by shape ('f32 batch 1: 1024 x 2304 x 768 plain' -> (tile, split))."""
    _load()
    return {_label(k): v for k, v in gemm.TUNED.items()}


# -- the measurement -----------------------------------------------------------------------------------------
def _tune(key: tuple, candidates: dict, rule: tuple[str, int], bench) -> tuple[str, int]:
    """gemm.TUNER: the fastest (tile, split) of `candidates` (tile -> splits, the first its fill-the-GPU try)
    for the op bench() builds; measured in two stages (each tile's first try, then the other splits of the
    STAGE2_TILES fastest tiles); kept in gemm.TUNED and the cache file."""
    _load()
    if key in gemm.TUNED:
        return gemm.TUNED[key]
    if TILES is not None:
        candidates = {t: s for t, s in candidates.items() if t in TILES}
    times: dict[tuple[str, int], float] = {}

    def time_of(tile: str, split: int) -> float:
        if (tile, split) not in times:
            times[(tile, split)] = _measure(bench, tile, split)
        return times[(tile, split)]
    rule_time = time_of(*rule)
    firsts = {tile: time_of(tile, splits[0]) for tile, splits in candidates.items()}
    for tile in sorted(firsts, key=firsts.get)[:STAGE2_TILES]:
        for split in candidates[tile][1:]:
            time_of(tile, split)
    best = min(times, key=times.get)
    if not times[best] < rule_time * (1 - KEEP_RULE_WITHIN):
        best = rule
    gemm.TUNED[key] = best
    _save(key, best, times[best], rule, rule_time)
    return best


def _measure(bench, tile: str, split: int) -> float:
    """Seconds of GPU time of bench()'s kernels under the forced variant (inf where the variant fails)."""
    from . import schedule
    from .runtime import get_runtime
    rt = get_runtime()
    saved = gemm.FORCE_TILE, gemm.FORCE_SPLIT_K
    gemm.FORCE_TILE, gemm.FORCE_SPLIT_K = tile, split
    try:
        dispatches, out = schedule.kernels_for(bench())
    except Exception:  # noqa: BLE001 - a variant this shape or adapter cannot take is not a candidate
        return math.inf
    finally:
        gemm.FORCE_TILE, gemm.FORCE_SPLIT_K = saved
    try:
        first = _seconds(rt, dispatches, out, 1)  # compiles nothing more; warms the GPU, sizes the copies
        copies = max(2, min(MAX_COPIES, math.ceil(TIMED_SECONDS / max(first, 1e-7))))
        return statistics.median(_seconds(rt, dispatches, out, copies) for _ in range(RUNS)) / copies
    finally:
        rt.release(out)


def _seconds(rt, dispatches: list, out, copies: int) -> float:
    """GPU seconds of `copies` runs of the dispatches back to back (each waits for the one before: they write
    the same buffers): by timestamps, or where the adapter lacks them by the clock until a read-back returns."""
    gpu = rt.gpu_seconds(dispatches * copies)
    if gpu is not None:
        return gpu
    t0 = time.perf_counter()
    rt.submit(dispatches * copies, [(out, 16)])
    return time.perf_counter() - t0


def random_like(shape: tuple, dtype):
    """Fresh data of a shape and float dtype for a tuning op (its values do not change its speed)."""
    from .tensor import tensor
    data = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    return tensor(data.astype(np.float16) if dtype.itemsize == 2 else data)


# -- the cache file ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _adapter_key() -> str:
    """Whose measurements these are: the adapter, its backend and driver, and the kernel code that ran."""
    from . import __version__
    from .runtime import get_runtime
    rt = get_runtime()
    code = hashlib.sha1()
    for f in sorted(Path(gemm.__file__).parent.glob("*.py")):
        code.update(f.read_bytes())
    info = rt.adapter.info
    return " | ".join([rt.adapter_name, rt.backend, str(info.get("description", "")),
                       f"tinydl {__version__}", f"kernels {code.hexdigest()[:12]}"])


def _label(key: tuple) -> str:
    itemsize, batch, M, N, K, gather = key
    reads = {False: "plain", True: "gathered", "tap": "tap-major"}[gather]
    return f"f{8 * itemsize} batch {batch}: {M} x {N} x {K} {reads}"


def _read() -> dict:
    path = cache_file()
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a format-{FORMAT} tuning cache")
        return data
    except FileNotFoundError:
        return {"format": FORMAT, "adapters": {}}
    except (OSError, ValueError) as e:
        warnings.warn(f"tinydl: ignoring the tuning cache {path} ({e}); shapes will be measured again",
                      stacklevel=3)
        return {"format": FORMAT, "adapters": {}}


def _load() -> None:
    """This adapter's measured choices into gemm.TUNED, once per process (and after enable())."""
    adapter = _adapter_key()
    if _loaded_for[0] == adapter:
        return
    _loaded_for[0] = adapter
    for label, entry in _read().get("adapters", {}).get(adapter, {}).items():
        key = _parse_label(label)  # stored under their labels, which read better in the file
        try:
            choice = (str(entry["tile"]), int(entry["split"]))
        except (TypeError, KeyError, ValueError):
            continue
        if key is not None and choice[0] in gemm.TILES and choice[1] >= 1:
            gemm.TUNED.setdefault(key, choice)


def _parse_label(label: str) -> tuple | None:
    try:
        head, dims = label.split(": ")
        f, _, batch = head.split(" ")
        M, _, N, _, K, reads = dims.split(" ")
        gather = {"plain": False, "gathered": True, "tap-major": "tap"}[reads]
        return (int(f[1:]) // 8, int(batch), int(M), int(N), int(K), gather)
    except (ValueError, KeyError):
        return None


def _save(key: tuple, best: tuple[str, int], seconds: float, rule: tuple[str, int], rule_seconds: float) -> None:
    """Add one measured choice to the cache file (read again first: another process may have added some),
    written to a temporary file and renamed over it, so a reader never sees half a file."""
    path = cache_file()
    data = _read()
    entries = data.setdefault("adapters", {}).setdefault(_adapter_key(), {})
    entries[_label(key)] = {"tile": best[0], "split": best[1], "us": round(seconds * 1e6, 2),
                            "rule": [rule[0], rule[1]], "rule_us": round(rule_seconds * 1e6, 2)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"tinydl: cannot write the tuning cache {path} ({e}); measured choices last this process "
                      f"only", stacklevel=3)


def _from_environment() -> None:
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "0", "false", "off", "no"):
        return
    if value not in ("1", "true", "on", "yes"):
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected 1 (tune GEMM variants on this GPU) or 0 (off)")
    gemm.TUNER = _tune


_from_environment()
