"""The benchmark's columns: torch (CPU, CUDA), tinydl (float32, float16, tuned) and ONNX Runtime's WebGPU
provider, each timed on the same numpy inputs with its max abs error against torch CPU's output."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .models import first_tensor
from .timing import median_ms


def run_torch(model, inputs, device, runs, half=False):
    """(median ms, output) of the torch model on device; half: after .half(), floating inputs fed as float16
    arrays (the model is float32 again on the CPU after)."""
    import torch
    m = model.to(device)
    if half:
        m.half()
        inputs = [a.astype(np.float16) if a.dtype.kind == "f" else a for a in inputs]

    def call():
        with torch.no_grad():
            t = [torch.from_numpy(a).to(device) for a in inputs]
            return first_tensor(m(*t)).float().cpu().numpy()
    out = call()
    if device == "cuda":
        torch.cuda.synchronize()
    ms = median_ms(call, runs)
    m.float().to("cpu")
    return ms, out


def run_tinydl(model, inputs, runs, reference):
    import tinydl
    tm = tinydl.from_torch(model, example_inputs=tuple(_torch_inputs(inputs)))
    return time_converted(tm, inputs, runs, reference) + (tm,)


def run_tinydl_tuned(model, inputs, runs, reference):
    """(median ms, max abs error, seconds of the first call) of a fresh conversion with tinydl.tuning on: the
    first call measures each new GEMM shape's variants (cached on disk: a second run pays nothing)."""
    import tinydl
    from tinydl import tuning
    tuning.enable()
    try:
        tm = tinydl.from_torch(model, example_inputs=tuple(_torch_inputs(inputs)))
        t0 = time.perf_counter()
        tm(*[tinydl.tensor(a) for a in inputs])
        first_s = time.perf_counter() - t0
        return time_converted(tm, inputs, runs, reference) + (first_s,)
    finally:
        tuning.enable(False)


def run_tinydl_fp16(tm, inputs, runs, reference):
    """The converted model after .half() (float16 weights and activations), fed float16 arrays and read back in
    float16, as a torch user of a .half() model does. It leaves the model in float16."""
    tm.half()
    return time_converted(tm, inputs, runs, reference, half=True)


def time_converted(tm, inputs, runs, reference, half=False):
    """(median ms, max abs error vs reference) of tm on the numpy inputs; half: floating inputs as float16 arrays
    (converted before the clock starts) and the output read back as it comes (float16)."""
    import tinydl
    from tinydl.testing import max_error
    if half:
        inputs = [a.astype(np.float16) if np.issubdtype(a.dtype, np.floating) else a for a in inputs]

    def call():
        out = first_tensor(tm(*[tinydl.tensor(a) for a in inputs]))
        return out.numpy() if half else out.float().numpy()
    out = call()
    return median_ms(call, runs), max_error(out.astype(np.float32), reference)[0]


def _torch_inputs(inputs):
    import torch
    return [torch.from_numpy(a) for a in inputs]


def run_ort_webgpu(model, inputs, runs, workdir: Path, reference):
    """(median ms, max abs error vs reference, note) of ONNX Runtime's WebGPU provider on an ONNX export of the
    model; ms is None (and the note says why) where it cannot run."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, None, "onnxruntime not installed"
    if "WebGpuExecutionProvider" not in ort.get_available_providers():
        return None, None, "no WebGpuExecutionProvider"
    import torch

    class MainOutput(torch.nn.Module):  # HF models return ModelOutput objects; ONNX wants plain tensors
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *args):
            return first_tensor(self.m(*args))

    path = workdir / f"model_{id(model)}.onnx"
    names = [f"input{i}" for i in range(len(inputs))]
    # eval(): the TorchScript exporter restores the wrapper's training flag afterwards, and with it the model's
    wrapped, note = MainOutput(model).eval(), None
    try:
        torch.onnx.export(wrapped, tuple(_torch_inputs(inputs)), str(path), input_names=names,
                          dynamo=False, opset_version=17)
    except Exception as e:  # noqa: BLE001 - GPT-2's packed-sequence check uses aten::diff, which it lacks
        note = f"TorchScript export failed ({type(e).__name__}), dynamo export"
        try:  # torch.export, as tinydl.from_torch traces it
            torch.onnx.export(wrapped, tuple(_torch_inputs(inputs)), str(path), input_names=names, dynamo=True)
        except Exception as e2:  # noqa: BLE001 - report why the peer is missing, keep benchmarking
            why = str(e2).splitlines()[0][:80] if str(e2) else ""
            return None, None, f"onnx export failed: {type(e2).__name__}: {why}"
    from tinydl.testing import max_error
    sess = ort.InferenceSession(str(path), providers=["WebGpuExecutionProvider"])
    feeds = {n: a for n, a in zip(names, inputs)}
    err = max_error(sess.run(None, feeds)[0], reference)[0]
    ms = median_ms(lambda: sess.run(None, feeds), runs)
    path.unlink(missing_ok=True)
    for extra in workdir.glob(path.name + "*"):
        extra.unlink()
    return ms, err, note
