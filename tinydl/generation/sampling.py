"""Sampling the next token from the last position's logits, as Hugging Face's warpers do in order (temperature,
top-k, top-p, min-p), with one uniform number per sequence from a seeded numpy Generator: reproducible from the seed
(not the same stream as torch's).

On the GPU (`sample_on_gpu`: one kernel, kernels/sample.py) the step reads back only the token ids; `sample` is
the same draw on the host from the logits read back, for rows too long for the kernel's loop limit (and the
reference its tests compare with).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from .._core import Tensor, _make
from .._tensor import tensor
from ..kernels import sample as sample_kernel
from ..ops import MAX_TRIPS, SAMPLE


def effective_top_k(top_k: int | None, vocab: int) -> int | None:
    """HF's TopKLogitsWarper: off for None/0 and for k >= the vocabulary (it keeps everything)."""
    return top_k if top_k and top_k < vocab else None


def fits_gpu(vocab: int, top_k: int | None, top_p: float) -> bool:
    return sample_kernel.trips(vocab, effective_top_k(top_k, vocab), top_p) <= MAX_TRIPS


def sample_on_gpu(logits: Tensor, uniform: np.ndarray, temperature: float, top_k: int | None,
                  top_p: float, min_p: float | None = None) -> Tensor:
    """[B, V] logits, [B] uniforms in [0, 1) -> [B] token ids (int32), as `sample` draws them (a tie or a
    cumulative probability within float32 rounding of the draw or of top_p may land on a neighbour)."""
    vocab = logits.shape[-1]
    assert fits_gpu(vocab, top_k, top_p), vocab
    scores = logits.float()
    if temperature != 1.0:
        scores = scores / temperature
    u = tensor(np.asarray(uniform, np.float32).reshape(-1, 1))
    arg = (effective_top_k(top_k, vocab), float(top_p), None if min_p is None else float(min_p))
    return _make(SAMPLE, None, (scores, u), arg, scores.shape[:1], dtypes.int32)


def warp(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float,
         min_p: float | None = None) -> np.ndarray:
    """[B, V] float scores -> the scores HF would sample from (-inf where filtered out)."""
    scores = logits.astype(np.float64) / temperature
    vocab = scores.shape[-1]
    if top_k is not None and 0 < top_k < vocab:
        kth = np.sort(scores, axis=-1)[:, -top_k][:, None]
        scores = np.where(scores < kth, -np.inf, scores)
    if top_p < 1.0:
        # HF's TopPLogitsWarper: ascending sort, drop the tokens whose cumulative probability is <= 1 - top_p,
        # always keeping the most likely one
        order = np.argsort(scores, axis=-1, kind="stable")
        s = np.take_along_axis(scores, order, -1)
        p = np.exp(s - s.max(-1, keepdims=True))
        cum = np.cumsum(p / p.sum(-1, keepdims=True), -1)
        drop = cum <= 1 - top_p
        drop[:, -1] = False
        remove = np.zeros_like(drop)
        np.put_along_axis(remove, order, drop, -1)
        scores = np.where(remove, -np.inf, scores)
    if min_p is not None:  # HF's MinPLogitsWarper: probability below min_p times the top one's
        p = np.exp(scores - scores.max(-1, keepdims=True))
        scores = np.where(p < min_p, -np.inf, scores)
    return scores


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float, top_k: int | None,
           top_p: float, min_p: float | None = None) -> np.ndarray:
    scores = warp(logits, temperature, top_k, top_p, min_p)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    u = rng.random(len(p))[:, None]
    return np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1).astype(np.int64)
