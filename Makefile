# Two commands for a fresh machine: `make demo` and `make test`. Both run scripts/setup.sh first
# (idempotent: .venv, pip install -e ".[test]" with the pinned CPU torch, a Vulkan adapter).
PY := .venv/bin/python

.PHONY: setup demo test
setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) examples/demo.py

# pyproject's addopts already has -q; a second -q would hide pytest's final "N passed" line.
# -n 2 (pytest-xdist): two worker processes, each with its own WebGPU device.
test: setup
	$(PY) -m pytest -n 2 tests
