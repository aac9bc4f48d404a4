"""docs/coverage.md from the rows: what was run where, a summary per source against issue 22's goals, the
failures grouped by reason (the unmapped ops first: what to build next), then one row per model."""
from __future__ import annotations

from collections import Counter, defaultdict

from .check import (CONVERSION, CRASHED, MISMATCH, NOT_RUN, OK, RUNTIME, SKIPPED, TIMEOUT, TORCH, base_row)

GOALS = {"torchvision": 0.95, "timm": 0.90, "hf": 1.0}  # issue 22: share of each source's models that must pass
TITLES = {"torchvision": "torchvision", "timm": "timm (one model per module)", "hf": "Hugging Face (tiny configs)"}
FAILED = (CONVERSION, RUNTIME, TIMEOUT, CRASHED)  # tinydl's failures; torch failing on its own is counted apart
NOT_RUN_REASON = "not run (time budget)"


def merge(entries, rows) -> list[dict]:
    """One row per entry, in the entries' order: its last recorded row, or a not-run row."""
    last = {r["key"]: r for r in rows}
    return [last.get(e.key) or (dict(base_row(e), status=SKIPPED, reason=e.skip) if e.skip else
                                dict(base_row(e), status=NOT_RUN, reason=NOT_RUN_REASON)) for e in entries]


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _cell(text) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def summary(rows, excluded) -> list[str]:
    lines = ["| source | models | ok | mismatch | failed (tinydl) | torch failed | skipped | not run | ok / models "
             "| goal |", "|---|---|---|---|---|---|---|---|---|---|"]
    for source in GOALS:
        mine = [r for r in rows if r["source"] == source and r["group"] not in excluded]
        if not mine:
            continue
        n = Counter(r["status"] for r in mine)
        failed = sum(n[s] for s in FAILED)
        lines.append(f"| {TITLES[source]} | {len(mine)} | {n[OK]} | {n[MISMATCH]} | {failed} | {n[TORCH]} | "
                     f"{n[SKIPPED]} | {n[NOT_RUN]} | {n[OK] / len(mine):.0%} | {GOALS[source]:.0%} |")
    return lines


def by_group(rows, source, excluded) -> list[str]:
    groups = defaultdict(Counter)
    for r in rows:
        if r["source"] == source:
            groups[r["group"]][r["status"]] += 1
    lines = ["| module | models | ok | mismatch | failed (tinydl) | torch failed | not run |", "|---|---|---|---|---|---|---|"]
    for group, n in groups.items():
        note = f" (excluded: {excluded[group]})" if group in excluded else ""
        lines.append(f"| {group}{note} | {sum(n.values())} | {n[OK]} | {n[MISMATCH]} | {sum(n[s] for s in FAILED)} | "
                     f"{n[TORCH]} | {n[NOT_RUN]} |")
    return lines


def failures(rows) -> list[str]:
    """The unmapped ops by how many models they block, then every other failure reason with its models."""
    blocking = defaultdict(list)
    reasons = defaultdict(list)
    for r in rows:
        if r["status"] == CONVERSION and r.get("ops"):
            for op in r["ops"]:
                blocking[op].append(r["key"])
        elif r["status"] in FAILED + (MISMATCH, TORCH):
            # the reason without its numbers, so that one cause seen with different sizes is one group
            reason = r["reason"] if r["status"] != MISMATCH else "outputs differ beyond the tolerance"
            reasons[(r["status"], reason.split(" (")[0][:160])].append(r["key"])
    lines = ["### Unmapped ops (each blocks the conversion of the models listed; a model may wait on several)", ""]
    if blocking:
        lines += ["| op | models blocked | models |", "|---|---|---|"]
        for op, keys in sorted(blocking.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            lines.append(f"| `{_cell(op)}` | {len(keys)} | {_cell(', '.join(keys))} |")
    else:
        lines.append("none")
    lines += ["", "### Other failures, by reason", ""]
    if reasons:
        lines += ["| status | reason | models |", "|---|---|---|"]
        for (status, reason), keys in sorted(reasons.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            lines.append(f"| {status} | {_cell(reason)} | {len(keys)}: {_cell(', '.join(keys))} |")
    else:
        lines.append("none")
    return lines


def model_table(rows) -> list[str]:
    lines = ["| model | module | params (M) | inputs | path | max abs err | atol | first call s | status | reason |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reason = r.get("reason") or ""
        if r.get("ops"):
            reason += ": " + ", ".join(f"`{op}`" for op in r["ops"])
        params = _fmt(r["params"] / 1e6, ".2f") if r.get("params") else "-"
        lines.append(f"| {_cell(r['model'])} | {_cell(r['group'])} | {params} | {_cell(r.get('inputs', ''))} | "
                     f"{r.get('path') or '-'} | {_fmt(r.get('max_abs'), '.2g')} | {_fmt(r.get('atol'), '.2g')} | "
                     f"{_fmt(r.get('first_call_s'), '.2f')} | {r['status']} | {_cell(reason)} |")
    return lines


def markdown(rows, excluded, commands, device, dates) -> str:
    """The whole page for `rows` (merge()'s output), `excluded` ({group: why}), the commands that made the rows."""
    out = ["# Model coverage", "",
           f"Device: {device or '-'}. Date: {', '.join(sorted(dates)) or '-'}. Made by "
           f"(`benchmarks/coverage`, in this order):", ""]
    out += [f"    {c}" for c in commands] or ["    (no rows yet)"]
    out += ["", "Each model: random weights drawn so that parity means something (`tinydl.testing.weights`), the "
            "smallest input its torch forward accepts (tried from small to its default size), converted with "
            "`tinydl.from_torch` (example inputs given: torch.fx first, torch.export where fx fails), its first call "
            "timed (planning, kernel compilation and the run, on this device), every output compared with torch CPU's: "
            "`ok` when |tinydl - torch| <= atol + 1e-4 |torch| everywhere, atol = 1e-4 scaled down with the outputs' "
            "magnitude. `torch failed`: torch itself cannot run the model here (not a tinydl failure); `failed "
            "(tinydl)`: conversion failed, runtime error, timeout or crash; `not run`: no run reached it within the "
            "time budget.", "", "## Summary", ""]
    out += summary(rows, excluded)
    if any(r["source"] == "torchvision" for r in rows):
        out += ["", "torchvision by module:", ""] + by_group(rows, "torchvision", excluded)
    out += ["", "## Failures", ""] + failures(rows)
    for source in GOALS:
        mine = [r for r in rows if r["source"] == source]
        if mine:
            out += ["", f"## {TITLES[source]}", ""] + model_table(mine)
    return "\n".join(out) + "\n"
