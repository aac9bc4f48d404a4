"""tinydl.write_slot (a cache with one slot replaced) and tinydl.donate (the write then goes in place): parity with
torch.where, the in-place kernel and its aliasing under jit replays, the donated tensor refusing reads, and the
cases that must stay out of place."""
import numpy as np
import pytest
import torch

import tinydl
from tinydl import debug

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def torch_slot(cache, new, position, dim=-2):
    """torch's meaning: where(arange(L) == position, new, cache) along dim."""
    c = torch.from_numpy(cache)
    d = dim % c.dim()
    at = (torch.arange(c.shape[d]) == position).reshape([-1 if i == d else 1 for i in range(c.dim())])
    return torch.where(at, torch.from_numpy(new), c).numpy()


def realized(a):
    t = tinydl.tensor(a)
    tinydl.realize(t)
    return t


@pytest.mark.parametrize("shape,dim,position", [((2, 3, 8, 4), -2, 5), ((5, 4), 0, 0), ((2, 7, 3), 1, 6),
                                                ((2, 3, 8, 4), -2, 8), ((2, 3, 8, 4), -2, -1)])
def test_out_of_place_matches_torch_where(shape, dim, position):
    cache = rand(*shape)
    new = rand(*[1 if i == dim % len(shape) else s for i, s in enumerate(shape)])
    got = tinydl.write_slot(tinydl.tensor(cache), tinydl.tensor(new), position, dim=dim).numpy()
    np.testing.assert_array_equal(got, torch_slot(cache, new, position, dim))


def test_dtypes_broadcast_and_tensor_positions():
    cache = rand(2, 3, 6, 4).astype(np.float16)
    new = rand(2, 1, 1, 4)  # float32, broadcast over heads: cast to the cache's dtype
    got = tinydl.write_slot(tinydl.tensor(cache), tinydl.tensor(new), tinydl.tensor(np.array([2], np.int64)))
    assert got.dtype == tinydl.float16
    np.testing.assert_array_equal(got.numpy(), torch_slot(cache, np.broadcast_to(new, (2, 3, 1, 4)).astype(np.float16), 2))
    ints = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.testing.assert_array_equal(tinydl.write_slot(tinydl.tensor(ints), tinydl.tensor(np.full((1, 4), -7, np.int32)),
                                                    1, dim=0).numpy(),
                                  torch_slot(ints, np.full((1, 4), -7, np.int32), 1, 0))


def test_bad_arguments_name_the_cause():
    cache = tinydl.tensor(rand(2, 3, 6, 4))
    with pytest.raises(RuntimeError, match=r"write_slot: new of shape \[2, 3, 2, 4\] does not fit one slot of a cache "
                                           r"of shape \[2, 3, 6, 4\] along dim -2 \(expected \[2, 3, 1, 4\]\)"):
        tinydl.write_slot(cache, tinydl.tensor(rand(2, 3, 2, 4)), 0)
    with pytest.raises(RuntimeError, match=r"write_slot: position must be one integer, got a float32 tensor of shape \[1\]"):
        tinydl.write_slot(cache, tinydl.tensor(rand(2, 3, 1, 4)), tinydl.tensor(np.array([1.0], np.float32)))
    with pytest.raises(RuntimeError, match=r"position must be one integer, got a int32 tensor of shape \[2\]"):
        tinydl.write_slot(cache, tinydl.tensor(rand(2, 3, 1, 4)), tinydl.tensor(np.array([1, 2], np.int32)))
    with pytest.raises(TypeError, match="donate\\(\\) expects tinydl tensors, got ndarray"):
        tinydl.donate(np.zeros(3))


