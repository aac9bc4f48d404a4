"""The WGSL functions a kernel uses: the declarations of the PRELUDE (snippets.py), of torch's float functions
(math_functions.py) and of the int32 overflow tests (overflow.py) that the kernel's code names, with the ones those
name in turn, in that order and without comments.

Every kernel used to carry the whole PRELUDE (about 18 KB of WGSL, most of it functions an elementwise add never
calls). Each shader compiler (naga, Tint, the driver behind them) parses and translates all of it, and the size
literals of every kernel are scanned over it (schedule/sizes.py): a first call that compiles a hundred kernels paid
for it a hundred times. WGSL's module-scope declarations may come in any order, so keeping a subset is exact.
"""
from __future__ import annotations

import functools
import re

from . import math_functions, overflow
from .snippets import PRELUDE

_COMMENT = re.compile(r"//[^\n]*")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
# a module-scope declaration: its keyword at a line's start, its name after any template list (var<private> x)
_DECLARATION = re.compile(r"^(?:fn|var(?:<[^>]*>)?|const|struct|alias|override)\s+(\w+)", re.M)


def _declarations(text: str) -> dict[str, str]:
    """name -> its declaration's text (comments dropped), in text's order. A declaration runs from its keyword to
    the `}` that closes its first `{` at depth 0 (fn, struct) or to its `;` at depth 0 (var, const, alias)."""
    code = _COMMENT.sub("", text)
    found = {}
    for m in _DECLARATION.finditer(code):
        end = "}" if code.startswith(("fn", "struct"), m.start()) else ";"
        depth, at = 0, m.end()
        while at < len(code):
            c = code[at]
            depth += (c in "({[") - (c in ")}]")
            if c == end and not depth:
                break
            at += 1
        assert at < len(code), f"unterminated declaration {m.group(1)}"
        found[m.group(1)] = "\n".join(line.rstrip() for line in code[m.start():at + 1].splitlines() if line.strip())
    return found


# the PRELUDE, torch's float functions beyond it and the int32 overflow tests: every function a kernel may call
LIBRARY = "\n".join((PRELUDE, math_functions.LIBRARY, overflow.IMUL_OVF, overflow.IPOW_CHECKED))
_TEXT = _declarations(LIBRARY)
_ORDER = {name: i for i, name in enumerate(_TEXT)}
# name -> the other declarations its text names
_NAMES = {name: frozenset(_IDENTIFIER.findall(text)).intersection(_TEXT) - {name} for name, text in _TEXT.items()}


def used_prelude(code: str) -> str:
    """The LIBRARY declarations that `code` (a kernel without them) needs, as WGSL."""
    return _closure(frozenset(_IDENTIFIER.findall(code)).intersection(_TEXT))


@functools.lru_cache(maxsize=1024)
def _closure(direct: frozenset[str]) -> str:
    needed, todo = set(), list(direct)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += _NAMES[name]
    return "\n".join(_TEXT[name] for name in sorted(needed, key=_ORDER.__getitem__))


def declared_names() -> frozenset[str]:
    """Every name the LIBRARY declares."""
    return frozenset(_TEXT)
