"""The side-by-side benchmark (tinydl vs torch CPU/CUDA vs ONNX Runtime WebGPU), inside the package so that
`tinydl bench` works from an installed tinydl; benchmarks/run.py is its script with the kernel rooflines."""