def test_a_donated_cache_is_written_in_place_and_then_refuses_reads():
    cache, new = rand(2, 3, 8, 4), rand(2, 3, 1, 4)
    t = tinydl.donate(realized(cache))
    with debug.count_kernels() as c:
        out = tinydl.write_slot(t, tinydl.tensor(new) * 2, 3)
        tinydl.realize(out)
    # one kernel over the new slot (the multiply inlined: heavy kernels name their core and epilogue only)
    assert c.names == ["write_slot 2x3x8x4 [in_place]"], c.names
    np.testing.assert_array_equal(out.numpy(), torch_slot(cache, new * 2, 3))
    with pytest.raises(RuntimeError, match=r"this tensor was donated \(tinydl.donate\) and a later kernel wrote its "
                                           r"result into its storage"):
        t.numpy()
    with pytest.raises(RuntimeError, match="was donated"):
        (t + 1).numpy()


def test_a_donated_cache_read_elsewhere_or_returned_is_written_out_of_place():
    """In place only where the write is the donated tensor's one reader and the tensor is not a result itself:
    otherwise the old values are still needed, and both stay right."""
    cache, new = rand(2, 3, 8, 4), rand(2, 3, 1, 4)
    t = tinydl.donate(realized(cache))
    out = tinydl.write_slot(t, tinydl.tensor(new), 1)
    both = out + t  # reads the old cache too
    with debug.count_kernels() as c:
        tinydl.realize(both)
    assert any("[copy]" in n for n in c.names) and not any("in_place" in n for n in c.names), c.names
    np.testing.assert_array_equal(both.numpy(), torch_slot(cache, new, 1) + cache)
    np.testing.assert_array_equal(t.numpy(), cache)

    def step(c, n):
        return tinydl.write_slot(c, n, 2), c * 1  # (c * 1: a second reader)
    u = tinydl.donate(realized(cache))
    a, b = tinydl.jit(step)(u, tinydl.tensor(new))
    np.testing.assert_array_equal(a.numpy(), torch_slot(cache, new, 2))
    np.testing.assert_array_equal(b.numpy(), cache)
    np.testing.assert_array_equal(u.numpy(), cache)


def test_an_undonated_cache_is_never_written():
    cache, new = rand(2, 3, 8, 4), rand(2, 3, 1, 4)
    t = realized(cache)
    with debug.count_kernels() as c:
        out = tinydl.write_slot(t, tinydl.tensor(new), 0).numpy()
    assert c.names == ["write_slot 2x3x8x4 [copy]"], c.names
    np.testing.assert_array_equal(out, torch_slot(cache, new, 0))
    np.testing.assert_array_equal(t.numpy(), cache)


def _decode_like(cache, new, position):
    """A decode step's shape: the slot written, then read by a reduction (attention reads the whole cache)."""
    written = tinydl.write_slot(cache, new, position)
    return written, written.sum(-1)


@pytest.mark.parametrize("pre_encode", [True, False])
def test_jit_replays_write_one_buffer_in_place(use_options, pre_encode):
    """A loop feeding each step's cache to the next: every replay writes in place, into the one buffer the first
    call was given; each earlier cache tensor refuses reads once donated; a different donated tensor fed midway
    (beam search's reordered rows) is written in its own buffer."""
    use_options(pre_encode=pre_encode)
    step = tinydl.jit(_decode_like)
    ref = rand(2, 3, 10, 4)
    cache = realized(ref)
    buffer = cache.node.buffer
    previous = []
    for i in range(10):
        new = rand(2, 3, 1, 4)
        with debug.count_kernels() as c:
            cache, sums = step(tinydl.donate(cache), tinydl.tensor(new), tinydl.tensor(np.array([i], np.int64)))
            tinydl.realize(sums)
        ref[:, :, i:i + 1] = new
        assert [n for n in c.names if n.startswith("write_slot")] == ["write_slot 2x3x10x4 [in_place]"], c.names
        np.testing.assert_allclose(sums.numpy(), ref.sum(-1), rtol=1e-6, atol=1e-6)
        if i == 5:  # fed a copy (another buffer) instead of the step's own result
            kept, kept_ref = cache, ref.copy()  # never fed again: it keeps its values
            cache = realized(cache.numpy())
            buffer = cache.node.buffer
        else:
            assert cache.node.buffer is buffer
            previous.append(cache)
    np.testing.assert_array_equal(cache.numpy(), ref)
    for t in previous[:-1]:
        with pytest.raises(RuntimeError, match="was donated"):
            t.numpy()
    np.testing.assert_array_equal(kept.numpy(), kept_ref)


