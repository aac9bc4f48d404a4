"""ONNX Runtime's WebGPU provider decoding with a KV cache on the GPU: the peer column of benchmarks/generate.py.

The decode step is tinydl's own torch step (generation/step.py: ids, 4-D mask, positions, slot, the cache tensors
in; argmax, logits, the updated cache out) with its slots written by torch.where, which ONNX has; exported once
for the generate call's cache length. ORT runs it with IO binding: the cache stays on the GPU from step to step (the
outputs of one step are bound as the next step's inputs), and each step uploads the new ids, mask and positions
and reads back the argmax, as tinydl's greedy loop does. Decode only: the steps start from a zero cache of the
prompt's length (its values do not change the time). One step's logits are checked against the torch step's.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np


def ort_decode(model, batch: int, prompt: int, new: int, runs: int, workdir: Path,
               provider: str = "WebGpuExecutionProvider", device: str = "webgpu"):
    """(decode tokens/s, max abs error of one step's logits vs torch, note); tokens/s is None where it cannot run
    (the note says why). provider/device: another ORT provider and its IO-binding device (a CPU smoke test)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, None, "onnxruntime not installed"
    if provider not in ort.get_available_providers():
        return None, None, f"no {provider}"
    import torch

    from ..generation.step import torch_classes
    from ..interop.cache_ops import where_slot

    functional_cache, step_class = torch_classes()[:2]

    class WhereCache(functional_cache):
        def write(self, cache, values):
            return where_slot(cache, values, self.cache_position)

    class OnnxStep(step_class):
        cache_class = WhereCache

    step = OnnxStep(model).eval()
    length = prompt + new
    inputs, names = _decode_inputs(model, step, batch, prompt, length)
    outputs = ["argmax", "logits"] + [f"present{i}" for i in range(len(names) - 4)]
    path = workdir / f"decode_{id(model)}.onnx"
    note = None
    try:
        torch.onnx.export(step, tuple(torch.from_numpy(a) for a in inputs), str(path), input_names=names,
                          output_names=outputs, dynamo=False, opset_version=17)
    except Exception as e:  # noqa: BLE001 - try torch.export's exporter, then report why the peer is missing
        note = f"TorchScript export failed ({type(e).__name__}), dynamo export"
        try:
            torch.onnx.export(step, tuple(torch.from_numpy(a) for a in inputs), str(path), input_names=names,
                              output_names=outputs, dynamo=True)
        except Exception as e2:  # noqa: BLE001
            return None, None, f"onnx export failed: {type(e2).__name__}: {str(e2).splitlines()[0][:80]}"
    try:
        sess = ort.InferenceSession(str(path), providers=[provider])
        with torch.no_grad():
            want = step(*(torch.from_numpy(a) for a in inputs))[1].numpy()
        got = sess.run(["logits"], dict(zip(names, inputs)))[0]
        err = float(np.abs(got - want).max())
        try:
            _timed_decode(sess, names, outputs, inputs, prompt, new, device)  # warm-up
        except RuntimeError as e:  # an ORT build without IO binding on this device
            return None, err, f"IO binding on {device} failed: {str(e).splitlines()[0][:100]}"
        seconds = statistics.median(_timed_decode(sess, names, outputs, inputs, prompt, new, device)
                                    for _ in range(runs))
    finally:
        for f in workdir.glob(path.name + "*"):
            f.unlink()
    return batch * (new - 1) / seconds, err, note


def _decode_inputs(model, step, batch: int, prompt: int, length: int):
    """Example decode inputs at slot `prompt` (random cache values, so the logits check means something) and
    their names; the cache tensors' shapes come from a tiny prefill of the torch step."""
    import torch
    rng = np.random.default_rng(0)
    vocab = model.config.vocab_size
    with torch.no_grad():
        out = step(torch.zeros((batch, 2), dtype=torch.int64), torch.zeros((batch, 1, 2, 2)),
                   torch.arange(2).expand(batch, 2), torch.zeros(1, dtype=torch.int64))
    cache = [rng.standard_normal((*t.shape[:-2], length, t.shape[-1])).astype(np.float32) for t in out[2:]]
    mask = np.where(np.arange(length) <= prompt, 0.0, np.finfo(np.float32).min).astype(np.float32)
    inputs = [rng.integers(0, vocab, (batch, 1)).astype(np.int64), np.broadcast_to(mask, (batch, 1, 1, length)).copy(),
              np.full((batch, 1), prompt, np.int64), np.array([prompt], np.int64), *cache]
    return inputs, ["input_ids", "attention_mask", "position_ids", "cache_position"] + \
        [f"past{i}" for i in range(len(cache))]


def _timed_decode(sess, names, outputs, inputs, prompt: int, new: int, device: str) -> float:
    """Seconds of new - 1 decode steps from slot prompt, the cache kept on the GPU between steps (the first step
    uploads a zero cache; ORT allocates each step's outputs on the device, which the next step binds)."""
    batch, length = inputs[0].shape[0], inputs[1].shape[-1]
    cache = [np.zeros_like(a) for a in inputs[4:]]
    ids = inputs[0]
    slots = np.arange(length)
    t0 = time.perf_counter()
    for i in range(new - 1):
        slot = prompt + i
        mask = np.where(slots <= slot, 0.0, np.finfo(np.float32).min).astype(np.float32)
        io = sess.io_binding()
        small = [ids, np.broadcast_to(mask, (batch, 1, 1, length)).copy(), np.full((batch, 1), slot, np.int64),
                 np.array([slot], np.int64)]
        for name, a in zip(names[:4], small):
            io.bind_cpu_input(name, a)
        for name, value in zip(names[4:], cache):
            if isinstance(value, np.ndarray):
                io.bind_cpu_input(name, value)
            else:
                io.bind_ortvalue_input(name, value)
        io.bind_output("argmax")  # (read back: the next step's ids)
        for name in outputs[1:]:
            io.bind_output(name, device)
        sess.run_with_iobinding(io)
        results = io.get_outputs()
        ids = results[0].numpy().reshape(batch, 1).astype(np.int64)
        cache = results[2:]
    return time.perf_counter() - t0
