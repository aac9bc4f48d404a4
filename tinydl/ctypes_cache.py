"""C type strings resolved without cffi's C parser, once per process.

wgpu-py names C types by strings on each call (`ffi.new("WGPUBindGroupEntry[]", n)`). Its cffi, in ABI mode, parses
a string the first time it meets it, and each parse re-declares every typedef of webgpu.h to pycparser first: 10 to
25 ms a string, about 40 strings before a model's first answer (wgpudawn's compiled FFI parses them quickly). The
strings that are a type name with an optional `*` or `[]` are resolved here the way cffi's parser would (the declared
type, wrapped by the parser's own pointer rule or an array of unknown length) and put in cffi's cache; anything else
is left to cffi.
"""
from __future__ import annotations

import re
from pathlib import Path

# a type name, an optional `*` or `[]` after it; and a string literal holding one
_TYPE = re.compile(r"(\w+)\s*(\*|\[\])?\s*")
_TYPE_STRING = re.compile(r"""["'](\w+\s*(?:\*|\[\])?\s*)["']""")
# the strings tinydl's own calls use (transfers.py)
OWN = ("WGPUFutureWaitInfo *", "WGPUBufferMapCallbackInfo *", "intptr_t", "uintptr_t", "void *")


def type_strings(*sources: str) -> set[str]:
    """The type strings (see _TYPE_STRING) that appear in these Python sources' text, and for a bare name its
    pointer too (wgpu-py's new_struct(name) asks for `name *`)."""
    found = {m.group(1) for text in sources for m in _TYPE_STRING.finditer(text)}
    return found | {f"{text} *" for text in found if text.isidentifier()}


def prime(ffi, strings) -> int:
    """Put the strings that name a declared or primitive type into ffi's cache of parsed types (those already
    there, and the rest, are left alone); returns how many were added."""
    from cffi import model
    parser, cache = getattr(ffi, "_parser", None), getattr(ffi, "_parsed_types", None)
    if parser is None or cache is None or not hasattr(ffi, "_get_cached_btype"):
        return 0  # another cffi: its parser resolves each string as before
    declared = parser._declarations
    added = 0
    with ffi._lock:
        for text in strings:
            m = _TYPE.fullmatch(text)
            if m is None or text in cache:
                continue
            name, suffix = m.groups()
            if "typedef " + name in declared:
                tp, quals = declared["typedef " + name]
            elif name == "void":
                tp, quals = model.void_type, 0
            elif name in model.PrimitiveType.ALL_PRIMITIVE_TYPES:
                tp, quals = model.PrimitiveType(name), 0
            else:
                continue
            if suffix == "*":
                tp = parser._get_type_pointer(tp, quals)
            elif suffix == "[]":
                tp = model.ArrayType(tp, None)
            if tp.is_raw_function or (suffix is None and name == "void"):
                continue  # cffi's own handling (function types, the bare void)
            cache[text] = (ffi._get_cached_btype(tp), False)
            added += 1
    return added


def prime_module(ffi, *modules) -> int:
    """prime() with the type strings of these modules' source files and tinydl's own."""
    sources = []
    for module in modules:
        try:
            sources.append(Path(module.__file__).read_text(encoding="utf-8"))
        except (OSError, AttributeError, TypeError):
            pass  # no source to read (a frozen build): cffi parses as before
    return prime(ffi, type_strings(*sources) | set(OWN))
