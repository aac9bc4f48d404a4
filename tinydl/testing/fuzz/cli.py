"""The fuzz loop and the command line (`python -m tinydl.testing.fuzz`)."""
from __future__ import annotations

import argparse
import random
import time
import traceback

from .cases import ADAPTER_GAPS, KNOWN_GAPS, REFERENCE_GAPS, active_gaps
from .oracle import run_graph
from .generate import generate
from .shrink import failure_class, shrink


def fuzz(graphs: int, seed: int, max_ops: int = 8, stop_on_failure: bool = False, shrink_budget: int = 300,
         out=print, max_shrinks: int = 8) -> list:
    """Run `graphs` graphs (graph i from seed `seed + i`); returns [(graph seed, shrunk Graph, report)], one per
    distinct repro (failure class + the ops left after shrinking). Up to `max_shrinks` failures are shrunk; later
    ones are counted by class only."""
    found, counts = {}, {}
    t0 = time.time()
    for i in range(graphs):
        gs = seed + i
        g = None
        try:
            g = generate(gs, max_ops)
            report = run_graph(g)
        except Exception:  # noqa: BLE001 - the harness itself failed: say so with the graph
            report = "harness error\n" + traceback.format_exc()
            if g is None:  # the generator itself: nothing to shrink, still a failure
                counts["harness error"] = counts.get("harness error", 0) + 1
                found.setdefault(f"generator {gs}", (gs, None, report))
                out(f"\n=== HARNESS ERROR generating graph seed {gs}\n{report}")
                continue
        if report is None:
            continue
        cls = failure_class(report)
        counts[cls] = counts.get(cls, 0) + 1
        shrunk = sum(1 for v in found.values() if v[1] is not None)
        if shrunk < max_shrinks or not found:
            small, small_report = shrink(g, report, shrink_budget)
            key = (cls, tuple(sorted({s.op for s in small.steps})))
            if key not in found:
                found[key] = (gs, small, small_report)
                out(f"\n=== FAILURE {len(found)} (graph seed {gs}): {small_report}\n{small.code()}")
        if stop_on_failure:
            break
    n = i + 1 if graphs else 0
    out(f"\nfuzz: {n} graphs from seed {seed} in {time.time() - t0:.1f}s; "
        f"{sum(counts.values())} failed in {len(counts)} class(es)")
    for cls, c in counts.items():
        out(f"  {c:5d}  {cls}")
    return list(found.values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinydl.testing.fuzz",
                                description="Random graphs on tinydl vs torch CPU; failures shrunk to repros.")
    p.add_argument("--graphs", type=int, default=200)
    p.add_argument("--seed", type=int, default=None, help="first graph's seed (default: random, printed)")
    p.add_argument("--max-ops", type=int, default=8)
    p.add_argument("--stop-on-failure", action="store_true")
    p.add_argument("--shrink-budget", type=int, default=300, help="graph runs allowed per shrink")
    p.add_argument("--no-gaps", action="store_true", help="generate into KNOWN_GAPS too (see what they hide)")
    args = p.parse_args(argv)
    if args.no_gaps:
        KNOWN_GAPS.clear()
        ADAPTER_GAPS.clear()
        REFERENCE_GAPS.clear()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    import tinydl
    print(f"fuzz: seed {seed}, {args.graphs} graphs, up to {args.max_ops} ops, known gaps avoided: "
          f"{', '.join(active_gaps()) or 'none'}, adapter: {tinydl.device_info().get('adapter')}",
          flush=True)
    found = fuzz(args.graphs, seed, args.max_ops, args.stop_on_failure, args.shrink_budget,
                 out=lambda s: print(s, flush=True))
    return 1 if found else 0

