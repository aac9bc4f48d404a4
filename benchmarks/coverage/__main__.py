"""python -m benchmarks.coverage: run the models (each in a forked child with a timeout and a memory cap),
append their rows to the results file, write docs/coverage.md (see __init__.py for the options' use)."""
from __future__ import annotations

import argparse
import datetime
import faulthandler
import json
import multiprocessing
import os
import re
import resource
import shlex
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from . import check, report, zoo

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
BYTES_PER_PARAM = 12  # float32 weights in torch, their tinydl copy, and room for activations and references


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.coverage", description=__doc__)
    ap.add_argument("--only", action="append", choices=zoo.SOURCES, help="a source to run (repeatable; default all)")
    ap.add_argument("--group", action="append", help="only these modules/tasks (e.g. classification; repeatable)")
    ap.add_argument("--limit", type=int, help="run at most N models in this invocation")
    ap.add_argument("--resume", action="store_true", help="skip models that already have a row in the results file")
    ap.add_argument("--retry", action="append", default=[], choices=check.STATUSES,
                    help="with --resume: run again the models whose last row has this status (repeatable)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per model (default 300)")
    ap.add_argument("--budget", type=float, help="minutes: launch no model after this much wall time")
    ap.add_argument("--size", choices=("small", "default"), default="small",
                    help="small: the smallest input each model accepts; default: the model's own input size")
    ap.add_argument("--memory-gib", type=float, default=3.0,
                    help="a child's data limit; models whose weights cannot fit it are skipped (default 3)")
    ap.add_argument("--results", type=Path, default=RESULTS / "coverage.jsonl", help="the JSON-lines results file")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "coverage.md")
    ap.add_argument("--report-only", action="store_true", help="only write the markdown from the results file")
    return ap.parse_args(argv)


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _child(entry, size, conn, log, memory_bytes):
    """In the forked child: cap memory, send output to the log, send the row back."""
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # where a timed-out model was, into its log
    import torch
    torch.set_num_threads(1)  # the reference is small; the cores are for the (software) GPU
    try:
        row = check.check(entry, size)
    except BaseException as e:  # noqa: BLE001 - a bug in the script itself still gives the model a row
        import traceback
        traceback.print_exc()
        row = dict(check.base_row(entry), status=check.RUNTIME, reason="in the coverage script: " + check.describe(e))
    import tinydl
    row["device"] = tinydl.device_info()["adapter"] if row["status"] != check.SKIPPED else None
    conn.send(row)


def run_one(entry, args, log) -> dict:
    """The row of one model, from a forked child (so that a hang, a crash or a leak ends with the model)."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(entry, args.size, send, str(log), int(args.memory_gib * 2 ** 30)))
    start = time.perf_counter()
    child.start()
    send.close()
    row = None
    if receive.poll(args.timeout):
        try:
            row = receive.recv()
        except EOFError:
            pass
    if row is None:
        if child.is_alive():
            os.kill(child.pid, signal.SIGUSR1)
            child.join(3)
            child.kill()
            # the machine's load says whether the model was slow or the machine busy
            row = dict(check.base_row(entry), status=check.TIMEOUT, reason=f"over {args.timeout:g} s (load average "
                                                                           f"{os.getloadavg()[0]:.1f}, {os.cpu_count()} cores; where it was: {log.name})")
        else:
            child.join()
            code = child.exitcode
            why = f"killed by signal {-code}" if code and code < 0 else f"exit code {code}"
            row = dict(check.base_row(entry), status=check.CRASHED, reason=f"{why} (log: {log.name})")
    child.join()
    row["wall_s"] = time.perf_counter() - start
    return row


def memory_skip(entry, args) -> str:
    if entry.params and entry.params * BYTES_PER_PARAM > args.memory_gib * 2 ** 30:
        return (f"{entry.params / 1e6:.0f} M parameters do not fit the run's {args.memory_gib:g} GiB memory cap "
                f"(--memory-gib)")
    return ""


def write_report(entries, args):
    recorded = read_rows(args.results)
    rows = report.merge(entries, recorded)
    ran = [r for r in rows if r.get("command")]
    commands = list(dict.fromkeys(r["command"] for r in recorded))  # the file's order: the order they ran in
    device = Counter(r["device"] for r in ran if r.get("device")).most_common(1)
    text = report.markdown(rows, zoo.TV_EXCLUDED, commands, device[0][0] if device else None,
                           {r["date"] for r in ran})
    args.out.write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    command = "python -m benchmarks.coverage " + shlex.join(argv)
    # every source is listed in the report, run or not; the timm families are counted once and cached
    entries = zoo.entries(timm_cache=RESULTS / "timm-families.json")
    if args.report_only:
        return write_report(entries, args)
    last = {r["key"]: r["status"] for r in read_rows(args.results)} if args.resume else {}
    done = {key for key, status in last.items() if status not in args.retry}
    todo = [e for e in entries if (not args.only or e.source in args.only)
            and (not args.group or e.group in args.group) and e.key not in done][:args.limit]
    logs = args.results.parent / "coverage-logs"
    logs.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, entry in enumerate(todo):
        if args.budget and time.perf_counter() - start > args.budget * 60:
            print(f"time budget spent: {len(todo) - i} model(s) not run", file=sys.stderr)
            break
        entry.skip = entry.skip or memory_skip(entry, args)
        row = run_one(entry, args, logs / (re.sub(r"[^\w.-]+", "_", entry.key) + ".log"))
        row.update(command=command, date=datetime.date.today().isoformat())
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[{i + 1}/{len(todo)}] {entry.key}: {row['status']} {row.get('reason') or ''} "
              f"({row['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    write_report(entries, args)


if __name__ == "__main__":
    main()
