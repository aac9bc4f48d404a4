"""A kernel that fails raises runtime.KernelError naming it (never hands back a pooled buffer's old contents), and
leaves no half state: nothing marked realized, no plan or capture kept as good, earlier work intact, later calls
fine. Faults are forced with tinydl.debug.inject_fault at each stage the runtime has."""
import gc

import numpy as np
import pytest

import tinydl
from tinydl import debug, runtime, schedule
from tinydl.capture import jit

STAGES = runtime.FAULT_STAGES  # shader, pipeline, bind group, encode, submit, map


def _poison_pool(n: int, value: float = 1234.5) -> None:
    """Leave buffers of n float32 holding `value` in the pool, as earlier results do."""
    junk = [tinydl.full((n,), value).realize() for _ in range(4)]
    [j.numpy() for j in junk]
    del junk
    gc.collect()


def _name_of(make) -> str:
    """The kernel name of the one-kernel realization make() builds, as debug.last_kernels() reports it."""
    make().numpy()
    (name,) = debug.last_kernels()
    return name


@pytest.mark.parametrize("stage", STAGES)
def test_failing_kernel_raises_naming_it_and_leaves_no_half_state(stage, rng):
    host = rng.standard_normal(37).astype(np.float32)
    x = tinydl.tensor(host)
    name = _name_of(lambda: x * 3.5 + 1)
    _poison_pool(37)
    y = x * 3.5 + 1
    plans = debug.stats["plans"]
    with debug.inject_fault(stage, name):
        with pytest.raises(runtime.KernelError) as e:
            y.numpy()
    err = e.value
    assert err.stage == stage and err.kernels == [name]
    assert name in str(err) and f"failed at {stage}" in str(err)
    if stage in ("shader", "pipeline", "bind group", "encode"):  # one kernel to blame: its source comes along
        assert err.wgsl is not None and "fn main" in err.wgsl and err.wgsl in str(err)
    assert not y.node.stored  # not marked realized: reading it computes it (never the pool's old contents)
    np.testing.assert_allclose(y.numpy(), host * 3.5 + 1, rtol=1e-6)
    assert debug.last_kernels() == [name]
    assert debug.stats["plans"] == plans + 1  # the plan was not kept as good: planned again after the failure
    np.testing.assert_allclose((x * 3.5 + 1).numpy(), host * 3.5 + 1, rtol=1e-6)  # and it is cached now
    assert debug.stats["plans"] == plans + 1


@pytest.mark.parametrize("stage", ["bind group", "encode", "submit"])
def test_failure_keeps_earlier_pending_work(stage, rng):
    """A realization without read-back leaves its last kernels pending for the next submit; if that next submit
    fails, the earlier result must still be computed, not left holding the pool's old contents."""
    host = rng.standard_normal(64).astype(np.float32)
    x = tinydl.tensor(host)
    name = _name_of(lambda: x - 7)
    _poison_pool(64)
    a = (x * 5).realize()  # pending: rides in the next submit
    with debug.inject_fault(stage, name):
        with pytest.raises(runtime.KernelError, match="failed at"):
            (x - 7).numpy()
    np.testing.assert_allclose(a.numpy(), host * 5, rtol=1e-6)


def test_the_failing_kernel_is_named_among_several(rng):
    x = tinydl.tensor(rng.standard_normal((8, 16)).astype(np.float32))
    w = tinydl.tensor(rng.standard_normal((16, 4)).astype(np.float32))

    def make():
        h = (x @ w).relu()
        return (h - h.mean(1, keepdim=True)).exp()
    make().numpy()
    names = debug.last_kernels()
    assert len(names) >= 2
    for victim in names:
        for stage in ("bind group", "encode"):
            with debug.inject_fault(stage, victim):
                with pytest.raises(runtime.KernelError) as e:
                    make().numpy()
            assert e.value.kernels == [victim] and e.value.stage == stage
            assert repr(victim) in str(e.value)
    ref = make().numpy()
    assert np.isfinite(ref).all()


