"""The scheduler's machinery: plan cache, the storage-buffer-per-kernel limit, binding-size limit, the buffer
pool, zero-size outputs."""
import dataclasses
import gc

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
import tinydl.schedule as S
from tinydl.debug import count_kernels, stats
from tinydl.runtime import get_runtime
from tinydl.testing import assert_close


def _rand(rng, *shape, positive=False):
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


def _pair(a):
    return tinydl.tensor(a), torch.from_numpy(a.copy())


# -- plan cache ------------------------------------------------------------------------------------------
def _forward(lib, x, p):
    i = 0 if lib == "tinydl" else 1
    nnf = F if lib == "tinydl" else TF
    h = nnf.relu(nnf.conv2d(x, p["w"][i], p["b"][i], padding=1))
    h = nnf.batch_norm(h, p["rm"][i], p["rv"][i], p["g"][i], p["be"][i], training=False)
    h = nnf.max_pool2d(h, 2).flatten(1)
    return nnf.softmax(nnf.linear(h, p["fc"][i], p["fcb"][i]), -1)


def _params(rng, C=3, K=4, H=4):
    return {"w": _pair(_rand(rng, K, C, 3, 3)), "b": _pair(_rand(rng, K)), "rm": _pair(_rand(rng, K)),
            "rv": _pair(_rand(rng, K, positive=True)), "g": _pair(_rand(rng, K)), "be": _pair(_rand(rng, K)),
            "fc": _pair(_rand(rng, 5, K * (H // 2) ** 2)), "fcb": _pair(_rand(rng, 5))}


def test_second_identical_forward_builds_no_plan_and_no_pipeline(rng):
    p = _params(rng)
    x1, tx1 = _pair(_rand(rng, 2, 3, 4, 4))
    assert_close(_forward("tinydl", x1, p), _forward("torch", tx1, p))
    plans, pipes = stats["plans"], stats["pipelines"]
    for _ in range(2):
        x2, tx2 = _pair(_rand(rng, 2, 3, 4, 4))  # new data, same shapes
        with count_kernels() as again:
            y2 = _forward("tinydl", x2, p).numpy()
        assert stats["plans"] == plans and stats["pipelines"] == pipes
        assert_close(y2, _forward("torch", tx2, p))
        assert again.count >= 1  # the cached plan ran (new data, new values)


def test_plan_cache_distinguishes_shapes_and_structure(rng):
    p = _params(rng)
    x, tx = _pair(_rand(rng, 2, 3, 4, 4))
    _forward("tinydl", x, p).numpy()
    plans = stats["plans"]
    # a different batch size is a different graph: a new plan, right values
    x3, tx3 = _pair(_rand(rng, 3, 3, 4, 4))
    assert_close(_forward("tinydl", x3, p), _forward("torch", tx3, p))
    assert stats["plans"] == plans + 1
    # same shapes, but one input read twice (x + x) is not the same graph as two inputs (x + y)
    (a, ta), (b, tb) = _pair(_rand(rng, 3, 5)), _pair(_rand(rng, 3, 5))
    assert_close((a + b).exp(), (ta + tb).exp())
    n = stats["plans"]
    assert_close((a + a).exp(), (ta + ta).exp())
    assert stats["plans"] == n + 1
    # different scalar constants are part of the structure too
    assert_close(a * 2.0, ta * 2.0)
    n = stats["plans"]
    assert_close(a * 3.0, ta * 3.0)
    assert stats["plans"] == n + 1


def test_clear_cache_forces_a_new_plan(rng):
    (a, ta) = _pair(_rand(rng, 4, 4))
    assert_close(a.exp() - 1.0, ta.exp() - 1.0)
    n = stats["plans"]
    assert_close(a.exp() - 1.0, ta.exp() - 1.0)
    assert stats["plans"] == n
    S.clear_cache()
    assert_close(a.exp() - 1.0, ta.exp() - 1.0)
    assert stats["plans"] == n + 1


def _plan_of(t):
    order, sig, pos = S.walk([t.node])
    return S.plan_for(order, sig, [pos[t.node.uid]])


def test_the_target_is_part_of_the_plan_key(rng):
    """A plan made for other adapter limits (a smaller adapter the Options simulate) is never the one for this
    adapter's."""
    a = tinydl.tensor(_rand(rng, 8, 8))
    plan = _plan_of(a.exp() + 1.0)
    assert plan.key[2] == S.target() == S.Target.of(get_runtime())
    assert _plan_of(a.exp() + 1.0) is plan
    with tinydl.options(max_storage_buffers=4):
        other = _plan_of(a.exp() + 1.0)
        assert S.target() == dataclasses.replace(plan.key[2], max_storage_buffers=4)
    assert other is not plan and other.key[2].max_storage_buffers == 4
    assert other.key[:2] + other.key[3:] == plan.key[:2] + plan.key[3:]  # the same graph, chooser and options
    assert _plan_of(a.exp() + 1.0) is plan and other in S._plans.values()  # both kept


def test_simulated_limits_only_lower_the_adapters(use_options):
    """Options' limits cap the adapter's (a larger value is the adapter's own); a bad value names the option."""
    rt = get_runtime()
    own = rt.adapter_binding_size, rt.adapter_storage_buffers
    use_options(max_binding_size=own[0] * 2, max_storage_buffers=own[1] + 8)
    assert (rt.max_binding_size, rt.max_storage_buffers) == own
    use_options(max_binding_size=4096, max_storage_buffers=3)
    assert (rt.max_binding_size, rt.max_storage_buffers) == (4096, 3)
    assert (S.target().max_binding_size, S.target().max_storage_buffers) == (4096, 3)
    with pytest.raises(ValueError, match=r"tinydl option max_binding_size=0: expected a positive int or None"):
        with tinydl.options(max_binding_size=0):
            pass


def test_the_plan_cache_keeps_the_plans_used_last(rng, use_options):
    """At most Options.plan_cache_size plans (a server meeting many shapes must not grow without bound); the
    least recently used goes first."""
    use_options(plan_cache_size=3)
    S.clear_cache()
    xs = [tinydl.tensor(_rand(rng, 2, n)) for n in range(1, 21)]
    keys = [_plan_of(x.exp()).key for x in xs[:3]]
    assert list(S._plans) == keys
    _plan_of(xs[0].exp())  # used again: now the most recent
    _plan_of(xs[3].exp())  # a fourth plan: the least recently used (xs[1]'s) goes
    assert list(S._plans) == [keys[2], keys[0], _plan_of(xs[3].exp()).key]
    for x in xs:  # many shapes
        assert_close(x.exp(), np.exp(x.numpy()), rtol=1e-6, atol=0)
        assert len(S._plans) <= 3
    n = stats["plans"]
    _plan_of(xs[1].exp())  # evicted: planned again
    assert stats["plans"] == n + 1


def test_a_capture_replays_after_its_plan_is_evicted(rng, use_options):
    use_options(plan_cache_size=1)
    S.clear_cache()
    f = tinydl.jit(lambda x: (x * 2.0).relu())
    a, b = _rand(rng, 4, 8), _rand(rng, 4, 8)
    assert_close(f(tinydl.tensor(a)), np.maximum(a * 2, 0))
    plan = next(iter(S._plans.values()))
    assert_close(tinydl.tensor(b).exp(), np.exp(b), rtol=1e-6, atol=0)  # another plan: f's is evicted
    assert plan not in S._plans.values()
    n = stats["plans"]
    y = f(tinydl.tensor(b))
    assert stats["plans"] == n and len(f.captures) == 1  # replayed, with the plan the capture holds
    assert_close(y, np.maximum(b * 2, 0))


# -- storage buffers per kernel --------------------------------------------------------------------------
@pytest.fixture
def buffer_limit(use_options):
    yield lambda n: use_options(max_storage_buffers=n)


def _assert_plans_respect(limit):
    """The plans made under this limit (the key's Target) bind no more buffers than it allows."""
    plans = [plan for plan in S._plans.values() if plan.key[2].max_storage_buffers == limit]
    assert plans, "no plan was built"
    for plan in plans:
        for step in plan.steps:
            assert len(step.inputs) + 1 <= limit, (step.name, len(step.inputs))
            assert step.wgsl.count("var<storage") == len(step.inputs) + 1


@pytest.mark.parametrize("limit", [3, 4, 5, 8])
def test_expression_reading_many_buffers_is_split(rng, buffer_limit, limit):
    buffer_limit(limit)
    pairs = [_pair(_rand(rng, *s)) for s in [(3, 4), (4,), (3, 1), (3, 4), (1, 4), (3, 4), (4,), (3, 4)]]
    ts, tts = [p[0] for p in pairs], [p[1] for p in pairs]

    def expr(v, lib):
        m = tinydl if lib == "tinydl" else torch
        return (v[0] * v[1] + m.exp(v[2]) - v[3] * v[4]).relu() + m.tanh(v[5] + v[6]) / (v[7].abs() + 1.0)

    y = expr(ts, "tinydl")
    with count_kernels() as c:
        y.realize()
    assert c.count >= 2, c.names  # 8 inputs never fit one kernel under these limits
    assert_close(y, expr(tts, "torch"))
    _assert_plans_respect(limit)


@pytest.mark.parametrize("limit", [5, 8])
@pytest.mark.parametrize("dim", [0, 1])
def test_cat_of_ten_tensors_respects_limit(rng, buffer_limit, limit, dim):
    buffer_limit(limit)
    sizes = [1, 2, 3, 1, 2, 3, 1, 2, 3, 1]
    pairs = [_pair(_rand(rng, *((s, 3) if dim == 0 else (3, s)))) for s in sizes]
    y = tinydl.cat([p[0] for p in pairs], dim) * 2.0
    assert_close(y, torch.cat([p[1] for p in pairs], dim) * 2.0)
    _assert_plans_respect(limit)


def test_cat_below_webgpu_minimum_limit_raises_clear_error(rng, buffer_limit):
    # A cat node reads up to tensor.CAT_FANIN = 4 sources, so it needs 5 storage buffers. WebGPU guarantees
    # every adapter at least 8; below 5 tinydl must refuse with a message, not hand wgpu a bad pipeline.
    buffer_limit(4)
    ts = [tinydl.tensor(_rand(rng, 2, 2)) for _ in range(10)]
    with pytest.raises(RuntimeError, match=r"must read 4 buffers, more than the 3 this adapter allows"):
        (tinydl.cat(ts, 0) * 2.0).numpy()


def test_cat_of_realized_tensors_reads_back_without_a_kernel(rng):
    """A cat of realized tensors is already stored (in pieces): reading it joins the pieces on the host."""
    arrs = [_rand(rng, 2, 3) for _ in range(6)]
    with count_kernels() as c:
        out = tinydl.cat([tinydl.tensor(a) for a in arrs], 0).numpy()
    assert c.count == 0
    np.testing.assert_array_equal(out, np.concatenate(arrs, 0))


@pytest.mark.parametrize("limit", [3, 4, 8])
def test_conv_epilogue_reading_many_buffers_is_split(rng, buffer_limit, limit):
    """conv + bias + batch_norm + two residuals reads 9 buffers: the scheduler moves subexpressions (and, where
    the epilogue alone is too wide, the epilogue itself) into kernels of their own."""
    buffer_limit(limit)
    (x, tx), (w, tw), (b, tb) = _pair(_rand(rng, 2, 3, 6, 6)), _pair(_rand(rng, 4, 3, 3, 3)), _pair(_rand(rng, 4))
    (rm, trm), (rv, trv) = _pair(_rand(rng, 4)), _pair(_rand(rng, 4, positive=True))
    (g, tg), (be, tbe) = _pair(_rand(rng, 4)), _pair(_rand(rng, 4))
    (r1, tr1), (r2, tr2) = _pair(_rand(rng, 2, 4, 6, 6)), _pair(_rand(rng, 2, 4, 1, 1))
    y = F.relu(F.batch_norm(F.conv2d(x, w, b, padding=1), rm, rv, g, be) + r1) * r2
    ty = TF.relu(TF.batch_norm(TF.conv2d(tx, tw, tb, padding=1), trm, trv, tg, tbe, training=False) + tr1) * tr2
    assert_close(y, ty)
    _assert_plans_respect(limit)


@pytest.mark.parametrize("limit", [3, 4])
def test_matmul_epilogue_reading_many_buffers_is_split(rng, buffer_limit, limit):
    buffer_limit(limit)
    (a, ta), (b, tb) = _pair(_rand(rng, 3, 4)), _pair(_rand(rng, 4, 5))
    cs = [_pair(_rand(rng, 3, 1)) for _ in range(4)]
    y = (a @ b) + cs[0][0] - cs[1][0] * cs[2][0] + cs[3][0]
    ty = (ta @ tb) + cs[0][1] - cs[1][1] * cs[2][1] + cs[3][1]
    assert_close(y, ty)
    _assert_plans_respect(limit)


def test_split_materializes_the_small_operand_not_its_broadcast(rng, buffer_limit):
    """The per-channel batch-norm shift is materialized at its own size (C elements), never broadcast."""
    buffer_limit(8)
    (x, tx), (w, tw), (b, tb) = _pair(_rand(rng, 2, 3, 6, 6)), _pair(_rand(rng, 4, 3, 3, 3)), _pair(_rand(rng, 4))
    bn = [_pair(_rand(rng, 4)), _pair(_rand(rng, 4, positive=True)), _pair(_rand(rng, 4)), _pair(_rand(rng, 4))]
    (r, tr) = _pair(_rand(rng, 2, 4, 6, 6))
    y = F.relu(F.batch_norm(F.conv2d(x, w, b, padding=1), *(p[0] for p in bn)) + r)
    ty = TF.relu(TF.batch_norm(TF.conv2d(tx, tw, tb, padding=1), *(p[1] for p in bn), training=False) + tr)
    with count_kernels() as c:
        y.realize()
    assert c.count == 2, c.names
    helper = [n for n in c.names if not n.startswith("conv2d")]
    assert len(helper) == 1 and helper[0].split(" [")[0].endswith(" 4"), c.names
    assert_close(y, ty)
    _assert_plans_respect(8)


# -- binding size ---------------------------------------------------------------------------------------
@pytest.fixture
def small_bindings(use_options):
    use_options(max_binding_size=1024)
    yield 1024


@pytest.mark.parametrize("shape", [(16, 17), (40, 30), (3, 700), (1100,)])
def test_upload_larger_than_binding_limit_is_split(rng, small_bindings, shape):
    """A tensor bigger than one storage binding is stored in pieces (along dim 0, or flat when one row is
    too big) joined by a lazy cat; kernels read the pieces directly and give the right values."""
    a = _rand(rng, *shape)
    t = tinydl.tensor(a)
    leaves = S.stored_leaves(t.node)
    assert len(leaves) > 1 and all(n.numel * 4 <= 1024 for n in leaves)
    assert_close(t, torch.from_numpy(a))
    assert_close((t * 2.0).sum(), torch.from_numpy(a * 2.0).sum())  # fp32 sum of <= 2100 terms: rtol 1e-4
    # at the limit it is one buffer
    assert tinydl.tensor(_rand(rng, 16, 16)).node.kind == "buffer"


@pytest.mark.parametrize("build,shape", [
    (lambda x: x.reshape(1, 200).expand(2, 200) * 2.0, [2, 200]),
    (lambda x: x.reshape(200, 1) @ x.reshape(1, 200)[:, :10], [200, 10]),
    (lambda x: F.conv2d(x.reshape(2, 1, 10, 10), tinydl.ones(4, 1, 1, 1)), [2, 4, 10, 10]),
    (lambda x: tinydl.cat([x, x * 2.0], 0), [400]),
])
def test_result_larger_than_binding_limit_raises(rng, small_bindings, build, shape):
    x = tinydl.tensor(_rand(rng, 200))  # 800 bytes: fits
    y = build(x)
    nbytes = int(np.prod(shape)) * 4
    want = rf"result of shape \[{', '.join(map(str, shape))}\] needs {nbytes} bytes, more than .*\(1024 bytes"
    with pytest.raises(RuntimeError, match=want):
        y.numpy()


def test_runtime_usable_after_binding_error(rng):
    with tinydl.options(max_binding_size=1024):
        x = tinydl.tensor(_rand(rng, 200))
        with pytest.raises(RuntimeError, match="1024 bytes"):
            (x.reshape(1, 200).expand(3, 200) + 1.0).numpy()
    a = _rand(rng, 3, 200)
    assert_close(tinydl.tensor(a) + 1.0, torch.from_numpy(a) + 1.0)


# -- buffer pool -----------------------------------------------------------------------------------------
def _pooled():
    return sum(len(v) for v in get_runtime()._free.values())


def test_dropped_results_return_to_pool(rng):
    xs = [tinydl.tensor(_rand(rng, 7, 9)) for _ in range(5)]
    ys = [(x * 2.0).exp().realize() for x in xs]
    gc.collect()
    before = _pooled()
    for y, x in zip(ys, xs):
        assert_close(y, torch.from_numpy(x.numpy() * 2.0).exp())
    del ys, y  # (the loop variable held the last one)
    gc.collect()
    assert _pooled() == before + 5
    # the next results of that size come from the pool
    zs = [(x + 1.0).realize() for x in xs]
    assert _pooled() == before
    assert len(zs) == 5


def test_intermediates_of_one_plan_are_released(rng):
    """Kernel outputs that are not roots go back to the pool when the plan has run."""
    x, tx = _pair(_rand(rng, 5, 6))
    w, tw = _pair(_rand(rng, 6, 6))
    free = get_runtime()._free
    warm = [tinydl.tensor(_rand(rng, 5, 6)) for _ in range(2)]  # make sure two 5x6 buffers (128 B) are pooled
    del warm
    gc.collect()
    before = len(free.get(128, []))
    assert before >= 2
    y = ((x @ w).relu() @ w).sum(1)  # matmul+relu -> matmul -> reduce: two 5x6 intermediates
    with count_kernels() as c:
        y.realize()
    assert c.count == 3, c.names
    # both intermediates were taken from the pool and given back; the result (5 floats) is kept
    assert len(free.get(128, [])) == before
    assert_close(y, ((tx @ tw).relu() @ tw).sum(1), atol=1e-4)  # K=6 twice, summation order


def test_repeated_forward_reaches_steady_state_buffer_count(rng, monkeypatch):
    rt = get_runtime()
    created = []
    orig = rt.device.create_buffer

    def counting(*a, **k):
        buf = orig(*a, **k)
        created.append(buf.size)
        return buf

    monkeypatch.setattr(rt.device, "create_buffer", counting)
    rt.empty_cache()  # start from an empty pool: the first run must create buffers
    (w, tw), (b, tb) = _pair(_rand(rng, 4, 3, 3, 3)), _pair(_rand(rng, 4))
    per_run = []
    for _ in range(5):
        x, tx = _pair(_rand(rng, 2, 3, 6, 6))
        n0 = len(created)
        h = F.relu(F.conv2d(x, w, b, padding=1)).realize()  # a separate realization: h outlives it
        y = (F.max_pool2d(h, 2) * 2.0 + h.mean()).sum((2, 3))
        out = y.numpy()
        ref = (TF.max_pool2d(TF.relu(TF.conv2d(tx, tw, tb, padding=1)), 2) * 2.0
               + TF.relu(TF.conv2d(tx, tw, tb, padding=1)).mean()).sum((2, 3))
        assert_close(out, ref, atol=1e-4)  # sums of 9 values of size ~10: fp32 summation order
        del x, h, y
        gc.collect()
        per_run.append(len(created) - n0)
    assert per_run[0] > 0
    assert per_run[2:] == [0, 0, 0], per_run  # from the third run on, every buffer comes from the pools


# -- zero-size outputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["exp", "matmul_m0", "conv_n0", "cat_empty", "slice_empty", "reduce_keep0",
                                  "mixed"])
def test_zero_size_outputs_dispatch_nothing(rng, case):
    if case == "exp":
        (x, tx) = _pair(_rand(rng, 0, 3))
        y, ty = (x.exp() + 1.0), (tx.exp() + 1.0)
    elif case == "matmul_m0":
        (a, ta), (b, tb) = _pair(_rand(rng, 2, 0, 4)), _pair(_rand(rng, 4, 5))
        y, ty = (a @ b).relu(), (ta @ tb).relu()
    elif case == "conv_n0":
        (x, tx), (w, tw) = _pair(_rand(rng, 0, 3, 5, 5)), _pair(_rand(rng, 4, 3, 3, 3))
        y, ty = F.conv2d(x, w).relu(), TF.conv2d(tx, tw).relu()
    elif case == "cat_empty":
        (a, ta), (b, tb) = _pair(_rand(rng, 3, 0)), _pair(_rand(rng, 3, 0))
        y, ty = tinydl.cat([a, b], 1), torch.cat([ta, tb], 1)
    elif case == "slice_empty":
        (x, tx) = _pair(_rand(rng, 4, 3))
        y, ty = x[2:2] * 2.0, tx[2:2] * 2.0
    elif case == "reduce_keep0":
        (x, tx) = _pair(_rand(rng, 0, 5))
        y, ty = x.sum(1), tx.sum(1)
    else:  # a zero-size root realized together with a normal one: only the normal one runs
        (x, tx) = _pair(_rand(rng, 3, 4))
        e, te = x[:, 4:].exp(), tx[:, 4:].exp()
        y, ty = x * 2.0, tx * 2.0
        with count_kernels() as c:
            tinydl.realize(e, y)
        assert c.count == 1, c.names
        assert_close(e, te)
        assert_close(y, ty)
        return
    with count_kernels() as c:
        out = y.numpy()
    assert c.count == 0, c.names
    assert out.shape == tuple(ty.shape) and out.dtype == np.float32
    assert_close(y, ty)


def test_split_tensor_with_two_consumers_is_read_in_place(rng, small_bindings):
    """A tensor stored in pieces (bigger than one binding) read by two kernels is never gathered into one
    buffer (which could not exist): each kernel reads the pieces (GPT-2's tied embedding / lm_head)."""
    w, x = _rand(rng, 16, 32), _rand(rng, 32, 3)
    tw = tinydl.tensor(w)
    assert len(S.stored_leaves(tw.node)) > 1
    a, b = tw @ tinydl.tensor(x), (tw * 2.0).sum(1)
    with count_kernels() as c:
        tinydl.realize(a, b)
    assert c.count == 2 and not any(" 16x32 " in n for n in c.names), c.names
    assert_close(a, torch.from_numpy(w @ x), atol=1e-4)
    assert_close(b, torch.from_numpy((w * 2.0).sum(1)), atol=1e-4)
