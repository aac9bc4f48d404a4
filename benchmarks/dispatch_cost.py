"""Host cost of one dispatch in wgpu-native, apart from any model: a chain of tiny kernels is encoded into one
compute pass and submitted, timed per phase (encode, queue submit, wait for the GPU), for a few chain lengths,
bind-group widths and counts of other live buffers on the device.

    python -m benchmarks.dispatch_cost
"""
from __future__ import annotations

import statistics
import time

import wgpu

from tinydl.runtime import get_runtime

USAGE = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST


def kernel(n_inputs: int) -> str:
    decl = "".join(f"@group(0) @binding({i}) var<storage, read> a{i}: array<f32>;\n" for i in range(n_inputs))
    total = " + ".join(f"a{i}[g.x]" for i in range(n_inputs))
    return (decl + f"@group(0) @binding({n_inputs}) var<storage, read_write> out: array<f32>;\n"
            "@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {\n"
            f"  if (g.x < 64u) {{ out[g.x] = {total}; }}\n}}\n")


def measure(n_disp: int, n_inputs: int, n_other: int, reps: int = 30, others: list = []) -> tuple[float, ...]:
    rt = get_runtime()
    dev = rt.device
    while len(others) < n_other:  # other live buffers, each bound once so wgpu tracks it
        others.append(dev.create_buffer(size=1024, usage=USAGE))
    pipe = rt.pipeline(kernel(n_inputs))
    chain = [dev.create_buffer(size=1024, usage=USAGE) for _ in range(n_disp + n_inputs)]
    disp = [(pipe, chain[i:i + n_inputs + 1], (1, 1, 1)) for i in range(n_disp)]
    for _ in range(3):
        rt.submit(disp, [(chain[-1], 16)])
    enc_t, sub_t, wait_t = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        enc = dev.create_command_encoder()
        cp = enc.begin_compute_pass()
        rt._encode(cp, disp)
        cp.end()
        cb = enc.finish()
        t1 = time.perf_counter()
        dev.queue.submit([cb])
        t2 = time.perf_counter()
        rt.submit([], [(chain[-1], 16)])
        t3 = time.perf_counter()
        enc_t.append(t1 - t0), sub_t.append(t2 - t1), wait_t.append(t3 - t2)
    return tuple(statistics.median(t) * 1e6 / n_disp for t in (enc_t, sub_t, wait_t))


def main():
    rt = get_runtime()
    print(f"{rt.adapter_name} ({rt.backend}); µs per dispatch, median")
    print("dispatches  inputs  other-buffers   encode  submit  wait")
    for n_other in (0, 2000):
        for n_inputs in (1, 6):
            for n_disp in (64, 256):
                e, s, w = measure(n_disp, n_inputs, n_other)
                print(f"{n_disp:10d}  {n_inputs:6d}  {n_other:13d}  {e:7.1f} {s:7.1f} {w:5.1f}", flush=True)


if __name__ == "__main__":
    main()
