"""tinydl from many Python threads at once: plain ops, one model shared by all threads, different models, first
calls racing, garbage collection on any thread. Every result must equal the single-threaded one bit for bit, and
no thread may hang (each test joins its threads with a timeout and fails on one still alive)."""
import contextvars
import gc
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

import tinydl
import tinydl.nn.functional as F
from tinydl import debug, nn, runtime
from tinydl.capture import jit

JOIN_TIMEOUT = 120.0  # seconds: a deadlock guard only (lavapipe on shared cores is slow), not a measurement


@pytest.fixture(autouse=True)
def _switch_often():
    """Threads switch every few microseconds instead of every 5 ms: races show up in a few hundred calls."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def _in_threads(work, n: int) -> list:
    """work(i) on n threads released together, each under the caller's tinydl.options (a thread starts at the
    defaults); their results in order. Re-raises a thread's error; fails if a thread is still running after
    JOIN_TIMEOUT (a deadlock)."""
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(JOIN_TIMEOUT)
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            errors.append(e)
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(run, i), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread did not finish: deadlock"
    if errors:
        raise errors[0]
    return results


def _plain(host: np.ndarray, w: np.ndarray):
    """A few fused kernels: an elementwise chain, a matmul with its epilogue, a reduction."""
    x = tinydl.tensor(host)
    h = F.relu(x * 1.5 - 0.25) @ tinydl.tensor(w)
    return (h.sum(1) + h.amax(1)).numpy(), debug.last_kernels()


def test_plain_ops_from_eight_threads_equal_single_threaded(use_options):
    use_options(lend_min_bytes=64)  # most read-backs lent: their buffers return on any thread
    rng = np.random.default_rng(0)
    shapes = [(3 + i % 4, 8 + 2 * (i % 3)) for i in range(8)]  # plans shared by some threads, not all
    cases = [[(rng.standard_normal(s).astype(np.float32), rng.standard_normal((s[1], 5)).astype(np.float32))
              for _ in range(6)] for s in shapes]
    expected = [[_plain(h, w) for h, w in per] for per in cases]  # single-threaded reference (values and names)

    def work(i):
        bad = 0
        for k in range(120):
            h, w = cases[i][k % 6]
            got, names = _plain(h, w)
            want, want_names = expected[i][k % 6]
            bad += not np.array_equal(got, want) or names != want_names
        return bad
    assert _in_threads(work, 8) == [0] * 8


class _MLP(nn.Module):
    def __init__(self, d_in=12, d_hidden=24, d_out=6):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, d_hidden), nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x))).softmax(-1)


def test_one_jit_model_from_many_threads_equals_single_threaded():
    torch.manual_seed(0)
    model = jit(_MLP())
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((4, 12)).astype(np.float32) for _ in range(16)]
    expected = [model(tinydl.tensor(x)).numpy() for x in inputs]  # captured, then replayed

    def work(i):
        wrong = 0
        for k in range(100):
            j = (i * 5 + k) % len(inputs)
            y = model(tinydl.tensor(inputs[j]))
            wrong += not np.array_equal(y.numpy(), expected[j])
        return wrong
    assert _in_threads(work, 6) == [0] * 6
    assert len(model.captures) == 1


class _TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv1(x)))
        h = torch.relu(self.conv2(h))
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(h, 1).flatten(1))


def test_converted_models_from_threads_with_numpy_and_tensor_inputs():
    """Two converted CNNs and a tinydl.nn model, called from 6 threads with numpy inputs (run op by op) and
    tinydl tensors (replayed): each thread's results equal the single-threaded ones."""
    torch.manual_seed(0)
    torch_models = [_TorchCNN().eval(), _TorchCNN().eval()]
    models = [tinydl.from_torch(m) for m in torch_models] + [jit(_MLP(d_in=6 * 6 * 3))]
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((2, 3, 6, 6)).astype(np.float32) for _ in range(4)]

    def call(m, x, as_tensor):
        if m is models[2]:
            x = x.reshape(2, -1)
        out = m(tinydl.tensor(x) if as_tensor else x)
        return out.numpy()
    expected = {(mi, j, t): call(models[mi], inputs[j], t) for mi in range(3) for j in range(4) for t in (0, 1)}
    for j, x in enumerate(inputs):  # and the reference itself is torch's
        with torch.no_grad():
            np.testing.assert_allclose(expected[0, j, 0], torch_models[0](torch.from_numpy(x)).numpy(),
                                       rtol=1e-4, atol=1e-5)

    def work(i):
        wrong = 0
        for k in range(36):
            mi, j, t = (i + k) % 3, (i * 3 + k) % 4, (i + k // 3) % 2
            wrong += not np.array_equal(call(models[mi], inputs[j], t), expected[mi, j, t])
        return wrong
    assert _in_threads(work, 6) == [0] * 6


def test_racing_first_calls_of_a_new_jit():
    """Threads make the first calls of a fresh jit (capture) at the same moment, round after round."""
    torch.manual_seed(0)
    net = _MLP()
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((3, 12)).astype(np.float32) for _ in range(4)]
    expected = [net(tinydl.tensor(x)).numpy() for x in inputs]
    for _ in range(6):
        fresh = jit(net)

        def work(i):
            return [np.array_equal(fresh(tinydl.tensor(inputs[(i + k) % 4])).numpy(), expected[(i + k) % 4])
                    for k in range(8)]
        assert all(all(r) for r in _in_threads(work, 4))
        assert len(fresh.captures) == 1


