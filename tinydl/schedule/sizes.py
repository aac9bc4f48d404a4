"""Sizes at run time: one compiled shader for a kernel at every shape it is planned for.

A kernel's WGSL bakes its sizes in as integer literals (row counts, strides, bounds), so a new sequence length or
batch size would compile every kernel again: on a CPU driver about a tenth of a second each. Kernels of one
*family* (the same WGSL but for those literals) share a pipeline instead: the first shape seen compiles as it is
(the fastest code, and fixed-shape models never see anything else); once a second shape differs, the literals that
differed are read from a uniform buffer (`td_sizes`, bound after the kernel's other bindings) and that one shader
serves every later shape whose other literals match (`SizeLifter.resolve`).

Replacing a literal by a read is exact: WGSL's integer arithmetic is the same at run time as when folded, for values
the baked shader accepted. The read has the literal's type (`7u` a u32, `7i` and an untyped `7` an i32): an untyped
literal where the context needed another type (u32, f32) makes the lifted shader fail to compile, never change
meaning, and its family then compiles each shape as it is (`SizeLifter.refuse`). Literals WGSL needs as constants
(attributes, array lengths, `const` declarations, switch cases, subgroupBroadcast's lane) are never lifted.
"""
from __future__ import annotations

import functools
import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

# a decimal integer literal, optionally u32 or i32 (not a digit of a name, a float such as 1.5, 2e3 or 1e-5, a
# hex literal, or a literal of another type such as 2f); the leading lookahead lets re leave non-digits at once
_INTEGER = re.compile(r"(?=\d)(?<![\w.])(?<![eE][+-])(\d+)([iu]?)(?![\w.])")
# spans whose literals stay constant: attributes, const/override declarations and switch cases (found by str.find:
# _keyword_spans), template lists and broadcast lanes (word boundaries before keywords are checked in Python: a
# leading \b makes re try every position of the text, ten times slower on a conv's shader)
_ATTRIBUTE = re.compile(r"@\w+\s*\([^)]*\)")
_KEYWORDS = (("const", ";"), ("override", ";"), ("case", ":"))  # each up to the first of its terminator
_TEMPLATE_OPEN = re.compile(r"(?=[asq])(?:(?:array|subgroup_matrix_\w+)<|(?:subgroupBroadcast|quadBroadcast)\s*\()")
_NO_DIGITS = str.maketrans("", "", "0123456789")
_ANGLES, _PARENS = re.compile(r"[<>]"), re.compile(r"[()]")
_BINDING = re.compile(r"@binding\((\d+)\)")
_I32_MAX = 2**31 - 1
SIZES_NAME = "td_sizes"


class Literal(NamedTuple):
    start: int
    end: int
    value: int
    unsigned: bool  # `7u`; else `7i` or untyped, read as an i32


@functools.lru_cache(maxsize=512)  # a model's layers plan the same shaders over and over
def literals(wgsl: str) -> tuple[Literal, ...]:
    """The integer literals of a shader that may be read at run time, in order (see the module docstring)."""
    fixed = sorted([m.span() for m in _ATTRIBUTE.finditer(wgsl)] + list(_keyword_spans(wgsl)) + list(_bracketed(wgsl)))
    found, f = [], 0
    for m in _INTEGER.finditer(wgsl):
        while f < len(fixed) and fixed[f][1] <= m.start():
            f += 1
        if f < len(fixed) and fixed[f][0] <= m.start():
            continue
        found.append(Literal(m.start(), m.end(), int(m.group(1)), m.group(2) == "u"))
    return tuple(found)


@functools.lru_cache(maxsize=512)
def family_key(wgsl: str) -> str:
    """The key of wgsl's family: a digest of its text with the liftable literals blanked."""
    return hashlib.blake2b(_skeleton(wgsl, literals(wgsl)).encode(), digest_size=16).hexdigest()


