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
from tinydl.capture import jit
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


def test_status_counts_toward_the_binding_limit(runtime):
    """A gather kernel reading as many buffers as the limit allows is split: the status buffer is one more."""
    from tinydl import schedule
    limit = 4  # output + 2 inputs + status
    with tinydl.options(max_storage_buffers=limit):
        w = tinydl.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
        b = tinydl.tensor(np.ones((2, 3), np.float32))
        y = F.embedding(_gpu_int([1, 2]), w) + b  # reads idx, w, b: 3 inputs + out + status = 5 > 4
        order, sig, pos = schedule.walk([y.node])
        plan = schedule.plan_for(order, sig, [pos[y.node.uid]])
        for s in plan.steps:
            assert len(s.inputs) + 1 + (s.checks != 0) <= limit
        assert_close(y, np.arange(12, dtype=np.float32).reshape(4, 3)[[1, 2]] + 1)


def test_a_read_waited_for_later_judges_the_work_before_its_copy(runtime):
    """schedule.read_later: the status rides with the copy submitted now; work submitted before the wait (the
    decode loop's next step) is judged by a later read, or condemned with the rest when the status was set."""
    w = tinydl.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    wait = tinydl.schedule.read_later(F.embedding(_gpu_int([1, 2]), w))
    after = F.embedding(_gpu_int([0, 9]), w)  # a bad index, submitted after the good read's copy
    after.realize()
    np.testing.assert_array_equal(wait(), np.arange(12, dtype=np.float32).reshape(4, 3)[[1, 2]])
    assert runtime.status.dirty  # `after` is still unjudged ...
    with pytest.raises(IndexError, match="index out of range in self"):
        after.numpy()  # ... and its own read reports it
    wait = tinydl.schedule.read_later(F.embedding(_gpu_int([5]), w))  # bad, copied now
    later = F.embedding(_gpu_int([3]), w)
    later.realize()  # good, but what it reports is erased with the status the wait clears
    with pytest.raises(IndexError, match="index out of range in self"):
        wait()
    with pytest.raises(IndexError, match="index out of range in self"):
        later.numpy()  # condemned: never a number nobody could vouch for
    assert_close(F.embedding(_gpu_int([3]), w), np.arange(12, dtype=np.float32).reshape(4, 3)[[3]])


@pytest.mark.parametrize("pre_encode", [True, False])
def test_jit_replay_checks_indices(pre_encode, use_options):
    use_options(pre_encode=pre_encode)  # off: replays submit through schedule.submit
    w = tinydl.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    f = jit(lambda i: F.embedding(i, w) * 2)
    ref = np.arange(12, dtype=np.float32).reshape(4, 3) * 2
    assert_close(f(_gpu_int([1, 2])), ref[[1, 2]])
    assert_close(f(_gpu_int([3, 0])), ref[[3, 0]])  # a replay
    out = f(_gpu_int([3, 4]))
    with pytest.raises(IndexError, match="index out of range in self"):
        out.numpy()
    assert_close(f(_gpu_int([2, 2])), ref[[2, 2]])


# -- indices known on the host: torch's exception and message at the call --------------------------------
A = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
W = np.arange(12, dtype=np.float32).reshape(4, 3)

HOST_ERRORS = {
    "list": lambda lib, x: x[[5]],
    "negative": lambda lib, x: x[[-4]],
    "dim1": lambda lib, x: x[:, [4]],
    "ellipsis": lambda lib, x: x[..., [1, 7]],
    "numpy": lambda lib, x: x[np.array([[0, 3]])],
    "torch tensor": lambda lib, x: x[torch.tensor([3])],
    "second of two": lambda lib, x: x[[0, 1], [1, 9]],
    "apart": lambda lib, x: x[[0], :, [-6]],
    "after None": lambda lib, x: x[None, 1, [4]],
    "int after int": lambda lib, x: x[0, 4],
    "nested list": lambda lib, x: x[[[0, 1], [2, 7]]],
    "mask shape": lambda lib, x: x[:, np.array([True, False])],
    "broadcast": lambda lib, x: x[[0, 1], [1, 2, 3]],
    "float index": lambda lib, x: x[torch.tensor([0.5])],
    "empty dim": lambda lib, x: x[:, :0][:, [0]],
    "index_select": lambda lib, x: x.index_select(0, torch.tensor([3])),
    "index_select negative": lambda lib, x: x.index_select(2, torch.tensor([-1])),
    "index_select inner dim": lambda lib, x: x.index_select(1, torch.tensor([4])),
    "gather": lambda lib, x: x.gather(1, torch.tensor([[[9]]])),
    "gather negative": lambda lib, x: x.gather(2, torch.tensor([[[-1]]])),
    "gather ndim": lambda lib, x: x.gather(1, torch.tensor([[0]])),
    "gather size": lambda lib, x: x.gather(1, torch.zeros(3, 5, 6, dtype=torch.long)),
    "take": lambda lib, x: x.take(torch.tensor([60])),
    "take negative": lambda lib, x: x.take(torch.tensor([-61])),
    "embedding": lambda lib, x: lib.nn.functional.embedding(torch.tensor([[1, 12]]), x.reshape(12, 5)),
    "embedding negative": lambda lib, x: lib.nn.functional.embedding(torch.tensor([-1]), x.reshape(12, 5)),
    "embedding padding_idx": lambda lib, x: lib.nn.functional.embedding(torch.tensor([1]), x.reshape(12, 5),
                                                                        padding_idx=12),
}


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the exception is the result under test
        return type(e), str(e)
    return None


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")  # torch 2.13 still reads a nested list as a tuple
@pytest.mark.parametrize("case", list(HOST_ERRORS))
def test_host_indices_raise_as_torch_at_the_call(case):
    expected = _error(lambda: HOST_ERRORS[case](torch, torch.from_numpy(A)))
    assert expected is not None, "the case must be an error in torch"
    got = _error(lambda: HOST_ERRORS[case](tinydl, tinydl.tensor(A)))
    assert got == expected


