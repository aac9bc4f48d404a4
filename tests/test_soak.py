"""Soak: 1,000 forwards of a converted small CNN give bit-identical outputs every call, and memory stays flat after
warm-up: a bounded number of new GPU buffers, no new plans or pipelines, bounded host memory.
(The long run on a real GPU is benchmarks/soak.py.)"""
import gc
import tracemalloc

import numpy as np
import torch
import torch.nn as tnn

import tinydl
from tinydl import debug
from tinydl.runtime import get_runtime

CALLS = 1000
WARMUP = 20


def small_cnn():
    torch.manual_seed(0)
    m = tnn.Sequential(
        tnn.Conv2d(3, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(8, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1),
        tnn.Flatten(), tnn.Linear(16, 10))
    for bn in (m[1], m[5]):  # non-trivial running statistics, so BN is not an identity
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_soak_bit_identical_and_flat_memory(monkeypatch):
    tm = small_cnn()
    model = tinydl.from_torch(tm)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    first = model(x).numpy()
    np.testing.assert_allclose(first, tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)

    rt = get_runtime()
    created = []
    real_create = type(rt.device).create_buffer
    monkeypatch.setattr(type(rt.device), "create_buffer",
                        lambda self, *a, **k: created.append(1) or real_create(self, *a, **k))

    for _ in range(WARMUP):
        model(x).numpy()
    plans, pipelines = debug.stats["plans"], debug.stats["pipelines"]
    created.clear()
    gc.collect()  # measured without cyclic garbage, which the collector frees at its own pace
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    differ = 0
    for _ in range(CALLS):
        out = model(x).numpy()
        differ += not np.array_equal(out.view(np.uint32), first.view(np.uint32))  # bits, NaN-safe
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert differ == 0, f"{differ} of {CALLS} calls differ from the first call's bits"
    # A call's input and output buffers return to the pool when their tensors die; some die only when Python's
    # cycle collector runs, so a few dozen extra buffers are normal (seen: 35 in 3,000 calls, none after 1,000).
    # A leak of one buffer per call would be 1,000.
    assert len(created) < CALLS // 10, f"{len(created)} GPU buffers created in {CALLS} calls after warm-up"
    assert (debug.stats["plans"], debug.stats["pipelines"]) == (plans, pipelines), "replays planned or compiled"
    # generous (seen: 33 KB, the bind-group cache settling); a leak of one small object per call would show
    assert grown < 256 * 1024, f"host memory grew by {grown} bytes over {CALLS} calls"