def divisors(wgsl: str) -> tuple[int, ...]:
    """The values of the liftable literals that divide (`x / 12`, `x % 12`), in order."""
    return tuple(lit.value for lit in literals(wgsl)
                 if wgsl[max(lit.start - 4, 0):lit.start].rstrip()[-1:] in ("/", "%"))


def _word_starts(wgsl: str, at: int) -> bool:
    return at == 0 or not (wgsl[at - 1].isalnum() or wgsl[at - 1] == "_")


def _keyword_spans(wgsl: str):
    """Spans of const/override declarations (to their `;`) and switch cases (to their `:`)."""
    for word, stop in _KEYWORDS:
        at = wgsl.find(word)
        while at != -1:
            after = at + len(word)
            if _word_starts(wgsl, at) and (after == len(wgsl) or _word_starts(wgsl, after + 1)):
                end = wgsl.find(stop, after)
                if end == -1:
                    break
                yield at, end + 1
            at = wgsl.find(word, after)


def _bracketed(wgsl: str):
    """Spans of array/subgroup-matrix template lists and of broadcast calls, whose literals must stay constant."""
    for m in _TEMPLATE_OPEN.finditer(wgsl):
        if not _word_starts(wgsl, m.start()):
            continue
        opener = m.group()[-1]
        depth, end = 1, len(wgsl)
        for b in (_ANGLES if opener == "<" else _PARENS).finditer(wgsl, m.end()):
            depth += 1 if b.group() == opener else -1
            if not depth:
                end = b.end()
                break
        yield m.start(), end


@dataclass
class Family:
    """The shaders that differ only in liftable literals: the first one's text and values, the values compiled
    as they are, and which literals are read at run time (None: none yet)."""
    wgsl: str
    found: tuple[Literal, ...]
    plan: int                                       # the plan that met it first
    baked: set = field(default_factory=set)         # literal values whose shaders compile as they are
    lifted: frozenset[int] | None = None
    template: str = ""
    refused: bool = False
    slots: list[int] = field(default_factory=list)  # the lifted literals' positions, in uniform order

    def lift(self, differ: set[int]) -> None:
        """Read the literals at positions `differ` too (a new template when that adds any)."""
        if self.lifted is None or not differ <= self.lifted:
            self.lifted = frozenset(differ | (self.lifted or set()))
            self.slots = sorted(self.lifted)
            self.template = _lifted(self.wgsl, self.found, self.slots)


