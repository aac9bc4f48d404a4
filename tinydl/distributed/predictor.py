"""Predictor: a model run over batches of numpy columns, the shape of a Ray Data `map_batches` class UDF.

    ds.map_batches(Predictor, fn_constructor_kwargs=dict(model=make_model, inputs="image", top_k=5),
                   num_gpus=1, compute=ray.data.ActorPoolStrategy(size=N), batch_size=B)

(`concurrency=N` in place of `compute=` is the same; Ray 2.51 deprecated it.)

Ray builds one Predictor per actor: the constructor starts tinydl on the GPU Ray assigned that actor
(`assigned_gpu`, mapped to its WebGPU adapter by tinydl.use_gpu; TINYDL_ADAPTER still wins) and builds the model
once (a torch module from the factory is converted by tinydl.from_torch); each call runs one batch. Nothing here
catches an exception: a failing batch fails its Ray task, and Ray Data raises it rather than dropping rows."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import tinydl
from tinydl.nn import Module

AUTO = "auto"


def assigned_gpu() -> str | None:
    """The first GPU Ray assigned this worker (an nvidia-smi index or a UUID), None outside Ray or without one."""
    try:
        import ray
    except ModuleNotFoundError:
        return None
    if not ray.is_initialized():
        return None
    ids = ray.get_gpu_ids()
    return str(ids[0]) if ids else None


def top_k(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best classes per row, best first: (ids int64 [n, k], softmax probabilities float32 [n, k])."""
    z = logits.astype(np.float64) - logits.max(-1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(-1, keepdims=True)
    ids = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    return ids.astype(np.int64), np.take_along_axis(probs, ids, -1).astype(np.float32)


def _first_output(out):
    """The tensor a model's output holds: itself, `.logits` (Hugging Face), or the first of a tuple/list."""
    if isinstance(out, tinydl.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)) and out:
        return _first_output(out[0])
    raise TypeError(f"Predictor: the model returned {type(out).__name__}; pass output=fn to pick a tensor from it")


class Predictor:
    """Runs `model` on the `inputs` columns of each batch (a dict of numpy arrays) and returns the batch's other
    columns plus the results.

    model:      a picklable zero-argument factory returning a torch.nn.Module (converted by tinydl.from_torch)
                or a tinydl module; called once per Predictor.
    inputs:     the column, or columns in the order of the model's positional arguments.
    preprocess: fn(*input_arrays) -> array or tuple of arrays (the model's inputs), e.g. uint8 HWC images to
                normalized float32 NCHW; default: the columns as they are.
    output:     fn(model_output) -> tinydl tensor; default: the output, its `.logits`, or its first element.
    logits:     keep the model's output as column "logits" (one row per input row).
    top_k:      k > 0 adds "top_k_ids" [n, k] and "top_k_scores" (softmax probabilities) [n, k], best first.
    labels:     class names: adds "label" (the top-1 class's name) when top_k > 0.
    pad_to:     pad each batch to this many rows (repeating its last row), so every batch, the last one
                included, runs the same compiled plan; use the batch_size given to map_batches.
    keep:       the columns passed through (default: every column that is not an input).
    gpu:        "auto": the GPU Ray assigned (assigned_gpu); None: tinydl's default adapter; or an
                nvidia-smi index / UUID (tinydl.use_gpu)."""

    def __init__(self, model: Callable, inputs: str | Sequence[str] = "image", preprocess: Callable | None = None,
                 output: Callable | None = None, logits: bool = True, top_k: int = 0,
                 labels: Sequence[str] | None = None, pad_to: int | None = None,
                 keep: Sequence[str] | None = None, gpu: str | int | None = AUTO):
        if not logits and top_k <= 0:
            raise ValueError("Predictor: logits=False needs top_k > 0, or there is nothing to return")
        if pad_to is not None and pad_to < 1:
            raise ValueError(f"Predictor: pad_to must be at least 1, got {pad_to}")
        self.inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        self.preprocess, self.output, self.logits, self.k = preprocess, output, logits, top_k
        self.labels = np.asarray(labels) if labels is not None else None
        self.pad_to, self.keep = pad_to, keep
        tinydl.use_gpu(assigned_gpu() if gpu == AUTO else gpu)
        self.model = self._build(model)

    @staticmethod
    def _build(factory: Callable):
        model = factory()
        if isinstance(model, Module):
            return model.eval()
        return tinydl.from_torch(model.eval())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [c for c in self.inputs if c not in batch]
        if missing:
            raise KeyError(f"Predictor: the batch has no column {missing[0]!r}; it has {sorted(batch)}")
        n = len(batch[self.inputs[0]])
        args = [np.asarray(batch[c]) for c in self.inputs]
        if self.preprocess is not None:
            args = self.preprocess(*args)
            args = list(args) if isinstance(args, (tuple, list)) else [args]
        if self.pad_to is not None and 0 < n < self.pad_to:
            args = [np.concatenate([a, np.repeat(a[-1:], self.pad_to - n, axis=0)]) for a in args]
        out = self.model(*(tinydl.tensor(np.ascontiguousarray(a)) for a in args))
        result = (self.output(out) if self.output is not None else _first_output(out)).numpy()[:n]
        keep = self.keep if self.keep is not None else [c for c in batch if c not in self.inputs]
        columns = {c: batch[c] for c in keep}
        if self.logits:
            columns["logits"] = result
        if self.k > 0:
            columns["top_k_ids"], columns["top_k_scores"] = top_k(result, self.k)
            if self.labels is not None:
                columns["label"] = self.labels[columns["top_k_ids"][:, 0]]
        return columns
