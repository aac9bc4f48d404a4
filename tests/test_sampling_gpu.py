"""Sampling on the GPU (kernels/sample.py): the token each row draws with its uniform number equals the host
sampler's (HF's warpers in float64, then the inverse CDF) — top-k ties, top-p's boundary, min-p, -inf scores, float16
logits, rows shorter than the workgroup; invalid probabilities raise torch's error; one kernel."""
import numpy as np
import pytest

import tinydl
from tinydl.generation import sampling
from tinydl.kernels import sample as sample_kernel
from tinydl.ops import MAX_TRIPS

from test_big_reductions import loop_trips  # noqa: E402 - the loop-trip bound the big-reduction tests check


def host_draw(logits: np.ndarray, u: np.ndarray, temperature, top_k, top_p, min_p=None) -> np.ndarray:
    """sampling.sample's draw with given uniforms."""
    scores = sampling.warp(logits.astype(np.float32), temperature, top_k, top_p, min_p)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.minimum((np.cumsum(p, -1) < u[:, None]).sum(-1), p.shape[-1] - 1)


def draw(logits: np.ndarray, u: np.ndarray, temperature=1.0, top_k=None, top_p=1.0, min_p=None) -> np.ndarray:
    return sampling.sample_on_gpu(tinydl.tensor(logits), u, temperature, top_k, top_p, min_p).numpy()


@pytest.mark.parametrize("vocab,temperature,top_k,top_p,min_p", [
    (1000, 1.0, None, 1.0, None), (1000, 0.7, 50, 1.0, None), (1000, 1.0, None, 0.9, None),
    (1000, 1.3, 50, 0.9, None), (3001, 1.0, 7, 0.5, None), (1000, 1.0, 1, 1.0, None), (1000, 1.0, None, 0.0, None),
    (5, 2.0, 3, 0.8, None), (255, 1.0, 300, 0.95, None), (4099, 0.5, 1000, 0.99, None), (1000, 1.0, None, 1.0, 0.05),
    (1000, 1.5, 40, 0.95, 0.2), (1000, 1.0, None, 1.0, 1.0)])
def test_draws_equal_the_host_sampler(vocab, temperature, top_k, top_p, min_p):
    rng = np.random.default_rng(vocab + (top_k or 0))
    logits = (rng.standard_normal((48, vocab)) * 3).astype(np.float32)
    u = rng.random(48)
    np.testing.assert_array_equal(draw(logits, u, temperature, top_k, top_p, min_p),
                                  host_draw(logits, u, temperature, top_k, top_p, min_p))


def test_top_k_keeps_every_tie_of_the_kth_score():
    """Integer scores: the k-th largest is tied with others, HF keeps them all; u near 1 lands on the last kept."""
    rng = np.random.default_rng(1)
    logits = rng.integers(-4, 5, (64, 300)).astype(np.float32)
    u = np.concatenate([rng.random(56), np.full(8, 0.999999)])
    for k in (3, 10, 40):
        got = draw(logits, u, top_k=k)
        np.testing.assert_array_equal(got, host_draw(logits, u, 1.0, k, 1.0))
        kth = np.sort(logits, -1)[:, -k]
        assert (logits[np.arange(64), got] >= kth).all()


def test_float16_logits_and_masked_tokens():
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((16, 777)) * 2).astype(np.float16)
    logits[:, ::3] = -np.inf  # masked tokens (bad words, a processor's -inf) are never drawn
    u = rng.random(16)
    got = draw(logits, u, 0.8, 20, 0.9)
    np.testing.assert_array_equal(got, host_draw(logits.astype(np.float32), u, 0.8, 20, 0.9))
    assert (got % 3 != 0).all()


@pytest.mark.parametrize("bad", ["nan", "inf", "all -inf"])
def test_invalid_probabilities_raise_torchs_error(bad):
    logits = np.zeros((2, 100), np.float32)
    if bad == "all -inf":
        logits[1] = -np.inf
    else:
        logits[1, 17] = float(bad)
    with pytest.raises(RuntimeError, match="probability tensor contains either `inf`, `nan` or element < 0"):
        draw(logits, np.array([0.3, 0.6]), top_k=5)
    # the error is reported once: the next draw works
    np.testing.assert_array_equal(draw(np.zeros((1, 100), np.float32), np.array([0.999])), [99])


def test_the_draw_is_one_kernel_with_the_temperature_fused():
    logits = tinydl.tensor(np.random.default_rng(3).standard_normal((4, 500)).astype(np.float16)).realize()
    with tinydl.debug.count_kernels() as c:
        sampling.sample_on_gpu(logits, np.full(4, 0.5), 0.7, 40, 0.9).numpy()
    assert len(c.names) == 1 and c.names[0].startswith("sample"), c.names


@pytest.mark.parametrize("vocab,top_k,top_p", [(32000, 50, 0.9), (151936, 50, 0.9), (256000, None, 1.0)])
def test_loop_trips_within_the_bound(vocab, top_k, top_p):
    """The kernel's trips as counted from its WGSL stay within trips(), which decides GPU or host."""
    scores = tinydl.zeros((1, vocab))
    node = sampling.sample_on_gpu if sampling.fits_gpu(vocab, top_k, top_p) else None
    bound = sample_kernel.trips(vocab, sampling.effective_top_k(top_k, vocab), top_p)
    if node is None:
        assert bound > MAX_TRIPS
        return
    (wgsl,) = tinydl.schedule.shaders_for(node(scores, np.zeros(1), 1.0, top_k, top_p))
    assert loop_trips(wgsl) <= bound <= MAX_TRIPS
