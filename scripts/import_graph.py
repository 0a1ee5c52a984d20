"""The import graph of src/loracompose, read with the standard library's `ast` (nothing is imported).

    python scripts/import_graph.py            summary: modules, edges, cycles, function-local imports
    python scripts/import_graph.py --dot      the module-level graph in Graphviz DOT (`| dot -Tsvg`)

Two kinds of edges:

    module level    imports a module runs when it is imported (top level, or in a top-level
                    `try`/`if`/`with`/class body), less `if TYPE_CHECKING:` blocks
    function local  imports inside a function body, run when the function is called

`from a.b import c` is an edge to `a.b.c` when that is a module, else to `a.b`.
Only edges between loracompose's own modules count. A cycle is a strongly
connected component of the module-level graph with more than one module;
function-local imports cannot form an import-time cycle.

Hand-written rather than pydeps: pydeps imports and traces the code (torch,
transformers), and does not separate function-local imports, which this check
is about.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "loracompose"
SOURCE = Path(__file__).resolve().parents[1] / "src"


@dataclass
class Graph:
    modules: dict[str, Path]  # module name → file
    module_level: dict[str, set[str]] = field(default_factory=dict)  # module → modules it imports at import time
    local: dict[str, set[str]] = field(default_factory=dict)  # module → modules imported inside its functions
    local_count: Counter = field(default_factory=Counter)  # module → function-local import statements

    def cycles(self) -> list[list[str]]:
        return [sorted(c) for c in _components(self.module_level) if len(c) > 1]

    def all_cycles(self) -> list[list[str]]:
        """Cycles counting function-local imports too (not import-time failures, but tangled layers)."""
        edges = {m: self.module_level[m] | self.local.get(m, set()) for m in self.module_level}
        return [sorted(c) for c in _components(edges) if len(c) > 1]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the package the module is in
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    found = set()
    for name in names:
        while name and name not in modules:  # `import a.b.c` of a name inside a module: the module
            name = name.rpartition(".")[0]
        if name.split(".")[0] == PACKAGE and name:
            found.add(name)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(body: list[ast.stmt], in_function: bool, out: list[tuple[ast.stmt, bool]]) -> None:
    """Every import statement under `body`, with whether it runs inside a function."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append((node, in_function))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _walk(node.body, True, out)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            continue
        else:
            for child in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(node, child, None)
                if isinstance(block, list):
                    _walk([b for b in block if isinstance(b, (ast.stmt, ast.excepthandler))], in_function, out)


def build(source: Path = SOURCE) -> Graph:
    root = source
    files = sorted((source / PACKAGE).rglob("*.py"))
    graph = Graph({_module_name(f, root): f for f in files})
    for name, path in graph.modules.items():
        statements: list[tuple[ast.stmt, bool]] = []
        tree = ast.parse(path.read_text(), str(path))
        _walk(tree.body, False, statements)
        graph.module_level[name], graph.local[name] = set(), set()
        for node, in_function in statements:
            targets = _targets(node, name, path.name == "__init__.py", graph.modules) - {name}
            if in_function:
                graph.local[name] |= targets
                graph.local_count[name] += bool(targets)
            else:
                graph.module_level[name] |= targets
    return graph


def _components(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    out.append(component)
    return out


def summary(graph: Graph) -> str:
    top = sorted(m for m in graph.modules if m.count(".") == 1 and not graph.modules[m].name == "__init__.py")
    packages = sorted(m for m, p in graph.modules.items() if p.name == "__init__.py")
    by_package = Counter()
    for module, n in graph.local_count.items():
        by_package[module if module in packages else module.rpartition(".")[0]] += n
    cycles = graph.cycles()
    lines = [f"{len(graph.modules)} modules in {len(packages)} packages; "
             f"{sum(map(len, graph.module_level.values()))} module-level edges, "
             f"{sum(map(len, graph.local.values()))} function-local edges "
             f"({sum(graph.local_count.values())} function-local import statements of loracompose modules)",
             f"packages: {', '.join(packages)}",
             f"top-level modules: {', '.join(m.split('.', 1)[1] for m in top)}",
             "function-local imports by package: " + ", ".join(f"{p} {n}" for p, n in sorted(by_package.items())),
             f"module-level import cycles: {len(cycles)}"]
    lines += [f"  cycle: {' ↔ '.join(c)}" for c in cycles]
    tangled = graph.all_cycles()
    lines.append(f"cycles counting function-local imports too: {len(tangled)}")
    lines += [f"  cycle: {' ↔ '.join(c)}" for c in tangled]
    return "\n".join(lines)


def dot(graph: Graph) -> str:
    lines = ["digraph loracompose {", "  rankdir=LR; node [shape=box, fontsize=10];"]
    for module, targets in sorted(graph.module_level.items()):
        lines += [f'  "{module}" -> "{t}";' for t in sorted(targets)]
    return "\n".join(lines + ["}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print the module-level graph as Graphviz DOT")
    parser.add_argument("--source", type=Path, default=SOURCE, help="the src/ directory")
    args = parser.parse_args(argv)
    graph = build(args.source)
    print(dot(graph) if args.dot else summary(graph))
    return 1 if graph.cycles() else 0


if __name__ == "__main__":
    sys.exit(main())