# -- indices on the GPU: no clamping, IndexError when the result is read --------------------------------
GPU_ERRORS = {
    "getitem": lambda x, i: x[i([0, 3])],
    "getitem negative": lambda x, i: x[:, i([-5])],
    "getitem two": lambda x, i: x[:, i([0, 1]), i([2, 5])],
    "getitem two, first bad": lambda x, i: x[i([[3]]), :, i([0])],
    "index_select": lambda x, i: x.index_select(1, i([1, 4])),
    "index_select negative": lambda x, i: x.index_select(0, i([-1])),  # torch refuses negatives here
    "gather": lambda x, i: x.gather(2, i([[[0, 5]]])),
    "gather negative": lambda x, i: x.gather(0, i([[[-1]]])),
    "take": lambda x, i: x.take(i([0, 60])),
    "embedding": lambda x, i: F.embedding(i([[0, 12]]), x.reshape(12, 5)),
    "embedding negative": lambda x, i: F.embedding(i([-1]), x.reshape(12, 5)),
    "computed index": lambda x, i: x[i([1, 2]) * 2],
}


@pytest.mark.parametrize("case", list(GPU_ERRORS))
def test_gpu_indices_out_of_range_raise_on_read(case):
    x = tinydl.tensor(A)
    with pytest.raises(IndexError, match="index out of range in self"):
        GPU_ERRORS[case](x, _gpu_int).numpy()
    assert_close(x[_gpu_int([2, 0])], A[[2, 0]])  # reset: the next call works


# -- good indices: torch's results ------------------------------------------------------------------------
GOOD = {
    "list": lambda x, i: x[i([1, 2])],
    "repeated": lambda x, i: x[i([2, 2, 0, 2])],
    "negative": lambda x, i: x[i([-1, -3])],
    "empty": lambda x, i: x[i([])],
    "2-d": lambda x, i: x[i([[0, 1], [2, 0]])],
    "dim1": lambda x, i: x[:, i([0, 3])],
    "ellipsis": lambda x, i: x[..., i([-1, 0])],
    "int then list": lambda x, i: x[0, :, i([1, 2])],
    "apart": lambda x, i: x[i([0]), :, i([1, 2])],
    "adjacent pair": lambda x, i: x[:, i([0, -1]), i([1, 2])],
    "broadcast pair": lambda x, i: x[i([[0, 1]]), i([[1], [2]])],
    "None between": lambda x, i: x[None, i([1]), None, i([2])],
    "slice then list": lambda x, i: x[1:, i([1, 2])],
    "list then slice": lambda x, i: x[i([1, 2]), 1:3],
    "list ellipsis list": lambda x, i: x[i([1, 2]), ..., i([0, 1])],
    "int list int": lambda x, i: x[1, i([1, 2]), 2],
    "index_select": lambda x, i: x.index_select(1, i([3, 0, 3])),
    "index_select empty": lambda x, i: x.index_select(2, i([])),
    "gather": lambda x, i: x.gather(2, i([[[4, 0], [1, 1]], [[0, 0], [3, 2]]])),
    "take": lambda x, i: x.take(i([[0, -1], [59, 7]])),
}


