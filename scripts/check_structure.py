"""The house rules of `server/` that a linter does not check (docs/architecture.md): no import cycle between its
parts (each folder, each root module), at most MAX_ROOT_MODULES modules at its root, no function over
MAX_FUNCTION_LINES lines. Prints each breach and exits 1 if any (`make lint` runs it).

    python scripts/check_structure.py
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "server"
MAX_ROOT_MODULES = 14
MAX_FUNCTION_LINES = 60


def part(module: str) -> str:
    """`server.generation.pipeline` -> `generation`; `server.app` -> `app`."""
    return module.split(".")[1] if module.count(".") else module


def imports(path: Path, module: str) -> set[str]:
    """The `server.…` modules `path` (the module `module`) imports: absolute, `from server import x`, or relative."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            if base == "server":  # `from server import app`: each name is a module of the root
                names.update(f"server.{a.name}" for a in node.names)
            elif base.startswith("server."):
                names.add(base)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("server."))
    return names


def graph(root: Path) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in root.rglob("*.py"):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        src = part(module)
        edges[src] |= {part(m) for m in imports(path, module)} - {src}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                group.append(member)
            if group:
                groups.append(sorted([node, *group]))

    for node in list(edges):
        if node not in index:
            visit(node)
    return groups


def long_functions(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name}: {lines} lines")
    return found


def main(root: Path = ROOT) -> int:
    breaches = [f"import cycle between: {', '.join(group)}" for group in cycles(graph(root))]
    at_root = sorted(p.name for p in root.glob("*.py"))
    if len(at_root) > MAX_ROOT_MODULES:
        breaches.append(
            f"{len(at_root)} modules at the root of server/ (at most {MAX_ROOT_MODULES}): {', '.join(at_root)}"
        )
    breaches += [f"function over {MAX_FUNCTION_LINES} lines: {where}" for where in long_functions(root)]
    for breach in breaches:
        print(breach)
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
