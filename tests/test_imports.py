"""The import graph of tinydl/ is a DAG: lower modules never import higher ones, not even inside a function (an
import in a function body that exists to dodge a cycle is still the cycle). Built from the source with ast, so
it sees every `import` / `from ... import` statement, at module level or in a function, relative ones resolved;
an import under `if TYPE_CHECKING:` is not one. The whole package, interop/ and generation/ included (generation
sits above interop and registers the converted module's generate() in interop's registry)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "tinydl"
LEFT_OUT: tuple = ()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement of a module, at any depth, but none under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports(ast.Module(body=[child], type_ignores=[])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def imported(name: str, path: Path, node, mods) -> set[str]:
    """The tinydl modules an import statement in module `name` (file `path`) loads: `from pkg import x` is the
    module pkg.x where one exists, else pkg itself (a name defined in pkg/__init__.py)."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = package[:len(package) - node.level + 1] if node.level else []
        pkg = ".".join(base + (node.module.split(".") if node.module else []))
        targets = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in mods else pkg for a in node.names]
    found = set()
    for t in targets:
        while t and t not in mods:  # `import tinydl.kernels.gemm as g` and the like: the deepest module named
            t = t.rpartition(".")[0]
        if t and t != name:
            found.add(t)
    return found


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], int]]:
    """module -> the modules it imports (tinydl's only), and the line of each edge's first import."""
    mods = modules()
    graph, lines = {}, {}
    for name, path in mods.items():
        graph[name] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            for target in imported(name, path, node, mods):
                graph[name].add(target)
                lines.setdefault((name, target), node.lineno)
    return graph, lines


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v):
        state[v], _ = 1, stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        state[v] = 2
        stack.pop()
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def without(graph: dict[str, set[str]], prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    def out(m):
        return any(m == p or m.startswith(p + ".") for p in prefixes)
    return {m: {t for t in ts if not out(t)} for m, ts in graph.items() if not out(m)}


def describe(cycle: list[str], lines: dict) -> str:
    return "\n".join(f"  {a} -> {b}  (tinydl/{modules()[a].relative_to(ROOT)}:{lines[(a, b)]})"
                     for a, b in zip(cycle, cycle[1:]))


def test_tinydl_imports_form_no_cycle():
    graph, lines = import_graph()
    cycle = find_cycle(without(graph, LEFT_OUT))
    assert cycle is None, "import cycle:\n" + describe(cycle, lines)


def test_the_graph_sees_every_kind_of_import():
    """The check itself: relative imports (from a module, from a package's __init__; in functions: below)
    resolve to the modules they load, and a planted cycle is found."""
    graph, lines = import_graph()
    assert "tinydl.ops" in graph["tinydl._core"]                      # from .ops import ...
    assert "tinydl.counters" in graph["tinydl.schedule"]               # a package's __init__: from .. import x
    assert "tinydl.kernels.gemm" in graph["tinydl.schedule.lower"]     # from ..kernels import gemm: the module
    planted = {**graph, "tinydl.ops": graph["tinydl.ops"] | {"tinydl._tensor"}}
    cycle = find_cycle(without(planted, LEFT_OUT))
    assert cycle is not None and cycle[0] == cycle[-1] and "tinydl.ops" in cycle, cycle


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from . import b\n", {"tinydl.b"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n", set()),
    ("from .b import thing\n", {"tinydl.b"}),
    ("from . import thing_of_the_package\n", {"tinydl"}),
])
def test_statements_resolve(source, expected):
    mods = {"tinydl": ROOT / "__init__.py", "tinydl.a": ROOT / "a.py", "tinydl.b": ROOT / "b.py"}
    found = set()
    for node in _imports(ast.parse(source)):
        found |= imported("tinydl.a", ROOT / "a.py", node, mods)
    assert found == expected