@pytest.mark.parametrize("where", ["host", "gpu"])
@pytest.mark.parametrize("case", list(GOOD))
def test_good_indices_match_torch(case, where):
    def host(v):
        return torch.tensor(v, dtype=torch.long)  # a torch tensor given to tinydl: checked on the host

    expected = GOOD[case](torch.from_numpy(A), host)
    got = GOOD[case](tinydl.tensor(A), host if where == "host" else _gpu_int)
    assert got.shape == tuple(expected.shape)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize("mask", [
    lambda m: m[np.array([True, False, True])],
    lambda m: m[np.array([[True, False, True, False]] * 3)],
    lambda m: m[:, np.array([False, True, True, False])],
    lambda m: m[np.array([True, False, True]), [1, 2]],
    lambda m: m[np.array([True, False, True]), 0],
    lambda m: m[np.zeros((3, 4, 5), bool)],
    lambda m: m[[True, False, True]],
    lambda m: m[True],
    lambda m: m[False],
])
def test_bool_masks_match_torch(mask):
    expected = mask(_TorchIndexing(torch.from_numpy(A)))
    for wrap in (lambda v: v, tinydl.tensor):  # a host mask, and a mask on the GPU (read back for its shape)
        got = mask(_TinydlIndexing(tinydl.tensor(A), wrap))
        assert got.shape == tuple(expected.shape)
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


class _TorchIndexing:
    def __init__(self, t):
        self.t = t

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        return self.t[tuple(torch.from_numpy(i) if isinstance(i, np.ndarray) else i for i in index)]


class _TinydlIndexing:
    def __init__(self, t, wrap):
        self.t, self.wrap = t, wrap

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        return self.t[tuple(self.wrap(i) if isinstance(i, np.ndarray) else i for i in index)]


def test_host_checked_indices_bind_no_status():
    """Indices checked on the host need no GPU check: the kernel binds nothing extra."""
    from tinydl import schedule
    x = tinydl.tensor(W)
    for y in (x[[1, 2]], F.embedding(np.array([0, 3]), x), x.index_select(1, torch.tensor([2]))):
        order, sig, pos = schedule.walk([y.node])
        plan = schedule.plan_for(order, sig, [pos[y.node.uid]])
        assert all(s.checks == 0 and "td_status" not in s.wgsl for s in plan.steps)


def test_export_converters_check_indices():
    from tinydl.interop import export, registry  # noqa: F401 - export: the ATen ops registered
    x = tinydl.tensor(A)
    index = registry.lookup("aten.index.Tensor")
    np.testing.assert_array_equal(index(x, [None, _gpu_int([3, -1])]).numpy(), A[:, [3, -1]])
    with pytest.raises(IndexError, match="index out of range in self"):
        index(x, [_gpu_int([0, 1]), None, _gpu_int([0, 5])]).numpy()
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 1 with size 5"):
        index(x, [torch.tensor([0, 1]), None, torch.tensor([0, 5])])
    gather = registry.lookup("aten.gather.default")
    with pytest.raises(IndexError, match="index out of range in self"):
        gather(x, 1, _gpu_int([[[-1]]])).numpy()  # torch.gather refuses negative indices


def test_nn_embedding_checks_gpu_indices():
    emb = tinydl.nn.Embedding(4, 3)
    emb.weight = tinydl.nn.Parameter(tinydl.tensor(W))
    assert_close(emb(_gpu_int([[3, 0]])), W[[[3, 0]]])
    with pytest.raises(IndexError, match="index out of range in self"):
        emb(_gpu_int([4])).numpy()


@pytest.mark.parametrize("values,num_classes", [([1, 0, 3], -1), ([[2, 2], [0, 1]], 4), ([], 3), (2, 5)])
def test_one_hot_matches_torch(values, num_classes):
    ref = torch.nn.functional.one_hot(torch.tensor(values, dtype=torch.long), num_classes)
    for idx in (torch.tensor(values, dtype=torch.long), _gpu_int(values)):
        got = F.one_hot(idx, num_classes)
        assert got.shape == tuple(ref.shape)
        np.testing.assert_array_equal(got.numpy(), ref.numpy())


@pytest.mark.parametrize("values,num_classes", [([-1, 2], 3), ([1, 5], 3), ([], -1)])
def test_one_hot_errors(values, num_classes):
    expected = _error(lambda: torch.nn.functional.one_hot(torch.tensor(values, dtype=torch.long), num_classes))
    assert _error(lambda: F.one_hot(torch.tensor(values, dtype=torch.long), num_classes)) == expected
    if num_classes != -1:  # on the GPU: reported there, raised at the read
        with pytest.raises(IndexError, match="index out of range in self"):
            F.one_hot(_gpu_int(values), num_classes).numpy()
    else:  # the width needs the values: read back, then checked as on the host
        assert _error(lambda: F.one_hot(_gpu_int(values), num_classes)) == expected