def test_jit_without_donation_leaves_its_input_alone():
    step = tinydl.jit(_decode_like)
    base = rand(2, 3, 6, 4)
    cache = realized(base)
    for i in range(3):
        new = rand(2, 3, 1, 4)
        out, _ = step(cache, tinydl.tensor(new), tinydl.tensor(np.array([i], np.int64)))
        np.testing.assert_array_equal(out.numpy(), torch_slot(base, new, i))
        np.testing.assert_array_equal(cache.numpy(), base)


def test_a_donated_cache_under_the_profiler(use_options):
    step = tinydl.jit(_decode_like)
    ref = rand(1, 2, 4, 4)
    cache = realized(ref)
    with tinydl.profile():
        for i in range(3):
            new = rand(1, 2, 1, 4)
            cache, _ = step(tinydl.donate(cache), tinydl.tensor(new), tinydl.tensor(np.array([i], np.int64)))
            ref[:, :, i:i + 1] = new
    np.testing.assert_array_equal(cache.numpy(), ref)


def test_in_place_slots_off_copies(use_options):
    """Options.in_place_slots=False (an A/B switch): a donated cache is copied as an undonated one, and stays."""
    use_options(in_place_slots=False)
    cache, new = rand(2, 3, 8, 4), rand(2, 3, 1, 4)
    t = tinydl.donate(realized(cache))
    with debug.count_kernels() as c:
        out = tinydl.write_slot(t, tinydl.tensor(new), 7).numpy()
    assert c.names == ["write_slot 2x3x8x4 [copy]"], c.names
    np.testing.assert_array_equal(out, torch_slot(cache, new, 7))
    np.testing.assert_array_equal(t.numpy(), cache)


def test_an_in_place_result_that_is_no_root_stays_readable():
    """Realizing one reader of an in-place write realizes the write too: a later reader finds its result, not the
    donated tensor it replaced."""
    cache, new = rand(2, 3, 8, 4), rand(2, 3, 1, 4)
    written = tinydl.write_slot(tinydl.donate(realized(cache)), tinydl.tensor(new), 4)
    first, second = written.sum(-1), written.amax(-1)
    ref = torch_slot(cache, new, 4)
    np.testing.assert_allclose(first.numpy(), ref.sum(-1), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(second.numpy(), ref.max(-1))
    np.testing.assert_array_equal(written.numpy(), ref)


def test_a_donated_tensor_with_a_realized_reshape_is_not_written_in_place():
    """A reshape of realized data shares its buffer: writing the donated tensor in place would change it too."""
    cache, new = rand(2, 3, 8, 4), rand(2, 3, 1, 4)
    t = realized(cache)
    flat = t.reshape(6, 32)
    tinydl.realize(flat)
    with debug.count_kernels() as c:
        out = tinydl.write_slot(tinydl.donate(t), tinydl.tensor(new), 2).numpy()
    assert c.names == ["write_slot 2x3x8x4 [copy]"], c.names
    np.testing.assert_array_equal(out, torch_slot(cache, new, 2))
    np.testing.assert_array_equal(flat.numpy(), cache.reshape(6, 32))


def test_a_donated_closure_tensor_is_written_once_and_not_captured():
    """A jit whose function reads a donated tensor that is not one of its inputs: the first call writes it in
    place (no capture: a replay would write it again); a second call finds it gone and says so."""
    cache, new = rand(2, 3, 8, 4), rand(2, 3, 1, 4)
    held = tinydl.donate(realized(cache))
    step = tinydl.jit(lambda n: tinydl.write_slot(held, n, 1))
    np.testing.assert_array_equal(step(tinydl.tensor(new)).numpy(), torch_slot(cache, new, 1))
    assert not step.captures
    with pytest.raises(RuntimeError, match="was donated"):
        step(tinydl.tensor(new)).numpy()
