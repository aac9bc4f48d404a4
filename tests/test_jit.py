"""tinydl.jit: a repeated call with same-shaped inputs replays the captured plan (no graph building, no
walk, no planning) and must give exactly what a fresh lazy run gives."""
import numpy as np
import pytest
import torch

import tinydl
import tinydl.nn.functional as F
from tinydl import nn
from tinydl.debug import count_kernels
from tinydl.capture import jit
from tinydl.testing import assert_close


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x, scale=1.0):
        h = F.relu(self.bn(self.conv(x)))
        pooled = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return {"logits": self.fc(pooled) * scale, "features": (pooled, h.amax((2, 3)))}


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x, scale=1.0):
        h = torch.relu(self.bn(self.conv(x)))
        pooled = torch.nn.functional.adaptive_avg_pool2d(h, 1).flatten(1)
        return {"logits": self.fc(pooled) * scale, "features": (pooled, h.amax((2, 3)))}


def _models():
    torch.manual_seed(0)
    ref = TorchBlock().eval()
    with torch.no_grad():
        ref.bn.running_mean.uniform_(-1, 1)
        ref.bn.running_var.uniform_(0.5, 2)
    m = Block().eval()
    m.load_state_dict(ref.state_dict())
    return ref, m


def _check(out, ref):
    assert_close(out["logits"], ref["logits"], atol=1e-5)
    assert_close(out["features"][0], ref["features"][0], atol=1e-5)
    assert_close(out["features"][1], ref["features"][1], atol=1e-5)


def test_replay_matches_torch_and_skips_planning(rng):
    ref, m = _models()
    f = jit(m)
    for i in range(4):
        x = rng.standard_normal((2, 3, 6, 6), dtype=np.float32)
        plans = tinydl.debug.stats["plans"]
        with count_kernels() as c:
            out = f(tinydl.tensor(x))
            _check(out, ref(torch.from_numpy(x)))
        if i >= 1:
            assert tinydl.debug.stats["plans"] == plans  # replay: no new plan
            assert len(f.captures) == 1
        assert c.count >= 3


def test_replay_keeps_output_structure(rng):
    _, m = _models()
    f = jit(m)
    x = tinydl.tensor(rng.standard_normal((1, 3, 5, 5), dtype=np.float32))
    a, b = f(x), f(x)
    assert type(b) is dict and isinstance(b["features"], tuple) and len(b["features"]) == 2
    assert_close(a["logits"], b["logits"], rtol=0, atol=0)


def test_new_shape_or_argument_captures_again(rng):
    ref, m = _models()
    f = jit(m)
    for shape in [(1, 3, 5, 5), (2, 3, 7, 7), (1, 3, 5, 5)]:
        x = rng.standard_normal(shape, dtype=np.float32)
        _check(f(tinydl.tensor(x)), ref(torch.from_numpy(x)))
    assert len(f.captures) == 2
    x = rng.standard_normal((1, 3, 5, 5), dtype=np.float32)
    _check(f(tinydl.tensor(x), 2.0), ref(torch.from_numpy(x), 2.0))  # a different Python argument: a new capture
    assert len(f.captures) == 3
    _check(f(tinydl.tensor(x), scale=3.0), ref(torch.from_numpy(x), 3.0))  # keyword values count too
    _check(f(tinydl.tensor(x), scale=4.0), ref(torch.from_numpy(x), 4.0))
    assert len(f.captures) == 5


def test_reloading_weights_drops_the_capture(rng):
    ref, m = _models()
    f = jit(m)
    x = rng.standard_normal((1, 3, 5, 5), dtype=np.float32)
    f(tinydl.tensor(x))
    f(tinydl.tensor(x))
    with torch.no_grad():
        ref.fc.weight.mul_(-2.0)
    m.load_state_dict(ref.state_dict())
    _check(f(tinydl.tensor(x)), ref(torch.from_numpy(x)))  # the new weights, not the captured ones


def test_lazy_inputs_are_computed_then_replayed(rng):
    """model(x.half()) or model(x * 2): the input is computed first, then the captured plan replays."""
    ref, m = _models()
    f = jit(m)
    for _ in range(3):
        x = rng.standard_normal((1, 3, 5, 5), dtype=np.float32)
        plans = tinydl.debug.stats["plans"]
        _check(f(tinydl.tensor(x) * 2.0), ref(torch.from_numpy(x) * 2.0))
    assert len(f.captures) == 1 and tinydl.debug.stats["plans"] == plans  # the last call planned nothing new


