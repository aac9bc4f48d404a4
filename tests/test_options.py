"""tinydl.options: the settings as one frozen value, changed for a block, restored after it; the fields that
change plans are part of the plan-cache key."""
import threading

import numpy as np
import pytest

import tinydl
import tinydl.nn.functional as F
from tinydl import debug, explain, options, schedule
from tinydl.options import Options


def test_block_changes_and_restores():
    before = options.current()
    with tinydl.options(force_split_k=2, vec4_loads=False) as inside:
        assert options.current() is inside
        assert (inside.force_split_k, inside.vec4_loads, inside.vec4_stores) == (2, False, True)
    assert options.current() is before


def test_restored_after_an_exception():
    before = options.current()
    with pytest.raises(ZeroDivisionError):
        with tinydl.options(submit_chunk=1):
            1 / 0
    assert options.current() is before


def test_nested_blocks_change_the_enclosing_one():
    with tinydl.options(force_tile="tile32"):
        with tinydl.options(force_split_k=4):
            assert (options.current().force_tile, options.current().force_split_k) == ("tile32", 4)
            with tinydl.options(force_tile="tile64"):
                assert options.current().force_tile == "tile64"
            assert options.current().force_tile == "tile32"
        assert (options.current().force_tile, options.current().force_split_k) == ("tile32", None)
    assert options.current().force_tile is None


def test_unknown_names_raise_naming_them():
    with pytest.raises(TypeError, match="bogus, nope"):
        with tinydl.options(nope=1, bogus=2):
            pass
    with pytest.raises(TypeError, match="FORCE_SPLIT_K"):
        options.current().replace(FORCE_SPLIT_K=2)


def test_options_are_frozen_and_per_thread():
    with pytest.raises(AttributeError):
        options.current().force_tile = "tile32"
    seen = []
    with tinydl.options(force_split_k=2):
        t = threading.Thread(target=lambda: seen.append(options.current().force_split_k))
        t.start()
        t.join()
    assert seen == [None]  # a new thread starts at the defaults


def test_plan_key_holds_the_planning_fields_only():
    base = Options()
    assert base.replace(force_split_k=2).plan_key != base.plan_key
    assert base.replace(vec4_stores=False).plan_key != base.plan_key
    # runtime settings do not split the plan cache
    assert base.replace(submit_chunk=1, pre_encode=False, native_map=False, lend_min_bytes=1).plan_key == base.plan_key
    # the GEMM chooser plans; how many plans are kept does not
    assert base.replace(tune=True).plan_key != base.plan_key
    assert base.replace(plan_cache_size=1).plan_key == base.plan_key


def test_update_changes_the_options_from_there_on():
    """options.update: not for a block but for the rest of the context; an enclosing block still restores what
    it found."""
    before = options.current()
    with tinydl.options():
        now = options.update(plan_cache_size=7)
        assert options.current() is now and now.plan_cache_size == 7
        with pytest.raises(TypeError, match="plan_cache_sise"):
            options.update(plan_cache_sise=7)
        seen = []
        t = threading.Thread(target=lambda: seen.append(options.current().plan_cache_size))
        t.start()
        t.join()
        assert seen == [Options().plan_cache_size]  # another thread: the defaults
    assert options.current() is before


def test_a_plan_is_not_reused_under_options_that_plan_differently(rng):
    """The same graph structure inside and outside a forced split-K: a split GEMM (and its sum) inside, one
    kernel outside, and the plan made outside is found again after the block, with no clear_cache()."""
    x, w = rng.standard_normal((4, 256), dtype=np.float32), rng.standard_normal((32, 256), dtype=np.float32)
    tx, tw = tinydl.tensor(x), tinydl.tensor(w)

    def run():
        with debug.count_kernels() as c:
            out = F.linear(tx, tw).relu().numpy()
        np.testing.assert_allclose(out, np.maximum(x @ w.T, 0), rtol=1e-4, atol=1e-4)
        return c.names
    outside = run()
    with tinydl.options(force_split_k=4):
        inside = run()
    assert len(outside) == 1 and len(inside) == 2, (outside, inside)
    plans = debug.stats["plans"]
    assert run() == outside and debug.stats["plans"] == plans  # the first plan, from the cache


def test_runtime_settings_reuse_the_plan(rng):
    x = tinydl.tensor(rng.standard_normal((8, 8), dtype=np.float32))
    (x * 2 + 1).numpy()
    plans = debug.stats["plans"]
    with tinydl.options(submit_chunk=1, submit_first=1, native_map=False, lend_min_bytes=1):
        (x * 2 + 1).numpy()
    assert debug.stats["plans"] == plans


def test_eager_is_an_option(rng):
    x = tinydl.tensor(rng.standard_normal(8, dtype=np.float32))
    with tinydl.debug.eager():
        assert options.current().eager
        y = x * 2
        assert y.node.stored  # realized at once
    assert not options.current().eager
    assert not (x * 2).node.stored


def test_explain_plans_under_given_options():
    P = explain.placeholder
    target = schedule.Target()
    fn = lambda x, w: F.linear(x, w)  # noqa: E731
    assert len(explain.plan(fn, P(4, 256), P(32, 256), target=target).names) == 1
    split = explain.plan(fn, P(4, 256), P(32, 256), target=target, options=Options(force_split_k=4))
    assert len(split.names) == 2


def test_a_jit_capture_is_not_replayed_under_options_that_plan_differently(rng):
    x, w = rng.standard_normal((4, 256), dtype=np.float32), rng.standard_normal((32, 256), dtype=np.float32)
    tw = tinydl.tensor(w)
    f = tinydl.jit(lambda t: F.linear(t, tw).relu())

    def run():
        with debug.count_kernels() as c:
            out = f(tinydl.tensor(x)).numpy()
        np.testing.assert_allclose(out, np.maximum(x @ w.T, 0), rtol=1e-4, atol=1e-4)
        return c.count
    assert run() == 1 and run() == 1  # capture, replay
    with tinydl.options(force_split_k=4):
        assert run() == 2 and run() == 2
    assert run() == 1 and len(f.captures) == 2
