"""No reference cycles hold a call's tensors: with Python's cycle collector off, repeated forwards (a converted
torch model, replayed or interpreted; a tinydl.jit of a tinydl.nn model; plain op chains read back with .numpy())
create no new GPU buffers after warm-up, the pool's size stays flat, and the collector then finds no tinydl
Tensor/Node/Buffer garbage. A cycle (a recursive closure over an interpreter's environment, a planner's closure
over the graph) would keep each call's buffers until the collector happened to run."""
import contextlib
import gc
import weakref

import numpy as np
import pytest
import torch
import torch.nn as tnn

import tinydl
import tinydl.nn.functional as F
from tinydl import nn
from tinydl.ops import Node
from tinydl.runtime import Buffer, get_runtime
from tinydl._tensor import Tensor

CALLS = 8
WARMUP = 3


def small_cnn():
    torch.manual_seed(0)
    m = tnn.Sequential(
        tnn.Conv2d(3, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(8, 8, 3, padding=1), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(8, 5))
    return m.eval()


class TorchTwoOut(tnn.Module):
    def __init__(self):
        super().__init__()
        self.fc = tnn.Linear(8, 8)
        self.norm = tnn.LayerNorm(8)

    def forward(self, a):
        h = self.norm(self.fc(a)).softmax(-1)
        return {"h": h, "rest": (h * 2, a @ a.transpose(-1, -2))}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        y = self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1))
        return y, [y.softmax(-1)]


