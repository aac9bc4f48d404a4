"""Interleaved A/B of two source trees of tinydl on the same GPU, in one run: the way to check that a change
does not slow any benchmark row.

    python -m benchmarks.ab --base /path/to/old/checkout                       # every model, its batches
    python -m benchmarks.ab --base ../old --models resnet18 bert_base --batches 1 --rounds 6 --calls 10
    python -m benchmarks.ab --base . --env-b TINYDL_DAWN_TOGGLES=disable_robustness   # one tree, two settings

Each tree gets one worker process per model row (tinydl imported from that tree; the model and inputs built
by this tree's benchmarks.run, so both sides run the same weights and data). The workers convert and warm up,
then the driver asks them for `--calls` timed calls in turns, A B A B ... for `--rounds` rounds, so a drift
of the GPU's clocks or of the host's load falls on both sides alike. Printed per row: the median ms of each
side over all its timed calls, B / A, and the max abs difference between the two sides' outputs. A name outside
the benchmark table is taken as a torchvision classifier (densenet121, ...), as benchmarks.first_call does.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def _worker(model_name: str, batch: int, half: bool, quick: bool) -> None:
    """Worker side: build, convert, warm up; then for each line "N" on stdin time N calls and answer with
    their times as JSON; "out" answers with the output's path (.npy in a temp dir)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_models", HERE / "tinydl" / "bench" / "models.py")
    bench = importlib.util.module_from_spec(spec)  # this checkout's model builders, whichever tinydl is first
    spec.loader.exec_module(bench)
    import torch

    import tinydl
    model, inputs = bench.builder(model_name)[0](batch, quick)
    tm = tinydl.from_torch(model, example_inputs=tuple(torch.from_numpy(a) for a in inputs))
    if half:
        tm.half()

    def call():
        xs = [tinydl.tensor(a).half() if half and np.issubdtype(a.dtype, np.floating) else tinydl.tensor(a)
              for a in inputs]
        return bench.first_tensor(tm(*xs)).float().numpy()
    out = call()
    t_end = time.perf_counter() + 1.0
    while time.perf_counter() < t_end:
        call()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "out":
            path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ab_{os.getpid()}.npy"
            np.save(path, out)
            print(json.dumps({"out": str(path)}), flush=True)
            continue
        times = []
        for _ in range(int(cmd)):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        print(json.dumps({"ms": [t * 1e3 for t in times]}), flush=True)


class _Side:
    def __init__(self, tree: Path, model: str, batch: int, half: bool, quick: bool, extra_env: dict):
        env = {**os.environ, **extra_env}
        env["PYTHONPATH"] = os.pathsep.join([str(tree.resolve())] + [p for p in env.get("PYTHONPATH", "").split(
            os.pathsep) if p])  # that tree's tinydl first
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", model, str(batch)] + (["--half"] if half else [])
            + (["--quick"] if quick else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(tree))
        self.ms: list[float] = []

    def ready(self) -> "_Side":
        self._answer()
        return self

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.proc.wait()}")
        return json.loads(line)

    def time(self, calls: int) -> None:
        self.proc.stdin.write(f"{calls}\n")
        self.proc.stdin.flush()
        self.ms += self._answer()["ms"]

    def output(self) -> np.ndarray:
        self.proc.stdin.write("out\n")
        self.proc.stdin.flush()
        return np.load(self._answer()["out"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _env_setting(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return name, value


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1], int(argv[2]), "--half" in argv, "--quick" in argv)
        return 0
    sys.path.insert(0, str(HERE))
    from tinydl.bench.models import MODELS, builder
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="the A tree (a checkout holding tinydl/)")
    ap.add_argument("--new", type=Path, default=HERE, help="the B tree (default: this checkout)")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--batches", nargs="*", type=int)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--calls", type=int, default=10, help="timed calls per side per round")
    ap.add_argument("--half", action="store_true", help="the models after .half(), fed float16 inputs")
    ap.add_argument("--quick", action="store_true", help="small inputs and 2-layer transformers (smoke test)")
    for side in ("a", "b"):
        ap.add_argument(f"--env-{side}", type=_env_setting, action="append", default=[], metavar="NAME=VALUE",
                        help=f"an environment variable of the {side.upper()} side's workers (repeatable)")
    args = ap.parse_args(argv)
    for tree in (args.base, args.new):
        if not (tree / "tinydl" / "__init__.py").is_file():  # else the installed tinydl would be timed instead
            ap.error(f"{tree} holds no tinydl/ package")
    from tabulate import tabulate
    rows = []
    for name in args.models:
        for batch in args.batches or builder(name)[1]:
            sides = []
            try:
                # both sides build and compile at once (the start-up is most of a row's time)
                for tree, env in ((args.base, args.env_a), (args.new, args.env_b)):
                    sides.append(_Side(tree, name, batch, args.half, args.quick, dict(env)))
                for side in sides:
                    side.ready()
            except Exception as e:  # noqa: BLE001 - one failing row must not lose the others
                for side in sides:
                    side.close()
                rows.append([name, batch, None, None, None, None, f"{tree}: {type(e).__name__}: {e}"])
                continue
            a, b = sides
            for _ in range(args.rounds):
                a.time(args.calls)
                b.time(args.calls)
            ma, mb = statistics.median(a.ms), statistics.median(b.ms)
            diff = float(np.max(np.abs(a.output() - b.output())))
            a.close()
            b.close()
            rows.append([name, batch, ma, mb, mb / ma, diff, ""])
            print(f"{name} b{batch}: A {ma:.3f} ms, B {mb:.3f} ms", file=sys.stderr, flush=True)
    settings = "".join(f", {side} with {' '.join(f'{k}={v}' for k, v in env)}"
                       for side, env in (("A", args.env_a), ("B", args.env_b)) if env)
    print(f"A = {args.base}, B = {args.new}{settings}; median ms over {args.rounds} x {args.calls} interleaved calls"
          + (" (half)" if args.half else ""))
    print(tabulate(rows, headers=["model", "batch", "A ms", "B ms", "B / A", "max |A - B|", "note"],
                   floatfmt=".4g", missingval="-"))
    return 1 if any(row[-1] for row in rows) else 0  # a failed row fails the run


if __name__ == "__main__":
    sys.exit(main())
