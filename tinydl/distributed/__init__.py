"""Batch inference beyond one process: `Predictor`, the callable class Ray Data's `Dataset.map_batches` runs in
each actor (the model converted once per actor, on the GPU Ray assigned it). Needs `pip install tinydl[ray]` only
to run under Ray; the class itself imports nothing from Ray."""
from .predictor import Predictor, assigned_gpu, top_k

__all__ = ["Predictor", "assigned_gpu", "top_k"]