def test_host_inputs_run_normally(rng):
    ref, m = _models()
    f = jit(lambda x: m(tinydl.tensor(x)))
    x = rng.standard_normal((1, 3, 5, 5), dtype=np.float32)
    _check(f(x), ref(torch.from_numpy(x)))  # a numpy input: not captured
    assert not f.captures


def test_from_torch_modules_replay(rng):
    ref, _ = _models()
    tm = tinydl.from_torch(ref)
    for _ in range(3):
        x = rng.standard_normal((1, 3, 6, 6), dtype=np.float32)
        plans = tinydl.debug.stats["plans"]
        _check(tm(tinydl.tensor(x)), ref(torch.from_numpy(x)))
    assert tinydl.debug.stats["plans"] == plans


@pytest.mark.parametrize("host", ["numpy", "torch", "keyword"])
def test_from_torch_modules_replay_for_numpy_and_torch_inputs(rng, monkeypatch, host):
    """TorchFxModule.__call__ turns numpy arrays and torch tensors into tinydl tensors before its Jit, so a model
    fed host arrays (as most users feed it) replays too: its graph is built on the first call of a shape only."""
    ref, _ = _models()
    tm = tinydl.from_torch(ref)
    built = []
    interpret = tm._program._interpret
    monkeypatch.setattr(tm._program, "_interpret", lambda *a: built.append(1) or interpret(*a))
    for _ in range(3):
        x = rng.standard_normal((1, 3, 6, 6), dtype=np.float32)
        arg = torch.from_numpy(x) if host == "torch" else x
        _check(tm(x=arg) if host == "keyword" else tm(arg), ref(torch.from_numpy(x)))
    assert len(built) == 1 and len(tm._replay.captures) == 1


def test_replay_reuses_its_intermediate_buffers_and_bind_groups(rng, monkeypatch):
    """A replay takes its intermediates from buffers the capture keeps, in the plan's fixed order, so the
    same buffers meet the same kernels: from the second replay on, bind groups are created only for the
    kernels that write the outputs (fresh buffers: the caller may keep the previous outputs)."""
    import gc

    from tinydl.runtime import get_runtime
    _, m = _models()
    f = jit(m)
    rt = get_runtime()
    created = []
    orig = rt.device.create_bind_group
    monkeypatch.setattr(rt.device, "create_bind_group", lambda *a, **k: created.append(1) or orig(*a, **k))
    x = tinydl.tensor(rng.standard_normal((1, 3, 5, 5), dtype=np.float32))
    counts, kernels = [], []
    for _ in range(4):
        n0 = len(created)
        with count_kernels() as c:
            out = f(x)
        out["logits"].numpy()
        del out
        gc.collect()
        counts.append(len(created) - n0)
        kernels.append(c.count)
    assert kernels[-1] > 3 and all(n <= 3 for n in counts[2:]), (counts, kernels)  # 3 outputs
    cap = next(iter(f.captures.values()))
    assert sum(len(b) for b in cap.bound.private.owned.values()) >= 1  # the capture owns its intermediates


def test_pending_forward_reads_its_input_before_a_new_upload_reuses_it(rng):
    """A replay's last kernels stay pending (unsubmitted) until the next GPU call. Its input tensor, dropped by
    the caller, goes back to the buffer pool; the next upload takes that buffer and must not overwrite it before
    the pending kernels have read it."""
    fast = jit(lambda x: (x * 2.0 + 1.0).exp())
    shape = (64, 64)
    a, b = (rng.standard_normal(shape, dtype=np.float32) for _ in range(2))
    fast(tinydl.tensor(b))  # capture
    y = fast(tinydl.tensor(a))  # replay: its input is dropped at once
    z = fast(tinydl.tensor(b))  # this upload reuses the freed buffer of a
    np.testing.assert_allclose(y.numpy(), np.exp(a * 2 + 1), rtol=1e-5)
    np.testing.assert_allclose(z.numpy(), np.exp(b * 2 + 1), rtol=1e-5)


def test_same_tensor_twice_captures_apart_from_two_tensors(rng):
    """f(x, x) reads one graph input; a later f(x, y) must not replay that capture (it would read x twice)."""
    fast = jit(lambda a, b: a * 2.0 + b)
    x, y = (rng.standard_normal((4, 5), dtype=np.float32) for _ in range(2))
    tx, ty = tinydl.tensor(x), tinydl.tensor(y)
    np.testing.assert_allclose(fast(tx, tx).numpy(), x * 3, rtol=1e-6)
    np.testing.assert_allclose(fast(tx, ty).numpy(), x * 2 + y, rtol=1e-6)
    np.testing.assert_allclose(fast(ty, tx).numpy(), y * 2 + x, rtol=1e-6)  # a replay of the (a, b) capture
    np.testing.assert_allclose(fast(ty, ty).numpy(), y * 3, rtol=1e-6)      # a replay of the (x, x) capture
    assert len(fast.captures) == 2


