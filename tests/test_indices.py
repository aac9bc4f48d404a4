"""Indices out of range never give a wrong answer (issue 18, class 4).

Indices known on the host (ints, lists, numpy arrays, torch tensors) raise at the call with torch's exception
and message. Indices that live on the GPU are checked by the kernel that uses them, which reports a violation
into the runtime's status buffer (tinydl/checks.py); the read-back that follows raises IndexError.
"""
import numpy as np
import pytest
import torch

import tinydl
import tinydl.nn.functional as F
from tinydl import checks
from tinydl.jit import jit
from tinydl.testing import assert_close


def _gpu_int(values):
    return tinydl.tensor(np.asarray(values, np.int32))


# -- the mechanism ---------------------------------------------------------------------------------------
def test_gpu_index_out_of_range_raises_at_read_and_flag_resets(runtime):
    w = tinydl.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    with pytest.raises(IndexError, match="index out of range in self"):
        F.embedding(_gpu_int([1, 9]), w).numpy()
    assert not runtime.status.dirty
    # the flag was reset: a correct call afterwards works, and unrelated reads do not raise
    assert_close(F.embedding(_gpu_int([3, 0]), w), np.arange(12, dtype=np.float32).reshape(4, 3)[[3, 0]])
    assert_close(w + 1, np.arange(12, dtype=np.float32).reshape(4, 3) + 1)


def test_result_realized_without_read_back_raises_when_read(runtime):
    w = tinydl.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    bad = F.embedding(_gpu_int([0, -1]), w)  # embedding refuses negative indices, as torch
    bad.realize()
    other = w * 2
    with pytest.raises(IndexError, match="index out of range in self"):
        other.numpy()  # the first read-back after the kernel ran reports it (as CUDA's device-side asserts)
    with pytest.raises(IndexError, match="index out of range in self"):
        bad.numpy()  # and the bad result stays bad: never a wrong number
    with pytest.raises(IndexError, match="index out of range in self"):
        (bad + 1).numpy()  # nor anything computed from it
    assert_close(other, np.arange(12, dtype=np.float32).reshape(4, 3) * 2)


def test_checked_and_clean_kernels_bind_status_only_when_needed():
    from tinydl import schedule
    w = tinydl.tensor(np.ones((4, 3), np.float32))
    y = F.embedding(_gpu_int([1, 2]), w) + 1
    order, sig, pos = schedule.walk([y.node])
    plan = schedule.plan_for(order, sig, [pos[y.node.uid]])
    assert [s.checks for s in plan.steps] == [int(checks.Code.INDEX)]
    assert "td_status" in plan.steps[0].wgsl
    z = w * 2 + 1  # no checks: no status binding, nothing extra in the shader
    order, sig, pos = schedule.walk([z.node])
    plan = schedule.plan_for(order, sig, [pos[z.node.uid]])
    assert [s.checks for s in plan.steps] == [0] and "td_status" not in plan.steps[0].wgsl


def test_status_counts_toward_the_binding_limit(runtime, monkeypatch):
    """A gather kernel reading as many buffers as the limit allows is split: the status buffer is one more."""
    from tinydl import schedule
    limit = 4  # output + 2 inputs + status
    monkeypatch.setattr(runtime, "max_storage_buffers", limit)
    schedule.clear_cache()
    try:
        w = tinydl.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
        b = tinydl.tensor(np.ones((2, 3), np.float32))
        y = F.embedding(_gpu_int([1, 2]), w) + b  # reads idx, w, b: 3 inputs + out + status = 5 > 4
        order, sig, pos = schedule.walk([y.node])
        plan = schedule.plan_for(order, sig, [pos[y.node.uid]])
        for s in plan.steps:
            assert len(s.inputs) + 1 + (s.checks != 0) <= limit
        assert_close(y, np.arange(12, dtype=np.float32).reshape(4, 3)[[1, 2]] + 1)
    finally:
        schedule.clear_cache()


def test_jit_replay_checks_indices():
    w = tinydl.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    f = jit(lambda i: F.embedding(i, w) * 2)
    ref = np.arange(12, dtype=np.float32).reshape(4, 3) * 2
    assert_close(f(_gpu_int([1, 2])), ref[[1, 2]])
    assert_close(f(_gpu_int([3, 0])), ref[[3, 0]])  # a replay
    out = f(_gpu_int([3, 4]))
    with pytest.raises(IndexError, match="index out of range in self"):
        out.numpy()
    assert_close(f(_gpu_int([2, 2])), ref[[2, 2]])