def test_first_calls_of_the_process_racing():
    """The first tinydl calls of a process, from 4 threads at once, make one device and right results."""
    script = textwrap.dedent("""
        import threading, numpy as np, tinydl
        from tinydl import runtime
        made = []
        init = runtime.Runtime.__init__
        def counting(self):
            made.append(self)
            init(self)
        runtime.Runtime.__init__ = counting
        barrier, out = threading.Barrier(4), [None] * 4
        def run(i):
            barrier.wait()
            x = tinydl.tensor(np.arange(10, dtype=np.float32) + i)
            out[i] = ((x * 2).sum().item(), runtime.get_runtime())
        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        [t.start() for t in threads]
        [t.join(60) for t in threads]
        assert not any(t.is_alive() for t in threads)
        assert [o[0] for o in out] == [2.0 * (45 + 10 * i) for i in range(4)], out
        assert len(made) == 1 and all(o[1] is made[0] for o in out), made
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=JOIN_TIMEOUT)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_garbage_collection_on_another_thread_never_waits_for_the_lock(use_options):
    """Tensors and lent read-back arrays freed by a thread that does not hold tinydl's lock (a worker the lock's
    holder may be waiting for) go back later, without blocking; the next realization takes them back."""
    use_options(lend_min_bytes=64)
    rt = runtime.get_runtime()
    x = tinydl.tensor(np.ones(256, np.float32))
    ys = [(x * k).realize() for k in range(3)]
    arrays = [(x + k).numpy() for k in range(3)]  # lent: mapped staging memory
    done = threading.Event()

    def drop():
        ys.clear()
        arrays.clear()
        gc.collect()
        done.set()
    with runtime._lock:
        t = threading.Thread(target=drop, daemon=True)
        t.start()
        t.join(JOIN_TIMEOUT)
        assert done.is_set() and not t.is_alive()
        lent = 3 if rt.webgpu.maps is not None else 0  # arrays are lent only where the C map API is there
        assert len(rt._later) >= 3 + lent  # handed over, not returned under another thread's feet
    np.testing.assert_array_equal((x * 4).numpy(), np.full(256, 4, np.float32))
    assert not rt._later  # taken back by the next realization


def test_last_kernels_and_counters_are_per_thread():
    x = tinydl.tensor(np.ones((4, 4), np.float32))

    def work(i):
        names = set()
        with debug.count_kernels() as c:
            for _ in range(20):
                (x * (i + 2)).sum(i % 2).numpy() if i % 2 else (x + i).numpy()
                names.add(tuple(debug.last_kernels()))
        return names, set(c.names)
    results = _in_threads(work, 4)
    for i, (names, counted) in enumerate(results):
        assert len(names) == 1  # never another thread's kernels
        assert counted == set(next(iter(names)))


def test_a_failing_kernel_in_one_thread_leaves_the_others_right():
    """One thread's kernel fails at every call (a forced fault) while other threads realize without reading
    back (their work waits, pending, for a later submit): they must never lose it to the failing submits."""
    x = tinydl.tensor(np.arange(32, dtype=np.float32))
    tinydl.tensor(np.ones(7, np.float32)).exp().numpy()
    (victim,) = debug.last_kernels()

    def work(i):
        if i == 0:
            failures = 0
            for _ in range(60):
                try:
                    tinydl.tensor(np.ones(7, np.float32)).exp().numpy()
                except runtime.KernelError as e:
                    failures += e.kernels == [victim]
            return failures == 60
        ok = True
        for k in range(60):
            y = (x * (i + k)).realize()  # pending until someone's next submit
            z = (x + 1).realize()
            ok &= np.array_equal(y.numpy(), np.arange(32, dtype=np.float32) * (i + k))
            ok &= np.array_equal(z.numpy(), np.arange(32, dtype=np.float32) + 1)
        return ok
    with debug.inject_fault("encode", victim):
        assert all(_in_threads(work, 4))