def test_replay_outputs_are_fresh_and_inputs_rebound_in_every_kernel(rng):
    """An input read by several kernels is rebound in each of them, and every replay writes new output
    buffers: outputs kept from an earlier replay keep their values."""
    fast = jit(lambda x: (x.sum(0), (x * 2.0).exp().amax(1), x - 1.0))
    xs = [rng.standard_normal((6, 7), dtype=np.float32) for _ in range(4)]
    kept = [fast(tinydl.tensor(x)) for x in xs]  # capture, then three replays
    for x, (s, m, d) in zip(xs, kept):
        np.testing.assert_allclose(s.numpy(), x.sum(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(m.numpy(), np.exp(x * 2).max(1), rtol=1e-5)
        np.testing.assert_allclose(d.numpy(), x - 1, rtol=1e-6)


def test_replay_keeps_the_weights_it_captured_alive(rng):
    """A capture reads its weights from the buffers it bound. Rebinding the Python name of a weight (not a reload
    through Module, which drops captures) leaves the capture as the only holder of the old tensor's buffer: that
    buffer must not go back to the pool, where a new tensor would take it and overwrite the weight."""
    import gc
    x, w1 = rng.standard_normal((4, 8), dtype=np.float32), rng.standard_normal((8, 8), dtype=np.float32)
    held = {"w": tinydl.tensor(w1)}
    fast = jit(lambda t: t @ held["w"])
    tx = tinydl.tensor(x)
    fast(tx)  # capture
    held["w"] = tinydl.tensor(np.zeros((8, 8), np.float32))
    gc.collect()
    fillers = [tinydl.tensor(np.full((8, 8), 7.0, np.float32)) for _ in range(8)]  # would take a freed buffer
    np.testing.assert_allclose(fast(tx).numpy(), x @ w1, rtol=1e-5, atol=1e-5)
    assert fillers


def test_replay_binds_an_input_stored_in_pieces(rng, use_options):
    """An input larger than one storage binding is stored as pieces joined by a cat; a replay must bind the new
    input's pieces (the first capture's pieces are no weights: a replay once returned the first call's result)."""
    from tinydl import schedule
    use_options(max_binding_size=1024)
    f = jit(lambda x, w: (x @ w).relu().sum(0))
    w = rng.standard_normal((160, 8)).astype(np.float32)
    tw = tinydl.tensor(w)
    for _ in range(3):
        a = rng.standard_normal((4, 160)).astype(np.float32)
        x = tinydl.tensor(a)
        assert len(schedule.stored_leaves(x.node)) > 1
        assert_close(f(x, tw), (torch.from_numpy(a) @ torch.from_numpy(w)).relu().sum(0))
    assert len(f.captures) == 1
    schedule.clear_cache()


def test_replays_submit_the_forward_encoded_during_the_previous_one(rng, monkeypatch, use_options):
    """A replay submits the command buffer the previous replay encoded (reading its own copy of the inputs) and
    encodes the next: results equal torch over changing inputs, with earlier outputs kept, and equal a replay
    that encodes its own kernels (Options.pre_encode off)."""
    from tinydl.runtime import get_runtime
    ref, m = _models()
    rt = get_runtime()
    submitted = []
    orig = rt.submit_encoded
    monkeypatch.setattr(rt, "submit_encoded", lambda *a, **k: submitted.append(1) or orig(*a, **k))
    xs = [rng.standard_normal((2, 3, 6, 6), dtype=np.float32) for _ in range(4)]
    for pre_encode in (True, False):
        use_options(pre_encode=pre_encode)
        f, n0 = jit(m), len(submitted)
        kept = [f(tinydl.tensor(x)) for x in xs]  # capture, then three replays; every input dropped at once
        assert len(submitted) - n0 == (3 if pre_encode else 0)
        for x, out in zip(xs, kept):
            with torch.no_grad():
                _check(out, ref(torch.from_numpy(x)))


def test_profiling_a_replay_times_its_kernels(rng):
    """Under tinydl.profile() a replay encodes its own kernels (each timed), not the pre-encoded forward."""
    _, m = _models()
    f = jit(m)
    x = tinydl.tensor(rng.standard_normal((1, 3, 5, 5), dtype=np.float32))
    f(x), f(x)
    with count_kernels() as c, tinydl.profile() as prof:
        f(x)["logits"].numpy()
    assert c.count > 3 and len(prof.kernels) == c.count