def test_failed_replay_drops_the_capture_and_later_calls_work(rng):
    host = rng.standard_normal((4, 6)).astype(np.float32)
    f = jit(lambda t: (t * 2).relu() + 1)
    expected = np.maximum(host * 2, 0) + 1
    np.testing.assert_allclose(f(tinydl.tensor(host)).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(f(tinydl.tensor(host)).numpy(), expected, rtol=1e-6)  # a replay
    assert len(f.captures) == 1
    with debug.inject_fault("submit", ""):
        with pytest.raises(runtime.KernelError) as e:
            f(tinydl.tensor(host))
    assert e.value.stage == "submit" and e.value.kernels and "relu" in str(e.value)
    assert not f.captures  # dropped: not replayed again as good
    for _ in range(3):
        np.testing.assert_allclose(f(tinydl.tensor(host)).numpy(), expected, rtol=1e-6)
    assert len(f.captures) == 1


def test_failed_pre_encoding_raises_at_the_next_replay(rng):
    """A replay encodes the next one ahead; if that fails, this call's results stand and the next call, which
    encodes its own, raises."""
    host = rng.standard_normal(10).astype(np.float32)
    f = jit(lambda t: t.exp() * 0.5)
    f(tinydl.tensor(host))
    f(tinydl.tensor(host))
    with debug.count_kernels() as c:
        f(tinydl.tensor(host)).numpy()
    (name,) = c.names
    with debug.inject_fault("encode", name):
        y = f(tinydl.tensor(host))  # submits what the last call encoded; encoding the next one fails
        np.testing.assert_allclose(y.numpy(), np.exp(host) * 0.5, rtol=1e-6)
        with pytest.raises(runtime.KernelError, match="failed at encode") as e:
            f(tinydl.tensor(host))
        assert e.value.kernels == [name]
    np.testing.assert_allclose(f(tinydl.tensor(host)).numpy(), np.exp(host) * 0.5, rtol=1e-6)


def test_inject_fault_checks_its_stage():
    with pytest.raises(ValueError, match="unknown stage 'compile'"):
        with debug.inject_fault("compile", "x"):
            pass


def test_device_lost_raises_at_every_call(monkeypatch):
    """A lost device (here destroyed) fails every later call with DeviceLostError, the kernel named; it runs on a
    runtime of its own so the session's device survives."""
    rt = runtime.Runtime()
    schedule.clear_cache()  # plans hold the pipelines of the device that made them
    monkeypatch.setattr(runtime, "_runtime", rt)
    try:
        x = tinydl.tensor(np.arange(6, dtype=np.float32))
        np.testing.assert_array_equal((x + 1).numpy(), np.arange(6) + 1)
        (name,) = debug.last_kernels()
        rt.device.destroy()
        with pytest.raises(runtime.DeviceLostError, match="device was lost") as e:
            (x + 1).numpy()
        assert e.value.kernels == [name] and e.value.stage == "device lost"
        with pytest.raises(runtime.DeviceLostError):
            (x * 9).numpy()
        with pytest.raises(runtime.DeviceLostError, match="upload|allocation"):
            tinydl.tensor(np.ones(3, np.float32))
        assert rt.lost
    finally:
        monkeypatch.undo()
        schedule.clear_cache()
    np.testing.assert_array_equal((tinydl.tensor(np.ones(3, np.float32)) * 2).numpy(), [2, 2, 2])


def test_device_lost_while_reading_back(monkeypatch):
    """The device lost between a submit and its read-back's map: DeviceLostError (wgpu's map message says why),
    never a hang or the staging buffer's old bytes."""
    rt = runtime.Runtime()
    schedule.clear_cache()
    monkeypatch.setattr(runtime, "_runtime", rt)
    try:
        x = tinydl.tensor(np.arange(6, dtype=np.float32))
        np.testing.assert_array_equal((x * 2).numpy(), np.arange(6) * 2)
        (name,) = debug.last_kernels()
        map_read = rt._map_read

        def lose_then_map(buffers, *args):
            rt.device.destroy()
            return map_read(buffers, *args)
        monkeypatch.setattr(rt, "_map_read", lose_then_map)
        y = x * 2
        with pytest.raises(runtime.DeviceLostError, match="seen at map") as e:
            y.numpy()
        assert e.value.kernels == [name] and not y.node.stored
    finally:
        monkeypatch.undo()
        schedule.clear_cache()


def test_failed_first_call_of_a_jit_keeps_no_capture(rng):
    host = rng.standard_normal(12).astype(np.float32)
    f = jit(lambda t: (t - 0.5).abs() * 3)
    name = _name_of(lambda: (tinydl.tensor(host) - 0.5).abs() * 3)
    with debug.inject_fault("encode", name):
        with pytest.raises(runtime.KernelError, match="failed at encode"):
            f(tinydl.tensor(host))
    assert not f.captures
    plans = debug.stats["plans"]
    y = f(tinydl.tensor(host))
    assert debug.stats["plans"] == plans + 1  # the failed plan was dropped: planned again
    np.testing.assert_allclose(y.numpy(), np.abs(host - 0.5) * 3, rtol=1e-6)
    np.testing.assert_allclose(f(tinydl.tensor(host)).numpy(), np.abs(host - 0.5) * 3, rtol=1e-6)
    assert len(f.captures) == 1
