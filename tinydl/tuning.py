"""Autotuning: the GEMM variant (tile x split-K) of each matmul / conv shape measured on this GPU, cached on disk.

The rules in kernels/gemm.py (choose_tile, split_k) were set from sweeps on NVIDIA H100/H200 boxes; another GPU
(or the odd shape the rules did not foresee) may run best with another tile or K split. With tuning on, the first
time a GEMM shape is built, its candidate variants are each timed on the GPU (the same op on fresh data, its
kernels run back to back as in a model, GPU timestamps where the adapter has them) and the fastest is kept for
that shape: in memory, and in a JSON file per user (`cache_file()`), keyed by adapter, driver and kernel code,
so the next process pays nothing. The rules' choice stays unless a candidate beats it by KEEP_RULE_WITHIN.
A shape is the GEMM's batch, M, N, K, how it reads its operand (plain, gathered, tap-major) and its float size
(gemm.tune_key): two ops alike in all of these (a 1x1 conv and a matmul of the same dims) share one measurement.

    with tinydl.options(tune=True):   # or TINYDL_TUNE=1 in the environment (the default); off by default
        y = model(x)                  # the first call of each new shape measures its candidates (seconds, once)

Tuning is a chooser passed into lowering (schedule/lower.py, on a plan-cache miss) when Options.tune is set:
`Tuner`, which measures a GEMM shape it has no choice for, then chooses as the rules do (a measured choice
overrides them: gemm.TUNED). Options.tune is a planning field, so plans made with and without tuning never mix.

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

from . import options, schedule
from ._tensor import Tensor, tensor
from ._version import __version__
from .kernels import gemm
from .ops import MATMUL, Node
from .options import Options
from .runtime import get_runtime
from .schedule.lower import Rules

ENV, CACHE_ENV = options.TUNE_ENV, "TINYDL_CACHE_DIR"
FORMAT = 1
KEEP_RULE_WITHIN = 0.03  # a candidate must beat the rules' choice by 3 % to replace it (timing noise)
# what each kernel costs besides its GPU time, counted into a candidate's time: the host encodes every dispatch
# of a forward (~5 us each with wgpu's validation, see Options.pre_encode), and batch-1 models are host-bound.
# Without it tuning split BERT-b1's probs @ v in 4 (7.1 -> 6.2 us of GPU time, a sum kernel more per layer)
KERNEL_COST_S = 5e-6
TIMED_SECONDS = 2e-3     # GPU time per timed submit: the op's kernels repeated (at most MAX_COPIES) to fill it
MAX_COPIES = 64
STAGE2_TILES = 2         # tiles whose other splits are measured, after each tile's first try

_loaded_for: list = [None]  # the adapter key whose choices gemm.TUNED holds (loaded once per process)


class Tuner(Rules):
    """Lowering's chooser with tuning on: a GEMM shape without a measured choice is measured first (_tune; not
    under forced variants, nor for a gemv), then chosen for as the rules do, which prefer a measured choice."""

    def split(self, node: Node, batch: int, M: int, N: int, K: int, divides: int, gather: bool | str,
              itemsize: int, opts: Options) -> int:
        key = gemm.tune_key(batch, M, N, K, gather, itemsize)
        rule = gemm.rule_tile(batch, M, N, K, gather)
        if key not in gemm.TUNED and opts.force_tile is None and opts.force_split_k is None and rule not in gemm.GEMV_LANES:
            _tune(key, gemm.tuning_candidates(batch, M, N, K, divides, gather, opts),
                  (rule, gemm.rule_split(rule, batch, M, N, K, divides, gather)), lambda: _fresh(node), opts)
        return super().split(node, batch, M, N, K, divides, gather, itemsize, opts)


TUNER = Tuner()
schedule.register_tuner(TUNER)  # the chooser planning takes under Options.tune


def enabled() -> bool:
    """Whether the Options in effect tune."""
    return options.current().tune


def enable(on: bool = True) -> None:
    """Options.tune on or off from here on in this context (this thread; `with tinydl.options(tune=...)` for a
    block). The measured choices are read again from the cache file, and the plans cached so far dropped (the
    rules prefer measured choices)."""
    options.update(tune=on)
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
def _tune(key: tuple, candidates: dict, rule: tuple[str, int], bench, opts: Options) -> tuple[str, int]:
    """The fastest (tile, split) of `candidates` (tile -> splits, the first its fill-the-GPU try)
    for the op bench() builds, in two races: each tile's first try (and the rules' choice), then every split of
    the STAGE2_TILES fastest tiles (with the rules' choice again); kept in gemm.TUNED and the cache file."""
    _load()
    if key in gemm.TUNED:
        return gemm.TUNED[key]
    if opts.tune_tiles is not None:
        candidates = {t: s for t, s in candidates.items() if t in opts.tune_tiles}
    built: dict[tuple[str, int], tuple | None] = {}
    _shared_inputs.clear()  # every candidate reads the same fresh inputs
    try:
        first = _race([rule] + [(tile, splits[0]) for tile, splits in candidates.items()], bench, built, opts)
        leaders = sorted({c[0] for c in first}, key=lambda t: min(v for c, v in first.items() if c[0] == t))
        second = _race([rule] + [(t, s) for t in leaders[:STAGE2_TILES] for s in candidates.get(t, [rule[1]])],
                       bench, built, opts)
    finally:
        _shared_inputs.clear()
        for b in built.values():
            if b is not None:
                get_runtime().release(b[1])
    best = min(second, key=second.get)
    if not second[best] < second[rule] * (1 - KEEP_RULE_WITHIN):
        best = rule
    gemm.TUNED[key] = best
    _save(key, best, second[best], rule, second[rule])
    return best


def _race(choices: list, bench, built: dict, opts: Options | None = None) -> dict:
    """Seconds per run of each choice's kernels (inf where it cannot be built): GPU time, measured in turns:
    opts.tune_warm_seconds of runs first (GPUs raise their clocks only under load), then opts.tune_rounds rounds of one timed
    submit each (the kernels repeated to fill TIMED_SECONDS), so every choice meets the same clocks; medians;
    plus KERNEL_COST_S per kernel."""
    rt = get_runtime()
    opts = opts or options.current()
    choices = list(dict.fromkeys(choices))
    new = [c for c in choices if c not in built]
    rt.compile_all(w for c in new for w in _forced(c, lambda: schedule.shaders_for(bench()), []))
    for c in new:
        built[c] = _forced(c, lambda: schedule.kernels_for(bench()), None)
    live = [c for c in choices if built[c] is not None]
    per_run = {c: run_seconds(*built[c], 1) for c in live}
    copies = {c: 1 for c in live}
    t_end = time.perf_counter() + opts.tune_warm_seconds
    while live and time.perf_counter() < t_end:
        for c in live:
            per_run[c] = run_seconds(*built[c], copies[c]) / copies[c]
            copies[c] = max(1, min(MAX_COPIES, math.ceil(TIMED_SECONDS / max(per_run[c], 1e-7))))
    runs: dict = {c: [] for c in live}
    for r in range(opts.tune_rounds if live else 0):  # each round in another order: clocks still settling favour no one
        for c in live[r % len(live):] + live[:r % len(live)]:
            runs[c].append(run_seconds(*built[c], copies[c]) / copies[c])
    return {c: statistics.median(runs[c]) + KERNEL_COST_S * len(built[c][0]) if c in runs else math.inf
            for c in choices}


def _forced(choice: tuple[str, int], fn, failed):
    """fn() with the GEMM variant forced to choice = (tile, split); `failed` where the variant cannot be built."""
    try:
        with options.use(force_tile=choice[0], force_split_k=choice[1], runtime_sizes=False):  # each as it is
            return fn()
    except Exception:  # noqa: BLE001 - a variant this shape or adapter cannot take is not a candidate
        return failed


def run_seconds(dispatches: list, out, copies: int) -> float:
    """GPU seconds of `copies` runs of the dispatches back to back (each waits for the one before: they write
    the same buffers): by timestamps at the start and end of their one compute pass, or where the adapter lacks
    them by the clock until a read-back of `out` queued after them returns (which also counts the host's
    encoding). Tuning's measure, and the benchmarks' (benchmarks.run.busy_gpu_ms)."""
    rt = get_runtime()
    gpu = rt.gpu_seconds(dispatches * copies)
    if gpu is not None:
        return gpu
    t0 = time.perf_counter()
    rt.submit(dispatches * copies, [(out, 16)])
    return time.perf_counter() - t0


def _fresh(node: Node):
    """The op of a MATMUL or CONV node (as the tensor API built it) on fresh data, its operands laid out as node's
    (transposed or not): what a race times."""
    if node.kind == MATMUL:
        a, b = node.srcs
        (B, M, K), N = a.shape, b.shape[2]
        a_t, b_t = gemm.last_two_swapped(a), gemm.last_two_swapped(b)
        x = random_like((B, K, M) if a_t else (B, M, K), node.dtype)
        y = random_like((B, N, K) if b_t else (B, K, N), node.dtype)
        srcs = ((x.transpose(1, 2) if a_t else x).node, (y.transpose(1, 2) if b_t else y).node)
    else:
        srcs = tuple(random_like(s.shape, node.dtype).node for s in node.srcs)
    return Tensor(Node(node.kind, node.op, srcs, node.arg, node.shape, node.dtype))


_shared_inputs: dict = {}  # (shape, float size) -> tensor, while a shape is tuned


def random_like(shape: tuple, dtype):
    """Data of a shape and float dtype for a tuning op (its values do not change its speed); the same tensor for
    every candidate of one tuning."""
    key = (tuple(shape), dtype.itemsize)
    if key not in _shared_inputs:
        data = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        _shared_inputs[key] = tensor(data.astype(np.float16) if dtype.itemsize == 2 else data)
    return _shared_inputs[key]


# -- the cache file ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _adapter_key() -> str:
    """Whose measurements these are: the adapter, its backend and driver, and the kernel code that ran."""
    rt = get_runtime()
    code = hashlib.sha1()
    for f in sorted(Path(gemm.__file__).parent.glob("*.py")):
        code.update(f.read_bytes())
    info = rt.adapter.info
    return " | ".join([rt.adapter_name, rt.backend, rt.webgpu.name, str(info.get("description", "")),
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