@pytest.fixture
def created(monkeypatch):
    rt = get_runtime()
    calls = []
    real = type(rt.device).create_buffer
    monkeypatch.setattr(type(rt.device), "create_buffer",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    return calls


def _pooled() -> int:
    return sum(len(v) for v in get_runtime()._free.values())


def _tinydl_garbage() -> list:
    """What the cycle collector frees now (kept for inspection): the tinydl objects among it."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [o for o in gc.garbage if isinstance(o, (Tensor, Node, Buffer))]
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    return found


@contextlib.contextmanager
def _no_collector():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _check_flat(call, created):
    """call() WARMUP + CALLS times with the collector off (the first call may plan and capture): after warm-up no
    GPU buffer is created and the pool's size is the same after every call; no tinydl garbage is left."""
    with _no_collector():
        for _ in range(WARMUP):
            call()
        created.clear()
        pooled = []
        for _ in range(CALLS):
            call()
            pooled.append(_pooled())
        garbage = _tinydl_garbage()
    assert not created, f"{len(created)} GPU buffers created in {CALLS} calls after warm-up (collector off)"
    assert len(set(pooled)) == 1, f"pooled buffers drift across calls: {pooled}"
    assert not garbage, f"cyclic garbage holds tinydl objects: {sorted({type(o).__name__ for o in garbage})}"


def test_from_torch_replay_no_cycles(rng, created):
    model = tinydl.from_torch(small_cnn())
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    _check_flat(lambda: model(tinydl.tensor(x)).numpy(), created)


def test_from_torch_interpreted_no_cycles(rng, created):
    # numpy inputs: no replay, the fx program runs every call (its environment must die with the call)
    model = tinydl.from_torch(small_cnn())
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    _check_flat(lambda: model(x).numpy(), created)


def test_from_torch_nested_outputs_no_cycles(rng, created):
    model = tinydl.from_torch(TorchTwoOut().eval())
    a = rng.standard_normal((2, 3, 8)).astype(np.float32)
    _check_flat(lambda: [model(tinydl.tensor(a))["rest"][1].numpy(), model(a)["h"].numpy()], created)


def test_export_interpreted_no_cycles(rng, created):
    from tinydl.interop import export
    a = rng.standard_normal((2, 3, 8)).astype(np.float32)
    model = export.convert(TorchTwoOut().eval(), (torch.from_numpy(a),))
    _check_flat(lambda: [model(a)["h"].numpy(), model(tinydl.tensor(a))["rest"][0].numpy()], created)


def test_jit_nn_model_no_cycles(rng, created):
    fast = tinydl.jit(Net())
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    _check_flat(lambda: [fast(tinydl.tensor(x))[1][0].numpy(), fast(tinydl.tensor(x) * 2)[0].numpy()], created)


def test_jit_capture_keeps_no_output(rng):
    """The capture's rebuild function keeps the output structure's types, not the first call's outputs."""
    fast = tinydl.jit(Net())
    x = tinydl.tensor(rng.standard_normal((1, 3, 5, 5)).astype(np.float32))
    with _no_collector():
        y, rest = fast(x)
        refs = [weakref.ref(y.node.buffer), weakref.ref(rest[0].node.buffer)]
        del y, rest
        assert [r() for r in refs] == [None, None]
        y, rest = fast(x)  # a replay
        refs = [weakref.ref(y.node.buffer), weakref.ref(rest[0].node.buffer)]
        del y, rest
        assert [r() for r in refs] == [None, None]


@pytest.mark.parametrize("shape", [(3, 7), (131, 512)])  # the second is read back lent (Options.lend_min_bytes)
def test_op_chain_no_cycles(rng, created, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    _check_flat(lambda: (tinydl.tensor(x) * 2 + 1).relu().numpy(), created)


def test_planning_no_cycles(rng):
    """A first call plans (fusion over the graph): its closures must not keep the graph's buffers."""
    x = rng.standard_normal((5, 11)).astype(np.float32)
    with _no_collector():
        t = tinydl.tensor(x)
        # shared elementwise values and a batch-norm-like parameter formula: the planner's recursive helpers run
        s = (t * 3).exp()
        out = ((s + 1) * (s - 1) * (t.sum(0) * 0.5 + 1).rsqrt()).numpy()
        ref = weakref.ref(t.node.buffer)
        del t, s
        assert ref() is None, "the input's buffer outlived its tensor"
        garbage = _tinydl_garbage()
    assert out.shape == (5, 11)
    assert not garbage, f"cyclic garbage holds tinydl objects: {sorted({type(o).__name__ for o in garbage})}"


def test_kernel_errors_no_cycles(rng):
    """A failing call (a wgpu validation error at encode, a failed submit or map) raises KernelError; the error
    and its traceback must not keep the call's frames (their tensors) in a cycle: wgpu-py's error wrapper keeps
    the error in a local of the frame its traceback holds."""
    from tinydl import debug
    from tinydl.runtime import KernelError

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, a):
            return self.fc(a).relu()

    fast = tinydl.jit(Small())
    a = rng.standard_normal((2, 8)).astype(np.float32)
    fast(tinydl.tensor(a)), fast(tinydl.tensor(a))
    raised = []
    with _no_collector():
        for stage in ("encode", "submit", "map"):
            for call in (lambda: fast(tinydl.tensor(a)).numpy(), lambda: (tinydl.tensor(a) * 3).numpy()):
                try:
                    with debug.inject_fault(stage, ""):
                        call()
                except KernelError:
                    raised.append(stage)
                call()
        garbage = _tinydl_garbage()
    assert "encode" in raised and "map" in raised, raised
    assert not garbage, f"cyclic garbage holds tinydl objects: {sorted({type(o).__name__ for o in garbage})}"


def test_dropped_converted_model_frees_its_weights(rng):
    """A converted model's Jit holds its forward weakly: dropping the model frees its weights' buffers at once
    (module -> Jit -> bound method -> module was a cycle); a deep copy replays on its own."""
    import copy
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    model = tinydl.from_torch(small_cnn())
    model(tinydl.tensor(x)).numpy(), model(tinydl.tensor(x)).numpy()
    refs = [weakref.ref(p.node.buffer) for p in model.parameters()]
    with _no_collector():
        del model
        assert sum(r() is not None for r in refs) == 0, "weights outlived their model"
    model = tinydl.from_torch(small_cnn())
    want = model(tinydl.tensor(x)).numpy()
    twin = copy.deepcopy(model)
    del model
    gc.collect()
    np.testing.assert_array_equal(twin(tinydl.tensor(x)).numpy(), want)
    np.testing.assert_array_equal(twin(tinydl.tensor(x)).numpy(), want)