class SizeLifter:
    """The families seen (the least recently used dropped past `keep`)."""

    def __init__(self):
        self.families: OrderedDict[str, Family] = OrderedDict()

    def resolve(self, wgsl: str, plan: int = 0, keep: int = 1024,
                across_plans: bool = True) -> tuple[str, tuple[int, ...], str]:
        """(shader to compile, the values its `td_sizes` holds or () when it reads none, family key). plan: which
        plan asks: kernels of one plan that differ only in literals (a layer's q, k and v slices at their offsets)
        compile as they are, as a fixed-shape model's always do (unless `crowd` lifted their family); a later
        plan's differing ones share a shader. across_plans False: only the literals a crowd lifted are read."""
        found, key = literals(wgsl), family_key(wgsl)
        values = tuple(lit.value for lit in found)
        fam = self._family(wgsl, key, plan, keep)
        self.families.move_to_end(key)
        if fam.refused or values in fam.baked:
            return wgsl, (), key
        if fam.plan == plan and fam.lifted is None:
            fam.baked.add(values)
            return wgsl, (), key
        first = [lit.value for lit in fam.found]
        differ = {k for k, (a, b) in enumerate(zip(values, first)) if a != b}
        if any(not found[k].unsigned and values[k] > _I32_MAX for k in differ):
            return wgsl, (), key  # would not fit the i32 read (an untyped literal in a u32 context)
        if not across_plans and (fam.lifted is None or not differ <= fam.lifted):
            return wgsl, (), key
        fam.lift(differ)
        return fam.template, tuple(values[k] for k in fam.slots), key

    @staticmethod
    def crowds(wgsls: list[str], most: int, fixed_divisors: bool = False) -> list[list[str]]:
        """The families with more than `most` distinct shaders among wgsls (one plan's): each a list of them.
        fixed_divisors: members must also divide by the same literals (a CPU driver divides lane by lane by a
        number it did not compile in), so only the other literals will differ."""
        alike: dict[str, set[str]] = {}  # by the text without its digits: cheaper than literals(), and a family
        for wgsl in wgsls:               # never spans two of these groups
            alike.setdefault(wgsl.translate(_NO_DIGITS), set()).add(wgsl)
        crowds = []
        for group in alike.values():
            if len(group) > most:
                families: dict[tuple, list[str]] = {}
                for wgsl in sorted(group):
                    key = (family_key(wgsl), divisors(wgsl) if fixed_divisors else ())
                    families.setdefault(key, []).append(wgsl)
                crowds += [f for f in families.values() if len(f) > most]
        return crowds

    def crowd(self, wgsls: list[str], plan: int, keep: int = 1024) -> None:
        """Shaders of one plan that differ only in literals, too many to compile one by one (the 1x1 convs of a
        dense block, each over more channels): their family reads every literal that differs at run time, so
        resolve gives them one shader."""
        fam = self._family(wgsls[0], family_key(wgsls[0]), plan, keep)
        if fam.refused:
            return
        first = [lit.value for lit in fam.found]
        differ = set()
        for wgsl in wgsls:
            for k, (lit, value) in enumerate(zip(literals(wgsl), first)):
                if lit.value != value:
                    if not lit.unsigned and lit.value > _I32_MAX:
                        return  # would not fit the i32 read: compiled as they are
                    differ.add(k)
        fam.lift(differ)

    def _family(self, wgsl: str, key: str, plan: int, keep: int) -> Family:
        """wgsl's family, a new one (wgsl its first shader) if none is kept."""
        fam = self.families.get(key)
        if fam is None:
            fam = self.families[key] = Family(wgsl, literals(wgsl), plan)
            while len(self.families) > max(keep, 1):
                self.families.popitem(last=False)
        return fam

    def refuse(self, key: str) -> None:
        """The family's lifted shader did not compile: its shaders compile as they are from now on."""
        fam = self.families.get(key)
        if fam is not None:
            fam.refused = True

    def clear(self) -> None:
        self.families.clear()


def _skeleton(wgsl: str, found: tuple[Literal, ...]) -> str:
    parts, at = [], 0
    for lit in found:
        parts += [wgsl[at:lit.start], "\0"]
        at = lit.end
    parts.append(wgsl[at:])
    return "".join(parts)


def _lifted(wgsl: str, found: tuple[Literal, ...], slots: list[int]) -> str:
    """wgsl with the literals at `slots` read from td_sizes, declared at the binding after the shader's last."""
    parts, at = [], 0
    for s, k in enumerate(slots):
        lit = found[k]
        read = f"{SIZES_NAME}[{s // 4}].{'xyzw'[s % 4]}"
        parts += [wgsl[at:lit.start], read if lit.unsigned else f"i32({read})"]
        at = lit.end
    parts.append(wgsl[at:])
    text = "".join(parts)
    binding = max((int(b) for b in _BINDING.findall(wgsl)), default=-1) + 1
    decl = (f"@group(0) @binding({binding}) var<uniform> {SIZES_NAME}: "
            f"array<vec4<u32>, {-(-len(slots) // 4)}>;\n")
    body = text.index("{", text.index("fn main(")) + 1  # used by main, so the layout has it even if only a
    text = text[:body] + f" _ = {SIZES_NAME}[0].x;" + text[body:]  # function main never calls reads it
    head = _after_enables(text)
    return text[:head] + decl + text[head:]


def _after_enables(wgsl: str) -> int:
    """Where declarations may start: after the leading `enable` directives (WGSL wants them first)."""
    at = 0
    for m in re.finditer(r"\s*enable [^;]*;", wgsl):
        if m.start() != at:
            break
        at = m.end()
    return at + 1 if wgsl[at:at + 1] == "\n" else at
