"""Model coverage: which zoo models tinydl.from_torch converts and runs equal to torch CPU (issue 22).

    python -m benchmarks.coverage                          # everything, small inputs, 300 s per model
    python -m benchmarks.coverage --only hf --timeout 120  # one source (torchvision | timm | hf)
    python -m benchmarks.coverage --only torchvision --resume --budget 40   # continue, stop launching after 40 min
    python -m benchmarks.coverage --resume --retry timeout                  # run the timed-out models again
    python -m benchmarks.coverage --report-only            # rewrite docs/coverage.md from the results file

Sources: torchvision's list_models() by module (quantization excluded: int8 kernels), one model per timm module
(its smallest variant), and a list of Hugging Face architectures from tiny random configs (hf.py). Each model
runs in a forked child with a timeout and a memory cap: built with random weights drawn so that parity means
something (tinydl.testing.weights), the smallest input its torch forward accepts, converted, its first call
timed, its outputs compared with torch CPU's. Rows are appended to a JSON-lines file (the last row of a model
wins; --resume skips models that have one), and docs/coverage.md is written from it, with every model not run
listed as such. Files: zoo.py (what is tried), hf.py (the tiny configs), check.py (one model -> one row),
report.py (the markdown), __main__.py (the loop).
"""
