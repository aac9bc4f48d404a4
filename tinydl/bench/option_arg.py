"""`--option NAME=VALUE` of the benchmark scripts: a tinydl.options field set for a run or a variant."""
from __future__ import annotations

import json


def option(text: str) -> tuple[str, object]:
    """NAME=VALUE of a tinydl.options field, the value read as JSON (true, 4, "x") or else as a string."""
    name, _, value = text.partition("=")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value
