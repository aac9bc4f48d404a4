"""`tinydl info`: the adapters wgpu finds, the one tinydl picks and why, what it can do, where caches live."""
from __future__ import annotations

import json
import platform

import typer
from tabulate import tabulate

from .errors import reported

HELP = """The adapters found, the one tinydl runs on and why, the features and limits that matter, and where the
tuning cache lives.

Examples:

\b
  tinydl info
  TINYDL_ADAPTER=1 tinydl info        # what tinydl would run on with adapter 1
  TINYDL_BACKEND=dawn tinydl info     # the adapters Dawn finds (pip install 'tinydl[dawn]')
  tinydl info --json
"""

# (feature, what tinydl uses it for)
FEATURES = (("shader-f16", "float16 tensors (model.half())"), ("subgroup", "subgroup row kernels (wgpu-native)"),
            ("subgroups", "subgroup row kernels (Dawn)"),
            ("chromium-experimental-subgroup-matrix", "tensor-core float16 GEMMs (Dawn)"),
            ("timestamp-query", "per-kernel GPU times (tinydl profile)"))
# (limit, label, in bytes)
LIMITS = (("max-storage-buffer-binding-size", "largest storage binding", True),
          ("max-buffer-size", "largest buffer", True),
          ("max-storage-buffers-per-shader-stage", "storage buffers per kernel", False),
          ("max-compute-workgroup-storage-size", "workgroup memory", True),
          ("max-compute-invocations-per-workgroup", "threads per workgroup", False),
          ("max-compute-workgroups-per-dimension", "workgroups per dimension", False))


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit} ({n})"
    return f"{n} B"


def describe() -> dict:
    """What `tinydl info` prints, as data: adapters, the choice and why, features, limits, caches."""
    import wgpu

    from .. import adapter, tuning, webgpu
    from .._version import __version__
    found = adapter.list_adapters()
    chosen, why = adapter.choose(found)
    cache = tuning.cache_file()
    return {
        "tinydl": __version__, "wgpu": wgpu.__version__, "python": platform.python_version(),
        "webgpu": webgpu.canonical(None),
        "adapters": [{"index": i, "name": a.info.get("device", "") or a.summary, "backend": a.info.get("backend_type", ""),
                      "type": a.info.get("adapter_type", ""), "driver": a.info.get("description", "")}
                     for i, a in enumerate(found)],
        "chosen": found.index(chosen), "why": why,
        "features": {f: f in chosen.features for f, _ in FEATURES},
        "limits": {k: chosen.limits[k] for k, _, _ in LIMITS if k in chosen.limits},
        "tuning_cache": str(cache), "tuning_cache_exists": cache.exists(),
    }


@reported
def info(as_json: bool = typer.Option(False, "--json", help="Print the same as one JSON object.")):
    d = describe()
    if as_json:
        typer.echo(json.dumps(d, indent=1))
        return
    typer.echo(f"tinydl {d['tinydl']} (wgpu {d['wgpu']}, Python {d['python']}); WebGPU implementation: "
               f"{d['webgpu']} (TINYDL_BACKEND)\n")
    rows = [[("* " if a["index"] == d["chosen"] else "  ") + str(a["index"]), a["name"], a["backend"], a["type"],
             a["driver"]] for a in d["adapters"]]
    typer.echo(tabulate(rows, headers=["index", "name", "backend", "type", "driver"], disable_numparse=True))
    chosen = d["adapters"][d["chosen"]]
    typer.echo(f"\nruns on: {d['chosen']}: {chosen['name']} via {chosen['backend']}\nwhy: {d['why']}\n")
    typer.echo(tabulate([[f, "yes" if d["features"][f] else "no", use] for f, use in FEATURES],
                        headers=["feature", "has it", "used for"]))
    typer.echo()
    typer.echo(tabulate([[label, _size(d["limits"][k]) if nbytes else d["limits"][k]]
                         for k, label, nbytes in LIMITS if k in d["limits"]], headers=["limit", "value"],
                        disable_numparse=True))
    typer.echo(f"\ntuning cache: {d['tuning_cache']} ({'present' if d['tuning_cache_exists'] else 'none yet'}; "
               "TINYDL_CACHE_DIR moves it; `tinydl cache` lists every cache)")