EDGES = {
    "scalar index_select": lambda lib, mk: mk(5.0).index_select(0, torch.tensor([0])),
    "scalar index_select, 2 indices": lambda lib, mk: mk(5.0).index_select(0, torch.tensor([0, 0])),
    "scalar gather": lambda lib, mk: mk(5.0).gather(0, torch.tensor(0)),
    "scalar indexed by a list": lambda lib, mk: mk(5.0)[[0]],
    "0-d index tensor": lambda lib, mk: mk([1.0, 2, 3])[torch.tensor(2)],
    "0-d embedding index": lambda lib, mk: lib.nn.functional.embedding(torch.tensor(1), mk([[1.0, 2], [3, 4]])),
    "0-d take index": lambda lib, mk: mk([[1.0, 2], [3, 4]]).take(torch.tensor(3)),
    "0-d index_select index": lambda lib, mk: mk([[1.0, 2], [3, 4]]).index_select(1, torch.tensor(1)),
    "two empty lists": lambda lib, mk: mk(np.zeros((2, 3)))[[], []],
    "all-false mask": lambda lib, mk: mk(np.ones((2, 3)))[torch.zeros(2, 3, dtype=torch.bool)],
    "list on an empty dim's neighbour": lambda lib, mk: mk(np.ones((0, 3)))[:, [1]],
    "range": lambda lib, mk: mk(np.arange(6).reshape(3, 2))[range(1, 3)],
}


@pytest.mark.parametrize("case", list(EDGES))
def test_index_edges_match_torch(case):
    def outcome(lib, mk):
        try:
            r = EDGES[case](lib, mk)
        except Exception as e:  # noqa: BLE001 - the exception is the result under test
            return type(e), str(e)
        return tuple(r.shape), np.asarray(r.numpy()).tolist()
    expected = outcome(torch, lambda v: torch.tensor(np.asarray(v, np.float32)))
    assert outcome(tinydl, lambda v: tinydl.tensor(np.asarray(v, np.float32))) == expected


def test_jit_does_not_replay_a_function_that_reads_values():
    """x[mask] reads the mask for its result's shape: a replay would reuse the first call's mask."""
    f = jit(lambda x, m: x[m] * 2)
    a = np.arange(6, dtype=np.float32)
    for mask in ([True, False, True, False, True, False], [False, True, True, True, False, False]):
        m = np.array(mask)
        np.testing.assert_array_equal(f(tinydl.tensor(a), tinydl.tensor(m)).numpy(), a[m] * 2)


@pytest.mark.parametrize("value", [np.float32(3), np.float32(0), np.float32(np.nan),
                                   np.array([[0, 1, -0.0], [np.nan, 0, 2]], np.float32), np.array([0, 2, 3], np.int32),
                                   np.zeros((2, 3), bool), np.ones((2, 1, 2), bool)])
def test_nonzero_and_argwhere_match_torch(value):
    t, tt = tinydl.tensor(value), torch.from_numpy(np.asarray(value))
    got, want = tinydl.nonzero(t), torch.nonzero(tt)
    assert got.shape == tuple(want.shape) and np.array_equal(got.numpy(), want.numpy())
    got_t, want_t = t.nonzero(as_tuple=True), torch.nonzero(tt, as_tuple=True)
    assert len(got_t) == len(want_t) and all(np.array_equal(g.numpy(), w.numpy()) for g, w in zip(got_t, want_t))
    assert np.array_equal(tinydl.argwhere(t).numpy(), torch.argwhere(tt).numpy())


def test_nonzero_in_a_converted_model():
    class Picks(torch.nn.Module):
        def forward(self, x):
            idx = torch.nonzero(x > 0.5)
            return x[idx[:, 0], idx[:, 1]] * 2

    x = torch.from_numpy(np.random.default_rng(3).random((4, 5)).astype(np.float32))
    tm = tinydl.from_torch(Picks().eval(), example_inputs=(x,))
    np.testing.assert_array_equal(tm(tinydl.tensor(x.numpy())).numpy(), Picks()(x).numpy())


@pytest.mark.parametrize("mask_shape", [(3, 4), (4,), (3, 1)])
def test_masked_select_matches_torch(mask_shape):
    rng = np.random.default_rng(len(mask_shape))
    x = rng.standard_normal((3, 4)).astype(np.float32)
    mask = rng.random(mask_shape) > 0.5
    want = torch.masked_select(torch.from_numpy(x), torch.from_numpy(mask))
    np.testing.assert_array_equal(tinydl.masked_select(tinydl.tensor(x), tinydl.tensor(mask)).numpy(), want.numpy())
    np.testing.assert_array_equal(tinydl.tensor(x).masked_select(tinydl.tensor(mask)).numpy(), want.numpy())
    with pytest.raises(RuntimeError, match="masked_select: expected BoolTensor for mask"):
        tinydl.masked_select(tinydl.tensor(x), tinydl.tensor(x))
