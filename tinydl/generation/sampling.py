"""Sampling the next token from the last position's logits on the host, as Hugging Face's warpers do in
order (temperature, top-k, top-p), drawn from a seeded numpy Generator: reproducible from the seed (not the
same stream as torch's)."""
from __future__ import annotations

import numpy as np


def warp(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float) -> np.ndarray:
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
    return scores


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float, top_k: int | None,
           top_p: float) -> np.ndarray:
    scores = warp(logits, temperature, top_k, top_p)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    u = rng.random(len(p))[:, None]
    return np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1).astype(np.int64)
