"""The package's modules import one another without a cycle: a cycle makes a module's names
depend on the order in which modules happen to load (cli.py once imported files_cli.py last,
after defining what files_cli.py took back from it)."""

import ast
from pathlib import Path

import dmarket_client

PACKAGE = "dmarket_client"


def module_name(path, root):
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root):
    """{module: {modules of the package it imports}}, from every import statement, those
    inside functions too (one there still runs, only later)."""
    modules = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = ".".join(filter(None, [base, node.module]))
                else:
                    base = node.module
                targets.add(base)
                # `from . import config` imports the module config, not a name in __init__.
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph):
    """One cycle as [a, b, ..., a], or None."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_no_import_cycle():
    graph = import_graph(Path(dmarket_client.__file__).parent)

    assert f"{PACKAGE}.cli" in graph and f"{PACKAGE}.files_cli" in graph[f"{PACKAGE}.cli"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_is_found(tmp_path):
    root = tmp_path / PACKAGE
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "cli.py").write_text("from .files_cli import files\n")
    # Inside a function, as cli.py once imported env_cli.py.
    (root / "files_cli.py").write_text("def files():\n    from .cli import CONTEXT\n")

    cycle = find_cycle(import_graph(root))

    assert cycle == [f"{PACKAGE}.cli", f"{PACKAGE}.files_cli", f"{PACKAGE}.cli"]
