"""The benchmark table as a bar chart (matplotlib, the `bench` extra)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

MISSING = "matplotlib is not installed: pip install 'tinydl[bench]' (or pip install matplotlib)"


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None

COLUMNS = [("tinydl_ms", "tinydl"), ("tinydl_tuned_ms", "tinydl tuned"), ("tinydl_fp16_ms", "tinydl fp16"),
           ("torch_cuda_ms", "torch CUDA eager"),
           ("ort_webgpu_ms", "ORT-WebGPU"), ("torch_cpu_ms", "torch CPU")]


def plot(records, header, path: Path) -> None:
    """Grouped bars: one group per model x batch, one bar per measured column (log scale: CPU and GPU peers
    differ by 10-100x)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"--plot: {MISSING}; no chart written", file=sys.stderr)
        return
    cols = [(k, label) for k, label in COLUMNS if any(r.get(k) for r in records)]
    groups = [f"{r['model']}\nbatch {r['batch']}" for r in records]
    width = 0.8 / max(len(cols), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(groups)), 4.5))
    for i, (k, label) in enumerate(cols):
        xs = [g + (i - (len(cols) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [r.get(k) or 0 for r in records], width, label=label)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("median end-to-end ms (lower is better)")
    ax.set_title(f"{header['device']} ({header['backend']}), {header['date']}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"chart: {path}", file=sys.stderr)
