"""A source scan for the lifecycle tests: where a model's lifecycle fields are written."""

import ast
from pathlib import Path

import dmarket


def field_writes(names, fields, allowed):
    """`path:line [fields]` for each `.update(...)` or `.save(update_fields=...)` call on a
    name in `names` (the model, or a variable holding one of its rows) that writes one of
    `fields`, in dmarket's modules less tests, migrations and the `allowed` module (a path
    relative to dmarket/, as a tuple of parts)."""
    root = Path(dmarket.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if "tests" in parts or "migrations" in parts or parts == tuple(allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("update", "save")):
                continue
            base = node.func.value
            while isinstance(base, (ast.Call, ast.Attribute)):
                base = base.func if isinstance(base, ast.Call) else base.value
            named = {k.arg for k in node.keywords} & set(fields)
            if node.func.attr == "save":
                named = {e.value for k in node.keywords if k.arg == "update_fields"
                         and isinstance(k.value, (ast.List, ast.Tuple))
                         for e in k.value.elts if isinstance(e, ast.Constant)} & set(fields)
            if named and isinstance(base, ast.Name) and base.id in names:
                found.append(f"{'/'.join(parts)}:{node.lineno} {sorted(named)}")
    return found
